/*
 * TEST DOUBLE of Tiledesk's real widget loader (https://widget.tiledesk.com/v6/launch.js, chat21-web-widget 5.2.3).
 * It is NOT Tiledesk's code and NOT a chat widget: it reproduces, for fast offline tests, the behaviour described in
 * docs/tiledesk.md, traps included. Each trap below was found in the real widget (the end-to-end tests run that one):
 *
 * - the page's snippet queues calls in window.Tiledesk.q; this loader replays them at `onBeforeInit`, with at most
 *   ONE argument per call; names starting with "on" are registered as event listeners; an unknown name throws
 *   during the replay, which stops it and leaves window.Tiledesk a queue forever;
 * - the replay is installed as window.tileDeskAsyncInit only when the page has not defined it itself;
 * - the boot waits for the first scroll / mousedown / mousemove / touchstart / keydown ON `document`, or a timeout,
 *   then for window load; window.tiledesk (with `on`) exists before its methods, which are attached just before
 *   `onLoadParams` fires;
 * - window.tiledesk.on(name, cb) adds the listener to window.tiledesk.tiledeskroot, a <chat-root> element, and
 *   events are dispatched there: not on #tiledeskdiv, the visible container;
 * - after boot, window.Tiledesk(name, arg) calls window.tiledesk[name](arg) and returns its result, and
 *   window.Tiledesk('onX', cb) registers nothing;
 * - the widget lives in an iframe: the Promises its methods return and the errors they reject with come from the
 *   iframe's realm (`instanceof Promise` is false in the page), and the errors are Angular HttpErrorResponses
 *   ({name, status, message}), not Errors;
 * - signInWithCustomToken POSTs {apiUrl}auth/signinWithCustomToken with the token verbatim as Authorization,
 *   stores the reply under widget_sv5_<projectid>_tiledeskToken / _currentUser and resolves; only then does the
 *   chat connection start ({apiUrl}chat21/native/auth/createCustomToken, then the broker): `online` comes later,
 *   and then POST {apiUrl}<projectid>/events, whose 401 makes the loader hide and dispose the widget (from that
 *   XMLHttpRequest's load handler);
 * - a failed sign-in (401 or any error) logs the widget out if someone was logged in (stored session cleared,
 *   `offline` twice, hidden), a 401 also clears the stored session, the Promise rejects, and NO event fires;
 * - the widget shows itself on every login when autoStart is false;
 * - logout() returns undefined when nobody is logged in, and a Promise that never settles while the chat
 *   connection has not subscribed yet (the stored session is cleared all the same);
 * - signInAnonymous() POSTs {apiUrl}auth/signinAnonymously and comes online like any visitor (isLogged true);
 * - a stored token is used again at boot when autoStart is true; when the API answers 401 (an expired token) the
 *   widget hides and disposes itself;
 * - `startHidden: true` swallows the first show();
 * - signInWithCustomToken for another visitor while one is online reports the first `offline` before the second
 *   comes online;
 * - reInit() (it logs the visitor out first) and restart() remove <chat-root> and the widget and boot a new one:
 *   a new window.tiledesk (its methods a moment later), a new root, nobody signed in; the old widget's late events
 *   are dispatched on window.tiledesk.tiledeskroot as it is then: the NEW root.
 *
 * Settings read from window.tiledeskSettings: projectid (required), autoStart, startHidden, and, for this double
 * only, apiUrl (default: "<this script's origin>/api/"), fakeBootDelayMs (default 5000, the real timeout),
 * fakeConnectMs (default 20: sign-in to `online`), fakeSubscribeMs (default 20: `online` to subscribed) and
 * fakeKeepUserOnSwitch (default false: true keeps the first visitor on a sign-in as another, as a loader might).
 */
(function () {
  "use strict";
  // Its own element: a loader removed before it ran (a test tearing down) must not take the next one's for its own.
  var script = document.currentScript || document.getElementById("tiledesk-jssdk");
  if (!script) {
    console.error("tiledesk stand-in: no element with id tiledesk-jssdk; cannot find my base URL");
    return;
  }
  var settings = window.tiledeskSettings || {};
  var projectid = settings.projectid;
  if (!projectid) {
    console.error("tiledesk stand-in: tiledeskSettings.projectid is required");
    return;
  }
  var apiUrl = settings.apiUrl || new URL("/api/", script.src).href;
  function number(value, fallback) {
    return typeof value === "number" ? value : fallback;
  }
  var bootDelay = number(settings.fakeBootDelayMs, 5000);
  // Read when used: a test may change them on a booted widget.
  function connectMs() {
    return number(settings.fakeConnectMs, 20);
  }
  function subscribeMs() {
    return number(settings.fakeSubscribeMs, 20);
  }
  var storagePrefix = "widget_sv5_" + projectid + "_";
  var TOKEN_KEY = storagePrefix + "tiledeskToken";
  var USER_KEY = storagePrefix + "currentUser";

  // A loader whose script element was removed (a test tearing down) must not boot later into another page state.
  function stillMine() {
    return script.id === "tiledesk-jssdk" && document.getElementById("tiledesk-jssdk") === script;
  }

  if (!window.tileDeskAsyncInit) {
    window.tileDeskAsyncInit = function () {
      window.tiledesk.on("onLoadParams", function (event) {
        var q = (window.Tiledesk && window.Tiledesk.q) || [];
        var rest = [];
        q.forEach(function (args) {
          if (args[0] === "onLoadParams") args[1](event);
          else if (args[0] === "setParameter") window.tiledesk.setParameter(args[1]);
          else rest.push(args);
        });
        window.Tiledesk.q = rest;
      });
      window.tiledesk.on("onBeforeInit", function () {
        var q = (window.Tiledesk && window.Tiledesk.q) || [];
        window.Tiledesk.q = [];
        // No try/catch: an unknown method throws here, the replay stops, and window.Tiledesk stays a queue.
        q.forEach(function (args) {
          var name = args[0];
          if (name.indexOf("on") === 0) window.tiledesk.on(name, args[1]);
          else window.tiledesk[name](args[1]);
        });
        window.Tiledesk = function (name, arg) {
          if (typeof window.tiledesk[name] === "function") return window.tiledesk[name](arg);
          return undefined; // "onX" after boot: registers nothing
        };
      });
    };
  }

  var bootStarted = false;
  var interactions = ["scroll", "mousedown", "mousemove", "touchstart", "keydown"];
  function onInteraction() {
    startBoot();
  }
  interactions.forEach(function (name) {
    document.addEventListener(name, onInteraction, { passive: true });
  });
  var bootTimer = setTimeout(startBoot, bootDelay);

  function startBoot() {
    if (bootStarted) return;
    bootStarted = true;
    clearTimeout(bootTimer);
    interactions.forEach(function (name) {
      document.removeEventListener(name, onInteraction);
    });
    if (document.readyState === "complete") setTimeout(boot, 0);
    else window.addEventListener("load", function () { setTimeout(boot, 0); }, { once: true });
  }

  function boot() {
    if (!stillMine()) return;
    // The widget's realm: its Promises and errors are not the page's.
    var frame = document.createElement("iframe");
    frame.id = "tiledesk-stand-in-realm";
    frame.style.display = "none";
    document.body.appendChild(frame);
    var realm = frame.contentWindow;
    function realmPromise(executor) {
      return new realm.Promise(executor);
    }
    function httpError(status, text) {
      var err = new realm.Object();
      err.name = "HttpErrorResponse";
      err.status = status;
      err.message = "Http failure response for " + text + ": " + status;
      return err;
    }

    var tiledeskroot = document.createElement("chat-root");
    document.body.appendChild(tiledeskroot);
    var root = document.createElement("div");
    root.id = "tiledeskdiv";
    root.setAttribute("data-stand-in", "tiledesk");
    root.style.display = "none";
    var panel = document.createElement("div");
    panel.className = "tiledesk-stand-in-panel";
    root.appendChild(panel);
    document.body.appendChild(root);

    var visible = false;
    var firstShowSwallowed = !settings.startHidden;
    var loggedIn = false;
    var subscribed = false;
    var currentUser = null;
    var disposed = false;
    var connection = 0; // bumped when the connection closes: a connect under way then does nothing

    function render() {
      root.style.display = visible && !disposed ? "block" : "none";
      panel.textContent = loggedIn && currentUser
        ? "Tiledesk (stand-in): signed in as " + (currentUser.fullName || currentUser._id) + " [" + currentUser._id + "]"
        : "Tiledesk (stand-in): not signed in";
      root.setAttribute("data-user-id", loggedIn && currentUser ? currentUser._id : "");
    }

    // On the root window.tiledesk names when the event fires, as the real widget does: after reInit/restart, this
    // (old) widget's late events reach the new one's listeners.
    function fire(name, detail) {
      var current = (window.tiledesk && window.tiledesk.tiledeskroot) || tiledeskroot;
      current.dispatchEvent(new CustomEvent(name, { detail: detail }));
    }

    function authState(event) {
      fire("onAuthStateChanged", {
        event: event,
        isLogged: loggedIn,
        user_id: currentUser ? currentUser._id : undefined,
        global: { projectid: projectid },
        default_settings: settings,
        appConfigs: { apiUrl: apiUrl },
      });
    }

    function post(path, token, body) {
      var init = { method: "POST", headers: { Authorization: token } };
      if (body) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return fetch(apiUrl + path, init);
    }

    function clearSession() {
      localStorage.removeItem(TOKEN_KEY);
      localStorage.removeItem(USER_KEY);
    }

    function hideAndDispose() {
      visible = false;
      disposed = true;
      render();
      if (root.parentNode) root.parentNode.removeChild(root);
    }

    // reInit/restart: this widget goes (its connection with it), a new one boots.
    function replace() {
      visible = false;
      disposed = true;
      connection++;
      loggedIn = false;
      render();
      [tiledeskroot, root, frame].forEach(function (element) {
        if (element.parentNode) element.parentNode.removeChild(element);
      });
      boot();
    }

    function close() {
      connection++;
      loggedIn = false;
      subscribed = false;
      render();
    }

    // The chat connection, after a sign-in: `online` once connected, then the loader's events call.
    // Two sign-ins close together both come online, each as its own user, in the order they connect.
    function connect(token, user) {
      var mine = connection;
      if (!stillMine()) return;
      post("chat21/native/auth/createCustomToken", token).then(function (chat) {
        if (!chat.ok || mine !== connection) return;
        connected(user, mine);
      });
    }

    // Connected (or connected again, with the chat token it has: no HTTP call): `online`, then the loader's
    // events call with the session token, from an XMLHttpRequest whose `load` handler hides and disposes the widget
    // on a 401, as the real loader's does (so `window.event` is that request's load event while it runs).
    function connected(user, mine) {
      setTimeout(function () {
        if (mine !== connection || !stillMine()) return;
        currentUser = user;
        loggedIn = true;
        render();
        if (!settings.autoStart) show(); // the real widget shows itself on login
        authState("online");
        var session = localStorage.getItem(TOKEN_KEY);
        if (session) {
          var request = new XMLHttpRequest();
          request.open("POST", apiUrl + projectid + "/events", true);
          request.setRequestHeader("Content-type", "application/json");
          request.setRequestHeader("Authorization", session);
          request.onload = function (event) {
            if (event.target && event.target.status === 401 && stillMine()) {
              window.tiledesk.hide();
              window.tiledesk.dispose();
            }
          };
          request.send(JSON.stringify({ name: "auth_state_changed" }));
        }
        setTimeout(function () {
          if (mine === connection) subscribed = true;
        }, subscribeMs());
      }, connectMs());
    }

    // The widget's own sign-out: nothing unless someone is logged in.
    function signOut() {
      if (!loggedIn) return undefined;
      clearSession();
      if (!subscribed) return realmPromise(function () {}); // never settles
      close();
      visible = false;
      render();
      authState("offline");
      authState("offline");
      return realmPromise(function (resolve) { resolve(true); });
    }

    function signIn(token) {
      return realmPromise(function (resolve, reject) {
        post("auth/signinWithCustomToken", token).then(function (res) {
          if (!res.ok) {
            if (res.status === 401) clearSession();
            signOut();
            reject(httpError(res.status, apiUrl + "auth/signinWithCustomToken"));
            return;
          }
          return res.json().then(function (body) {
            // Another visitor online: the real widget reports them offline before the new one comes online
            // (measured); `fakeKeepUserOnSwitch` plays a loader that does not, for tests of the module's own logout.
            if (loggedIn && currentUser && currentUser._id !== body.user._id && !settings.fakeKeepUserOnSwitch) {
              close();
              authState("offline");
              authState("offline");
            }
            localStorage.setItem(TOKEN_KEY, body.token);
            localStorage.setItem(USER_KEY, JSON.stringify(body.user));
            connect(token, body.user);
            resolve(body.user);
          });
        }, function () {
          signOut();
          reject(httpError(0, apiUrl + "auth/signinWithCustomToken"));
        });
      });
    }

    function show() {
      if (!firstShowSwallowed) {
        firstShowSwallowed = true;
        return;
      }
      visible = true;
      render();
    }

    window.tiledesk = {
      tiledeskroot: tiledeskroot,
      on: function (name, handler) {
        tiledeskroot.addEventListener(name, handler);
      },
    };

    // The widget app attaches its methods a moment after window.tiledesk exists.
    setTimeout(function () {
      if (!stillMine()) return;
      var t = window.tiledesk;
      t.signInWithCustomToken = function (token) {
        return signIn(token);
      };
      t.signInAnonymous = function () {
        return realmPromise(function (resolve, reject) {
          fetch(apiUrl + "auth/signinAnonymously", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ id_project: projectid }),
          }).then(function (res) {
            if (!res.ok) return reject(httpError(res.status, apiUrl + "auth/signinAnonymously"));
            return res.json().then(function (body) {
              localStorage.setItem(TOKEN_KEY, body.token);
              connect(body.token, body.user);
              resolve(body.user);
            });
          }, function () {
            reject(httpError(0, apiUrl + "auth/signinAnonymously"));
          });
        });
      };
      t.logout = signOut;
      t.show = show;
      t.hide = function () {
        visible = false;
        render();
      };
      t.open = function () { fire("onOpen", {}); };
      t.close = function () { fire("onClose", {}); };
      t.dispose = hideAndDispose;
      // Both tear this widget down and boot a new one; reInit logs the visitor out first (its `offline` comes a
      // moment later, from this old widget, on the new root).
      t.reInit = function () {
        if (loggedIn) {
          clearSession();
          close();
          setTimeout(function () {
            authState("offline");
          }, 0);
        }
        replace();
      };
      t.restart = function () {
        replace();
      };
      t.setParameter = function (p) { if (p && p.key) settings[p.key] = p.value; };
      t.sendMessage = function () {};
      t.startConversation = function () {};
      t.clearStorage = clearSession;
      // For tests: the broker connection drops, and comes back with the chat token the widget has (no HTTP call,
      // as mqtt.js reconnects): `online` again, then the events call with the stored session token.
      t.__standInReconnect = function () {
        var user = currentUser;
        if (user) connected(user, connection);
      };

      if (typeof window.tileDeskAsyncInit === "function") window.tileDeskAsyncInit();
      fire("onLoadParams", { default_settings: settings });
      fire("onBeforeInit", { default_settings: settings });
      render();

      authState("offline");
      if (settings.autoStart) {
        var stored = localStorage.getItem(TOKEN_KEY);
        if (stored) {
          signIn(stored).catch(function (err) {
            if (err && err.status === 401) hideAndDispose(); // the trap: a stale stored token kills the widget
          });
        } else {
          t.signInAnonymous();
        }
      }
    }, 0);
  }
})();
