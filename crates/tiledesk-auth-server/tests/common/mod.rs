//! Shared set-up for the integration tests: an app on a throwaway database, and request helpers.

// Test support: a failed set-up step should panic with its error.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tiledesk_auth_server::users::{NewUser, User};
use tiledesk_auth_server::{ApiKey, AppState, LoginThrottle, Passwords, ThrottlePolicy, UserStore, app};
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer};
use tower::ServiceExt;

pub const PROJECT: &str = "64f0c0ffee0123456789abcd";
pub const SECRET: &str = "3f1c9a52-test-secret-2b8e6d4f0a17";
pub const API_KEY: &str = "site-backend-key-0123456789";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub api_key: bool,
    pub origins: Vec<&'static str>,
    pub static_dir: Option<std::path::PathBuf>,
}

pub fn project() -> ProjectId {
    ProjectId::new(PROJECT).unwrap()
}

pub fn secret() -> ProjectSecret {
    ProjectSecret::new(SECRET).unwrap()
}

pub async fn test_app(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let state = AppState {
        issuer: Arc::new(TokenIssuer::new(project(), secret())),
        users: UserStore::connect(&url).await.unwrap(),
        passwords: Passwords::new(2).unwrap(),
        throttle: Arc::new(LoginThrottle::new(ThrottlePolicy::default())),
        api_key: options.api_key.then(|| ApiKey::new(API_KEY).unwrap()),
        allowed_origins: options
            .origins
            .iter()
            .map(|o| o.parse().unwrap())
            .collect::<Vec<_>>()
            .into(),
        static_dir: options.static_dir.map(Into::into),
    };
    TestApp {
        router: app(state.clone()),
        state,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn add_user(&self, email: &str, password: &str, firstname: Option<&str>) -> User {
        let hash = self
            .state
            .passwords
            .hash(zeroize::Zeroizing::new(password.to_owned()))
            .await
            .unwrap();
        let user = NewUser {
            email: email.to_owned(),
            firstname: firstname.map(str::to_owned),
            lastname: None,
            attributes: serde_json::Map::new(),
            password_hash: hash,
        };
        self.state.users.add(&user).await.unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn post_json(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

pub fn from_address(mut request: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(IpAddr::from(ip), 40000)));
    request
}

pub fn with_api_key(mut request: Request<Body>, value: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("authorization", value.parse().unwrap());
    request
}

/// The built `tiledesk-auth` binary.
pub fn binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tiledesk-auth"))
}

/// Runs the binary with `stdin` as standard input and the given environment; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut command = binary();
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "TILEDESK_PROJECT_ID",
        "TILEDESK_SECRET",
        "TILEDESK_SECRET_FILE",
        "TILEDESK_API_KEY",
        "TILEDESK_API_KEY_FILE",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`), read to the end.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    parse_response(&response)
}

/// (status, body) of a raw HTTP/1.1 response.
pub fn parse_response(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
