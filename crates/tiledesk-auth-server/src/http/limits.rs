//! The accept loop's limits ([`Limits`]) and their defaults, which the body reader and the command line read too.

use std::sync::Arc;
use std::time::Duration;

use super::proxy::TrustedProxy;

/// Every connection limit's default, in one place: [`Limits::default`], the body reader and the command line all
/// read them from here.
pub mod defaults {
    use std::time::Duration;

    /// [`super::Limits::read_timeout`].
    pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// [`super::Limits::write_timeout`].
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// [`super::Limits::request_timeout`].
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// [`super::Limits::shutdown_timeout`].
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// [`super::Limits::max_connections`].
    pub const MAX_CONNECTIONS: u32 = 4096;
    /// [`super::Limits::max_connections_per_address`].
    pub const MAX_CONNECTIONS_PER_ADDRESS: u32 = 256;
}

/// Connection limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time a client has to send a request's headers, counted from the first byte it may send (also the longest a
    /// keep-alive connection may sit idle), and then again its body.
    pub read_timeout: Duration,
    /// Longest a connection may go without a byte of its answer leaving, while there is one to send.
    pub write_timeout: Duration,
    /// Longest a request may take from its headers to the last byte of its answer.
    pub request_timeout: Duration,
    /// Connections open at once; further clients wait in the kernel's accept queue. Lowered at start to what the
    /// open-file limit allows.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client by its /64); more are closed at once.
    /// The networks around it have caps of their own, in proportion: four times this for an
    /// IPv4 /24 and an IPv6 /56, eight times for an IPv6 /48, so that 16 addresses of one network cannot hold
    /// every connection.
    pub max_connections_per_address: usize,
    /// Peers the per-address cap does not apply to: the reverse proxies every visitor comes through.
    pub trusted_proxies: Arc<[TrustedProxy]>,
    /// After shutdown is asked for, how long requests in flight have to finish before their connections close.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            read_timeout: defaults::READ_TIMEOUT,
            write_timeout: defaults::WRITE_TIMEOUT,
            request_timeout: defaults::REQUEST_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS as usize,
            max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS as usize,
            trusted_proxies: Arc::new([]),
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
        }
    }
}
