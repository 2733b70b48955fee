//! Whether an email exists must not show in how long a failed login takes: an unknown email is checked against a
//! decoy hash with the same parameters. Medians over a few hundred attempts, interleaved, from fresh addresses so
//! the throttle stays out of the way; the difference is printed (recorded in SECURITY.md).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test code

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Options, from_address, post_json, test_app};

const ROUNDS: usize = 200;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_email_takes_as_long_as_a_wrong_password() {
    let app = test_app(Options::default()).await;
    // Several accounts, so no account reaches the per-account limit (100 failures in 15 minutes).
    let accounts: Vec<String> = (0..4).map(|i| format!("user{i}@scientists.com")).collect();
    for email in &accounts {
        app.add_user(email, "the right password", None).await;
    }
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS + 10 {
        let address = [10, 0, (round / 250) as u8, (round % 250) as u8 + 1];
        let wrong = format!(
            r#"{{"email": "{}", "password": "guess {round}"}}"#,
            accounts[round % 4]
        );
        let nobody = format!(r#"{{"email": "nobody{round}@scientists.com", "password": "guess {round}"}}"#);
        // Alternate which goes first, so neither always runs on a warmer cache.
        let mut pair = [(wrong, &mut known), (nobody, &mut unknown)];
        if round % 2 == 1 {
            pair.reverse();
        }
        for (body, samples) in pair {
            let started = Instant::now();
            let reply = app.send(from_address(post_json("/auth", body), address)).await;
            let elapsed = started.elapsed();
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
            assert_eq!(reply.code(), "invalid_credentials");
            if round >= 10 {
                samples.push(elapsed); // the first ten are a warm-up
            }
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let difference = known.abs_diff(unknown);
    let relative = difference.as_secs_f64() / known.max(unknown).as_secs_f64();
    println!(
        "failed login medians over {ROUNDS} attempts each: wrong password {known:?}, unknown email {unknown:?}, \
         difference {difference:?} ({:.1} %)",
        relative * 100.0
    );
    // Without the decoy an unknown email answers in well under a millisecond, against tens for a hash.
    assert!(
        relative < 0.15,
        "the timing reveals whether the email exists: {known:?} vs {unknown:?}"
    );
}
