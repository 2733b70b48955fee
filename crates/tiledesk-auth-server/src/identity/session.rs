//! The session bridge (`serve --session-url URL`): a `POST /auth` that carries no credentials signs the visitor in
//! as whoever the site's own login says they are. The service asks `GET URL` with the visitor's `Cookie` and
//! `Authorization` headers and nothing else of the request; the site answers `200` with the user
//! (`{"id", "email"?, "firstname"?, "lastname"?, "attributes"?}`), `401` or `403` when nobody is signed in.
//!
//! The URL is fixed at start: no part of a request chooses where the headers go, redirects are not followed, and
//! no proxy from the environment sees them. The site's answer is held to the same rules as a `POST /tokens` body
//! (strict JSON, reserved claims refused, lengths bounded); anything the site says beyond its status and the user
//! goes to the log, never to the visitor.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use tiledesk_jwt::{MAX_EMAIL_LEN, MAX_NAME_LEN, MAX_USER_ID_LEN, VisitorClaims, VisitorClaimsBuilder};
use tokio::sync::Semaphore;

use super::Visitor;
use crate::guard::under_way::{Counted, UnderWay};
use crate::http::body::{Fields, parse_object};

/// Largest answer read from the site, in bytes.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Calls to the site in flight at once; more wait (at most [`QUEUE_WAIT`]) so that a flood of `POST /auth` does
/// not become a flood against the site.
pub const MAX_IN_FLIGHT: usize = 64;

/// Calls to the site in flight at once for one address (an IPv6 /64): beyond, `503 busy` at once, so one client
/// with many connections cannot hold the [`MAX_IN_FLIGHT`] calls everyone shares.
pub const MAX_IN_FLIGHT_PER_ADDRESS: usize = 8;

/// How long a sign-in waits for one of the [`MAX_IN_FLIGHT`] calls before it is refused `503 busy`.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The default time the site has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the site who the visitor is.
#[derive(Debug)]
pub struct SessionBridge {
    url: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
    in_flight: Semaphore,
    /// Calls under way per address (see [`MAX_IN_FLIGHT_PER_ADDRESS`]).
    per_address: Arc<UnderWay<IpAddr>>,
    /// Whether the visitor's `Authorization` header goes to the site too (off: `Cookie` only).
    forward_authorization: bool,
    /// Put before the site's user ids (`--session-id-prefix`).
    id_prefix: String,
}

/// Why the site's answer cannot sign the visitor in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The site answered 401, or 403 as JSON: nobody is signed in there, or not anyone it lets chat. (A 403 page that
    /// is not JSON is a firewall's or a CDN's, not the site's answer about the visitor: [`SessionError::Status`].)
    #[error("the site answered {0}: the visitor is not signed in there")]
    Rejected(StatusCode),
    /// The site did not answer in time.
    #[error("the site did not answer within {0:?}")]
    Timeout(Duration),
    /// The site cannot be reached (refused, reset, no such host).
    #[error("the site cannot be reached: {0}")]
    Unreachable(String),
    /// The site answered another status than 200, 401 or 403 (a redirect included: none is followed).
    #[error("the site answered {0}")]
    Status(StatusCode),
    /// The site answered 200 with something that is not a user this service can mint for.
    #[error("the site's answer is not a user: {0}")]
    Invalid(String),
    /// [`MAX_IN_FLIGHT`] calls were under way for [`QUEUE_WAIT`].
    #[error("too many session checks under way")]
    Busy,
}

impl SessionError {
    /// What the visitor is told: a fixed sentence per code. What the site said stays in the log.
    pub fn public_message(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "the site's login does not know this visitor: sign in on the site first",
            Self::Timeout(_) | Self::Unreachable(_) => "the site's login did not answer",
            Self::Status(_) => "the site's login answered with an error",
            Self::Invalid(_) => "the site's login answered with a user this service cannot sign in",
            Self::Busy => "the service is busy; try again in 1 s",
        }
    }

    /// The stable code sent to the visitor; the rest is for the log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rejected(_) => "auth_rejected",
            Self::Timeout(_) | Self::Unreachable(_) => "session_unreachable",
            Self::Status(_) => "session_failed",
            Self::Invalid(_) => "session_invalid",
            Self::Busy => "busy",
        }
    }
}

/// Why `--session-url` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionConfigError {
    /// Not a URL.
    #[error("--session-url is not a URL: {0}")]
    NotAUrl(#[from] url::ParseError),
    /// A URL this service will not send a visitor's cookies to.
    #[error("--session-url {url}: {reason}")]
    Refused {
        /// The URL as given.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// The HTTP client could not be built (its TLS roots, say).
    #[error("cannot build the HTTP client for --session-url: {0}")]
    Client(#[source] reqwest::Error),
}

/// The cookies of [`SessionBridge::probe`]'s second request: the session cookie names of common frameworks
/// (Django, Express, PHP, Rails, Laravel, Java servlets, ASP.NET), each with a value no site issued.
const PROBE_COOKIES: &str = "sessionid=tiledesk-auth-probe; connect.sid=tiledesk-auth-probe; \
     PHPSESSID=tiledeskauthprobe; _session_id=tiledesk-auth-probe; laravel_session=tiledesk-auth-probe; \
     JSESSIONID=tiledesk-auth-probe; .AspNetCore.Session=tiledesk-auth-probe";

/// Why [`SessionBridge::probe`] found the session URL unfit.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The site answered a user to a visitor nobody signed in.
    #[error(
        "it answered 200 with user `{user}` to a request {asked}: every visitor would be signed in as that user; \
         it must answer 401 when nobody is signed in"
    )]
    SignsInAnyone {
        /// The user it answered.
        user: String,
        /// How it was asked.
        asked: &'static str,
    },
    /// The site did not answer as a site does (unreachable, timed out, another status, not a user).
    #[error(transparent)]
    Unanswered(SessionError),
}

impl SessionBridge {
    /// A bridge to `url` (`http` or `https`, no user name or password in it, no fragment), whose answer is awaited
    /// at most `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SessionConfigError> {
        let parsed = reqwest::Url::parse(url)?;
        let refused = |reason| SessionConfigError::Refused {
            url: url.to_owned(),
            reason,
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refused("only http and https URLs are asked"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(refused("it names no host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refused(
                "credentials in the URL would be logged with it; let the site check the visitor's cookie instead",
            ));
        }
        if parsed.fragment().is_some() {
            return Err(refused("a fragment is never sent; remove it"));
        }
        // The site's own endpoint: never through a proxy from the environment.
        let client = super::outbound_client(timeout)
            .no_proxy()
            .build()
            .map_err(SessionConfigError::Client)?;
        Ok(Self {
            url: parsed,
            client,
            timeout,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            per_address: Arc::default(),
            forward_authorization: false,
            id_prefix: String::new(),
        })
    }

    /// The same bridge, putting `prefix` before the site's user ids (`--session-id-prefix`): the site's user `42`
    /// is then another visitor than `42` from another way in. See [`super::id_prefix_problem`].
    pub fn with_id_prefix(mut self, prefix: &str) -> Result<Self, SessionConfigError> {
        if let Some(reason) = super::id_prefix_problem(prefix) {
            return Err(SessionConfigError::Refused {
                url: format!("--session-id-prefix {prefix:?}"),
                reason,
            });
        }
        self.id_prefix = prefix.to_owned();
        Ok(self)
    }

    /// The same bridge, forwarding the visitor's `Authorization` header to the site as well as `Cookie`
    /// (`--session-forward-authorization`): for a site whose "who am I" URL reads a bearer token. Its 401s and 403s
    /// are then counted like failed logins on the visitor's address (see `routes/auth.rs`): a site that also takes
    /// Basic credentials there would otherwise answer unlimited password guesses relayed from one address.
    #[must_use]
    pub fn forwarding_authorization(mut self, forward: bool) -> Self {
        self.forward_authorization = forward;
        self
    }

    /// Whether the visitor's `Authorization` header goes to the site.
    pub fn forwards_authorization(&self) -> bool {
        self.forward_authorization
    }

    /// The URL asked.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Whether visitors' cookies go to another machine without TLS (`http` to a host that is not loopback).
    pub fn sends_cookies_in_clear(&self) -> bool {
        let loopback = match self.url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        self.url.scheme() == "http" && !loopback
    }

    /// Asks the site who the visitor sending `headers` from `from` is: their `Cookie` (and `Authorization`, when
    /// forwarded) go to the site, with `X-Forwarded-For` and `Forwarded` naming `from`, so the site's own logs and
    /// limits see the visitor, not this service.
    pub async fn visitor(&self, headers: &HeaderMap, from: Option<IpAddr>) -> Result<Visitor, SessionError> {
        let _share = from.map(|address| self.share(address)).transpose()?;
        let _permit = tokio::time::timeout(QUEUE_WAIT, self.in_flight.acquire())
            .await
            .map_err(|_| SessionError::Busy)?
            .map_err(|_| SessionError::Busy)?;
        let started = std::time::Instant::now();
        let answer = self.ask(headers, from).await;
        let failed = matches!(
            answer,
            Err(SessionError::Timeout(_)
                | SessionError::Unreachable(_)
                | SessionError::Status(_)
                | SessionError::Invalid(_))
        );
        crate::metrics::metrics().upstream(crate::metrics::Upstream::session, started.elapsed(), failed);
        answer
    }

    /// One exchange with the session URL.
    async fn ask(&self, headers: &HeaderMap, from: Option<IpAddr>) -> Result<Visitor, SessionError> {
        let mut request = self.client.get(self.url.clone());
        let forwarded: &[header::HeaderName] = if self.forward_authorization {
            &[header::COOKIE, header::AUTHORIZATION]
        } else {
            &[header::COOKIE]
        };
        for name in forwarded {
            for value in headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        if let Some(address) = from {
            let node = match address {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("\"[{v6}]\""),
            };
            request = request
                .header("x-forwarded-for", address.to_string())
                .header(header::FORWARDED, format!("for={node}"));
        }
        let mut response = request.send().await.map_err(|err| self.failed(&err))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => return Err(SessionError::Rejected(StatusCode::UNAUTHORIZED)),
            // The site's own "not this visitor" is JSON, as its 200 is; a page of HTML is what a firewall or a CDN
            // in front of it sends, and says nothing about the visitor.
            StatusCode::FORBIDDEN if is_json(&response) => {
                return Err(SessionError::Rejected(StatusCode::FORBIDDEN));
            }
            status => return Err(SessionError::Status(status)),
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| self.failed(&err))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        site_user(&body)?
            .with_id_prefix(&self.id_prefix)
            .map_err(|err| SessionError::Invalid(err.to_string()))
    }

    /// Asks the site as a visitor nobody signed in: with no cookie, then with cookies no site issued (the usual
    /// session cookie names, values that are no session). A site must refuse both: one that answers a user signs
    /// every visitor in as that user (a `/me` that falls back to a default or guest account). Answers the status
    /// of the refusal.
    pub async fn probe(&self) -> Result<StatusCode, ProbeError> {
        let mut with_cookies = HeaderMap::new();
        with_cookies.insert(header::COOKIE, HeaderValue::from_static(PROBE_COOKIES));
        let mut refused = StatusCode::UNAUTHORIZED;
        for (headers, asked) in [
            (HeaderMap::new(), "without any cookie"),
            (with_cookies, "with a made-up session cookie"),
        ] {
            match self.visitor(&headers, None).await {
                Err(SessionError::Rejected(status)) => refused = status,
                Ok(user) => {
                    return Err(ProbeError::SignsInAnyone { user: user.id, asked });
                }
                Err(err) => return Err(ProbeError::Unanswered(err)),
            }
        }
        Ok(refused)
    }

    /// One of the address's [`MAX_IN_FLIGHT_PER_ADDRESS`] calls, given back when dropped; `Busy` when all are taken.
    fn share(&self, address: IpAddr) -> Result<Counted<IpAddr>, SessionError> {
        let address = crate::guard::throttle::throttled_as(address);
        self.per_address
            .admit(vec![(address, MAX_IN_FLIGHT_PER_ADDRESS)])
            .ok_or(SessionError::Busy)
    }

    fn failed(&self, err: &reqwest::Error) -> SessionError {
        if err.is_timeout() {
            return SessionError::Timeout(self.timeout);
        }
        // The innermost cause says what happened (connection refused, no such host); reqwest's own words around it
        // repeat the URL, which the log line has already.
        let mut cause: &dyn std::error::Error = err;
        while let Some(next) = cause.source() {
            cause = next;
        }
        SessionError::Unreachable(cause.to_string())
    }
}

fn is_json(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim().to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
}

fn too_large() -> SessionError {
    SessionError::Invalid(format!("it is larger than {} KiB", MAX_ANSWER_BYTES / 1024))
}

/// The user in the site's answer, held to the rules of a `POST /tokens` body.
fn site_user(body: &[u8]) -> Result<Visitor, SessionError> {
    let invalid = |err: &dyn std::fmt::Display| SessionError::Invalid(err.to_string());
    let mut map = parse_object(body).map_err(|err| invalid(&err))?;
    // Sites number their users as often as they name them: an integer id is taken as its decimal text.
    let id = match map.remove("id") {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(Value::String(n.to_string())),
        other => other,
    };
    if let Some(id) = id {
        map.insert("id".to_owned(), id);
    }
    let fields = Fields::new(map, &["id", "email", "firstname", "lastname", "attributes"])
        .map_err(|err| invalid(&err))?;
    checked(fields).map_err(|err| invalid(&err))
}

fn checked(mut fields: Fields) -> Result<Visitor, crate::http::error::ApiError> {
    let id = fields.required_str("id", MAX_USER_ID_LEN)?;
    let email = fields.optional_str("email", MAX_EMAIL_LEN)?;
    let firstname = fields.optional_str("firstname", MAX_NAME_LEN)?;
    let lastname = fields.optional_str("lastname", MAX_NAME_LEN)?;
    let attributes = fields.optional_object("attributes")?;
    let mut claims = VisitorClaims::builder(id.as_str())
        .with(email.as_deref(), VisitorClaimsBuilder::email)
        .with(firstname.as_deref(), VisitorClaimsBuilder::firstname)
        .with(lastname.as_deref(), VisitorClaimsBuilder::lastname);
    if let Some(attributes) = attributes {
        claims = claims.attributes(Value::Object(attributes));
    }
    Ok(Visitor {
        claims: claims.build()?,
        id,
        email,
        firstname,
        lastname,
        not_after: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(body: &str) -> Result<Visitor, String> {
        site_user(body.as_bytes()).map_err(|err| err.to_string())
    }

    #[test]
    fn a_site_user_is_held_to_the_token_rules() {
        let full = user(
            r#"{"id": "u-1", "email": "ada@example.com", "firstname": "Ada", "attributes": {"plan": "pro"}}"#,
        )
        .unwrap();
        assert_eq!(
            (full.id.as_str(), full.email.as_deref()),
            ("u-1", Some("ada@example.com"))
        );
        assert_eq!(
            user(r#"{"id": 42}"#).unwrap().id,
            "42",
            "an integer id is its decimal text"
        );
        for (body, why) in [
            (r#"{"email": "ada@example.com"}"#, "`id` is required"),
            (r#"{"id": 1.5}"#, "`id` must be a string"),
            (r#"{"id": "1", "role": "agent"}"#, "`role` is a reserved claim"),
            (
                r#"{"id": "1", "attributes": {"role": "agent"}}"#,
                "`role` is a reserved claim",
            ),
            (r#"{"id": "1", "admin": true}"#, "unknown field `admin`"),
            (r#"{"id": "1", "id": "2"}"#, "appears more than once"),
            (r#"{"id": "1", "email": "not an email"}"#, "email"),
            (r#"{"id": "a\nb"}"#, "control character"),
            ("<html>login</html>", "not valid JSON"),
        ] {
            let err = user(body).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
        }
    }

    #[test]
    fn only_http_urls_without_credentials_are_taken() {
        assert!(SessionBridge::new("https://shop.example/api/me", DEFAULT_TIMEOUT).is_ok());
        assert!(SessionBridge::new("http://127.0.0.1:8080/me", DEFAULT_TIMEOUT).is_ok());
        for url in [
            "shop.example/me",
            "ftp://shop.example/me",
            "https://user:pw@shop.example/me",
            "https://shop.example/me#frag",
            "file:///etc/passwd",
        ] {
            assert!(SessionBridge::new(url, DEFAULT_TIMEOUT).is_err(), "{url}");
        }
    }
}
