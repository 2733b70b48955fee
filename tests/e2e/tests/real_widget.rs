//! The module against Tiledesk's real widget, through the harness page (`tests/e2e/pages`): refresh, failures
//! of Tiledesk and of the broker, sign-out races, stored sessions, listeners, anonymous fallback, the page's own
//! snippet. Each case is one the stand-in could not judge.
//!
//! Needs what `cargo xtask test` builds first: the binaries, the package and the widget.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use serde_json::{Value, json};
use tiledesk_e2e::{Browser, PROJECT, Stack};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine";

/// A stack with Ada, and a browser on the harness page with options for her merged with `extra`.
async fn ada(server_args: &[&str], extra: &Value) -> (Stack, String, Browser) {
    let stack = Stack::start(server_args);
    let user = stack.add_user(EMAIL, "Ada", PASSWORD);
    let browser = Browser::open().await;
    browser
        .harness(&stack, &stack.options(EMAIL, PASSWORD, extra))
        .await;
    (stack, Stack::chat_id(&user), browser)
}

async fn sign_in(browser: &Browser) -> Value {
    browser.js("return window.harness.signIn();").await
}

fn status(outcome: &Value) -> &str {
    outcome["state"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("{outcome}"))
}

/// The statuses the module reported so far.
async fn statuses(browser: &Browser) -> Vec<String> {
    let value = browser.js("return window.states.map((s) => s.status);").await;
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_refresh_keeps_the_visitor_online_through_the_re_sign_in() {
    let (_stack, chat_id, browser) = ada(&["--token-ttl", "20s"], &json!({})).await;
    let first = sign_in(&browser).await;
    assert_eq!(status(&first), "authenticated");
    let expires = first["state"]["expiresAt"].as_f64().unwrap();
    // At 80% of 20 s the module signs in again with a fresh token.
    browser
        .until(
            &format!("window.states.some((s) => s.status === 'authenticated' && s.expiresAt > {expires})"),
            "a refreshed token",
        )
        .await;
    browser.expect_widget(Some(&chat_id), true).await;
    assert_eq!(
        statuses(&browser).await,
        ["loading", "authenticated", "authenticated"]
    );
    browser.close().await;
}

#[tokio::test]
async fn a_refresh_whose_sign_in_fails_once_recovers() {
    let (stack, chat_id, browser) = ada(&["--token-ttl", "10s"], &json!({})).await;
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    // Tiledesk answers the next sign-in (the refresh at 8 s) with a 500: the widget logs itself out and hides.
    assert_eq!(
        stack.mock_post("/test/sign-in-fails", &json!({"status": 500, "times": 1})),
        204
    );
    browser
        .until(
            "window.states.slice(2).some((s) => s.status === 'authenticated')",
            "signed in again after the failed refresh",
        )
        .await;
    browser.expect_widget(Some(&chat_id), true).await;
    let seen = statuses(&browser).await;
    assert!(
        seen.contains(&"error".to_owned()),
        "the failure was reported: {seen:?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn tiledesk_refusing_the_token_is_sign_in_rejected() {
    // The service signs with a secret that is not the project's: Tiledesk answers 401.
    let (_stack, _, browser) = ada(
        &["--secret", "not-the-projects-secret-at-all-3f1c9a52"],
        &json!({}),
    )
    .await;
    let outcome = sign_in(&browser).await;
    assert_eq!(outcome["error"]["code"], json!("sign_in_rejected"), "{outcome}");
    browser.expect_widget(None, false).await;
    browser.close().await;
}

#[tokio::test]
async fn the_broker_down_through_a_refresh_and_past_expiry_then_back_ends_signed_in() {
    // 10 s tokens, 2 s steps: the outage spans the refresh at 8 s and the first token's expiry.
    let (mut stack, chat_id, browser) = ada(&["--token-ttl", "10s"], &json!({"timeoutMs": 2000})).await;
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    // The widget reports nothing when its chat connection drops: the refresh is what finds out.
    stack.broker.stop();
    browser
        .until(
            "window.states.some((s) => s.status === 'error')",
            "the failed refresh reported",
        )
        .await;
    let failure = browser
        .js("return window.states.find((s) => s.status === 'error').error.code;")
        .await;
    assert_eq!(failure, json!("timeout"), "no online report without a broker");
    stack.broker.restart();
    browser
        .until(
            &format!(
                "window.auth.state.status === 'authenticated' && widget().user === '{chat_id}' && widget().shown"
            ),
            "signed in and shown again",
        )
        .await;
    let state = browser.js("return window.auth.state;").await;
    let now = browser.js("return Date.now() / 1000;").await.as_f64().unwrap();
    assert!(
        state["expiresAt"].as_f64().unwrap() > now,
        "on a token that has not expired: {state}"
    );
    browser.close().await;
}

#[tokio::test]
async fn sign_out_during_sign_in_leaves_the_widget_logged_out() {
    let (stack, _, browser) = ada(&[], &json!({})).await;
    // The widget's chat connection starts 1.5 s after its HTTP sign-in: the visitor signs out in between.
    assert_eq!(
        stack.mock_post("/test/chat-token-delay", &json!({"ms": 1500})),
        204
    );
    browser.js("window.harness.startSignIn(); return true;").await;
    // The widget has its session (its HTTP sign-in is done); its chat connection is held back.
    browser
        .until(
            &format!("!!localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken')"),
            "the widget's sign-in under way",
        )
        .await;
    let out = browser
        .js("window.onlines = 0;
             window.tiledesk.on('onAuthStateChanged', (e) => { if (e.detail.event === 'online') window.onlines++; });
             return window.harness.signOut();")
        .await;
    assert_eq!(status(&out), "signed_out");
    let pending = browser.js("return window.pending;").await;
    assert_eq!(status(&pending), "signed_out");
    // The widget completes its sign-in after all, comes online, and the module logs it out again.
    browser
        .until("window.onlines >= 1", "the widget came online")
        .await;
    browser
        .until(
            &format!(
                "!widget().logged && !widget().shown && !localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken')"
            ),
            "the widget logged out",
        )
        .await;
    assert_eq!(
        browser.js("return window.auth.state.status;").await,
        json!("signed_out")
    );
    browser.close().await;
}

/// A stack with Grace and Ada, and a browser on the harness page where Grace signed in; their chat ids.
async fn grace_signed_in() -> (Stack, String, String, Browser) {
    let stack = Stack::start(&[]);
    let grace = Stack::chat_id(&stack.add_user("grace@example.com", "Grace", "compiler"));
    let ada = Stack::chat_id(&stack.add_user(EMAIL, "Ada", PASSWORD));
    let browser = Browser::open().await;
    browser
        .harness(
            &stack,
            &stack.options("grace@example.com", "compiler", &json!({})),
        )
        .await;
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    (stack, grace, ada, browser)
}

#[tokio::test]
async fn a_stored_session_of_another_visitor_is_replaced_by_the_new_one() {
    // An earlier visit: Grace signed in and left without signing out.
    let (stack, grace, ada, browser) = grace_signed_in().await;
    // Her widget fetches her conversations once online: those requests are part of her visit.
    stack
        .wait_for_request(&format!("{grace}/conversations/archived"))
        .await;
    let requests_before: usize = stack.mock_requests().len();
    // Now Ada, on the same browser.
    browser
        .harness(&stack, &stack.options(EMAIL, PASSWORD, &json!({})))
        .await;
    let outcome = sign_in(&browser).await;
    assert_eq!(outcome["state"]["userId"], json!(ada));
    assert_eq!(browser.widget().await["user"], json!(ada));
    let later = &stack.mock_requests()[requests_before..];
    assert!(
        !later.iter().any(|r| r.contains(&grace)),
        "nothing of Grace's was asked for on Ada's visit: {later:?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn sign_out_settles_with_the_broker_stopped() {
    let (mut stack, _, browser) = ada(&[], &json!({"timeoutMs": 2000})).await;
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    stack.broker.stop();
    // The widget's logout() cannot close a connection that is gone; signOut() must settle regardless.
    let out = browser
        .js("return Promise.race([window.harness.signOut(), new Promise((r) => setTimeout(() => r('never settled'), 10000))]);")
        .await;
    assert_eq!(status(&out), "signed_out", "{out}");
    assert_eq!(
        browser
            .js(&format!(
                "return localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken');"
            ))
            .await,
        Value::Null
    );
    assert_eq!(browser.widget().await["shown"], json!(false));
    browser.close().await;
}

#[tokio::test]
async fn after_free_no_widget_event_reaches_the_module() {
    let stack = Stack::start(&[]);
    stack.add_user(EMAIL, "Ada", PASSWORD);
    let browser = Browser::open().await;
    browser.client.goto(&stack.url("harness.html")).await.unwrap();
    // Count the onAuthStateChanged listeners on <chat-root> (where window.tiledesk.on puts them).
    browser
        .js("window.live = new Set();
             const add = EventTarget.prototype.addEventListener, remove = EventTarget.prototype.removeEventListener;
             EventTarget.prototype.addEventListener = function (n, f, o) {
               if (this.localName === 'chat-root' && n === 'onAuthStateChanged') window.live.add(f);
               return add.call(this, n, f, o);
             };
             EventTarget.prototype.removeEventListener = function (n, f, o) {
               if (this.localName === 'chat-root' && n === 'onAuthStateChanged') window.live.delete(f);
               return remove.call(this, n, f, o);
             };
             return true;")
        .await;
    browser.create(&stack.options(EMAIL, PASSWORD, &json!({}))).await;
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    let with_module = browser.js("return window.live.size;").await.as_u64().unwrap();
    browser.js("window.harness.free(); return true;").await;
    let after = browser.js("return window.live.size;").await.as_u64().unwrap();
    assert_eq!(
        after + 1,
        with_module,
        "free() removed the module's listener, and only it"
    );
    browser.close().await;
}

#[tokio::test]
async fn on_failure_anonymous_with_the_token_service_down_shows_the_widget_to_a_guest() {
    let (_stack, chat_id, browser) = ada(
        &[],
        &json!({"authUrl": "http://127.0.0.1:9/auth", "onFailure": "anonymous"}),
    )
    .await;
    let outcome = sign_in(&browser).await;
    assert_eq!(status(&outcome), "anonymous", "{outcome}");
    assert_eq!(outcome["state"]["error"]["code"], json!("network"));
    let guest = outcome["state"]["userId"].as_str().unwrap().to_owned();
    assert!(guest.starts_with(PROJECT) && guest != chat_id, "{guest}");
    browser.expect_widget(Some(&guest), true).await;
    browser.close().await;
}

#[tokio::test]
async fn a_page_with_tiledesks_standard_snippet() {
    let stack = Stack::start(&[]);
    let chat_id = Stack::chat_id(&stack.add_user(EMAIL, "Ada", PASSWORD));
    let browser = Browser::open().await;
    browser.client.goto(&stack.url("harness.html")).await.unwrap();
    // Tiledesk's snippet, as its documentation gives it, with this project and the widget's URL.
    browser
        .js(&format!(
            "window.tiledeskSettings = {{ projectid: '{PROJECT}' }};
             (function(d, s, id) {{ var w = window; var i = function() {{ i.c(arguments); }}; i.q = []; i.c = function(args) {{ i.q.push(args); }};
               w.Tiledesk = i; var js, fjs = d.getElementsByTagName(s)[0]; if (d.getElementById(id)) return;
               js = d.createElement(s); js.id = id; js.async = true; js.src = '{}/widget/launch.js'; fjs.parentNode.insertBefore(js, fjs);
             }}(document, 'script', 'tiledesk-jssdk'));
             return true;",
            stack.mock_url
        ))
        .await;
    browser.create(&stack.options(EMAIL, PASSWORD, &json!({}))).await;
    let outcome = sign_in(&browser).await;
    assert_eq!(outcome["state"]["userId"], json!(chat_id), "{outcome}");
    browser.expect_widget(Some(&chat_id), true).await;
    assert_eq!(
        browser
            .js("return document.querySelectorAll('#tiledesk-jssdk').length;")
            .await,
        json!(1),
        "no second loader"
    );
    browser.close().await;
}

#[tokio::test]
async fn signing_in_as_another_visitor_leaves_nothing_of_the_first_on_screen_or_on_the_wire() {
    let (stack, grace, ada, browser) = grace_signed_in().await;
    // Grace has a conversation on screen.
    browser.open_widget().await;
    browser.send_message("A private question from Grace").await;
    browser
        .until(
            "widget().text.includes('A private question from Grace')",
            "Grace's message on screen",
        )
        .await;
    let requests_before = stack.mock_requests().len();
    browser
        .js(
            "window.events = []; window.tiledesk.on('onAuthStateChanged', (e) => \
             window.events.push(e.detail.event + ':' + (e.detail.user_id || ''))); return true;",
        )
        .await;
    // A single-page app: Ada signs in on the same page, no reload.
    let outcome = browser
        .client
        .execute(
            "return window.harness.signInWith(arguments[0]);",
            vec![json!({"credentials": {"email": EMAIL, "password": PASSWORD}})],
        )
        .await
        .unwrap();
    assert_eq!(outcome["state"]["userId"], json!(ada), "{outcome}");
    browser.expect_widget(Some(&ada), true).await;
    // Her widget has asked for her conversations: what it shows is hers.
    stack
        .wait_for_request(&format!("{ada}/conversations/archived"))
        .await;
    let widget = browser.widget().await;
    assert!(
        !widget["text"]
            .as_str()
            .unwrap()
            .contains("A private question from Grace"),
        "none of Grace's conversation on Ada's screen: {widget}"
    );
    let later = &stack.mock_requests()[requests_before..];
    assert!(
        !later.iter().any(|r| r.contains(&grace)),
        "nothing of Grace's asked for once Ada signed in: {later:?}"
    );
    // Grace was logged out first, and the refreshes are Ada's.
    assert_eq!(
        statuses(&browser).await,
        ["loading", "authenticated", "loading", "authenticated"]
    );
    browser.close().await;
}

#[tokio::test]
async fn two_tabs_sign_in_and_out_together() {
    let stack = Stack::start(&[]);
    let ada = Stack::chat_id(&stack.add_user(EMAIL, "Ada", PASSWORD));
    let browser = Browser::open().await;
    let options = stack.options(EMAIL, PASSWORD, &json!({}));
    browser.harness(&stack, &options).await;
    let first = browser.client.window().await.unwrap();
    // A second tab of the same site, with its own TiledeskAuth that has not signed in.
    let second = browser.client.new_window(true).await.unwrap().handle;
    browser.client.switch_to_window(second.clone()).await.unwrap();
    browser.harness(&stack, &options).await;

    // Signing in in the first tab signs the second in, with a token of its own.
    browser.client.switch_to_window(first.clone()).await.unwrap();
    assert_eq!(status(&sign_in(&browser).await), "authenticated");
    browser.client.switch_to_window(second.clone()).await.unwrap();
    browser
        .until(
            "window.states.some((s) => s.status === 'authenticated')",
            "the second tab signed in",
        )
        .await;
    browser
        .until(
            &format!("widget().user === '{ada}' && widget().shown"),
            "the second tab's widget shows Ada",
        )
        .await;

    // Signing out in the second tab signs the first out: widget logged out and hidden, stored session gone.
    let out = browser.js("return window.harness.signOut();").await;
    assert_eq!(status(&out), "signed_out");
    browser.client.switch_to_window(first).await.unwrap();
    browser
        .until(
            "window.states.some((s) => s.status === 'signed_out') && !widget().logged && !widget().shown",
            "the first tab signed out",
        )
        .await;
    let stored = browser
        .js(&format!(
            "return localStorage.getItem('widget_sv5_{PROJECT}_tiledeskToken');"
        ))
        .await;
    assert_eq!(stored, Value::Null);
    browser.close().await;
}
