//! The attacks of issue 11, re-run against a fresh release `tiledesk-auth` on loopback as an attacker would, with
//! what each measures now. Written into SECURITY.md between its `attacks` markers. Bounded: every attack sends a
//! fixed number of requests to 127.0.0.0/8 only, and every wait has a limit.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{BENCH_EMAIL, Process, Project, free_port, release_binary};

/// A server under attack: its process, address, and every line it logged (with when).
struct Target {
    process: Process,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Target {
    fn start(project: &Project, args: &[&str], log: &str, limit_files: Option<u32>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut command = match limit_files {
            Some(n) => {
                let mut c = std::process::Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(release_binary());
                c
            }
            None => std::process::Command::new(release_binary()),
        };
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", &project.database])
            .args(args)
            .env("TILEDESK_PROJECT_ID", &project.id)
            .env("TILEDESK_SECRET_FILE", &project.secret_file)
            .env("TILEDESK_API_KEY", &project.api_key)
            .env_remove("TILEDESK_SECRET")
            // The "listening on" line is how readiness is seen, whatever else is logged.
            .env("RUST_LOG", format!("{log},tiledesk_auth_server::cli=info"));
        let started =
            tiledesk_test_support::try_start(command, "listening on", true, Duration::from_secs(30))
                .map_err(anyhow::Error::msg)?;
        let logs = Arc::new(Mutex::new(vec![(Instant::now(), started.ready)]));
        {
            let logs = Arc::clone(&logs);
            let lines = started.lines;
            std::thread::spawn(move || {
                for line in lines {
                    logs.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((Instant::now(), line));
                }
            });
        }
        let process = started.process;
        Ok(Self {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            logs,
        })
    }

    fn log_lines(&self) -> Vec<(Instant, String)> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits (at most `limit`) for a log line matching `wanted`; when it came.
    fn wait_for_log(&self, wanted: impl Fn(&str) -> bool, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some((at, _)) = self.log_lines().into_iter().find(|(_, l)| wanted(l)) {
                return Some(at);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    super::flood::connect(target, source)
}

/// One request on a fresh connection from `source`: the status (0 when the connection was closed unanswered), the
/// `Set-Cookie` value, and how long it took.
fn request(source: Ipv4Addr, target: SocketAddr, raw: &str) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let Ok(mut stream) = connect_from(source, target) else {
        return (0, None, started.elapsed());
    };
    if stream.write_all(raw.as_bytes()).is_err() {
        return (0, None, started.elapsed());
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cookie = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|c| c.split(';').next().unwrap_or_default().to_owned());
    (status, cookie, started.elapsed())
}

fn post(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn login(email: &str, password: &str) -> String {
    post(
        "/auth",
        &serde_json::json!({"email": email, "password": password}).to_string(),
        "",
    )
}

/// `count` requests at once (released together by a barrier), request `i` from `source(i)`.
fn at_once(
    count: usize,
    source: impl Fn(usize) -> Ipv4Addr,
    target: SocketAddr,
    raw: &(dyn Fn(usize) -> String + Sync),
) -> Vec<(u16, Duration)> {
    let barrier = Barrier::new(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|i| {
                let (barrier, from) = (&barrier, source(i));
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn_scoped(scope, move || {
                        let raw = raw(i);
                        barrier.wait();
                        let (status, _, took) = request(from, target, &raw);
                        (status, took)
                    })
                    .expect("thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or((0, Duration::ZERO)))
            .collect()
    })
}

fn count(statuses: &[(u16, Duration)], status: u16) -> usize {
    statuses.iter().filter(|(s, _)| *s == status).count()
}

fn p99(statuses: &[(u16, Duration)]) -> Duration {
    let mut times: Vec<Duration> = statuses.iter().map(|(_, t)| *t).collect();
    times.sort();
    times
        .get(times.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default()
}

fn addr(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}

fn spread(base: u8, i: usize) -> Ipv4Addr {
    addr(base, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Raises this process's soft open-file limit (util-linux `prlimit` on our own pid): the idle-connection attack
/// holds more sockets than the usual 1024.
fn raise_own_file_limit(to: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={to}:"),
        ])
        .status()
        .context("prlimit (util-linux)")?;
    if !status.success() {
        bail!("prlimit could not raise the open-file limit to {to}");
    }
    Ok(())
}

/// Runs every attack; the Markdown table of what they measured.
pub(super) fn run(project: &Project, dir: &std::path::Path) -> anyhow::Result<String> {
    raise_own_file_limit(16_384)?;
    let mut rows: Vec<[String; 3]> = Vec::new();
    let wrong = login(BENCH_EMAIL, "not-the-password");
    let right = login(BENCH_EMAIL, &project.password);

    // 1. Concurrent guesses.
    for n in [120, 1000] {
        let server = Target::start(project, &[], "warn", None)?;
        let answers = at_once(n, |_| addr(2, 0, 1), server.addr, &|_| wrong.clone());
        rows.push([
            format!("{n} wrong passwords for one account from one address, at once"),
            if n == 120 { "37–39 reached the password check (the limit is 5)" } else { "713 reached the password check" }
                .to_owned(),
            format!(
                "{} reached the password check (`401`); {} refused `429`; {} connections over the per-address cap closed unanswered",
                count(&answers, 401),
                count(&answers, 429),
                count(&answers, 0)
            ),
        ]);
    }

    // 2. Lock-out of the real user.
    {
        let server = Target::start(project, &[], "warn", None)?;
        let home = addr(3, 0, 1);
        let (status, cookie, _) = request(home, server.addr, &right);
        if status != 200 {
            bail!("the owner's first login got {status}");
        }
        let cookie = cookie.context("no device cookie")?;
        let mut guesses = Vec::new();
        for round in 0..5 {
            for a in 0..20u8 {
                guesses.push(request(addr(4, round, a + 1), server.addr, &wrong).0);
            }
        }
        let stranger = request(addr(3, 0, 2), server.addr, &right).0;
        let owner = request(
            home,
            server.addr,
            &post(
                "/auth",
                &serde_json::json!({"email": BENCH_EMAIL, "password": project.password}).to_string(),
                &format!("Cookie: {cookie}\r\n"),
            ),
        )
        .0;
        rows.push([
            "100 wrong passwords for a known email from 20 addresses, then the owner signs in".to_owned(),
            "the owner refused `429`, `Retry-After: 899`, for 15 minutes, repeatably".to_owned(),
            format!(
                "the owner, from their usual browser: `{owner}`; the right password from a browser without the device cookie: `{stranger}` (the account stays shut to strangers); guesses answered {}",
                guesses.iter().filter(|s| **s == 401).count()
            ),
        ]);
    }

    // 3. A flood of logins, each from its own address, and a real user in the middle of it.
    {
        let server = Target::start(project, &[], "warn", None)?;
        let target = server.addr;
        let (flood, user) = std::thread::scope(|scope| {
            let flood = scope.spawn(|| {
                let stuffing = |i| login(&format!("someone{i}@example.org"), "123456");
                at_once(1000, |i| spread(5, i), target, &stuffing)
            });
            // The real user arrives while the flood is being answered.
            std::thread::sleep(Duration::from_millis(300));
            let user = request(addr(6, 0, 1), target, &right);
            (flood.join(), user)
        });
        let flood = flood.map_err(|_| anyhow::anyhow!("flood panicked"))?;
        rows.push([
            "1000 logins at once, each from its own address, and a real user's login among them".to_owned(),
            "the real user waited 6.75 s; the flood's p99 8.7 s; nothing ever refused, waits grow with the flood"
                .to_owned(),
            format!(
                "the real user: `{}` after {}; the flood: {} checked, {} refused `503 busy` with `Retry-After`, p99 {} (bounded: 5 s in the queue)",
                user.0,
                secs(user.2),
                count(&flood, 401),
                count(&flood, 503),
                secs(p99(&flood))
            ),
        ]);
    }

    // 4 and 5. A client that never reads a 50 MB answer; then SIGTERM while it holds on.
    let site = dir.join("attack-site");
    std::fs::create_dir_all(site.join(".git"))?;
    std::fs::write(site.join("big.bin"), vec![7u8; 50 * 1024 * 1024])?;
    std::fs::write(site.join(".env"), "SECRET=1")?;
    std::fs::write(site.join(".git/HEAD"), "ref: refs/heads/main")?;
    let _ = std::fs::remove_file(site.join("passwd"));
    std::os::unix::fs::symlink("/etc/passwd", site.join("passwd"))?;
    let site_arg = site.display().to_string();
    {
        let server = Target::start(
            project,
            &["--static-dir", &site_arg],
            "tiledesk_auth_server=debug",
            None,
        )?;
        let mut stalled = connect_from(addr(7, 0, 1), server.addr)?;
        let asked = Instant::now();
        stalled.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let port = format!(":{}", stalled.local_addr()?.port());
        let cut = server.wait_for_log(
            |l| l.contains("connection ended") && l.contains(&port),
            Duration::from_secs(60),
        );
        let mut second = connect_from(addr(7, 0, 2), server.addr)?;
        second.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 512];
        let _ = second.read(&mut head)?;
        let signalled = Instant::now();
        std::process::Command::new("kill")
            .args(["-TERM", &server.process.0.id().to_string()])
            .status()?;
        let mut server = server;
        let exited = loop {
            if server.process.0.try_wait()?.is_some() {
                break Some(signalled.elapsed());
            }
            if signalled.elapsed() > Duration::from_secs(60) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        rows.push([
            "a client asks for a 50 MB file and never reads it".to_owned(),
            "its connection held for more than 32 s".to_owned(),
            cut.map_or("never cut off (60 s)".to_owned(), |at| {
                format!(
                    "disconnected {} after asking (`--write-timeout` 10 s)",
                    secs(at - asked)
                )
            }),
        ]);
        rows.push([
            "SIGTERM while such a client holds on".to_owned(),
            "the service ran on, refusing new connections, until the client left (30 s)".to_owned(),
            exited.map_or("still running after 60 s".to_owned(), |t| {
                format!("exited {} after the signal (`--shutdown-timeout` 10 s)", secs(t))
            }),
        ]);
        drop((stalled, second));
    }

    // 6. Idle connections from one address.
    {
        let server = Target::start(project, &[], "warn", None)?;
        let idle: Vec<TcpStream> = (0..4200)
            .filter_map(|_| connect_from(addr(8, 0, 1), server.addr).ok())
            .collect();
        let mut times = Vec::new();
        for i in 0..20 {
            let (status, _, took) = request(
                addr(8, 1, i + 1),
                server.addr,
                "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            if status != 200 {
                bail!("a normal client got {status} beside the idle connections");
            }
            times.push(took);
        }
        times.sort();
        rows.push([
            format!("{} idle connections from one address, then a normal client", idle.len()),
            "the normal client waited 5.2 s (p50)".to_owned(),
            format!(
                "the normal client answered in {:.1} ms (p50 of 20); beyond 256 the idle ones were closed unanswered",
                times[10].as_secs_f64() * 1e3
            ),
        ]);
    }

    // 7. An open-file limit below the connection cap.
    {
        let server = Target::start(project, &["--read-timeout", "2s"], "warn", Some(256))?;
        let idle: Vec<TcpStream> = (0..300)
            .filter_map(|i| connect_from(spread(9, i), server.addr).ok())
            .collect();
        let (status, _, took) = request(
            addr(9, 200, 1),
            server.addr,
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        let failures = server
            .log_lines()
            .iter()
            .filter(|(_, l)| l.contains("accept failed"))
            .count();
        let lowered = server
            .log_lines()
            .iter()
            .any(|(_, l)| l.contains("max connections lowered"));
        rows.push([
            format!("`ulimit -n 256`, {} idle connections from as many addresses, then a normal client", idle.len()),
            "\"accept failed\" warnings; the normal client waited 3.6 s".to_owned(),
            format!(
                "cap lowered at start ({}); {failures} \"accept failed\"; the normal client: `{status}` after {} (behind the idle ones, cut at `--read-timeout` 2 s)",
                if lowered { "logged" } else { "NOT logged" },
                secs(took)
            ),
        ]);
        drop(idle);
    }

    // 8. Unfinished headers.
    {
        let server = Target::start(project, &[], "warn", None)?;
        let before = server.rss_kib();
        let chunk = format!("X-Padding: {}\r\n", "a".repeat(1000));
        let mut streams = Vec::new();
        for i in 0..500 {
            let Ok(mut stream) = connect_from(spread(10, i), server.addr) else {
                continue;
            };
            stream.set_write_timeout(Some(Duration::from_millis(200)))?;
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
            for _ in 0..380 {
                if stream.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
            }
            streams.push(stream);
        }
        let after = server.rss_kib();
        rows.push([
            "500 connections each sending 380 KiB of headers that never end".to_owned(),
            "203 MiB".to_owned(),
            format!(
                "{:.1} MiB more resident memory (each refused `431` once past 32 KiB)",
                after.saturating_sub(before) as f64 / 1024.0
            ),
        ]);
        drop(streams);
    }

    // 9. Wrong API keys as fast as one client can send them.
    {
        let server = Target::start(project, &[], "info", None)?;
        let started = Instant::now();
        let mut statuses = Vec::new();
        let mut stream = connect_from(addr(11, 0, 1), server.addr)?;
        while started.elapsed() < Duration::from_secs(5) {
            let raw = post(
                "/tokens",
                r#"{"user_id":"1"}"#,
                "Authorization: Bearer wrong-key-0123456789\r\n",
            )
            .replace("Connection: close\r\n", "");
            stream.write_all(raw.as_bytes())?;
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf)?;
            statuses.push(
                String::from_utf8_lossy(&buf[..n])
                    .split(' ')
                    .nth(1)
                    .unwrap_or("0")
                    .to_owned(),
            );
        }
        let bytes: usize = server.log_lines().iter().map(|(_, l)| l.len() + 1).sum();
        rows.push([
            "wrong API keys for 5 s on one keep-alive connection".to_owned(),
            "64 000 a second answered, an INFO line each (31 MiB of log in 5 s)".to_owned(),
            format!(
                "{} answered: {} `401`, then `429` without the key being looked at; {} lines, {bytes} bytes of log in all",
                statuses.len(),
                statuses.iter().filter(|s| *s == "401").count(),
                server.log_lines().len()
            ),
        ]);
    }

    // 10. What --static-dir serves.
    {
        let server = Target::start(project, &["--static-dir", &site_arg], "warn", None)?;
        let get = |path: &str| {
            request(
                addr(12, 0, 1),
                server.addr,
                &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            )
            .0
        };
        rows.push([
            "`/.env`, `/.git/HEAD`, a link to `/etc/passwd` under `--static-dir`".to_owned(),
            "all three served (`200`)".to_owned(),
            format!(
                "`{}`, `{}`, `{}`",
                get("/.env"),
                get("/.git/HEAD"),
                get("/passwd")
            ),
        ]);
        let inside = format!("sqlite://{}", site.join("users.db").display());
        let output = std::process::Command::new(release_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--static-dir",
                &site_arg,
                "--database",
                &inside,
            ])
            .env("TILEDESK_PROJECT_ID", &project.id)
            .env("TILEDESK_SECRET_FILE", &project.secret_file)
            .output()?;
        rows.push([
            "a user database inside `--static-dir`".to_owned(),
            "downloadable; database files created 0644".to_owned(),
            format!(
                "refused at start (exit {}); the database is created 0600",
                output.status.code().unwrap_or(-1)
            ),
        ]);
    }

    // 11. A 1-byte secret.
    {
        let output = std::process::Command::new(release_binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &project.database,
            ])
            .env("TILEDESK_PROJECT_ID", &project.id)
            .env("TILEDESK_SECRET", "x")
            .env_remove("TILEDESK_SECRET_FILE")
            .output()?;
        let said = String::from_utf8_lossy(&output.stderr);
        rows.push([
            "a 1-byte project secret".to_owned(),
            "accepted".to_owned(),
            format!(
                "refused at start (exit {}): \"{}\"",
                output.status.code().unwrap_or(-1),
                said.lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .split(" (")
                    .next()
                    .unwrap_or_default()
            ),
        ]);
    }

    // 12. Duplicate keys inside attributes.
    {
        let server = Target::start(project, &[], "warn", None)?;
        let raw = post(
            "/tokens",
            r#"{"user_id":"1","attributes":{"plan":"free","plan":"enterprise"}}"#,
            &format!("Authorization: Bearer {}\r\n", project.api_key),
        );
        rows.push([
            "duplicate keys inside `attributes`".to_owned(),
            "silently collapsed (the last one won)".to_owned(),
            format!(
                "`{}` (`duplicate_field`, naming `attributes.plan`: `tests/hostile.rs`)",
                request(addr(13, 0, 1), server.addr, &raw).0
            ),
        ]);
    }

    let _ = std::fs::remove_dir_all(&site);
    let mut table = String::from("| attack | before (issue 11) | now |\n|---|---|---|\n");
    for [attack, before, now] in rows {
        table.push_str(&format!("| {attack} | {before} | {now} |\n"));
    }
    Ok(table)
}
