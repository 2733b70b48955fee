//! Load from wrk: its Lua scripts, its runs, and their figures.

use super::*;

/// One wrk run's figures.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Load {
    pub(super) requests: u64,
    pub(super) rps: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    /// Socket errors and timeouts.
    pub(super) errors: u64,
    /// Answers other than 2xx and 3xx.
    pub(super) non_2xx: u64,
}

/// A wrk script: the request, and a `done` hook that prints the figures on one parseable line.
pub(super) fn wrk_script(
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
pub(super) fn paced_wrk_script(
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
pub(super) fn wrk(url: &str, script: &Path, connections: u32, secs: u32) -> anyhow::Result<Load> {
    wrk_timeout(url, script, connections, secs, 10)
}

/// [`wrk`] with a client timeout of `timeout_secs` (a request unanswered by then counts as an error).
pub(super) fn wrk_timeout(
    url: &str,
    script: &Path,
    connections: u32,
    secs: u32,
    timeout_secs: u32,
) -> anyhow::Result<Load> {
    let threads = connections.clamp(1, 2);
    run_wrk(wrk_command(threads, connections, secs, timeout_secs), script, url)
}

/// [`wrk`] with one thread, kept to CPU `cpu` (see [`super::servers::pinned`]).
pub(super) fn wrk_on(
    cpu: usize,
    url: &str,
    script: &Path,
    connections: u32,
    secs: u32,
) -> anyhow::Result<Load> {
    run_wrk(pinned(&wrk_command(1, connections, secs, 10), cpu), script, url)
}

fn wrk_command(threads: u32, connections: u32, secs: u32, timeout_secs: u32) -> Command {
    let mut command = Command::new("wrk");
    command
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args([
            "-d",
            &format!("{secs}s"),
            "--timeout",
            &format!("{timeout_secs}s"),
        ]);
    command
}

fn run_wrk(mut command: Command, script: &Path, url: &str) -> anyhow::Result<Load> {
    let output = command
        .arg("-s")
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

pub(super) fn median(mut values: Vec<f64>) -> f64 {
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
pub(super) fn summarise(runs: &[Load]) -> Load {
    Load {
        requests: runs.iter().map(|r| r.requests).sum(),
        rps: median(runs.iter().map(|r| r.rps).collect()),
        p50_ms: median(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: median(runs.iter().map(|r| r.p99_ms).collect()),
        errors: runs.iter().map(|r| r.errors).sum(),
        non_2xx: runs.iter().map(|r| r.non_2xx).sum(),
    }
}

/// `POST /tokens` with the API key and the benchmark's body.
pub(super) fn tokens_script(dir: &Path, project: &Project) -> anyhow::Result<PathBuf> {
    let bearer = format!("Bearer {}", project.api_key);
    wrk_script(
        dir,
        "tokens",
        "POST",
        Some(TOKEN_BODY),
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
    )
}
