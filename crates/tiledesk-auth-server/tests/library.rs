//! Library mode: `examples/mount_in_axum.rs`, a site with its own login that mounts the service under `/chat-auth`
//! of its own axum app, built by `cargo test` and run here as a real process.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{PROJECT, SECRET, raw_exchange};
use serde_json::Value;
use tiledesk_jwt::{ProjectId, ProjectSecret};

/// The example, running; killed when dropped.
struct Shop {
    _process: tiledesk_test_support::Process,
    addr: SocketAddr,
}

/// Where `cargo test` put the example: `target/<profile>/examples/`, beside this test's `deps/`.
fn example(name: &str) -> std::path::PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile = test.parent().unwrap().parent().unwrap();
    let path = profile.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds the examples",
        path.display()
    );
    path
}

fn start_shop() -> Shop {
    let mut command = Command::new(example("mount_in_axum"));
    command
        .arg("127.0.0.1:0")
        .env("TILEDESK_PROJECT_ID", PROJECT)
        .env("TILEDESK_SECRET", SECRET);
    let (process, ready) = tiledesk_test_support::start(command, "shop listening on http://", false);
    let addr = ready
        .trim()
        .strip_prefix("shop listening on http://")
        .unwrap()
        .parse()
        .unwrap();
    Shop {
        _process: process,
        addr,
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> common::RawResponse {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw_exchange(addr, text.into_bytes())
}

#[test]
fn a_site_that_mounts_the_service_signs_its_own_users_into_the_chat() {
    let shop = start_shop();
    let json = [("Content-Type", "application/json")];

    // Nobody signed in to the shop: the service, asked through the shop's own login, refuses.
    let stranger = request(shop.addr, "POST", "/chat-auth/auth", &json, "{}");
    assert_eq!(stranger.status, 401, "{}", stranger.body);
    let error: Value = serde_json::from_str(&stranger.body).unwrap();
    assert_eq!(error["error"], "auth_rejected");

    // Ada signs in to the shop, with the shop's login.
    let login = request(shop.addr, "POST", "/login", &json, r#"{"name": "ada"}"#);
    assert_eq!(login.status, 200, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let home = request(shop.addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(home.body, "hello ada", "the shop's own routes are the shop's");

    // Her chat identity: the shop's user, in a token that meets Tiledesk's rules.
    let with_cookie = [("Content-Type", "application/json"), ("Cookie", cookie.as_str())];
    let signed_in = request(shop.addr, "POST", "/chat-auth/auth", &with_cookie, "{}");
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(signed_in.header("cache-control"), Some("no-store"));
    assert_eq!(signed_in.header("x-content-type-options"), Some("nosniff"));
    let answer: Value = serde_json::from_str(&signed_in.body).unwrap();
    assert_eq!(answer["user"]["id"], "shop-ada");
    assert_eq!(answer["user"]["email"], "ada@shop.example");
    let token = answer["token"].as_str().unwrap();
    let report = tiledesk_jwt::check(
        token,
        &ProjectId::new(PROJECT).unwrap(),
        &ProjectSecret::new(SECRET).unwrap(),
    );
    assert!(report.is_accepted() && report.is_safe(), "{report:?}");
    let claims = report.claims().unwrap();
    assert_eq!(claims["_id"], format!("{PROJECT}_shop-ada"));
    assert_eq!(claims["firstname"], "ada");

    // The same protections as on its own: a page of another origin cannot use her cookie.
    let elsewhere = request(
        shop.addr,
        "POST",
        "/chat-auth/auth",
        &[
            ("Content-Type", "application/json"),
            ("Cookie", cookie.as_str()),
            ("Origin", "https://evil.example"),
        ],
        "{}",
    );
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.body);

    // Its probes, under the shop's prefix.
    assert_eq!(
        request(shop.addr, "GET", "/chat-auth/healthz", &[], "").status,
        200
    );
    let ready = request(shop.addr, "GET", "/chat-auth/readyz", &[], "");
    assert_eq!(ready.status, 200, "{}", ready.body);
    // Its default password store lives in memory: no file left in the site's working directory.
    let stray: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("sqlx-in-memory"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
