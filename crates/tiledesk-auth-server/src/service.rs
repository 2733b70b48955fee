//! The service as a library: [`Service::builder`] puts together what `tiledesk-auth serve` runs, for the binary and
//! for a Rust site that mounts it in its own axum app.
//!
//! ```no_run
//! use axum::Router;
//! use tiledesk_auth_server::Service;
//! use tiledesk_auth_server::identity::site::{SiteError, SiteLogin, SiteUser};
//! use tiledesk_jwt::{ProjectId, ProjectSecret};
//!
//! struct Shop;
//!
//! impl SiteLogin for Shop {
//!     async fn visitor(&self, request: &axum::http::request::Parts) -> Result<Option<SiteUser>, SiteError> {
//!         // Look the request's session up in the site's own store.
//!         Ok(request.extensions.get::<SiteUser>().cloned())
//!     }
//! }
//!
//! # async fn site() -> Result<(), Box<dyn std::error::Error>> {
//! let chat = Service::builder(
//!     ProjectId::new("64f0c0ffee0123456789abcd")?,
//!     ProjectSecret::new(&std::fs::read_to_string("/run/secrets/tiledesk")?)?,
//! )
//! .site_login(Shop)
//! .build()
//! .await?;
//! let app: Router = Router::new().nest("/chat-auth", chat.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // With the peer's address: the login throttle counts by it.
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer};

use crate::app::{HttpService, app, nestable};
use crate::audit::{AuditOptions, AuditTrail};
use crate::guard::device::CookieSecurity;
use crate::guard::passwords::Passwords;
use crate::guard::throttle::{LoginThrottle, ThrottlePolicy};
use crate::http::proxy::TrustedProxy;
use crate::identity::api_key::ApiKey;
use crate::identity::oidc::OidcBridge;
use crate::identity::session::SessionBridge;
use crate::identity::site::{SiteLogin, SiteLogins};
use crate::identity::users::{StoreError, UserStore};
use crate::module::BrowserModule;
use crate::state::{AppState, Reloadable};

/// The service, built: its routes for a site's app ([`Service::router`]), or the whole HTTP service the binary
/// serves ([`Service::into_http_service`]).
#[derive(Clone, Debug)]
pub struct Service {
    state: AppState,
}

/// Why a [`Service`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The token lifetime is outside what the token core allows.
    #[error("token lifetime: {0}")]
    TokenTtl(#[source] tiledesk_jwt::Error),
    /// The in-memory user store could not be opened.
    #[error("the user store: {0}")]
    Users(#[source] StoreError),
    /// The password hashing threads could not be started.
    #[error("the password hasher: {0}")]
    Passwords(String),
    /// Two ways to ask the site who is signed in: the session URL and the in-process login.
    #[error("a session URL and a site login were both given: the site's session is asked one way")]
    TwoSiteSessions,
    /// The static files' `Content-Security-Policy` is not a header value.
    #[error("the static files' Content-Security-Policy is not a header value")]
    StaticCsp,
}

impl Service {
    /// A service for the Tiledesk project `project`, minting with its shared `secret`. Everything else has the
    /// defaults of `tiledesk-auth serve`: tokens live an hour, no way in but what is added, an in-memory password
    /// store (empty) unless [`users`](ServiceBuilder::users) gives one, the browser module this crate embeds.
    pub fn builder(project: ProjectId, secret: ProjectSecret) -> ServiceBuilder {
        ServiceBuilder {
            project,
            secret,
            token_ttl: None,
            users: None,
            passwords: None,
            throttle: None,
            api_key: None,
            allowed_origins: Vec::new(),
            static_dir: None,
            static_csp: None,
            trusted_proxies: Vec::new(),
            session: None,
            site: None,
            oidc: None,
            cookie_security: CookieSecurity::default(),
            module: BrowserModule::embedded(),
            audit: None,
        }
    }

    /// The routes (`POST /auth`, `DELETE /auth`, `POST /tokens` with an API key, `GET /healthz`, `GET /readyz`, the
    /// browser module's files under `/tiledesk-auth/`) for a site to nest under a path of its own:
    /// `Router::new().nest("/chat-auth", service.router())`. Serve the site with
    /// `into_make_service_with_connect_info::<SocketAddr>()`: without the peer's address, logins are throttled as if
    /// every visitor came from one.
    pub fn router(&self) -> Router {
        nestable(self.state.clone())
    }

    /// The whole HTTP service, as `tiledesk-auth serve` runs it in its own accept loop
    /// ([`crate::http::accept::serve`]).
    pub fn into_http_service(self) -> impl HttpService {
        app(self.state)
    }

    /// What every request shares (the issuer, to replace when the secret rotates; the user store...).
    pub fn state(&self) -> &AppState {
        &self.state
    }
}

/// Puts a [`Service`] together: from [`Service::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ServiceBuilder {
    project: ProjectId,
    secret: ProjectSecret,
    token_ttl: Option<Duration>,
    users: Option<UserStore>,
    passwords: Option<Passwords>,
    throttle: Option<LoginThrottle>,
    api_key: Option<ApiKey>,
    allowed_origins: Vec<HeaderValue>,
    static_dir: Option<std::path::PathBuf>,
    static_csp: Option<String>,
    trusted_proxies: Vec<TrustedProxy>,
    session: Option<SessionBridge>,
    site: Option<SiteLogins>,
    oidc: Option<OidcBridge>,
    cookie_security: CookieSecurity,
    module: Option<Arc<BrowserModule>>,
    audit: Option<AuditOptions>,
}

impl ServiceBuilder {
    /// Records every minted token in the user store's audit trail (see [`crate::audit`]); off by default in library
    /// mode, on in `serve` unless `--audit off`. Once the server has stopped, [`crate::audit::AuditTrail::close`]
    /// (on `state().audit`) writes what is still queued.
    pub fn audit(mut self, options: AuditOptions) -> Self {
        self.audit = Some(options);
        self
    }

    /// How long a minted token lives (an hour by default).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.token_ttl = Some(ttl);
        self
    }

    /// The password store `POST /auth` with an email and a password checks (see [`UserStore::connect`]).
    pub fn users(mut self, users: UserStore) -> Self {
        self.users = Some(users);
        self
    }

    /// The password hashing threads (one per core by default).
    pub fn passwords(mut self, passwords: Passwords) -> Self {
        self.passwords = Some(passwords);
        self
    }

    /// The login throttle (its defaults, counted in this process, by default).
    pub fn throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// The key a site backend presents to `POST /tokens`; without one that route does not exist.
    pub fn api_key(mut self, key: ApiKey) -> Self {
        self.api_key = Some(key);
        self
    }

    /// An origin whose pages may call the service from a browser (CORS, with credentials); none: same-origin only.
    pub fn allowed_origin(mut self, origin: HeaderValue) -> Self {
        self.allowed_origins.push(origin);
        self
    }

    /// A directory of static files served for every other `GET`, with this `Content-Security-Policy` (none sends
    /// none): what `serve --static-dir` serves.
    pub fn static_dir(mut self, dir: impl Into<std::path::PathBuf>, csp: Option<String>) -> Self {
        self.static_dir = Some(dir.into());
        self.static_csp = csp;
        self
    }

    /// A reverse proxy whose `X-Forwarded-For` names the visitor.
    pub fn trusted_proxy(mut self, proxy: TrustedProxy) -> Self {
        self.trusted_proxies.push(proxy);
        self
    }

    /// The site's "who is signed in" URL, asked with the visitor's cookies (see [`crate::identity::session`]).
    pub fn session_bridge(mut self, bridge: SessionBridge) -> Self {
        self.session = Some(bridge);
        self
    }

    /// The site's own login, in this process (see [`crate::identity::site`]): `POST /auth` without credentials
    /// signs in whoever it says.
    pub fn site_login(mut self, login: impl SiteLogin) -> Self {
        self.site = Some(SiteLogins::new(login));
        self
    }

    /// The site's identity provider, whose ID tokens sign visitors in (see [`crate::identity::oidc`]).
    pub fn oidc(mut self, bridge: OidcBridge) -> Self {
        self.oidc = Some(bridge);
        self
    }

    /// Whether the cookies this service sets are `Secure` ([`CookieSecurity::Auto`] by default).
    pub fn cookie_security(mut self, security: CookieSecurity) -> Self {
        self.cookie_security = security;
        self
    }

    /// The browser module served under `/tiledesk-auth/`; none answers those paths with a 404 that says how to
    /// build it. By default, the one this crate embeds, if it was built with one.
    pub fn module(mut self, module: Option<Arc<BrowserModule>>) -> Self {
        self.module = module;
        self
    }

    /// The service; an error for settings that cannot work together.
    pub async fn build(self) -> Result<Service, BuildError> {
        if self.session.is_some() && self.site.is_some() {
            return Err(BuildError::TwoSiteSessions);
        }
        let audit_secret = self.secret.clone();
        let mut issuer = TokenIssuer::new(self.project, self.secret);
        if let Some(ttl) = self.token_ttl {
            issuer = issuer.with_ttl(ttl).map_err(BuildError::TokenTtl)?;
        }
        let users = match self.users {
            Some(users) => users,
            None => UserStore::connect("sqlite::memory:")
                .await
                .map_err(BuildError::Users)?,
        };
        let passwords = match self.passwords {
            Some(passwords) => passwords,
            None => Passwords::for_this_machine().map_err(|err| BuildError::Passwords(err.to_string()))?,
        };
        let static_csp = self
            .static_csp
            .filter(|csp| !csp.trim().is_empty())
            .map(|csp| HeaderValue::from_str(csp.trim()).map_err(|_| BuildError::StaticCsp))
            .transpose()?;
        let audit = self
            .audit
            .map(|options| AuditTrail::start(users.clone(), &options, &audit_secret));
        Ok(Service {
            state: AppState {
                issuer: Reloadable::new(issuer),
                retired_secret: Reloadable::new(None),
                users,
                passwords,
                throttle: Arc::new(
                    self.throttle
                        .unwrap_or_else(|| LoginThrottle::new(ThrottlePolicy::default())),
                ),
                api_key: self.api_key.map(Reloadable::new),
                allowed_origins: self.allowed_origins.into(),
                static_dir: self.static_dir.map(Into::into),
                static_csp,
                trusted_proxies: self.trusted_proxies.into(),
                session: self.session.map(Arc::new),
                site: self.site,
                oidc: self.oidc.map(Arc::new),
                cookie_security: self.cookie_security,
                module: self.module,
                audit,
                readiness: Arc::default(),
            },
        })
    }
}
