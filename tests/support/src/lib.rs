//! Test support shared by the end-to-end tests, the benches and `cargo xtask`: child processes killed on drop,
//! free ports, throwaway Tiledesk projects with their user database, and Debian's mosquitto as the MQTT broker
//! Tiledesk's widget connects to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure should panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `bytes` random bytes from the system, as lower-case hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A throwaway Tiledesk project on disk: its id, its secret (also in a file, as `--secret-file` reads it), and a
/// `tiledesk-auth` user database beside it.
pub struct Project {
    /// The project id.
    pub id: String,
    /// The shared secret.
    pub secret: String,
    /// The file holding the secret.
    pub secret_file: PathBuf,
    /// The user database's URL.
    pub database: String,
}

impl Project {
    /// A project with a random id (the shape of a Tiledesk one: 24 hex digits) and secret, under `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        Self::with(dir, &random_hex(12)?, &random_hex(24)?)
    }

    /// A project with this id and secret, under `dir`.
    pub fn with(dir: &Path, id: &str, secret: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let secret_file = dir.join("project-secret");
        std::fs::write(&secret_file, secret)?;
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
            secret_file,
            database: format!("sqlite://{}", dir.join("users.db").display()),
        })
    }

    /// `<binary> users add` for `email` with these names, the password on standard input; the new user's id. An
    /// error carries what the command said.
    pub fn add_user(
        &self,
        binary: &Path,
        email: &str,
        names: &[&str],
        password: &str,
    ) -> Result<String, String> {
        let mut command = Command::new(binary);
        command.args(["users", "add", "--database", &self.database, "--email", email]);
        for (flag, name) in ["--first-name", "--last-name"].iter().zip(names) {
            command.args([flag, name]);
        }
        let mut add = command
            .arg("--password-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        add.stdin
            .take()
            .expect("piped")
            .write_all(format!("{password}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let output = add.wait_with_output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!(
                "users add {email}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // "added <email> (<id>)"
        let said = String::from_utf8_lossy(&output.stdout);
        Ok(said
            .trim()
            .rsplit('(')
            .next()
            .unwrap_or_default()
            .trim_end_matches(')')
            .to_owned())
    }

    /// `<binary> serve --listen <listen>` for this project: its id, its secret file and its database.
    pub fn serve(&self, binary: &Path, listen: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", listen, "--database", &self.database])
            .env("TILEDESK_PROJECT_ID", &self.id)
            .env("TILEDESK_SECRET_FILE", &self.secret_file)
            .env_remove("TILEDESK_SECRET")
            .env_remove("TILEDESK_API_KEY")
            .env_remove("TILEDESK_API_KEY_FILE");
        command
    }
}

/// A child process killed when dropped, even when the test fails.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of a child's output, read on a thread of their own, so a chatty child never blocks on a full pipe.
pub fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// A started child, the line that said it was ready, and the rest of its output as it comes.
pub struct Started {
    /// The child.
    pub process: Process,
    /// The line containing the readiness text.
    pub ready: String,
    /// Every later line (stdout or stderr, whichever was watched).
    pub lines: mpsc::Receiver<String>,
}

/// Starts `command` and waits (at most `wait`) for a line of its output (stderr with `from_stderr`, else stdout; the
/// other goes to null) containing `ready`. An error says which command never said what.
pub fn try_start(
    mut command: Command,
    ready: &str,
    from_stderr: bool,
    wait: Duration,
) -> Result<Started, String> {
    if from_stderr {
        command.stderr(Stdio::piped()).stdout(Stdio::null());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let lines = if from_stderr {
        lines_of(child.stderr.take().expect("piped"))
    } else {
        lines_of(child.stdout.take().expect("piped"))
    };
    let process = Process(child);
    loop {
        match lines.recv_timeout(wait) {
            Ok(line) if line.contains(ready) => {
                return Ok(Started {
                    process,
                    ready: line,
                    lines,
                });
            }
            Ok(_) => {}
            Err(_) => return Err(format!("`{ready}` never came from {command:?}")),
        }
    }
}

/// [`try_start`] within [`WAIT`], for tests: a failure panics. Returns the process and its ready line.
pub fn start(command: Command, ready: &str, from_stderr: bool) -> (Process, String) {
    let started = try_start(command, ready, from_stderr, WAIT).unwrap_or_else(|e| panic!("{e}"));
    (started.process, started.ready)
}

/// Debian's mosquitto on two ports of its own (plain MQTT for the mock's relay, websockets for the widget),
/// killed when dropped. [`Broker::stop`] and [`Broker::restart`] play an outage.
pub struct Broker {
    process: Option<Process>,
    /// The plain MQTT port.
    pub port: u16,
    /// The websockets port.
    pub ws_port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts mosquitto on free ports outside the ephemeral range (it sometimes cannot bind a port used moments
    /// before, so a failed start is retried on other ports).
    pub fn start() -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        for _ in 0..10 {
            let (port, ws_port) = (quiet_port(), quiet_port());
            if port == ws_port {
                continue;
            }
            let mut broker = Self {
                process: None,
                port,
                ws_port,
                dir,
            };
            if broker.run() {
                return broker;
            }
            dir = broker.dir;
        }
        panic!("mosquitto did not start (is it installed? `cargo xtask test` installs it)");
    }

    /// The URL the widget connects to.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.ws_port)
    }

    fn run(&mut self) -> bool {
        let config = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "per_listener_settings false\nallow_anonymous true\nlog_dest stderr\n\
                 listener {} 127.0.0.1\nprotocol mqtt\nlistener {} 127.0.0.1\nprotocol websockets\n",
                self.port, self.ws_port
            ),
        )
        .unwrap();
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&config);
        // Its stdout is block-buffered in a pipe; its stderr is not.
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("mosquitto (apt-get install mosquitto)");
        let lines = lines_of(child.stderr.take().unwrap());
        let process = Process(child);
        loop {
            match lines.recv_timeout(WAIT) {
                Ok(line) if line.contains(" running") => {
                    self.process = Some(process);
                    return true;
                }
                Ok(line) if line.contains("Error") => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Stops the broker: every client loses its connection.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self) {
        for _ in 0..50 {
            if self.run() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200)); // the port is still held by the old process
        }
        panic!(
            "mosquitto did not start again on ports {} and {}",
            self.port, self.ws_port
        );
    }
}

/// A free port below the kernel's ephemeral range, so no outgoing connection takes it meanwhile.
fn quiet_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for i in 0..1000u32 {
        let port = 20_000 + ((seed / 7 + i * 7919) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
}
