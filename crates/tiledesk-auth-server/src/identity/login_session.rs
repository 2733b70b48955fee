//! The login session: after a password login, the browser holds a signed, `HttpOnly` cookie naming the account, and
//! the module's refreshes (`POST /auth` with `{}`) are signed in with it. The password is sent once; the module does
//! not keep it to post again at every refresh (it did: an old tab went on spending the account's failure budget
//! after a password change, and the password sat in the page's memory for the whole session).
//!
//! The value is `v1.<account, base64url>.<issued, Unix seconds>.<HMAC-SHA256>`, the MAC over the account, the issue
//! time and the account's current password hash, with a key derived from the project secret: a password change (or
//! a secret rotation) ends every session of the account at once, and a session lasts [`LOGIN_SESSION_LIFETIME`] at
//! most. `DELETE /auth` (the module's `signOut()`) clears it. Like the device cookie it is `HttpOnly`,
//! `SameSite=Strict`, for the whole site, and `__Host-` with `Secure` where the device cookie is (see
//! [`crate::guard::device::CookieSecurity`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tiledesk_jwt::ProjectSecret;

use crate::guard::device::CookieKey;

/// The cookie's name when it is not `Secure`.
pub const COOKIE_NAME: &str = "tdauth_login";

/// The cookie's name when it is `Secure`.
pub const SECURE_COOKIE_NAME: &str = "__Host-tdauth_login";

/// How long a login session lasts: then the visitor logs in again.
pub const LOGIN_SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// What the key is derived for: changing it ends every session.
const PURPOSE: &str = "tiledesk-auth login session v1";

/// Signs and checks login-session cookies with a key derived from the project secret.
#[derive(Debug)]
pub struct LoginSessions {
    key: CookieKey,
}

impl LoginSessions {
    /// Sessions for the project with this secret.
    pub fn new(secret: &ProjectSecret) -> Self {
        Self {
            key: CookieKey::new(secret, PURPOSE),
        }
    }

    fn mac(&self, account: &str, issued: u64, password_hash: &str) -> [u8; 32] {
        self.key.mac(&[
            account.as_bytes(),
            &issued.to_be_bytes(),
            password_hash.as_bytes(),
        ])
    }

    /// A session for `account` (the login key: trimmed, lower-cased email) whose password hash is `password_hash`.
    pub fn issue(&self, account: &str, password_hash: &str, now: SystemTime) -> String {
        let issued = unix(now);
        let mac = URL_SAFE_NO_PAD.encode(self.mac(account, issued, password_hash));
        format!("v1.{}.{issued}.{mac}", URL_SAFE_NO_PAD.encode(account))
    }

    /// The account a cookie value names, before it is checked (to look its password hash up).
    pub fn account(value: &str) -> Option<String> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(account)) = (parts.next(), parts.next()) else {
            return None;
        };
        String::from_utf8(URL_SAFE_NO_PAD.decode(account).ok()?).ok()
    }

    /// Whether `value` is a session this service issued for `account` while its password hash was
    /// `password_hash`, and is not over its lifetime.
    pub fn verify(&self, value: &str, account: &str, password_hash: &str, now: SystemTime) -> bool {
        let parts: Vec<&str> = value.split('.').collect();
        let ["v1", _, issued, mac] = parts[..] else {
            return false;
        };
        let (Ok(issued), Ok(presented)) = (issued.parse::<u64>(), URL_SAFE_NO_PAD.decode(mac)) else {
            return false;
        };
        let expected = self.mac(account, issued, password_hash);
        let authentic = bool::from(subtle::ConstantTimeEq::ct_eq(&presented[..], &expected[..]));
        authentic
            && Self::account(value).as_deref() == Some(account)
            && unix(now)
                .checked_sub(issued)
                .is_some_and(|age| age < LOGIN_SESSION_LIFETIME.as_secs())
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The login-session cookie's value among the request's cookies (of either name; the last one sent).
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SECURE_COOKIE_NAME || name == COOKIE_NAME).then_some(value)
        })
        .next_back()
}

/// The `Set-Cookie` header for `value` (`None`: the cookie cleared), `Secure` and `__Host-` when `secure`.
pub fn set_cookie(value: Option<&str>, secure: bool) -> HeaderValue {
    let (name, flag) = if secure {
        (SECURE_COOKIE_NAME, "; Secure")
    } else {
        (COOKIE_NAME, "")
    };
    let (value, max_age) = value.map_or(("", 0), |value| (value, LOGIN_SESSION_LIFETIME.as_secs()));
    let cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{flag}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| unreachable!("the value is ASCII without separators"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17";

    fn sessions() -> LoginSessions {
        LoginSessions::new(&ProjectSecret::new(SECRET).unwrap())
    }

    #[test]
    fn a_session_is_good_for_its_account_and_password_and_for_a_while() {
        let s = sessions();
        let now = SystemTime::now();
        let value = s.issue("ada@example.com", "$argon2id$hash-1", now);
        assert_eq!(LoginSessions::account(&value).as_deref(), Some("ada@example.com"));
        assert!(s.verify(&value, "ada@example.com", "$argon2id$hash-1", now));
        assert!(
            !s.verify(&value, "ada@example.com", "$argon2id$hash-2", now),
            "the password changed"
        );
        assert!(
            !s.verify(&value, "eve@example.com", "$argon2id$hash-1", now),
            "another account"
        );
        assert!(
            !s.verify(
                &value,
                "ada@example.com",
                "$argon2id$hash-1",
                now + LOGIN_SESSION_LIFETIME
            ),
            "too old"
        );
        let rotated =
            LoginSessions::new(&ProjectSecret::new("another-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap());
        assert!(
            !rotated.verify(&value, "ada@example.com", "$argon2id$hash-1", now),
            "the secret rotated"
        );
        // Another account's name put into a valid value: its MAC does not follow.
        let parts: Vec<&str> = value.split('.').collect();
        let swapped = format!(
            "v1.{}.{}.{}",
            URL_SAFE_NO_PAD.encode("eve@example.com"),
            parts[2],
            parts[3]
        );
        assert!(!s.verify(&swapped, "eve@example.com", "$argon2id$hash-1", now));
        for bad in ["", "v1", "v1.x.1", "v2.YQ.1.AAAA", &format!("{value}.x")] {
            assert!(
                !s.verify(bad, "ada@example.com", "$argon2id$hash-1", now),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_cookie_is_set_cleared_and_found() {
        let set = set_cookie(Some("v"), true);
        let set = set.to_str().unwrap();
        assert!(
            set.starts_with("__Host-tdauth_login=v;") && set.contains("; Secure"),
            "{set}"
        );
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/;"),
            "{set}"
        );
        let cleared = set_cookie(None, false);
        assert_eq!(
            cleared.to_str().unwrap(),
            "tdauth_login=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tdauth_login=v1.x; b=2"),
        );
        assert_eq!(presented(&headers), Some("v1.x"));
        headers.insert(header::COOKIE, HeaderValue::from_static("tdauth_loginx=1"));
        assert_eq!(presented(&headers), None);
    }
}
