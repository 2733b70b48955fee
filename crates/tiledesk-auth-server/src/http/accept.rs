//! The HTTP/1.1 accept loop, with the limits `axum::serve` does not set:
//!
//! - a deadline for a request's headers (it also closes keep-alive connections left idle that long), and for its
//!   body (`408 request_timeout`, see `body.rs`): slow-loris clients are cut off;
//! - a write deadline: a client that stops reading its answer is disconnected once no byte has gone out for
//!   [`Limits::write_timeout`] (it used to hold a 50 MB file's connection, and shutdown, for as long as it liked);
//! - a deadline for the whole request, answer sent included ([`Limits::request_timeout`]);
//! - a cap on open connections, lowered to what the open-file limit allows, and a cap per client address and per
//!   network around it (trusted proxies exempt), so idle connections from one place cannot take every slot; near
//!   the cap the connection idle longest is closed for each new one (see `idle.rs`);
//! - a bound on the memory a connection's unread headers may take ([`MAX_HEADER_BYTES`]);
//! - a graceful shutdown that lets requests in flight finish, for at most [`Limits::shutdown_timeout`], then closes
//!   what is left.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

pub use super::body::BodyTimeout;
use super::deadline_body::DeadlineBody;
use super::idle;
pub use super::limits::{Limits, defaults};
use super::write_deadline::WriteDeadline;

/// The bound on a connection's read buffer (hyper's `max_buf_size`): once a request's unfinished head fills it,
/// the request is refused with `431`, so a connection holds at most this plus one read (under 2 x 32 KiB).
/// 500 connections with 380 KiB of unfinished headers took 203 MiB under hyper's default (about 400 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// File descriptors kept for everything but client connections (the database, the log, the listener...).
const RESERVED_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard one where it is lower, and returns how many connections fit
/// under it with [`RESERVED_FDS`] to spare; `None` where it cannot be read.
fn connections_the_fd_limit_allows() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        // `None` is unlimited.
        let mut soft = limit.current?;
        if let Some(hard) = limit.maximum
            && soft < hard
            && setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .is_ok()
        {
            soft = hard;
        }
        Some(usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A client's address, or a network around it: the address with the bits past `prefix` cleared.
type Network = (IpAddr, u8);

/// What a connection from `address` counts against, with each cap: the address itself (an IPv6 one as its /64)
/// with `per_address`, then its IPv4 /24 (four times that), or its IPv6 /56 (four times) and /48 (eight times).
fn network_caps(address: IpAddr, per_address: usize) -> Vec<(Network, usize)> {
    let times = |n: usize| per_address.saturating_mul(n);
    match crate::guard::throttle::throttled_as(address) {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            vec![
                ((IpAddr::V4(v4), 32), per_address),
                ((IpAddr::V4((bits & 0xffff_ff00).into()), 24), times(4)),
            ]
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let network = |prefix: u32| (IpAddr::V6((bits & !(u128::MAX >> prefix)).into()), prefix as u8);
            vec![
                (network(64), per_address),
                (network(56), times(4)),
                (network(48), times(8)),
            ]
        }
    }
}

/// Open connections per client address and per network around it.
type PerAddress = crate::guard::under_way::UnderWay<Network>;

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every connection to close
/// after its current request, and returns once all are closed or [`Limits::shutdown_timeout`] has passed.
pub async fn serve(
    listener: TcpListener,
    app: impl crate::app::HttpService,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut max_connections = limits.max_connections.max(1);
    if let Some(allowed) = connections_the_fd_limit_allows()
        && allowed < max_connections
    {
        tracing::warn!(
            asked = max_connections,
            allowed,
            "max connections lowered to what the open-file limit allows (raise `ulimit -n` for more)"
        );
        max_connections = allowed;
    }
    let max_connections = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(max_connections as usize));
    let per_address = Arc::new(PerAddress::default());
    let idle = Arc::new(idle::IdleConnections::default());
    // Free slots below which each new connection closes the one idle longest.
    let headroom = (max_connections as usize / 32).max(1);
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&open).acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (socket, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let exempt = limits
            .trusted_proxies
            .iter()
            .any(|proxy| proxy.contains(peer.ip()));
        let counted = if exempt {
            None
        } else {
            match per_address.admit(network_caps(peer.ip(), limits.max_connections_per_address)) {
                Some(counted) => Some(counted),
                None => {
                    // Closed unanswered: answering would cost what the cap is there to save.
                    crate::http::log::refused(
                        "too many connections from one address or its network",
                        peer.ip(),
                    );
                    continue;
                }
            }
        };
        if open.available_permits() < headroom && idle.close_oldest() {
            crate::http::log::refused(
                "near the connection cap: the connection idle longest is closed",
                peer.ip(),
            );
        }
        let tracked = Arc::new(idle.open());
        tracing::trace!(%peer, "connection accepted");
        let _ = socket.set_nodelay(true);
        let request_timeout = limits.request_timeout;
        let read_timeout = limits.read_timeout;
        let (busy, answered) = (Arc::clone(&tracked), Arc::clone(&tracked));
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                busy.busy();
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(BodyTimeout(read_timeout));
                request.map(axum::body::Body::new)
            })
            .map_future(move |answer| {
                let answered = Arc::clone(&answered);
                async move {
                    // The handler's part of the deadline; what is left of it bounds sending the answer.
                    let deadline = Instant::now() + request_timeout;
                    let answer = tokio::time::timeout_at(deadline, answer).await;
                    // Idle from here (a streamed body may still be going out: a close waits for it).
                    answered.idle();
                    match answer {
                        // An answer already whole in memory goes out in one write, under the write deadline; only a
                        // streamed one (a static file) needs a timer of its own.
                        Ok(Ok(response)) if is_small(response.body()) => Ok(response),
                        Ok(Ok(response)) => {
                            Ok(response.map(|body| axum::body::Body::new(DeadlineBody::new(body, deadline))))
                        }
                        Ok(Err(never)) => Err(never),
                        Err(_) => Ok(axum::response::IntoResponse::into_response(
                            crate::http::error::ApiError::Busy {
                                retry_after: Duration::from_secs(1),
                            },
                        )),
                    }
                }
            });
        let mut stopping = stopping.clone();
        let write_timeout = limits.write_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _counted = counted;
            // Forgotten by the idle set when the connection ends.
            let tracked = tracked;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(true);
            let io = TokioIo::new(WriteDeadline::new(socket, write_timeout));
            let connection = builder.serve_connection(io, TowerToHyperService::new(service));
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
                () = tracked.close.notified() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closes.
    let all_closed = open.acquire_many(max_connections);
    if tokio::time::timeout(limits.shutdown_timeout, all_closed)
        .await
        .is_err()
    {
        let left = max_connections as usize - open.available_permits();
        tracing::warn!(
            connections = left,
            "requests still running at the shutdown deadline: their connections are closed"
        );
    }
    Ok(())
}

/// Whether an answer's body is known to be small: sent in one go, it needs no deadline beyond the write deadline.
fn is_small(body: &axum::body::Body) -> bool {
    hyper::body::Body::size_hint(body)
        .exact()
        .is_some_and(|len| len <= 64 * 1024)
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Timeouts and clients that go away are routine; nothing here is about the service's health.
        tracing::debug!(%peer, %err, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_counts_against_itself_and_the_networks_around_it() {
        assert_eq!(
            network_caps(ip("203.0.113.77"), 256),
            [((ip("203.0.113.77"), 32), 256), ((ip("203.0.113.0"), 24), 1024)]
        );
        assert_eq!(
            network_caps(ip("::ffff:203.0.113.77"), 256)[1],
            ((ip("203.0.113.0"), 24), 1024),
            "an IPv4-mapped address as its IPv4 address"
        );
        assert_eq!(
            network_caps(ip("2001:db8:aa:bbcc:1:2:3:4"), 256),
            [
                ((ip("2001:db8:aa:bbcc::"), 64), 256),
                ((ip("2001:db8:aa:bb00::"), 56), 1024),
                ((ip("2001:db8:aa::"), 48), 2048),
            ]
        );
    }

    #[test]
    fn sixteen_addresses_of_one_network_cannot_hold_every_connection() {
        let table = Arc::new(PerAddress::default());
        // Three per address: a /24 holds twelve, whichever of its addresses they come from.
        let held: Vec<crate::guard::under_way::Counted<Network>> = (1..=4u8)
            .flat_map(|host| {
                let table = Arc::clone(&table);
                (0..3).map(move |_| {
                    table
                        .admit(network_caps(IpAddr::from([198, 51, 100, host]), 3))
                        .unwrap()
                })
            })
            .collect();
        assert!(
            table.admit(network_caps(ip("198.51.100.5"), 3)).is_none(),
            "the /24 is full"
        );
        assert!(
            table.admit(network_caps(ip("198.51.101.5"), 3)).is_some(),
            "the next /24 is not"
        );
        drop(held);
        assert!(
            table.admit(network_caps(ip("198.51.100.5"), 3)).is_some(),
            "closed: counted no more"
        );
        // IPv6, one per /64: a /56 holds four of them, a /48 eight (so two /56s).
        let address = |net56: u16, net64: u16| {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xaa,
                net56 << 8 | net64,
                0,
                0,
                0,
                1,
            ))
        };
        let mut v6 = Vec::new();
        for net56 in 0..2 {
            for net64 in 0..4 {
                v6.push(table.admit(network_caps(address(net56, net64), 1)).unwrap());
            }
            assert!(
                table.admit(network_caps(address(net56, 9), 1)).is_none(),
                "the /56 holds four"
            );
        }
        assert!(
            table.admit(network_caps(address(2, 0), 1)).is_none(),
            "the /48 holds eight"
        );
        assert!(
            table
                .admit(network_caps(
                    IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xab, 0, 0, 0, 0, 1)),
                    1
                ))
                .is_some(),
            "the next /48 is not full"
        );
    }
}
