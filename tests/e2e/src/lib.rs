//! Helpers shared by the end-to-end tests (`tests/`) and the browser benchmark (`benches/browser.rs`): built
//! binaries, child processes killed on drop, and headless Chromium through chromedriver with a fresh profile.
//!
//! Run the tests with `cargo xtask test` and the benchmark with `cargo xtask bench`; both build what these start.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure should panic

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A file built by `cargo xtask`, under the workspace root; panics with what to run when it is missing.
pub fn built(path: &str) -> PathBuf {
    let path = root().join(path);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (or `bench`), which builds it first",
        path.display()
    );
    path
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped, even when the test fails.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` and waits for a line of its output containing `ready`; returns the process and the line.
pub fn start(mut command: Command, ready: &str, from_stderr: bool) -> (Process, String) {
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = command.spawn().unwrap();
    let pipe: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().unwrap())
    } else {
        Box::new(child.stdout.take().unwrap())
    };
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let process = Process(child);
    loop {
        match lines.recv_timeout(WAIT) {
            Ok(line) if line.contains(ready) => return (process, line),
            Ok(_) => {}
            Err(_) => panic!("`{ready}` never came from {command:?}"),
        }
    }
}

/// The built mock Tiledesk (`target/debug/tiledesk-mock`) for `project`, and its base URL.
pub fn start_mock(project: &str, secret: &str) -> (Process, String) {
    let mut command = Command::new(built("target/debug/tiledesk-mock"));
    command
        .args(["--listen", "127.0.0.1:0", "--project-id", project])
        .env("TILEDESK_SECRET", secret);
    let (process, line) = start(command, "listening on", false);
    let url = line.split("listening on ").nth(1).unwrap().trim().to_owned();
    (process, url)
}

/// Debian's headless Chromium through chromedriver, with a fresh profile; both gone when dropped.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a browser.
    pub async fn open() -> Self {
        let port = free_port();
        let mut command = Command::new("/usr/bin/chromedriver");
        command.arg(format!("--port={port}"));
        let (driver, _) = start(command, "started successfully", false);
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"goog:chromeOptions": {"args": args}});
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.as_object().unwrap().clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Ends the session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
