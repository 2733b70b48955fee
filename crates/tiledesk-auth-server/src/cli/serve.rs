//! `tiledesk-auth serve`: the configuration checked in full, the listener, SIGHUP reloads and shutdown signals.

#![allow(clippy::print_stdout)] // a command-line tool's output is its interface

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use clap::Args;
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer};
use tokio::net::TcpListener;

use crate::guard::passwords::Passwords;
use crate::guard::shared_throttle::SharedCounts;
use crate::guard::throttle::{LoginThrottle, ThrottlePolicy};
use crate::http::accept::defaults;
use crate::identity::api_key::ApiKey;
use crate::identity::api_key::ApiKeyError;
use crate::identity::oidc::OidcBridge;
use crate::identity::session::{ProbeError, SessionBridge};
use crate::identity::users::{UserStore, redacted};
use crate::service::{BuildError, Service};
use crate::state::{AppState, Reloadable};

use super::{DatabaseArgs, ProjectArgs, Timeout, parse_ttl};

/// `tiledesk-auth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file holding any of these settings (`docs/tiledesk-auth.toml`); flags and the environment override it.
    #[arg(long, env = "TILEDESK_AUTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on.
    #[arg(long, env = "TILEDESK_AUTH_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// Serve Prometheus metrics (`GET /metrics`) on this address, a listener of its own (never the public port);
    /// off by default.
    #[arg(long, env = "TILEDESK_AUTH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub project: ProjectArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    /// Token lifetime (e.g. 30m, 1h; at most 24h). The token is the widget's chat session: when it
    /// expires the widget must be signed in again.
    #[arg(long, env = "TILEDESK_TOKEN_TTL", default_value = "1h", value_parser = parse_ttl)]
    pub token_ttl: Duration,
    /// A browser origin allowed to call the service cross-origin, such as <https://www.example.com>.
    /// Repeat for several (comma-separated in the environment); none means same-origin only.
    #[arg(long = "allowed-origin", env = "TILEDESK_AUTH_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub allowed_origins: Vec<HeaderValue>,
    /// The API key for POST /tokens (at least 16 characters). Without one, the route does not exist. Prefer
    /// --api-key-file: a flag is visible to other local users.
    #[arg(
        long,
        env = "TILEDESK_API_KEY",
        hide_env_values = true,
        conflicts_with = "api_key_file"
    )]
    pub api_key: Option<ApiKey>,
    /// A file holding the API key for POST /tokens: one key per line (blank lines and `#` comments
    /// skipped); several keys are all accepted, which lets a key rotate with an overlap.
    #[arg(long, env = "TILEDESK_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// A directory of static files to serve at / (your site, same-origin with /auth: no CORS needed).
    #[arg(long, env = "TILEDESK_AUTH_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// The Content-Security-Policy sent with --static-dir's files. The default keeps other sites from framing the
    /// pages (clickjacking); give your site's whole policy here, or an empty value for none.
    #[arg(
        long,
        env = "TILEDESK_AUTH_STATIC_CSP",
        default_value = "frame-ancestors 'self'"
    )]
    pub static_csp: String,
    /// Sign in a `POST /auth` that carries no credentials as whoever the site's own session says: the service asks
    /// `GET <URL>` with the visitor's Cookie header (and Authorization, with --session-forward-authorization), and
    /// the site answers 200 with
    /// `{"id", "email"?, "firstname"?, "lastname"?, "attributes"?}` or 401/403 (README: "Bring your own login").
    #[arg(long, env = "TILEDESK_AUTH_SESSION_URL")]
    pub session_url: Option<String>,
    /// How long the site has to answer the session check.
    #[arg(long, env = "TILEDESK_AUTH_SESSION_TIMEOUT", default_value_t = Timeout(crate::identity::session::DEFAULT_TIMEOUT))]
    pub session_timeout: Timeout,
    /// Forward the visitor's Authorization header to --session-url too (for a site whose "who am I" URL reads a
    /// bearer token); the site's 401s and 403s are then counted like failed logins on the visitor's address.
    #[arg(long, env = "TILEDESK_AUTH_SESSION_FORWARD_AUTHORIZATION")]
    pub session_forward_authorization: bool,
    /// Put before the user ids the session URL answers (e.g. `site:`), so that they can never be the ids of another
    /// way in (a user of the password store, an OpenID Connect subject, a `POST /tokens` id): one chat identity each.
    #[arg(long, env = "TILEDESK_AUTH_SESSION_ID_PREFIX", default_value = "")]
    pub session_id_prefix: String,
    /// Put before each ID token's subject (e.g. `oidc:`), for the same reason as --session-id-prefix.
    #[arg(long, env = "TILEDESK_AUTH_OIDC_ID_PREFIX", default_value = "")]
    pub oidc_id_prefix: String,
    /// Sign in a `POST /auth` that carries `Authorization: Bearer <ID token>` as the token's subject, when this
    /// OpenID Connect issuer signed it for --oidc-audience (an https URL; its discovery document and keys are
    /// fetched from it).
    #[arg(long, env = "TILEDESK_AUTH_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The site's client id at the OpenID Connect provider: the `aud` its ID tokens must carry.
    #[arg(long, env = "TILEDESK_AUTH_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// Count failed logins in this Redis (`redis://[:PASSWORD@]HOST[:PORT][/DB]`, `rediss://` for TLS), shared by
    /// every replica, so a guesser spreading over N replicas gets the budget of one. Without it each replica counts
    /// its own. When Redis does not answer, each replica counts on its own until it does (README: "Production").
    #[arg(long, env = "TILEDESK_AUTH_THROTTLE", value_name = "URL")]
    pub throttle: Option<String>,
    /// Time a client has to send a request's headers, and then its body (e.g. 10s). Also the longest an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "TILEDESK_AUTH_READ_TIMEOUT", default_value_t = Timeout(defaults::READ_TIMEOUT))]
    pub read_timeout: Timeout,
    /// A reverse proxy (address or CIDR block, such as 10.0.0.0/8) whose X-Forwarded-For is believed, so that
    /// login throttling counts each visitor's own address. Repeat for several (comma-separated in the environment).
    #[arg(
        long = "trusted-proxy",
        env = "TILEDESK_AUTH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::http::proxy::TrustedProxy>,
    /// Whether the device cookie is Secure (then named `__Host-tdauth_device`): `auto` is Secure except for a
    /// loopback Host without --trusted-proxy (the demo, a developer's machine); `always` behind a proxy that is not
    /// listed and sends a loopback Host; `never` for plain HTTP on a test network only.
    #[arg(long, env = "TILEDESK_AUTH_COOKIE_SECURE", value_enum, default_value_t)]
    pub cookie_secure: crate::guard::device::CookieSecurity,
    /// Record every minted token in the user database's audit trail (`tiledesk-auth audit` reads it): `on` or `off`.
    #[arg(long, env = "TILEDESK_AUTH_AUDIT", value_enum, default_value_t = OnOff::On)]
    pub audit: OnOff,
    /// How long audit records are kept (`30d`, `12h`; `0s`: for ever); older ones are removed every hour.
    #[arg(long, env = "TILEDESK_AUTH_AUDIT_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    pub audit_retention: Duration,
    /// How an audit record holds the client's address: `plain`, `hashed` (a keyed hash: the same address gives the
    /// same value, which cannot be read back) or `none`.
    #[arg(long, env = "TILEDESK_AUTH_AUDIT_ADDRESS", value_enum, default_value_t)]
    pub audit_address: crate::audit::AddressRecord,
    /// Connections open at once; more wait in the kernel's accept queue. Lowered at start to what the open-file
    /// limit allows (the soft limit is first raised to the hard one).
    #[arg(long, env = "TILEDESK_AUTH_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Connections open at once from one client address (IPv6: one /64); more are closed unanswered. Trusted
    /// proxies are exempt.
    #[arg(long, env = "TILEDESK_AUTH_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = defaults::MAX_CONNECTIONS_PER_ADDRESS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_address: u32,
    /// Longest a connection may go without a byte of its answer being taken by the client (e.g. 10s).
    #[arg(long, env = "TILEDESK_AUTH_WRITE_TIMEOUT", default_value_t = Timeout(defaults::WRITE_TIMEOUT))]
    pub write_timeout: Timeout,
    /// Longest a request may take, from its headers to the last byte of its answer (e.g. 60s).
    #[arg(long, env = "TILEDESK_AUTH_REQUEST_TIMEOUT", default_value_t = Timeout(defaults::REQUEST_TIMEOUT))]
    pub request_timeout: Timeout,
    /// After SIGTERM or Ctrl-C, how long requests in flight have to finish before their connections are closed.
    #[arg(long, env = "TILEDESK_AUTH_SHUTDOWN_TIMEOUT", default_value_t = Timeout(defaults::SHUTDOWN_TIMEOUT))]
    pub shutdown_timeout: Timeout,
    /// Check the configuration and what it relies on (the user database, the session bridge's site), print what
    /// is enabled, and exit without serving: 0 when all is well, 1 otherwise.
    #[arg(long)]
    pub check: bool,
}

fn parse_origin(text: &str) -> Result<HeaderValue, String> {
    let text = text.trim();
    if text == "*" {
        return Err("`*` would let any site mint tokens for its visitors; list the origins".to_owned());
    }
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or("an origin starts with https:// or http://")?;
    if rest.is_empty() || rest.contains('/') || rest.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err("an origin is scheme://host[:port], with no path or trailing slash".to_owned());
    }
    HeaderValue::from_str(text).map_err(|e| e.to_string())
}

impl ServeArgs {
    fn api_key(&self) -> anyhow::Result<Option<ApiKey>> {
        Ok(match (&self.api_key, &self.api_key_file) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(path)) => Some(ApiKey::from_file(path)?),
            (None, None) => None,
        })
    }
}

/// The file of a `sqlite://` database URL (`None` for `:memory:` or another scheme).
fn database_file(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Whether `file` (which may not exist yet) lies inside the directory `dir`, links resolved.
fn inside(file: &Path, dir: &Path) -> bool {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    match (parent.canonicalize(), dir.canonicalize()) {
        (Ok(parent), Ok(dir)) => parent.starts_with(dir),
        _ => false,
    }
}

/// A feature turned on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// On.
    On,
    /// Off.
    Off,
}

/// Configuration is checked in full before the listener is bound.
pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (project, secret) = args.project.resolve()?;
    if let Some(metrics) = args.metrics_listen {
        if metrics.port() == args.listen.port() && args.listen.port() != 0 {
            bail!(
                "--metrics-listen {metrics} shares the port of --listen {}: metrics are never on the public port",
                args.listen
            );
        }
        crate::metrics::enable();
    }
    let api_key = args.api_key()?;
    if let Some(dir) = &args.static_dir {
        if !dir.is_dir() {
            bail!("the static directory {} does not exist", dir.display());
        }
        if let Some(db) = database_file(&args.database.database)
            && inside(&db, dir)
        {
            bail!(
                "the user database {} is inside --static-dir {}: it would be served to anyone; keep it out of the site",
                db.display(),
                dir.display()
            );
        }
    }
    let mut service = Service::builder(project.clone(), secret)
        .token_ttl(args.token_ttl)
        .passwords(Passwords::for_this_machine()?)
        .cookie_security(args.cookie_secure);
    if let Some(url) = &args.session_url {
        let bridge = SessionBridge::new(url, args.session_timeout.0)?
            .forwarding_authorization(args.session_forward_authorization)
            .with_id_prefix(&args.session_id_prefix)?;
        if bridge.sends_cookies_in_clear() {
            tracing::warn!(
                url = bridge.url(),
                "--session-url is plain http to another machine: visitors' session cookies cross the network unencrypted"
            );
        }
        service = service.session_bridge(bridge);
    }
    if let (Some(issuer), Some(audience)) = (&args.oidc_issuer, &args.oidc_audience) {
        service = service.oidc(
            OidcBridge::new(issuer, audience, crate::identity::oidc::DEFAULT_TIMEOUT)?
                .with_id_prefix(&args.oidc_id_prefix)?,
        );
    }
    let mut throttle = LoginThrottle::new(ThrottlePolicy::default());
    if let Some(url) = &args.throttle {
        throttle = throttle.with_shared(SharedCounts::new(url, project.as_str())?);
    }
    service = service.throttle(throttle);
    if let Some(key) = api_key {
        service = service.api_key(key);
    }
    for origin in args.allowed_origins {
        service = service.allowed_origin(origin);
    }
    for proxy in &args.trusted_proxies {
        service = service.trusted_proxy(*proxy);
    }
    if let Some(dir) = args.static_dir {
        service = service.static_dir(dir, Some(args.static_csp.clone()));
    }
    let users = UserStore::connect(&args.database.database)
        .await
        .with_context(|| {
            format!(
                "cannot open the user database {}",
                redacted(&args.database.database)
            )
        })?;
    if args.audit == OnOff::On {
        service = service.audit(crate::audit::AuditOptions {
            retention: (!args.audit_retention.is_zero()).then_some(args.audit_retention),
            address: args.audit_address,
        });
    }
    let service = match service.users(users.clone()).build().await {
        Ok(service) => service,
        Err(err @ BuildError::StaticCsp) => {
            users.close().await;
            bail!("--static-csp: {err}");
        }
        Err(err) => {
            users.close().await;
            return Err(err.into());
        }
    };
    let state = service.state().clone();
    if let (Some(bridge), false) = (&state.session, args.check) {
        // A session URL that signs anyone in would give every visitor one chat identity: never serve with it. A
        // site that does not answer now (deployed after this service) is no reason not to start.
        match bridge.probe().await {
            Ok(_) => {}
            Err(err @ ProbeError::SignsInAnyone { .. }) => {
                users.close().await;
                bail!("--session-url {}: {err}", bridge.url());
            }
            Err(ProbeError::Unanswered(err)) => tracing::warn!(
                url = bridge.url(),
                error = %err,
                "--session-url could not be checked at start: it must refuse a visitor without a session (401)"
            ),
        }
    }
    if args.check {
        let healthy = check(&state, &redacted(&args.database.database)).await;
        users.close().await;
        return Ok(if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let metrics = match args.metrics_listen {
        Some(address) => {
            let metrics = TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on --metrics-listen {address}"))?;
            tracing::info!("metrics on http://{}/metrics", metrics.local_addr()?);
            Some(tokio::spawn(crate::metrics::serve(metrics)))
        }
        None => None,
    };
    let current = state.issuer.get();
    tracing::info!(
        project = %current.project(),
        token_ttl_secs = current.ttl().as_secs(),
        tokens_route = state.api_key.is_some(),
        allowed_origins = state.allowed_origins.len(),
        trusted_proxies = state.trusted_proxies.len(),
        session_url = state.session.as_ref().map(|bridge| bridge.url()),
        oidc_issuer = state.oidc.as_ref().map(|bridge| bridge.issuer()),
        shared_throttle = state.throttle.shared().map(SharedCounts::url),
        read_timeout_ms = args.read_timeout.0.as_millis(),
        max_connections = args.max_connections,
        "tiledesk-auth listening on http://{}",
        listener.local_addr()?
    );
    let reload = Reload {
        project,
        ttl: args.token_ttl,
        secret_file: args.project.secret_file().map(Path::to_owned),
        api_key_file: args.api_key.is_none().then_some(args.api_key_file).flatten(),
        issuer: state.issuer.clone(),
        retired_secret: state.retired_secret.clone(),
        api_key: state.api_key.clone(),
    };
    #[cfg(unix)]
    let reloader = tokio::spawn(reload.on_sighup());
    #[cfg(not(unix))]
    drop(reload);
    let limits = crate::http::accept::Limits {
        read_timeout: args.read_timeout.0,
        write_timeout: args.write_timeout.0,
        request_timeout: args.request_timeout.0,
        max_connections: args.max_connections as usize,
        max_connections_per_address: args.max_connections_per_address as usize,
        trusted_proxies: Arc::clone(&state.trusted_proxies),
        shutdown_timeout: args.shutdown_timeout.0,
    };
    crate::http::accept::serve(listener, service.into_http_service(), limits, shutdown_signal()).await?;
    #[cfg(unix)]
    reloader.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    // Every token minted is in the trail before the database closes.
    if let Some(audit) = &state.audit {
        audit.close().await;
    }
    users.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// `serve --check`: what is enabled, one line each, and whether what it relies on answers as it should.
async fn check(state: &AppState, database: &str) -> bool {
    let mut healthy = true;
    let issuer = state.issuer.get();
    println!(
        "project       {} (tokens live {})",
        issuer.project(),
        humantime::format_duration(issuer.ttl())
    );
    match state.users.list().await {
        Ok(users) => println!(
            "POST /auth    password store {}: {} user(s)",
            database,
            users.len()
        ),
        Err(err) => {
            healthy = false;
            println!("POST /auth    password store {database}: FAILED: {err}");
        }
    }
    match &state.session {
        None => println!("              session bridge: off (no --session-url)"),
        Some(bridge) => {
            let verdict = bridge
                .probe()
                .await
                .map(|status| format!("ok: {status} to a visitor without a session"))
                .map_err(|err| err.to_string());
            match verdict {
                Ok(line) => println!("              session bridge {}: {line}", bridge.url()),
                Err(problem) => {
                    healthy = false;
                    println!("              session bridge {}: FAILED: {problem}", bridge.url());
                }
            }
        }
    }
    match &state.oidc {
        None => println!("              OpenID Connect: off (no --oidc-issuer)"),
        Some(bridge) => match bridge.check().await {
            Ok(keys) => println!(
                "              OpenID Connect {} for {}: ok: {keys} key(s) published",
                bridge.issuer(),
                bridge.audience()
            ),
            Err(err) => {
                healthy = false;
                println!("              OpenID Connect {}: FAILED: {err}", bridge.issuer());
            }
        },
    }
    match state.throttle.shared() {
        None => println!("throttle      this replica's own (no --throttle)"),
        Some(shared) => match shared.ping().await {
            Ok(()) => println!("throttle      shared in {}: ok", shared.url()),
            Err(err) => {
                healthy = false;
                println!("throttle      shared in {}: FAILED: {err}", shared.url());
            }
        },
    }
    match &state.api_key {
        Some(keys) => println!("POST /tokens  on ({} API key(s))", keys.get().count()),
        None => println!("POST /tokens  off (no API key)"),
    }
    match &state.module {
        Some(module) => println!(
            "module        inside: {} (`tiledesk-auth snippet` prints its tag)",
            module.path_of(crate::module::ENTRY)
        ),
        None => println!("module        not inside: built without it (`cargo xtask dist` builds it in)"),
    }
    match &state.static_dir {
        Some(dir) => println!("static site   {}", dir.display()),
        None => println!("static site   none"),
    }
    println!(
        "browsers      {}",
        if state.allowed_origins.is_empty() {
            "same origin only".to_owned()
        } else {
            let origins: Vec<_> = state
                .allowed_origins
                .iter()
                .filter_map(|o| o.to_str().ok())
                .collect();
            format!("same origin and {}", origins.join(", "))
        }
    );
    println!(
        "{}",
        if healthy {
            "all well"
        } else {
            "NOT well: see FAILED above"
        }
    );
    healthy
}

/// Re-reads the secret file and the API key file on SIGHUP: rotation without a restart. New requests use the new
/// values; requests in flight finish with the old. A file that cannot be read, or holds an unusable value, is
/// logged and the previous value kept.
struct Reload {
    project: ProjectId,
    ttl: Duration,
    secret_file: Option<PathBuf>,
    api_key_file: Option<PathBuf>,
    issuer: Reloadable<TokenIssuer>,
    retired_secret: Reloadable<Option<ProjectSecret>>,
    api_key: Option<Reloadable<ApiKey>>,
}

impl Reload {
    #[cfg(unix)]
    async fn on_sighup(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP: rotation needs a restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            self.reload();
        }
    }

    fn reload(&self) {
        match &self.secret_file {
            Some(path) => {
                let in_use = self.issuer.get().secret().byte_len();
                let issuer = ProjectSecret::from_file(path)
                    .map_err(anyhow::Error::from)
                    .and_then(|secret| {
                        // Tiledesk's secrets all have one length: a shorter one is most likely a file caught while
                        // it was being written in place.
                        if secret.byte_len() < in_use {
                            bail!(
                                "the new secret is shorter than the one in use ({} < {in_use} bytes): a file read \
                                 while it was being written? Replace it atomically (write a new file, rename it \
                                 over the old one); to move to a shorter secret, restart the service",
                                secret.byte_len()
                            );
                        }
                        Ok(TokenIssuer::new(self.project.clone(), secret).with_ttl(self.ttl)?)
                    });
                match issuer {
                    Ok(issuer) => {
                        let retired = self.issuer.get().secret().clone();
                        self.issuer.replace(issuer);
                        self.retired_secret.replace(Some(retired));
                        crate::metrics::metrics().secret_reloaded();
                        tracing::info!(file = %path.display(), "project secret reloaded");
                    }
                    Err(err) => {
                        tracing::error!(
                            error = format!("{err:#}"),
                            "project secret NOT reloaded: keeping the previous one"
                        );
                    }
                }
            }
            None => tracing::warn!("SIGHUP: the secret was not given as a file; nothing to reload"),
        }
        if let (Some(path), Some(current)) = (&self.api_key_file, &self.api_key) {
            match ApiKey::from_file(path) {
                Ok(key) => {
                    let keys = key.count();
                    current.replace(key);
                    tracing::info!(file = %path.display(), keys, "API key reloaded");
                }
                // Emptying the file is how an operator revokes the keys: honour it, loudly.
                Err(ApiKeyError::NoKey { path }) => {
                    current.replace(ApiKey::revoked());
                    tracing::warn!(
                        file = %path.display(),
                        "the API key file holds no key: every API key revoked; POST /tokens refuses every request \
                         until a key is added and the file reloaded"
                    );
                }
                Err(err) => tracing::error!(%err, "API key NOT reloaded: keeping the previous one"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_parsing() {
        assert!(parse_origin("https://www.example.com").is_ok());
        assert!(parse_origin("http://localhost:8080").is_ok());
        for bad in [
            "*",
            "example.com",
            "https://example.com/",
            "https://a.com/path",
            "https://",
            "ftp://a.com",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
