//! `--log-format json`: every line the real binary writes is one JSON object with the text format's fields, and no
//! secret, password or token is among them.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use common::{PROJECT, SECRET, Server, http, users_add};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn json_logs_are_one_object_per_line_with_the_text_formats_fields_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let (code, _, stderr) = users_add(None, &db, "andrew@scientists.com", PASSWORD, &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut server = Server::start(
        &["--log-format", "json"],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            ("TILEDESK_AUTH_DATABASE", db),
            ("RUST_LOG", "info,tower_http=debug".to_owned()),
        ],
    );
    let login = |password: &str| {
        http(
            server.addr,
            "POST",
            "/auth",
            &[("Content-Type", "application/json")],
            &format!(r#"{{"email": "andrew@scientists.com", "password": "{password}"}}"#),
        )
    };
    let (status, body) = login(PASSWORD);
    assert_eq!(status, 200, "{body}");
    let token: Value = serde_json::from_str(&body).unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert_eq!(login("a wrong guess").0, 401);
    server.wait_for_log(|l| l.contains("login failed"));
    // Stopped, so that every line it wrote is in.
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.wait_exit().success());

    let lines = server.logs.lock().unwrap().clone();
    let events: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |event: &Value| event["fields"]["message"].as_str().unwrap_or("").to_owned();
    for event in &events {
        assert!(
            event["timestamp"].is_string() && event["level"].is_string(),
            "{event}"
        );
        assert!(event["target"].is_string(), "{event}");
    }
    let started = events
        .iter()
        .find(|e| message(e).starts_with("tiledesk-auth listening on http://"))
        .expect("the start line");
    assert_eq!(started["fields"]["project"], PROJECT);
    let signed_in = events
        .iter()
        .find(|e| message(e) == "signed in")
        .expect("the sign-in line");
    assert_eq!(signed_in["level"], "INFO");
    assert!(signed_in["fields"]["user_id"].is_string(), "{signed_in}");
    assert_eq!(signed_in["fields"]["by"], "a password");
    let failed = events
        .iter()
        .find(|e| message(e) == "login failed")
        .expect("the failed login");
    assert_eq!(failed["fields"]["address"], "127.0.0.1");
    assert!(
        events.iter().any(|e| message(e) == "stopped"),
        "the last words are there too"
    );

    let all = lines.join("\n");
    for secret in [
        SECRET,
        PASSWORD,
        "a wrong guess",
        token.as_str(),
        "andrew@scientists.com",
    ] {
        assert!(!all.contains(secret), "{secret:?} in the logs:\n{all}");
    }
}
