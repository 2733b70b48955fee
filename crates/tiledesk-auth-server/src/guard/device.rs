//! Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed in to an
//! account before carries a signed cookie naming that account, and its logins are judged on the cookie alone.
//!
//! Without it, an attacker who knows a user's email could keep the account's budget spent from many addresses
//! (100 wrong passwords from 20 addresses in 1.5 s locked the real user out for 15 minutes, again and again). With
//! it, the real user's usual browser has a budget of its own ([`super::throttle::ThrottlePolicy::per_account_and_address`]
//! failures per window, counted on the cookie) that nobody else can spend, while every browser without a valid
//! cookie for that account still faces every limit. A stolen cookie gives no more than its own small budget.
//!
//! The value is `v1.<issued, Unix seconds>.<nonce>.<HMAC-SHA256>`, the MAC over the account, the issue time and the
//! nonce with a key derived from the project secret (so rotating the secret starts every browser afresh; it never
//! locks anyone out). It is `HttpOnly`, `SameSite=Strict`, for the whole site (the service may sit behind a path
//! prefix), and replaced at each successful login. When `Secure` ([`CookieSecurity`]) it is named
//! `__Host-tdauth_device`: browsers keep such a cookie only from this host, `Secure`, for `/`, without `Domain`, so a
//! sibling subdomain cannot set one of that name ("cookie tossing"). Every value presented is tried, so a cookie
//! tossed under the plain name does not hide the real one either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use tiledesk_jwt::ProjectSecret;

/// The cookie's name when it is not `Secure` (a loopback host on plain HTTP: the demo, a developer's machine).
pub const COOKIE_NAME: &str = "tdauth_device";

/// The cookie's name when it is `Secure`.
pub const SECURE_COOKIE_NAME: &str = "__Host-tdauth_device";

/// Whether the device cookie is `Secure` (`serve --cookie-secure`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CookieSecurity {
    /// `Secure`, except for a request to a loopback host (`localhost`, `127.0.0.1`, `[::1]`) that did not come
    /// through a trusted proxy: behind a proxy the browser's side is what counts, whatever `Host` the proxy sends.
    #[default]
    Auto,
    /// Always `Secure` (a proxy that sends a loopback `Host` and is not listed with `--trusted-proxy`).
    Always,
    /// Never `Secure`: plain HTTP on a host that is not loopback, for a test network only.
    Never,
}

impl CookieSecurity {
    /// Whether the cookie for a request to `host` is `Secure`; `behind_proxy`: trusted proxies are configured.
    pub fn secure(self, host: Option<&HeaderValue>, behind_proxy: bool) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => behind_proxy || !host.is_some_and(is_loopback_host),
        }
    }
}

/// How long a browser stays known after its last successful login.
pub const DEVICE_MAX_AGE: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// What the key is derived for: changing it makes every cookie invalid.
const PURPOSE: &str = "tiledesk-auth device cookie v1";

/// A browser known to have signed in to the account: its cookie's nonce, what its failures are counted on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Device(pub(crate) String);

/// A key for the MACs of one kind of cookie, derived from the project secret for a purpose: this module's device
/// cookies, [`crate::identity::login_session`]'s sessions. `Debug` prints `[redacted]`.
pub(crate) struct CookieKey(zeroize::Zeroizing<[u8; 32]>);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey([redacted])")
    }
}

impl CookieKey {
    /// The key for `purpose` (changing the purpose makes every cookie of that kind invalid).
    pub(crate) fn new(secret: &ProjectSecret, purpose: &str) -> Self {
        Self(secret.derive_key(purpose))
    }

    /// HMAC-SHA256 over `parts`, each preceded by its length, so no two different lists feed the same bytes.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Signs and checks device cookies with a key derived from `secret`.
#[derive(Debug)]
pub struct DeviceCookies {
    key: CookieKey,
}

impl DeviceCookies {
    /// Cookies for the project with this secret.
    pub fn new(secret: &ProjectSecret) -> Self {
        Self {
            key: CookieKey::new(secret, PURPOSE),
        }
    }

    fn mac(&self, account: &str, issued: u64, nonce: &str) -> [u8; 32] {
        self.key
            .mac(&[account.as_bytes(), &issued.to_be_bytes(), nonce.as_bytes()])
    }

    /// A fresh cookie value for `account` (the login key: trimmed, lower-cased email).
    pub fn issue(&self, account: &str, now: SystemTime) -> String {
        let issued = unix(now);
        let mut nonce = [0u8; 16];
        argon2::password_hash::rand_core::RngCore::fill_bytes(
            &mut argon2::password_hash::rand_core::OsRng,
            &mut nonce,
        );
        let nonce = URL_SAFE_NO_PAD.encode(nonce);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(account, issued, &nonce));
        format!("v1.{issued}.{nonce}.{mac}")
    }

    /// The device behind `value` when it is a cookie this service issued for `account`, unexpired; else `None`
    /// (forged, altered, for another account, from before a secret rotation, or too old).
    pub fn verify(&self, value: &str, account: &str, now: SystemTime) -> Option<Device> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(issued), Some(nonce), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let issued: u64 = issued.parse().ok()?;
        let presented = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.mac(account, issued, nonce);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&presented[..], &expected[..])) {
            return None;
        }
        let age = unix(now).checked_sub(issued)?;
        (age < DEVICE_MAX_AGE.as_secs()).then(|| Device(nonce.to_owned()))
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Every device cookie value among the request's cookies, of either name, in the order sent.
pub fn presented(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SECURE_COOKIE_NAME || name == COOKIE_NAME).then_some(value)
        })
}

/// The `Set-Cookie` header for `value`: `__Host-tdauth_device`, `Secure`, when `secure`; `tdauth_device` without
/// it otherwise (a browser on plain HTTP would drop a `Secure` cookie, and refuses a `__Host-` one without it).
pub fn set_cookie(value: &str, secure: bool) -> HeaderValue {
    let (name, flag) = if secure {
        (SECURE_COOKIE_NAME, "; Secure")
    } else {
        (COOKIE_NAME, "")
    };
    let cookie = format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{flag}",
        DEVICE_MAX_AGE.as_secs()
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| unreachable!("the value is ASCII without separators"))
}

fn is_loopback_host(host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else {
        return false;
    };
    // Without the port: `[::1]:8080`, `localhost:8080`, `127.0.0.1`.
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(secret: &str) -> DeviceCookies {
        DeviceCookies::new(&ProjectSecret::new(secret).unwrap())
    }

    const SECRET: &str = "3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17";

    #[test]
    fn a_cookie_is_good_for_its_account_only_and_for_a_while() {
        let c = cookies(SECRET);
        let now = SystemTime::now();
        let value = c.issue("andrew@scientists.com", now);
        let device = c.verify(&value, "andrew@scientists.com", now).unwrap();
        assert_eq!(
            c.verify(&value, "andrew@scientists.com", now + Duration::from_secs(3600)),
            Some(device.clone())
        );
        assert_eq!(c.verify(&value, "ada@example.org", now), None, "another account");
        assert_eq!(
            c.verify(&value, "andrew@scientists.com", now + DEVICE_MAX_AGE),
            None,
            "too old"
        );
        assert_eq!(
            cookies("another-secret-3f1c9a52-5d2e-4f7b-9c1a").verify(&value, "andrew@scientists.com", now),
            None,
            "after the secret was rotated"
        );
        let other = c.issue("andrew@scientists.com", now);
        assert_ne!(
            c.verify(&other, "andrew@scientists.com", now),
            Some(device),
            "each login, a new device id"
        );
    }

    #[test]
    fn altered_or_malformed_cookies_are_refused() {
        let c = cookies(SECRET);
        let now = SystemTime::now();
        let value = c.issue("u@example.org", now);
        let parts: Vec<&str> = value.split('.').collect();
        let later = format!("v1.{}.{}.{}", unix(now) + 1000, parts[2], parts[3]);
        let other_nonce = format!("v1.{}.AAAAAAAAAAAAAAAAAAAAAA.{}", parts[1], parts[3]);
        for bad in [
            later.as_str(),
            other_nonce.as_str(),
            "",
            "v1",
            "v1.1.2",
            "v2.1.2.3",
            &format!("{value}.x"),
            &value[..value.len() - 1],
        ] {
            assert_eq!(c.verify(bad, "u@example.org", now), None, "{bad:?}");
        }
    }

    #[test]
    fn every_value_of_either_name_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tdauth_device=tossed; b=2; __Host-tdauth_device=v1.2.3.4"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("tdauth_device=older"));
        assert_eq!(
            presented(&headers).collect::<Vec<_>>(),
            ["tossed", "v1.2.3.4", "older"]
        );
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("xtdauth_device=1; __host-tdauth_device=2"),
        );
        assert_eq!(presented(&headers).next(), None);
    }

    #[test]
    fn a_secure_cookie_is_a_host_cookie_and_secure_follows_the_configuration() {
        let secure = set_cookie("v", true);
        let secure = secure.to_str().unwrap();
        assert!(secure.starts_with("__Host-tdauth_device=v;"), "{secure}");
        for part in ["Path=/;", "HttpOnly", "SameSite=Strict", "; Secure"] {
            assert!(secure.contains(part), "{secure}");
        }
        assert!(!secure.contains("Domain"), "{secure}");
        let plain = set_cookie("v", false);
        let plain = plain.to_str().unwrap();
        assert!(
            plain.starts_with("tdauth_device=v;") && !plain.contains("Secure"),
            "{plain}"
        );

        let host = |h: &'static str| Some(HeaderValue::from_static(h));
        for loopback in ["localhost:8080", "127.0.0.1:3000", "[::1]:80", "127.0.0.1"] {
            assert!(
                !CookieSecurity::Auto.secure(host(loopback).as_ref(), false),
                "{loopback}"
            );
            // Behind a trusted proxy (nginx's `proxy_pass http://127.0.0.1:3000` sends that as the Host).
            assert!(
                CookieSecurity::Auto.secure(host(loopback).as_ref(), true),
                "{loopback}"
            );
            assert!(
                CookieSecurity::Always.secure(host(loopback).as_ref(), false),
                "{loopback}"
            );
        }
        assert!(CookieSecurity::Auto.secure(host("shop.example").as_ref(), false));
        assert!(CookieSecurity::Auto.secure(None, false));
        assert!(!CookieSecurity::Never.secure(host("shop.example").as_ref(), true));
    }
}
