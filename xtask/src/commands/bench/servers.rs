//! The processes a bench measures: a throwaway project, the release `tiledesk-auth`, the Node baselines.

use super::*;

/// A throwaway project (secret, user database) with an API key and one user, `BENCH_EMAIL`.
pub(super) struct Project {
    project: tiledesk_test_support::Project,
    pub(super) api_key: String,
    pub(super) password: String,
}

impl std::ops::Deref for Project {
    type Target = tiledesk_test_support::Project;
    fn deref(&self) -> &Self::Target {
        &self.project
    }
}

impl Project {
    pub(super) fn create(dir: &Path) -> anyhow::Result<Self> {
        let project = Self {
            project: tiledesk_test_support::Project::create(dir)?,
            api_key: random_hex(24)?,
            password: random_hex(12)?,
        };
        project
            .add_user(
                &release_binary(),
                BENCH_EMAIL,
                &["Bench", "Mark"],
                &project.password,
            )
            .map_err(anyhow::Error::msg)?;
        Ok(project)
    }
}

pub(super) fn release_binary() -> PathBuf {
    root().join("target/release/tiledesk-auth")
}

/// A server under test: its process, its base URL and its pid (for memory).
pub(super) struct Server {
    pub(super) process: Process,
    pub(super) url: String,
}

impl Server {
    pub(super) fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Resident memory, in KiB, from `/proc`.
    pub(super) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }

    /// CPU time its threads have used so far (user and system, in clock ticks of 1/100 s, as `/proc` counts them),
    /// summed by thread name: the runtime's workers, SQLite's connection threads, and so on.
    pub(super) fn cpu_by_thread(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        cpu_by_thread(self.pid())
    }
}

/// [`Server::cpu_by_thread`] of the process `pid`.
fn cpu_by_thread(pid: u32) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            // A thread that ended meanwhile.
            continue;
        };
        // "<tid> (<name>) <state> ...": the name may hold spaces and parentheses; the fields after the last ')'
        // are numbered from 3, utime and stime being the 14th and 15th.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: u64 = fields
            .get(11..13)
            .context("a /proc stat line without utime and stime")?
            .iter()
            .map(|field| field.parse::<u64>())
            .sum::<Result<_, _>>()?;
        *by_name.entry(stat[open + 1..close].to_owned()).or_default() += ticks;
    }
    Ok(by_name)
}

/// Microseconds of CPU per request by thread name, between two [`Server::cpu_by_thread`] readings over `requests`
/// requests; threads that used less than 0.01 µs a request are left out.
pub(super) fn cpu_per_request(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    requests: u64,
) -> Vec<(String, f64)> {
    after
        .iter()
        .filter_map(|(name, &ticks)| {
            let used = ticks.saturating_sub(before.get(name).copied().unwrap_or(0));
            // 10 000 µs a tick.
            let micros = used as f64 * 10_000.0 / requests.max(1) as f64;
            (micros >= 0.01).then(|| (name.clone(), micros))
        })
        .collect()
}

/// Spawns `command` and waits for a line containing `ready` on its stdout or stderr (the other goes to null); the
/// pipe keeps being drained, so a chatty server never blocks on a full pipe.
pub(super) fn spawn_ready(
    command: Command,
    ready: &'static str,
    stderr: bool,
) -> anyhow::Result<(Process, String)> {
    let started = tiledesk_test_support::try_start(command, ready, stderr, Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    Ok((started.process, started.ready))
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(tiledesk_test_support::free_port())
}

/// The release `tiledesk-auth serve`, with the API key (so `POST /tokens` exists), at the default log level.
pub(super) fn start_server(project: &Project, dir: &Path) -> anyhow::Result<Server> {
    start_server_on(project, dir, None)
}

/// [`start_server`], its threads kept to CPU `cpu` when one is given (see [`pinned`]).
pub(super) fn start_server_on(project: &Project, dir: &Path, cpu: Option<usize>) -> anyhow::Result<Server> {
    start_server_with(project, dir, cpu, &[])
}

/// [`start_server_on`] with `extra` arguments to `serve`.
pub(super) fn start_server_with(
    project: &Project,
    dir: &Path,
    cpu: Option<usize>,
    extra: &[&str],
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let key_file = dir.join("api-key");
    std::fs::write(&key_file, &project.api_key)?;
    let mut command = project.serve(&release_binary(), &format!("127.0.0.1:{port}"));
    command
        .arg("--api-key-file")
        .arg(&key_file)
        .env_remove("RUST_LOG")
        // wrk's connections all come from 127.0.0.1: the per-address cap (256) would refuse the benches' own
        // clients. The login floods come from addresses of their own (see `flood.rs`).
        .args(["--max-connections-per-address", "4096"])
        .args(extra);
    let command = match cpu {
        Some(cpu) => pinned(&command, cpu),
        None => command,
    };
    let (process, _) = spawn_ready(command, "listening on", true)?;
    Ok(Server {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// `command` run by `taskset -c <cpu>`: the process and every thread it starts stay on that CPU, and the runtime,
/// which sizes its worker pool from the CPUs it may use, starts one worker. Two servers compared this way get the
/// same CPU each, and the load generator, pinned to another, takes none of it.
pub(super) fn pinned(command: &Command, cpu: usize) -> Command {
    let mut taskset = Command::new("taskset");
    taskset
        .args(["-c", &cpu.to_string()])
        .arg(command.get_program())
        .args(command.get_args());
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => taskset.env(name, value),
            None => taskset.env_remove(name),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        taskset.current_dir(dir);
    }
    taskset
}

/// Whether [`pinned`] can give a server and its load generator a CPU each.
pub(super) fn can_pin() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
        && Command::new("taskset")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// `bench/baseline-node/server.js`: Express + jsonwebtoken, the tutorial's stack; `tuned`: with the secret made a
/// `KeyObject` once (jsonwebtoken's slow path for string secrets avoided).
pub(super) fn start_baseline(project: &Project, tuned: bool) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new("node");
    command
        .arg("server.js")
        .current_dir(root().join("bench/baseline-node"))
        .env("PORT", port.to_string())
        .env("TILEDESK_PROJECT_ID", &project.id)
        .env("TILEDESK_SECRET", &project.secret)
        .env("TILEDESK_API_KEY", &project.api_key)
        .env("BASELINE_KEY_OBJECT", if tuned { "1" } else { "0" })
        .env("NODE_ENV", "production");
    let (process, _) = spawn_ready(command, "listening on", false)?;
    Ok(Server {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// `bench/baseline-axum`, release build (see [`super::service::floor`]), on CPU `cpu` when one is given.
pub(super) fn start_bare_axum(project: &Project, cpu: Option<usize>) -> anyhow::Result<Server> {
    let port = free_port()?;
    let mut command = Command::new(root().join("target/release/baseline-axum"));
    command
        .env("PORT", port.to_string())
        .env("TILEDESK_PROJECT_ID", &project.id)
        .env("TILEDESK_SECRET", &project.secret);
    let command = match cpu {
        Some(cpu) => pinned(&command, cpu),
        None => command,
    };
    let (process, _) = spawn_ready(command, "listening on", false)?;
    Ok(Server {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_request_is_the_time_used_between_readings_over_the_requests() {
        let before = BTreeMap::from([
            ("tokio-rt-worker".to_owned(), 100),
            ("sqlx-sqlite-wor".to_owned(), 5),
        ]);
        let after = BTreeMap::from([
            ("tokio-rt-worker".to_owned(), 250),
            ("sqlx-sqlite-wor".to_owned(), 5),
            ("started-since".to_owned(), 3),
        ]);
        // 150 ticks (1.5 s) over 100 000 requests: 15 µs each; a thread that used nothing is left out.
        assert_eq!(
            cpu_per_request(&before, &after, 100_000),
            [
                ("started-since".to_owned(), 0.3),
                ("tokio-rt-worker".to_owned(), 15.0)
            ]
        );
    }

    #[test]
    fn threads_are_read_from_proc_by_name_whatever_the_name_holds() {
        let (busy, stop) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let (said_busy, wait_busy) = busy;
        let (say_stop, wait_stop) = stop;
        // Parentheses and spaces in a name, as `/proc` shows it between the pid and the state.
        let burner = std::thread::Builder::new()
            .name("cpu (burn) x".into())
            .spawn(move || {
                // Busy until `/proc` counts two ticks of this thread's own CPU.
                let mut spins = 0u64;
                while cpu_by_thread(std::process::id())
                    .ok()
                    .and_then(|by_name| by_name.get("cpu (burn) x").copied())
                    .unwrap_or(0)
                    < 2
                {
                    spins = spins.wrapping_add(std::hint::black_box(1));
                }
                said_busy.send(spins).unwrap();
                wait_stop.recv().ok();
            })
            .unwrap();
        wait_busy.recv().unwrap();
        let by_name = cpu_by_thread(std::process::id()).unwrap();
        assert!(by_name["cpu (burn) x"] >= 2, "{by_name:?}");
        say_stop.send(()).unwrap();
        burner.join().unwrap();
    }
}
