//! Browser tests, in headless Chromium through `wasm-pack test`, against the stand-in Tiledesk loader and the
//! mock Tiledesk API (`tiledesk-mock`), whose URL comes in at build time as `TILEDESK_MOCK_URL`
//! (`cargo xtask test` starts the mock and sets it). The mock holds the project [`PROJECT`].

#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used, missing_docs)] // test code: a failure should panic with its error

use js_sys::{Function, JSON, Promise, Reflect};
use tiledesk_auth_web::TiledeskAuth;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const PROJECT: &str = "wasmtest0123456789abcdef";

fn mock() -> &'static str {
    // A missing URL fails every test with this message instead of skipping anything.
    match option_env!("TILEDESK_MOCK_URL") {
        Some(url) => url,
        None => panic!("build with TILEDESK_MOCK_URL set: run `cargo xtask test`"),
    }
}

fn eval(code: &str) -> JsValue {
    js_sys::eval(code).unwrap()
}

/// Removes every trace of a previous test's widget from the page.
fn reset() {
    eval(
        "for (const e of document.querySelectorAll('#tiledesk-jssdk, #tiledeskdiv, #tiledesk-stand-in-realm, chat-root')) e.remove();
         delete window.tiledesk; delete window.Tiledesk; delete window.tiledeskSettings; delete window.tileDeskAsyncInit;
         localStorage.clear();
         if (!window.__unhandled) {
           window.__unhandled = [];
           window.addEventListener('unhandledrejection', (e) => window.__unhandled.push(String(e.reason && e.reason.message || e.reason)));
         }
         window.__unhandled.length = 0;",
    );
}

/// No unhandled rejection was reported since [`reset`]. Absence can only be observed over a window: the browser
/// reports a rejection in a task of its own, after the one that rejected, in no fixed order with timers; 100 ms of
/// quiet is far more than that takes (a rejection planted just before this call is caught).
async fn assert_no_unhandled_rejection() {
    let turn: Promise = eval("new Promise((resolve) => setTimeout(resolve, 100))").unchecked_into();
    settle(turn).await.unwrap();
    let seen = eval("window.__unhandled.join(' | ')").as_string().unwrap();
    assert!(seen.is_empty(), "unhandled promise rejections: {seen}");
}

/// Options whose widget talks to `api_url` instead of the mock API.
fn options_with_api(user: &str, api_url: &str) -> JsValue {
    let opts = options(user, "", "");
    let settings = get(&opts, "settings");
    Reflect::set(&settings, &"apiUrl".into(), &api_url.into()).unwrap();
    opts
}

fn settings() -> String {
    format!(r#"{{"apiUrl": "{}/api/", "fakeBootDelayMs": 10}}"#, mock())
}

/// Sets `window.tiledeskSettings[key]` through the options' `settings` (a stand-in knob such as `fakeConnectMs`).
fn with_setting(opts: &JsValue, key: &str, value: &JsValue) -> JsValue {
    Reflect::set(&get(opts, "settings"), &key.into(), value).unwrap();
    opts.clone()
}

/// Dispatches `onAuthStateChanged` on the widget's root, as the widget does.
fn widget_reports(event: &str) {
    eval(&format!(
        "window.tiledesk.tiledeskroot.dispatchEvent(new CustomEvent('onAuthStateChanged',
             {{ detail: {{ event: '{event}', isLogged: false }} }}))"
    ));
}

/// Resolves once `condition` (JS: a boolean, or a Promise of one) is true, checked every 10 ms; fails the test with
/// `what` if it is still false after `ms` milliseconds.
async fn until(condition: &str, ms: u32, what: &str) {
    let promise: Promise = eval(&format!(
        "new Promise((resolve) => {{
           const deadline = Date.now() + {ms};
           (function check() {{
             Promise.resolve({condition}).then((ok) => {{
               if (ok) return resolve(true);
               if (Date.now() > deadline) return resolve(false);
               setTimeout(check, 10);
             }});
           }})();
         }})"
    ))
    .unchecked_into();
    assert!(
        settle(promise).await.unwrap().as_bool().unwrap(),
        "never true: {what}"
    );
}

/// Options for `user` with the test-site endpoint; `query` adds to its query string, `extra` to the object.
fn options(user: &str, query: &str, extra: &str) -> JsValue {
    let m = mock();
    JSON::parse(&format!(
        r#"{{"projectId": "{PROJECT}", "authUrl": "{m}/test-site/auth?user={user}{query}",
            "widgetUrl": "{m}/widget/launch.js", "settings": {}, "timeoutMs": 5000 {extra}}}"#,
        settings()
    ))
    .unwrap()
}

async fn settle(promise: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap()
}

fn text(value: &JsValue, key: &str) -> Option<String> {
    get(value, key).as_string()
}

fn widget_visible() -> bool {
    eval("(() => { const e = document.getElementById('tiledeskdiv'); return !!e && e.style.display === 'block'; })()")
        .as_bool()
        .unwrap()
}

fn widget_user() -> Option<String> {
    eval("(() => { const e = document.getElementById('tiledeskdiv'); return e ? e.getAttribute('data-user-id') : null; })()")
        .as_string()
}

fn stored_token() -> Option<String> {
    eval(&format!(
        "localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken')"
    ))
    .as_string()
}

async fn request_count(user: &str) -> f64 {
    let promise: Promise = eval(&format!(
        "fetch('{}/test-site/count?user={user}').then(r => r.json()).then(b => b.count)",
        mock()
    ))
    .unchecked_into();
    settle(promise).await.unwrap().as_f64().unwrap()
}

/// The standard Tiledesk snippet, as a page has it, with the stand-in loader.
fn install_page_snippet() {
    let m = mock();
    eval(&format!(
        "window.tiledeskSettings = Object.assign({{ projectid: '{PROJECT}' }}, {});
         (function(d, s, id) {{ var w = window; var i = function() {{ i.c(arguments); }}; i.q = []; i.c = function(args) {{ i.q.push(args); }};
           w.Tiledesk = i; var js, fjs = d.getElementsByTagName(s)[0]; if (d.getElementById(id)) return;
           js = d.createElement(s); js.id = id; js.async = true; js.src = '{m}/widget/launch.js'; fjs.parentNode.insertBefore(js, fjs);
         }}(document, 'script', 'tiledesk-jssdk'));",
        settings()
    ));
}

/// From now on, counts the page's calls to `fetch` (the module's token requests among them).
fn count_fetches() {
    eval(
        "window.__fetches = 0; window.__realFetch = window.fetch;
         window.fetch = function (...args) { window.__fetches++; return window.__realFetch.apply(this, args); };",
    );
}

/// The calls counted since [`count_fetches`], which this undoes.
fn fetches_counted() -> Option<f64> {
    let count = eval("window.__fetches").as_f64();
    eval("window.fetch = window.__realFetch;");
    count
}

fn expect_code(error: &JsValue, code: &str) {
    assert!(error.is_instance_of::<js_sys::Error>(), "a real Error");
    assert_eq!(
        text(error, "code").as_deref(),
        Some(code),
        "{:?}",
        text(error, "message")
    );
}

/// Resolves with the first state the object reports whose status `pick` accepts (`pick` sees each in turn).
fn first_state(auth: &TiledeskAuth, pick: impl FnMut(&str) -> bool + 'static) -> Promise {
    let mut pick = Some(pick);
    Promise::new(&mut |resolve: Function, _reject: Function| {
        let Some(mut pick) = pick.take() else { return };
        let listener = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
            if pick(text(&s, "status").as_deref().unwrap_or_default()) {
                let _ = resolve.call1(&JsValue::NULL, &s);
            }
        })
        .into_js_value();
        let _ = auth.on_state_change(listener.unchecked_into());
    })
}

/// Records every status the object reports.
fn record_statuses(auth: &TiledeskAuth) -> std::rc::Rc<std::cell::RefCell<Vec<String>>> {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = seen.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
        sink.borrow_mut().push(text(&s, "status").unwrap());
    })
    .into_js_value();
    let _ = auth.on_state_change(listener.unchecked_into());
    seen
}

#[wasm_bindgen_test]
async fn happy_path_signs_in_and_shows_the_widget() {
    reset();
    let auth = TiledeskAuth::new(&options("happy", "", "")).unwrap();
    let seen = record_statuses(&auth);
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    let chat_id = format!("{PROJECT}_happy");
    assert_eq!(text(&state, "userId"), Some(chat_id.clone()));
    let expires_at = get(&state, "expiresAt").as_f64().unwrap();
    assert!(
        (expires_at - js_sys::Date::now() / 1000.0 - 3600.0).abs() < 30.0,
        "{expires_at}"
    );
    assert!(get(&state, "error").is_null());
    assert!(widget_visible());
    assert_eq!(widget_user(), Some(chat_id));
    assert!(stored_token().unwrap().starts_with("JWT "));
    assert_eq!(*seen.borrow(), ["loading", "authenticated"]);
    assert_eq!(
        eval("document.querySelectorAll('#tiledesk-jssdk').length").as_f64(),
        Some(1.0)
    );
    assert_eq!(eval("window.tiledeskSettings.autoStart").as_bool(), Some(false));
}

/// A site user id outside ASCII: the module reads the token's `_id` as UTF-8 (the widget reports the id Tiledesk
/// decoded), so it recognises the visitor online and signs in.
#[wasm_bindgen_test]
async fn a_user_id_outside_ascii_signs_in_as_itself() {
    reset();
    // `josé-東京`, percent-encoded in the endpoint's query.
    let auth = TiledeskAuth::new(&options("jos%C3%A9-%E6%9D%B1%E4%BA%AC", "", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(
        text(&state, "status").as_deref(),
        Some("authenticated"),
        "{state:?}"
    );
    let chat_id = format!("{PROJECT}_josé-東京");
    assert_eq!(text(&state, "userId"), Some(chat_id.clone()));
    assert_eq!(widget_user(), Some(chat_id));
    assert!(widget_visible());
}

#[wasm_bindgen_test]
async fn page_with_the_snippet_still_queuing() {
    reset();
    install_page_snippet();
    eval("window.Tiledesk('onInit', function () {});"); // the page's own queued call survives the replay
    let auth = TiledeskAuth::new(&options("snippet", "", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert!(widget_visible());
    assert_eq!(
        eval("document.querySelectorAll('#tiledesk-jssdk').length").as_f64(),
        Some(1.0),
        "no second loader"
    );
    assert!(
        eval("typeof window.Tiledesk.q === 'undefined'")
            .as_bool()
            .unwrap(),
        "the queue was replayed"
    );
}

#[wasm_bindgen_test]
async fn widget_that_already_booted() {
    reset();
    install_page_snippet();
    let booted: Promise = eval(
        "new Promise((resolve) => window.Tiledesk('onLoadParams', () => window.tiledesk.on('onBeforeInit', resolve)))",
    )
    .unchecked_into();
    settle(booted).await.unwrap();
    assert!(
        eval("typeof window.tiledesk.signInWithCustomToken === 'function'")
            .as_bool()
            .unwrap()
    );
    let auth = TiledeskAuth::new(&options("booted", "", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert_eq!(widget_user(), Some(format!("{PROJECT}_booted")));
    assert!(widget_visible());
}

#[wasm_bindgen_test]
async fn endpoint_401_is_auth_rejected_and_the_widget_stays_hidden() {
    reset();
    let auth = TiledeskAuth::new(&options("refused", "&status=401", "")).unwrap();
    let error = settle(auth.sign_in(None)).await.unwrap_err();
    expect_code(&error, "auth_rejected");
    let state = auth.state();
    assert_eq!(text(&state, "status").as_deref(), Some("error"));
    assert_eq!(
        text(&get(&state, "error"), "code").as_deref(),
        Some("auth_rejected")
    );
    assert!(!widget_visible());
    assert_eq!(stored_token(), None);
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn endpoint_500_or_without_a_token_is_auth_endpoint() {
    reset();
    let auth = TiledeskAuth::new(&options("broken", "&status=500", "")).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "auth_endpoint");
    let auth = TiledeskAuth::new(&options("empty", "&empty=true", "")).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "auth_endpoint");
    assert!(!widget_visible());
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn unreachable_endpoint_is_network() {
    reset();
    let opts = options("unreachable", "", "");
    Reflect::set(&opts, &"authUrl".into(), &"http://127.0.0.1:9/auth".into()).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "network");
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn slow_endpoint_is_timeout() {
    reset();
    let opts = options("slow", "&delay_ms=3000", "");
    Reflect::set(&opts, &"timeoutMs".into(), &JsValue::from(300)).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "timeout");
    assert!(!widget_visible());
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn loader_that_fails_to_load_is_widget_load() {
    reset();
    let opts = options("noloader", "", "");
    Reflect::set(
        &opts,
        &"widgetUrl".into(),
        &format!("{}/widget/missing.js", mock()).into(),
    )
    .unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "widget_load");
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn widget_refusing_the_token_is_sign_in_rejected() {
    reset();
    let auth = TiledeskAuth::new(&options("expired", "&expired=true", "")).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "sign_in_rejected");
    assert!(!widget_visible());
    assert_eq!(stored_token(), None);
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn tiledesk_api_down_or_failing_is_sign_in_rejected_and_the_widget_stays_hidden() {
    for (user, api) in [
        ("apidown", "http://127.0.0.1:9/api/".to_owned()),
        ("api500", format!("{}/faulty/500/0/", mock())),
    ] {
        reset();
        let auth = TiledeskAuth::new(&options_with_api(user, &api)).unwrap();
        let error = settle(auth.sign_in(None)).await.unwrap_err();
        expect_code(&error, "sign_in_rejected");
        assert_eq!(text(&auth.state(), "status").as_deref(), Some("error"), "{user}");
        assert!(!widget_visible(), "{user}");
        assert_eq!(stored_token(), None, "{user}");
        assert_no_unhandled_rejection().await;
        drop(auth);
    }
}

#[wasm_bindgen_test]
async fn a_slow_tiledesk_api_is_timeout() {
    reset();
    let opts = options_with_api("apislow", &format!("{}/faulty/200/5000/", mock()));
    Reflect::set(&opts, &"timeoutMs".into(), &JsValue::from(1000)).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "timeout");
    assert!(!widget_visible());
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn the_site_endpoint_going_down_mid_session_ends_in_an_error_state() {
    reset();
    // Two-second tokens, refreshed at 80 %: the first request succeeds, the refresh gets 503.
    let auth = TiledeskAuth::new(&options("middown", "&ttl=2&fail_after=1", "")).unwrap();
    let seen = record_statuses(&auth);
    settle(auth.sign_in(None)).await.unwrap();
    assert!(widget_visible());
    let errored = first_state(&auth, |status| status == "error");
    let state = settle(errored).await.unwrap();
    assert_eq!(
        text(&get(&state, "error"), "code").as_deref(),
        Some("auth_endpoint")
    );
    assert_eq!(request_count("middown").await, 2.0);
    assert!(
        seen.borrow()
            .ends_with(&["authenticated".to_owned(), "error".to_owned()]),
        "{:?}",
        seen.borrow()
    );
    assert_no_unhandled_rejection().await;
    drop(auth);
}

#[wasm_bindgen_test]
async fn a_password_is_sent_once_refreshes_use_the_login_session_and_sign_out_ends_it() {
    reset();
    // Every request the module makes to the site's endpoint: method and body.
    eval(
        "window.__sent = []; window.__realFetch = window.fetch;
         window.fetch = function (...args) {
           const request = args[0];
           if (String(request && request.url || request).includes('/test-site/auth')) {
             const copy = request instanceof Request ? request.clone() : null;
             const body = copy ? copy.text() : Promise.resolve(String(args[1] && args[1].body || ''));
             body.then((text) => window.__sent.push([copy ? copy.method : (args[1] && args[1].method) || 'GET', text]));
           }
           return window.__realFetch.apply(this, args);
         };",
    );
    // Two-second tokens: the session refreshes at 80 %.
    let auth = TiledeskAuth::new(&options("pw", "&ttl=2", "")).unwrap();
    let with_password: js_sys::Object =
        JSON::parse(r#"{"credentials": {"email": "ada@example.com", "password": "analytical engine"}}"#)
            .unwrap()
            .unchecked_into();
    settle(auth.sign_in(Some(with_password))).await.unwrap();
    until("window.__sent.length >= 2", 5000, "the refresh's request").await;
    let sent = eval("JSON.stringify(window.__sent.slice(0, 2))")
        .as_string()
        .unwrap();
    assert_eq!(
        sent,
        r#"[["POST","{\"email\":\"ada@example.com\",\"password\":\"analytical engine\"}"],["POST","{}"]]"#,
        "the password once, then the login session"
    );
    // signOut(): the login session ends too (DELETE authUrl), so the next visitor of this browser is not signed in
    // as this one.
    settle(auth.sign_out()).await.unwrap();
    until(
        "window.__sent.some(([method]) => method === 'DELETE')",
        5000,
        "the login session ended",
    )
    .await;
    eval("window.fetch = window.__realFetch;");
}

#[wasm_bindgen_test]
async fn a_message_from_another_tab_never_makes_this_tab_post_its_password() {
    reset();
    eval(
        "window.__sent = []; window.__realFetch = window.fetch;
         window.fetch = function (...args) {
           const request = args[0];
           if (request instanceof Request && request.url.includes('/test-site/auth')) {
             request.clone().text().then((text) => window.__sent.push(text));
           }
           return window.__realFetch.apply(this, args);
         };",
    );
    // A page that gave its credentials to the constructor, not signed in here yet.
    let auth = TiledeskAuth::new(&options(
        "tabbed",
        "",
        r#", "credentials": {"email": "ada@example.com", "password": "analytical engine"}"#,
    ))
    .unwrap();
    // Any script of the origin can post on the channel: "a tab signed someone in".
    eval(&format!(
        "new BroadcastChannel('tiledesk-auth:{PROJECT}').postMessage({{kind: 'signed_in', user: '{PROJECT}_tabbed'}});"
    ));
    until("window.__sent.length >= 1", 5000, "the tab's own token request").await;
    assert_eq!(
        eval("window.__sent[0]").as_string().as_deref(),
        Some("{}"),
        "the login session asked, not the password"
    );
    eval("window.fetch = window.__realFetch;");
    drop(auth);
}

#[wasm_bindgen_test]
async fn a_refresh_the_site_refuses_ends_the_session_and_asks_no_more() {
    reset();
    // Two-second tokens, refreshed at 80 %: the visitor signed out on the site (or changed their password)
    // meanwhile, and the refresh gets 401. On a shared computer the widget must not stay theirs until `exp`.
    let auth = TiledeskAuth::new(&options("loggedout", "&ttl=2&fail_after=1&fail_status=401", "")).unwrap();
    let seen = record_statuses(&auth);
    settle(auth.sign_in(None)).await.unwrap();
    assert!(widget_visible());
    let ended = first_state(&auth, |status| status == "signed_out");
    settle(ended).await.unwrap();
    assert_eq!(
        *seen.borrow(),
        ["loading", "authenticated", "error", "signed_out"],
        "the refusal is told, then the session ends"
    );
    assert_eq!(widget_user().unwrap_or_default(), "", "the widget holds nobody");
    assert!(!widget_visible());
    assert_eq!(stored_token(), None);
    // No retry: the credentials are not posted again (an old tab would spend the account's failure budget). The
    // module retried a failed refresh after 1 s: 2.5 s without a request shows none was made.
    let later: Promise = eval("new Promise((resolve) => setTimeout(resolve, 2500))").unchecked_into();
    settle(later).await.unwrap();
    assert_eq!(request_count("loggedout").await, 2.0);
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("signed_out"));
    assert_no_unhandled_rejection().await;
}

#[wasm_bindgen_test]
async fn on_failure_anonymous_shows_the_widget_once_the_guest_is_online() {
    reset();
    let opts = options("anon", "&expired=true", r#", "onFailure": "anonymous""#);
    // The guest comes online well after signInAnonymous() resolves, as the real widget's chat connection does.
    let auth = TiledeskAuth::new(&with_setting(&opts, "fakeConnectMs", &300.into())).unwrap();
    let online_when_reported = std::rc::Rc::new(std::cell::Cell::new(None));
    let sink = online_when_reported.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |s: JsValue| {
        if text(&s, "status").as_deref() == Some("anonymous") {
            sink.set(Some(widget_user().is_some_and(|u| !u.is_empty())));
        }
    })
    .into_js_value();
    let _ = auth.on_state_change(listener.unchecked_into());
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("anonymous"));
    assert_eq!(
        text(&get(&state, "error"), "code").as_deref(),
        Some("sign_in_rejected")
    );
    assert_eq!(
        online_when_reported.get(),
        Some(true),
        "shown only once the guest is online"
    );
    let guest = text(&state, "userId").unwrap();
    assert!(
        guest.starts_with(PROJECT) && guest != format!("{PROJECT}_anon"),
        "{guest}"
    );
    assert_eq!(widget_user(), Some(guest));
    assert!(widget_visible());
}

#[wasm_bindgen_test]
async fn another_visitors_stored_session_is_removed_even_when_the_sign_in_fails() {
    reset();
    let theirs: Promise = eval(&format!(
        "fetch('{}/test-site/auth?user=someone-else', {{method: 'POST'}}).then(r => r.json()).then(b => b.token)",
        mock()
    ))
    .unchecked_into();
    let theirs = settle(theirs).await.unwrap().as_string().unwrap();
    eval(&format!(
        "localStorage.setItem('widget_sv5_{PROJECT}_tiledeskToken', '{theirs}');
         localStorage.setItem('widget_sv5_{PROJECT}_currentUser', '{{\"_id\":\"{PROJECT}_someone-else\"}}');"
    ));
    // The site refuses this visitor: nothing signs the widget in, and the other visitor's session must be gone,
    // or the next page whose widget starts by itself would sign in as them.
    let auth = TiledeskAuth::new(&options("me", "&status=401", "")).unwrap();
    expect_code(&settle(auth.sign_in(None)).await.unwrap_err(), "auth_rejected");
    assert_eq!(stored_token(), None);
    assert_eq!(
        eval(&format!(
            "localStorage.getItem('widget_sv5_{PROJECT}_currentUser')"
        ))
        .as_string(),
        None
    );
}

#[wasm_bindgen_test]
async fn refreshes_with_a_fresh_token_before_expiry() {
    reset();
    let auth = TiledeskAuth::new(&options("refresh", "&ttl=3", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    let first = get(&state, "expiresAt").as_f64().unwrap();
    let first_token = stored_token().unwrap();
    let refreshed = first_state(&auth, |status| status == "authenticated");
    let next = settle(refreshed).await.unwrap();
    let second = get(&next, "expiresAt").as_f64().unwrap();
    assert!(second > first, "a new token: {first} then {second}");
    assert!(
        second - js_sys::Date::now() / 1000.0 > 1.0,
        "refreshed before the first one expired"
    );
    assert_eq!(request_count("refresh").await, 2.0);
    assert_ne!(
        stored_token().unwrap(),
        first_token,
        "the widget holds the fresh token"
    );
    assert!(widget_visible());
    drop(auth); // stops the next refresh timer
}

#[wasm_bindgen_test]
async fn a_refresh_under_way_at_sign_out_signs_nobody_back_in() {
    reset();
    // Two-second tokens, refreshed at 80 %; each token request takes 600 ms at the site.
    let auth = TiledeskAuth::new(&options("outrun", "&ttl=2&delay_ms=600", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    // From now on, note when the module's token requests are answered.
    eval(
        "window.__answered = 0; window.__realFetch = window.fetch;
         window.fetch = function (...args) {
           const token = String(args[0] && args[0].url || args[0]).includes('/test-site/auth');
           return window.__realFetch.apply(this, args).finally(() => { if (token) window.__answered++; });
         };",
    );
    // The refresh's token request reached the site: the refresh is under way. The visitor signs out meanwhile.
    let count = format!(
        "fetch('{}/test-site/count?user=outrun').then((r) => r.json()).then((b) => b.count)",
        mock()
    );
    until(
        &format!("{count}.then((n) => n >= 2)"),
        5000,
        "the refresh's token request",
    )
    .await;
    let out = settle(auth.sign_out()).await.unwrap();
    assert_eq!(text(&out, "status").as_deref(), Some("signed_out"));
    // The refresh's token arrives after the sign-out: nothing may be signed in with it.
    until("window.__answered >= 1", 5000, "the refresh's token answered").await;
    let after: Promise = eval("new Promise((resolve) => setTimeout(resolve, 0))").unchecked_into();
    settle(after).await.unwrap();
    eval("window.fetch = window.__realFetch;");
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("signed_out"));
    assert_eq!(widget_user().unwrap_or_default(), "", "the widget holds nobody");
    assert_eq!(stored_token(), None);
    assert_eq!(request_count("outrun").await, 2.0, "and nothing asked again");
}

#[wasm_bindgen_test]
async fn after_the_pages_re_init_or_restart_the_same_visitor_is_signed_in_again_on_the_new_widget() {
    for method in ["reInit", "restart"] {
        reset();
        let user = method.to_lowercase();
        let auth = TiledeskAuth::new(&options(&user, "", "")).unwrap();
        settle(auth.sign_in(None)).await.unwrap();
        eval(&format!(
            "window.__oldRoot = window.tiledesk.tiledeskroot; window.Tiledesk('{method}');"
        ));
        until(
            &format!(
                "window.tiledesk.tiledeskroot !== window.__oldRoot
                 && document.getElementById('tiledeskdiv').getAttribute('data-user-id') === '{PROJECT}_{user}'
                 && document.getElementById('tiledeskdiv').style.display === 'block'"
            ),
            5000,
            "the same visitor on the new widget, shown",
        )
        .await;
        assert_eq!(request_count(&user).await, 2.0, "{method}: with a fresh token");
        assert_eq!(text(&auth.state(), "status").as_deref(), Some("authenticated"));
        let out = settle(auth.sign_out()).await.unwrap();
        assert_eq!(text(&out, "status").as_deref(), Some("signed_out"), "{method}");
        assert_eq!(
            widget_user().unwrap_or_default(),
            "",
            "{method}: the new widget logged out"
        );
        assert_eq!(stored_token(), None, "{method}");
    }
}

#[wasm_bindgen_test]
async fn a_session_tiledesk_refuses_after_its_secret_changed_is_signed_in_again() {
    reset();
    let auth = TiledeskAuth::new(&options("rotated", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    // The project's secret is regenerated: the token the widget holds is refused from now on (the site's endpoint,
    // the mock's here, mints with the new one).
    let rotated: Promise = eval(&format!(
        "fetch('{}/test/rotate-secret', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }},
           body: JSON.stringify({{ secret: 'regenerated-' + crypto.randomUUID() }}) }}).then((r) => r.status)",
        mock()
    ))
    .unchecked_into();
    assert_eq!(settle(rotated).await.unwrap().as_f64(), Some(204.0));
    // The widget's connection comes back; its events call with the old token gets a 401, on which the loader would
    // hide and dispose the widget.
    eval("window.tiledesk.__standInReconnect();");
    until(
        &format!(
            "document.getElementById('tiledeskdiv')
             && document.getElementById('tiledeskdiv').getAttribute('data-user-id') === '{PROJECT}_rotated'
             && document.getElementById('tiledeskdiv').style.display === 'block'
             && localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken') !== window.__firstToken"
        )
        .replace("window.__firstToken", &format!("'{}'", stored_token().unwrap())),
        5000,
        "signed in again with a fresh token, the widget kept and shown",
    )
    .await;
    assert_eq!(request_count("rotated").await, 2.0, "one fresh token");
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("authenticated"));
}

#[wasm_bindgen_test]
async fn sign_out_logs_out_clears_and_hides() {
    reset();
    let auth = TiledeskAuth::new(&options("leaving", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    assert!(stored_token().is_some() && widget_visible());
    let state = settle(auth.sign_out()).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("signed_out"));
    assert!(get(&state, "userId").is_null());
    assert_eq!(stored_token(), None);
    assert_eq!(
        eval(&format!(
            "localStorage.getItem('widget_sv5_{PROJECT}_currentUser')"
        ))
        .as_string(),
        None
    );
    assert!(!widget_visible());
}

#[wasm_bindgen_test]
async fn concurrent_sign_ins_make_one_request() {
    reset();
    let auth = TiledeskAuth::new(&options("twice", "", "")).unwrap();
    let (a, b) = (auth.sign_in(None), auth.sign_in(None));
    assert!(
        JsValue::from(a.clone()) == JsValue::from(b.clone()),
        "the same Promise"
    );
    let (a, b) = (settle(a).await.unwrap(), settle(b).await.unwrap());
    assert_eq!(text(&a, "status"), text(&b, "status"));
    assert_eq!(request_count("twice").await, 1.0);
}

#[wasm_bindgen_test]
async fn sign_out_during_sign_in_wins() {
    reset();
    let auth = TiledeskAuth::new(&options("racer", "&delay_ms=300", "")).unwrap();
    let signing_in = auth.sign_in(None);
    let out = settle(auth.sign_out()).await.unwrap();
    assert_eq!(text(&out, "status").as_deref(), Some("signed_out"));
    let state = settle(signing_in).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("signed_out"));
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("signed_out"));
    assert!(!widget_visible());
    assert_eq!(stored_token(), None);
}

#[wasm_bindgen_test]
async fn get_token_callback_with_a_bare_jwt_gets_the_prefix_once() {
    reset();
    let m = mock().to_owned();
    let get_token = Closure::<dyn FnMut() -> Promise>::new(move || {
        eval(&format!(
            "fetch('{m}/test-site/auth?user=callback&bare=true', {{method: 'POST'}}).then(r => r.json()).then(b => b.token)"
        ))
        .unchecked_into()
    })
    .into_js_value();
    let opts = options("unused", "", "");
    Reflect::delete_property::<JsValue>(opts.unchecked_ref(), &"authUrl".into()).unwrap();
    Reflect::set(&opts, &"getToken".into(), &get_token).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert_eq!(text(&state, "userId"), Some(format!("{PROJECT}_callback")));
    let stored = stored_token().unwrap();
    assert!(
        stored.starts_with("JWT ") && !stored.starts_with("JWT JWT"),
        "{stored}"
    );
}

#[wasm_bindgen_test]
fn bad_options_throw_bad_options() {
    for bad in [
        "{}",
        r#"{"projectId": ""}"#,
        r#"{"projectId": "a/b"}"#,
        r#"{"projectId": "p", "authUrl": "/auth", "colour": "red"}"#,
        r#"{"projectId": "p", "timeoutMs": 0}"#,
        r#"{"projectId": "p", "onFailure": "explode"}"#,
        r#"{"projectId": "p", "refresh": "yes"}"#,
        r#"{"projectId": "p", "withCredentials": 1}"#,
        r#"{"projectId": "p", "credentials": [1]}"#,
    ] {
        let error = TiledeskAuth::new(&JSON::parse(bad).unwrap())
            .err()
            .unwrap_or_else(|| panic!("{bad} accepted"));
        expect_code(&error, "bad_options");
    }
    expect_code(
        &TiledeskAuth::new(&JsValue::from("p")).err().unwrap(),
        "bad_options",
    );
    let both = JSON::parse(r#"{"projectId": "p", "authUrl": "/auth"}"#).unwrap();
    Reflect::set(&both, &"getToken".into(), &Function::new_no_args("return 'x'")).unwrap();
    expect_code(&TiledeskAuth::new(&both).err().unwrap(), "bad_options");
}

#[wasm_bindgen_test]
async fn an_unexpected_offline_signs_in_again_with_a_fresh_token() {
    reset();
    let auth = TiledeskAuth::new(&options("dropped", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(request_count("dropped").await, 1.0);
    let online_again: Promise = eval(
        "new Promise((resolve) => window.tiledesk.on('onAuthStateChanged', (e) => {
             if (e.detail.event === 'online' && e.detail.isLogged) resolve(e.detail.user_id);
         }))",
    )
    .unchecked_into();
    // The widget reports the visitor offline though nobody signed out (a dropped chat connection).
    widget_reports("offline");
    let user = settle(online_again).await.unwrap();
    assert_eq!(user.as_string(), Some(format!("{PROJECT}_dropped")));
    assert_eq!(request_count("dropped").await, 2.0, "a fresh token was fetched");
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("authenticated"));
    assert!(widget_visible());
}

#[wasm_bindgen_test]
async fn a_freed_object_leaves_no_listener_or_timer_behind() {
    reset();
    // Refresh due at 80% of 2 s; the positive cases are the offline and refresh tests above.
    let auth = TiledeskAuth::new(&options("freed", "&ttl=2", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    count_fetches();
    drop(auth);
    widget_reports("offline");
    // Timers fire in deadline order: this one runs after the refresh timer would have.
    let later: Promise = eval("new Promise((resolve) => setTimeout(resolve, 2500))").unchecked_into();
    settle(later).await.unwrap();
    let fetches = fetches_counted();
    assert_eq!(fetches, Some(0.0), "no refresh and no re-sign-in after free()");
    assert_eq!(request_count("freed").await, 1.0);
}

#[wasm_bindgen_test]
async fn signing_out_does_not_sign_the_visitor_back_in() {
    reset();
    let auth = TiledeskAuth::new(&options("stays-out", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    count_fetches();
    // The widget's own logout fires `offline`: that is no lost session to restore.
    settle(auth.sign_out()).await.unwrap();
    // A re-sign-in would have called fetch from a microtask queued during the logout.
    let next_task: Promise = eval("new Promise((resolve) => setTimeout(resolve, 0))").unchecked_into();
    settle(next_task).await.unwrap();
    let fetches = fetches_counted();
    assert_eq!(fetches, Some(0.0), "no token request after sign-out");
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("signed_out"));
    assert_eq!(stored_token(), None);
}

/// Tracks the listeners added to and removed from `<chat-root>` elements, by event name.
fn track_root_listeners() {
    eval(
        "window.__live = {};
         if (!window.__realAdd) {
           window.__realAdd = EventTarget.prototype.addEventListener;
           window.__realRemove = EventTarget.prototype.removeEventListener;
         }
         EventTarget.prototype.addEventListener = function (name, f, o) {
           if (this.localName === 'chat-root') (window.__live[name] = window.__live[name] || new Set()).add(f);
           return window.__realAdd.call(this, name, f, o);
         };
         EventTarget.prototype.removeEventListener = function (name, f, o) {
           if (this.localName === 'chat-root' && window.__live[name]) window.__live[name].delete(f);
           return window.__realRemove.call(this, name, f, o);
         };",
    );
}

/// How many listeners for `name` are on `<chat-root>`, counted since [`track_root_listeners`].
fn root_listeners(name: &str) -> f64 {
    eval(&format!(
        "window.__live['{name}'] ? window.__live['{name}'].size : 0"
    ))
    .as_f64()
    .unwrap()
}

fn stop_tracking_root_listeners() {
    eval(
        "EventTarget.prototype.addEventListener = window.__realAdd;
         EventTarget.prototype.removeEventListener = window.__realRemove;",
    );
}

#[wasm_bindgen_test]
async fn listeners_are_removed_from_the_element_the_widget_added_them_to() {
    reset();
    track_root_listeners();
    let auth = TiledeskAuth::new(&options("listener", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(
        root_listeners("onAuthStateChanged"),
        1.0,
        "the module listens on <chat-root>"
    );
    // The loader's own replay hook stays; the module's boot hook removed itself once it ran.
    assert_eq!(root_listeners("onBeforeInit"), 1.0);
    drop(auth);
    assert_eq!(
        root_listeners("onAuthStateChanged"),
        0.0,
        "free() removed it from <chat-root>"
    );
    stop_tracking_root_listeners();
}

#[wasm_bindgen_test]
async fn the_loader_boots_at_once_without_a_visitor_interaction() {
    reset();
    // A loader that would wait a minute for the visitor, as the real one waits 5 s.
    let opts = with_setting(&options("eager", "", ""), "fakeBootDelayMs", &60_000.into());
    let auth = TiledeskAuth::new(&opts).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert!(widget_visible());
}

#[wasm_bindgen_test]
async fn boot_interaction_waits_for_the_visitor_as_tiledesk_does() {
    reset();
    let opts = with_setting(
        &options("patient", "", r#", "boot": "interaction""#),
        "fakeBootDelayMs",
        &60_000.into(),
    );
    Reflect::set(&opts, &"timeoutMs".into(), &JsValue::from(3000)).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    let signing_in = auth.sign_in(None);
    // Nothing boots until the visitor moves: the loader is there and has not created window.tiledesk.
    until(
        "!!document.getElementById('tiledesk-jssdk')",
        2000,
        "the loader inserted",
    )
    .await;
    let early: Promise =
        eval("new Promise((r) => setTimeout(() => r(typeof window.tiledesk), 300))").unchecked_into();
    assert_eq!(
        settle(early).await.unwrap().as_string().as_deref(),
        Some("undefined")
    );
    eval("document.dispatchEvent(new MouseEvent('mousemove'))");
    let state = settle(signing_in).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
}

#[wasm_bindgen_test]
async fn sign_out_settles_within_its_limit_when_the_widgets_logout_never_does() {
    reset();
    // The widget's chat connection never subscribes: its logout() Promise never settles.
    let opts = with_setting(&options("stuck", "", ""), "fakeSubscribeMs", &600_000.into());
    Reflect::set(&opts, &"timeoutMs".into(), &JsValue::from(1500)).unwrap();
    let auth = TiledeskAuth::new(&opts).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    let state = settle(auth.sign_out()).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("signed_out"));
    assert_eq!(stored_token(), None);
    assert!(!widget_visible());
}

#[wasm_bindgen_test]
async fn sign_out_during_the_widgets_sign_in_leaves_it_logged_out() {
    reset();
    // The widget's chat connection comes up 300 ms after its HTTP sign-in: sign out in between.
    let opts = with_setting(&options("half-way", "", ""), "fakeConnectMs", &300.into());
    let auth = TiledeskAuth::new(&opts).unwrap();
    let signing_in = auth.sign_in(None);
    until(
        &format!("!!localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken')"),
        5000,
        "the widget's HTTP sign-in",
    )
    .await;
    eval(
        "window.__onlines = 0;
         window.tiledesk.on('onAuthStateChanged', (e) => { if (e.detail.event === 'online') window.__onlines++; });",
    );
    let out = settle(auth.sign_out()).await.unwrap();
    assert_eq!(text(&out, "status").as_deref(), Some("signed_out"));
    assert_eq!(
        text(&settle(signing_in).await.unwrap(), "status").as_deref(),
        Some("signed_out")
    );
    // The widget completes its sign-in after all; the module logs it out again.
    until("window.__onlines >= 1", 5000, "the widget came online").await;
    until(
        &format!(
            "!document.getElementById('tiledeskdiv').getAttribute('data-user-id')
             && !localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken')"
        ),
        5000,
        "the widget logged out again",
    )
    .await;
    assert!(!widget_visible());
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("signed_out"));
}

#[wasm_bindgen_test]
async fn an_online_report_for_another_visitor_is_not_taken_for_ours() {
    reset();
    install_page_snippet();
    let booted: Promise = eval(
        "new Promise((resolve) => window.Tiledesk('onLoadParams', () => window.tiledesk.on('onBeforeInit', resolve)))",
    )
    .unchecked_into();
    settle(booted).await.unwrap();
    eval("window.tiledeskSettings.fakeConnectMs = 200;");
    // The page signs a guest in itself; the guest comes online while the module waits for its visitor.
    eval("window.tiledesk.signInAnonymous();");
    let auth = TiledeskAuth::new(&options("not-a-guest", "&delay_ms=100", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert_eq!(text(&state, "userId"), Some(format!("{PROJECT}_not-a-guest")));
    assert_eq!(widget_user(), Some(format!("{PROJECT}_not-a-guest")));
}

#[wasm_bindgen_test]
async fn a_refresh_whose_sign_in_fails_once_recovers() {
    reset();
    let auth = TiledeskAuth::new(&options("bumpy", "&ttl=2", "")).unwrap();
    let seen = record_statuses(&auth);
    settle(auth.sign_in(None)).await.unwrap();
    // Tiledesk fails the next sign-in (the refresh at 80% of 2 s): the widget logs itself out and hides.
    let failing: Promise = eval(&format!(
        "fetch('{}/test/sign-in-fails', {{method: 'POST', headers: {{'Content-Type': 'application/json'}},
           body: JSON.stringify({{status: 500, times: 1}})}})",
        mock()
    ))
    .unchecked_into();
    settle(failing).await.unwrap();
    let recovered = first_state(&auth, {
        let mut failed = false;
        move |status| {
            failed |= status == "error";
            failed && status == "authenticated"
        }
    });
    let state = settle(recovered).await.unwrap();
    assert_eq!(text(&state, "userId"), Some(format!("{PROJECT}_bumpy")));
    assert!(widget_visible(), "shown again");
    assert_eq!(widget_user(), Some(format!("{PROJECT}_bumpy")));
    assert_eq!(
        request_count("bumpy").await,
        3.0,
        "the first token, the failed refresh, the retry"
    );
    assert!(
        seen.borrow()
            .starts_with(&["loading".to_owned(), "authenticated".to_owned()])
    );
    drop(auth);
}

#[wasm_bindgen_test]
async fn free_during_a_sign_in_rejects_it_with_aborted() {
    reset();
    let auth = TiledeskAuth::new(&options("freed-early", "&delay_ms=300", "")).unwrap();
    let signing_in = auth.sign_in(None);
    drop(auth);
    expect_code(&settle(signing_in).await.unwrap_err(), "aborted");
    assert_no_unhandled_rejection().await;
}

/// A `getToken` for `user` from the test site.
fn get_token_for(user: &str) -> JsValue {
    eval(&format!(
        "(() => fetch('{}/test-site/auth?user={user}', {{ method: 'POST' }}).then((r) => r.json()))",
        mock()
    ))
}

/// `signIn` options `{ getToken }` for `user`.
fn as_user(user: &str) -> Option<js_sys::Object> {
    let options = js_sys::Object::new();
    Reflect::set(&options, &"getToken".into(), &get_token_for(user)).unwrap();
    Some(options)
}

#[wasm_bindgen_test]
async fn signing_in_as_another_visitor_logs_the_first_out_before() {
    reset();
    // Tiledesk's widget logs the first visitor out by itself; a loader that does not must get the module's logout.
    let opts = with_setting(&options("alice", "", ""), "fakeKeepUserOnSwitch", &JsValue::TRUE);
    let auth = TiledeskAuth::new(&opts).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    eval(
        "window.__events = [];
         window.tiledesk.on('onAuthStateChanged', (e) => window.__events.push(e.detail.event + ':' + (e.detail.user_id || '')));",
    );
    let state = settle(auth.sign_in(as_user("bob"))).await.unwrap();
    let bob = format!("{PROJECT}_bob");
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    assert_eq!(text(&state, "userId"), Some(bob.clone()));
    assert_eq!(widget_user(), Some(bob.clone()));
    assert!(widget_visible());
    let events: Vec<String> = JSON::stringify(&eval("window.__events"))
        .unwrap()
        .as_string()
        .map(|s| serde_like_list(&s))
        .unwrap();
    let offline = events.iter().position(|e| e.starts_with("offline"));
    let online_bob = events.iter().position(|e| *e == format!("online:{bob}"));
    assert!(
        matches!((offline, online_bob), (Some(o), Some(b)) if o < b),
        "alice logged out before bob signed in: {events:?}"
    );
    assert_eq!(
        request_count("alice").await,
        1.0,
        "alice's source was not asked again"
    );
}

/// `["a","b"]` as a list of strings (the events hold no quotes or commas).
fn serde_like_list(json: &str) -> Vec<String> {
    json.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_matches('"').to_owned())
        .collect()
}

#[wasm_bindgen_test]
async fn a_sign_in_as_someone_else_replaces_the_one_under_way() {
    reset();
    let auth = TiledeskAuth::new(&options("slowpoke", "&delay_ms=400", "")).unwrap();
    let first = auth.sign_in(None);
    let second = auth.sign_in(as_user("quick"));
    let state = settle(second).await.unwrap();
    assert_eq!(text(&state, "userId"), Some(format!("{PROJECT}_quick")));
    expect_code(&settle(first).await.unwrap_err(), "aborted");
    assert_eq!(widget_user(), Some(format!("{PROJECT}_quick")));
}

#[wasm_bindgen_test]
async fn sign_in_options_are_checked_like_the_constructors() {
    reset();
    let auth = TiledeskAuth::new(&options("checked", "", "")).unwrap();
    for (bad, says) in [
        (r#"{"colour": "red"}"#, "unknown option `colour`"),
        (r#"{"projectId": "p"}"#, "not of signIn()"),
        (r#"{"credentials": [1]}"#, "`credentials` must be an object"),
    ] {
        let error = settle(auth.sign_in(Some(JSON::parse(bad).unwrap().unchecked_into())))
            .await
            .unwrap_err();
        expect_code(&error, "bad_options");
        let message = text(&error, "message").unwrap();
        assert!(message.contains(says), "{bad}: {message}");
    }
    let both: js_sys::Object = JSON::parse(r#"{"credentials": {"a": 1}}"#)
        .unwrap()
        .unchecked_into();
    Reflect::set(&both, &"getToken".into(), &get_token_for("x")).unwrap();
    expect_code(
        &settle(auth.sign_in(Some(both))).await.unwrap_err(),
        "bad_options",
    );
    assert_eq!(request_count("checked").await, 0.0, "nothing was asked");
    assert_eq!(text(&auth.state(), "status").as_deref(), Some("idle"));
}

#[wasm_bindgen_test]
fn bad_options_say_which_key_and_why() {
    for (bad, says) in [
        (
            r#"{"projectId": "p", "refresh": "yes"}"#,
            "`refresh` must be a boolean",
        ),
        (
            r#"{"projectId": "p", "withCredentials": 1}"#,
            "`withCredentials` must be a boolean",
        ),
        (
            r#"{"projectId": "p", "timeoutMs": "5"}"#,
            "`timeoutMs` must be a number of milliseconds",
        ),
        (
            r#"{"projectId": "p", "boot": 1}"#,
            r#"`boot` must be one of "now", "interaction""#,
        ),
        (
            r#"{"projectId": "p", "syncTabs": 0}"#,
            "`syncTabs` must be a boolean",
        ),
        (r#"{"projectId": 7}"#, "`projectId` must be a string"),
        (
            r#"{"projectId": "p", "colour": "red"}"#,
            "unknown option `colour` (known: projectId, authUrl",
        ),
    ] {
        let error = TiledeskAuth::new(&JSON::parse(bad).unwrap()).err().unwrap();
        let message = text(&error, "message").unwrap();
        assert!(message.contains(says), "{bad}: {message}");
    }
    let secret = r#"{"projectId": "p", "widgetUrl": 987654321}"#;
    let message = text(
        &TiledeskAuth::new(&JSON::parse(secret).unwrap()).err().unwrap(),
        "message",
    )
    .unwrap();
    assert!(
        message.contains("`widgetUrl` must be a string") && !message.contains("987654321"),
        "the value is never shown: {message}"
    );
}

/// The site's other tabs, as a test sees them: a `BroadcastChannel` of the project's name.
fn other_tab() -> JsValue {
    eval(&format!(
        "(() => {{ const c = new BroadcastChannel('tiledesk-auth:{PROJECT}'); c.heard = [];
                  c.onmessage = (e) => c.heard.push(e.data); return c; }})()"
    ))
}

#[wasm_bindgen_test]
async fn tabs_hear_each_sign_in_and_sign_out_and_follow_them() {
    reset();
    let tab = other_tab();
    let auth = TiledeskAuth::new(&options("tabby", "", "")).unwrap();
    settle(auth.sign_in(None)).await.unwrap();
    let tabby = format!("{PROJECT}_tabby");
    window_set("__tab", &tab);
    until(
        &format!("window.__tab.heard.some((m) => m.kind === 'signed_in' && m.user === '{tabby}')"),
        2000,
        "the other tab hears the sign-in, with the visitor's chat id",
    )
    .await;

    // Another tab signs out: this one does too.
    let out = first_state(&auth, |s| s == "signed_out");
    eval("window.__tab.postMessage({ kind: 'signed_out' })");
    settle(out).await.unwrap();
    assert!(!widget_visible());
    assert_eq!(stored_token(), None);

    // Another tab signs the same visitor in: this one signs in too, with a token request of its own.
    let back = first_state(&auth, |s| s == "authenticated");
    eval(&format!(
        "window.__tab.postMessage({{ kind: 'signed_in', user: '{tabby}' }})"
    ));
    let state = settle(back).await.unwrap();
    assert_eq!(text(&state, "userId"), Some(tabby));
    assert!(widget_visible());
    assert_eq!(request_count("tabby").await, 2.0);
    eval("window.__tab.close()");
}

#[wasm_bindgen_test]
fn sync_tabs_false_opens_no_channel_to_the_other_tabs() {
    reset();
    // Counts the channels opened from now on, by name.
    eval(
        "window.__channels = []; window.__RealChannel = window.BroadcastChannel;
         window.BroadcastChannel = function (name) { window.__channels.push(name); return new window.__RealChannel(name); };",
    );
    let alone = TiledeskAuth::new(&options("loner", "", r#", "syncTabs": false"#)).unwrap();
    let together = TiledeskAuth::new(&options("friend", "", "")).unwrap();
    let opened = JSON::stringify(&eval("window.__channels")).unwrap().as_string();
    eval("window.BroadcastChannel = window.__RealChannel;");
    assert_eq!(
        opened,
        Some(format!(r#"["tiledesk-auth:{PROJECT}"]"#)),
        "one channel, the second object's"
    );
    drop((alone, together));
}

fn window_set(name: &str, value: &JsValue) {
    Reflect::set(&web_sys::window().unwrap(), &name.into(), value).unwrap();
}

/// The token endpoint on another origin (the mock's, from the test runner's page) gets the browser's cookies by
/// default, and none with `withCredentials: false`. Cookies belong to the host, not the port: one set by this page is
/// the mock's too.
#[wasm_bindgen_test]
async fn cookies_go_to_a_cross_origin_endpoint_unless_with_credentials_is_false() {
    reset();
    eval("document.cookie = 'site_session=1; path=/'");
    let auth = TiledeskAuth::new(&options("cookied", "&cookie=site_session", "")).unwrap();
    let state = settle(auth.sign_in(None)).await.unwrap();
    assert_eq!(text(&state, "status").as_deref(), Some("authenticated"));
    settle(auth.sign_out()).await.unwrap();
    drop(auth);

    reset();
    let auth = TiledeskAuth::new(&options(
        "cookieless",
        "&cookie=site_session",
        r#", "withCredentials": false"#,
    ))
    .unwrap();
    let error = settle(auth.sign_in(None)).await.unwrap_err();
    expect_code(&error, "auth_rejected");
    drop(auth);
    eval("document.cookie = 'site_session=; path=/; max-age=0'");
}
