//! The HTTP/1.1 accept loop, with the limits `axum::serve` does not set: a deadline for a request's headers (it
//! also closes keep-alive connections left idle that long), a cap on open connections, and a graceful shutdown
//! that lets every request in flight finish.
//!
//! A client that trickles its headers (slow-loris) is cut off at the deadline; one that trickles its body is
//! answered `408 request_timeout` by the body reader (see `body.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

pub use crate::body::BodyTimeout;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time a client has to send a request's headers, counted from the first byte it may send (also the longest a
    /// keep-alive connection may sit idle), and then again its body.
    pub read_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, asks every connection to close
/// after its current request, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max_connections = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(max_connections as usize));
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
        tracing::trace!(%peer, "connection accepted");
        let _ = socket.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(BodyTimeout(limits.read_timeout));
            request.map(axum::body::Body::new)
        });
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read_timeout)
                .keep_alive(true);
            let connection =
                builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service));
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it closes.
    let _all_closed = open.acquire_many(max_connections).await;
    Ok(())
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Timeouts and clients that go away are routine; nothing here is about the service's health.
        tracing::debug!(%peer, %err, "connection ended");
    }
}
