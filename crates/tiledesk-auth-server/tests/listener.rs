//! The real binary on a real listener: a full session with `RUST_LOG=trace`, SIGTERM with a request in
//! flight (it completes), no secret, API key, password or token in any captured log line, and SIGHUP rotating
//! the secret and the API key while a client mints without pause.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::{API_KEY, PROJECT, SECRET, Server, audit, http, parse_response, run_cli};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn full_session_then_graceful_shutdown_and_no_secret_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let (code, _, stderr) = run_cli(
        &[
            "users",
            "add",
            "--database",
            &db,
            "--email",
            "andrew@scientists.com",
            "--password-stdin",
        ],
        &[],
        &format!("{PASSWORD}\n"),
    );
    assert_eq!(code, 0, "{stderr}");

    let mut server = Server::start(
        &[],
        &[
            ("RUST_LOG", "trace".to_owned()),
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET_FILE", secret_file.display().to_string()),
            ("TILEDESK_API_KEY_FILE", key_file.display().to_string()),
            ("TILEDESK_AUTH_DATABASE", db.clone()),
        ],
    );
    let json = [("Content-Type", "application/json")];
    let bearer = format!("Bearer {API_KEY}");
    let with_key = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];

    let (status, _) = http(server.addr, "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
    let login = format!(r#"{{"email": "andrew@scientists.com", "password": "{PASSWORD}"}}"#);
    let (status, body) = http(server.addr, "POST", "/auth", &json, &login);
    assert_eq!(status, 200, "{body}");
    let auth_token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = http(
        server.addr,
        "POST",
        "/auth",
        &json,
        r#"{"email": "andrew@scientists.com", "password": "wrong-pw-123"}"#,
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        server.addr,
        "POST",
        "/tokens",
        &with_key,
        r#"{"user_id": "site-7"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let site_token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = http(
        server.addr,
        "POST",
        "/tokens",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer wrong-api-key-0000000"),
        ],
        r#"{"user_id": "x"}"#,
    );
    assert_eq!(status, 401);

    // A request in flight: headers and half the body sent, then SIGTERM, then the rest of the body.
    let body = r#"{"user_id": "in-flight-user"}"#;
    let (first, rest) = body.split_at(10);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST /tokens?probe=in-flight HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAuthorization: {bearer}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{first}",
        server.addr,
        body.len()
    )
    .unwrap();
    server.wait_for_log(|l| l.contains("probe=in-flight") && l.contains("started processing request"));
    signal(&server, "TERM");
    server.wait_for_log(|l| l.contains("shutting down"));
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (status, body) = parse_response(&response);
    assert_eq!(status, 200, "the request in flight completes: {response}");
    let in_flight_token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(server.wait_exit().success());

    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.lines().last().is_some_and(|l| l.contains("stopped")),
        "nothing after `stopped` (the audit trail is written before): {logs}"
    );
    // Every token minted is in the audit trail, the one minted during the shutdown too: read once, after the exit.
    let trail = audit(&db, &[]);
    let mut recorded: Vec<String> = trail
        .iter()
        .filter(|record| record["event"] == "minted")
        .map(|record| record["user_id"].as_str().unwrap().to_owned())
        .collect();
    recorded.sort();
    assert_eq!(recorded.len(), 3, "{trail:?}");
    assert_eq!(recorded[1..], ["in-flight-user", "site-7"], "{trail:?}");
    assert!(
        logs.contains("TRACE") && logs.contains("signed in") && logs.contains("token issued"),
        "{logs}"
    );
    let mut forbidden = vec![
        SECRET.to_owned(),
        API_KEY.to_owned(),
        PASSWORD.to_owned(),
        "wrong-pw-123".to_owned(),
    ];
    for token in [&auth_token, &site_token, &in_flight_token] {
        let jwt = token.strip_prefix("JWT ").unwrap();
        forbidden.push(jwt.to_owned());
        forbidden.extend(jwt.split('.').skip(1).map(str::to_owned)); // payload and signature alone
    }
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "a log line contains a secret: {needle}"
        );
    }
}

/// At the default level the service logs what it decides, not each request: the per-request span and its lines
/// exist only from `debug` on (the full session above checks them at `trace`).
#[test]
fn at_the_default_level_requests_leave_no_line_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &[],
        &[
            ("RUST_LOG", "info".to_owned()),
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            (
                "TILEDESK_AUTH_DATABASE",
                format!("sqlite://{}", dir.path().join("users.db").display()),
            ),
        ],
    );
    for _ in 0..3 {
        assert_eq!(http(server.addr, "GET", "/healthz?probe=quiet", &[], "").0, 200);
    }
    assert_eq!(http(server.addr, "GET", "/nowhere?probe=quiet", &[], "").0, 404);
    signal(&server, "TERM");
    assert!(server.wait_exit().success());
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("listening on") && logs.contains("stopped"),
        "{logs}"
    );
    assert!(
        !logs.contains("probe=quiet") && !logs.contains("processing request"),
        "{logs}"
    );
}

/// Whether `token` (`JWT <jwt>`) is a valid visitor token of the test project signed with `secret`.
fn signed_with(token: &str, secret: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[format!("https://tiledesk.com/projects/{PROJECT}")]);
    jsonwebtoken::decode::<Value>(
        token.strip_prefix("JWT ").unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .is_ok()
}

fn mint(addr: SocketAddr, key: &str) -> (u16, String) {
    let bearer = format!("Bearer {key}");
    let (status, body) = http(
        addr,
        "POST",
        "/tokens",
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
        r#"{"user_id": "rotating"}"#,
    );
    let token = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .unwrap_or(body);
    (status, token)
}

/// Replaces `path` the way an operator or a secret manager does: write aside, then rename over.
fn rotate(path: &std::path::Path, value: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, value).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// Sends `signal` (`HUP`, `TERM`) to the server.
fn signal(server: &Server, signal: &str) {
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn sighup_rotates_the_secret_and_the_api_key_without_a_failed_request() {
    const NEW_SECRET: &str = "rotated-secret-5b2c7d9e-0f1a-4c3b";
    const NEW_KEY: &str = "rotated-site-backend-key-9876543210";
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, API_KEY).unwrap();
    let server = Server::start(
        &[],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET_FILE", secret_file.display().to_string()),
            ("TILEDESK_API_KEY_FILE", key_file.display().to_string()),
            (
                "TILEDESK_AUTH_DATABASE",
                format!("sqlite://{}", dir.path().join("users.db").display()),
            ),
        ],
    );
    let addr = server.addr;

    // A site backend minting without pause, across the rotation. Each answer carries the instants its request
    // started and ended: a request started after the reload was seen in the log must be signed with the new
    // secret, one answered before the signal with the old one, and one in between with either (a request sent
    // before the signal may be served after the reload). Counting answers instead raced: the client can run far
    // ahead of the reader, so "the last answers" may all predate the reload.
    let (progress, minted) = channel::<(Instant, Instant, u16, String)>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let started = Instant::now();
                let (status, token) = mint(addr, API_KEY);
                if progress.send((started, Instant::now(), status, token)).is_err() {
                    break;
                }
            }
        })
    };
    let mut results = Vec::new();
    // Takes answers until `n` of them started at or after `since`.
    let take_since = |since: Instant, n: usize, results: &mut Vec<(Instant, Instant, u16, String)>| {
        let mut counted = 0;
        while counted < n {
            let answer = minted
                .recv_timeout(WAIT)
                .expect("the minting client stopped answering");
            counted += usize::from(answer.0 >= since);
            results.push(answer);
        }
    };
    take_since(Instant::now(), 20, &mut results);
    rotate(&secret_file, &format!("{NEW_SECRET}\n"));
    let signalled = Instant::now();
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("project secret reloaded"));
    // Each reload ends with the API key file: wait for that line too, so the next wait starts after this reload.
    server.wait_for_log(|l| l.contains("API key reloaded"));
    let reloaded = Instant::now();
    take_since(reloaded, 20, &mut results);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    client.join().unwrap();
    results.extend(minted.try_iter());

    let (mut old, mut new) = (0, 0);
    for (started, ended, status, token) in &results {
        assert_eq!(*status, 200, "a request failed during the rotation: {token}");
        if *ended < signalled {
            assert!(signed_with(token, SECRET), "answered before the signal: {token}");
            old += 1;
        } else if *started >= reloaded {
            assert!(
                signed_with(token, NEW_SECRET) && !signed_with(token, SECRET),
                "tokens minted after the reload use the new secret: {token}"
            );
            new += 1;
        } else {
            assert!(
                signed_with(token, SECRET) || signed_with(token, NEW_SECRET),
                "{token}"
            );
        }
    }
    assert!(
        old >= 20 && new >= 20,
        "{old} answered before the signal, {new} started after the reload"
    );

    // A bad file is refused and the current secret kept.
    rotate(&secret_file, "  \n");
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("NOT reloaded"));
    server.wait_for_log(|l| l.contains("API key reloaded"));
    let (status, token) = mint(addr, API_KEY);
    assert_eq!(status, 200);
    assert!(signed_with(&token, NEW_SECRET));
    // So is a secret too short to be a key (a 1-byte one was accepted once), with a line saying why.
    rotate(&secret_file, "x\n");
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("NOT reloaded") && l.contains("at least 32"));
    server.wait_for_log(|l| l.contains("API key reloaded"));
    let (status, token) = mint(addr, API_KEY);
    assert_eq!(status, 200);
    assert!(signed_with(&token, NEW_SECRET), "the previous secret is kept");
    // So is a file read while it was being written in place: the first 32 bytes of a 36-byte secret are long enough
    // for a key, but shorter than the secret in use.
    let half_written = &"0f8e6d4c-2b1a-4978-8695-a4b3c2d1e0f9"[..32];
    rotate(&secret_file, half_written);
    signal(&server, "HUP");
    server.wait_for_log(|l| {
        l.contains("NOT reloaded") && l.contains("shorter than the one in use (32 < 33 bytes)")
    });
    server.wait_for_log(|l| l.contains("API key reloaded"));
    let (status, token) = mint(addr, API_KEY);
    assert_eq!(status, 200);
    assert!(signed_with(&token, NEW_SECRET), "the previous secret is kept");

    // The API key file rotates on the same signal, with an overlap: while the file lists both keys both work,
    // then the old one stops working.
    rotate(&key_file, &format!("# rotating\n{API_KEY}\n{NEW_KEY}\n"));
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("API key reloaded") && l.contains("keys=2"));
    assert_eq!(mint(addr, API_KEY).0, 200);
    assert_eq!(mint(addr, NEW_KEY).0, 200);
    rotate(&key_file, NEW_KEY);
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("API key reloaded") && l.contains("keys=1"));
    assert_eq!(mint(addr, API_KEY).0, 401);
    let (status, token) = mint(addr, NEW_KEY);
    assert_eq!(status, 200);
    assert!(signed_with(&token, NEW_SECRET));

    // Emptying the key file revokes every key (it used to keep the last one working).
    rotate(&key_file, "# revoked: the site backend was compromised\n");
    signal(&server, "HUP");
    server.wait_for_log(|l| l.contains("every API key revoked"));
    assert_eq!(mint(addr, NEW_KEY).0, 401);
    assert_eq!(mint(addr, API_KEY).0, 401);

    let logs = server.logs.lock().unwrap().join("\n");
    for needle in [SECRET, NEW_SECRET, half_written, API_KEY, NEW_KEY] {
        assert!(!logs.contains(needle), "a log line contains {needle}");
    }
}

/// One `POST /tokens` on a fresh connection: `None` when the server was no longer there to answer (refused, or
/// reset before a byte of answer), else the raw answer.
fn try_mint(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let body = r#"{"user_id": "under-load"}"#;
    let request = format!(
        "POST /tokens HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAuthorization: Bearer {API_KEY}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) if !response.is_empty() => Some(String::from_utf8_lossy(&response).into_owned()),
        Err(e) if !response.is_empty() => panic!("an answer cut short: {e}"),
        _ => None,
    }
}

#[test]
fn sigterm_under_load_finishes_every_answer_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        &[],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            ("TILEDESK_API_KEY", API_KEY.to_owned()),
            (
                "TILEDESK_AUTH_DATABASE",
                format!("sqlite://{}", dir.path().join("users.db").display()),
            ),
        ],
    );
    let addr = server.addr;
    let (answered, answers) = channel::<String>();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                // Bounded: at most 2000 requests per client; stops at the first request nobody answers.
                for _ in 0..2000 {
                    match try_mint(addr) {
                        Some(answer) => {
                            if answered.send(answer).is_err() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
            })
        })
        .collect();
    drop(answered);
    // Under load: 200 answers in, then SIGTERM.
    let mut all: Vec<String> = (0..200).map(|_| answers.recv_timeout(WAIT).unwrap()).collect();
    signal(&server, "TERM");
    assert!(server.wait_exit().success(), "a clean exit");
    for client in clients {
        client.join().unwrap();
    }
    all.extend(answers.try_iter());
    for answer in &all {
        let (status, body) = parse_response(answer);
        assert_eq!(status, 200, "every answer begun is complete and good: {answer}");
        assert!(body.starts_with(r#"{"token":"JWT "#), "{body}");
    }
}

#[test]
fn the_health_command_says_whether_a_running_service_is_alive_and_ready() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let server = Server::start(
        &[],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            ("TILEDESK_AUTH_DATABASE", db),
        ],
    );
    let addr = server.addr.to_string();
    let (code, stdout, _) = run_cli(&["health", "--listen", &addr], &[], "");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("healthz: 200"), "{stdout}");
    let (code, stdout, _) = run_cli(&["health", "--ready", "--listen", &addr], &[], "");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("readyz: 200"), "{stdout}");
    drop(server);
    // Nobody there any more.
    let (code, stdout, _) = run_cli(&["health", "--listen", &addr], &[], "");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("no answer"), "{stdout}");
}
