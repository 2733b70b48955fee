//! Two replicas of the real binary behind nothing but two ports, sharing a real PostgreSQL (the users) and a real
//! Redis (the failed-login counters), both Debian's, started here as processes of their own.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{PROJECT, SECRET, Server, http, raw_exchange, run_cli, token_claims};
use serde_json::Value;
use tiledesk_test_support::{Postgres, Redis};

const PASSWORD: &str = "correct horse battery staple";

/// The replicas' settings: the project, the shared database, the shared throttle if any, and 127.0.0.1 trusted as
/// a proxy so each request can say which visitor address it comes from.
fn replica(database: &str, throttle: Option<&str>, extra: &[(&str, String)]) -> Server {
    let mut env = vec![
        ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
        ("TILEDESK_SECRET", SECRET.to_owned()),
        ("TILEDESK_AUTH_DATABASE", database.to_owned()),
        ("TILEDESK_AUTH_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
    ];
    if let Some(url) = throttle {
        env.push(("TILEDESK_AUTH_THROTTLE", url.to_owned()));
    }
    env.extend(extra.iter().cloned());
    Server::start(&[], &env)
}

/// `users ...` on `database`, the password (if any) on standard input; panics on failure, returns stdout.
fn users(database: &str, args: &[&str], password: &str) -> String {
    let mut all = vec!["users"];
    all.extend_from_slice(&args[..1]);
    all.extend_from_slice(&["--database", database]);
    all.extend_from_slice(&args[1..]);
    let (code, stdout, stderr) = run_cli(&all, &[], &format!("{password}\n"));
    assert_eq!(code, 0, "users {args:?}: {stderr}");
    stdout
}

/// The bytes of `POST /auth` with this email and password, as the visitor at `from`, with `cookie` if any.
fn auth_request(addr: SocketAddr, email: &str, password: &str, from: &str, cookie: Option<&str>) -> Vec<u8> {
    let body = serde_json::json!({"email": email, "password": password}).to_string();
    let cookie = cookie
        .map(|cookie| format!("Cookie: {cookie}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /auth HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         X-Forwarded-For: {from}\r\n{cookie}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `POST /auth` with this email and password, as the visitor at `from`: (status, body).
fn login(addr: SocketAddr, email: &str, password: &str, from: &str) -> (u16, String) {
    let answer = raw_exchange(addr, auth_request(addr, email, password, from, None));
    (answer.status, answer.body)
}

/// The `_id` claim of the token in a `/auth` answer.
fn visitor_id(body: &str) -> String {
    token_claims(body)["_id"].as_str().unwrap().to_owned()
}

#[test]
fn a_user_added_through_one_replica_signs_in_through_the_other_and_changes_reach_both() {
    let postgres = Postgres::start();
    let database = postgres.url();
    let (a, b) = (replica(&database, None, &[]), replica(&database, None, &[]));
    let added = users(
        &database,
        &["add", "--email", "ada@example.com", "--password-stdin"],
        PASSWORD,
    );
    let id = added
        .trim()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned();

    let (status, on_a) = login(a.addr, "ada@example.com", PASSWORD, "198.51.100.1");
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = login(b.addr, "ADA@example.com", PASSWORD, "198.51.100.1");
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(
        visitor_id(&on_a),
        visitor_id(&on_b),
        "one visitor, whichever replica answers"
    );
    assert!(
        visitor_id(&on_a).ends_with(&id),
        "{} for user {id}",
        visitor_id(&on_a)
    );

    users(
        &database,
        &["set-password", "ada@example.com", "--password-stdin"],
        "a new password 42",
    );
    for replica in [&a, &b] {
        assert_eq!(
            login(replica.addr, "ada@example.com", PASSWORD, "198.51.100.2").0,
            401
        );
        assert_eq!(
            login(
                replica.addr,
                "ada@example.com",
                "a new password 42",
                "198.51.100.2"
            )
            .0,
            200
        );
    }
    users(&database, &["remove", "ada@example.com"], "");
    for replica in [&a, &b] {
        assert_eq!(
            login(
                replica.addr,
                "ada@example.com",
                "a new password 42",
                "198.51.100.3"
            )
            .0,
            401
        );
    }
}

/// Two replicas sharing a PostgreSQL that holds Ada (password [`PASSWORD`]) and a Redis. The servers are declared
/// first, so they stop before what they share. Bind every field by name: fields left to `..` in a `let` are dropped
/// (PostgreSQL and Redis stopped) at the end of that statement.
struct Shared {
    a: Server,
    b: Server,
    redis: Redis,
    _postgres: Postgres,
}

fn ada_on_two_replicas() -> Shared {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let database = postgres.url();
    users(
        &database,
        &["add", "--email", "ada@example.com", "--password-stdin"],
        PASSWORD,
    );
    Shared {
        a: replica(&database, Some(&redis.url()), &[]),
        b: replica(&database, Some(&redis.url()), &[]),
        redis,
        _postgres: postgres,
    }
}

/// Wrong passwords for one account from one address, alternating replicas, until one is refused with 429: how many
/// were judged (401) before.
fn failures_before_throttled(replicas: &[&Server], email: &str, from: &str) -> usize {
    for attempt in 0..40 {
        let replica = replicas[attempt % replicas.len()];
        match login(replica.addr, email, "a wrong guess", from) {
            (401, _) => {}
            (429, _) => return attempt,
            (status, body) => panic!("attempt {attempt}: {status} {body}"),
        }
    }
    panic!("40 wrong passwords and never throttled");
}

#[test]
fn a_guesser_alternating_replicas_is_throttled_after_as_many_failures_as_on_one() {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let database = postgres.url();
    users(
        &database,
        &["add", "--email", "ada@example.com", "--password-stdin"],
        PASSWORD,
    );

    // The baseline: one replica alone lets 5 wrong passwords from one address be judged.
    let alone = replica(&database, Some(&redis.url()), &[]);
    assert_eq!(
        failures_before_throttled(&[&alone], "ada@example.com", "203.0.113.1"),
        5
    );

    // Two replicas without the shared throttle: each counts its own, twice the budget. What Redis is for.
    let (a, b) = (replica(&database, None, &[]), replica(&database, None, &[]));
    assert_eq!(
        failures_before_throttled(&[&a, &b], "ada@example.com", "203.0.113.2"),
        10
    );

    // Two replicas sharing it: 5, as on one.
    let (a, b) = (
        replica(&database, Some(&redis.url()), &[]),
        replica(&database, Some(&redis.url()), &[]),
    );
    assert_eq!(
        failures_before_throttled(&[&a, &b], "ada@example.com", "203.0.113.3"),
        5
    );
    // Both refuse that address for that account, even the right password, with when to come back...
    for replica in [&a, &b] {
        let (status, body) = login(replica.addr, "ada@example.com", PASSWORD, "203.0.113.3");
        assert_eq!(status, 429, "{body}");
    }
    // ...while Ada, from her own address, signs in through either.
    for replica in [&a, &b] {
        assert_eq!(
            login(replica.addr, "ada@example.com", PASSWORD, "192.0.2.10").0,
            200
        );
    }

    // A success clears that address's failures on every replica: 4 failures, a success, then 5 more judged.
    for attempt in 0..4 {
        let replica = [&a, &b][attempt % 2];
        assert_eq!(
            login(replica.addr, "ada@example.com", "a wrong guess", "192.0.2.20").0,
            401
        );
    }
    assert_eq!(login(b.addr, "ada@example.com", PASSWORD, "192.0.2.20").0, 200);
    assert_eq!(
        failures_before_throttled(&[&b], "ada@example.com", "192.0.2.20"),
        5
    );
}

#[test]
fn with_redis_down_logins_go_on_each_replica_counting_its_own_and_sharing_resumes_when_it_is_back() {
    let Shared {
        mut redis,
        a,
        b,
        _postgres,
    } = ada_on_two_replicas();
    assert_eq!(login(a.addr, "ada@example.com", PASSWORD, "192.0.2.1").0, 200);

    redis.stop();
    // Right passwords still sign in: Redis is not on the path of a login's success.
    for replica in [&a, &b] {
        let (status, body) = login(replica.addr, "ada@example.com", PASSWORD, "192.0.2.1");
        assert_eq!(status, 200, "{body}");
        replica.wait_for_log(|l| l.contains("Redis does not answer"));
    }
    // Never unlimited: each replica still throttles on what it sees, so alternating gets at most twice the budget.
    assert_eq!(
        failures_before_throttled(&[&a, &b], "ada@example.com", "203.0.113.7"),
        10
    );
    assert_eq!(
        failures_before_throttled(&[&a], "ada@example.com", "203.0.113.8"),
        5
    );

    redis.restart();
    // Each replica finds Redis again on its next login (the log says so): from then on the count is shared again.
    for replica in [&a, &b] {
        let mut back = false;
        for _ in 0..20 {
            assert_eq!(
                login(replica.addr, "ada@example.com", PASSWORD, "192.0.2.1").0,
                200
            );
            if replica
                .logs
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("Redis answers again"))
            {
                back = true;
                break;
            }
        }
        assert!(back, "the replica never found Redis again");
    }
    assert_eq!(
        failures_before_throttled(&[&a, &b], "ada@example.com", "203.0.113.9"),
        5
    );
}

/// `POST /auth` as [`login`], but a connection refused or cut is `None` instead of a panic.
fn try_login(addr: SocketAddr, email: &str, password: &str, from: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .ok()?;
    stream
        .write_all(&auth_request(addr, email, password, from, None))
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(common::parse_response(&response).0).filter(|status| *status != 0)
}

#[test]
fn killing_one_replica_mid_load_loses_no_request_the_other_was_serving() {
    let postgres = Postgres::start();
    let redis = Redis::start();
    let database = postgres.url();
    for i in 0..4 {
        users(
            &database,
            &[
                "add",
                "--email",
                &format!("user{i}@example.com"),
                "--password-stdin",
            ],
            PASSWORD,
        );
    }
    let mut a = replica(&database, Some(&redis.url()), &[]);
    let b = replica(&database, Some(&redis.url()), &[]);

    // Four visitors signing in without pause, two on each replica, 30 logins each; every answer reported.
    const LOGINS: usize = 30;
    let killed = Arc::new(AtomicBool::new(false));
    let (report, answers) = std::sync::mpsc::channel::<(SocketAddr, bool, Option<u16>)>();
    let visitors: Vec<_> = (0..4)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let (killed, report) = (Arc::clone(&killed), report.clone());
            std::thread::spawn(move || {
                for _ in 0..LOGINS {
                    let status = try_login(
                        addr,
                        &format!("user{i}@example.com"),
                        PASSWORD,
                        &format!("198.51.100.{i}"),
                    );
                    let _ = report.send((addr, killed.load(Ordering::SeqCst), status));
                }
            })
        })
        .collect();
    drop(report);
    // A is killed (SIGKILL: no graceful shutdown, logins in flight) once both replicas have answered some logins.
    let mut seen = Vec::new();
    while seen.iter().filter(|(addr, _, _)| *addr == b.addr).count() < 5
        || seen.iter().filter(|(addr, _, _)| *addr == a.addr).count() < 5
    {
        seen.push(
            answers
                .recv_timeout(tiledesk_test_support::WAIT)
                .expect("the visitors stopped answering"),
        );
    }
    a.kill();
    killed.store(true, Ordering::SeqCst);
    a.reap();
    seen.extend(answers.iter());
    for visitor in visitors {
        visitor.join().unwrap();
    }

    let on_b: Vec<_> = seen.iter().filter(|(addr, _, _)| *addr == b.addr).collect();
    assert_eq!(on_b.len(), 2 * LOGINS);
    for (_, after_kill, status) in &on_b {
        assert_eq!(
            *status,
            Some(200),
            "B failed a login (A killed before it was sent: {after_kill})"
        );
    }
    assert!(
        on_b.iter().filter(|(_, after_kill, _)| *after_kill).count() > 0,
        "B went on serving after A was killed"
    );
    assert!(
        seen.iter()
            .any(|(addr, after_kill, status)| *addr == a.addr && *after_kill && status.is_none()),
        "A really was killed mid-load"
    );
}

/// `POST /tokens` with this key: (status, body).
fn mint(addr: SocketAddr, key: &str) -> (u16, String) {
    http(
        addr,
        "POST",
        "/tokens",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {key}")),
        ],
        r#"{"user_id": "rotating"}"#,
    )
}

/// Writes `text` aside and renames it over `file`, as secret managers do.
fn rewrite(file: &std::path::Path, text: &str) {
    let aside = file.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, file).unwrap();
}

/// One file per replica in `dir`, named `a.<extension>`, `b.<extension>`.
fn per_replica(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    ["a", "b"]
        .iter()
        .map(|name| dir.join(format!("{name}.{extension}")))
        .collect()
}

/// Writes `contents` to the replica's `file`, sends it SIGHUP, and waits for a log line that is `reloaded`.
fn reload(replica: &Server, file: &std::path::Path, contents: &str, reloaded: impl Fn(&str) -> bool) {
    rewrite(file, contents);
    let pid = replica.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    replica.wait_for_log(reloaded);
}

#[test]
fn an_api_key_rotates_across_two_replicas_in_the_documented_order_without_a_failed_request() {
    const OLD: &str = "the-old-site-backend-key-0123456789";
    const NEW: &str = "the-new-site-backend-key-9876543210";
    let postgres = Postgres::start();
    let database = postgres.url();
    let dir = tempfile::tempdir().unwrap();
    let files = per_replica(dir.path(), "keys");
    for file in &files {
        std::fs::write(file, format!("{OLD}\n")).unwrap();
    }
    let replicas: Vec<Server> = files
        .iter()
        .map(|file| {
            replica(
                &database,
                None,
                &[("TILEDESK_API_KEY_FILE", file.display().to_string())],
            )
        })
        .collect();
    // The site backend mints through both replicas in turn with whichever key it is on; every answer is kept.
    let mut statuses = Vec::new();
    let mint_both = |key: &str, statuses: &mut Vec<u16>| {
        for replica in &replicas {
            statuses.push(mint(replica.addr, key).0);
        }
    };
    mint_both(OLD, &mut statuses);

    // 1. Every replica gets both keys: each file rewritten, each replica reloaded, one at a time, the backend
    //    still on the old key throughout.
    for (file, replica) in files.iter().zip(&replicas) {
        reload(replica, file, &format!("{OLD}\n{NEW}\n"), |l| {
            l.contains("API key reloaded") && l.contains("keys=2")
        });
        mint_both(OLD, &mut statuses);
    }
    // 2. Only then the backend moves to the new key.
    mint_both(NEW, &mut statuses);
    // 3. The old key leaves every replica, one at a time, the backend on the new key throughout.
    for (file, replica) in files.iter().zip(&replicas) {
        reload(replica, file, &format!("{NEW}\n"), |l| {
            l.contains("API key reloaded") && l.contains("keys=1")
        });
        mint_both(NEW, &mut statuses);
    }
    assert_eq!(statuses.len(), 12);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during the rollout: {statuses:?}"
    );
    // The old key is gone everywhere; and the order mattered: a replica not yet given the new key refuses it.
    for replica in &replicas {
        assert_eq!(mint(replica.addr, OLD).0, 401);
    }
    reload(&replicas[1], &files[1], &format!("{OLD}\n"), |l| {
        l.contains("API key reloaded") && l.contains("keys=1")
    });
    assert_eq!(
        mint(replicas[1].addr, NEW).0,
        401,
        "moving the backend before every replica has the key fails"
    );
}

#[test]
fn users_migrate_moves_a_sqlite_store_to_postgres_and_everyone_signs_in_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("users.db").display());
    let postgres = Postgres::start();
    for i in 0..3 {
        users(
            &sqlite,
            &[
                "add",
                "--email",
                &format!("user{i}@example.com"),
                "--password-stdin",
            ],
            &format!("{PASSWORD} {i}"),
        );
    }
    let on_sqlite = replica(&sqlite, None, &[]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let (status, body) = login(
                on_sqlite.addr,
                &format!("user{i}@example.com"),
                &format!("{PASSWORD} {i}"),
                "192.0.2.1",
            );
            assert_eq!(status, 200, "{body}");
            visitor_id(&body)
        })
        .collect();
    drop(on_sqlite);

    let (code, stdout, stderr) = run_cli(
        &["users", "migrate", "--from", &sqlite, "--to", &postgres.url()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("migrated 3 users"), "{stdout}");
    // Twice is refused: the destination is not empty, and nothing is duplicated.
    let (code, _, stderr) = run_cli(
        &["users", "migrate", "--from", &sqlite, "--to", &postgres.url()],
        &[],
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already holds 3 user(s)"), "{stderr}");

    let on_postgres = replica(&postgres.url(), None, &[]);
    for (i, id) in ids.iter().enumerate() {
        let (status, body) = login(
            on_postgres.addr,
            &format!("user{i}@example.com"),
            &format!("{PASSWORD} {i}"),
            "192.0.2.1",
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            &visitor_id(&body),
            id,
            "the same visitor, so the same chat history"
        );
    }
}

#[test]
fn a_database_password_never_reaches_the_output() {
    let postgres = Postgres::start();
    // A password in the URL, and a database that does not exist: the error names the URL without the password.
    let url = format!(
        "postgres://postgres:s3cret-pg-pass@127.0.0.1:{}/missing",
        postgres.port
    );
    let (code, stdout, stderr) = run_cli(&["users", "list", "--database", &url], &[], "");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("postgres://postgres:***@127.0.0.1"), "{stderr}");
    assert!(
        !stderr.contains("s3cret-pg-pass") && !stdout.contains("s3cret-pg-pass"),
        "{stderr}"
    );
    let database = postgres.url();
    let on_postgres = [
        ("TILEDESK_PROJECT_ID", PROJECT),
        ("TILEDESK_SECRET", SECRET),
        ("TILEDESK_AUTH_DATABASE", database.as_str()),
    ];
    let (code, stdout, stderr) = run_cli(
        &[
            "serve",
            "--check",
            "--throttle",
            "redis://:s3cret-redis-pass@127.0.0.1:1",
        ],
        &on_postgres,
        "",
    );
    assert_eq!(code, 1, "Redis unreachable: not well: {stdout}");
    assert!(
        stdout.contains("password store postgres://postgres@127.0.0.1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("throttle      shared in redis://:***@127.0.0.1:1"),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(
        !stderr.contains("s3cret-redis-pass") && !stdout.contains("s3cret-redis-pass"),
        "{stdout}{stderr}"
    );
    // With Redis there, all is well.
    let redis = Redis::start();
    let (code, stdout, _) = run_cli(
        &["serve", "--check", "--throttle", &redis.url()],
        &on_postgres,
        "",
    );
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("throttle      shared in {}: ok", redis.url())),
        "{stdout}"
    );
}

/// `POST /auth` from `n` threads at once (released together), spread over `replicas`: the statuses.
fn at_once(replicas: &[&Server], n: usize, email: &str, password: &str, from: &str) -> Vec<u16> {
    let start = Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let addr = replicas[i % replicas.len()].addr;
            let (start, email, password, from) = (
                Arc::clone(&start),
                email.to_owned(),
                password.to_owned(),
                from.to_owned(),
            );
            std::thread::spawn(move || {
                start.wait();
                login(addr, &email, &password, &from).0
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn guesses_sent_at_once_to_both_replicas_reach_the_password_check_five_times_in_all() {
    let Shared {
        a,
        b,
        redis: _redis,
        _postgres,
    } = ada_on_two_replicas();

    // 40 guesses at once, 20 on each replica: each replica alone would let 5 through; together, 5 in all.
    let statuses = at_once(&[&a, &b], 40, "ada@example.com", "a wrong guess", "203.0.113.50");
    let judged = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((judged, refused), (5, 35), "{statuses:?}");

    // A visitor's 8 simultaneous right logins, through both replicas, all go through: their own places are
    // given back before the next ones are counted.
    let statuses = at_once(&[&a, &b], 8, "ada@example.com", PASSWORD, "192.0.2.77");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn with_postgresql_down_password_logins_answer_503_tokens_go_on_and_logins_recover_when_it_is_back() {
    const KEY: &str = "a-site-backend-key-0123456789";
    let mut postgres = Postgres::start();
    let database = postgres.url();
    users(
        &database,
        &["add", "--email", "ada@example.com", "--password-stdin"],
        PASSWORD,
    );
    let a = replica(&database, None, &[("TILEDESK_API_KEY", KEY.to_owned())]);
    assert_eq!(login(a.addr, "ada@example.com", PASSWORD, "192.0.2.1").0, 200);

    postgres.stop();
    let (status, body) = login(a.addr, "ada@example.com", PASSWORD, "192.0.2.1");
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("postgres"), "no detail for the visitor: {body}");
    assert_eq!(mint(a.addr, KEY).0, 200, "/tokens does not need the database");
    // More logins than her budget of failures (each waits for a connection up to 5 s): unjudged attempts are not
    // failures, so the outage costs Ada nothing.
    // (Five at once, her whole budget, then a sixth: one behind five that each wait 5 s would itself be refused
    // after waiting its own 5 s, with 429.)
    let statuses = at_once(&[&a], 5, "ada@example.com", PASSWORD, "192.0.2.1");
    assert_eq!(statuses, [503; 5]);
    assert_eq!(
        login(a.addr, "ada@example.com", PASSWORD, "192.0.2.1").0,
        503,
        "not 429: none counted"
    );

    postgres.restart();
    let (status, body) = login(a.addr, "ada@example.com", PASSWORD, "192.0.2.1");
    assert_eq!(status, 200, "the pool reconnects by itself: {body}");
}

/// Ada's `POST /auth` as [`login`], with her browser's device cookie if any: (status, body, the device cookie
/// set by the answer, if any).
fn login_with(
    addr: SocketAddr,
    password: &str,
    from: &str,
    cookie: Option<&str>,
) -> (u16, String, Option<String>) {
    let answer = raw_exchange(
        addr,
        auth_request(addr, "ada@example.com", password, from, cookie),
    );
    let set = answer
        .header("set-cookie")
        .and_then(|value| value.split(';').next())
        .map(str::to_owned);
    (answer.status, answer.body, set)
}

#[test]
fn a_guesser_spread_over_replicas_cannot_lock_the_owner_out_of_her_usual_browser_on_either() {
    let Shared {
        a,
        b,
        redis: _redis,
        _postgres,
    } = ada_on_two_replicas();
    // Ada signs in on A: her browser gets the device cookie (both replicas share the secret it is signed with).
    let (status, _, cookie) = login_with(a.addr, PASSWORD, "192.0.2.5", None);
    assert_eq!(status, 200);
    let cookie = cookie.expect("a device cookie");

    // 100 wrong passwords for her account from 20 addresses, alternating replicas: the account's shared budget.
    for i in 0..100 {
        let replica = [&a, &b][i % 2];
        let from = format!("203.0.113.{}", 100 + i / 5);
        assert_eq!(
            login_with(replica.addr, "a wrong guess", &from, None).0,
            401,
            "guess {i}"
        );
    }
    // The account is shut to strangers on both replicas, even with the right password...
    for replica in [&a, &b] {
        assert_eq!(login_with(replica.addr, PASSWORD, "198.51.100.99", None).0, 429);
    }
    // ...and open to Ada's browser on both, from her address or another.
    for (replica, from) in [(&a, "192.0.2.5"), (&b, "192.0.2.5"), (&b, "198.51.100.7")] {
        let (status, body, _) = login_with(replica.addr, PASSWORD, from, Some(&cookie));
        assert_eq!(status, 200, "{body}");
    }
}

/// Whether `token` (`JWT ...`) verifies with `secret` for the test project.
fn signed_with(token: &str, secret: &str) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&[format!("https://tiledesk.com/projects/{PROJECT}")]);
    jsonwebtoken::decode::<Value>(
        token.strip_prefix("JWT ").unwrap_or(token),
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .is_ok()
}

#[test]
fn the_secret_rotates_on_two_replicas_one_at_a_time_without_a_failed_request() {
    const KEY: &str = "a-site-backend-key-0123456789";
    const NEW_SECRET: &str = "the-rotated-project-secret-5b2c7d9e0f1a4c3b";
    let postgres = Postgres::start();
    let database = postgres.url();
    let dir = tempfile::tempdir().unwrap();
    let files = per_replica(dir.path(), "secret");
    let replicas: Vec<Server> = files
        .iter()
        .map(|file| {
            std::fs::write(file, SECRET).unwrap();
            let env = vec![
                ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
                ("TILEDESK_SECRET_FILE", file.display().to_string()),
                ("TILEDESK_AUTH_DATABASE", database.clone()),
                ("TILEDESK_API_KEY", KEY.to_owned()),
            ];
            Server::start(&[], &env)
        })
        .collect();
    let token = |replica: &Server| {
        let (status, body) = mint(replica.addr, KEY);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for replica in &replicas {
        assert!(signed_with(&token(replica), SECRET));
    }
    // One replica at a time: between the two reloads, each mints with the secret it holds, and neither fails.
    for (i, (file, replica)) in files.iter().zip(&replicas).enumerate() {
        reload(replica, file, NEW_SECRET, |l| {
            l.contains("project secret reloaded")
        });
        for (j, other) in replicas.iter().enumerate() {
            let expected = if j <= i { NEW_SECRET } else { SECRET };
            assert!(
                signed_with(&token(other), expected),
                "replica {j} after replica {i} reloaded"
            );
        }
    }
}

/// `GET /readyz`: (status, the checks it names as failing).
fn readiness(replica: &Server) -> (u16, Vec<String>) {
    let (status, body) = http(replica.addr, "GET", "/readyz", &[], "");
    let json: Value = serde_json::from_str(&body).unwrap();
    let failing = json["problems"]
        .as_array()
        .map(|problems| {
            problems
                .iter()
                .map(|p| p["check"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(!body.contains("127.0.0.1"), "no address in the answer: {body}");
    (status, failing)
}

/// Polls readiness until it is `expected` (it is checked at most once a second), and returns it; panics after 15 s.
fn readiness_becomes(replica: &Server, expected: (u16, &[&str])) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, failing) = readiness(replica);
        if status == expected.0 && failing == expected.1 {
            // Liveness never follows the database or Redis.
            assert_eq!(http(replica.addr, "GET", "/healthz", &[], "").0, 200);
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness {status} {failing:?}, not {expected:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn readiness_follows_postgres_and_redis_under_a_running_service_and_liveness_does_not() {
    let mut postgres = Postgres::start();
    let mut redis = Redis::start();
    let replica = replica(&postgres.url(), Some(&redis.url()), &[]);
    readiness_becomes(&replica, (200, &[]));

    // Redis hangs (a host frozen): the probe is answered anyway, within its deadline, and says what is wrong.
    redis.pause();
    readiness_becomes(&replica, (503, &["throttle"]));
    redis.resume();
    readiness_becomes(&replica, (200, &[]));

    redis.stop();
    readiness_becomes(&replica, (503, &["throttle"]));
    postgres.stop();
    readiness_becomes(&replica, (503, &["database", "throttle"]));
    redis.restart();
    readiness_becomes(&replica, (503, &["database"]));
    postgres.restart();
    readiness_becomes(&replica, (200, &[]));
    replica.wait_for_log(|l| l.contains("NOT ready") && l.contains("database"));
}

#[test]
fn both_replicas_write_one_audit_trail_on_postgres_and_a_user_disabled_gets_no_token_from_either() {
    let postgres = Postgres::start();
    let database = postgres.url();
    let (a, b) = (
        replica(
            &database,
            None,
            &[("TILEDESK_AUTH_AUDIT_ADDRESS", "hashed".to_owned())],
        ),
        replica(
            &database,
            None,
            &[("TILEDESK_AUTH_AUDIT_ADDRESS", "hashed".to_owned())],
        ),
    );
    users(
        &database,
        &["add", "--email", "ada@example.com", "--password-stdin"],
        PASSWORD,
    );
    let (status, on_a) = login(a.addr, "ada@example.com", PASSWORD, "198.51.100.1");
    assert_eq!(status, 200, "{on_a}");
    let (status, on_b) = login(b.addr, "ada@example.com", PASSWORD, "198.51.100.2");
    assert_eq!(status, 200, "{on_b}");
    let jti = |body: &str| token_claims(body)["jti"].as_str().unwrap().to_owned();

    // Each replica writes on its own, off the request's path: read until both records are in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records = loop {
        let (code, stdout, stderr) = run_cli(
            &[
                "audit",
                "--database",
                &database,
                "--since",
                "1h",
                "--format",
                "json",
            ],
            &[],
            "",
        );
        assert_eq!(code, 0, "{stderr}");
        let records: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if records.len() >= 2 || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut jtis: Vec<&str> = records.iter().map(|r| r["jti"].as_str().unwrap()).collect();
    jtis.sort_unstable();
    let mut expected = [jti(&on_a), jti(&on_b)];
    expected.sort();
    assert_eq!(jtis, expected, "{records:#?}");
    // Hashed addresses: the two visitors told apart, neither readable, the same on both replicas (one secret).
    let addresses: Vec<&str> = records.iter().map(|r| r["address"].as_str().unwrap()).collect();
    assert_ne!(addresses[0], addresses[1]);
    for address in &addresses {
        assert!(!address.contains("198.51"), "{address}");
    }
    let (status, again) = login(b.addr, "ada@example.com", PASSWORD, "198.51.100.1");
    assert_eq!(status, 200, "{again}");

    // Disabled through the shared database: neither replica mints for her from the next request on.
    users(&database, &["disable", "ada@example.com"], "");
    for replica in [&a, &b] {
        let (status, body) = login(replica.addr, "ada@example.com", PASSWORD, "198.51.100.1");
        assert_eq!(status, 403, "{body}");
    }
    let (code, stdout, _) = run_cli(
        &[
            "audit",
            "--database",
            &database,
            "--since",
            "1h",
            "--format",
            "json",
        ],
        &[],
        "",
    );
    assert_eq!(code, 0);
    let disabled: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == "disabled")
        .collect();
    assert_eq!(disabled.len(), 1, "{stdout}");
    assert_eq!(disabled[0]["user_id"], records[0]["user_id"], "{stdout}");
}
