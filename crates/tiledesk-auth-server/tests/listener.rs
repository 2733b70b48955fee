//! The real binary on a real listener: a full session with `RUST_LOG=trace`, SIGTERM with a request in
//! flight (it completes), and no secret, API key, password or token in any captured log line.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{API_KEY, PROJECT, SECRET, binary, http, parse_response, run_cli};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(30);

struct Server {
    child: Child,
    addr: SocketAddr,
    lines: Receiver<String>,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(env: &[(&str, String)]) -> Self {
        let mut command = binary();
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for var in ["TILEDESK_SECRET", "TILEDESK_API_KEY"] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = channel();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        let mut server = Self {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            lines,
            logs,
        };
        let line = server.wait_for_log(|l| l.contains("listening on http://"));
        let addr = line
            .split("listening on http://")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        server.addr = addr.parse().unwrap();
        server
    }

    /// Waits for the next log line matching `wanted`; panics with the logs so far after 30 s.
    fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!(
            "log line never came; logs:\n{}",
            self.logs.lock().unwrap().join("\n")
        );
    }

    /// Waits for the process to close its stderr (it exits), then reaps it.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("the server did not exit");
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return self.child.wait().unwrap(),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the server did not exit"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

    let mut server = Server::start(&[
        ("RUST_LOG", "trace".to_owned()),
        ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
        ("TILEDESK_SECRET_FILE", secret_file.display().to_string()),
        ("TILEDESK_API_KEY_FILE", key_file.display().to_string()),
        ("TILEDESK_AUTH_DATABASE", db),
    ]);
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
    let pid = server.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
        "{logs}"
    );
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
