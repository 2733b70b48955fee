//! Database faults under the real binary: the database locked by another process (logins go on; a write from the
//! command line fails clearly), then deleted (503 with a JSON error, no panic, no empty database created in its
//! place), then restored (the service recovers on its own, without a restart); and a read-only database file
//! (logins go on, writes from the command line fail clearly until it is writable again).

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::str::FromStr;

use common::{PROJECT, RunAs, SECRET, Server, http, users_add};
use serde_json::Value;
use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnectOptions;

const PASSWORD: &str = "correct horse battery staple";

fn login(server: &Server) -> (u16, String) {
    http(
        server.addr,
        "POST",
        "/auth",
        &[("Content-Type", "application/json")],
        &format!(r#"{{"email": "andrew@scientists.com", "password": "{PASSWORD}"}}"#),
    )
}

fn health(server: &Server) -> (u16, String) {
    http(server.addr, "GET", "/healthz", &[], "")
}

fn readiness(server: &Server) -> (u16, String) {
    http(server.addr, "GET", "/readyz", &[], "")
}

/// The readiness `status` within a few seconds: it is checked at most once a second (`readiness::CACHED_FOR`).
fn readiness_becomes(server: &Server, status: u16) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (now, body) = readiness(server);
        if now == status {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness still {now}, not {status}: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn assert_unavailable((status, body): (u16, String)) {
    assert_eq!(status, 503, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"], "service_unavailable", "{body}");
    assert!(!body.contains("users.db"), "no file path in the answer: {body}");
}

fn assert_serving(server: &Server) {
    assert_eq!(health(server).0, 200);
    readiness_becomes(server, 200);
    let (status, body) = login(server);
    assert_eq!(status, 200, "{body}");
}

/// A database under `dir` with andrew in it, and the service on it (as `user`), already answering logins.
fn serve_with_a_user(user: Option<&RunAs>, dir: &std::path::Path) -> (Server, std::path::PathBuf, String) {
    let path = dir.join("users.db");
    let db = format!("sqlite://{}", path.display());
    let (code, _, stderr) = users_add(user, &db, "andrew@scientists.com", PASSWORD, &[]);
    assert_eq!(code, 0, "{stderr}");
    let server = Server::start_as(
        user,
        &[],
        &[
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            ("TILEDESK_AUTH_DATABASE", db.clone()),
        ],
    );
    assert_serving(&server);
    (server, path, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_deleted_then_restored_database() {
    let dir = tempfile::tempdir().unwrap();
    let (server, path, db) = serve_with_a_user(None, dir.path());

    // Locked: another process holds the write lock (an operator's open transaction, a long import). In WAL mode
    // readers never wait for a writer: logins go on. A write from the command line fails, clearly, in bounded time.
    let mut locker = SqliteConnectOptions::from_str(&db)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE; UPDATE users SET updated_at = updated_at;")
        .execute(&mut locker)
        .await
        .unwrap();
    assert_serving(&server);
    let (code, _, stderr) = users_add(None, &db, "new@scientists.com", "another long password", &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("database is locked"), "{stderr}");
    sqlx::raw_sql("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    assert_serving(&server);

    // Deleted: a copy kept aside first, as a backup would be.
    let backup = dir.path().join("backup.db");
    let mut copier = SqliteConnectOptions::from_str(&db)
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(&format!("VACUUM INTO '{}'", backup.display()))
        .execute(&mut copier)
        .await
        .unwrap();
    copier.close().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // Not ready (a load balancer takes the replica out), still alive (nothing restarts it for a database's fault).
    let body = readiness_becomes(&server, 503);
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "not_ready", "{body}");
    assert_eq!(json["problems"][0]["check"], "database", "{body}");
    assert_eq!(json["problems"].as_array().unwrap().len(), 1, "{body}");
    assert!(!body.contains("users.db"), "no file path in the answer: {body}");
    assert_eq!(health(&server).0, 200, "liveness does not follow the database");
    assert_unavailable(login(&server));
    assert!(
        !path.exists(),
        "the service must not create an empty database in its place"
    );

    // Restored: the service reopens the file and serves again, without a restart.
    std::fs::copy(&backup, &path).unwrap();
    assert_serving(&server);

    let logs = server.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(logs.contains("the user database file was replaced"), "{logs}");
}

/// The uid the test runs as.
fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

#[test]
fn a_read_only_database_keeps_logins_working_and_refuses_writes_clearly() {
    use std::os::unix::fs::PermissionsExt;
    // Root ignores file modes: as root, the service and the commands run as `nobody` so the mode bites.
    let dir = tempfile::tempdir().unwrap();
    let user = (my_uid() == 0).then(|| RunAs::nobody_in(dir.path()));
    let user = user.as_ref();
    let (server, path, db) = serve_with_a_user(user, dir.path());

    // The file turns read-only (a read-only snapshot, a mode change). The service only reads while it runs:
    // logins go on, also on connections opened after the change (eight at once make the pool open more).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                http(
                    addr,
                    "POST",
                    "/auth",
                    &[("Content-Type", "application/json")],
                    &format!(r#"{{"email": "andrew@scientists.com", "password": "{PASSWORD}"}}"#),
                )
            })
        })
        .collect();
    for login in logins {
        let (status, body) = login.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(health(&server).0, 200);
    let add_new = |password: &str| users_add(user, &db, "new@scientists.com", password, &[]);
    let (code, _, stderr) = add_new("a new user's password");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("readonly"), "{stderr}");

    // Writable again: the write goes through, and the running service sees the new user.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, stderr) = add_new("a new user's password");
    assert_eq!(code, 0, "{stderr}");
    let (status, body) = http(
        server.addr,
        "POST",
        "/auth",
        &[("Content-Type", "application/json")],
        r#"{"email": "new@scientists.com", "password": "a new user's password"}"#,
    );
    assert_eq!(status, 200, "{body}");
}
