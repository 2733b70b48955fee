//! The npm package through a bundler: `examples/vite` (Vite from its lockfile) installs the package from the
//! tarball `cargo xtask test` packs, `vite build` bundles it, and the built app, served by the service, signs a
//! visitor in with Tiledesk's real widget: the module's `.wasm` is found where the bundler put it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a failure should panic

use std::process::Command;

use serde_json::json;
use tiledesk_e2e::{Browser, PROJECT, Stack, built, root};

fn npm(args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(root().join("examples/vite"))
        .status()
        .unwrap();
    assert!(status.success(), "npm {args:?} in examples/vite: {status}");
}

#[tokio::test]
async fn a_vite_build_of_the_package_signs_the_visitor_in() {
    let tarball = built(&format!(
        "target/dist/tiledesk-auth-{}.tgz",
        env!("CARGO_PKG_VERSION")
    ));
    npm(&["ci"]);
    npm(&["install", "--no-save", tarball.to_str().unwrap()]);
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(root().join("examples/vite/node_modules/.bin/vite"))
        .args(["build", "--logLevel", "warn", "--outDir"])
        .arg(out.path())
        .current_dir(root().join("examples/vite"))
        .status()
        .unwrap();
    assert!(status.success(), "vite build: {status}");
    let assets: Vec<String> = std::fs::read_dir(out.path().join("assets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        assets
            .iter()
            .any(|a| a.starts_with("tiledesk_auth_web_bg") && a.ends_with(".wasm")),
        "the bundler emitted no .wasm: {assets:?}"
    );

    let stack = Stack::start(&[]);
    let user = stack.add_user("ada@example.com", "Ada", "analytical engine");
    stack.add_dir(out.path(), "vite");
    let options = stack.options("ada@example.com", "analytical engine", &json!({}));
    stack.write_file("vite/config.json", &json!({ "options": options }).to_string());
    assert_eq!(options["projectId"], PROJECT);

    let browser = Browser::open().await;
    browser.client.goto(&stack.url("vite/index.html")).await.unwrap();
    browser
        .until(
            "window.records && (window.records.error || window.records.states.some((s) => s.status === 'authenticated'))",
            "the Vite app signed in",
        )
        .await;
    let records = browser.js("return window.records;").await;
    assert_eq!(records["error"], serde_json::Value::Null, "{records}");
    browser
        .until("widget().logged && widget().shown", "the widget shown")
        .await;
    browser.expect_widget(Some(&Stack::chat_id(&user)), true).await;
    // The wasm came from the bundle's assets, not from next to a source file.
    let wasm = browser
        .js("return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.endsWith('.wasm'));")
        .await;
    let wasm = wasm.as_array().unwrap();
    assert_eq!(wasm.len(), 1, "{wasm:?}");
    assert!(
        wasm[0]
            .as_str()
            .unwrap()
            .contains("/vite/assets/tiledesk_auth_web_bg"),
        "{wasm:?}"
    );
    browser.close().await;
}
