//! A login flood from many addresses: `connections` keep-alive connections, each from its own loopback address
//! (127.1.x.y: Linux answers on the whole of 127.0.0.0/8), each sending `POST /auth` again as soon as its answer
//! arrives. wrk cannot choose its source address, and from one address the service's per-address limits would
//! refuse most of a flood before it cost anything; this is the distributed attacker the limits cannot stop.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::Context;
use socket2::{Domain, Socket, Type};

/// What a flood measured.
#[derive(Debug, Default)]
pub(crate) struct Flood {
    pub(crate) requests: u64,
    /// Answers by status.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Connections that failed or were cut (each counted once, then opened again).
    pub(crate) errors: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) rps: f64,
}

impl Flood {
    /// Answers with this status.
    pub(crate) fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    /// `200: n, 503: m` for a report.
    pub(crate) fn statuses_text(&self) -> String {
        self.statuses
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The source address of connection `index`.
fn source(index: usize) -> Ipv4Addr {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    Ipv4Addr::new(127, 1, (index / 250) as u8, (index % 250 + 1) as u8)
}

/// `connections` clients sending `POST path` for `secs` seconds, client `i`'s `n`th request with `body(i, n)`.
pub(crate) fn flood(
    target: SocketAddr,
    path: &str,
    body: &(dyn Fn(usize, u64) -> String + Sync),
    connections: usize,
    secs: u32,
) -> anyhow::Result<Flood> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs));
    let request = move |index: usize, n: u64| {
        let body = body(index, n);
        format!(
            "POST {path} HTTP/1.1\r\nHost: {target}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let request = &request;
    let started = Instant::now();
    let results: Vec<(Vec<u32>, BTreeMap<u16, u64>, u64)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..connections)
            .map(|index| {
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn_scoped(scope, move || {
                        client(target, source(index), &|n| request(index, n), deadline)
                    })
            })
            .collect::<Result<_, _>>()
            .context("cannot start the flood's threads")?;
        clients
            .into_iter()
            .map(|client| {
                client
                    .join()
                    .map_err(|_| anyhow::anyhow!("a flood thread panicked"))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut flood = Flood::default();
    let mut latencies = Vec::new();
    for (times, statuses, errors) in results {
        latencies.extend(times);
        for (status, n) in statuses {
            *flood.statuses.entry(status).or_default() += n;
        }
        flood.errors += errors;
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |us| f64::from(*us) / 1e3)
    };
    flood.requests = latencies.len() as u64;
    flood.p50_ms = at(0.50);
    flood.p99_ms = at(0.99);
    flood.rps = flood.requests as f64 / elapsed;
    Ok(flood)
}

/// One client: (latencies in µs, statuses, errors).
fn client(
    target: SocketAddr,
    from: Ipv4Addr,
    request: &dyn Fn(u64) -> String,
    deadline: Instant,
) -> (Vec<u32>, BTreeMap<u16, u64>, u64) {
    let mut times = Vec::new();
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut stream = None;
    let mut n = 0;
    while Instant::now() < deadline {
        let request = request(n);
        n += 1;
        let connection = match stream.take() {
            Some(connection) => Ok(connection),
            None => connect(target, from),
        };
        let sent = Instant::now();
        match connection.and_then(|mut connection| {
            exchange(&mut connection, request.as_bytes()).map(|answer| (connection, answer))
        }) {
            Ok((connection, (status, keep))) => {
                times.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                *statuses.entry(status).or_default() += 1;
                if keep {
                    stream = Some(connection);
                }
            }
            Err(_) => errors += 1,
        }
    }
    (times, statuses, errors)
}

/// A connection to `target` from `from` (any address of 127.0.0.0/8), with a 30 s read limit.
pub(super) fn connect(target: SocketAddr, from: Ipv4Addr) -> std::io::Result<std::net::TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    socket.connect(&target.into())?;
    socket.set_tcp_nodelay(true)?;
    let stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// Sends `request` and reads one answer: its status, and whether the connection may be used again.
fn exchange(stream: &mut std::net::TcpStream, request: &[u8]) -> std::io::Result<(u16, bool)> {
    stream.write_all(request)?;
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut have = buffer.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok((status, !head.contains("connection: close")))
}
