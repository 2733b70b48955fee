//! `cargo xtask bench`: every figure of `BENCHMARKS.md`, measured in one run on this machine, each comparison side
//! by side (same load generator, concurrency, body and duration; interleaved rounds; medians).
//!
//! `cargo xtask bench --quick` runs shorter rounds and writes `target/bench/BENCHMARKS.md` (for checking the
//! harness, not for publishing); `--only <mint|tokens|curve|flood|soak|browser|real|attacks>` runs one section.

use crate::flood;

mod attacks;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use tiledesk_test_support::Process;

use crate::{build_binaries, cargo, command_output, pkg, random_hex, root, run, setup_build, step};

/// The request body both token servers get: the claims of the README's example.
const TOKEN_BODY: &str = r#"{"user_id":"42","firstname":"Andrew","lastname":"Wiles","email":"andrew@scientists.com","attributes":{"plan":"pro"}}"#;
const BENCH_EMAIL: &str = "bench@example.com";

/// Durations and round counts; `--quick` shrinks them.
struct Plan {
    quick: bool,
    rounds: usize,
    run_secs: u32,
    curve_secs: u32,
    flood_secs: u32,
    warmup_secs: u32,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                rounds: 3,
                run_secs: 1,
                curve_secs: 1,
                flood_secs: 2,
                warmup_secs: 1,
            }
        } else {
            Self {
                quick,
                rounds: 3,
                run_secs: 5,
                curve_secs: 3,
                flood_secs: 10,
                warmup_secs: 3,
            }
        }
    }
}

pub(crate) fn bench(args: &[String]) -> anyhow::Result<()> {
    let plan = Plan::new(args.iter().any(|a| a == "--quick"));
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let wanted = |section: &str| only.is_none_or(|o| o == section);
    setup_build()?;
    install_wrk()?;
    let baseline_dir = root().join("bench/baseline-node");
    step("installing the Node baseline's packages (npm ci, from the committed lockfile)");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&baseline_dir))?;
    step("building the release tiledesk-auth");
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "tiledesk-auth-server",
    ]))?;
    step("building the mock Tiledesk and the browser package");
    build_binaries()?;
    let package = pkg()?;

    let dir = root().join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let project = Project::create(&dir)?;
    let mut report = Report::default();

    if wanted("mint") {
        mint(&plan, &mut report)?;
    }
    if wanted("tokens") {
        side_by_side(&plan, &project, &dir, &mut report)?;
    }
    if wanted("curve") {
        curve_and_memory(&plan, &project, &dir, &mut report)?;
    }
    if wanted("flood") {
        login_flood(&plan, &project, &dir, &mut report)?;
    }
    if wanted("soak") {
        soak(&plan, &project, &dir, &mut report)?;
    }
    if wanted("browser") {
        browser(&plan, &package, &mut report)?;
    }
    if wanted("real") {
        real_widget(&plan, &mut report)?;
    }
    if wanted("attacks") && !plan.quick {
        step("the attacks of issue 11, against a fresh release server each (into SECURITY.md)");
        let table = attacks::run(&project, &dir)?;
        println!("{table}");
        write_between_markers(&root().join("SECURITY.md"), "attacks", &table)?;
    }

    let path = if plan.quick || only.is_some() {
        dir.join("BENCHMARKS.md")
    } else {
        root().join("BENCHMARKS.md")
    };
    std::fs::write(&path, report.markdown(&plan)?)?;
    println!("\n{}", report.summary.join("\n"));
    println!("\nwrote {}", path.display());
    Ok(())
}

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in `path` with `text`.
fn write_between_markers(path: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let document = std::fs::read_to_string(path)?;
    let (begin, end) = (format!("<!-- {name}:begin -->\n"), format!("<!-- {name}:end -->"));
    let (Some(start), Some(stop)) = (document.find(&begin), document.find(&end)) else {
        bail!("{} has no {begin:?} ... {end:?} markers", path.display());
    };
    let updated = format!("{}{begin}{text}{}", &document[..start], &document[stop..]);
    std::fs::write(path, updated)?;
    Ok(())
}

fn install_wrk() -> anyhow::Result<()> {
    if Path::new("/usr/bin/wrk").exists() {
        return Ok(());
    }
    step("installing wrk (Debian)");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq", "wrk"]))
        .context("install wrk by hand: apt-get install wrk")
}

// -------------------------------------------------------------------------------------------- servers

/// A throwaway project: secret, API key, a user database with one user.
struct Project {
    id: String,
    secret: String,
    secret_file: PathBuf,
    api_key: String,
    database: String,
    password: String,
}

impl Project {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        let project = Self {
            id: random_hex(12)?,
            secret: random_hex(24)?,
            secret_file: dir.join("project-secret"),
            api_key: random_hex(24)?,
            database: format!("sqlite://{}", dir.join("users.db").display()),
            password: random_hex(12)?,
        };
        std::fs::write(&project.secret_file, &project.secret)?;
        crate::add_user(
            &release_binary(),
            &project.database,
            &[BENCH_EMAIL, "Bench", "Mark"],
            &project.password,
        )?;
        Ok(project)
    }
}

fn release_binary() -> PathBuf {
    root().join("target/release/tiledesk-auth")
}

/// A server under test: its process, its base URL and its pid (for memory).
struct Server {
    process: Process,
    url: String,
}

impl Server {
    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    /// Resident memory, in KiB, from `/proc`.
    fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/<pid>/status")
    }
}

/// Spawns `command` and waits for a line containing `ready` on its stdout or stderr (the other goes to null); the
/// pipe keeps being drained, so a chatty server never blocks on a full pipe.
fn spawn_ready(command: Command, ready: &'static str, stderr: bool) -> anyhow::Result<(Process, String)> {
    let started = tiledesk_test_support::try_start(command, ready, stderr, Duration::from_secs(30))
        .map_err(anyhow::Error::msg)?;
    Ok((started.process, started.ready))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(tiledesk_test_support::free_port())
}

/// The release `tiledesk-auth serve`, with the API key (so `POST /tokens` exists), at the default log level.
fn start_server(project: &Project, dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let key_file = dir.join("api-key");
    std::fs::write(&key_file, &project.api_key)?;
    let mut command = Command::new(release_binary());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database", &project.database])
        .arg("--api-key-file")
        .arg(&key_file)
        .env("TILEDESK_PROJECT_ID", &project.id)
        .env("TILEDESK_SECRET_FILE", &project.secret_file)
        .env_remove("TILEDESK_SECRET")
        .env_remove("TILEDESK_API_KEY")
        .env_remove("RUST_LOG")
        // wrk's connections all come from 127.0.0.1: the per-address cap (256) would refuse the benches' own
        // clients. The login floods come from addresses of their own (see `flood.rs`).
        .args(["--max-connections-per-address", "4096"]);
    let (process, _) = spawn_ready(command, "listening on", true)?;
    Ok(Server {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// `bench/baseline-node/server.js`: Express + jsonwebtoken, the tutorial's stack; `tuned`: with the secret made a
/// `KeyObject` once (jsonwebtoken's slow path for string secrets avoided).
fn start_baseline(project: &Project, tuned: bool) -> anyhow::Result<Server> {
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

// ------------------------------------------------------------------------------------------------ wrk

/// One wrk run's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Load {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Socket errors and timeouts.
    errors: u64,
    /// Answers other than 2xx and 3xx.
    non_2xx: u64,
}

/// A wrk script: the request, and a `done` hook that prints the figures on one parseable line.
fn wrk_script(
    dir: &Path,
    name: &str,
    method: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    paced_wrk_script(dir, name, method, body, headers, None)
}

/// A wrk script whose connections each wait `pause_ms` between an answer and their next request: a probe that
/// samples latency without adding load of its own.
fn paced_wrk_script(
    dir: &Path,
    name: &str,
    method: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
    pause_ms: Option<u32>,
) -> anyhow::Result<PathBuf> {
    let mut lua = format!("wrk.method = \"{method}\"\n");
    if let Some(ms) = pause_ms {
        writeln!(lua, "delay = function() return {ms} end")?;
    }
    if let Some(body) = body {
        // Long-bracket string: the JSON needs no escaping.
        writeln!(lua, "wrk.body = [=[{body}]=]")?;
    }
    for (name, value) in headers {
        writeln!(lua, "wrk.headers[\"{name}\"] = \"{value}\"")?;
    }
    lua.push_str(
        r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
    summary.requests, summary.duration, math.floor(latency:percentile(50)), math.floor(latency:percentile(99)),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"#,
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua)?;
    Ok(path)
}

/// Runs wrk for `secs` seconds with `connections` open connections (closed loop: each sends its next request when
/// the previous answer arrives).
fn wrk(url: &str, script: &Path, connections: u32, secs: u32) -> anyhow::Result<Load> {
    wrk_timeout(url, script, connections, secs, 10)
}

/// [`wrk`] with a client timeout of `timeout_secs` (a request unanswered by then counts as an error).
fn wrk_timeout(
    url: &str,
    script: &Path,
    connections: u32,
    secs: u32,
    timeout_secs: u32,
) -> anyhow::Result<Load> {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args([
            "-d",
            &format!("{secs}s"),
            "--timeout",
            &format!("{timeout_secs}s"),
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find(|l| l.starts_with("WRK ")) else {
        bail!(
            "wrk on {url} printed no summary: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let fields: BTreeMap<&str, u64> = line[4..]
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k, v)))
        .collect();
    let get = |k: &str| {
        fields
            .get(k)
            .copied()
            .with_context(|| format!("wrk summary without {k}: {line}"))
    };
    let requests = get("requests")?;
    let duration = get("duration_us")? as f64 / 1e6;
    Ok(Load {
        requests,
        rps: requests as f64 / duration,
        p50_ms: get("p50_us")? as f64 / 1e3,
        p99_ms: get("p99_us")? as f64 / 1e3,
        errors: get("errors")?,
        non_2xx: get("non2xx")?,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The median of each figure over several runs, and the error totals.
fn summarise(runs: &[Load]) -> Load {
    Load {
        requests: runs.iter().map(|r| r.requests).sum(),
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
        non_2xx: runs.iter().map(|r| r.non_2xx).sum(),
    }
}

/// `POST /auth` with the benchmark user's correct password.
fn tokens_script(dir: &Path, project: &Project) -> anyhow::Result<PathBuf> {
    let bearer = format!("Bearer {}", project.api_key);
    wrk_script(
        dir,
        "tokens",
        "POST",
        Some(TOKEN_BODY),
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
    )
}

// ----------------------------------------------------------------------------------------------- figures

/// What the run measured, as Markdown sections and summary lines.
#[derive(Default)]
struct Report {
    sections: Vec<String>,
    summary: Vec<String>,
    commands: Vec<String>,
}

impl Report {
    fn line(&mut self, text: String) {
        println!("{text}");
        self.summary.push(text);
    }

    fn markdown(&self, plan: &Plan) -> anyhow::Result<String> {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let rustc = command_output("rustc", &["--version"]).unwrap_or_default();
        let node = command_output("node", &["--version"]).unwrap_or_default();
        let wrk = Command::new("wrk")
            .arg("-v")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .unwrap_or_default();
        let mut md = String::new();
        writeln!(md, "# Benchmarks\n")?;
        writeln!(
            md,
            "Written by `cargo xtask bench{}` on {}. Every comparison ran both sides in the same invocation, \
             interleaved, after a warm-up; each figure is the median of {} rounds. Absolute numbers belong to this \
             machine; the ratios are the point.\n",
            if plan.quick { " --quick" } else { "" },
            date.trim(),
            plan.rounds
        )?;
        writeln!(md, "| machine | |\n|---|---|")?;
        writeln!(md, "| cores | {cores} |\n| CPU | {cpu} |")?;
        writeln!(
            md,
            "| toolchain | {} |\n| Node | {} |\n| load generator | {} |\n",
            rustc.trim(),
            node.trim(),
            wrk.trim()
        )?;
        writeln!(md, "## Summary\n")?;
        for line in &self.summary {
            writeln!(md, "- {line}")?;
        }
        writeln!(md)?;
        for section in &self.sections {
            writeln!(md, "{section}")?;
        }
        writeln!(md, "## Commands\n")?;
        writeln!(
            md,
            "Everything above comes from `cargo xtask bench`, which ran:\n\n```text"
        )?;
        for command in &self.commands {
            writeln!(md, "{command}")?;
        }
        writeln!(md, "```")?;
        Ok(md)
    }
}

/// Criterion medians, in nanoseconds, of the last run of `visitor_token/<name>`.
fn criterion_median_ns(name: &str) -> anyhow::Result<f64> {
    let path = root().join(format!(
        "target/criterion/visitor_token/{name}/new/estimates.json"
    ));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":1234.5,...},...}
    let at = text.find("\"median\"").context("no median in estimates.json")?;
    let rest = &text[at..];
    let at = rest.find("\"point_estimate\":").context("no point_estimate")? + "\"point_estimate\":".len();
    let number: String = rest[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    Ok(number.parse()?)
}

/// 3. Minting against a bare HMAC-SHA256 of the same signing input (criterion, both in each round).
fn mint(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    step("minting against a bare HMAC-SHA256 (criterion)");
    let time = if plan.quick { "1" } else { "3" };
    let (mut mints, mut hmacs) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        run(cargo()
            .args([
                "bench",
                "--quiet",
                "--package",
                "tiledesk-jwt",
                "--bench",
                "mint",
                "--",
            ])
            .args(["--warm-up-time", "1", "--measurement-time", time, "--noplot"])
            .stdout(Stdio::null()))?;
        mints.push(criterion_median_ns("mint")?);
        hmacs.push(criterion_median_ns("bare_hmac_sha256")?);
    }
    report.commands.push(format!(
        "cargo bench -p tiledesk-jwt --bench mint -- --warm-up-time 1 --measurement-time {time}   # x{}",
        plan.rounds
    ));
    let (mint, hmac) = (median(mints), median(hmacs));
    let ratio = mint / hmac;
    report.line(format!(
        "mint: TokenIssuer::mint {:.2} µs vs bare HMAC-SHA256 {:.2} µs = {ratio:.1}x (target at most 3x: {})",
        mint / 1e3,
        hmac / 1e3,
        verdict(ratio <= 3.0)
    ));
    report.sections.push(format!(
        "## Minting against the physical floor\n\n\
         `TokenIssuer::mint` (claims to `JWT <token>`: JSON, base64url, random `jti`, HS256) beside one bare \
         HMAC-SHA256 of the same signing input (criterion, `crates/tiledesk-jwt/benches/mint.rs`).\n\n\
         | | median per token |\n|---|---|\n| `TokenIssuer::mint` | {:.2} µs |\n| bare HMAC-SHA256 | {:.2} µs |\n\
         | ratio | **{ratio:.2}x** (target at most 3x) |\n",
        mint / 1e3,
        hmac / 1e3
    ));
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

/// 1. `POST /tokens`: the release server against the Express baseline, at 1, 16 and 256 connections.
fn side_by_side(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    step("POST /tokens: tiledesk-auth against Express + jsonwebtoken (wrk)");
    let ours = start_server(project, dir)?;
    let tutorial = start_baseline(project, false)?;
    let tuned = start_baseline(project, true)?;
    let script = tokens_script(dir, project)?;
    let urls = [&ours, &tutorial, &tuned].map(|server| format!("{}/tokens", server.url));
    // Warm-up: the JIT on one side, connection pools and caches on all.
    for url in &urls {
        wrk(url, &script, 16, plan.warmup_secs)?;
    }
    let mut table = String::from(
        "| connections | tiledesk-auth req/s, p50 / p99 | tutorial baseline req/s, p50 / p99 | ratio: throughput, p99 | \
         tuned baseline req/s, p50 / p99 | ratio: throughput, p99 |\n|---|---|---|---|---|---|\n",
    );
    for connections in [1, 16, 256] {
        let mut runs: [Vec<Load>; 3] = Default::default();
        for round in 0..plan.rounds {
            // Rotate who goes first.
            for turn in 0..3 {
                let side = (round + turn) % 3;
                runs[side].push(wrk(&urls[side], &script, connections, plan.run_secs)?);
            }
        }
        let [ours, tutorial, tuned] = runs.map(|r| summarise(&r));
        for (name, load) in [
            ("tiledesk-auth", ours),
            ("tutorial baseline", tutorial),
            ("tuned baseline", tuned),
        ] {
            if load.errors + load.non_2xx > 0 {
                bail!("errors at {connections} connections on {name}: {load:?}");
            }
        }
        let ratio = |other: Load| (ours.rps / other.rps, other.p99_ms / ours.p99_ms);
        let ((t_rps, t_p99), (k_rps, k_p99)) = (ratio(tutorial), ratio(tuned));
        writeln!(
            table,
            "| {connections} | {:.0}, {:.2} / {:.2} ms | {:.0}, {:.2} / {:.2} ms | **{t_rps:.1}x**, {t_p99:.1}x lower | \
             {:.0}, {:.2} / {:.2} ms | **{k_rps:.1}x**, {k_p99:.1}x lower |",
            ours.rps,
            ours.p50_ms,
            ours.p99_ms,
            tutorial.rps,
            tutorial.p50_ms,
            tutorial.p99_ms,
            tuned.rps,
            tuned.p50_ms,
            tuned.p99_ms
        )?;
        let target = if connections >= 16 {
            format!(
                " (target at least 25x the tutorial's with a lower p99: {})",
                verdict(t_rps >= 25.0 && ours.p99_ms < tutorial.p99_ms)
            )
        } else {
            String::new()
        };
        report.line(format!(
            "POST /tokens at c={connections}: tiledesk-auth {:.0} req/s p99 {:.2} ms; tutorial baseline (Express + jsonwebtoken, string secret) {:.0} req/s p99 {:.2} ms: {t_rps:.1}x throughput, p99 {t_p99:.1}x lower{target}; tuned baseline (KeyObject secret) {:.0} req/s p99 {:.2} ms: {k_rps:.1}x, p99 {k_p99:.1}x lower",
            ours.rps, ours.p99_ms, tutorial.rps, tutorial.p99_ms, tuned.rps, tuned.p99_ms
        ));
    }
    report.commands.push(format!(
        "wrk -t <1 or 2> -c <1|16|256> -d {}s --timeout 10s -s target/bench/tokens.lua <url>/tokens   # x{} per side, rotating",
        plan.run_secs, plan.rounds
    ));
    report.sections.push(format!(
        "## POST /tokens against the tutorial's stack\n\n\
         The release `tiledesk-auth` (default log level, API key set) against `bench/baseline-node/server.js` \
         (Express 4 + jsonwebtoken 9, one Node process, `npm ci` from its lockfile), all minting the same claims \
         from the same body:\n\n```json\n{TOKEN_BODY}\n```\n\n\
         Two baselines. The *tutorial* one passes the secret as a string, as the tutorial does; jsonwebtoken 9 \
         then tries to parse it as a PEM private key (OpenSSL's decoders) before using it as an HMAC key, on every \
         token: about 420 µs per `sign()` here. The *tuned* one makes the secret a `KeyObject` once (about 9 µs \
         per `sign()`): the fairest Node figure, and the one to quote when comparing runtimes rather than samples.\n\n\
         Load: wrk on loopback, closed loop, sharing the 2 cores with the server under test. No errors and no \
         non-2xx answer on any side.\n\n{table}"
    ));
    Ok(())
}

/// 2. Throughput and p99 from 1 to 1024 connections (plotted), and resident memory over 500 000 tokens.
fn curve_and_memory(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    step("POST /tokens from 1 to 1024 connections, and memory");
    let server = start_server(project, dir)?;
    let script = tokens_script(dir, project)?;
    let url = format!("{}/tokens", server.url);
    wrk(&url, &script, 16, plan.warmup_secs)?;
    let mut points = Vec::new();
    let mut table = String::from("| connections | req/s | p50 | p99 |\n|---|---|---|---|\n");
    for connections in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] {
        let runs = (0..plan.rounds)
            .map(|_| wrk(&url, &script, connections, plan.curve_secs))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let load = summarise(&runs);
        if load.errors + load.non_2xx > 0 {
            bail!("errors at {connections} connections: {load:?}");
        }
        writeln!(
            table,
            "| {connections} | {:.0} | {:.2} ms | {:.2} ms |",
            load.rps, load.p50_ms, load.p99_ms
        )?;
        points.push((connections, load));
    }
    let svg = root().join("bench/tokens-curve.svg");
    if !plan.quick {
        std::fs::write(&svg, curve_svg(&points))?;
    }
    let peak = points.iter().map(|(_, l)| l.rps).fold(0.0, f64::max);
    let (last_c, last) = points.last().copied().unwrap_or_default();
    report.line(format!(
        "curve: peak {peak:.0} req/s; at c={last_c} {:.0} req/s with p99 {:.2} ms (bench/tokens-curve.svg)",
        last.rps, last.p99_ms
    ));
    report.commands.push(format!(
        "wrk -c <1..1024> -d {}s -s target/bench/tokens.lua <url>/tokens   # x{} per point",
        plan.curve_secs, plan.rounds
    ));

    // Memory: a fresh server, resident set before and after each 100 000 tokens.
    let server = start_server(project, dir)?;
    let url = format!("{}/tokens", server.url);
    let start = server.rss_kib()?;
    let mut rows = format!(
        "| tokens minted | resident memory |\n|---|---|\n| 0 (started) | {} |\n",
        kib(start)
    );
    let (mut minted, mut checkpoint) = (0u64, 100_000u64);
    let mut at_checkpoints = Vec::new();
    let last_checkpoint = if plan.quick { 200_000 } else { 500_000 };
    while checkpoint <= last_checkpoint {
        let load = wrk(&url, &script, 64, 1)?;
        if load.errors + load.non_2xx > 0 {
            bail!("errors during the memory run: {load:?}");
        }
        minted += load.requests;
        if minted >= checkpoint {
            let rss = server.rss_kib()?;
            writeln!(rows, "| {minted} | {} |", kib(rss))?;
            at_checkpoints.push(rss);
            checkpoint += 100_000;
        }
    }
    let first = at_checkpoints.first().copied().unwrap_or(start);
    let last = at_checkpoints.last().copied().unwrap_or(start);
    let growth = last.saturating_sub(first);
    let flat = (growth as f64) <= (first as f64) * 0.10;
    report.line(format!(
        "memory: {} at start, {} after 100k tokens, {} after {}k ({} growth after the first 100k: {})",
        kib(start),
        kib(first),
        kib(last),
        minted / 1000,
        kib(growth),
        if flat { "flat" } else { "NOT flat" }
    ));
    report.sections.push(format!(
        "## How cost grows with load\n\n\
         The release server alone, `POST /tokens`, closed-loop connections from 1 to 1024 (wrk threads: 1 for one \
         connection, else 2). Throughput levels off once both cores are busy; beyond that, more connections only \
         queue, so p99 grows with the queue.\n\n![throughput and p99 against connections](bench/tokens-curve.svg)\n\n\
         {table}\n\
         Resident memory (`VmRSS`) of a fresh server while it mints, 64 connections:\n\n{rows}\n\
         Growth after the first 100 000 tokens: {} ({}).\n",
        kib(growth),
        if flat { "flat: within 10 %" } else { "NOT flat" }
    ));
    drop(server);
    Ok(())
}

fn kib(value: u64) -> String {
    format!("{:.1} MiB", value as f64 / 1024.0)
}

/// Connections of the login flood, each from its own address.
const FLOOD_CONNECTIONS: usize = 1000;

/// What flood client `index` sends the `n`th time: one client in 8 signs the bench user in with the right password
/// (125 clients: over the 100 logins of one account under way at once, the rest wait for a turn), the others
/// stuff credentials, a new unknown email each time (so no account or address budget runs out: every one costs a
/// password check, the worst case for the hashing queue).
fn flood_login(project: &Project) -> impl Fn(usize, u64) -> String + Sync + '_ {
    move |index, n| {
        if index % 8 == 0 {
            format!(r#"{{"email":"{BENCH_EMAIL}","password":"{}"}}"#, project.password)
        } else {
            format!(r#"{{"email":"c{index}-{n}@example.org","password":"123456"}}"#)
        }
    }
}

/// Whether every answer of a login flood is one the service gives by design: signed in, wrong password, throttled,
/// or refused `503 busy` at once.
fn flood_answers_are_by_design(flood: &flood::Flood) -> bool {
    flood.errors == 0 && [200, 401, 429, 503].iter().map(|s| flood.count(*s)).sum::<u64>() == flood.requests
}

/// 4. `POST /auth` flooded from 1000 addresses (see [`flood_login`]) while `/healthz` and `/tokens` are probed.
fn login_flood(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    step(&format!(
        "login flood: POST /auth from {FLOOD_CONNECTIONS} connections and addresses while /healthz and /tokens are probed"
    ));
    let server = start_server(project, dir)?;
    let target: std::net::SocketAddr = server.url.trim_start_matches("http://").parse()?;
    let login = flood_login(project);
    // Probes: 2 connections each, 10 ms between requests (about 200 requests/s per endpoint).
    let health = paced_wrk_script(dir, "healthz", "GET", None, &[], Some(10))?;
    let bearer = format!("Bearer {}", project.api_key);
    let tokens = paced_wrk_script(
        dir,
        "tokens-probe",
        "POST",
        Some(TOKEN_BODY),
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
        Some(10),
    )?;
    let url = |path: &str| format!("{}{path}", server.url);
    let (mut floods, mut healths, mut mints) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.rounds {
        let (flood, health, mint) = std::thread::scope(|scope| {
            let flood =
                scope.spawn(|| flood::flood(target, "/auth", &login, FLOOD_CONNECTIONS, plan.flood_secs));
            let health = scope.spawn(|| wrk(&url("/healthz"), &health, 2, plan.flood_secs));
            let mint = scope.spawn(|| wrk(&url("/tokens"), &tokens, 2, plan.flood_secs));
            let panicked = || anyhow::anyhow!("a load thread panicked");
            (
                flood.join().map_err(|_| panicked()),
                health.join().map_err(|_| panicked()),
                mint.join().map_err(|_| panicked()),
            )
        });
        let (flood, health, mint) = (flood??, health??, mint??);
        for (name, load) in [("/healthz", &health), ("/tokens", &mint)] {
            if load.errors + load.non_2xx > 0 {
                bail!("errors on {name} during the login flood: {load:?}");
            }
        }
        if !flood_answers_are_by_design(&flood) {
            bail!("the login flood got errors or unexpected answers: {flood:?}");
        }
        floods.push(flood);
        healths.push(health);
        mints.push(mint);
    }
    let (health, mint) = (summarise(&healths), summarise(&mints));
    let flood_p99 = median(floods.iter().map(|f| f.p99_ms).collect());
    let flood_p50 = median(floods.iter().map(|f| f.p50_ms).collect());
    let flood_rps = median(floods.iter().map(|f| f.rps).collect());
    let signed_in: u64 = floods.iter().map(|f| f.count(200)).sum();
    let busy: u64 = floods.iter().map(|f| f.count(503)).sum();
    let wrong: u64 = floods.iter().map(|f| f.count(401)).sum();
    let secs = f64::from(plan.flood_secs) * plan.rounds as f64;
    let met = health.p99_ms < 5.0 && mint.p99_ms < 5.0;
    report.line(format!(
        "login flood ({FLOOD_CONNECTIONS} connections, one address each): {:.0} logins/s signed in, {:.0}/s checked and wrong, {:.0}/s refused 503 busy (p99 {:.0} ms) while /healthz p99 {:.2} ms and /tokens p99 {:.2} ms (target under 5 ms: {})",
        signed_in as f64 / secs,
        wrong as f64 / secs,
        busy as f64 / secs,
        flood_p99,
        health.p99_ms,
        mint.p99_ms,
        verdict(met)
    ));
    report.commands.push(format!(
        "{FLOOD_CONNECTIONS} clients (xtask/src/flood.rs) POST /auth for {s}s & wrk -c 2 -d {s}s -s target/bench/healthz.lua <url>/healthz & wrk -c 2 -d {s}s -s target/bench/tokens-probe.lua <url>/tokens   # x{}",
        plan.rounds,
        s = plan.flood_secs
    ));
    report.sections.push(format!(
        "## Logins under load\n\n\
         `POST /auth` (argon2id, 19 MiB, 2 passes) from {FLOOD_CONNECTIONS} keep-alive connections, each from its own \
         loopback address (so no per-address limit applies: the distributed attacker), each sending its next login \
         as soon as its answer arrives: one in 8 the bench user's right password, the others credential stuffing \
         (a new unknown email each time, so every one costs a password check); meanwhile two connections each probe \
         `GET /healthz` and `POST /tokens`, pausing 10 ms between requests, for {}s, {} rounds. Hashing runs on one \
         dedicated thread per core at nice +5 behind a bounded queue: a login waits at most 5 s for a thread, then \
         is answered `503 busy` with `Retry-After` instead of waiting longer as the flood grows (and a login of an \
         account with 100 already under way waits at most 5 s for a turn before that).\n\n\
         | | req/s | p50 | p99 |\n|---|---|---|---|\n\
         | `POST /auth` (flood): {} | {:.0} | {:.1} ms | {:.1} ms |\n\
         | `GET /healthz` (probe) | {:.0} | {:.2} ms | **{:.2} ms** |\n\
         | `POST /tokens` (probe) | {:.0} | {:.2} ms | **{:.2} ms** |\n\n\
         Target: both probes under 5 ms at p99: {}.\n",
        plan.flood_secs,
        plan.rounds,
        floods.last().map(flood::Flood::statuses_text).unwrap_or_default(),
        flood_rps,
        flood_p50,
        flood_p99,
        health.rps,
        health.p50_ms,
        health.p99_ms,
        mint.rps,
        mint.p50_ms,
        mint.p99_ms,
        verdict(met)
    ));
    Ok(())
}

/// Soak (issue 6): `POST /tokens` (wrk) and `POST /auth` (one address per connection), 256 connections each, at
/// once, for a minute: no socket error, every token minted, every login answered by design.
fn soak(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    let secs = if plan.quick { 5 } else { 60 };
    step(&format!(
        "soak: POST /tokens and POST /auth at 256 connections each for {secs} s"
    ));
    let server = start_server(project, dir)?;
    let target: std::net::SocketAddr = server.url.trim_start_matches("http://").parse()?;
    let tokens = tokens_script(dir, project)?;
    let login = flood_login(project);
    let before = server.rss_kib()?;
    let url = |path: &str| format!("{}{path}", server.url);
    let (mint, logins) = std::thread::scope(|scope| {
        let mint = scope.spawn(|| wrk_timeout(&url("/tokens"), &tokens, 256, secs, 30));
        let logins = scope.spawn(|| flood::flood(target, "/auth", &login, 256, secs));
        (mint.join(), logins.join())
    });
    let panicked = || anyhow::anyhow!("a load thread panicked");
    let (mint, logins) = (mint.map_err(|_| panicked())??, logins.map_err(|_| panicked())??);
    let after = server.rss_kib()?;
    let clean =
        mint.errors + mint.non_2xx == 0 && flood_answers_are_by_design(&logins) && logins.count(200) > 0;
    report.line(format!(
        "soak {secs} s: {} tokens ({:.0}/s, p99 {:.1} ms) and {} logins ({:.0}/s, p99 {:.0} ms; {}) at 256 connections each: {} socket errors, {} tokens not 2xx; memory {} before, {} after",
        mint.requests,
        mint.rps,
        mint.p99_ms,
        logins.requests,
        logins.rps,
        logins.p99_ms,
        logins.statuses_text(),
        mint.errors + logins.errors,
        mint.non_2xx,
        kib(before),
        kib(after)
    ));
    report.commands.push(format!(
        "wrk -c 256 -d {secs}s --timeout 30s -s target/bench/tokens.lua <url>/tokens & 256 clients (xtask/src/flood.rs) POST /auth for {secs}s"
    ));
    report.sections.push(format!(
        "## Soak\n\n\
         A fresh release server, `POST /tokens` (wrk) and `POST /auth` (the login flood's mix: one connection in 8 \
         signs a user in, the others stuff credentials; each connection from its own address) at 256 connections each, at the same time, for {secs} s.\n\n\
         | | requests | req/s | p99 | socket errors | answers |\n|---|---|---|---|---|---|\n\
         | `POST /tokens` | {} | {:.0} | {:.1} ms | {} | {} not 2xx |\n\
         | `POST /auth` | {} | {:.0} | {:.0} ms | {} | {} |\n\n\
         Resident memory: {} before, {} after. {}\n",
        mint.requests,
        mint.rps,
        mint.p99_ms,
        mint.errors,
        mint.non_2xx,
        logins.requests,
        logins.rps,
        logins.p99_ms,
        logins.errors,
        logins.statuses_text(),
        kib(before),
        kib(after),
        if clean {
            "No socket error; every token minted; every login answered by design (signed in, wrong password, or `503 busy` after at most 5 s in the bounded queue)."
        } else {
            "**There were errors.**"
        }
    ));
    if !clean {
        bail!("the soak had errors: tokens {mint:?}, logins {logins:?}");
    }
    Ok(())
}

/// 5. The browser module against hand-written sequential JavaScript, and the module's own costs.
fn browser(plan: &Plan, package: &Path, report: &mut Report) -> anyhow::Result<()> {
    step("the browser module against hand-written JavaScript (headless Chromium)");
    crate::setup_browser()?;
    let rounds = if plan.quick { 3 } else { 7 };
    let token_delay = 50;
    let env = [
        ("BENCH_ROUNDS", rounds.to_string()),
        ("BENCH_TOKEN_DELAY", token_delay.to_string()),
        ("BENCH_DELAYS", "0,200,1000".to_owned()),
    ];
    // BENCH browser page=module delay=0 token_delay=50 round=0 ms=123.45 init_ms=12.3
    let mut times: BTreeMap<(u64, String), Vec<f64>> = BTreeMap::new();
    let mut inits = Vec::new();
    for fields in e2e_bench("browser", &env)? {
        let (Some(page), Some(delay), Some(ms)) = (fields.get("page"), fields.get("delay"), fields.get("ms"))
        else {
            bail!("unreadable line from the browser benchmark: {fields:?}");
        };
        times
            .entry((delay.parse()?, page.clone()))
            .or_default()
            .push(ms.parse()?);
        if let Some(init) = fields.get("init_ms") {
            inits.push(init.parse::<f64>()?);
        }
    }
    if times.is_empty() {
        bail!("the browser benchmark printed no figures");
    }
    let mut table = String::from(
        "| loader delay | module: signIn() to widget shown | hand-written JS | module faster by |\n|---|---|---|---|\n",
    );
    for delay in [0u64, 200, 1000] {
        let module = median(
            times
                .get(&(delay, "module".to_owned()))
                .cloned()
                .unwrap_or_default(),
        );
        let js = median(
            times
                .get(&(delay, "sequential".to_owned()))
                .cloned()
                .unwrap_or_default(),
        );
        writeln!(
            table,
            "| {delay} ms | {module:.0} ms | {js:.0} ms | {:.0} ms ({:.2}x) |",
            js - module,
            js / module
        )?;
        report.line(format!(
            "browser, loader delay {delay} ms: module {module:.0} ms vs hand-written sequential JS {js:.0} ms to the widget shown ({:.2}x; token endpoint {token_delay} ms)",
            js / module
        ));
    }
    let init = median(inits);
    let size = crate::wasm_size_of(package)?;
    report.line(format!(
        "browser module: wasm fetch + instantiation {init:.1} ms (from the HTTP cache), {:.1} KiB gzipped",
        size as f64 / 1024.0
    ));
    report.commands.push(format!(
        "BENCH_ROUNDS={rounds} BENCH_TOKEN_DELAY={token_delay} BENCH_DELAYS=0,200,1000 cargo bench -p tiledesk-e2e --bench browser"
    ));
    report.sections.push(format!(
        "## The browser module against hand-written JavaScript\n\n\
         Headless Chromium, the stand-in loader and the mock Tiledesk API (`tests/e2e/benches/browser.rs`, pages in \
         `bench/browser/`). Both pages start after the window's load event with no stored session, and stop when \
         the widget is visible and signed in (a `MutationObserver`). The hand-written page follows the tutorial's \
         order: fetch the token, then insert the loader, then sign in (queued) and show on `online`. The module \
         fetches the token while the loader loads. The token endpoint answers after {token_delay} ms; the loader \
         after the delay shown; the stand-in boots at once (the real widget waits for an interaction or 5 s, which \
         would add the same to both). Median of {rounds} rounds per cell, pages alternating.\n\n{table}\n\
         The module itself: fetch (from the HTTP cache) + compile + instantiate, median {init:.1} ms; \
         {size} bytes ({:.1} KiB) gzipped, module and JS glue.\n",
        size as f64 / 1024.0
    ));
    Ok(())
}

/// Runs the `tiledesk-e2e` bench binary `bench` with `env`, and returns the `key=value` fields of each line it
/// prints that starts with `BENCH `.
fn e2e_bench(bench: &str, env: &[(&str, String)]) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let output = cargo()
        .args(["bench", "--quiet", "--package", "tiledesk-e2e", "--bench", bench])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!(
            "the {bench} benchmark failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.starts_with("BENCH "))
        .map(|line| {
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect())
}

/// Section 6, Tiledesk's real widget: time to the widget shown with no visitor interaction, the module with
/// `boot: "now"` against Tiledesk's own wait and against the tutorial's hand-written page, and where the time goes.
fn real_widget(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    step(
        "Tiledesk's real widget: time to shown, boot now against interaction and the tutorial (headless Chromium)",
    );
    crate::setup_browser()?;
    crate::widget::ensure_built()?;
    let rounds = if plan.quick { 2 } else { 5 };
    let token_delay = 50;
    let env = [
        ("BENCH_ROUNDS", rounds.to_string()),
        ("BENCH_TOKEN_DELAY", token_delay.to_string()),
    ];
    // BENCH real mode=now round=1 token_delay=50 shown=768.8 token=107.0 loader=37.8 boot=454.5 signin=580.4 chat=590.3
    const PHASES: [&str; 6] = ["token", "loader", "boot", "signin", "chat", "shown"];
    let mut times: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
    for fields in e2e_bench("real_widget", &env)? {
        let Some(mode) = fields.get("mode") else {
            bail!("unreadable line from the real widget benchmark: {fields:?}");
        };
        for phase in PHASES {
            if let Some(ms) = fields.get(phase).and_then(|v| v.parse::<f64>().ok()) {
                times.entry((mode.clone(), phase)).or_default().push(ms);
            }
        }
    }
    let cell = |mode: &str, phase: &str| {
        times
            .get(&(mode.to_owned(), phase))
            .map_or("n/a".to_owned(), |v| format!("{:.0}", median(v.clone())))
    };
    if cell("now", "shown") == "n/a" {
        bail!("the real widget benchmark printed no figures");
    }
    let mut table = String::from(
        "| page | token answered | loader loaded | widget booted | sign-in answered | chat token answered | **widget shown** |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (mode, label) in [
        ("now", "module, `boot: \"now\"` (default)"),
        ("interaction", "module, `boot: \"interaction\"`"),
        ("tutorial", "hand-written, Tiledesk's tutorial order"),
    ] {
        let cells: Vec<String> = PHASES.iter().map(|p| cell(mode, p)).collect();
        writeln!(
            table,
            "| {label} | {} ms | {} ms | {} ms | {} ms | {} ms | **{} ms** |",
            cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]
        )?;
    }
    let (now, interaction, tutorial) = (
        cell("now", "shown"),
        cell("interaction", "shown"),
        cell("tutorial", "shown"),
    );
    report.line(format!(
        "real Tiledesk widget, no visitor interaction: shown after {now} ms with boot \"now\", {interaction} ms with Tiledesk's wait, {tutorial} ms for the tutorial's page"
    ));
    report.commands.push(format!(
        "BENCH_ROUNDS={rounds} BENCH_TOKEN_DELAY={token_delay} cargo bench -p tiledesk-e2e --bench real_widget"
    ));
    report.sections.push(format!(
        "## The real Tiledesk widget: time to shown\n\n\
         Tiledesk's widget {} built from source (`cargo xtask widget`), the mock Tiledesk and mosquitto, the real \
         `tiledesk-auth` serving the page (`tests/e2e/benches/real_widget.rs`, page `bench/browser/real.html`). A fresh \
         headless Chromium per run, no stored session and no visitor interaction; the clock starts when the page asks \
         for the sign-in (after its load event and the module's instantiation) and stops when the widget reports the \
         visitor logged in and its container is shown. Each phase is when that request ended (the widget's boot: when \
         its first API request started), from the resource timing of the page and of the widget's iframe. The token \
         endpoint answers after {token_delay} ms. Median of {rounds} rounds, pages in rotating order, after one \
         unmeasured round that fills the HTTP cache.\n\n{table}\n\
         Where the time goes with `boot: \"now\"`: the token and the loader arrive in parallel within the first \
         ~100 ms; the widget's app (2.4 MB of JavaScript in an iframe) takes the next ~400 ms to boot and fetch its \
         settings; the module signs in as soon as it can call the widget; the widget's HTTP sign-in and chat token \
         follow within ~150 ms, and the chat connection (MQTT over websockets) and the show within the last ~180 ms. \
         Without the nudge, the loader waits for an interaction or 5 seconds before any of that starts, which is what \
         the other two rows pay: the tutorial's page also fetches the token first, which costs nothing here only \
         because the wait dwarfs it.\n",
        crate::widget::VERSION
    ));
    Ok(())
}

/// The throughput/p99 curve as an SVG: connections on a log2 axis; req/s on the left axis, p99 on the right.
fn curve_svg(points: &[(u32, Load)]) -> String {
    let (w, h) = (720.0, 400.0);
    let (left, right, top, bottom) = (70.0, 70.0, 40.0, 50.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let max_c = points.iter().map(|(c, _)| *c).max().unwrap_or(1).max(2) as f64;
    let max_rps = nice(points.iter().map(|(_, l)| l.rps).fold(1.0, f64::max));
    let max_p99 = nice(points.iter().map(|(_, l)| l.p99_ms).fold(0.1, f64::max));
    let x = |c: u32| left + plot_w * (f64::from(c).log2() / max_c.log2());
    let y = |v: f64, max: f64| top + plot_h * (1.0 - v / max);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">tiledesk-auth POST /tokens: throughput and p99 against connections</text>\n",
        w / 2.0
    );
    // Axes and grid.
    for i in 0..=4 {
        let frac = f64::from(i) / 4.0;
        let gy = top + plot_h * (1.0 - frac);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{gy}\" x2=\"{}\" y2=\"{gy}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#1f5fbf\">{:.0}</text>\
             <text x=\"{}\" y=\"{}\" fill=\"#c0392b\">{:.1}</text>",
            left + plot_w,
            left - 6.0,
            gy + 4.0,
            max_rps * frac,
            left + plot_w + 6.0,
            gy + 4.0,
            max_p99 * frac
        );
    }
    for (c, _) in points {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
            x(*c),
            top + plot_h + 18.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">connections (log scale)</text>\n\
         <text x=\"16\" y=\"{}\" fill=\"#1f5fbf\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">requests/s</text>\n\
         <text x=\"{}\" y=\"{}\" fill=\"#c0392b\" transform=\"rotate(90 {} {})\" text-anchor=\"middle\">p99 latency (ms)</text>\n",
        left + plot_w / 2.0,
        h - 12.0,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        w - 16.0,
        top + plot_h / 2.0,
        w - 16.0,
        top + plot_h / 2.0
    );
    for (color, value, max) in [
        ("#1f5fbf", (|l: &Load| l.rps) as fn(&Load) -> f64, max_rps),
        ("#c0392b", |l: &Load| l.p99_ms, max_p99),
    ] {
        let path: Vec<String> = points
            .iter()
            .map(|(c, l)| format!("{:.1},{:.1}", x(*c), y(value(l), max)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        for (c, l) in points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                x(*c),
                y(value(l), max)
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// `value` rounded up to 1, 2 or 5 times a power of ten.
fn nice(value: f64) -> f64 {
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= value)
        .unwrap_or(value)
}
