//! The browser module against hand-written JavaScript, in headless Chromium with the stand-in widget and the
//! mock Tiledesk API: the time from "sign this visitor in" to the widget shown, for several loader delays.
//!
//! Run by `cargo xtask bench`, which builds the binaries and the package first and reads the `BENCH` lines this
//! prints. Environment: `BENCH_ROUNDS` (default 5), `BENCH_DELAYS` (loader delays in ms, default `0,200,1000`),
//! `BENCH_TOKEN_DELAY` (the token endpoint's delay in ms, default 50).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use std::process::Command;

use serde_json::Value;
use tiledesk_e2e::{Browser, built, free_port, root, start, start_mock};

const PROJECT: &str = "bench0c0ffee0123456789ab";
const SECRET: &str = "bench-secret-9d1f0a3c-77e2-4b1e-9c1a";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", "5").parse().expect("BENCH_ROUNDS");
    let token_delay: u64 = env_or("BENCH_TOKEN_DELAY", "50")
        .parse()
        .expect("BENCH_TOKEN_DELAY");
    let delays: Vec<u64> = env_or("BENCH_DELAYS", "0,200,1000")
        .split(',')
        .map(|d| d.trim().parse().expect("BENCH_DELAYS"))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    for file in ["common.js", "module.html", "sequential.html"] {
        std::fs::copy(root().join("bench/browser").join(file), site.join(file)).unwrap();
    }
    for file in ["tiledesk_auth_web.js", "tiledesk_auth_web_bg.wasm"] {
        std::fs::copy(built(&format!("target/pkg/{file}")), site.join("pkg").join(file)).unwrap();
    }
    let (_mock, mock_url) = start_mock(PROJECT, SECRET);
    let port = free_port();
    let mut serve = Command::new(built("target/debug/tiledesk-auth"));
    serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--static-dir"])
        .arg(&site)
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("users.db").display()))
        .env("TILEDESK_PROJECT_ID", PROJECT)
        .env("TILEDESK_SECRET", SECRET)
        .env_remove("TILEDESK_SECRET_FILE");
    let (_server, _) = start(serve, "listening on", true);

    let browser = Browser::open().await;
    let run = async |page: &str, delay: u64| -> Value {
        let url = format!(
            "http://127.0.0.1:{port}/{page}.html?mock={mock_url}&project={PROJECT}&delay={delay}&token_delay={token_delay}"
        );
        browser.client.goto(&url).await.unwrap();
        let result = browser
            .client
            .execute_async("window.benchDone.then(arguments[0]);", vec![])
            .await
            .unwrap();
        assert!(result.get("error").is_none(), "{page}.html: {result}");
        result
    };
    // One unmeasured run of each page: the package and the pages into the browser's cache.
    for page in ["module", "sequential"] {
        run(page, 0).await;
    }
    for &delay in &delays {
        for round in 0..rounds {
            // Alternate which page goes first, so neither always follows the other.
            let order = if round % 2 == 0 {
                ["module", "sequential"]
            } else {
                ["sequential", "module"]
            };
            for page in order {
                let result = run(page, delay).await;
                let init = result
                    .get("initMs")
                    .and_then(Value::as_f64)
                    .map(|ms| format!(" init_ms={ms:.2}"))
                    .unwrap_or_default();
                println!(
                    "BENCH browser page={page} delay={delay} token_delay={token_delay} round={round} ms={:.2}{init}",
                    result["ms"].as_f64().unwrap()
                );
            }
        }
    }
    browser.close().await;
}
