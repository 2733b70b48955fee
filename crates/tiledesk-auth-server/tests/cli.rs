//! The `tiledesk-auth` command line, run as a process: start-up checks, users, token, check-token.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::net::TcpListener;

use common::{PROJECT, SECRET, run_cli};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};

fn project_env() -> Vec<(&'static str, &'static str)> {
    vec![("TILEDESK_PROJECT_ID", PROJECT), ("TILEDESK_SECRET", SECRET)]
}

#[test]
fn serve_without_project_or_secret_stops_with_one_line_before_binding() {
    // Hold the port: a server that tried to bind first would fail with "cannot listen" instead.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (code, _, stderr) = run_cli(&["serve", "--listen", &addr], &[("TILEDESK_SECRET", SECRET)], "");
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no Tiledesk project id") && stderr.contains("TILEDESK_PROJECT_ID"),
        "{stderr}"
    );

    let (code, _, stderr) = run_cli(
        &["serve", "--listen", &addr],
        &[("TILEDESK_PROJECT_ID", PROJECT)],
        "",
    );
    assert_eq!(code, 2);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no Tiledesk project secret"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-secret");
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--listen",
            &addr,
            "--secret-file",
            missing.to_str().unwrap(),
        ],
        &[("TILEDESK_PROJECT_ID", PROJECT)],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("missing-secret"),
        "the error names the file: {stderr}"
    );

    // A secret too short to be an HS256 key, by flag or by file: refused, without showing it.
    let short = dir.path().join("short-secret");
    std::fs::write(&short, "abc123\n").unwrap();
    for (args, env) in [
        (
            vec![
                "serve",
                "--listen",
                &addr,
                "--secret-file",
                short.to_str().unwrap(),
            ],
            vec![("TILEDESK_PROJECT_ID", PROJECT)],
        ),
        (
            vec!["serve", "--listen", &addr],
            vec![("TILEDESK_PROJECT_ID", PROJECT), ("TILEDESK_SECRET", "abc123")],
        ),
    ] {
        let (code, _, stderr) = run_cli(&args, &env, "");
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("6 bytes long; at least 32"), "{stderr}");
        assert!(!stderr.contains("abc123"), "{stderr}");
    }
}

#[test]
fn serve_refuses_a_database_inside_the_static_directory() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let site = tempfile::tempdir().unwrap();
    let inside = format!("sqlite://{}", site.path().join("data/users.db").display());
    std::fs::create_dir(site.path().join("data")).unwrap();
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--listen",
            &addr,
            "--static-dir",
            site.path().to_str().unwrap(),
            "--database",
            &inside,
        ],
        &project_env(),
        "",
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("inside --static-dir"), "{stderr}");
    assert!(
        !site.path().join("data/users.db").exists(),
        "refused before creating anything"
    );
}

#[test]
fn bad_flags_are_refused_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (&["serve", "--token-ttl", "48h"], "between 1s and 24h"),
        (&["serve", "--allowed-origin", "*"], "list the origins"),
        (&["serve", "--project-id", "a/b"], "invalid project id"),
        (&["serve", "--api-key", "short"], "at least 16"),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = run_cli(args, &project_env(), "");
        assert_eq!(code, 2, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

fn db_args(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("users.db").display())
}

fn list(db: &str) -> Vec<Value> {
    let (code, stdout, stderr) = run_cli(&["users", "list", "--json", "--database", db], &[], "");
    assert_eq!(code, 0, "{stderr}");
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn users_add_list_set_password_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_args(&dir);
    let (code, stdout, stderr) = run_cli(
        &[
            "users",
            "add",
            "--database",
            &db,
            "--email",
            "andrew@scientists.com",
            "--first-name",
            "Andrew",
            "--attribute",
            "plan=pro",
            "--password-stdin",
        ],
        &[],
        "correct horse\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("added andrew@scientists.com"), "{stdout}");
    let users = list(&db);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["email"], "andrew@scientists.com");
    assert_eq!(users[0]["firstname"], "Andrew");
    assert_eq!(users[0]["attributes"], json!({"plan": "pro"}));
    assert!(
        users[0].get("password_hash").is_none(),
        "the hash is never listed"
    );
    let id = users[0]["id"].as_str().unwrap().to_owned();

    let (code, _, stderr) = run_cli(
        &[
            "users",
            "add",
            "--database",
            &db,
            "--email",
            "ANDREW@scientists.com",
            "--password-stdin",
        ],
        &[],
        "x\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("already exists"), "{stderr}");

    let (code, _, stderr) = run_cli(
        &["users", "add", "--database", &db, "--email", "new@scientists.com"],
        &[],
        "",
    );
    assert_eq!(code, 2, "a password is never taken from the command line");
    assert!(stderr.contains("--password-stdin"), "{stderr}");
    let (code, _, stderr) = run_cli(
        &[
            "users",
            "add",
            "--database",
            &db,
            "--email",
            "new@scientists.com",
            "--password-stdin",
        ],
        &[],
        "\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("password is empty"), "{stderr}");
    let (code, _, stderr) = run_cli(
        &[
            "users",
            "add",
            "--database",
            &db,
            "--email",
            "new@scientists.com",
            "--attribute",
            "role=agent",
            "--password-stdin",
        ],
        &[],
        "pw\n",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("reserved"), "{stderr}");

    let (code, _, stderr) = run_cli(
        &[
            "users",
            "set-password",
            "--database",
            &db,
            "andrew@scientists.com",
            "--password-stdin",
        ],
        &[],
        "new pw\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(list(&db)[0]["id"], id, "the id survives a password change");

    let (code, _, stderr) = run_cli(&["users", "remove", "--database", &db, &id], &[], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(list(&db).is_empty());
    let (code, _, stderr) = run_cli(
        &["users", "remove", "--database", &db, "andrew@scientists.com"],
        &[],
        "",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("no user"), "{stderr}");
}

#[test]
fn users_import_is_all_or_nothing_and_names_the_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_args(&dir);
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "email,password,first_name,plan\na@b.co,pw1,Ann,pro\nnot-an-email,pw2,Bob,\nc@d.co,pw3,,\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(
        &["users", "import", "--database", &db, bad.to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.csv:3:") && stderr.contains("nothing was imported"),
        "{stderr}"
    );
    assert!(list(&db).is_empty());

    let dup = dir.path().join("dup.jsonl");
    std::fs::write(
        &dup,
        "{\"email\":\"a@b.co\",\"password\":\"pw\"}\n{\"email\":\"A@B.co\",\"password\":\"pw\"}\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(
        &["users", "import", "--database", &db, dup.to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("dup.jsonl:2:") && stderr.contains("line 1"),
        "{stderr}"
    );

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "email,password,first_name,last_name,plan\na@b.co,pw1,Ann,Lee,pro\nc@d.co,pw3,,,\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run_cli(
        &["users", "import", "--database", &db, good.to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("imported 2 users"));
    let users = list(&db);
    assert_eq!(users[0]["lastname"], "Lee");
    assert_eq!(users[0]["attributes"], json!({"plan": "pro"}));

    // Importing again collides with the stored users: refused whole, the line named.
    let (code, _, stderr) = run_cli(
        &["users", "import", "--database", &db, good.to_str().unwrap()],
        &[],
        "",
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("good.csv:2:") && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(list(&db).len(), 2);
}

#[test]
fn token_command_prints_a_clean_token() {
    let (code, stdout, stderr) = run_cli(
        &["token", "--user-id", "42", "--attribute", "plan=pro"],
        &project_env(),
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim();
    assert!(
        token.starts_with("JWT ") && stdout.lines().count() == 1,
        "{stdout}"
    );
    let report = tiledesk_jwt::check(token, &common::project(), &common::secret());
    assert!(report.findings().is_empty(), "{report}");
    assert_eq!(report.claims().unwrap()["attributes"], json!({"plan": "pro"}));

    let (code, _, stderr) = run_cli(&["token", "--user-id", "42", "--ttl", "25h"], &project_env(), "");
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run_cli(
        &["token", "--user-id", "42"],
        &[("TILEDESK_PROJECT_ID", PROJECT)],
        "",
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("secret"), "{stderr}");
}

fn signed(payload: &Value) -> String {
    let jwt = encode(
        &Header::default(),
        payload,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    format!("JWT {jwt}")
}

fn far_future() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

#[test]
fn check_token_flags_role_missing_expiry_and_other_project() {
    let aud = format!("https://tiledesk.com/projects/{PROJECT}");
    let id = format!("{PROJECT}_42");
    let cases = [
        (
            json!({"_id": id, "sub": "userexternal", "aud": aud, "exp": far_future(), "role": "agent"}),
            "role_claim",
            "DANGEROUS",
        ),
        (
            json!({"_id": id, "sub": "userexternal", "aud": aud}),
            "missing_expiry",
            "DANGEROUS",
        ),
        (
            json!({"_id": id, "sub": "userexternal", "aud": "https://tiledesk.com/projects/other", "exp": far_future()}),
            "other_project",
            "REJECTED",
        ),
    ];
    for (payload, code_name, verdict) in cases {
        let (code, stdout, stderr) = run_cli(&["check-token", &signed(&payload)], &project_env(), "");
        assert_eq!(code, 1, "{payload}: {stdout}{stderr}");
        assert!(
            stdout.contains(code_name) && stdout.starts_with(verdict),
            "{payload}: {stdout}"
        );
    }

    let clean = json!({"_id": id, "sub": "userexternal", "aud": aud, "exp": far_future()});
    let (code, stdout, stderr) = run_cli(
        &["check-token", "-"],
        &project_env(),
        &format!("{}\n", signed(&clean)),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("OK"), "{stdout}");

    let (code, stdout, _) = run_cli(&["check-token", "not a token"], &project_env(), "");
    assert_eq!(code, 1);
    assert!(stdout.starts_with("REJECTED"), "{stdout}");
}

/// A site that answers every request with `response` (a whole HTTP/1.1 response), on a thread, until dropped with
/// the test.
/// A site whose `/api/me` answers each request with what `respond` makes of its raw text (lower-cased).
fn site(respond: impl Fn(&str) -> &'static str + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/me", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 4096];
            let read = std::io::Read::read(&mut stream, &mut request).unwrap_or(0);
            let request = String::from_utf8_lossy(&request[..read]).to_ascii_lowercase();
            let _ = std::io::Write::write_all(&mut stream, respond(&request).as_bytes());
        }
    });
    url
}

/// A site whose `/api/me` answers `response` to everything.
fn answering(response: &'static str) -> String {
    site(move |_| response)
}

/// A site whose `/me` refuses a request without a cookie but answers `admin` to one with any cookie at all.
fn answering_any_cookie() -> String {
    site(|request| {
        if request.contains("\r\ncookie:") {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"id\":\"admin\"}"
        } else {
            "HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        }
    })
}

#[test]
fn serve_refuses_to_start_with_a_session_url_that_signs_in_anyone_and_starts_when_it_cannot_ask() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    // Hold the port: a server that got past the session URL's check stops with "cannot listen".
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let serve = |session_url: &str| {
        let args = [
            "serve",
            "--listen",
            &addr,
            "--database",
            &db,
            "--session-url",
            session_url,
            "--session-timeout",
            "2s",
        ];
        run_cli(&args, &project_env(), "")
    };
    let anyone = answering(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"id\":\"admin\"}",
    );
    for (url, asked) in [
        (anyone, "without any cookie"),
        (answering_any_cookie(), "with a made-up session cookie"),
    ] {
        let (code, stdout, stderr) = serve(&url);
        assert_eq!(code, 2, "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "--session-url {url}: it answered 200 with user `admin` to a request {asked}"
            )) && !stderr.contains("cannot listen"),
            "{stderr}"
        );
    }
    // A site that does not answer yet (deployed after the service) is no reason not to start: a warning, then on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/me", listener.local_addr().unwrap())
    };
    let (code, stdout, stderr) = serve(&closed);
    assert_eq!(code, 2, "{stdout}{stderr}");
    let output = format!("{stdout}{stderr}");
    assert!(
        output.contains("could not be checked at start") && output.contains("cannot listen"),
        "{output}"
    );
    // A site that refuses both is served.
    let refusing = answering("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let (_, stdout, stderr) = serve(&refusing);
    let output = format!("{stdout}{stderr}");
    assert!(
        output.contains("cannot listen") && !output.contains("could not be checked"),
        "{output}"
    );
}

#[test]
fn serve_check_says_what_is_enabled_and_refuses_a_session_url_that_signs_in_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let check = |session_url: Option<&str>| {
        let mut args = vec!["serve", "--check", "--database", &db];
        if let Some(url) = session_url {
            args.extend(["--session-url", url, "--session-timeout", "2s"]);
        }
        run_cli(&args, &project_env(), "")
    };

    let (code, stdout, stderr) = check(None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 user(s)") && stdout.contains("session bridge: off"),
        "{stdout}"
    );
    assert!(
        stdout.contains("POST /tokens  off") && stdout.trim_end().ends_with("all well"),
        "{stdout}"
    );

    let refusing = answering("HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let (code, stdout, _) = check(Some(&refusing));
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("session bridge {refusing}: ok: 401")),
        "{stdout}"
    );

    let anyone = answering(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"id\":\"admin\"}",
    );
    let (code, stdout, _) = check(Some(&anyone));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("user `admin`") && stdout.contains("every visitor would be signed in"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("NOT well: see FAILED above"),
        "{stdout}"
    );

    let (code, stdout, _) = check(Some(&answering_any_cookie()));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("user `admin` to a request with a made-up session cookie"),
        "{stdout}"
    );

    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/me", listener.local_addr().unwrap())
    };
    let (code, stdout, _) = check(Some(&closed));
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAILED: the site cannot be reached"), "{stdout}");
}

#[test]
fn a_config_file_sets_serve_and_the_environment_then_the_command_line_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let config = dir.path().join("tiledesk-auth.toml");
    std::fs::write(
        &config,
        format!(
            "project_id = \"{PROJECT}\"\nsecret_file = \"{}\"\ndatabase = \"{db}\"\ntoken_ttl = \"2h\"\naudit = \"off\"\n",
            secret_file.display()
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let check = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["serve", "--check", "--config", &config];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run_cli(&args, env, "");
        assert_eq!(code, 0, "{stdout}{stderr}");
        stdout
    };
    // The file alone: its project, secret, database and lifetime.
    let from_file = check(&[], &[]);
    assert!(
        from_file.contains(&format!("project       {PROJECT} (tokens live 2h)")),
        "{from_file}"
    );
    // The environment over the file, the command line over both; the file named by the environment too.
    assert!(check(&[], &[("TILEDESK_TOKEN_TTL", "30m")]).contains("(tokens live 30m)"));
    assert!(check(&["--token-ttl", "45m"], &[("TILEDESK_TOKEN_TTL", "30m")]).contains("(tokens live 45m)"));
    let (code, stdout, stderr) = run_cli(&["serve", "--check"], &[("TILEDESK_AUTH_CONFIG", &config)], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("(tokens live 2h)"), "{stdout}");

    // An unknown key, a secret in the file, a bad value: refused, by name, before anything starts.
    let refused = |text: &str| {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).unwrap();
        let (code, _, stderr) = run_cli(&["serve", "--check", "--config", bad.to_str().unwrap()], &[], "");
        assert_eq!(code, 2, "{stderr}");
        stderr
    };
    assert!(refused("lisen = \"0.0.0.0:3000\"\n").contains("unknown key `lisen`"));
    let secret = refused(&format!("secret = \"{SECRET}\"\n"));
    assert!(
        secret.contains("secret_file") && !secret.contains(SECRET),
        "{secret}"
    );
    assert!(refused("token_ttl = \"3 days\"\n").contains("--token-ttl"));
}
