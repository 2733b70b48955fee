/*
 * TEST DOUBLE of Tiledesk's real widget loader (https://widget.tiledesk.com/v6/launch.js, chat21-web-widget 5.2.3).
 * It is NOT Tiledesk's code and NOT a chat widget: it reproduces, for offline tests and the demo, exactly the
 * behaviour described in shared/docs/tiledesk-contract.md (sections 2 to 4), traps included:
 *
 * - the page's snippet queues calls in window.Tiledesk.q; this loader replays them at `onBeforeInit`, with at most
 *   ONE argument per call; names starting with "on" are registered as event listeners; an unknown name throws
 *   during the replay, which stops it and leaves window.Tiledesk a queue forever;
 * - the replay is installed as window.tileDeskAsyncInit only when the page has not defined it itself;
 * - the boot waits for the first scroll / mousedown / mousemove / touchstart / keydown, or a timeout, then for
 *   window load; window.tiledesk (with `on`) exists before its methods, which are attached just before
 *   `onLoadParams` fires;
 * - after boot, window.Tiledesk(name, arg) calls window.tiledesk[name](arg) and returns its result, and
 *   window.Tiledesk('onX', cb) registers nothing;
 * - signInWithCustomToken POSTs {apiUrl}auth/signinWithCustomToken with the token verbatim as Authorization,
 *   stores the reply under widget_sv5_<projectid>_tiledeskToken / _currentUser, POSTs
 *   {apiUrl}chat21/native/auth/createCustomToken, then reports `online`; on 401 it removes the stored session and
 *   rejects its Promise, and NO event fires;
 * - a stored token is used again at boot; when the API answers 401 (an expired token) the widget hides and
 *   disposes itself;
 * - `startHidden: true` swallows the first show().
 *
 * Settings read from window.tiledeskSettings: projectid (required), autoStart, startHidden, and, for this double
 * only, apiUrl (default: "<this script's origin>/api/") and fakeBootDelayMs (default 5000, the real timeout).
 */
(function () {
  "use strict";
  var script = document.getElementById("tiledesk-jssdk");
  if (!script) {
    console.error("tiledesk stand-in: no element with id tiledesk-jssdk; cannot find my base URL");
    return;
  }
  var baseUrl = new URL(".", script.src).href;
  var settings = window.tiledeskSettings || {};
  var projectid = settings.projectid;
  if (!projectid) {
    console.error("tiledesk stand-in: tiledeskSettings.projectid is required");
    return;
  }
  var apiUrl = settings.apiUrl || new URL("/api/", script.src).href;
  var bootDelay = typeof settings.fakeBootDelayMs === "number" ? settings.fakeBootDelayMs : 5000;
  var storagePrefix = "widget_sv5_" + projectid + "_";
  var TOKEN_KEY = storagePrefix + "tiledeskToken";
  var USER_KEY = storagePrefix + "currentUser";

  // A loader whose script element was removed (a test tearing down) must not boot later into another page state.
  function stillMine() {
    return document.getElementById("tiledesk-jssdk") === script;
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
    window.addEventListener(name, onInteraction, { passive: true });
  });
  var bootTimer = setTimeout(startBoot, bootDelay);

  function startBoot() {
    if (bootStarted) return;
    bootStarted = true;
    clearTimeout(bootTimer);
    interactions.forEach(function (name) {
      window.removeEventListener(name, onInteraction);
    });
    if (document.readyState === "complete") setTimeout(boot, 0);
    else window.addEventListener("load", function () { setTimeout(boot, 0); }, { once: true });
  }

  function boot() {
    if (!stillMine()) return;
    var root = document.createElement("div");
    root.id = "tiledeskdiv";
    root.setAttribute("data-stand-in", "tiledesk");
    root.style.display = "none";
    var panel = document.createElement("div");
    panel.className = "tiledesk-stand-in-panel";
    root.appendChild(panel);
    // A minimal conversation, kept per chat user by the mock API, so two browsers show the same history.
    var messages = document.createElement("ul");
    messages.className = "tiledesk-stand-in-messages";
    root.appendChild(messages);
    var composer = document.createElement("form");
    composer.className = "tiledesk-stand-in-composer";
    var input = document.createElement("input");
    input.name = "message";
    input.placeholder = "Write a message";
    var send = document.createElement("button");
    send.type = "submit";
    send.textContent = "Send";
    composer.appendChild(input);
    composer.appendChild(send);
    root.appendChild(composer);
    document.body.appendChild(root);

    function showMessages(list) {
      messages.textContent = "";
      (list || []).forEach(function (m) {
        var item = document.createElement("li");
        item.textContent = m.text;
        messages.appendChild(item);
      });
    }

    function loadConversation() {
      var token = localStorage.getItem(TOKEN_KEY);
      if (!token) return Promise.resolve();
      return fetch(apiUrl + "conversations", { headers: { Authorization: token } })
        .then(function (r) { return r.ok ? r.json() : { messages: [] }; })
        .then(function (body) { showMessages(body.messages); root.setAttribute("data-messages", String(body.messages.length)); });
    }

    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var token = localStorage.getItem(TOKEN_KEY);
      var text = input.value.trim();
      if (!token || !loggedIn || !text) return;
      input.value = "";
      fetch(apiUrl + "conversations", {
        method: "POST",
        headers: { Authorization: token, "Content-Type": "application/json" },
        body: JSON.stringify({ text: text }),
      }).then(loadConversation);
    });

    var visible = false;
    var firstShowSwallowed = !settings.startHidden;
    var loggedIn = false;
    var currentUser = null;
    var disposed = false;

    function render() {
      root.style.display = visible && !disposed ? "block" : "none";
      panel.textContent = loggedIn && currentUser
        ? "Tiledesk (stand-in): signed in as " + (currentUser.fullName || currentUser._id) + " [" + currentUser._id + "]"
        : "Tiledesk (stand-in): anonymous";
      root.setAttribute("data-user-id", loggedIn && currentUser ? currentUser._id : "");
      composer.hidden = !loggedIn;
    }

    function fire(name, detail) {
      root.dispatchEvent(new CustomEvent(name, { detail: detail }));
    }

    function authState(event, isLogged, userId) {
      fire("onAuthStateChanged", {
        event: event,
        isLogged: isLogged,
        user_id: userId,
        global: { projectid: projectid },
        default_settings: settings,
        appConfigs: {},
      });
    }

    function post(path, token) {
      return fetch(apiUrl + path, { method: "POST", headers: { Authorization: token } });
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

    // The sign-in, used both by the method and by the re-authentication at boot.
    function signIn(token) {
      return post("auth/signinWithCustomToken", token).then(function (res) {
        if (res.status === 401 || res.status === 403 || res.status === 400) {
          clearSession();
          loggedIn = false;
          currentUser = null;
          render();
          var err = new Error("signInWithCustomToken: " + res.status);
          err.status = res.status;
          throw err; // no event for a failed sign-in
        }
        if (!res.ok) throw new Error("signInWithCustomToken: " + res.status);
        return res.json().then(function (body) {
          localStorage.setItem(TOKEN_KEY, body.token);
          localStorage.setItem(USER_KEY, JSON.stringify(body.user));
          return post("chat21/native/auth/createCustomToken", token).then(function (chat) {
            if (!chat.ok) throw new Error("createCustomToken: " + chat.status);
            currentUser = body.user;
            loggedIn = true;
            render();
            authState("online", true, body.user._id);
            loadConversation();
            return body.user;
          });
        });
      });
    }

    window.tiledesk = {
      on: function (name, handler) {
        root.addEventListener(name, handler);
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
        clearSession();
        currentUser = { _id: "anonymous-" + Math.random().toString(16).slice(2), fullName: "" };
        loggedIn = false;
        render();
        authState("online", false, currentUser._id);
        return Promise.resolve(currentUser);
      };
      t.logout = function () {
        clearSession();
        loggedIn = false;
        currentUser = null;
        showMessages([]);
        render();
        authState("offline", false, undefined);
        authState("offline", false, undefined);
        return Promise.resolve();
      };
      t.show = function () {
        if (!firstShowSwallowed) {
          firstShowSwallowed = true;
          return;
        }
        visible = true;
        render();
      };
      t.hide = function () {
        visible = false;
        render();
      };
      t.open = function () { fire("onOpen", {}); };
      t.close = function () { fire("onClose", {}); };
      t.dispose = hideAndDispose;
      t.reInit = function () {};
      t.restart = function () {};
      t.setParameter = function (p) { if (p && p.key) settings[p.key] = p.value; };
      t.sendMessage = function () {};
      t.startConversation = function () {};
      t.clearStorage = clearSession;

      if (typeof window.tileDeskAsyncInit === "function") window.tileDeskAsyncInit();
      fire("onLoadParams", { default_settings: settings });
      fire("onBeforeInit", { default_settings: settings });
      render();

      authState("offline", false, undefined);
      var stored = localStorage.getItem(TOKEN_KEY);
      if (stored) {
        signIn(stored).catch(function (err) {
          if (err && err.status === 401) hideAndDispose(); // the trap: a stale stored token kills the widget
        });
      } else if (settings.autoStart) {
        t.signInAnonymous();
      }
    }, 0);
  }
})();
