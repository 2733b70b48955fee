//! The demo page end to end with Tiledesk's real widget: the real `tiledesk-auth` binary serving the page and
//! `/auth`, the mock Tiledesk serving the widget built from Tiledesk's source, Debian's mosquitto carrying the chat,
//! and Debian's Chromium driven through chromedriver, a fresh profile per browser.
//!
//! Needs what `cargo xtask test` builds first: the binaries, the package in `target/pkg` and the widget in
//! `target/tiledesk-widget/dist`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use fantoccini::Locator;
use serde_json::json;
use tiledesk_e2e::{Browser, Stack, WAIT};

const EMAIL: &str = "andrew@scientists.com";
const PASSWORD: &str = "correct horse battery staple";

/// What the demo tests do with a browser.
trait DemoBrowser {
    async fn sign_in(&self, stack: &Stack, password: &str);
    async fn click(&self, at: Locator<'_>);
    async fn type_into(&self, at: Locator<'_>, text: &str);
    async fn wait_status(&self, status: &str);
    async fn stored_tokens(&self) -> u64;
    async fn text(&self, id: &str) -> String;
}

impl DemoBrowser for Browser {
    async fn sign_in(&self, stack: &Stack, password: &str) {
        self.client.goto(&stack.url("")).await.unwrap();
        // The button is enabled once the module is ready.
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#sign-in:not([disabled])"))
            .await
            .unwrap();
        self.type_into(Locator::Id("email"), EMAIL).await;
        self.type_into(Locator::Id("password"), password).await;
        self.click(Locator::Id("sign-in")).await;
    }

    async fn click(&self, at: Locator<'_>) {
        self.client.find(at).await.unwrap().click().await.unwrap();
    }

    async fn type_into(&self, at: Locator<'_>, text: &str) {
        self.client.find(at).await.unwrap().send_keys(text).await.unwrap();
    }

    async fn wait_status(&self, status: &str) {
        let css = format!("#status[data-status='{status}']");
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&css))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
    }

    async fn stored_tokens(&self) -> u64 {
        self.js("return Object.keys(localStorage).filter((k) => k.endsWith('_tiledeskToken')).length;")
            .await
            .as_u64()
            .unwrap()
    }

    async fn text(&self, id: &str) -> String {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The demo user signs in through `browser` and the real widget shows them.
async fn signs_in_and_the_real_widget_shows_them(browser: Browser) {
    let stack = Stack::start(&[]);
    let user = stack.add_user(EMAIL, "Andrew", PASSWORD);
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;
    browser.expect_widget(Some(&Stack::chat_id(&user)), true).await;
    assert!(browser.text("detail").await.contains(&Stack::chat_id(&user)));
    browser.close().await;
}

#[tokio::test]
async fn the_demo_user_signs_in_and_the_real_widget_shows_them() {
    signs_in_and_the_real_widget_shows_them(Browser::open().await).await;
}

/// Safari's engine (WebKitGTK): sign in, a second browser is the same chat identity and sees the conversation, and
/// signing out leaves nothing behind.
#[tokio::test]
async fn in_webkit_the_demo_user_signs_in_a_second_browser_is_the_same_identity_and_sign_out_leaves_nothing()
{
    let stack = Stack::start(&[]);
    let user = stack.add_user(EMAIL, "Andrew", PASSWORD);
    let chat_id = Stack::chat_id(&user);
    let first = Browser::open_webkit().await;
    first.sign_in(&stack, PASSWORD).await;
    first.wait_status("authenticated").await;
    first.expect_widget(Some(&chat_id), true).await;
    stack
        .wait_for_request(&format!("{chat_id}/conversations/archived"))
        .await;
    first.open_widget().await;
    first.send_message("Hello from WebKit").await;
    first
        .until(
            "widget().text.includes('Hello from WebKit')",
            "the first browser shows its message",
        )
        .await;

    let second = Browser::open_webkit().await;
    second.sign_in(&stack, PASSWORD).await;
    second.wait_status("authenticated").await;
    second.expect_widget(Some(&chat_id), true).await;
    second.open_widget().await;
    second
        .until(
            "widget().text.includes('Hello from WebKit')",
            "the second browser shows the first one's message",
        )
        .await;

    first.click(Locator::Id("sign-out")).await;
    first.wait_status("signed_out").await;
    first.expect_widget(None, false).await;
    assert_eq!(first.stored_tokens().await, 0);
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn in_firefox_too_the_demo_user_signs_in_and_the_real_widget_shows_them() {
    signs_in_and_the_real_widget_shows_them(Browser::open_firefox().await).await;
}

#[tokio::test]
async fn a_second_browser_is_the_same_chat_identity_and_both_see_the_conversation() {
    let stack = Stack::start(&[]);
    let user = stack.add_user(EMAIL, "Andrew", PASSWORD);
    let chat_id = Stack::chat_id(&user);
    let laptop = Browser::open().await;
    laptop.sign_in(&stack, PASSWORD).await;
    laptop.wait_status("authenticated").await;
    laptop.open_widget().await;
    laptop.send_message("Hello from the laptop").await;
    laptop
        .until(
            "widget().text.includes('Hello from the laptop')",
            "the laptop shows its message",
        )
        .await;

    let phone = Browser::open().await;
    phone.sign_in(&stack, PASSWORD).await;
    phone.wait_status("authenticated").await;
    assert_eq!(phone.widget().await["user"], json!(chat_id));
    phone.open_widget().await;
    phone
        .until(
            "widget().text.includes('Hello from the laptop')",
            "the phone shows the laptop's message",
        )
        .await;

    // An agent answers in the conversation: both browsers show it, live (the laptop in the open conversation,
    // the phone in its list of conversations).
    let status = stack.mock_post(
        "/test/agent-reply",
        &json!({"user": chat_id, "text": "How can I help, Andrew?"}),
    );
    assert_eq!(status, 201);
    for browser in [&laptop, &phone] {
        browser
            .until(
                "widget().text.includes('How can I help, Andrew?')",
                "the agent's reply",
            )
            .await;
    }
    laptop.close().await;
    phone.close().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_readable_error_and_leaves_no_token() {
    let stack = Stack::start(&[]);
    stack.add_user(EMAIL, "Andrew", PASSWORD);
    let browser = Browser::open().await;
    browser.sign_in(&stack, "not the password").await;
    browser.wait_status("error").await;
    assert_eq!(browser.text("detail").await, "Wrong email or password.");
    browser.expect_widget(None, false).await;
    assert_eq!(browser.stored_tokens().await, 0);
    let page_text = browser
        .js("return document.documentElement.outerHTML + JSON.stringify(localStorage);")
        .await;
    assert!(
        !page_text.as_str().unwrap().contains("JWT "),
        "no token anywhere in the page"
    );
    browser.close().await;
}

#[tokio::test]
async fn sign_out_logs_the_widget_out_and_a_reload_does_not_bring_it_back() {
    let stack = Stack::start(&[]);
    stack.add_user(EMAIL, "Andrew", PASSWORD);
    let browser = Browser::open().await;
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;
    assert_eq!(browser.stored_tokens().await, 1);
    browser.click(Locator::Id("sign-out")).await;
    browser.wait_status("signed_out").await;
    assert_eq!(browser.stored_tokens().await, 0);
    browser.expect_widget(None, false).await;

    browser.client.refresh().await.unwrap();
    browser
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#sign-in:not([disabled])"))
        .await
        .unwrap();
    browser.wait_status("idle").await;
    assert_eq!(browser.stored_tokens().await, 0);
    assert_eq!(
        browser.widget().await["logged"],
        json!(false),
        "not signed in again by a stored session"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_auth_server_stopping_mid_session_is_reported_and_recovery_works() {
    let mut stack = Stack::start(&[]);
    let user = stack.add_user(EMAIL, "Andrew", PASSWORD);
    let browser = Browser::open().await;
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;

    stack.stop_server();
    browser.click(Locator::Id("sign-out")).await;
    browser.wait_status("signed_out").await;
    browser
        .client
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    browser.type_into(Locator::Id("email"), EMAIL).await;
    browser.type_into(Locator::Id("password"), PASSWORD).await;
    browser.click(Locator::Id("sign-in")).await;
    browser.wait_status("error").await;
    assert_eq!(
        browser.text("detail").await,
        "The sign-in service cannot be reached. Check your connection and try again."
    );

    stack.start_server();
    browser.type_into(Locator::Id("password"), PASSWORD).await;
    browser.click(Locator::Id("sign-in")).await;
    browser.wait_status("authenticated").await;
    browser.expect_widget(Some(&Stack::chat_id(&user)), true).await;
    browser.close().await;
}

/// The README's picture: the demo signed in, the real widget open on a conversation with an agent's answer.
/// Written to `target/screenshots/demo.png`; with `TILEDESK_UPDATE_SCREENSHOT=1`, also to `docs/demo.png`.
#[tokio::test]
async fn the_readme_screenshot_of_the_demo() {
    let stack = Stack::start(&[]);
    let user = stack.add_user(EMAIL, "Andrew", PASSWORD);
    let browser = Browser::open().await;
    browser.client.set_window_size(1440, 860).await.unwrap();
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;
    browser.open_widget().await;
    browser.send_message("Hi! Where is my order #1729?").await;
    browser
        .until(
            "widget().messages.some((m) => m.includes('Where is my order'))",
            "the message shown",
        )
        .await;
    let reply = "Hello Andrew, it left our warehouse this morning.";
    let status = stack.mock_post(
        "/test/agent-reply",
        &json!({"user": Stack::chat_id(&user), "text": reply}),
    );
    assert_eq!(status, 201);
    browser
        .until(
            &format!("widget().messages.some((m) => m.includes('{reply}'))"),
            "the agent's reply shown",
        )
        .await;
    // The conversation fades in (opacity 0 to 1 over half a second) once scrolled: the picture when it is in.
    browser
        .until(
            "getComputedStyle(document.getElementById('tiledeskiframe').contentDocument.querySelector('.c21-contentScroll')).opacity === '1'",
            "the conversation faded in",
        )
        .await;
    let png = browser.client.screenshot().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real picture: {} bytes",
        png.len()
    );
    let dir = tiledesk_e2e::root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("demo.png"), &png).unwrap();
    if std::env::var_os("TILEDESK_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(tiledesk_e2e::root().join("docs/demo.png"), &png).unwrap();
    }
    browser.close().await;
}

/// A wrong-password login for `email` from `source` (any address of 127.0.0.0/8), without cookies: its status.
async fn guess_from(source: [u8; 4], stack: &Stack, email: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target: std::net::SocketAddr = stack
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    let mut stream = socket.connect(target).await.unwrap();
    let body = json!({"email": email, "password": "guess"}).to_string();
    let request = format!(
        "POST /auth HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn a_distributed_guesser_cannot_lock_the_owner_out_of_their_usual_browser() {
    let stack = Stack::start(&[]);
    stack.add_user(EMAIL, "Andrew", PASSWORD);
    let browser = Browser::open().await;
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;
    // The browser kept the device cookie from its login, where page scripts cannot read it.
    let cookies = browser.client.get_all_cookies().await.unwrap();
    let device = cookies
        .iter()
        .find(|c| c.name() == "tdauth_device")
        .expect("a device cookie");
    assert_eq!(device.http_only(), Some(true));
    assert!(
        !browser
            .js("return document.cookie;")
            .await
            .as_str()
            .unwrap()
            .contains("tdauth_device")
    );
    browser.click(Locator::Id("sign-out")).await;
    browser.wait_status("signed_out").await;

    // 100 wrong passwords for Andrew's email from 20 addresses: the account is shut to anyone without the cookie,
    // the right password included, from the browser's own address.
    for round in 0..5u8 {
        for host in 1..=20u8 {
            assert_eq!(guess_from([127, 20, round, host], &stack, EMAIL).await, 401);
        }
    }
    let stranger =
        tiledesk_e2e::http_post(&stack.url("auth"), &json!({"email": EMAIL, "password": PASSWORD}));
    assert_eq!(stranger, 429);

    // Andrew, in his usual browser, signs in as always.
    browser.sign_in(&stack, PASSWORD).await;
    browser.wait_status("authenticated").await;
    browser.close().await;
}
