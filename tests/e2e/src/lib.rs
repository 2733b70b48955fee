//! Helpers shared by the end-to-end tests (`tests/`) and the browser benchmark (`benches/browser.rs`): built
//! binaries, child processes killed on drop, an MQTT broker (Debian's mosquitto), the mock Tiledesk serving the
//! real widget, and headless Chromium through chromedriver with a fresh profile.
//!
//! Run the tests with `cargo xtask test` and the benchmark with `cargo xtask bench`; both build what these start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure should panic

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub use tiledesk_test_support::{
    Broker, Display, Process, Project, WAIT, content_security_policy, free_port, start,
};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A file built by `cargo xtask`, under the workspace root; panics with what to run when it is missing.
pub fn built(path: &str) -> PathBuf {
    let path = root().join(path);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (or `bench`), which builds it first",
        path.display()
    );
    path
}

/// The built mock Tiledesk (`target/debug/tiledesk-mock`) for `project` with the stand-in loader, and its base URL.
pub fn start_mock(project: &str, secret: &str) -> (Process, String) {
    start_mock_with(project, secret, None)
}

/// The built mock Tiledesk for `project`, serving the real widget (`cargo xtask widget`) and relaying chat
/// messages through `broker` when given one; returns the process and its base URL.
pub fn start_mock_with(project: &str, secret: &str, broker: Option<&Broker>) -> (Process, String) {
    start_mock_on("127.0.0.1:0", project, secret, broker, &[])
}

/// [`start_mock_with`] on `listen`, with `extra` arguments (the shop's, say).
fn start_mock_on(
    listen: &str,
    project: &str,
    secret: &str,
    broker: Option<&Broker>,
    extra: &[String],
) -> (Process, String) {
    let widget = broker.map(|_| {
        built("target/tiledesk-widget/dist/launch.js")
            .parent()
            .unwrap()
            .to_owned()
    });
    let mock = tiledesk_test_support::Mock::try_start(
        &built("target/debug/tiledesk-mock"),
        project,
        secret,
        listen,
        widget.as_deref().zip(broker),
        extra,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (mock.process, mock.url)
}

/// WebKitGTK's browser for automation, from Debian's libwebkit2gtk-4.1-0.
pub const WEBKIT_BROWSER: &str = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

/// Debian's headless Chromium through chromedriver (or Firefox, or WebKit), with a fresh profile; gone when dropped.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
    /// The X display WebKit's browser runs on.
    _display: Option<Display>,
}

impl Browser {
    /// Starts chromedriver and a browser.
    pub async fn open() -> Self {
        let port = free_port();
        let mut command = Command::new("/usr/bin/chromedriver");
        command.arg(format!("--port={port}"));
        let (driver, _) = start(command, "started successfully", false);
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            // `window.gc()`, for the test of an object the page does not keep.
            "--js-flags=--expose-gc",
            // The real widget asks for Google Fonts and images on tiledesk.com: nothing leaves this machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"goog:chromeOptions": {"args": args}});
        Self::session(port, &capabilities, driver, profile).await
    }

    /// Starts geckodriver and headless Firefox (`cargo xtask test` installs both), with a fresh profile. Every
    /// request for another host goes to a proxy that is not there: nothing leaves this machine.
    pub async fn open_firefox() -> Self {
        let port = free_port();
        let driver = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
            .unwrap()
            .join("bin/geckodriver");
        let mut command = Command::new(&driver);
        command.args(["--port", &port.to_string()]);
        let (driver, _) = start(command, "Listening on", false);
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"moz:firefoxOptions": {
            "args": ["-headless", "-profile", profile.path()],
            "prefs": {
                "network.proxy.type": 1,
                "network.proxy.http": "127.0.0.1",
                "network.proxy.http_port": 9,
                "network.proxy.ssl": "127.0.0.1",
                "network.proxy.ssl_port": 9,
                "network.proxy.no_proxies_on": "127.0.0.1,localhost",
                "app.update.auto": false,
                "browser.safebrowsing.malware.enabled": false,
                "browser.safebrowsing.phishing.enabled": false,
                "datareporting.policy.dataSubmissionEnabled": false,
                "toolkit.telemetry.enabled": false,
                "network.captive-portal-service.enabled": false,
                "network.connectivity-service.enabled": false
            }
        }});
        Self::session(port, &capabilities, driver, profile).await
    }

    /// Starts WebKitWebDriver and WebKitGTK's MiniBrowser (Safari's engine; `cargo xtask test` installs Debian's
    /// webkit2gtk-driver and xvfb) on a virtual display of its own. Every request for another host goes to a proxy
    /// that is not there: nothing leaves this machine.
    pub async fn open_webkit() -> Self {
        let display = Display::start();
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new("/usr/bin/WebKitWebDriver");
        command
            .arg(format!("--port={port}"))
            .env("DISPLAY", &display.name)
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            .env("XDG_DATA_HOME", profile.path().join("data"))
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("http_proxy", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = Process(command.spawn().expect("WebKitWebDriver"));
        tiledesk_test_support::wait_for_port(port, "WebKitWebDriver");
        let capabilities = json!({
            "browserName": "MiniBrowser",
            "webkitgtk:browserOptions": {"binary": WEBKIT_BROWSER, "args": ["--automation"]},
        });
        let mut browser = Self::session(port, &capabilities, driver, profile).await;
        browser._display = Some(display);
        browser
    }

    /// A WebDriver session with `capabilities` on the driver listening on `port`.
    async fn session(port: u16, capabilities: &Value, driver: Process, profile: tempfile::TempDir) -> Self {
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        Self {
            client,
            _driver: driver,
            _profile: profile,
            _display: None,
        }
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The real widget's own view, as a function body: whom it has logged in, whether it is shown, what it displays
/// (`text`), and the messages of the open conversation (`messages`: each bubble's text is in a shadow root).
const WIDGET_PROBE: &str = "
  const component = window.tiledesk && window.tiledesk.angularcomponent && window.tiledesk.angularcomponent.component;
  const g = component && component.g;
  const frame = document.getElementById('tiledeskiframe');
  const doc = frame && frame.contentDocument;
  const container = doc && doc.getElementById('tiledesk-container');
  return {
    logged: !!(g && g.isLogged),
    user: g && g.isLogged ? g.senderId : null,
    shown: !!(container && container.classList.contains('active')),
    text: doc && doc.body ? doc.body.innerText : '',
    messages: doc ? [...doc.querySelectorAll('chat-text')].map((e) => (e.shadowRoot || e).textContent.trim()) : [],
  };";

/// The real thing end to end: mosquitto, the mock Tiledesk serving Tiledesk's real widget, and the real
/// `tiledesk-auth` serving the demo page, the test harness page and `/auth` for one throwaway project.
pub struct Stack {
    /// The broker; stop and restart it to play an outage.
    pub broker: Broker,
    _mock: Process,
    /// The mock Tiledesk's base URL.
    pub mock_url: String,
    server: Option<Process>,
    server_args: Vec<String>,
    /// The port `tiledesk-auth` listens on.
    pub port: u16,
    project: Project,
    dir: tempfile::TempDir,
}

/// The project every [`Stack`] holds.
pub const PROJECT: &str = "e2e0c0ffee0123456789abcd";
const SECRET: &str = "e2e-secret-3f1c9a52-5d2e-4f7b-9c1a";

impl Stack {
    /// Everything running; `tiledesk-auth serve` gets `server_args` besides the project, database and site.
    pub fn start(server_args: &[&str]) -> Self {
        let server_args: Vec<String> = server_args.iter().map(|a| (*a).to_owned()).collect();
        Self::start_full(Broker::start(), "127.0.0.1:0", &[], free_port(), server_args)
    }

    /// [`Stack::start`] with the broker already running, the mock on `mock_listen` with `mock_args`, and the
    /// service on `port`.
    fn start_full(
        broker: Broker,
        mock_listen: &str,
        mock_args: &[String],
        port: u16,
        server_args: Vec<String>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (mock, mock_url) = start_mock_on(mock_listen, PROJECT, SECRET, Some(&broker), mock_args);
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        for file in ["index.html", "demo.js", "demo.css"] {
            std::fs::copy(root().join("web").join(file), site.join(file)).unwrap();
        }
        for file in ["harness.html", "harness.js"] {
            std::fs::copy(root().join("tests/e2e/pages").join(file), site.join(file)).unwrap();
        }
        for file in ["tiledesk_auth_web.js", "tiledesk_auth_web_bg.wasm"] {
            std::fs::copy(built(&format!("target/pkg/{file}")), site.join("pkg").join(file)).unwrap();
        }
        let config = json!({"projectId": PROJECT, "widgetUrl": format!("{mock_url}/widget/launch.js")});
        std::fs::write(site.join("demo-config.json"), config.to_string()).unwrap();
        let mut stack = Self {
            broker,
            _mock: mock,
            mock_url,
            server: None,
            server_args,
            port,
            project: Project::with(dir.path(), PROJECT, SECRET).unwrap(),
            dir,
        };
        stack.start_server();
        stack
    }

    /// Copies `files` from `dir` into the served site.
    pub fn add_page(&self, dir: &Path, files: &[&str]) {
        for file in files {
            std::fs::copy(dir.join(file), self.dir.path().join("site").join(file)).unwrap();
        }
    }

    /// Copies the directory `from` into the served site as `name` (a built app, say).
    pub fn add_dir(&self, from: &Path, name: &str) {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        copy(from, &self.dir.path().join("site").join(name));
    }

    /// Writes `contents` as the site's file `path`.
    pub fn write_file(&self, path: &str, contents: &str) {
        std::fs::write(self.dir.path().join("site").join(path), contents).unwrap();
    }

    /// Adds a user to the service's database; returns their site user id.
    pub fn add_user(&self, email: &str, first_name: &str, password: &str) -> String {
        self.project
            .add_user(
                &built("target/debug/tiledesk-auth"),
                email,
                &[first_name],
                password,
            )
            .unwrap()
    }

    /// Adds a user with a first and a last name; returns their site user id.
    pub fn add_named_user(&self, email: &str, names: [&str; 2], password: &str) -> String {
        self.project
            .add_user(&built("target/debug/tiledesk-auth"), email, &names, password)
            .unwrap()
    }

    /// The chat id Tiledesk knows a site user by.
    pub fn chat_id(user_id: &str) -> String {
        format!("{PROJECT}_{user_id}")
    }

    /// Starts `tiledesk-auth serve` (again).
    pub fn start_server(&mut self) {
        let mut command = self.project.serve(
            &built("target/debug/tiledesk-auth"),
            &format!("127.0.0.1:{}", self.port),
        );
        command
            .arg("--static-dir")
            .arg(self.dir.path().join("site"))
            .args(&self.server_args);
        if self.server_args.iter().any(|a| a == "--secret") {
            // A test giving a secret of its own: the project's file would conflict with it.
            command.env_remove("TILEDESK_SECRET_FILE");
        }
        self.server = Some(start(command, "listening on", true).0);
    }

    /// Gives `tiledesk-auth` a new project secret the way the README says to: the secret file replaced whole (a new
    /// file renamed over the old one), then SIGHUP.
    pub fn reload_secret(&self, secret: &str) {
        let file = &self.project.secret_file;
        let next = file.with_extension("next");
        std::fs::write(&next, secret).unwrap();
        std::fs::rename(&next, file).unwrap();
        let pid = self.server.as_ref().expect("the service runs").0.id().to_string();
        let hup = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(hup.success(), "SIGHUP to tiledesk-auth");
    }

    /// Stops `tiledesk-auth`.
    pub fn stop_server(&mut self) {
        self.server.take();
    }

    /// A page of the site.
    pub fn url(&self, page: &str) -> String {
        format!("http://127.0.0.1:{}/{page}", self.port)
    }

    /// The harness options for a visitor signing in with `email` and `password`, merged with `extra`.
    pub fn options(&self, email: &str, password: &str, extra: &serde_json::Value) -> serde_json::Value {
        let mut options = json!({
            "projectId": PROJECT,
            "authUrl": "/auth",
            "credentials": {"email": email, "password": password},
            "widgetUrl": format!("{}/widget/launch.js", self.mock_url),
            "timeoutMs": 8000,
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            options[key] = value.clone();
        }
        options
    }

    /// The API calls the mock Tiledesk received so far, as `METHOD /path`.
    pub fn mock_requests(&self) -> Vec<String> {
        let answer = http_get(&format!("{}/test/requests", self.mock_url));
        serde_json::from_value(answer["requests"].clone()).unwrap()
    }

    /// Waits until the mock has received a request whose line contains `part`, at most [`WAIT`].
    pub async fn wait_for_request(&self, part: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        while !self.mock_requests().iter().any(|r| r.contains(part)) {
            assert!(
                std::time::Instant::now() < deadline,
                "no request for {part} reached the mock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling the mock's log, not a pause
        }
    }

    /// POSTs `body` to the mock (its test endpoints); returns the status code.
    pub fn mock_post(&self, path: &str, body: &serde_json::Value) -> u16 {
        http_post(&format!("{}{path}", self.mock_url), body)
    }
}

/// The shop's one user (the mock's "Example Shop", a site with a login of its own).
pub const SHOP_EMAIL: &str = "ada@shop.example";
/// Her password on the shop.
pub const SHOP_PASSWORD: &str = "difference engine";

/// The one-tag deployment: "Example Shop" with a login of its own on two origins (the first listed with
/// `--allowed-origin`, the second not), `tiledesk-auth` on a third with the session bridge to the shop's `/shop/me`,
/// and a shop page holding Tiledesk's snippet and the one tag `tiledesk-auth snippet` prints, served with the
/// Content-Security-Policy the README gives.
pub struct OneTag {
    /// The service, the mock Tiledesk and the broker.
    pub stack: Stack,
    /// The shop's origin, listed.
    pub shop: String,
    /// The same shop on an origin that is not listed.
    pub unlisted: String,
    /// The tag `tiledesk-auth snippet` printed.
    pub tag: String,
    /// The policy the shop's pages are served with.
    pub csp: String,
    shop_dir: PathBuf,
}

impl OneTag {
    /// Everything running, the shop's page written.
    pub fn start() -> Self {
        let broker = Broker::start();
        let (shop_port, unlisted_port, mock_port, port) =
            (free_port(), free_port(), free_port(), free_port());
        let service = format!("http://127.0.0.1:{port}");
        let mock = format!("http://127.0.0.1:{mock_port}");
        let shop = format!("http://127.0.0.1:{shop_port}");
        let csp = content_security_policy(&service, &mock, &broker.ws_url());
        let shop_dir = tempfile::tempdir().unwrap().keep();
        let mock_args: Vec<String> = [
            "--site-listen",
            &format!("127.0.0.1:{shop_port}"),
            "--site-listen",
            &format!("127.0.0.1:{unlisted_port}"),
            "--site-dir",
            shop_dir.to_str().unwrap(),
            "--site-user",
            &format!("{SHOP_EMAIL}={SHOP_PASSWORD}:Ada"),
            "--site-csp",
            &csp,
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        let server_args = vec![
            "--session-url".to_owned(),
            format!("{shop}/shop/me"),
            "--allowed-origin".to_owned(),
            shop.clone(),
        ];
        let stack = Stack::start_full(
            broker,
            &format!("127.0.0.1:{mock_port}"),
            &mock_args,
            port,
            server_args,
        );
        let tag = tiledesk_test_support::snippet_tag(&built("target/debug/tiledesk-auth"), &service, PROJECT)
            .unwrap_or_else(|e| {
                panic!("{e} (the e2e needs the binary built with the module: cargo xtask test builds it)")
            });
        let one_tag = OneTag {
            stack,
            shop,
            unlisted: format!("http://127.0.0.1:{unlisted_port}"),
            tag,
            csp,
            shop_dir,
        };
        one_tag.write_page(&one_tag.tag);
        one_tag
    }

    /// Writes the shop's page with `tag` where the demo puts the one tag, and the recorder before it.
    pub fn write_page(&self, tag: &str) {
        let head = format!("<script src=\"record.js\"></script>\n    {tag}");
        let loader = format!("{}/widget/launch.js", self.stack.mock_url);
        tiledesk_test_support::write_shop_page(&root(), &self.shop_dir, &head, PROJECT, &loader).unwrap();
        std::fs::copy(
            root().join("tests/e2e/pages/record.js"),
            self.shop_dir.join("record.js"),
        )
        .unwrap();
    }

    /// A file of the shop's, written as it is (a tampered copy of the module, say).
    pub fn write_file(&self, path: &str, bytes: &[u8]) {
        let path = self.shop_dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The chat id the shop's user gets.
    pub fn chat_id() -> String {
        Stack::chat_id("shop-ada")
    }
}

impl Drop for OneTag {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.shop_dir);
    }
}

/// [`tiledesk_test_support::http`] with a JSON body.
fn http(method: &str, url: &str, body: Option<&serde_json::Value>) -> (u16, String) {
    tiledesk_test_support::http(method, url, body.map(ToString::to_string).as_deref())
}

/// POSTs JSON to a loopback URL; returns the status code.
pub fn http_post(url: &str, body: &serde_json::Value) -> u16 {
    http("POST", url, Some(body)).0
}

/// POSTs an empty body to a loopback URL that answers JSON (without chunked encoding, as the mock does); returns
/// the JSON.
pub fn http_post_json(url: &str) -> serde_json::Value {
    json_answer("POST", url)
}

/// GETs a loopback URL that answers JSON (without chunked encoding, as the mock does); returns the JSON.
pub fn http_get(url: &str) -> serde_json::Value {
    json_answer("GET", url)
}

fn json_answer(method: &str, url: &str) -> serde_json::Value {
    let (status, body) = http(method, url, None);
    assert_eq!(status, 200, "{method} {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {url}: {e}: {body}"))
}

impl Browser {
    /// Runs `code` (a function body; may `return` a Promise, which is awaited) and returns its value.
    pub async fn js(&self, code: &str) -> serde_json::Value {
        self.client.execute(code, vec![]).await.unwrap()
    }

    /// Opens the harness page of `stack` and creates the module's object with `options`.
    pub async fn harness(&self, stack: &Stack, options: &serde_json::Value) {
        self.client.goto(&stack.url("harness.html")).await.unwrap();
        self.client
            .execute("await window.harness.ready; return true;", vec![])
            .await
            .ok();
        self.create(options).await;
    }

    /// Creates the module's object with `options` on the harness page already open (after the test prepared it).
    pub async fn create(&self, options: &serde_json::Value) {
        self.client
            .execute(
                "return window.harness.create(arguments[0]);",
                vec![options.clone()],
            )
            .await
            .unwrap();
    }

    /// The real widget's own view: `{logged, user, shown, text, messages}`: whom it has logged in (its own
    /// `g.isLogged` and `g.senderId`), whether it is shown (its container's `active` class), the text it displays,
    /// and the messages of the open conversation.
    pub async fn widget(&self) -> serde_json::Value {
        self.js(WIDGET_PROBE).await
    }

    /// Asserts what the real widget shows: logged in as `user` (`None`: nobody), and shown or not.
    pub async fn expect_widget(&self, user: Option<&str>, shown: bool) {
        let widget = self.widget().await;
        assert_eq!(
            (&widget["user"], &widget["shown"]),
            (&json!(user), &json!(shown)),
            "the widget: {widget}"
        );
    }

    /// Opens the widget's window, as a visitor clicking its launcher.
    pub async fn open_widget(&self) {
        self.js("document.getElementById('tiledeskiframe').contentDocument.getElementById('c21-launcher-button').click();")
            .await;
        self.until(
            "document.getElementById('tiledeskiframe').contentDocument.querySelector('#chat21-conversations') \
             && getComputedStyle(document.getElementById('tiledeskiframe').contentDocument.querySelector('#chat21-conversations')).display === 'block'",
            "the widget's window open",
        )
        .await;
    }

    /// Starts a conversation in the open widget and sends `text`, typed into the widget's composer.
    pub async fn send_message(&self, text: &str) {
        let new_conversation = "[...document.getElementById('tiledeskiframe').contentDocument.querySelectorAll('.c21-button-primary')]\
                                .find((b) => b.innerText.includes('New conversation'))";
        self.until(new_conversation, "the New conversation button").await;
        self.js(&format!("{new_conversation}.click();")).await;
        self.until(
            "document.getElementById('tiledeskiframe').contentDocument.getElementById('chat21-main-message-context')",
            "the composer",
        )
        .await;
        // The composer shows before the conversation behind it is ready: the widget's footer sends through the
        // conversation's handler, and Enter before that handler exists throws inside the widget and the message is
        // lost (seen on the second visitor of a page, in CI). A person types slower than that; the test waits for it.
        self.until(
            "(() => { const c = window.tiledesk.angularcomponent.component; \
               return c.g.recipientId && c.chatManager.getConversationHandlerByConversationId(c.g.recipientId); })()",
            "the new conversation's handler",
        )
        .await;
        let frame = self.client.find(Locator::Id("tiledeskiframe")).await.unwrap();
        frame.enter_frame().await.unwrap();
        let composer = self
            .client
            .find(Locator::Id("chat21-main-message-context"))
            .await
            .unwrap();
        // The text, then Enter (WebDriver's key code for it), as a visitor types it.
        composer
            .send_keys(&format!("{text}{}", char::from(Key::Enter)))
            .await
            .unwrap();
        self.client.enter_parent_frame().await.unwrap();
        // Sent: the widget empties its composer once the message is handed to the chat connection.
        self.until(
            "document.getElementById('tiledeskiframe').contentDocument.getElementById('chat21-main-message-context').value === ''",
            "the message handed to the widget's chat connection (the composer emptied)",
        )
        .await;
    }

    /// Waits until `condition` (a JS expression, re-evaluated every 20 ms) holds, at most [`WAIT`]; panics with
    /// `what` otherwise. `widget()` in the expression is the real widget's view, as [`Browser::widget`] gives it.
    pub async fn until(&self, condition: &str, what: &str) {
        let code = format!(
            "const widget = () => {{ {WIDGET_PROBE} }};
             const deadline = Date.now() + {};
             return new Promise((resolve) => {{
               (function check() {{
                 let ok = false;
                 try {{ ok = !!({condition}); }} catch (_) {{}}
                 if (ok) return resolve(true);
                 if (Date.now() > deadline) return resolve(false);
                 setTimeout(check, 20);
               }})();
             }});",
            WAIT.as_millis()
        );
        let ok = self.client.execute(&code, vec![]).await.unwrap();
        assert_eq!(ok, json!(true), "never true: {what} ({condition})");
    }
}
