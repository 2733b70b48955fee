//! `/auth` and `/tokens` on PostgreSQL against SQLite, and two replicas (PostgreSQL, Redis) against one, in one run.

use super::*;
use tiledesk_test_support::{Postgres, Redis};

/// One `tiledesk-auth serve` of the comparison: `database`, the shared throttle when `throttle` is given.
fn start_replica(
    project: &Project,
    dir: &Path,
    database: &str,
    throttle: Option<&str>,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    let key_file = dir.join("api-key");
    std::fs::write(&key_file, &project.api_key)?;
    let mut command = project.serve_on(&release_binary(), &format!("127.0.0.1:{port}"), database);
    command
        .arg("--api-key-file")
        .arg(&key_file)
        .env_remove("RUST_LOG")
        .args([
            "--max-connections-per-address",
            "4096",
            "--trusted-proxy",
            "127.0.0.1",
        ]);
    if let Some(url) = throttle {
        command.args(["--throttle", url]);
    }
    let (process, _) = spawn_ready(command, "listening on", true)?;
    Ok(Server {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// wrk on every server at once, `connections` split evenly; the loads added up (latencies: the worst side's).
fn spread(
    servers: &[&Server],
    path: &str,
    script: &Path,
    connections: u32,
    secs: u32,
) -> anyhow::Result<Load> {
    let each = connections / servers.len() as u32;
    let loads: Vec<anyhow::Result<Load>> = std::thread::scope(|scope| {
        let runs: Vec<_> = servers
            .iter()
            .map(|server| {
                let url = format!("{}{path}", server.url);
                scope.spawn(move || wrk(&url, script, each, secs))
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                run.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("wrk thread panicked")))
            })
            .collect()
    });
    let mut total = Load::default();
    for load in loads {
        let load = load?;
        total.requests += load.requests;
        total.rps += load.rps;
        total.p50_ms = total.p50_ms.max(load.p50_ms);
        total.p99_ms = total.p99_ms.max(load.p99_ms);
        total.errors += load.errors;
        total.non_2xx += load.non_2xx;
    }
    Ok(total)
}

pub(super) fn replicas(
    plan: &Plan,
    project: &Project,
    dir: &Path,
    report: &mut Report,
) -> anyhow::Result<()> {
    step("PostgreSQL against SQLite, two replicas against one (Debian's PostgreSQL and Redis, started here)");
    let postgres = Postgres::start();
    let redis = Redis::start();
    // The bench user moves to PostgreSQL the way an operator's would.
    run(Command::new(release_binary()).args([
        "users",
        "migrate",
        "--from",
        &project.database,
        "--to",
        &postgres.url(),
    ]))?;
    let sqlite = start_replica(project, dir, &project.database, None)?;
    let on_postgres = start_replica(project, dir, &postgres.url(), None)?;
    let first = start_replica(project, dir, &postgres.url(), Some(&redis.url()))?;
    let second = start_replica(project, dir, &postgres.url(), Some(&redis.url()))?;

    let tokens = tokens_script(dir, project)?;
    let login_body = format!(r#"{{"email":"{BENCH_EMAIL}","password":"{}"}}"#, project.password);
    // wrk cuts the requests in flight when a run ends, and a login cut short counts as a failure (breaking off a
    // guess must not make it free). So each request comes from an address of its own (127.0.0.1 is a trusted proxy
    // here), a different second octet for every run: cut logins never add up to a block on one address. They do add
    // up on the account (100 failures in 15 minutes): at most 8 per run, over the 8 runs a Redis-sharing setup
    // sees (warm-ups included), stays under it; more rounds would need more bench users.
    let mut runs_started = 0u32;
    let mut script_for = |path: &str| -> anyhow::Result<PathBuf> {
        if path != "/auth" {
            return Ok(tokens.clone());
        }
        runs_started += 1;
        let run = runs_started;
        let login = wrk_script(
            dir,
            &format!("login-{run}"),
            "POST",
            Some(&login_body),
            &[("Content-Type", "application/json")],
        )?;
        let lua = std::fs::read_to_string(&login)?;
        std::fs::write(
            &login,
            format!(
                "{lua}math.randomseed({run})\nrequest = function()\n  wrk.headers[\"X-Forwarded-For\"] = \
                 string.format(\"10.{}.%d.%d\", math.random(0, 255), math.random(1, 254))\n  return wrk.format()\nend\n",
                run % 256
            ),
        )?;
        Ok(login)
    };
    // Logins are argon2 work on 2 cores: 8 connections keep both busy (and stay within one address's 8 at once).
    let cases: [(&str, &str, u32); 2] = [("POST /tokens", "/tokens", 16), ("POST /auth", "/auth", 8)];
    let setups: [(&str, Vec<&Server>); 4] = [
        ("one replica, SQLite", vec![&sqlite]),
        ("one replica, PostgreSQL", vec![&on_postgres]),
        ("one replica, PostgreSQL + Redis", vec![&first]),
        ("two replicas, PostgreSQL + Redis", vec![&first, &second]),
    ];
    // Each setup signs the bench user in before it is measured (a setup refusing would measure refusals).
    for (setup, servers) in &setups {
        for server in servers {
            let (status, body) =
                tiledesk_test_support::http("POST", &format!("{}/auth", server.url), Some(&login_body));
            if status != 200 {
                bail!("{setup}: POST /auth answered {status}: {body}");
            }
        }
    }
    for (_, path, connections) in &cases {
        for (_, servers) in &setups {
            spread(servers, path, &script_for(path)?, *connections, plan.warmup_secs)?;
        }
    }
    let mut table = String::from(
        "| request | setup | req/s | p50 | p99 | against one replica on SQLite |\n|---|---|---|---|---|---|\n",
    );
    for (name, path, connections) in &cases {
        let mut runs: Vec<Vec<Load>> = vec![Vec::new(); setups.len()];
        for round in 0..plan.rounds {
            for turn in 0..setups.len() {
                let side = (round + turn) % setups.len();
                let script = script_for(path)?;
                runs[side].push(spread(
                    &setups[side].1,
                    path,
                    &script,
                    *connections,
                    plan.run_secs,
                )?);
            }
        }
        let loads: Vec<Load> = runs.iter().map(|r| summarise(r)).collect();
        for ((setup, _), load) in setups.iter().zip(&loads) {
            if load.errors + load.non_2xx > 0 {
                bail!("{name} on {setup}: errors {load:?}");
            }
            writeln!(
                table,
                "| {name} ({connections} connections) | {setup} | {:.0} | {:.2} ms | {:.2} ms | {:.2}x |",
                load.rps,
                load.p50_ms,
                load.p99_ms,
                load.rps / loads[0].rps
            )?;
        }
        report.line(format!(
            "{name}: SQLite {:.0} req/s, PostgreSQL {:.0} ({:.2}x), with the Redis throttle {:.0} ({:.2}x), two replicas {:.0} ({:.2}x); p99 {:.2} / {:.2} / {:.2} / {:.2} ms",
            loads[0].rps,
            loads[1].rps,
            loads[1].rps / loads[0].rps,
            loads[2].rps,
            loads[2].rps / loads[0].rps,
            loads[3].rps,
            loads[3].rps / loads[0].rps,
            loads[0].p99_ms,
            loads[1].p99_ms,
            loads[2].p99_ms,
            loads[3].p99_ms,
        ));
    }
    report.commands.push(format!(
        "tiledesk-auth users migrate --from sqlite://... --to postgres://...; wrk -c <16 for /tokens, 8 for /auth, split over the replicas> -d {}s -s target/bench/<tokens|login-N>.lua   # x{} per setup, rotating",
        plan.run_secs, plan.rounds
    ));
    report.sections.push(format!(
        "## Replicas: PostgreSQL, Redis, two against one\n\n\
         The release `tiledesk-auth` on Debian's PostgreSQL and Redis, started by the bench as processes of their \
         own on this machine (PostgreSQL without fsync: a throwaway cluster). `/auth` is a right password (argon2 \
         each time; with Redis, two Lua scripts per login: counted as under way, then settled); `/tokens` touches \
         neither database. Two replicas share the machine's 2 cores with each other, the databases and wrk, so they \
         show what a second replica costs or gives on the same hardware, not what it gives on a machine of its own: \
         replicas are for availability.\n\n{table}"
    ));
    drop((sqlite, on_postgres, first, second));
    drop((postgres, redis));
    Ok(())
}
