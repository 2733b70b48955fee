//! Connections without an end, re-run as tests against the real binary: a client that never reads its answer, the
//! same client across SIGTERM, idle connections from one address, oversized headers, and an open-file limit
//! lower than the connection cap.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{PROJECT, SECRET, Server, http};

const WAIT: Duration = Duration::from_secs(30);
/// Larger than every socket buffer between the two ends on loopback, so a client that does not read stalls the
/// server's writes.
const BIG_FILE: usize = 64 * 1024 * 1024;

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("site")).unwrap();
        std::fs::write(dir.path().join("site/big.bin"), vec![7u8; BIG_FILE]).unwrap();
        std::fs::write(dir.path().join("site/index.html"), "<h1>shop</h1>").unwrap();
        Self { dir }
    }

    fn start(&self, args: &[&str], log: &str) -> Server {
        let site = self.dir.path().join("site");
        let mut all = vec!["--static-dir", site.to_str().unwrap()];
        all.extend_from_slice(args);
        Server::start(&all, &self.env(log))
    }

    fn env(&self, log: &str) -> Vec<(&'static str, String)> {
        vec![
            ("RUST_LOG", log.to_owned()),
            ("TILEDESK_PROJECT_ID", PROJECT.to_owned()),
            ("TILEDESK_SECRET", SECRET.to_owned()),
            (
                "TILEDESK_AUTH_DATABASE",
                format!("sqlite://{}", self.dir.path().join("users.db").display()),
            ),
        ]
    }
}

/// The head of the answer to `GET /` (status line and headers), lower-cased.
fn home_page_head(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let head = answer.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    head
}

#[test]
fn the_sites_pages_cannot_be_framed_by_another_site_unless_the_policy_says_so() {
    let site = Site::new();
    // By default: no other site may frame the pages (a login page in a hidden frame is clickjacking's target),
    // no referrer beyond the origin leaves for other sites, no content sniffing.
    let server = site.start(&[], "info");
    let head = home_page_head(server.addr);
    for header in [
        "content-security-policy: frame-ancestors 'self'",
        "referrer-policy: strict-origin-when-cross-origin",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(header), "{header}: {head}");
    }
    drop(server);
    // The site's own whole policy, or none.
    let policy = "default-src 'self'; frame-ancestors https://partner.example";
    let server = site.start(&["--static-csp", policy], "info");
    assert!(home_page_head(server.addr).contains(&format!("content-security-policy: {policy}")));
    drop(server);
    let server = site.start(&["--static-csp", ""], "info");
    assert!(!home_page_head(server.addr).contains("content-security-policy"));
}

/// Asks for the big file and reads only the start of the answer (its headers are there: the answer is under
/// way), then stops reading.
fn stalled_download(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET /big.bin HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut start = [0u8; 1024];
    let n = stream.read(&mut start).unwrap();
    assert!(
        String::from_utf8_lossy(&start[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&start[..n])
    );
    stream
}

/// Reads until the server closes (or resets) the connection; how many bytes came.
fn read_to_close(stream: &mut TcpStream) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("reading: {e}"),
        }
    }
}

#[test]
fn a_client_that_stops_reading_is_disconnected_at_the_write_deadline() {
    let site = Site::new();
    let server = site.start(&["--write-timeout", "1s"], "tiledesk_auth_server=debug");
    let mut client = stalled_download(server.addr);
    let port = client.local_addr().unwrap().port().to_string();
    // The server gives up on it: its connection ends while the client still holds it.
    server.wait_for_log(|l| l.contains("connection ended") && l.contains(&format!(":{port}")));
    let received = read_to_close(&mut client);
    assert!(
        received < BIG_FILE,
        "the stalled answer was cut off: {received} of {BIG_FILE} bytes"
    );
    // Everyone else is served as before.
    assert_eq!(http(server.addr, "GET", "/healthz", &[], "").0, 200);
}

#[test]
fn a_download_that_keeps_going_is_cut_at_the_request_deadline() {
    let site = Site::new();
    // The client keeps reading, so the write deadline never trips: only the whole-request deadline can end it.
    let server = site.start(
        &["--request-timeout", "1s", "--write-timeout", "5m"],
        "tiledesk_auth_server=info",
    );
    let mut client = stalled_download(server.addr);
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("reading: {e}"),
        }
        // A slow reader: 64 KiB every 20 ms (about 3 MB/s; the whole file would take 20 s).
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        received < BIG_FILE / 2,
        "cut off at the deadline: {received} of {BIG_FILE} bytes"
    );
}

#[test]
fn a_request_whose_handler_outlasts_the_request_deadline_is_answered_at_it() {
    let site = Site::new();
    // The body reader would wait 5 minutes for the rest of the body; the request deadline is 1 s.
    let server = site.start(
        &["--request-timeout", "1s", "--read-timeout", "5m"],
        "tiledesk_auth_server=info",
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST /auth HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\"",
        server.addr
    )
    .unwrap();
    let mut answer = [0u8; 1024];
    let n = stream.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"busy\""), "{answer}");
}

#[test]
fn shutdown_closes_what_is_still_running_at_its_deadline() {
    let site = Site::new();
    // A write deadline far away: only the shutdown deadline can end the stalled download.
    let mut server = site.start(
        &["--write-timeout", "5m", "--shutdown-timeout", "1s"],
        "tiledesk_auth_server=info",
    );
    let client = stalled_download(server.addr);
    let pid = server.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // It exits while the client still holds its connection (it used to run until the client left).
    let status = server.wait_exit();
    assert!(status.success(), "{status}");
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("still running at the shutdown deadline"), "{logs}");
    drop(client);
}

/// A connection from `source` (any address of 127.0.0.0/8) to `addr`.
fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
    })
}

/// `GET /healthz` on `stream`: the status, or `None` when the server closed the connection unanswered.
fn healthz(mut stream: TcpStream) -> Option<u16> {
    let addr = stream.peer_addr().unwrap();
    let _ = write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading: {e}"),
    }
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

#[test]
fn idle_connections_from_many_addresses_of_one_network_cannot_take_every_slot() {
    let site = Site::new();
    let server = site.start(
        &["--max-connections-per-address", "2", "--read-timeout", "60s"],
        "tiledesk_auth_server=trace",
    );
    // Four addresses of one /24, two idle connections each: the /24's cap (four times an address's) is reached.
    let idle: Vec<TcpStream> = (1..=4u8)
        .flat_map(|host| (0..2).map(move |_| [127, 0, 0, host]))
        .map(|from| connect_from(from, server.addr))
        .collect();
    for _ in 0..idle.len() {
        server.wait_for_log(|l| l.contains("connection accepted"));
    }
    // A fifth address of that /24, with no connection of its own yet, is closed unanswered.
    assert_eq!(healthz(connect_from([127, 0, 0, 5], server.addr)), None);
    server.wait_for_log(|l| l.contains("too many connections from one address or its network"));
    // An address of another /24 is served.
    assert_eq!(healthz(connect_from([127, 0, 1, 1], server.addr)), Some(200));
    drop(idle);
}

#[test]
fn idle_connections_from_one_address_cannot_take_every_slot() {
    let site = Site::new();
    let server = site.start(
        &["--max-connections-per-address", "3", "--read-timeout", "60s"],
        "tiledesk_auth_server=trace",
    );
    let home = [127, 0, 0, 1];
    let idle: Vec<TcpStream> = (0..3).map(|_| connect_from(home, server.addr)).collect();
    for _ in 0..3 {
        server.wait_for_log(|l| l.contains("connection accepted") && l.contains("127.0.0.1:"));
    }
    // A fourth from there is closed unanswered, and said so in the log.
    assert_eq!(healthz(connect_from(home, server.addr)), None);
    server.wait_for_log(|l| l.contains("too many connections from one address or its network"));
    // Another address is served.
    assert_eq!(healthz(connect_from([127, 0, 0, 2], server.addr)), Some(200));
    // One of the three goes: there is room from there again (the server notices the close in its own time).
    drop(idle.into_iter().next());
    let deadline = Instant::now() + WAIT;
    while healthz(connect_from(home, server.addr)) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "no room came back after a connection closed"
        );
    }
}

#[test]
fn headers_larger_than_the_bound_are_refused_with_431() {
    let site = Site::new();
    let server = site.start(&[], "tiledesk_auth_server=info");
    // hyper stops reading a head once its buffer holds the bound, so at most one read past it is ever held.
    let big = "a".repeat(70 * 1024);
    let (status, _) = http(server.addr, "GET", "/healthz", &[("X-Padding", &big)], "");
    assert_eq!(status, 431);
    let small = "a".repeat(8 * 1024);
    assert_eq!(
        http(server.addr, "GET", "/healthz", &[("X-Padding", &small)], "").0,
        200
    );
}

#[test]
fn the_connection_cap_is_lowered_to_the_open_file_limit() {
    let site = Site::new();
    let db_env = site.env("tiledesk_auth_server=info");
    let server = Server::start_with_open_files(200, &["--read-timeout", "1s"], &db_env);
    let lowered = server.wait_for_log(|l| l.contains("max connections lowered"));
    assert!(
        lowered.contains("asked=4096") && lowered.contains("allowed=136"),
        "{lowered}"
    );
    // More idle connections than descriptors: the extra ones wait in the kernel's queue instead of making
    // accept fail, and once the idle ones are cut off at the read deadline a request is served.
    let idle: Vec<TcpStream> = (0..250)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    assert_eq!(http(server.addr, "GET", "/healthz", &[], "").0, 200);
    drop(idle);
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(!logs.contains("accept failed"), "{logs}");
}

#[test]
fn wrong_api_keys_are_throttled_per_address_and_their_log_lines_sampled() {
    let site = Site::new();
    let mut env = site.env("tiledesk_auth_server=info");
    env.push(("TILEDESK_API_KEY", common::API_KEY.to_owned()));
    let server = Server::start(&[], &env);
    let mint = |stream: TcpStream, key: &str| {
        let mut stream = stream;
        let addr = stream.peer_addr().unwrap();
        let body = r#"{"user_id": "42"}"#;
        write!(
            stream,
            "POST /tokens HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        common::parse_response(&answer).0
    };
    let started = Instant::now();
    let statuses: Vec<u16> = (0..300)
        .map(|n| {
            mint(
                connect_from([127, 0, 0, 1], server.addr),
                &format!("guessed-key-{n:08}"),
            )
        })
        .collect();
    let elapsed = started.elapsed();
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // The right key from there waits out the window too (it is not even looked at); from elsewhere it works.
    assert_eq!(
        mint(connect_from([127, 0, 0, 1], server.addr), common::API_KEY),
        429
    );
    assert_eq!(
        mint(connect_from([127, 0, 0, 3], server.addr), common::API_KEY),
        200
    );
    // 300 refusals, but each kind of line at most once a second, each saying how many it stands for.
    let logs = server.logs.lock().unwrap().clone();
    let lines = logs.iter().filter(|l| l.contains("API key")).count();
    let allowed = 2 * (elapsed.as_secs() as usize + 2);
    assert!(
        lines <= allowed,
        "{lines} lines in {elapsed:?}:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter().any(|l| l.contains("left_out=")),
        "{}",
        logs.join("\n")
    );
}

#[test]
fn near_the_cap_the_connection_idle_longest_gives_way_and_one_answering_never_does() {
    let site = Site::new();
    let server = site.start(
        &[
            "--max-connections",
            "8",
            "--max-connections-per-address",
            "100",
            "--read-timeout",
            "60s",
        ],
        "tiledesk_auth_server=trace,tower_http=debug",
    );
    let accepted = |n: usize| {
        for _ in 0..n {
            server.wait_for_log(|l| l.contains("connection accepted"));
        }
    };
    // The oldest connection is in the middle of a request (its body still coming), the next six are idle.
    let mut answering = connect_from([127, 0, 0, 1], server.addr);
    accepted(1);
    write!(
        answering,
        "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{"
    )
    .unwrap();
    server.wait_for_log(|l| l.contains("started processing request"));
    let mut idle: Vec<TcpStream> = (0..6)
        .map(|_| {
            let stream = connect_from([127, 0, 0, 1], server.addr);
            accepted(1);
            stream
        })
        .collect();
    // The eighth fills the last slot: the connection idle longest (not the one answering) is closed.
    let eighth = connect_from([127, 0, 0, 1], server.addr);
    server.wait_for_log(|l| l.contains("the connection idle longest is closed"));
    accepted(1);
    let mut byte = [0u8; 1];
    assert_eq!(
        idle[0].read(&mut byte).unwrap(),
        0,
        "the oldest idle one was closed"
    );
    // A ninth client is served at once (without this, it waited in the kernel's queue for the read deadline).
    assert_eq!(healthz(connect_from([127, 0, 0, 2], server.addr)), Some(200));
    // The one answering was left alone: its request completes and is answered.
    answering.write_all(b"}").unwrap();
    let mut head = [0u8; 12];
    answering.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 400", "{}", String::from_utf8_lossy(&head));
    drop((idle.drain(..), eighth));
}
