//! Prometheus metrics (`serve --metrics-listen`), in the OpenMetrics text format, on a listener of their own: never
//! on the public port.
//!
//! Every label takes its values from a fixed set (a route, a status class, a way in, a reason, an upstream): no
//! label ever carries an email, a user id, an address or a token, so the series stay few and say nothing of anyone.
//! The counters live for the whole process (one set, whichever service in it counts), and cost an atomic add; the
//! per-request measures (route, status, latency) are taken only when metrics are served ([`enable`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A route, as the request metrics name it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values as Prometheus shows them
pub enum Route {
    /// `/auth`.
    auth,
    /// `/tokens`.
    tokens,
    /// `/healthz`.
    healthz,
    /// `/readyz`.
    readyz,
    /// `/tiledesk-auth/...`: the browser module's files.
    module,
    /// Anything else (the static site, unknown paths).
    other,
}

impl Route {
    /// The route a request path is counted under.
    pub fn of(path: &str) -> Self {
        match path {
            "/auth" => Self::auth,
            "/tokens" => Self::tokens,
            "/healthz" => Self::healthz,
            "/readyz" => Self::readyz,
            _ if path.starts_with("/tiledesk-auth/") => Self::module,
            _ => Self::other,
        }
    }
}

/// How a visitor came in, for the tokens minted (a metric's label, and the audit trail's `way`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue, serde::Serialize)]
#[allow(non_camel_case_types)]
pub enum Way {
    /// Email and password.
    password,
    /// A refresh of a password login, by its login-session cookie.
    login_session,
    /// The site's session (the session bridge, or a site's own login in library mode).
    session,
    /// An OpenID Connect ID token.
    oidc,
    /// A site backend with the API key (`POST /tokens`).
    api_key,
}

impl Way {
    /// Every way in, in the order of [`Way::code`].
    pub const ALL: [Self; 5] = [
        Self::password,
        Self::login_session,
        Self::session,
        Self::oidc,
        Self::api_key,
    ];

    /// Its name: the label's value, and the audit trail's `way`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::password => "password",
            Self::login_session => "login_session",
            Self::session => "session",
            Self::oidc => "oidc",
            Self::api_key => "api_key",
        }
    }

    /// The way of a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|way| way.as_str() == name)
    }

    /// Its place in [`Way::ALL`] (what the audit writer binds: a number costs the database no copy).
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// What the outside world answers slowly or wrongly.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Upstream {
    /// The site's session URL.
    session,
    /// The identity provider's discovery document and keys.
    oidc_keys,
}

/// A store the service depends on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Store {
    /// The user database (SQLite or PostgreSQL).
    database,
    /// Redis (`--throttle`).
    redis,
}

/// What a throttle refused.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Throttled {
    /// A login (password, or a session sign-in forwarding `Authorization`).
    login,
    /// A `POST /tokens` from an address that presented too many wrong keys.
    api_key,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    route: Route,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByRoute {
    route: Route,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByWay {
    way: Way,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByReason {
    /// The error code of the answer (`invalid_credentials`, `too_many_attempts`, `busy`, `auth_rejected`...): a
    /// fixed word per refusal.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByUpstream {
    upstream: Upstream,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByStore {
    store: Store,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByThrottle {
    kind: Throttled,
}

/// Every metric of the service.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<Request, Counter>,
    request_seconds: Family<ByRoute, Histogram, fn() -> Histogram>,
    tokens_minted: Family<ByWay, Counter>,
    logins_refused: Family<ByReason, Counter>,
    throttled: Family<ByThrottle, Counter>,
    upstream_seconds: Family<ByUpstream, Histogram, fn() -> Histogram>,
    upstream_errors: Family<ByUpstream, Counter>,
    store_errors: Family<ByStore, Counter>,
    secret_reloads: Counter,
    secret_reloaded_at: Gauge,
    audit_dropped: Counter,
}

fn latency() -> Histogram {
    // 0.5 ms .. 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

static METRICS: OnceLock<Metrics> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics {
        requests: Family::default(),
        request_seconds: Family::new_with_constructor(latency),
        tokens_minted: Family::default(),
        logins_refused: Family::default(),
        throttled: Family::default(),
        upstream_seconds: Family::new_with_constructor(latency),
        upstream_errors: Family::default(),
        store_errors: Family::default(),
        secret_reloads: Counter::default(),
        secret_reloaded_at: Gauge::default(),
        audit_dropped: Counter::default(),
    })
}

/// Turns on the per-request measures: from then on, [`crate::app`] builds services that time every request.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether metrics are served.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

impl Metrics {
    /// A request answered.
    pub fn request(&self, route: Route, status: u16, took: Duration) {
        let status = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests.get_or_create(&Request { route, status }).inc();
        self.request_seconds
            .get_or_create(&ByRoute { route })
            .observe(took.as_secs_f64());
    }

    /// A token minted for a visitor who came in this way.
    pub fn minted(&self, way: Way) {
        self.tokens_minted.get_or_create(&ByWay { way }).inc();
    }

    /// A `POST /auth` refused, by its error code.
    pub fn login_refused(&self, reason: &'static str) {
        self.logins_refused.get_or_create(&ByReason { reason }).inc();
    }

    /// A throttle said no.
    pub fn throttled(&self, kind: Throttled) {
        self.throttled.get_or_create(&ByThrottle { kind }).inc();
    }

    /// A call to the outside world, how long it took and whether it failed.
    pub fn upstream(&self, upstream: Upstream, took: Duration, failed: bool) {
        let labels = ByUpstream { upstream };
        self.upstream_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.upstream_errors.get_or_create(&labels).inc();
        }
    }

    /// The user database or Redis failed a call.
    pub fn store_error(&self, store: Store) {
        self.store_errors.get_or_create(&ByStore { store }).inc();
    }

    /// The secret was read again (`SIGHUP`) and is in use.
    pub fn secret_reloaded(&self) {
        self.secret_reloads.inc();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.secret_reloaded_at
            .set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// Audit records dropped because the writer's queue was full.
    pub fn audit_dropped(&self, count: u64) {
        self.audit_dropped.inc_by(count);
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("tiledesk_auth");
        registry.register(
            "http_requests",
            "Requests answered, by route and status class",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request (its headers), by route",
            self.request_seconds.clone(),
        );
        registry.register(
            "tokens_minted",
            "Visitor tokens minted, by the way the visitor came in",
            self.tokens_minted.clone(),
        );
        registry.register(
            "logins_refused",
            "POST /auth answered with an error, by its code",
            self.logins_refused.clone(),
        );
        registry.register("throttled", "Attempts a throttle refused", self.throttled.clone());
        registry.register(
            "upstream_duration_seconds",
            "Calls to the site's session URL and the identity provider",
            self.upstream_seconds.clone(),
        );
        registry.register(
            "upstream_errors",
            "Calls to the site's session URL and the identity provider that failed",
            self.upstream_errors.clone(),
        );
        registry.register(
            "store_errors",
            "Calls to the user database or Redis that failed",
            self.store_errors.clone(),
        );
        registry.register(
            "secret_reloads",
            "Times the secret was read again and put in use (SIGHUP)",
            self.secret_reloads.clone(),
        );
        registry.register(
            "secret_reloaded_timestamp_seconds",
            "When the secret was last read again (Unix seconds; 0: never)",
            self.secret_reloaded_at.clone(),
        );
        registry.register(
            "audit_dropped_records",
            "Audit records dropped because the writer's queue was full",
            self.audit_dropped.clone(),
        );
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                metrics().encode(),
            )
        }),
    );
    axum::serve(listener, router).await
}
