//! `Debug` of every configuration and state type (what a `dbg!`, a panic message or a `{:?}` in a log would
//! print) holds neither the project secret, the API key, a password nor a token.

#![allow(clippy::unwrap_used)] // test code

mod common;

use clap::Parser;
use common::{API_KEY, Options, SECRET, test_app};
use tiledesk_auth_server::cli::Cli;
use tiledesk_jwt::VisitorClaims;

fn assert_clean(what: &str, text: &str, forbidden: &[&str]) {
    assert!(!text.is_empty());
    for needle in forbidden {
        assert!(!text.contains(needle), "Debug of {what} shows {needle}:\n{text}");
    }
}

#[test]
fn the_command_line_with_a_secret_and_a_key_debugs_redacted() {
    let cli = Cli::try_parse_from([
        "tiledesk-auth",
        "serve",
        "--project-id",
        common::PROJECT,
        "--secret",
        SECRET,
        "--api-key",
        API_KEY,
    ])
    .unwrap();
    for text in [format!("{cli:?}"), format!("{cli:#?}")] {
        assert_clean("the parsed command line", &text, &[SECRET, API_KEY]);
        assert!(text.contains("redacted"), "{text}");
    }
}

#[tokio::test]
async fn the_app_state_issuer_and_tokens_debug_redacted() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let state = &app.state;
    let issuer = state.issuer.get();
    let token = issuer
        .mint(&VisitorClaims::builder("42").build().unwrap())
        .unwrap();
    let jwt = token.jwt().to_owned();
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    let forbidden = [SECRET, API_KEY, jwt.as_str(), signature.as_str()];
    for (what, text) in [
        ("AppState", format!("{state:?}")),
        ("AppState (pretty)", format!("{state:#?}")),
        ("TokenIssuer", format!("{issuer:?}")),
        ("ProjectSecret", format!("{:?}", common::secret())),
        ("VisitorToken", format!("{token:?}")),
        ("ApiKey", format!("{:?}", state.api_key)),
        ("Passwords", format!("{:?}", state.passwords)),
        (
            "Limits",
            format!("{:?}", tiledesk_auth_server::http::accept::Limits::default()),
        ),
    ] {
        assert_clean(what, &text, &forbidden);
    }
}
