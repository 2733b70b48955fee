//! The service's own figures: minting against the floor (criterion), `POST /tokens` against the tutorial's stack,
//! how cost grows with load, and memory.

use super::*;

/// `target/criterion/<group>/<name>/new/<file>`, criterion's record of the last run of `group/name`, parsed.
fn criterion_record(group: &str, name: &str, file: &str) -> anyhow::Result<(serde_json::Value, PathBuf)> {
    let path = root().join(format!("target/criterion/{group}/{name}/new/{file}"));
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let record = serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    Ok((record, path))
}

/// Criterion medians, in nanoseconds, of the last run of `visitor_token/<name>`.
pub(super) fn criterion_median_ns(group: &str, name: &str) -> anyhow::Result<f64> {
    let (estimates, path) = criterion_record(group, name, "estimates.json")?;
    estimates["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median point estimate in {}", path.display()))
}

/// How many elements one iteration of criterion's benchmark `group/name` handles (its `Throughput::Elements`).
fn criterion_elements(group: &str, name: &str) -> anyhow::Result<u64> {
    let (benchmark, path) = criterion_record(group, name, "benchmark.json")?;
    benchmark["throughput"]["Elements"]
        .as_u64()
        .with_context(|| format!("no throughput in elements in {}", path.display()))
}

/// Runs the criterion bench `bench` of `package` once per round (1 s of warm-up, 3 s of measurement; 1 s with
/// `--quick`), `after_each` reading its figures after every run; the command goes into the report.
fn criterion_rounds(
    plan: &Plan,
    package: &str,
    bench: &str,
    report: &mut Report,
    mut after_each: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let time = if plan.quick { "1" } else { "3" };
    for _ in 0..plan.rounds {
        run(cargo()
            .args(["bench", "--quiet", "--package", package, "--bench", bench, "--"])
            .args(["--warm-up-time", "1", "--measurement-time", time, "--noplot"])
            .stdout(Stdio::null()))?;
        after_each()?;
    }
    report.commands.push(format!(
        "cargo bench -p {package} --bench {bench} -- --warm-up-time 1 --measurement-time {time}   # x{}",
        plan.rounds
    ));
    Ok(())
}

/// 3. Minting against a bare HMAC-SHA256 of the same signing input (criterion, both in each round).
pub(super) fn mint(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    step("minting against a bare HMAC-SHA256 (criterion)");
    let (mut mints, mut hmacs) = (Vec::new(), Vec::new());
    criterion_rounds(plan, "tiledesk-jwt", "mint", report, || {
        mints.push(criterion_median_ns("visitor_token", "mint")?);
        hmacs.push(criterion_median_ns("visitor_token", "bare_hmac_sha256")?);
        Ok(())
    })?;
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

/// 1. `POST /tokens`: the release server against the Express baseline, at 1, 16 and 256 connections.
pub(super) fn side_by_side(
    plan: &Plan,
    project: &Project,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
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
pub(super) fn curve_and_memory(
    plan: &Plan,
    project: &Project,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
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

/// `POST /tokens` against the floor: `bench/baseline-axum`, a bare axum + jsonwebtoken endpoint minting the same
/// claims with none of the service's checks, both release builds. Each server has CPU 0 to itself in turn and wrk
/// runs on CPU 1 (on a machine with two or more), so neither the load generator nor the other server takes from the
/// one measured; each round measures both, back to back, and the ratio is the median of the rounds' ratios, which
/// cancels the drift of the machine's speed between rounds.
pub(super) fn floor(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
    step("POST /tokens: tiledesk-auth against a bare axum + jsonwebtoken endpoint (wrk)");
    let pin = can_pin();
    let server_cpu = pin.then_some(0);
    let ours = start_server_on(project, dir, server_cpu)?;
    let bare = start_bare_axum(project, server_cpu)?;
    let script = tokens_script(dir, project)?;
    let urls = [&ours, &bare].map(|server| format!("{}/tokens", server.url));
    let load = |url: &str, connections: u32, secs: u32| {
        if pin {
            wrk_on(1, url, &script, connections, secs)
        } else {
            wrk(url, &script, connections, secs)
        }
    };
    for url in &urls {
        load(url, 16, plan.warmup_secs)?;
    }
    let mut table = String::from(
        "| connections | tiledesk-auth req/s, p50 / p99 | bare axum req/s, p50 / p99 | ratio per round | ratio (target at least 0.9) |\n|---|---|---|---|---|\n",
    );
    let rounds = plan.rounds.max(7);
    for connections in [16, 256] {
        let mut runs: [Vec<Load>; 2] = Default::default();
        let mut ratios = Vec::new();
        for round in 0..rounds {
            let mut pair = [Load::default(); 2];
            for turn in 0..2 {
                let side = (round + turn) % 2;
                pair[side] = load(&urls[side], connections, plan.run_secs)?;
                runs[side].push(pair[side]);
            }
            ratios.push(pair[0].rps / pair[1].rps);
        }
        let [ours, bare] = runs.map(|r| summarise(&r));
        if ours.errors + ours.non_2xx + bare.errors + bare.non_2xx > 0 {
            bail!("errors at {connections} connections: ours {ours:?}, bare {bare:?}");
        }
        let each = ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = median(ratios);
        writeln!(
            table,
            "| {connections} | {:.0}, {:.2} / {:.2} ms | {:.0}, {:.2} / {:.2} ms | {each} | **{ratio:.2}** ({}) |",
            ours.rps,
            ours.p50_ms,
            ours.p99_ms,
            bare.rps,
            bare.p50_ms,
            bare.p99_ms,
            verdict(ratio >= 0.9)
        )?;
        report.line(format!(
            "POST /tokens against a bare axum endpoint at c={connections}: {:.0} vs {:.0} req/s, median ratio of {rounds} rounds {ratio:.2} (target at least 0.9: {})",
            ours.rps,
            bare.rps,
            verdict(ratio >= 0.9)
        ));
    }
    let placement = if pin {
        "Each server on CPU 0 alone (`taskset`; one runtime worker each), wrk with one thread on CPU 1"
    } else {
        "Fewer than two CPUs here (or no `taskset`): servers and wrk share the machine, and the ratio is noisier"
    };
    report.commands.push(format!(
        "taskset -c 1 wrk -t 1 -c <16|256> -d {}s -s target/bench/tokens.lua <url>/tokens   # x{rounds} per side, alternating, each server under taskset -c 0, against target/release/baseline-axum",
        plan.run_secs
    ));
    report.sections.push(format!(
        "## POST /tokens against a bare axum endpoint\n\n\
         The floor: `bench/baseline-axum`, axum and jsonwebtoken as their documentation shows them, minting the same \
         claims from the same body with none of this service's checks (no API key, no strict body, no limits, no \
         log). Both release builds, same wrk, same body. {placement}. Each round measures both servers back to \
         back, in alternating order; the ratio is the median of the rounds' ratios.\n\n{table}"
    ));
    Ok(())
}

/// The cost of what an operator turns on, on `POST /tokens`, each against the same release server with both off:
/// `--metrics-listen` (goal: at most 3 % of throughput) and the audit trail, on by default (goal: at most 10 %).
/// Placed and paired as [`floor`]: each server on CPU 0 in turn, wrk on CPU 1, both of a pair measured back to back
/// each round, the median of the rounds' ratios.
/// Rounds of the `operations` comparison: each a 5 s load on each side. Rounds spread ±6 % on a shared 2-core VM, and
/// the goals are a few percent: 11 rounds make the median tell 10.0 % from 9 %.
const OPERATIONS_ROUNDS: usize = 11;

pub(super) fn operations(
    plan: &Plan,
    project: &Project,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    step("POST /tokens with and without metrics, with and without the audit trail (wrk)");
    let pin = can_pin();
    let server_cpu = pin.then_some(0);
    let script = tokens_script(dir, project)?;
    let load = |url: &str, secs: u32| {
        if pin {
            wrk_on(1, url, &script, 16, secs)
        } else {
            wrk(url, &script, 16, secs)
        }
    };
    let mut table = String::from(
        "| turned on | req/s, p50 / p99 | with both off: req/s, p50 / p99 | ratio per round | median ratio: cost (target) |\n|---|---|---|---|---|\n",
    );
    let variants: [(&str, &[&str], f64); 2] = [
        (
            "`--metrics-listen`",
            &["--audit", "off", "--metrics-listen", "127.0.0.1:0"],
            3.0,
        ),
        (
            "the audit trail (`--audit on`, the default)",
            &["--audit", "on"],
            10.0,
        ),
    ];
    let mut threads = String::new();
    for (name, args, target) in variants {
        let plain = start_server_with(project, dir, server_cpu, &["--audit", "off"])?;
        let on = start_server_with(project, dir, server_cpu, args)?;
        let urls = [&plain, &on].map(|server| format!("{}/tokens", server.url));
        for url in &urls {
            load(url, plan.warmup_secs)?;
        }
        let rounds = plan.rounds.max(OPERATIONS_ROUNDS);
        let mut runs: [Vec<Load>; 2] = Default::default();
        let mut ratios = Vec::new();
        let servers = [&plain, &on];
        let cpu_before = [plain.cpu_by_thread()?, on.cpu_by_thread()?];
        for round in 0..rounds {
            let mut pair = [Load::default(); 2];
            for turn in 0..2 {
                let side = (round + turn) % 2;
                pair[side] = load(&urls[side], plan.run_secs)?;
                runs[side].push(pair[side]);
            }
            ratios.push(pair[1].rps / pair[0].rps);
        }
        // Where each server's CPU went, per request, over all its rounds: what the feature costs, by thread.
        let cpu = [0, 1].map(|side| {
            let requests = runs[side].iter().map(|run| run.requests).sum();
            servers[side].cpu_by_thread().map(|after| {
                cpu_per_request(&cpu_before[side], &after, requests)
                    .into_iter()
                    .map(|(thread, micros)| format!("{thread} {micros:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        });
        let [cpu_plain, cpu_on] = cpu;
        writeln!(threads, "- {name}: {}; with both off: {}", cpu_on?, cpu_plain?)?;
        let [plain, on] = runs.map(|r| summarise(&r));
        if plain.errors + plain.non_2xx + on.errors + on.non_2xx > 0 {
            bail!("errors: with both off {plain:?}, with {name} {on:?}");
        }
        let each = ratios
            .iter()
            .map(|r| format!("{r:.3}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ratio = median(ratios);
        let cost = (1.0 - ratio) * 100.0;
        writeln!(
            table,
            "| {name} | {:.0}, {:.2} / {:.2} ms | {:.0}, {:.2} / {:.2} ms | {each} | **{ratio:.3}**: {cost:.1} % (at most {target} %: {}) |",
            on.rps,
            on.p50_ms,
            on.p99_ms,
            plain.rps,
            plain.p50_ms,
            plain.p99_ms,
            verdict(cost <= target)
        )?;
        report.line(format!(
            "POST /tokens with {name} at c=16: {:.0} vs {:.0} req/s with both off, median ratio of {rounds} rounds {ratio:.3} ({cost:.1} % cost; target at most {target} %: {})",
            on.rps,
            plain.rps,
            verdict(cost <= target)
        ));
    }
    report.commands.push(format!(
        "taskset -c 1 wrk -t 1 -c 16 -d {}s -s target/bench/tokens.lua <url>/tokens   # x{OPERATIONS_ROUNDS} per side, alternating, servers with and without --metrics-listen, with --audit on and off, under taskset -c 0",
        plan.run_secs
    ));
    // The trail's writer alone, without the HTTP load's noise.
    step("the audit trail's writer alone: a full batch into SQLite (criterion)");
    let mut batches = Vec::new();
    criterion_rounds(plan, "tiledesk-auth-server", "audit", report, || {
        batches.push(criterion_median_ns("audit_trail", "write_a_full_batch")?);
        Ok(())
    })?;
    let records = criterion_elements("audit_trail", "write_a_full_batch")?;
    let per_record = median(batches) / records as f64 / 1e3;
    report.line(format!(
        "the audit trail's writer alone: {per_record:.2} µs a record (a full batch of {records} into SQLite, criterion)"
    ));
    writeln!(
        threads,
        "\nThe writer alone (criterion, `crates/tiledesk-auth-server/benches/audit.rs`: a full batch of {records} \
         minted-token records into a SQLite user database on disk, one statement, as under load): \
         **{per_record:.2} µs a record**, median of {} runs.",
        plan.rounds
    )?;
    report.sections.push(format!(
        "## What metrics and the audit trail cost\n\n\
         Each against the same release server with both off, 16 connections, placed and paired as the floor above. \
         Metrics: every request timed and counted by route and status, every token counted by way in. The audit \
         trail: every token queued for the writer, which writes them in batches to the SQLite user database.\n\n{table}\n\
         CPU per request by thread, in µs (`/proc`'s user and system time of each server's threads over all its rounds, \
         divided by the requests it answered; threads of one name summed):\n\n{threads}"
    ));
    Ok(())
}
