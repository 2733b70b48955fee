//! The `tiledesk-auth` service: authenticates a site's visitor and mints the Tiledesk token that signs them
//! into the chat widget.
//!
//! [`app`] builds the HTTP router used by the binary and by the tests; [`cli`] holds the command line.

pub mod api_key;
mod body;
pub mod cli;
pub mod device;
pub mod error;
mod log;
pub mod login_session;
pub mod module;
pub mod oidc;
pub mod passwords;
pub mod proxy;
pub mod readiness;
mod routes;
pub mod serve;
pub mod session;
pub mod shared_throttle;
pub mod throttle;
mod under_way;
pub mod users;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tiledesk_jwt::TokenIssuer;
use tower::Service;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use api_key::ApiKey;
pub use error::ApiError;
pub use passwords::Passwords;
pub use throttle::{Admission, LoginThrottle, ThrottlePolicy};
pub use users::UserStore;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything the handlers share. Cheap to clone: every field is reference-counted.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Mints the tokens; replaced when the secret file is rotated (SIGHUP).
    pub issuer: Reloadable<TokenIssuer>,
    /// The secret the last rotation replaced: login sessions signed with it are still taken (and signed anew), so
    /// that rotating the secret does not sign every visitor out (see [`login_session`]).
    pub retired_secret: Reloadable<Option<tiledesk_jwt::ProjectSecret>>,
    /// The site's users, for `POST /auth`.
    pub users: UserStore,
    /// Hashes and verifies passwords off the async threads.
    pub passwords: Passwords,
    /// Slows down password guessing.
    pub throttle: Arc<LoginThrottle>,
    /// The key a site backend presents to `POST /tokens`; without one the route does not exist. Replaced when its
    /// file is rotated (SIGHUP).
    pub api_key: Option<Reloadable<ApiKey>>,
    /// Origins allowed to call the service from a browser; empty means same-origin only.
    pub allowed_origins: Arc<[HeaderValue]>,
    /// A directory of static files served at `/` (the site itself, same-origin with `/auth`); none by default.
    pub static_dir: Option<Arc<std::path::Path>>,
    /// The `Content-Security-Policy` of `static_dir`'s files (`serve --static-csp`); none sends none.
    pub static_csp: Option<HeaderValue>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (see [`proxy`]); none by default.
    pub trusted_proxies: Arc<[proxy::TrustedProxy]>,
    /// The site's own login, asked for a `POST /auth` without credentials (see [`session`]); none by default.
    pub session: Option<Arc<session::SessionBridge>>,
    /// The site's identity provider, whose ID tokens `POST /auth` takes as `Authorization: Bearer` (see [`oidc`]);
    /// none by default.
    pub oidc: Option<Arc<oidc::OidcBridge>>,
    /// Whether the device cookie is `Secure` (see [`device`]).
    pub cookie_security: device::CookieSecurity,
    /// The browser module served under `/tiledesk-auth/` ([`module::BrowserModule::embedded`] for the one this
    /// binary carries); none answers those paths with a 404 that says how to build it.
    pub module: Option<Arc<module::BrowserModule>>,
    /// What `GET /readyz` last found (see [`readiness`]).
    pub readiness: Arc<readiness::Readiness>,
}

/// The visitor a login bridge vouches for ([`session`], [`oidc`]): the claims to mint, and what the answer tells the
/// page.
#[derive(Debug)]
pub struct Visitor {
    /// The claims, checked.
    pub claims: tiledesk_jwt::VisitorClaims,
    /// The user's id on the site (the session's `id`, the ID token's `sub`).
    pub id: String,
    /// The user's email, when it is known (and, from an ID token, verified).
    pub email: Option<String>,
    /// The user's first name, when known.
    pub firstname: Option<String>,
    /// The user's last name, when known.
    pub lastname: Option<String>,
    /// The latest expiry (Unix seconds) of a token minted for them: the end of the proof they came with (an ID
    /// token's `exp`), when it has one.
    pub not_after: Option<u64>,
}

impl Visitor {
    /// The same visitor with their id in the namespace `prefix` (`--session-id-prefix`, `--oidc-id-prefix`).
    pub(crate) fn with_id_prefix(mut self, prefix: &str) -> Result<Self, tiledesk_jwt::Error> {
        if !prefix.is_empty() {
            self.claims = self.claims.with_id_prefix(prefix)?;
            self.id.insert_str(0, prefix);
        }
        Ok(self)
    }
}

/// Whether `prefix` may begin the ids of a way in (`--session-id-prefix`, `--oidc-id-prefix`): at most 32 ASCII
/// letters, digits, `.`, `_`, `:` or `-`.
pub fn id_prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.len() > 32 {
        Some("it is longer than 32 characters")
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        Some("only ASCII letters, digits, `.`, `_`, `:` and `-` may be used")
    } else {
        None
    }
}

/// What both login bridges' HTTP clients have: no redirect followed (a redirect would take the request, and the
/// visitor's headers, elsewhere), `timeout` for connecting and for the whole exchange, this service's user agent.
pub(crate) fn outbound_client(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("tiledesk-auth/", env!("CARGO_PKG_VERSION")))
}

/// The state the router holds: one reference count per request instead of one per field (`State` clones it).
pub(crate) type Shared = Arc<AppState>;

/// A value replaced whole while the service runs (the issuer when the secret file is rotated, the API key when
/// its file is). Readers take a snapshot: a request in flight finishes with the value it started with. Reading
/// takes no lock and, mostly, no shared reference count (`arc-swap`): every request reads the issuer or the key.
pub struct Reloadable<T>(Arc<arc_swap::ArcSwap<T>>);

impl<T> Reloadable<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Self {
        Self(Arc::new(arc_swap::ArcSwap::from_pointee(value)))
    }

    /// The current value, for the length of a request.
    pub fn get(&self) -> arc_swap::Guard<Arc<T>> {
        self.0.load()
    }

    /// Replaces the value for every request that starts from now on.
    pub fn replace(&self, value: T) {
        self.0.store(Arc::new(value));
    }
}

impl<T> Clone for Reloadable<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Reloadable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// The module's files are public: whatever the CORS layer answered a listed origin (that origin, with
/// credentials), they are `Access-Control-Allow-Origin: *`, without credentials.
fn public_file(mut response: Response) -> Response {
    if response.extensions().get::<module::PublicFile>().is_some() {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
    }
    response
}

/// What [`app`] builds and [`serve::serve`] serves: an HTTP service that answers every request (its errors are
/// answers too), cheap to clone.
pub trait HttpService:
    Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> HttpService for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The whole HTTP service: `POST /auth`, `POST /tokens` (with an API key configured), `GET /healthz`, and the
/// static files of `static_dir` for every other `GET`. Hyper clones it for every request.
///
/// What applies to every answer (CORS, `nosniff`, the trace span) wraps the router from outside, as axum's guide to
/// middleware shows for middleware that runs around routing: a layer added with `Router::layer` wraps each route
/// in one more boxed service, and every request clones every box. `Cache-Control: no-store` is set by the answers
/// that need it (every answer carrying a token, and every [`ApiError`]) rather than by a layer per route.
pub fn app(state: AppState) -> impl HttpService {
    let mut router = Router::new()
        .merge(routes::health::router())
        .merge(routes::auth::router())
        .route("/tiledesk-auth/{*file}", axum::routing::get(module::serve_file));
    if state.api_key.is_some() {
        router = router.merge(routes::tokens::router());
    }
    let cors = (!state.allowed_origins.is_empty()).then(|| {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.allowed_origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            // The session bridge needs the visitor's cookies from a page of another origin (a listed one only:
            // never `*` with credentials).
            .allow_credentials({
                let listed = Arc::clone(&state.allowed_origins);
                AllowCredentials::predicate(move |origin, _| listed.contains(origin))
            })
            .max_age(std::time::Duration::from_secs(600))
    });
    router = match &state.static_dir {
        // ServeDir refuses paths that leave the directory (`..`) and answers 404 for missing files; the guard
        // refuses dotfiles and links that lead out of the directory.
        Some(dir) => router.fallback_service(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    routes::site::Site::new(dir, state.static_csp.clone()),
                    routes::site::only_the_site,
                ))
                .map_response(axum::response::IntoResponse::into_response)
                .service(ServeDir::new(dir).append_index_html_on_directories(true)),
        ),
        None => router.fallback(routes::not_found),
    };
    let router = router
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(Arc::new(state));
    // A span and a log line per request, at debug level: only when that level is on, since the layer reads the
    // clock four times per answer and wraps its body whether or not anything is logged.
    let trace = tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG).then(|| {
        tower::ServiceBuilder::new()
            .map_response(|response: Response<_>| response.map(Body::new))
            .layer(TraceLayer::new_for_http())
    });
    tower::ServiceBuilder::new()
        .option_layer(trace)
        .map_response(public_file)
        .option_layer(cors)
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .service(router)
}
