//! What every request shares: [`AppState`], and the values replaced while the service runs ([`Reloadable`]).

use std::sync::Arc;

use axum::http::HeaderValue;
use tiledesk_jwt::TokenIssuer;

use crate::guard::{device, passwords::Passwords, throttle::LoginThrottle};
use crate::http::proxy;
use crate::identity::{api_key::ApiKey, oidc, session, users::UserStore};
use crate::{module, readiness};

/// Everything the handlers share. Cheap to clone: every field is reference-counted.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Mints the tokens; replaced when the secret file is rotated (SIGHUP).
    pub issuer: Reloadable<TokenIssuer>,
    /// The secret the last rotation replaced: login sessions signed with it are still taken (and signed anew), so
    /// that rotating the secret does not sign every visitor out (see [`crate::identity::login_session`]).
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
    /// The site's own login in this process, when the service is mounted in the site's app (see
    /// [`crate::identity::site`]); none by default.
    pub site: Option<crate::identity::site::SiteLogins>,
    /// The site's identity provider, whose ID tokens `POST /auth` takes as `Authorization: Bearer` (see [`oidc`]);
    /// none by default.
    pub oidc: Option<Arc<oidc::OidcBridge>>,
    /// Whether the device cookie is `Secure` (see [`device`]).
    pub cookie_security: device::CookieSecurity,
    /// The browser module served under `/tiledesk-auth/` ([`module::BrowserModule::embedded`] for the one this
    /// binary carries); none answers those paths with a 404 that says how to build it.
    pub module: Option<Arc<module::BrowserModule>>,
    /// Where minted tokens are recorded (see [`crate::audit`]); none records nothing.
    pub audit: Option<crate::audit::AuditTrail>,
    /// What `GET /readyz` last found (see [`readiness`]).
    pub readiness: Arc<readiness::Readiness>,
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
