//! What the page does to Tiledesk's real widget behind the module's back, through the widget's own API: `reInit` and
//! `restart` (a new widget replaces the old one), `logout` and `dispose`; and a page that keeps no reference to the
//! module's object while its session runs.
//!
//! Needs what `cargo xtask test` builds first: the binaries, the package and the widget.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use serde_json::{Value, json};
use tiledesk_e2e::{Browser, PROJECT, Stack};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "analytical engine";

/// A stack with Ada, and a browser on the harness page where she signed in; her chat id and the state.
async fn ada_signed_in(server_args: &[&str]) -> (Stack, String, Browser, Value) {
    let stack = Stack::start(server_args);
    let chat_id = Stack::chat_id(&stack.add_user(EMAIL, "Ada", PASSWORD));
    let browser = Browser::open().await;
    browser
        .harness(&stack, &stack.options(EMAIL, PASSWORD, &json!({})))
        .await;
    let outcome = browser.js("return window.harness.signIn();").await;
    assert_eq!(outcome["state"]["status"], json!("authenticated"), "{outcome}");
    browser.expect_widget(Some(&chat_id), true).await;
    (stack, chat_id, browser, outcome["state"].clone())
}

/// The page calls `window.Tiledesk(method)` on the booted widget, as Tiledesk's docs show.
async fn page_calls(browser: &Browser, method: &str) {
    browser
        .js(&format!("window.Tiledesk('{method}'); return true;"))
        .await;
}

fn stored_token(project: &str) -> String {
    format!("localStorage.getItem('widget_sv5_{project}_tiledeskToken')")
}

/// The sign-ins Tiledesk (the mock) has answered so far.
fn sign_ins(stack: &Stack) -> usize {
    stack
        .mock_requests()
        .iter()
        .filter(|r| r.ends_with("/auth/signinWithCustomToken"))
        .count()
}

/// After `reInit` or `restart`, a new `<chat-root>` and a new `window.tiledesk` without the visitor: the module
/// listens to the new widget and signs the same visitor in again, and a later `signOut()` still logs them out.
async fn replaced_widget_comes_back_signed_in(method: &str) {
    let (_stack, chat_id, browser, first) = ada_signed_in(&[]).await;
    browser
        .js("window.oldRoot = window.tiledesk.tiledeskroot; return true;")
        .await;
    page_calls(&browser, method).await;
    browser
        .until(
            &format!(
                "window.tiledesk.tiledeskroot !== window.oldRoot && widget().user === '{chat_id}' && widget().shown"
            ),
            "the new widget online as the same visitor, and shown",
        )
        .await;
    let state = browser.js("return window.auth.state;").await;
    assert_eq!(state["status"], json!("authenticated"), "{state}");
    assert_eq!(state["userId"], json!(chat_id));
    assert!(
        state["expiresAt"].as_f64() >= first["expiresAt"].as_f64(),
        "signed in with a fresh token: {state} after {first}"
    );
    let out = browser.js("return window.harness.signOut();").await;
    assert_eq!(out["state"]["status"], json!("signed_out"), "{out}");
    browser
        .until(
            &format!(
                "!widget().logged && !widget().shown && !{}",
                stored_token(PROJECT)
            ),
            "the new widget logged out by signOut()",
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn after_the_pages_re_init_the_same_visitor_is_back_and_sign_out_still_works() {
    replaced_widget_comes_back_signed_in("reInit").await;
}

#[tokio::test]
async fn after_the_pages_restart_the_same_visitor_is_back_and_sign_out_still_works() {
    replaced_widget_comes_back_signed_in("restart").await;
}

/// The page's own `logout` or `dispose`: the module reports `signed_out` and does not sign the visitor back in,
/// neither at once nor when the session's refresh would have been due.
#[tokio::test]
async fn the_pages_own_logout_and_dispose_are_signed_out_and_not_fought() {
    // 4-second tokens: a refresh would come at 3.2 s.
    let (stack, _, browser, _) = ada_signed_in(&["--token-ttl", "4s"]).await;
    for method in ["logout", "dispose"] {
        if method == "dispose" {
            let again = browser.js("return window.harness.signIn();").await;
            assert_eq!(again["state"]["status"], json!("authenticated"), "{again}");
        }
        let expires = browser
            .js("return window.auth.state.expiresAt;")
            .await
            .as_f64()
            .unwrap();
        let before = sign_ins(&stack);
        page_calls(&browser, method).await;
        browser
            .until(
                "window.auth.state.status === 'signed_out' && window.states.at(-1).status === 'signed_out'",
                &format!("signed_out after the page's {method}"),
            )
            .await;
        // Past the moment the refresh of that session was due, and the token's expiry: nothing signed in again.
        browser
            .until(
                &format!("Date.now() / 1000 > {expires} + 1"),
                "the token's expiry passed",
            )
            .await;
        assert_eq!(sign_ins(&stack), before, "no sign-in after the page's {method}");
        assert_eq!(
            browser.js("return window.auth.state.status;").await,
            json!("signed_out"),
            "{method}"
        );
        let gone = if method == "logout" {
            // The widget logged its visitor out.
            "!widget().logged"
        } else {
            // The widget's container went with dispose (its app's objects stay in memory, unseen).
            "!document.getElementById('tiledesk-container')"
        };
        browser
            .until(gone, &format!("the widget's state after the page's {method}"))
            .await;
        assert_eq!(
            browser.js(&format!("return {};", stored_token(PROJECT))).await,
            Value::Null,
            "no stored session left after the page's {method}"
        );
    }
    browser.close().await;
}

/// `new TiledeskAuth(options).signIn()` with no reference kept: the garbage collector takes the page's object, and
/// the session goes on, refreshed on time.
#[tokio::test]
async fn an_object_the_page_does_not_keep_refreshes_its_session_after_garbage_collection() {
    let stack = Stack::start(&["--token-ttl", "10s"]);
    let chat_id = Stack::chat_id(&stack.add_user(EMAIL, "Ada", PASSWORD));
    let browser = Browser::open().await;
    browser.client.goto(&stack.url("harness.html")).await.unwrap();
    let options = stack.options(EMAIL, PASSWORD, &json!({}));
    browser
        .client
        .execute(
            "return window.harness.startUnreferenced(arguments[0]);",
            vec![options],
        )
        .await
        .unwrap();
    let outcome = browser.js("return window.pending;").await;
    assert_eq!(outcome["state"]["status"], json!("authenticated"), "{outcome}");
    let expires = outcome["state"]["expiresAt"].as_f64().unwrap();
    browser
        .until(
            "(window.gc(), window.collected)",
            "the page's object garbage-collected",
        )
        .await;
    // The refresh at 80% of 10 s, after the collection.
    browser
        .until(
            &format!("window.states.some((s) => s.status === 'authenticated' && s.expiresAt > {expires})"),
            "the session refreshed after the object was collected",
        )
        .await;
    browser.expect_widget(Some(&chat_id), true).await;
    browser.close().await;
}

/// Tiledesk regenerates the project's secret with the visitor online, as its docs warn: every token signed with the
/// old one is refused, and the widget's session with it. The module signs the visitor in again, with a growing pause
/// while the service still has the old secret, and the same visitor is back, on the same page, once it has the new.
#[tokio::test]
async fn after_tiledesk_regenerates_the_secret_the_visitor_is_back_once_the_service_has_the_new_one() {
    const NEW_SECRET: &str = "regenerated-7d41b0e2-9c35-4f0e-8a6b-51c2d9e3f804";
    let (mut stack, chat_id, browser, _) = ada_signed_in(&[]).await;
    browser.js("window.samePage = true; return true;").await;
    let before = sign_ins(&stack);
    assert_eq!(
        stack.mock_post("/test/rotate-secret", &json!({"secret": NEW_SECRET})),
        204
    );
    // Tiledesk drops the visitor's connection: the widget reconnects, reports the visitor online, and Tiledesk
    // refuses its session token; Tiledesk's loader then hides and disposes the widget.
    stack.broker.stop();
    stack.broker.restart();
    browser
        .until(
            "window.states.some((s) => s.status === 'error' && s.error.code === 'sign_in_rejected')",
            "the refused session reported",
        )
        .await;
    // The service still signs with the old secret: each try is refused, and the pauses between them grow (1 s, 2 s).
    let deadline = std::time::Instant::now() + tiledesk_e2e::WAIT;
    let mut first_try = None;
    while sign_ins(&stack) < before + 3 {
        if first_try.is_none() && sign_ins(&stack) > before {
            first_try = Some(std::time::Instant::now());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "three tries with the old secret"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await; // polling the mock's log, not a pause
    }
    let spread = first_try.expect("a first try").elapsed();
    assert!(
        spread >= std::time::Duration::from_millis(2500),
        "no tight loop: three tries within {spread:?}"
    );
    assert_eq!(
        browser
            .js("return !!document.getElementById('tiledesk-container');")
            .await,
        json!(true),
        "the widget was not disposed"
    );
    // The site gives the service the new secret, as the README says: the file replaced, then SIGHUP.
    stack.reload_secret(NEW_SECRET);
    browser
        .until(
            &format!(
                "window.samePage && window.auth.state.status === 'authenticated' && widget().user === '{chat_id}' && widget().shown"
            ),
            "the same visitor back in the widget, on the same page",
        )
        .await;
    browser.close().await;
}
