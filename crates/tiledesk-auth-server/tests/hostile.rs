//! Hostile input against the real binary on a real listener: a table of attacks, each with the exact status and
//! error code it must get; then the server must still answer, and nothing it said (or logged) may hold the secret,
//! the API key, a password or another user's data. Slow-loris clients are cut off within a bounded time.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{API_KEY, PROJECT, RawResponse, SECRET, Server, raw_exchange, users_add};

const PASSWORD: &str = "correct horse battery staple";
const VICTIM_EMAIL: &str = "victim@example.org";
const VICTIM_SECRET_ATTRIBUTE: &str = "victim-private-plan-7f3a";
const ALLOWED_ORIGIN: &str = "https://site.example";
const EVIL_ORIGIN: &str = "https://evil.example";

struct Fixture {
    server: Server,
    victim_id: String,
    _dir: tempfile::TempDir,
}

fn add_user(db: &str, email: &str, password: &str, extra: &[&str]) -> String {
    let (code, stdout, stderr) = users_add(None, db, email, password, extra);
    assert_eq!(code, 0, "{stderr}");
    // "added <email> (<id>)"
    stdout
        .trim()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_owned()
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, API_KEY).unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    add_user(&db, "andrew@scientists.com", PASSWORD, &[]);
    let victim_id = add_user(
        &db,
        VICTIM_EMAIL,
        "the victim's own password 42",
        &["--attribute", &format!("plan={VICTIM_SECRET_ATTRIBUTE}")],
    );
    let server = Server::start(
        &["--allowed-origin", ALLOWED_ORIGIN, "--read-timeout", "1s"],
        &[
            ("RUST_LOG", "debug".to_owned()),
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET_FILE", secret_file.display().to_string()),
            ("TILEDESK_API_KEY_FILE", key_file.display().to_string()),
            ("TILEDESK_AUTH_DATABASE", db),
        ],
    );
    Fixture {
        server,
        victim_id,
        _dir: dir,
    }
}

/// A request with `Host`, `Connection: close` and, with a body, `Content-Length`.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn auth(body: &[u8]) -> Vec<u8> {
    request("POST", "/auth", &[JSON], body)
}

fn tokens(body: &[u8]) -> Vec<u8> {
    let bearer = format!("Bearer {API_KEY}");
    request("POST", "/tokens", &[JSON, ("Authorization", &bearer)], body)
}

fn tokens_with_authorization(value: &[u8]) -> Vec<u8> {
    let mut bytes = b"POST /tokens HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
    bytes.extend_from_slice(b"Content-Type: application/json\r\nAuthorization: ");
    bytes.extend_from_slice(value);
    let body = br#"{"user_id": "42"}"#;
    bytes.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// What a case must get: a status, and the JSON error code (`""`: a bare answer from the HTTP layer, no JSON).
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    code: &'static str,
    /// Whether the answer may carry `Access-Control-Allow-Origin` (only for the allowed origin).
    cors_allowed: bool,
}

fn case(name: &'static str, request: Vec<u8>, status: u16, code: &'static str) -> Case {
    Case {
        name,
        request,
        status,
        code,
        cors_allowed: false,
    }
}

fn nested(open: &str, close: &str, depth: usize) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

fn cases() -> Vec<Case> {
    let ten_mb = vec![b'a'; 10 * 1024 * 1024];
    let mut huge_declared = b"POST /auth HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
    huge_declared.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n");
    huge_declared.extend_from_slice(&ten_mb);
    let mut huge_chunked = b"POST /auth HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
    huge_chunked.extend_from_slice(b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    for chunk in ten_mb.chunks(64 * 1024) {
        huge_chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        huge_chunked.extend_from_slice(chunk);
        huge_chunked.extend_from_slice(b"\r\n");
    }
    huge_chunked.extend_from_slice(b"0\r\n\r\n");
    let just_over = format!(
        r#"{{"email": "a@b.co", "password": "{}"}}"#,
        "x".repeat(16 * 1024)
    );
    let deep_arrays = format!(r#"{{"email": {}}}"#, nested("[", "]", 5000));
    let deep_objects = format!(
        r#"{{"user_id": "1", "attributes": {}}}"#,
        nested(r#"{"a":"#, "}", 1500).replacen("{\"a\":}", "{\"a\":1}", 1)
    );
    let mut raw_nul = br#"{"email": "a"#.to_vec();
    raw_nul.push(0);
    raw_nul.extend_from_slice(br#"@b.co", "password": "x"}"#);
    let mut bad_utf8 = br#"{"email": "a"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad_utf8.extend_from_slice(br#"@b.co", "password": "x"}"#);
    let utf16 = "{\"email\": \"a@b.co\", \"password\": \"x\"}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes);
    let utf16: Vec<u8> = [0xff, 0xfe].into_iter().chain(utf16).collect();
    let long_password = format!(r#"{{"email": "a@b.co", "password": "{}"}}"#, "p".repeat(1025));
    let long_user = format!(r#"{{"user_id": "{}"}}"#, "u".repeat(300));
    let key_prefix = format!("Bearer {}", &API_KEY[..API_KEY.len() - 1]);
    let many_headers: Vec<(String, String)> =
        (0..150).map(|i| (format!("X-Pad-{i}"), "v".to_owned())).collect();
    let many_headers: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();

    let mut cases = vec![
        // Broken and oversized JSON.
        case("broken JSON", auth(br#"{"email":"#), 400, "invalid_json"),
        case("a JSON array", auth(b"[]"), 400, "invalid_json"),
        case(
            "a JSON string",
            auth(br#""andrew@scientists.com""#),
            400,
            "invalid_json",
        ),
        // No body is no credentials: with a session bridge the site would be asked; without one, the email is missing.
        case("an empty body", auth(b""), 400, "missing_field"),
        case(
            "trailing garbage",
            auth(br#"{"email": "a@b.co", "password": "x"} {}"#),
            400,
            "invalid_json",
        ),
        case(
            "5000 nested arrays",
            auth(deep_arrays.as_bytes()),
            400,
            "invalid_json",
        ),
        case(
            "1500 nested objects in attributes",
            tokens(deep_objects.as_bytes()),
            400,
            "invalid_json",
        ),
        case("10 MB, Content-Length", huge_declared, 413, "payload_too_large"),
        case("10 MB, chunked", huge_chunked, 413, "payload_too_large"),
        case(
            "16 KiB and a bit",
            auth(just_over.as_bytes()),
            413,
            "payload_too_large",
        ),
        // Media types: a cross-site form or text/plain "simple request" cannot reach the handlers.
        case(
            "text/plain (CSRF simple request)",
            request(
                "POST",
                "/auth",
                &[("Content-Type", "text/plain")],
                br#"{"email": "a@b.co", "password": "x"}"#,
            ),
            415,
            "unsupported_media_type",
        ),
        case(
            "form-urlencoded",
            request(
                "POST",
                "/auth",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"email=a%40b.co&password=x",
            ),
            415,
            "unsupported_media_type",
        ),
        case(
            "no Content-Type",
            request("POST", "/auth", &[], br#"{}"#),
            415,
            "unsupported_media_type",
        ),
        // Bytes that are not what they seem.
        case(
            "escaped NUL in the email",
            auth(br#"{"email": "a\u0000@b.co", "password": "x"}"#),
            400,
            "invalid_field",
        ),
        case(
            "raw NUL inside a JSON string",
            auth(&raw_nul),
            400,
            "invalid_json",
        ),
        case("invalid UTF-8", auth(&bad_utf8), 400, "invalid_json"),
        case("UTF-16 with a byte order mark", auth(&utf16), 400, "invalid_json"),
        case(
            "Cyrillic a in the email (confusable)",
            auth("{\"email\": \"\u{430}ndrew@scientists.com\", \"password\": \"x\"}".as_bytes()),
            400,
            "invalid_field",
        ),
        case(
            "fullwidth at sign",
            auth("{\"email\": \"andrew\u{ff20}scientists.com\", \"password\": \"x\"}".as_bytes()),
            400,
            "invalid_field",
        ),
        case(
            "zero-width space in the email",
            auth("{\"email\": \"andrew\u{200b}@scientists.com\", \"password\": \"x\"}".as_bytes()),
            400,
            "invalid_field",
        ),
        // Keys.
        case(
            "duplicate key",
            auth(br#"{"email": "a@b.co", "email": "andrew@scientists.com", "password": "x"}"#),
            400,
            "duplicate_field",
        ),
        case(
            "duplicate key spelled with an escape",
            auth(br#"{"email": "a@b.co", "em\u0061il": "andrew@scientists.com", "password": "x"}"#),
            400,
            "duplicate_field",
        ),
        case(
            "duplicate key inside attributes",
            tokens(br#"{"user_id": "1", "attributes": {"plan": "free", "plan": "enterprise"}}"#),
            400,
            "duplicate_field",
        ),
        case(
            "duplicate key in an object inside an array of attributes",
            tokens(br#"{"user_id": "1", "attributes": {"orders": [{"id": 1, "id": 2}]}}"#),
            400,
            "duplicate_field",
        ),
        case(
            "unknown field",
            auth(br#"{"email": "a@b.co", "password": "x", "remember_me": true}"#),
            400,
            "unknown_field",
        ),
        case(
            "role in a login",
            auth(br#"{"email": "a@b.co", "password": "x", "role": "agent"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "_id in a login",
            auth(br#"{"email": "a@b.co", "password": "x", "_id": "other"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "a numeric password",
            auth(br#"{"email": "a@b.co", "password": 12345678}"#),
            400,
            "invalid_field",
        ),
        case(
            "a 1025-byte password",
            auth(long_password.as_bytes()),
            400,
            "invalid_field",
        ),
        // Claims smuggled into POST /tokens.
        case(
            "role",
            tokens(br#"{"user_id": "1", "role": "agent"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "Role, capitalised",
            tokens(br#"{"user_id": "1", "Role": "owner"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "sub",
            tokens(br#"{"user_id": "1", "sub": "user"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "aud",
            tokens(br#"{"user_id": "1", "aud": "https://tiledesk.com/projects/other"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "_id",
            tokens(br#"{"user_id": "1", "_id": "someone-else"}"#),
            400,
            "reserved_claim",
        ),
        case(
            "exp",
            tokens(br#"{"user_id": "1", "exp": 99999999999}"#),
            400,
            "reserved_claim",
        ),
        case(
            "attributes.role",
            tokens(br#"{"user_id": "1", "attributes": {"role": "agent"}}"#),
            400,
            "reserved_claim",
        ),
        case(
            "attributes.ROLE",
            tokens(br#"{"user_id": "1", "attributes": {"ROLE": "agent"}}"#),
            400,
            "reserved_claim",
        ),
        case(
            "attributes._id",
            tokens(br#"{"user_id": "1", "attributes": {"_id": "x"}}"#),
            400,
            "reserved_claim",
        ),
        case(
            "attributes.aud",
            tokens(br#"{"user_id": "1", "attributes": {"aud": "x"}}"#),
            400,
            "reserved_claim",
        ),
        case(
            "NUL in the user id",
            tokens(br#"{"user_id": "1\u0000"}"#),
            400,
            "invalid_field",
        ),
        case(
            "CRLF in a name",
            tokens(b"{\"user_id\": \"1\", \"firstname\": \"A\\r\\nB\"}"),
            400,
            "invalid_field",
        ),
        case(
            "a 300-byte user id",
            tokens(long_user.as_bytes()),
            400,
            "invalid_field",
        ),
        case(
            "attributes not an object",
            tokens(br#"{"user_id": "1", "attributes": "role=agent"}"#),
            400,
            "invalid_field",
        ),
        // API keys.
        case(
            "no API key",
            request("POST", "/tokens", &[JSON], br#"{"user_id": "1"}"#),
            401,
            "missing_api_key",
        ),
        case(
            "a wrong API key",
            tokens_with_authorization(b"Bearer wrong-key-wrong-key-wrong"),
            401,
            "invalid_api_key",
        ),
        case(
            "the key as Basic",
            tokens_with_authorization(format!("Basic {API_KEY}").as_bytes()),
            401,
            "invalid_api_key",
        ),
        case(
            "the key but its last character",
            tokens_with_authorization(key_prefix.as_bytes()),
            401,
            "invalid_api_key",
        ),
        case(
            "Bearer and nothing",
            tokens_with_authorization(b"Bearer"),
            401,
            "invalid_api_key",
        ),
        case(
            "non-ASCII bytes in the key",
            tokens_with_authorization(b"Bearer \xff\xfe-site-backend-key"),
            401,
            "invalid_api_key",
        ),
        // Methods and paths.
        case(
            "GET /auth",
            request("GET", "/auth", &[], b""),
            405,
            "method_not_allowed",
        ),
        case(
            "PUT /tokens",
            request("PUT", "/tokens", &[JSON], b"{}"),
            405,
            "method_not_allowed",
        ),
        case(
            "DELETE /healthz",
            request("DELETE", "/healthz", &[], b""),
            405,
            "method_not_allowed",
        ),
        case(
            "TRACE /auth",
            request("TRACE", "/auth", &[], b""),
            405,
            "method_not_allowed",
        ),
        case("/auth/", auth_at("/auth/"), 404, "not_found"),
        case("//auth", auth_at("//auth"), 404, "not_found"),
        case("/AUTH", auth_at("/AUTH"), 404, "not_found"),
        case("/auth%00", auth_at("/auth%00"), 404, "not_found"),
        case("/%2e%2e/auth", auth_at("/%2e%2e/auth"), 404, "not_found"),
        case("/auth;.json", auth_at("/auth;.json"), 404, "not_found"),
        // The HTTP layer itself.
        case(
            "a bare CR in a header",
            header_bytes(b"X-Evil: a\rSet-Cookie: x=1"),
            400,
            "",
        ),
        case("a NUL in a header", header_bytes(b"X-Evil: a\0b"), 400, ""),
        case(
            "150 headers",
            request("GET", "/healthz", &many_headers, b""),
            431,
            "",
        ),
        case(
            "two different Content-Lengths",
            header_bytes(b"Content-Length: 2\r\nContent-Length: 3"),
            400,
            "",
        ),
        // CORS: only the allowed origin is ever told it may read an answer.
        case(
            "preflight from an unlisted origin",
            request(
                "OPTIONS",
                "/auth",
                &[
                    ("Origin", EVIL_ORIGIN),
                    ("Access-Control-Request-Method", "POST"),
                    ("Access-Control-Request-Headers", "content-type"),
                ],
                b"",
            ),
            200,
            "",
        ),
        case(
            "a cookie and JSON from an unlisted origin",
            request(
                "POST",
                "/auth",
                &[JSON, ("Origin", EVIL_ORIGIN), ("Cookie", "session=stolen")],
                br#"{"email": "nobody@example.org", "password": "guess"}"#,
            ),
            401,
            "invalid_credentials",
        ),
        case(
            "a cookie and text/plain from an unlisted origin",
            request(
                "POST",
                "/auth",
                &[
                    ("Content-Type", "text/plain"),
                    ("Origin", EVIL_ORIGIN),
                    ("Cookie", "session=stolen"),
                ],
                br#"{"email": "andrew@scientists.com", "password": "guess"}"#,
            ),
            415,
            "unsupported_media_type",
        ),
    ];
    cases.push(Case {
        cors_allowed: true,
        ..case(
            "preflight from the allowed origin (the control)",
            request(
                "OPTIONS",
                "/auth",
                &[
                    ("Origin", ALLOWED_ORIGIN),
                    ("Access-Control-Request-Method", "POST"),
                ],
                b"",
            ),
            200,
            "",
        )
    });
    cases
}

fn auth_at(path: &str) -> Vec<u8> {
    request("POST", path, &[JSON], br#"{"email": "a@b.co", "password": "x"}"#)
}

/// `GET /healthz` with `extra` spliced in as raw header bytes.
fn header_bytes(extra: &[u8]) -> Vec<u8> {
    let mut bytes = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_vec();
    bytes.extend_from_slice(extra);
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes
}

fn assert_no_leak(what: &str, text: &str, victim_id: &str) {
    for (name, needle) in [
        ("the project secret", SECRET),
        ("the API key", API_KEY),
        ("a password", PASSWORD),
        ("a password hash", "$argon2"),
        ("another user's email", VICTIM_EMAIL),
        ("another user's id", victim_id),
        ("another user's attributes", VICTIM_SECRET_ATTRIBUTE),
    ] {
        assert!(!text.contains(needle), "{what} contains {name}:\n{text}");
    }
}

#[test]
fn every_hostile_request_gets_its_exact_refusal_and_nothing_leaks() {
    let fixture = start();
    let cases = cases();
    assert!(cases.len() >= 40, "the issue asks for at least 40 cases");
    let mut failures = Vec::new();
    for case in &cases {
        let response: RawResponse = raw_exchange(fixture.server.addr, case.request.clone());
        let code = response.code();
        if response.status != case.status || code != case.code {
            failures.push(format!(
                "{}: got {} {code:?}, want {} {:?} ({})",
                case.name, response.status, case.status, case.code, response.body
            ));
        }
        let allow_origin = response.header("access-control-allow-origin");
        let want_origin = case.cors_allowed.then_some(ALLOWED_ORIGIN);
        if allow_origin != want_origin {
            failures.push(format!(
                "{}: Access-Control-Allow-Origin {allow_origin:?}, want {want_origin:?}",
                case.name
            ));
        }
        assert_no_leak(
            case.name,
            &format!("{:?}{}", response.headers, response.body),
            &fixture.victim_id,
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still alive and still doing its job.
    let health = raw_exchange(fixture.server.addr, request("GET", "/healthz", &[], b""));
    assert_eq!(health.status, 200, "{health:?}");
    let login = format!(r#"{{"email": "andrew@scientists.com", "password": "{PASSWORD}"}}"#);
    let signed_in = raw_exchange(fixture.server.addr, auth(login.as_bytes()));
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    assert!(
        signed_in.body.starts_with(r#"{"token":"JWT "#),
        "{}",
        signed_in.body
    );
    assert!(!signed_in.body.contains(VICTIM_EMAIL));

    let logs = fixture.server.logs.lock().unwrap().join("\n");
    assert_no_leak("the logs", &logs, &fixture.victim_id);
}

/// Connects and sends `head` at once; the caller trickles the rest.
fn connect(addr: SocketAddr, head: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    // The bound on every wait below: the server's read timeout is 1 s.
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(head).unwrap();
    stream
}

/// Sends one byte of `rest` every 200 ms (the attack's own pace) until the server stops reading or `rest` runs
/// out; returns what the server answered before closing.
fn trickle(mut stream: TcpStream, rest: &'static [u8]) -> Vec<u8> {
    let mut reader = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for byte in rest {
            if stream.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut answer = Vec::new();
    let result = reader.read_to_end(&mut answer);
    assert!(
        !matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the server kept a slow-loris connection open for 10 s"
    );
    writer.join().unwrap();
    answer
}

#[test]
fn slow_loris_clients_are_cut_off_and_others_are_still_served() {
    let fixture = start();
    let addr = fixture.server.addr;

    // Thirty connections trickling their headers, held open at once.
    let slow: Vec<_> = (0..30)
        .map(|_| {
            let stream = connect(addr, b"POST /auth HTTP/1.1\r\nHost: localhost\r\n");
            std::thread::spawn(move || {
                trickle(stream, b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            })
        })
        .collect();
    // Meanwhile everyone else is served.
    let health = raw_exchange(addr, request("GET", "/healthz", &[], b""));
    assert_eq!(health.status, 200);
    for handle in slow {
        let answer = handle.join().unwrap();
        // Headers never completed: the connection is closed without an answer.
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    // A body trickled byte by byte gets 408 with a JSON error.
    let stream = connect(
        addr,
        b"POST /auth HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n",
    );
    let answer = trickle(
        stream,
        br#"{"email": "andrew@scientists.com", "password": "aaaaaaaaa"}"#,
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"request_timeout""#), "{answer}");

    // An idle keep-alive connection is closed too.
    let mut idle = connect(addr, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut answer = Vec::new();
    idle.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let health = raw_exchange(addr, request("GET", "/healthz", &[], b""));
    assert_eq!(health.status, 200);
}
