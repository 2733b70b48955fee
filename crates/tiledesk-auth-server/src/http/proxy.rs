//! Which address a request comes from, behind reverse proxies the operator trusts.
//!
//! Without trusted proxies the address is the TCP peer: behind a proxy that would be the proxy for every visitor, and
//! the login throttle's per-address limit would count everyone together (50 wrong guesses from anyone would block
//! every visitor). With `--trusted-proxy`, a request whose peer is trusted is attributed to the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy. Entries further left were written by the client and can be
//! anything, so they are never used; a peer that is not trusted cannot claim another address at all.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A trusted proxy: one address or a CIDR block (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value was refused.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or a CIDR block such as 10.0.0.0/8")]
pub struct ProxyParseError(String);

impl FromStr for TrustedProxy {
    type Err = ProxyParseError;

    fn from_str(text: &str) -> Result<Self, ProxyParseError> {
        let refuse = || ProxyParseError(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| refuse())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(refuse)?,
            None => max,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TrustedProxy {
    /// Whether `address` is inside this block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                masked(u128::from(u32::from(net)), 32, self.prefix)
                    == masked(u128::from(u32::from(a)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(a), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    let host_bits = width - u32::from(prefix);
    bits.checked_shr(host_bits).unwrap_or(0)
}

fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The client's address: `peer` itself unless it is a trusted proxy, else the right-most untrusted address in the
/// `X-Forwarded-For` values (all of them, in order). When every listed address is trusted, or one cannot be read,
/// the left-most trusted one reached or the peer is used: never an address the client could have chosen freely.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[TrustedProxy],
) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|t| t.contains(a));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let mut client = canonical(peer);
    let entries = forwarded_for.rev().flat_map(|value| value.rsplit(','));
    for entry in entries {
        let Some(address) = parse_entry(entry) else {
            return client;
        };
        client = address;
        if !is_trusted(address) {
            return address;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = entry.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn parsing_and_containment() {
        let block: TrustedProxy = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.200.3.4")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        let one: TrustedProxy = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let all: TrustedProxy = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0/8",
            "example.com",
            "::/129",
            "10.0.0.1/-1",
        ] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
        assert_eq!(block.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client put a fake address first; the proxy appended the real one.
        let got = client_address(
            ip("10.0.0.1"),
            ["198.51.100.66, 203.0.113.7"].into_iter(),
            &trusted,
        );
        assert_eq!(got, ip("203.0.113.7"));
        // Two proxies in a chain, across two header lines.
        let got = client_address(
            ip("10.0.0.1"),
            ["1.2.3.4, 203.0.113.7", "10.9.9.9"].into_iter(),
            &trusted,
        );
        assert_eq!(got, ip("203.0.113.7"));
        // Ports and brackets as some proxies write them.
        let got = client_address(ip("10.0.0.1"), ["[2001:db8::5]:4711"].into_iter(), &trusted);
        assert_eq!(got, ip("2001:db8::5"));
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = client_address(ip("203.0.113.7"), ["198.51.100.1"].into_iter(), &trusted);
        assert_eq!(got, ip("203.0.113.7"));
        let got = client_address(ip("203.0.113.7"), [].into_iter(), &[]);
        assert_eq!(got, ip("203.0.113.7"));
    }

    #[test]
    fn missing_or_unreadable_entries_fall_back_to_what_was_trusted() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("10.0.0.1"), [].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        // An unreadable entry stops the walk: nothing left of it is believed.
        let got = client_address(ip("10.0.0.1"), ["203.0.113.7, garbage"].into_iter(), &trusted);
        assert_eq!(got, ip("10.0.0.1"));
        let got = client_address(
            ip("10.0.0.1"),
            ["203.0.113.7, unknown, 10.2.2.2"].into_iter(),
            &trusted,
        );
        assert_eq!(got, ip("10.2.2.2"));
    }
}
