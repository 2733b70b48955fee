//! The identity audit trail of the real binary: a record per token minted through every way in (password, login
//! session, the site's session, a site backend's API key), read back with `tiledesk-auth audit`; `users disable`
//! stopping a running service's minting at once, recorded too.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{API_KEY, PROJECT, SECRET, Server, audit, http, post_auth, run_cli, token_claims, users_add};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "andrew@scientists.com";

/// A site whose "who is signed in" URL says `site-42` to a visitor with its `shop` cookie, 401 to anyone else (the
/// service's start-up probe included).
fn site() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/me", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 4096];
            let read = stream.read(&mut request).unwrap_or(0);
            let signed_in = String::from_utf8_lossy(&request[..read])
                .to_ascii_lowercase()
                .contains("cookie: shop=");
            let (status, body) = if signed_in {
                ("200 OK", r#"{"id": "site-42", "firstname": "Grace"}"#)
            } else {
                ("401 Unauthorized", r#"{"error": "not signed in"}"#)
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// The `jti` of a token answer.
fn jti(body: &str) -> String {
    token_claims(body)["jti"].as_str().unwrap().to_owned()
}

/// Polls the trail until it holds `count` records of `event` (the writer runs on its own), at most 10 s.
fn audit_until(db: &str, event: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = audit(db, &[]);
        if records.iter().filter(|r| r["event"] == event).count() >= count {
            return records;
        }
        assert!(std::time::Instant::now() < deadline, "{records:#?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn every_way_in_is_recorded_and_a_disabled_user_gets_no_token_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let (code, _, stderr) = users_add(None, &db, EMAIL, PASSWORD, &[]);
    assert_eq!(code, 0, "{stderr}");
    let server = Server::start(
        &["--session-url", &site()],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            ("TILEDESK_API_KEY", API_KEY.to_owned()),
            ("TILEDESK_AUTH_DATABASE", db.clone()),
        ],
    );
    let right = format!(r#"{{"email": "{EMAIL}", "password": "{PASSWORD}"}}"#);

    // Every way in: a password, its login session, the site's session, a site backend.
    let by_password = post_auth(server.addr, &right, None);
    assert_eq!(by_password.status, 200, "{}", by_password.body);
    let andrew = serde_json::from_str::<Value>(&by_password.body).unwrap()["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login_session = by_password
        .headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .map(|(_, value)| value.split(';').next().unwrap().to_owned())
        .find(|cookie| cookie.contains("tdauth_login="))
        .unwrap();
    let refreshed = post_auth(server.addr, "{}", Some(&login_session));
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let by_site = post_auth(server.addr, "{}", Some("shop=grace"));
    assert_eq!(by_site.status, 200, "{}", by_site.body);
    let (status, by_backend) = http(
        server.addr,
        "POST",
        "/tokens",
        &[
            ("Authorization", &format!("Bearer {API_KEY}")),
            ("Content-Type", "application/json"),
        ],
        r#"{"user_id": "backend-7"}"#,
    );
    assert_eq!(status, 200, "{by_backend}");
    // Refusals mint nothing, so they are not in the trail.
    let wrong = format!(r#"{{"email": "{EMAIL}", "password": "not it"}}"#);
    assert_eq!(post_auth(server.addr, &wrong, None).status, 401);
    assert_eq!(post_auth(server.addr, "{}", Some("nobody=1")).status, 401);

    let records = audit_until(&db, "minted", 4);
    let minted: Vec<&Value> = records.iter().filter(|r| r["event"] == "minted").collect();
    assert_eq!(minted.len(), 4, "{records:#?}");
    let expected = [
        ("password", andrew.as_str(), jti(&by_password.body)),
        ("login_session", andrew.as_str(), jti(&refreshed.body)),
        ("session", "site-42", jti(&by_site.body)),
        ("api_key", "backend-7", jti(&by_backend)),
    ];
    for (record, (way, user, jti)) in minted.iter().zip(&expected) {
        assert_eq!(record["way"], *way, "{record}");
        assert_eq!(record["user_id"], *user, "{record}");
        assert_eq!(record["chat_id"], format!("{PROJECT}_{user}"), "{record}");
        assert_eq!(record["jti"], *jti, "{record}");
        assert_eq!(record["address"], "127.0.0.1", "{record}");
        assert!(record["expires_at"].as_i64().unwrap() > record["at"].as_i64().unwrap());
    }
    // One user's records, and the other formats.
    let grace = audit(&db, &["--user", "site-42"]);
    assert_eq!(grace.len(), 1);
    let (code, csv, _) = run_cli(
        &["audit", "--database", &db, "--since", "1h", "--format", "csv"],
        &[],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(csv.lines().count(), 5, "a header and four records:\n{csv}");
    assert!(csv.starts_with("at,event,way,user_id,chat_id,jti,expires_at,address,dropped"));
    let (code, table, _) = run_cli(&["audit", "--database", &db, "--since", "1h"], &[], "");
    assert_eq!(code, 0);
    assert!(
        table.contains("backend-7") && table.contains("login_session"),
        "{table}"
    );

    // Disabled while the service runs: no token from the next request on, by password or by login session.
    let (code, _, stderr) = run_cli(&["users", "disable", "--database", &db, EMAIL], &[], "");
    assert_eq!(code, 0, "{stderr}");
    let refused = post_auth(server.addr, &right, None);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("account_disabled"), "{}", refused.body);
    assert_eq!(post_auth(server.addr, "{}", Some(&login_session)).status, 401);
    // A wrong password still says only that it is wrong.
    assert_eq!(post_auth(server.addr, &wrong, None).status, 401);
    let (code, _, stderr) = run_cli(&["users", "enable", "--database", &db, &andrew], &[], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(post_auth(server.addr, &right, None).status, 200);

    let changes: Vec<Value> = audit(&db, &["--user", &andrew])
        .into_iter()
        .filter(|r| r["event"] != "minted")
        .collect();
    let events: Vec<&str> = changes.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["disabled", "enabled"], "{changes:#?}");
}
