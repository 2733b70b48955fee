//! One tag on any site: "Example Shop" (a site with a login of its own) on one origin, `tiledesk-auth` on another,
//! the shop's page holding Tiledesk's snippet and the one tag `tiledesk-auth snippet` printed, served under the
//! README's Content-Security-Policy. With Tiledesk's real widget, in Chromium and Firefox.
//!
//! Needs what `cargo xtask test` builds first: the binaries (the service with the module inside), the widget.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use serde_json::{Value, json};
use tiledesk_e2e::{Browser, OneTag, PROJECT, SHOP_EMAIL, SHOP_PASSWORD};

/// Loads `url` and waits for the tag's last word: a state that is not `loading`, or an error event.
async fn load(browser: &Browser, url: &str) -> Value {
    browser.client.goto(url).await.unwrap();
    browser
        .until(
            "window.records && (window.records.errors.length > 0 || \
             (window.records.states.length > 0 && window.records.states[window.records.states.length - 1].status !== 'loading'))",
            "the tag's outcome",
        )
        .await;
    browser.js("return window.records;").await
}

/// Signs the shop's customer in on the shop (its own login, a session cookie), from the shop's page open in `browser`.
async fn shop_login(browser: &Browser) {
    let login = browser
        .js(&format!(
            "return fetch('/shop/login', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, \
             body: JSON.stringify({{email: '{SHOP_EMAIL}', password: '{SHOP_PASSWORD}'}})}}).then((r) => r.status);"
        ))
        .await;
    assert_eq!(login, 200);
}

/// The `src` of a tag.
fn tag_src(tag: &str) -> String {
    tag.split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned()
}

fn last_status(records: &Value) -> &str {
    records["states"]
        .as_array()
        .and_then(|s| s.last())
        .and_then(|s| s["status"].as_str())
        .unwrap_or("")
}

/// Violations of the page's policy caused by the module's files (the service's origin) or by what only they do
/// (compiling WebAssembly, evaluating strings).
fn module_violations(records: &Value, service: &str) -> Vec<Value> {
    records["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| {
            let blocked = v["blocked"].as_str().unwrap_or("");
            let source = v["source"].as_str().unwrap_or("");
            blocked.starts_with(service)
                || source.starts_with(service)
                || matches!(blocked, "wasm-eval" | "eval")
        })
        .cloned()
        .collect()
}

/// The shop's customer signed in on the shop, then into the chat by the tag on every page load; after the shop's
/// logout the next page load shows no trace of her: widget logged out and hidden, its stored session gone.
async fn the_shops_customer_is_the_chats_visitor_until_she_logs_out(browser: &Browser) {
    let one_tag = OneTag::start();
    let service = format!("http://127.0.0.1:{}", one_tag.stack.port);
    let page = format!("{}/", one_tag.shop);

    // Nobody signed in on the shop: the site says so, the widget stays hidden with nobody in it.
    let records = load(browser, &page).await;
    assert_eq!(last_status(&records), "error", "{records}");
    assert_eq!(
        records["states"].as_array().unwrap().last().unwrap()["error"]["code"],
        "auth_rejected"
    );
    assert_eq!(
        records["errors"],
        json!([]),
        "nobody signed in is not an error: {records}"
    );
    browser.expect_widget(None, false).await;

    // The shop's own login, then the next page: the tag signs her in through the session bridge.
    shop_login(browser).await;
    let records = load(browser, &page).await;
    assert_eq!(last_status(&records), "authenticated", "{records}");
    assert_eq!(
        records["states"].as_array().unwrap().last().unwrap()["userId"],
        OneTag::chat_id()
    );
    browser
        .until("widget().logged && widget().shown", "the widget shown, signed in")
        .await;
    browser.expect_widget(Some(&OneTag::chat_id()), true).await;
    assert_eq!(records["errors"], json!([]), "{records}");
    assert_eq!(records["consoleErrors"], json!([]), "{records}");
    let stored = format!("widget_sv5_{PROJECT}_tiledeskToken");
    assert_ne!(
        browser
            .js(&format!("return localStorage.getItem('{stored}');"))
            .await,
        Value::Null
    );

    // The shop's logout; the next page load: no trace of her.
    let logout = browser
        .js("return fetch('/shop/logout', {method: 'POST'}).then((r) => r.status);")
        .await;
    assert_eq!(logout, 200);
    let records = load(browser, &page).await;
    assert_eq!(last_status(&records), "error", "{records}");
    browser.expect_widget(None, false).await;
    assert_eq!(
        browser
            .js(&format!("return localStorage.getItem('{stored}');"))
            .await,
        Value::Null,
        "her stored chat session is gone"
    );
    let text = browser.widget().await["text"].as_str().unwrap_or("").to_owned();
    assert!(!text.contains("Ada"), "the widget still shows her: {text}");

    // Under the README's policy (no 'unsafe-inline', no 'unsafe-eval' for scripts) the module's files broke nothing.
    assert!(!one_tag.csp.contains("'unsafe-eval'"));
    assert!(
        !one_tag
            .csp
            .split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline"))
    );
    let violations = module_violations(&records, &service);
    assert!(
        violations.is_empty(),
        "policy violations from the module: {violations:?}"
    );
}

#[tokio::test]
async fn chromium_one_tag_signs_the_shops_customer_in_and_leaves_no_trace_after_logout() {
    let browser = Browser::open().await;
    the_shops_customer_is_the_chats_visitor_until_she_logs_out(&browser).await;
    browser.close().await;
}

#[tokio::test]
async fn firefox_one_tag_signs_the_shops_customer_in_and_leaves_no_trace_after_logout() {
    let browser = Browser::open_firefox().await;
    the_shops_customer_is_the_chats_visitor_until_she_logs_out(&browser).await;
    browser.close().await;
}

/// The same page on an origin the service does not list, with the shop's session cookie in the browser: no
/// identity (the browser refuses the credentialed answer; the service would refuse the request itself, 403).
async fn the_same_page_on_an_unlisted_origin_gets_no_identity(browser: Browser) {
    let one_tag = OneTag::start();
    // Signed in on the shop (the cookie is the host's, so the unlisted origin's requests carry it too).
    browser.client.goto(&format!("{}/", one_tag.shop)).await.unwrap();
    shop_login(&browser).await;
    let records = load(&browser, &format!("{}/", one_tag.unlisted)).await;
    assert_eq!(last_status(&records), "error", "{records}");
    let code = &records["states"].as_array().unwrap().last().unwrap()["error"]["code"];
    assert_eq!(code, "network", "{records}");
    browser.expect_widget(None, false).await;
    // The listed origin, same browser, same cookie: signed in (the refusal above was the origin's).
    let records = load(&browser, &format!("{}/", one_tag.shop)).await;
    assert_eq!(last_status(&records), "authenticated", "{records}");
    browser.close().await;
}

#[tokio::test]
async fn chromium_the_same_page_on_an_unlisted_origin_gets_no_identity() {
    the_same_page_on_an_unlisted_origin_gets_no_identity(Browser::open().await).await;
}

#[tokio::test]
async fn firefox_the_same_page_on_an_unlisted_origin_gets_no_identity() {
    the_same_page_on_an_unlisted_origin_gets_no_identity(Browser::open_firefox().await).await;
}

/// A tampered `.wasm` beside an untouched entry file: the entry's own integrity check on the wasm refuses it; the
/// page hears why (console.error and `tiledesk-auth:error`), an earlier visitor's stored session is removed, and
/// nobody is signed in.
#[tokio::test]
async fn a_tampered_wasm_does_not_start_and_says_why() {
    let one_tag = OneTag::start();
    let service = format!("http://127.0.0.1:{}", one_tag.stack.port);
    // The module's files, copied to the shop (self-hosted), the wasm with one byte changed.
    let src = tag_src(&one_tag.tag);
    let dir = src.rsplit_once('/').unwrap().0.to_owned();
    let entry = tiledesk_test_support::http("GET", &src, None);
    assert_eq!(entry.0, 200);
    let wasm_url = format!("{dir}/tiledesk_auth_web_bg.wasm");
    let mut wasm = std::fs::read(tiledesk_e2e::built("target/module/tiledesk_auth_web_bg.wasm")).unwrap();
    let middle = wasm.len() / 2;
    wasm[middle] ^= 0x01;
    one_tag.write_file("self-hosted/tiledesk-auth.js", entry.1.as_bytes());
    one_tag.write_file("self-hosted/tiledesk_auth_web_bg.wasm", &wasm);
    let tag = one_tag.tag.replace(&src, "/self-hosted/tiledesk-auth.js");
    assert!(tag.contains("integrity=\"sha384-"), "{tag}");
    one_tag.write_page(&tag);
    assert!(wasm_url.starts_with(&service));

    let browser = Browser::open().await;
    browser.client.goto(&format!("{}/", one_tag.shop)).await.unwrap();
    // An earlier visitor's stored session, as a shared computer keeps it.
    let stored = format!("widget_sv5_{PROJECT}_tiledeskToken");
    browser
        .js(&format!(
            "localStorage.setItem('{stored}', 'JWT earlier.visitor.token'); return true;"
        ))
        .await;
    let records = load(&browser, &format!("{}/", one_tag.shop)).await;
    assert_eq!(records["errors"][0]["code"], "module_load", "{records}");
    assert_eq!(
        records["states"],
        json!([]),
        "the module never started: {records}"
    );
    let console = records["consoleErrors"].to_string();
    assert!(
        console.contains("tiledesk-auth") && console.contains("integrity"),
        "{console}"
    );
    assert_eq!(
        browser
            .js(&format!("return localStorage.getItem('{stored}');"))
            .await,
        Value::Null
    );
    browser.expect_widget(None, false).await;
    browser.close().await;
}

/// `data-auto-start="false"`: the tag loads the module and signs nobody in; the page's own script imports
/// `ready` and `TiledeskAuth` from the same URL (the same module, loaded once) and signs in itself. An unknown
/// `data-` attribute stops the tag with `bad_options` instead of falling back to a default.
#[tokio::test]
async fn a_page_that_wants_control_imports_from_the_tags_url() {
    let one_tag = OneTag::start();
    let src = tag_src(&one_tag.tag);
    let auth_url = format!("http://127.0.0.1:{}/auth", one_tag.stack.port);
    // The page's own module script (a file: the policy allows no inline script).
    let control = format!(
        "import {{ ready, started, TiledeskAuth }} from \"{src}\";\n\
         await ready;\n\
         window.controlled = {{ startedByTag: await started() }};\n\
         const auth = new TiledeskAuth({{ projectId: \"{PROJECT}\", authUrl: \"{auth_url}\" }});\n\
         auth.onStateChange((s) => window.records.states.push(s));\n\
         window.controlled.auth = auth;\n\
         auth.signIn().catch(() => {{}});\n"
    );
    one_tag.write_file("control.js", control.as_bytes());
    let tag = one_tag
        .tag
        .replace("></script>", " data-auto-start=\"false\"></script>");
    one_tag.write_page(&format!(
        "{tag}\n    <script type=\"module\" src=\"control.js\"></script>"
    ));

    let browser = Browser::open().await;
    browser.client.goto(&format!("{}/", one_tag.shop)).await.unwrap();
    shop_login(&browser).await;
    let records = load(&browser, &format!("{}/", one_tag.shop)).await;
    assert_eq!(last_status(&records), "authenticated", "{records}");
    assert_eq!(
        browser.js("return window.controlled.startedByTag;").await,
        Value::Null,
        "the tag signed nobody in itself"
    );
    browser.expect_widget(Some(&OneTag::chat_id()), true).await;
    // One module instance: the tag's and the page's import are the same file, fetched once.
    let fetched = browser
        .js("return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/tiledesk-auth.js')).length;")
        .await;
    assert_eq!(fetched, 1);

    // A typo in an attribute: the tag stops and says which.
    let typo = one_tag.tag.replace(
        "data-project-id=",
        "data-on-falure=\"anonymous\" data-project-id=",
    );
    one_tag.write_page(&typo);
    let records = load(&browser, &format!("{}/", one_tag.shop)).await;
    assert_eq!(records["errors"][0]["code"], "bad_options", "{records}");
    let message = records["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("data-on-falure"), "{message}");
    browser.close().await;
}
