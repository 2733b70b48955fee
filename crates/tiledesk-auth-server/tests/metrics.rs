//! `--metrics-listen`: Prometheus metrics of the real binary, scraped after real traffic, their values asserted, and
//! nothing of anyone in them.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use common::{API_KEY, PROJECT, SECRET, Server, http, post_auth, users_add};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "andrew@scientists.com";

/// The value of the sample `name{labels}` (labels as written, `""` for none) in `text`; 0 when absent.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let wanted = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series == wanted).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

#[test]
fn metrics_count_real_traffic_by_route_way_reason_and_upstream_and_name_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let (code, _, stderr) = users_add(None, &db, EMAIL, PASSWORD, &[]);
    assert_eq!(code, 0, "{stderr}");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let server = Server::start(
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            // A site that cannot be reached: its failures are the upstream's.
            "--session-url",
            "http://127.0.0.1:9/me",
        ],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET_FILE", secret_file.display().to_string()),
            ("TILEDESK_API_KEY", API_KEY.to_owned()),
            ("TILEDESK_AUTH_DATABASE", db),
        ],
    );
    let metrics_addr: std::net::SocketAddr = {
        let logs = server.logs.lock().unwrap();
        let line = logs
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .expect("the metrics line");
        let after = line.split("metrics on http://").nth(1).unwrap();
        after.split('/').next().unwrap().parse().unwrap()
    };
    assert_ne!(metrics_addr, server.addr);
    let scrape = || {
        let (status, text) = http(metrics_addr, "GET", "/metrics", &[], "");
        assert_eq!(status, 200);
        text
    };
    // Not on the public port.
    assert_eq!(http(server.addr, "GET", "/metrics", &[], "").0, 404);
    let before = scrape();

    let right = format!(r#"{{"email": "{EMAIL}", "password": "{PASSWORD}"}}"#);
    let wrong = format!(r#"{{"email": "{EMAIL}", "password": "not it"}}"#);
    let first = post_auth(server.addr, &right, None);
    assert_eq!(first.status, 200, "{}", first.body);
    let user_id = serde_json::from_str::<Value>(&first.body).unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let session = first
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .map(|(_, value)| value.split(';').next().unwrap().to_owned())
        .find(|cookie| cookie.contains("tdauth_login="))
        .unwrap();
    assert_eq!(post_auth(server.addr, &right, None).status, 200);
    // A refresh with the login session.
    assert_eq!(post_auth(server.addr, "{}", Some(&session)).status, 200);
    // Five wrong passwords from one address, then the account is throttled there.
    for _ in 0..5 {
        assert_eq!(post_auth(server.addr, &wrong, None).status, 401);
    }
    assert_eq!(post_auth(server.addr, &wrong, None).status, 429);
    // The site's session URL does not answer.
    assert_eq!(post_auth(server.addr, "{}", None).status, 502);
    // A site backend, right and wrong.
    let mint = |key: &str| {
        http(
            server.addr,
            "POST",
            "/tokens",
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            r#"{"user_id": "backend-7"}"#,
        )
        .0
    };
    assert_eq!(mint(API_KEY), 200);
    assert_eq!(mint("a wrong key of the right length, it is not"), 401);
    assert_eq!(http(server.addr, "GET", "/healthz", &[], "").0, 200);
    // The secret is read again.
    std::fs::write(&secret_file, format!("{SECRET}-rotated")).unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    server.wait_for_log(|l| l.contains("project secret reloaded"));

    let after = scrape();
    let grew = |name: &str, labels: &str| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(
        grew("tiledesk_auth_tokens_minted_total", r#"way="password""#),
        2.0,
        "{after}"
    );
    assert_eq!(
        grew("tiledesk_auth_tokens_minted_total", r#"way="login_session""#),
        1.0
    );
    assert_eq!(grew("tiledesk_auth_tokens_minted_total", r#"way="api_key""#), 1.0);
    assert_eq!(
        grew(
            "tiledesk_auth_logins_refused_total",
            r#"reason="invalid_credentials""#
        ),
        5.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_logins_refused_total",
            r#"reason="too_many_attempts""#
        ),
        1.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_logins_refused_total",
            r#"reason="session_unreachable""#
        ),
        1.0
    );
    assert_eq!(grew("tiledesk_auth_throttled_total", r#"kind="login""#), 1.0);
    assert_eq!(
        grew("tiledesk_auth_upstream_errors_total", r#"upstream="session""#),
        1.0
    );
    assert!(
        grew(
            "tiledesk_auth_upstream_duration_seconds_count",
            r#"upstream="session""#
        ) >= 1.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_http_requests_total",
            r#"route="auth",status="2xx""#
        ),
        3.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_http_requests_total",
            r#"route="auth",status="4xx""#
        ),
        6.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_http_requests_total",
            r#"route="tokens",status="4xx""#
        ),
        1.0
    );
    assert_eq!(
        grew(
            "tiledesk_auth_http_requests_total",
            r#"route="healthz",status="2xx""#
        ),
        1.0
    );
    assert!(
        grew(
            "tiledesk_auth_http_request_duration_seconds_count",
            r#"route="auth""#
        ) >= 10.0
    );
    assert_eq!(grew("tiledesk_auth_secret_reloads_total", ""), 1.0);
    assert!(sample(&after, "tiledesk_auth_secret_reloaded_timestamp_seconds", "") > 1.7e9);

    // Nobody in them: no email, no user id, no address, no token, no secret.
    for private in [
        EMAIL,
        user_id.as_str(),
        "backend-7",
        "127.0.0.1",
        SECRET,
        API_KEY,
        "JWT ",
    ] {
        assert!(!after.contains(private), "{private:?} in the metrics:\n{after}");
    }
}
