//! The demo page end to end: the real `tiledesk-auth` binary serving the page and `/auth`, the mock Tiledesk
//! with the stand-in widget, and Debian's Chromium driven through chromedriver, a fresh profile per browser.
//!
//! Needs what `cargo xtask test` builds first: `target/debug/tiledesk-auth`, `target/debug/tiledesk-mock` and
//! the browser package in `target/pkg`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use fantoccini::Locator;
use serde_json::{Value, json};
use tiledesk_e2e::{Browser, Process, WAIT, built, free_port, root, start, start_mock};

const EMAIL: &str = "andrew@scientists.com";
const PASSWORD: &str = "correct horse battery staple";
const PROJECT: &str = "e2e0c0ffee0123456789abcd";
const SECRET: &str = "e2e-secret-3f1c9a52-5d2e-4f7b";

/// The demo: mock Tiledesk, the site, the user database and the `tiledesk-auth` server.
struct Demo {
    _mock: Process,
    server: Option<Process>,
    port: u16,
    dir: tempfile::TempDir,
    user_id: String,
}

impl Demo {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mock, mock_url) = start_mock(PROJECT, SECRET);

        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        for file in ["index.html", "demo.js", "demo.css"] {
            std::fs::copy(root().join("web").join(file), site.join(file)).unwrap();
        }
        for file in ["tiledesk_auth_web.js", "tiledesk_auth_web_bg.wasm"] {
            std::fs::copy(built(&format!("target/pkg/{file}")), site.join("pkg").join(file)).unwrap();
        }
        let config = json!({"projectId": PROJECT, "widgetUrl": format!("{mock_url}/widget/launch.js"),
                            "settings": {"apiUrl": format!("{mock_url}/api/"), "fakeBootDelayMs": 50}});
        std::fs::write(site.join("demo-config.json"), config.to_string()).unwrap();

        let mut add = Command::new(built("target/debug/tiledesk-auth"))
            .args([
                "users",
                "add",
                "--database",
                &Self::database(dir.path()),
                "--email",
                EMAIL,
            ])
            .args(["--first-name", "Andrew", "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let output = add.wait_with_output().unwrap();
        assert!(output.status.success());
        // "added <email> (<id>)"
        let user_id = String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .rsplit('(')
            .next()
            .unwrap()
            .trim_end_matches(')')
            .to_owned();

        let mut demo = Self {
            _mock: mock,
            server: None,
            port: free_port(),
            dir,
            user_id,
        };
        demo.start_server();
        demo
    }

    fn database(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("users.db").display())
    }

    fn start_server(&mut self) {
        let mut command = Command::new(built("target/debug/tiledesk-auth"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database", &Self::database(self.dir.path()), "--static-dir"])
            .arg(self.dir.path().join("site"))
            .env("TILEDESK_PROJECT_ID", PROJECT)
            .env("TILEDESK_SECRET", SECRET)
            .env_remove("TILEDESK_SECRET_FILE");
        self.server = Some(start(command, "listening on", true).0);
    }

    fn stop_server(&mut self) {
        self.server.take();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn chat_id(&self) -> String {
        format!("{PROJECT}_{}", self.user_id)
    }
}

/// What the demo tests do with a browser.
trait DemoBrowser {
    async fn sign_in(&self, demo: &Demo, password: &str);
    async fn click(&self, at: Locator<'_>);
    async fn type_into(&self, at: Locator<'_>, text: &str);
    async fn wait_for(&self, at: Locator<'_>);
    async fn wait_status(&self, status: &str);
    async fn js(&self, code: &str) -> Value;
    async fn widget(&self) -> (bool, String);
    async fn stored_tokens(&self) -> u64;
    async fn text(&self, id: &str) -> String;
}

impl DemoBrowser for Browser {
    async fn sign_in(&self, demo: &Demo, password: &str) {
        self.client.goto(&demo.url()).await.unwrap();
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

    async fn wait_for(&self, at: Locator<'_>) {
        self.client.wait().at_most(WAIT).for_element(at).await.unwrap();
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

    async fn js(&self, code: &str) -> Value {
        self.client.execute(code, vec![]).await.unwrap()
    }

    async fn widget(&self) -> (bool, String) {
        let v = self
            .js("const e = document.getElementById('tiledeskdiv');
                 return [!!e && e.style.display === 'block', e ? e.getAttribute('data-user-id') : ''];")
            .await;
        (
            v[0].as_bool().unwrap(),
            v[1].as_str().unwrap_or_default().to_owned(),
        )
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

#[tokio::test]
async fn the_demo_user_signs_in_and_the_widget_shows_them() {
    let demo = Demo::start();
    let browser = Browser::open().await;
    browser.sign_in(&demo, PASSWORD).await;
    browser.wait_status("authenticated").await;
    assert_eq!(browser.widget().await, (true, demo.chat_id()));
    assert!(browser.text("detail").await.contains(&demo.chat_id()));
    browser.close().await;
}

#[tokio::test]
async fn a_second_browser_is_the_same_chat_identity_with_the_same_conversation() {
    let demo = Demo::start();
    let laptop = Browser::open().await;
    laptop.sign_in(&demo, PASSWORD).await;
    laptop.wait_status("authenticated").await;
    laptop.wait_for(Locator::Css("#tiledeskdiv[data-messages]")).await;
    laptop
        .type_into(
            Locator::Css(".tiledesk-stand-in-composer input"),
            "Hello from the laptop",
        )
        .await;
    laptop
        .click(Locator::Css(".tiledesk-stand-in-composer button"))
        .await;
    laptop
        .wait_for(Locator::Css("#tiledeskdiv[data-messages='1']"))
        .await;

    let phone = Browser::open().await;
    phone.sign_in(&demo, PASSWORD).await;
    phone.wait_status("authenticated").await;
    assert_eq!(phone.widget().await, (true, demo.chat_id()));
    phone
        .wait_for(Locator::Css("#tiledeskdiv[data-messages='1']"))
        .await;
    let message = phone
        .client
        .find(Locator::Css(".tiledesk-stand-in-messages li"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(message, "Hello from the laptop");
    laptop.close().await;
    phone.close().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_readable_error_and_leaves_no_token() {
    let demo = Demo::start();
    let browser = Browser::open().await;
    browser.sign_in(&demo, "not the password").await;
    browser.wait_status("error").await;
    assert_eq!(browser.text("detail").await, "Wrong email or password.");
    assert!(!browser.widget().await.0, "the widget stays hidden");
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
async fn sign_out_clears_the_session_and_a_reload_does_not_bring_it_back() {
    let demo = Demo::start();
    let browser = Browser::open().await;
    browser.sign_in(&demo, PASSWORD).await;
    browser.wait_status("authenticated").await;
    assert_eq!(browser.stored_tokens().await, 1);
    browser.click(Locator::Id("sign-out")).await;
    browser.wait_status("signed_out").await;
    assert_eq!(browser.stored_tokens().await, 0);
    assert!(!browser.widget().await.0);

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
    assert!(
        !browser.widget().await.0,
        "not signed in again by a stored session"
    );
    browser.close().await;
}

#[tokio::test]
async fn the_auth_server_stopping_mid_session_is_reported_and_recovery_works() {
    let mut demo = Demo::start();
    let browser = Browser::open().await;
    browser.sign_in(&demo, PASSWORD).await;
    browser.wait_status("authenticated").await;

    demo.stop_server();
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

    demo.start_server();
    browser.type_into(Locator::Id("password"), PASSWORD).await;
    browser.click(Locator::Id("sign-in")).await;
    browser.wait_status("authenticated").await;
    assert_eq!(browser.widget().await, (true, demo.chat_id()));
    browser.close().await;
}
