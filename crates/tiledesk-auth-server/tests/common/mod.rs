//! Shared set-up for the integration tests: an app on a throwaway database, and request helpers.

// Test support: a failed set-up step should panic with its error.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tiledesk_auth_server::identity::session::{self, SessionBridge};
use tiledesk_auth_server::identity::users::{NewUser, User};
use tiledesk_auth_server::{
    ApiKey, AppState, LoginThrottle, Passwords, Reloadable, ThrottlePolicy, UserStore, app,
};
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

pub const PROJECT: &str = "64f0c0ffee0123456789abcd";
pub const SECRET: &str = "3f1c9a52-test-secret-2b8e6d4f0a17";
pub const API_KEY: &str = "site-backend-key-0123456789";

pub struct TestApp {
    pub router: BoxCloneSyncService<Request<Body>, axum::response::Response, std::convert::Infallible>,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub api_key: bool,
    pub origins: Vec<&'static str>,
    pub static_dir: Option<std::path::PathBuf>,
    /// `--static-csp`.
    pub static_csp: Option<&'static str>,
    pub trusted_proxies: Vec<&'static str>,
    /// The password hasher; two threads with the default queue when `None`.
    pub passwords: Option<Passwords>,
    /// `--session-url`.
    pub session_url: Option<String>,
    /// The session bridge's time limit; its default when `None`.
    pub session_timeout: Option<std::time::Duration>,
    /// `--session-forward-authorization`.
    pub session_forward_authorization: bool,
    /// `--session-id-prefix`.
    pub session_id_prefix: &'static str,
    /// The OpenID Connect bridge.
    pub oidc: Option<Arc<tiledesk_auth_server::identity::oidc::OidcBridge>>,
    /// The browser module served under `/tiledesk-auth/`; none (a plain `cargo build`'s) when `None`.
    pub module: Option<Arc<tiledesk_auth_server::module::BrowserModule>>,
}

pub fn project() -> ProjectId {
    ProjectId::new(PROJECT).unwrap()
}

pub fn secret() -> ProjectSecret {
    ProjectSecret::new(SECRET).unwrap()
}

/// Each of `texts` parsed (a test's own constants: a bad one panics).
fn parsed<T: std::str::FromStr>(texts: &[&str]) -> Arc<[T]>
where
    T::Err: std::fmt::Debug,
{
    texts.iter().map(|t| t.parse().unwrap()).collect()
}

pub async fn test_app(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let state = AppState {
        issuer: Reloadable::new(TokenIssuer::new(project(), secret())),
        retired_secret: Reloadable::new(None),
        users: UserStore::connect(&url).await.unwrap(),
        passwords: options.passwords.unwrap_or_else(|| Passwords::new(2).unwrap()),
        throttle: Arc::new(LoginThrottle::new(ThrottlePolicy::default())),
        api_key: options
            .api_key
            .then(|| Reloadable::new(ApiKey::new(API_KEY).unwrap())),
        allowed_origins: parsed(&options.origins),
        static_dir: options.static_dir.map(Into::into),
        static_csp: options.static_csp.map(|csp| csp.parse().unwrap()),
        trusted_proxies: parsed(&options.trusted_proxies),
        session: options.session_url.map(|url| {
            Arc::new(
                SessionBridge::new(&url, options.session_timeout.unwrap_or(session::DEFAULT_TIMEOUT))
                    .unwrap()
                    .forwarding_authorization(options.session_forward_authorization)
                    .with_id_prefix(options.session_id_prefix)
                    .unwrap(),
            )
        }),
        oidc: options.oidc,
        site: None,
        audit: None,
        cookie_security: Default::default(),
        module: options.module,
        readiness: Arc::default(),
    };
    TestApp {
        router: BoxCloneSyncService::new(app(state.clone())),
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
    /// The claims of the answer's token, once it is checked by Tiledesk's rules for the test project (no finding).
    pub fn token_claims(&self) -> serde_json::Map<String, Value> {
        let report = tiledesk_jwt::check(self.json["token"].as_str().unwrap(), &project(), &secret());
        assert!(report.findings().is_empty(), "{report}");
        report.claims().unwrap().clone()
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
    run_cli_as(None, args, env, stdin)
}

/// Another user to run the binary as: the tests that need file modes to bite when they run as root. It gets a copy
/// of the binary in a directory it owns, since the checkout may sit under a directory only root can enter.
pub struct RunAs {
    uid: u32,
    binary: std::path::PathBuf,
}

impl RunAs {
    /// `nobody`, given `dir` and a copy of the binary in it.
    pub fn nobody_in(dir: &std::path::Path) -> Self {
        let uid = 65534;
        let binary = dir.join("tiledesk-auth");
        std::fs::copy(env!("CARGO_BIN_EXE_tiledesk-auth"), &binary).unwrap();
        for path in [dir, binary.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
        }
        Self { uid, binary }
    }
}

/// The binary, run as `user` when there is one.
fn binary_as(user: Option<&RunAs>) -> std::process::Command {
    let Some(user) = user else {
        return binary();
    };
    let mut command = std::process::Command::new(&user.binary);
    std::os::unix::process::CommandExt::uid(&mut command, user.uid);
    std::os::unix::process::CommandExt::gid(&mut command, user.uid);
    command.current_dir(user.binary.parent().unwrap());
    command
}

/// `users add --email <email> <extra>` on `db` (as `user`), the password on standard input: (exit code, stdout,
/// stderr).
pub fn users_add(
    user: Option<&RunAs>,
    db: &str,
    email: &str,
    password: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec![
        "users",
        "add",
        "--database",
        db,
        "--email",
        email,
        "--password-stdin",
    ];
    args.extend_from_slice(extra);
    run_cli_as(user, &args, &[], &format!("{password}\n"))
}

/// [`run_cli`] as `user`.
pub fn run_cli_as(
    user: Option<&RunAs>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> (i32, String, String) {
    use std::process::Stdio;
    let mut command = binary_as(user);
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
    write_input(&mut child, stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Writes `input` to the child's standard input and closes it. The child may exit before it reads (a command
/// refusing its arguments, `users add --attribute role=…`; node failing to start): the pipe is then closed, and
/// what the test checks is the exit code and the child's own message, so a broken pipe is not a failure.
pub fn write_input(child: &mut std::process::Child, input: &[u8]) {
    use std::io::Write;
    match child.stdin.take().expect("stdin is piped").write_all(input) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("writing the child's standard input: {error}")
        }
        _ => {}
    }
}

/// The claims of the token in a `POST /auth` or `POST /tokens` answer.
pub fn token_claims(body: &str) -> Value {
    use base64::Engine;
    let answer: Value = serde_json::from_str(body).unwrap();
    let jwt = answer["token"].as_str().unwrap().trim_start_matches("JWT ");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// `POST /auth` with `body` as JSON (and `cookie`, if any) to the server at `addr`, read off the wire.
pub fn post_auth(addr: SocketAddr, body: &str, cookie: Option<&str>) -> RawResponse {
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    raw_exchange(
        addr,
        format!(
            "POST /auth HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{cookie}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
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

pub use tiledesk_test_support::parse_response;

const LISTENER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The real binary on a real listener, its stderr captured line by line; killed when dropped.
pub struct Server {
    process: tiledesk_test_support::Process,
    pub addr: SocketAddr,
    lines: std::sync::mpsc::Receiver<String>,
    pub logs: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// `tiledesk-auth serve --listen 127.0.0.1:0 <args>` with `env`; returns once it listens.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start_as(None, args, env)
    }

    /// [`Server::start`] as `user`.
    pub fn start_as(user: Option<&RunAs>, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start_command(binary_as(user), args, env)
    }

    /// [`Server::start`] with at most `files` open file descriptors (soft and hard), through util-linux's
    /// `prlimit`.
    pub fn start_with_open_files(files: u64, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = std::process::Command::new("prlimit");
        command
            .arg(format!("--nofile={files}:{files}"))
            .arg(env!("CARGO_BIN_EXE_tiledesk-auth"));
        Self::start_command(command, args, env)
    }

    /// Started with the support crate's harness; every line it logs is kept in `logs` and handed to
    /// [`Server::wait_for_log`].
    fn start_command(mut command: std::process::Command, args: &[&str], env: &[(&str, String)]) -> Self {
        command.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        for var in ["TILEDESK_SECRET", "TILEDESK_API_KEY"] {
            command.env_remove(var);
        }
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let started = tiledesk_test_support::try_start(command, "listening on http://", true, LISTENER_WAIT)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = started
            .ready
            .split("listening on http://")
            .nth(1)
            .unwrap()
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut seen = started.before;
        seen.push(started.ready);
        let logs = Arc::new(std::sync::Mutex::new(seen));
        let (sender, lines) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        let from_child = started.lines;
        std::thread::spawn(move || {
            for line in from_child {
                sink.lock().unwrap().push(line.clone());
                let _ = sender.send(line);
            }
        });
        Self {
            process: started.process,
            addr,
            lines,
            logs,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Kills it at once (SIGKILL: no graceful shutdown); [`Server::reap`] then waits for it.
    pub fn kill(&mut self) {
        self.process.0.kill().unwrap();
    }

    /// Waits for it to end.
    pub fn reap(&mut self) -> std::process::ExitStatus {
        self.process.0.wait().unwrap()
    }

    /// Waits for the next log line matching `wanted`; panics with the logs so far after 30 s.
    pub fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + LISTENER_WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
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
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + LISTENER_WAIT;
        loop {
            let left = deadline
                .checked_duration_since(std::time::Instant::now())
                .expect("the server did not exit");
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return self.process.0.wait().unwrap();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("the server did not exit"),
            }
        }
    }
}

/// A response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    /// The status code; 0 when the server closed without answering.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, lossily decoded.
    pub body: String,
}

impl RawResponse {
    /// The value of header `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` code of a JSON error body, or "" when there is none.
    pub fn code(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Sends `request` as raw bytes (from a second thread, so a server that answers before reading everything is
/// still heard) and reads the response until the server closes; at most 30 s.
pub fn raw_exchange(addr: SocketAddr, request: Vec<u8>) -> RawResponse {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LISTENER_WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        // The server may close before taking everything (a 413): a write error is expected then.
        let _ = writer.write_all(&request);
    });
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A signal to the test process (a child exiting) interrupted the read: nothing was lost, read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A reset after the answer arrived: the answer is what counts.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !bytes.is_empty() => break,
            Err(e) => panic!("reading the response: {e}"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    sending.join().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `tiledesk-auth audit --format json` on `db`: the records.
pub fn audit(db: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--database", db, "--since", "1h", "--format", "json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = run_cli(&args, &[], "");
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
