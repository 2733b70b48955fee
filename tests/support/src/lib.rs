//! Test support shared by the end-to-end tests, the benches and `cargo xtask`: child processes killed on drop,
//! free ports, and Debian's mosquitto as the MQTT broker Tiledesk's widget connects to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure should panic

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
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
