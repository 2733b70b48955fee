//! Tiledesk's real widget, signed in four ways with no visitor interaction: the module with `boot: "now"`, the
//! module with `boot: "interaction"` (Tiledesk's own wait), hand-written JavaScript in the order of Tiledesk's
//! tutorial, and the fastest page there can be (`inline`: the token already in the page, minted before it loads,
//! and the loader booted at once). Each run reports the time to the widget shown and when each phase ended (page `bench/browser/real.html`).
//!
//! Run by `cargo xtask bench`, which builds the binaries, the package and the widget first and reads the `BENCH`
//! lines this prints. Environment: `BENCH_ROUNDS` (default 3), `BENCH_TOKEN_DELAY` (ms, default 50).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

use serde_json::Value;
use tiledesk_e2e::{Browser, PROJECT, Stack};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", "3").parse().expect("BENCH_ROUNDS");
    let token_delay: u64 = env_or("BENCH_TOKEN_DELAY", "50")
        .parse()
        .expect("BENCH_TOKEN_DELAY");
    let stack = Stack::start(&[]);
    stack.add_page(
        &tiledesk_e2e::root().join("bench/browser"),
        &["common.js", "real.html"],
    );
    let modes = ["now", "interaction", "tutorial", "inline"];
    for round in 0..=rounds {
        // Round 0 warms the HTTP cache (the widget's 2.4 MB main.js) and is not reported.
        for i in 0..modes.len() {
            // The order rotates every round, so no mode always follows another.
            let mode = modes[(i + round) % modes.len()];
            // A fresh browser each time: no stored session, no interaction, nothing booted.
            let browser = Browser::open().await;
            let mut url = format!(
                "{}?mock={}&project={PROJECT}&mode={mode}&token_delay={token_delay}",
                stack.url("real.html"),
                stack.mock_url
            );
            if mode == "inline" {
                // What a server-rendered page would write into its HTML: a token minted before the page loads.
                let answer =
                    tiledesk_e2e::http_post_json(&format!("{}/test-site/auth?user=bench", stack.mock_url));
                let token = answer["token"].as_str().unwrap();
                url.push_str(&format!("&token={}", token.replace(' ', "%20")));
            }
            browser.client.goto(&url).await.unwrap();
            let result: Value = browser
                .client
                .execute(
                    "return Promise.race([window.benchDone, new Promise((r) => setTimeout(() => r({error: 'no result in 25 s', step: window.benchStep}), 25000))]);",
                    vec![],
                )
                .await
                .unwrap();
            assert!(result.get("error").is_none(), "real.html mode={mode}: {result}");
            if round > 0 {
                let ms = |key: &str| {
                    result[key]
                        .as_f64()
                        .map_or("na".to_owned(), |v| format!("{v:.1}"))
                };
                println!(
                    "BENCH real mode={mode} round={round} token_delay={token_delay} shown={} token={} loader={} boot={} signin={} chat={}",
                    ms("shown"),
                    ms("token"),
                    ms("loader"),
                    ms("boot"),
                    ms("signin"),
                    ms("chat")
                );
            }
            browser.close().await;
        }
    }
}
