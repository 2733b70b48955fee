//! Logins under a flood from many addresses, and the soak.

use super::*;

/// Connections of the login flood, each from its own address.
pub(super) const FLOOD_CONNECTIONS: usize = 1000;

/// What flood client `index` sends the `n`th time: one client in 8 signs the bench user in with the right password
/// (125 clients: over the 100 logins of one account under way at once, the rest wait for a turn), the others
/// stuff credentials, a new unknown email each time (so no account or address budget runs out: every one costs a
/// password check, the worst case for the hashing queue).
pub(super) fn flood_login(project: &Project) -> impl Fn(usize, u64) -> String + Sync + '_ {
    move |index, n| {
        if index % 8 == 0 {
            serde_json::json!({"email": BENCH_EMAIL, "password": project.password}).to_string()
        } else {
            serde_json::json!({"email": format!("c{index}-{n}@example.org"), "password": "123456"})
                .to_string()
        }
    }
}

/// Whether every answer of a login flood is one the service gives by design: signed in, wrong password, throttled,
/// or refused `503 busy` at once.
pub(super) fn flood_answers_are_by_design(flood: &flood::Flood) -> bool {
    flood.errors == 0 && [200, 401, 429, 503].iter().map(|s| flood.count(*s)).sum::<u64>() == flood.requests
}

/// 4. `POST /auth` flooded from 1000 addresses (see [`flood_login`]) while `/healthz` and `/tokens` are probed.
pub(super) fn login_flood(
    plan: &Plan,
    project: &Project,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
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
        "{FLOOD_CONNECTIONS} clients (xtask/src/commands/bench/flood.rs) POST /auth for {s}s & wrk -c 2 -d {s}s -s target/bench/healthz.lua <url>/healthz & wrk -c 2 -d {s}s -s target/bench/tokens-probe.lua <url>/tokens   # x{}",
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
pub(super) fn soak(plan: &Plan, project: &Project, dir: &Path, report: &mut Report) -> anyhow::Result<()> {
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
        "wrk -c 256 -d {secs}s --timeout 30s -s target/bench/tokens.lua <url>/tokens & 256 clients (xtask/src/commands/bench/flood.rs) POST /auth for {secs}s"
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
