//! Test support shared by the end-to-end tests, the benches and `cargo xtask`: child processes killed on drop,
//! free ports, throwaway Tiledesk projects with their user database, and Debian's mosquitto as the MQTT broker
//! Tiledesk's widget connects to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failure should panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A free port on 127.0.0.1, below the kernel's ephemeral range (32768 and up): a port the kernel handed out for
/// `:0` could be taken by an outgoing connection before the server meant for it binds it (seen once: an OpenID
/// provider that never started). Each call in a process starts its search at another place.
pub fn free_port() -> u16 {
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        / 7;
    let seed = seed.wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(104_729));
    for i in 0..1000u32 {
        let port = 20_000 + (seed.wrapping_add(i * 7919) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000 on 127.0.0.1 after 1000 tries");
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
        self.serve_on(binary, listen, &self.database)
    }

    /// [`Project::serve`] with the users in `database` instead.
    pub fn serve_on(&self, binary: &Path, listen: &str, database: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", listen, "--database", database])
            .env("TILEDESK_PROJECT_ID", &self.id)
            .env("TILEDESK_SECRET_FILE", &self.secret_file)
            .env_remove("TILEDESK_SECRET")
            .env_remove("TILEDESK_API_KEY")
            .env_remove("TILEDESK_API_KEY_FILE");
        command
    }
}

/// A minimal HTTP/1.1 exchange with a loopback URL (`http://host:port/path`), a JSON body if any: the status code
/// and the body.
pub fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let body = body.unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    parse_response(&answer)
}

/// (status, body) of a raw HTTP/1.1 response; status 0 when there is none.
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

/// A child process killed when dropped, even when the test fails.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A virtual X display (Debian's Xvfb, no TCP) for a browser that needs one, WebKitGTK's MiniBrowser; gone when
/// dropped. Display numbers from 100 up, each process starting its search at another place; one held by another
/// server (its lock file) is skipped, and one lost to a race is tried again with the next.
pub struct Display {
    /// The value for `DISPLAY`, `:N`.
    pub name: String,
    _server: Process,
}

impl Display {
    /// Starts Xvfb on a free display and waits for its socket.
    pub fn start() -> Self {
        static CALLS: AtomicU32 = AtomicU32::new(0);
        let seed = std::process::id().wrapping_add(CALLS.fetch_add(1, Ordering::Relaxed) * 13);
        for i in 0..50u32 {
            let n = 100 + (seed.wrapping_add(i) % 800);
            if Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let mut server = Process(
                Command::new("Xvfb")
                    .arg(format!(":{n}"))
                    .args(["-screen", "0", "1280x1024x24", "-nolisten", "tcp"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("Xvfb (Debian's xvfb; cargo xtask test installs it)"),
            );
            let socket = format!("/tmp/.X11-unix/X{n}");
            let deadline = std::time::Instant::now() + WAIT;
            while std::time::Instant::now() < deadline {
                if server.0.try_wait().ok().flatten().is_some() {
                    break; // lost the display to another server: the next one
                }
                if Path::new(&socket).exists() {
                    return Self {
                        name: format!(":{n}"),
                        _server: server,
                    };
                }
                std::thread::sleep(Duration::from_millis(20)); // polling for the socket, not a pause
            }
        }
        panic!("no X display could be started with Xvfb");
    }
}

/// Waits until something listens on 127.0.0.1:`port`, at most [`WAIT`]; panics with `what` otherwise.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20)); // polling for the listener, not a pause
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
    /// The lines that came before it (start-up warnings...).
    pub before: Vec<String>,
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
    let mut before = Vec::new();
    loop {
        match lines.recv_timeout(wait) {
            Ok(line) if line.contains(ready) => {
                return Ok(Started {
                    process,
                    ready: line,
                    before,
                    lines,
                });
            }
            Ok(line) => before.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("`{ready}` did not come from {command:?} within {wait:?}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "{command:?} ended its output (exited?) without saying `{ready}`"
                ));
            }
        }
    }
}

/// The mock Tiledesk (`tiledesk-mock`: Tiledesk's API, the loader, the chat relay), running until dropped. The one
/// launcher of the tests, the benchmarks and `cargo xtask demo`/`dev`/`test`.
pub struct Mock {
    /// The process.
    pub process: Process,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl Mock {
    /// Starts the `tiledesk-mock` at `binary` for `project` (its shared `secret`) on `listen`, `extra` arguments first
    /// (the shop's). With `real`, it serves Tiledesk's real widget built in that directory and relays chat messages
    /// through that broker; otherwise the stand-in loader. An error says why it did not start within [`WAIT`].
    pub fn try_start(
        binary: &Path,
        project: &str,
        secret: &str,
        listen: &str,
        real: Option<(&Path, &Broker)>,
        extra: &[String],
    ) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command.args(extra);
        command
            .args(["--listen", listen, "--project-id", project])
            .env("TILEDESK_SECRET", secret)
            .env_remove("TILEDESK_SECRET_FILE");
        if let Some((widget, broker)) = real {
            command
                .arg("--widget-dir")
                .arg(widget)
                .args(["--mqtt", &format!("127.0.0.1:{}", broker.port)])
                .args(["--mqtt-ws", &broker.ws_url()]);
        }
        const READY: &str = "tiledesk-mock listening on ";
        let started = try_start(command, READY, false, WAIT)?;
        let url = started
            .ready
            .trim()
            .strip_prefix(READY)
            .ok_or_else(|| format!("tiledesk-mock said {:?}", started.ready))?
            .to_owned();
        Ok(Self {
            process: started.process,
            url,
        })
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
            let (port, ws_port) = (free_port(), free_port());
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
        let what = format!("mosquitto on ports {} and {}", self.port, self.ws_port);
        again(&what, || self.run());
    }
}

/// Runs `run` until it starts the server (at most 50 times): right after a stop, the port may still be held by the
/// old process for a moment.
fn again(what: &str, mut run: impl FnMut() -> bool) {
    for _ in 0..50 {
        if run() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200)); // the port is still held by the old process
    }
    panic!("{what} did not start again");
}

/// Debian's PostgreSQL as a process of its own: a fresh cluster in a temporary directory, on a free port of
/// 127.0.0.1 only (no Unix socket), trusting local connections, stopped and removed when dropped. PostgreSQL
/// refuses to run as root: as root, it runs as the system user `tiledesk-test-pg`, created if missing.
pub struct Postgres {
    process: Option<Process>,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
}

/// The system user PostgreSQL runs as when the tests run as root.
const PG_USER: &str = "tiledesk-test-pg";

impl Postgres {
    /// Creates the cluster and starts the server.
    pub fn start() -> Self {
        let bin = postgres_bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let owner = as_postgres_user(dir.path());
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run_as(&mut initdb, owner);
        let output = initdb.output().expect("initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut postgres = Self {
            process: None,
            port: 0,
            dir,
            owner,
        };
        for _ in 0..10 {
            postgres.port = free_port();
            if postgres.run() {
                return postgres;
            }
        }
        panic!("PostgreSQL did not start");
    }

    /// The URL of its `postgres` database, as the superuser `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&mut self) -> bool {
        let mut command = Command::new(postgres_bin_dir().join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string()])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            // A throwaway cluster: nothing needs to survive a crash.
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run_as(&mut command, self.owner);
        let mut child = command.spawn().expect("postgres");
        let lines = lines_of(child.stderr.take().unwrap());
        let process = Process(child);
        loop {
            match lines.recv_timeout(WAIT) {
                Ok(line) if line.contains("ready to accept connections") => {
                    self.process = Some(process);
                    return true;
                }
                Ok(line) if line.contains("could not bind") || line.contains("FATAL") => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) {
        let what = format!("PostgreSQL on port {}", self.port);
        again(&what, || self.run());
    }

    /// Stops the server (fast shutdown: connections are closed, nothing is lost).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-INT", &process.0.id().to_string()])
                .status();
            let _ = process.0.wait();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where Debian puts PostgreSQL's programs: on the `PATH` when a link put them there, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn postgres_bin_dir() -> PathBuf {
    if let Ok(output) = Command::new("sh").args(["-c", "command -v initdb"]).output()
        && output.status.success()
    {
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if let Some(dir) = std::fs::canonicalize(&path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
        {
            return dir;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL is not installed (apt-get install postgresql; `cargo xtask test` installs it)")
}

/// The (uid, gid) PostgreSQL runs as, owning `dir`: none when the tests do not run as root.
fn as_postgres_user(dir: &Path) -> Option<(u32, u32)> {
    let id = |flag: &str, user: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    if id("-u", PG_USER).is_none() {
        // Two tests may race to create it: whichever loses finds it made.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_USER,
            ])
            .stderr(Stdio::null())
            .status();
    }
    let owner = (
        id("-u", PG_USER).expect("cannot create the PostgreSQL test user"),
        id("-g", PG_USER).expect("the PostgreSQL test user's group"),
    );
    for entry in walk(dir) {
        std::os::unix::fs::chown(&entry, Some(owner.0), Some(owner.1)).unwrap();
    }
    Some(owner)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_owned()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            all.extend(walk(&entry.path()));
        }
    }
    all
}

fn run_as(command: &mut Command, owner: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

/// Debian's redis-server on a free port of 127.0.0.1, saving nothing to disk, killed when dropped.
/// [`Redis::stop`] and [`Redis::restart`] play an outage (the restarted server is empty, as after a crash).
pub struct Redis {
    process: Option<Process>,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts it.
    pub fn start() -> Self {
        let mut redis = Self {
            process: None,
            port: 0,
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..10 {
            redis.port = free_port();
            if redis.run() {
                return redis;
            }
        }
        panic!("redis-server did not start (is it installed? `cargo xtask test` installs it)");
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let Ok(mut child) = command.spawn() else {
            panic!(
                "redis-server is not installed (apt-get install redis-server; `cargo xtask test` installs it)"
            );
        };
        let lines = lines_of(child.stdout.take().unwrap());
        let process = Process(child);
        loop {
            match lines.recv_timeout(WAIT) {
                Ok(line) if line.contains("Ready to accept connections") => {
                    self.process = Some(process);
                    return true;
                }
                Ok(line) if line.contains("Could not create server TCP") => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// Stops the server: every client loses its connection.
    pub fn stop(&mut self) {
        self.process.take();
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as with a hung host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.process.as_ref().expect("redis-server is running").0.id();
        assert!(
            Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        let what = format!("redis-server on port {}", self.port);
        again(&what, || self.run());
    }
}

/// The policy README's "Content-Security-Policy" gives for the one tag, for a service at `service`, Tiledesk's
/// widget and API at `tiledesk` and its chat connection at `chat` (`ws://` or `wss://`).
pub fn content_security_policy(service: &str, tiledesk: &str, chat: &str) -> String {
    [
        "default-src 'self'".to_owned(),
        format!("script-src 'self' {service} {tiledesk} 'wasm-unsafe-eval'"),
        format!("connect-src 'self' {service} {tiledesk} {chat}"),
        format!("style-src 'self' 'unsafe-inline' {tiledesk}"),
        format!("img-src 'self' data: blob: {tiledesk}"),
        format!("font-src 'self' data: {tiledesk}"),
        format!("media-src 'self' {tiledesk}"),
        format!("frame-src 'self' blob: {tiledesk}"),
        format!("base-uri 'self' {tiledesk}"),
        "object-src 'none'".to_owned(),
    ]
    .join("; ")
}

/// Tiledesk's page snippet, as its dashboard gives it, for `project` and the loader at `loader`.
pub fn tiledesk_snippet(project: &str, loader: &str) -> String {
    format!(
        r#"window.tiledeskSettings = {{ projectid: "{project}" }};
(function (d, s, id) {{
  var w = window; var i = function () {{ i.c(arguments); }};
  i.q = []; i.c = function (args) {{ i.q.push(args); }}; w.Tiledesk = i;
  var js, fjs = d.getElementsByTagName(s)[0];
  if (d.getElementById(id)) return;
  js = d.createElement(s); js.id = id; js.async = true; js.src = "{loader}";
  fjs.parentNode.insertBefore(js, fjs);
}})(document, "script", "tiledesk-jssdk");
"#
    )
}

/// The tag `tiledesk-auth snippet` prints for the service at `base_url` and `project`, run with `binary` (one built
/// with the browser module inside).
pub fn snippet_tag(binary: &Path, base_url: &str, project: &str) -> Result<String, String> {
    let output = Command::new(binary)
        .args(["snippet", "--base-url", base_url, "--project-id", project])
        .output()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!(
            "tiledesk-auth snippet: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Writes Example Shop's page into `dir` from the checkout at `root`: `web/one-tag/index.html` with `head` where the
/// one tag goes, the page's script and style, and Tiledesk's snippet for `project` with the loader at `loader`.
pub fn write_shop_page(
    root: &Path,
    dir: &Path,
    head: &str,
    project: &str,
    loader: &str,
) -> std::io::Result<()> {
    let page = std::fs::read_to_string(root.join("web/one-tag/index.html"))?;
    std::fs::write(
        dir.join("index.html"),
        page.replacen("<!-- tiledesk-auth -->", head, 1),
    )?;
    std::fs::copy(root.join("web/one-tag/shop.js"), dir.join("shop.js"))?;
    std::fs::copy(root.join("web/demo.css"), dir.join("demo.css"))?;
    std::fs::write(dir.join("tiledesk-snippet.js"), tiledesk_snippet(project, loader))
}
