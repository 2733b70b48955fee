//! The `tiledesk-auth` command line: `serve`, `users ...`, `token`, `check-token`.
//!
//! Parsed once in `main`; nothing else reads the environment.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use tiledesk_jwt::{MAX_TOKEN_TTL, ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::api_key::ApiKeyError;
use crate::passwords::{MAX_PASSWORD_LEN, hash_blocking};
use crate::users::{NewUser, UserStore};
use crate::{ApiKey, AppState, LoginThrottle, Passwords, Reloadable, ThrottlePolicy};

/// Signs a site's logged-in users into the Tiledesk chat widget with verified tokens.
#[derive(Debug, Parser)]
#[command(name = "tiledesk-auth", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (POST /auth, POST /tokens, GET /healthz).
    Serve(ServeArgs),
    /// Manage the site users who sign in through POST /auth.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Mint a token for a user id and print it (`JWT ...`).
    Token(TokenArgs),
    /// Check a token against Tiledesk's rules; exit 1 when Tiledesk would reject it or it is dangerous.
    CheckToken(CheckTokenArgs),
}

/// The Tiledesk project and its shared secret.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The Tiledesk project id (dashboard: Settings > Project).
    #[arg(long, env = "TILEDESK_PROJECT_ID")]
    pub project_id: Option<ProjectId>,
    /// The project's shared secret. Prefer --secret-file: a flag is visible to other local users.
    #[arg(
        long,
        env = "TILEDESK_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file"
    )]
    pub secret: Option<SecretArg>,
    /// A file holding the project's shared secret (a trailing newline is ignored).
    #[arg(long, env = "TILEDESK_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
}

/// The secret as given on the command line or in `TILEDESK_SECRET`, checked by [`ProjectArgs::resolve`]: were clap
/// to check it, its error would quote the refused value, the secret itself, on stderr.
#[derive(Clone)]
pub struct SecretArg(zeroize::Zeroizing<String>);

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(zeroize::Zeroizing::new(s.to_owned())))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ProjectArgs {
    /// The project id and secret, or one clear line saying which is missing.
    pub fn resolve(&self) -> anyhow::Result<(ProjectId, ProjectSecret)> {
        let Some(project) = self.project_id.clone() else {
            bail!("no Tiledesk project id: set TILEDESK_PROJECT_ID or pass --project-id");
        };
        let secret = match (&self.secret, &self.secret_file) {
            (Some(SecretArg(secret)), _) => ProjectSecret::new(secret)?,
            (None, Some(path)) => ProjectSecret::from_file(path)?,
            (None, None) => bail!(
                "no Tiledesk project secret: set TILEDESK_SECRET_FILE (or TILEDESK_SECRET), or pass --secret-file"
            ),
        };
        Ok((project, secret))
    }
}

/// Where the users live.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The user database; created with its schema on first run.
    #[arg(
        long,
        env = "TILEDESK_AUTH_DATABASE",
        default_value = "sqlite://tiledesk-auth.db"
    )]
    pub database: String,
}

/// `tiledesk-auth serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "TILEDESK_AUTH_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
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
    /// The API key for POST /tokens (at least 16 characters). Without one, the route does not exist.
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
    /// Time a client has to send a request's headers, and then its body (e.g. 10s). Also the longest an idle
    /// keep-alive connection stays open.
    #[arg(long, env = "TILEDESK_AUTH_READ_TIMEOUT", default_value = "10s", value_parser = parse_read_timeout)]
    pub read_timeout: Duration,
    /// A reverse proxy (address or CIDR block, such as 10.0.0.0/8) whose X-Forwarded-For is believed, so that
    /// login throttling counts each visitor's own address. Repeat for several (comma-separated in the environment).
    #[arg(
        long = "trusted-proxy",
        env = "TILEDESK_AUTH_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<crate::proxy::TrustedProxy>,
    /// Connections open at once; more wait in the kernel's accept queue. Lowered at start to what the open-file
    /// limit allows (the soft limit is first raised to the hard one).
    #[arg(long, env = "TILEDESK_AUTH_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Connections open at once from one client address (IPv6: one /64); more are closed unanswered. Trusted
    /// proxies are exempt.
    #[arg(long, env = "TILEDESK_AUTH_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_address: u32,
    /// Longest a connection may go without a byte of its answer being taken by the client (e.g. 10s).
    #[arg(long, env = "TILEDESK_AUTH_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_read_timeout)]
    pub write_timeout: Duration,
    /// Longest a request may take, from its headers to the last byte of its answer (e.g. 60s).
    #[arg(long, env = "TILEDESK_AUTH_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_read_timeout)]
    pub request_timeout: Duration,
    /// After SIGTERM or Ctrl-C, how long requests in flight have to finish before their connections are closed.
    #[arg(long, env = "TILEDESK_AUTH_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_read_timeout)]
    pub shutdown_timeout: Duration,
}

/// `tiledesk-auth users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// The user's email, the login name.
        #[arg(long)]
        email: String,
        /// First name, shown to agents.
        #[arg(long)]
        first_name: Option<String>,
        /// Last name, shown to agents.
        #[arg(long)]
        last_name: Option<String>,
        /// An attribute passed to Tiledesk as `attributes.KEY` (repeatable).
        #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_attribute)]
        attributes: Vec<(String, String)>,
        /// Read the password from standard input (required: a password never goes on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List the users.
    List {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user, by email or id.
    Remove {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// The user's email or id.
        user: String,
    },
    /// Set a user's password, read from standard input.
    SetPassword {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// The user's email or id.
        user: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Import users from a CSV file (header: email,password,first_name,last_name, other columns become
    /// attributes) or JSON lines ({"email","password","firstname","lastname","attributes"}). All or nothing.
    Import {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// The file; `.csv` is read as CSV, anything else as JSON lines.
        file: PathBuf,
    },
}

/// `tiledesk-auth token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub project: ProjectArgs,
    /// The visitor's id in the site's own user system.
    #[arg(long)]
    pub user_id: String,
    /// The visitor's email.
    #[arg(long)]
    pub email: Option<String>,
    /// First name.
    #[arg(long)]
    pub first_name: Option<String>,
    /// Last name.
    #[arg(long)]
    pub last_name: Option<String>,
    /// An attribute, as KEY=VALUE (repeatable).
    #[arg(long = "attribute", value_name = "KEY=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Token lifetime (at most 24h).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// Use the user id as `_id` verbatim, without the `<project id>_` prefix.
    #[arg(long)]
    pub no_project_prefix: bool,
}

/// `tiledesk-auth check-token`.
#[derive(Debug, Args)]
pub struct CheckTokenArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub project: ProjectArgs,
    /// The token as given to the widget (`JWT ...`), or `-` to read it from standard input.
    pub token: String,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30m, 1h, 90s)"))?;
    if ttl < Duration::from_secs(1) || ttl > MAX_TOKEN_TTL {
        return Err("must be between 1s and 24h".to_owned());
    }
    Ok(ttl)
}

fn parse_read_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
        return Err("must be between 100ms and 5m".to_owned());
    }
    Ok(timeout)
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

fn parse_attribute(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    if let Some(name) = tiledesk_jwt::reserved_claim(key) {
        return Err(format!("`{name}` is a reserved claim"));
    }
    Ok((key.to_owned(), value.to_owned()))
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

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
        Command::Users(command) => users(command).await.map(|()| ExitCode::SUCCESS),
        Command::Token(args) => token(&args).map(|()| ExitCode::SUCCESS),
        Command::CheckToken(args) => check_token(&args),
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

/// Configuration is checked in full before the listener is bound.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (project, secret) = args.project.resolve()?;
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
    let issuer = TokenIssuer::new(project.clone(), secret).with_ttl(args.token_ttl)?;
    let users = UserStore::connect(&args.database.database)
        .await
        .with_context(|| format!("cannot open the user database {}", args.database.database))?;
    let state = AppState {
        issuer: Reloadable::new(issuer),
        users: users.clone(),
        passwords: Passwords::for_this_machine()?,
        throttle: Arc::new(LoginThrottle::new(ThrottlePolicy::default())),
        api_key: api_key.map(Reloadable::new),
        allowed_origins: args.allowed_origins.into(),
        static_dir: args.static_dir.map(Into::into),
        trusted_proxies: args.trusted_proxies.clone().into(),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let current = state.issuer.get();
    tracing::info!(
        project = %current.project(),
        token_ttl_secs = current.ttl().as_secs(),
        tokens_route = state.api_key.is_some(),
        allowed_origins = state.allowed_origins.len(),
        trusted_proxies = state.trusted_proxies.len(),
        read_timeout_ms = args.read_timeout.as_millis(),
        max_connections = args.max_connections,
        "tiledesk-auth listening on http://{}",
        listener.local_addr()?
    );
    let reload = Reload {
        project,
        ttl: args.token_ttl,
        secret_file: args
            .project
            .secret
            .is_none()
            .then_some(args.project.secret_file)
            .flatten(),
        api_key_file: args.api_key.is_none().then_some(args.api_key_file).flatten(),
        issuer: state.issuer.clone(),
        api_key: state.api_key.clone(),
    };
    #[cfg(unix)]
    let reloader = tokio::spawn(reload.on_sighup());
    #[cfg(not(unix))]
    drop(reload);
    let limits = crate::serve::Limits {
        read_timeout: args.read_timeout,
        write_timeout: args.write_timeout,
        request_timeout: args.request_timeout,
        max_connections: args.max_connections as usize,
        max_connections_per_address: args.max_connections_per_address as usize,
        trusted_proxies: Arc::clone(&state.trusted_proxies),
        shutdown_timeout: args.shutdown_timeout,
    };
    crate::serve::serve(listener, crate::app(state), limits, shutdown_signal()).await?;
    #[cfg(unix)]
    reloader.abort();
    users.close().await;
    tracing::info!("stopped");
    Ok(())
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
                let issuer = ProjectSecret::from_file(path)
                    .map_err(anyhow::Error::from)
                    .and_then(
                        |secret| Ok(TokenIssuer::new(self.project.clone(), secret).with_ttl(self.ttl)?),
                    );
                match issuer {
                    Ok(issuer) => {
                        self.issuer.replace(issuer);
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

async fn users(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add {
            database,
            email,
            first_name,
            last_name,
            attributes,
            password_stdin: _,
        } => {
            let password = read_password()?;
            let user = checked_user(
                &email,
                first_name.as_deref(),
                last_name.as_deref(),
                attributes_map(attributes),
                &password,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let store = open(&database).await?;
            let created = store.add(&user).await?;
            println!("added {} ({})", created.email, created.id);
        }
        UsersCommand::List { database, json } => {
            let store = open(&database).await?;
            for user in store.list().await? {
                if json {
                    println!("{}", serde_json::to_string(&user)?);
                } else {
                    let name = [user.firstname.as_deref(), user.lastname.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    println!("{}\t{}\t{}", user.id, user.email, name);
                }
            }
        }
        UsersCommand::Remove { database, user } => {
            open(&database).await?.remove(&user).await?;
            println!("removed {user}");
        }
        UsersCommand::SetPassword {
            database,
            user,
            password_stdin: _,
        } => {
            let password = read_password()?;
            let hash = hash_blocking(password.as_bytes())?;
            open(&database).await?.set_password(&user, &hash).await?;
            println!("password set for {user}");
        }
        UsersCommand::Import { database, file } => {
            let users = read_import(&file)?;
            let store = open(&database).await?;
            let count = users.len();
            store
                .add_all(&users.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
                .await
                .map_err(|(index, err)| {
                    let line = users.get(index).map_or(0, |(line, _)| *line);
                    anyhow::anyhow!("{}:{line}: {err}; nothing was imported", file.display())
                })?;
            println!("imported {count} users");
        }
    }
    Ok(())
}

async fn open(database: &DatabaseArgs) -> anyhow::Result<UserStore> {
    UserStore::connect(&database.database)
        .await
        .with_context(|| format!("cannot open the user database {}", database.database))
}

fn read_password() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned());
    check_password(&password).map_err(|e| anyhow::anyhow!(e))?;
    Ok(password)
}

fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".to_owned());
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!("the password is longer than {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(())
}

fn attributes_map(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
}

/// Checks a user's fields as POST /auth and the token core will, and hashes the password.
fn checked_user(
    email: &str,
    firstname: Option<&str>,
    lastname: Option<&str>,
    attributes: Map<String, Value>,
    password: &str,
) -> Result<NewUser, String> {
    let email = email.trim();
    check_password(password)?;
    // The token core is the one judge of names, email and attributes.
    let mut claims = VisitorClaims::builder("check")
        .email(email)
        .attributes(Value::Object(attributes.clone()));
    if let Some(name) = firstname {
        claims = claims.firstname(name);
    }
    if let Some(name) = lastname {
        claims = claims.lastname(name);
    }
    let claims = claims.build().map_err(|e| e.to_string())?;
    let password_hash = hash_blocking(password.as_bytes()).map_err(|e| e.to_string())?;
    Ok(NewUser {
        email: email.to_owned(),
        firstname: claims.firstname().map(str::to_owned),
        lastname: claims.lastname().map(str::to_owned),
        attributes,
        password_hash,
    })
}

/// Reads and checks every user of an import file, with the line each came from.
fn read_import(path: &Path) -> anyhow::Result<Vec<(usize, NewUser)>> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let text = Zeroizing::new(text);
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows = if is_csv { csv_rows(&text) } else { json_rows(&text) }
        .map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}; nothing was imported", path.display()))?;
    let mut seen = std::collections::HashMap::new();
    let mut users = Vec::with_capacity(rows.len());
    for row in rows {
        let fail = |e: String| anyhow::anyhow!("{}:{}: {e}; nothing was imported", path.display(), row.line);
        let user = checked_user(
            &row.email,
            row.firstname.as_deref(),
            row.lastname.as_deref(),
            row.attributes,
            &row.password,
        )
        .map_err(fail)?;
        if let Some(first) = seen.insert(crate::users::email_key(&user.email), row.line) {
            return Err(fail(format!("{} is already on line {first}", user.email)));
        }
        users.push((row.line, user));
    }
    if users.is_empty() {
        bail!("{}: no users in the file", path.display());
    }
    Ok(users)
}

struct ImportRow {
    line: usize,
    email: String,
    password: Zeroizing<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    attributes: Map<String, Value>,
}

impl std::fmt::Debug for ImportRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRow")
            .field("line", &self.line)
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish_non_exhaustive()
    }
}

fn csv_rows(text: &str) -> Result<Vec<ImportRow>, (usize, String)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| (1, e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(email_col), Some(password_col)) = (column("email"), column("password")) else {
        return Err((
            1,
            "the header must name the columns `email` and `password`".to_owned(),
        ));
    };
    let first_col = column("first_name").or_else(|| column("firstname"));
    let last_col = column("last_name").or_else(|| column("lastname"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| (e.position().map_or(0, |p| p.line() as usize), e.to_string()))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let get = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut attributes = Map::new();
        for (index, header) in headers.iter().enumerate() {
            if [Some(email_col), Some(password_col), first_col, last_col].contains(&Some(index)) {
                continue;
            }
            if let Some(value) = record.get(index).filter(|v| !v.is_empty()) {
                attributes.insert(header.to_owned(), Value::String(value.to_owned()));
            }
        }
        rows.push(ImportRow {
            line,
            email: get(Some(email_col)).ok_or((line, "`email` is empty".to_owned()))?,
            password: Zeroizing::new(record.get(password_col).unwrap_or_default().to_owned()),
            firstname: get(first_col),
            lastname: get(last_col),
            attributes,
        });
    }
    Ok(rows)
}

fn json_rows(text: &str) -> Result<Vec<ImportRow>, (usize, String)> {
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let map = crate::body::parse_object(raw.as_bytes()).map_err(|e| (line, e.to_string()))?;
        let mut fields =
            crate::body::Fields::new(map, &["email", "password", "firstname", "lastname", "attributes"])
                .map_err(|e| (line, e.to_string()))?;
        fn field<T>(line: usize, r: Result<T, crate::ApiError>) -> Result<T, (usize, String)> {
            r.map_err(|e| (line, e.to_string()))
        }
        rows.push(ImportRow {
            line,
            email: field(line, fields.required_str("email", tiledesk_jwt::MAX_EMAIL_LEN))?,
            password: Zeroizing::new(field(line, fields.required_str("password", MAX_PASSWORD_LEN))?),
            firstname: field(line, fields.optional_str("firstname", tiledesk_jwt::MAX_NAME_LEN))?,
            lastname: field(line, fields.optional_str("lastname", tiledesk_jwt::MAX_NAME_LEN))?,
            attributes: field(line, fields.optional_object("attributes"))?.unwrap_or_default(),
        });
    }
    Ok(rows)
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let (project, secret) = args.project.resolve()?;
    let issuer = TokenIssuer::new(project, secret).with_ttl(args.ttl)?;
    let mut claims = VisitorClaims::builder(args.user_id.as_str())
        .attributes(Value::Object(attributes_map(args.attributes.clone())));
    if let Some(email) = &args.email {
        claims = claims.email(email.as_str());
    }
    if let Some(name) = &args.first_name {
        claims = claims.firstname(name.as_str());
    }
    if let Some(name) = &args.last_name {
        claims = claims.lastname(name.as_str());
    }
    if args.no_project_prefix {
        claims = claims.without_project_prefix();
    }
    let token = issuer.mint(&claims.build()?)?;
    println!("{token}");
    Ok(())
}

fn check_token(args: &CheckTokenArgs) -> anyhow::Result<ExitCode> {
    let (project, secret) = args.project.resolve()?;
    let token = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from standard input")?;
        text
    } else {
        args.token.clone()
    };
    let report = tiledesk_jwt::check(token.trim(), &project, &secret);
    print!("{report}");
    Ok(if report.is_safe() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("24h").unwrap(), MAX_TOKEN_TTL);
        assert!(parse_ttl("25h").is_err());
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("soon").unwrap_err().contains("examples"));
    }

    #[test]
    fn serve_limits_and_trusted_proxies_parse() {
        let Command::Serve(args) = Cli::try_parse_from([
            "tiledesk-auth",
            "serve",
            "--trusted-proxy",
            "10.0.0.0/8,192.0.2.7",
            "--trusted-proxy",
            "fd00::/8",
            "--read-timeout",
            "2s",
        ])
        .unwrap()
        .command
        else {
            panic!("not serve");
        };
        assert_eq!(args.trusted_proxies.len(), 3);
        assert_eq!(args.read_timeout, Duration::from_secs(2));
        assert_eq!(args.max_connections, 4096);
        for bad in [
            ["--trusted-proxy", "10.0.0.0/33"],
            ["--trusted-proxy", "proxy.internal"],
            ["--read-timeout", "50ms"],
            ["--read-timeout", "1h"],
            ["--max-connections", "0"],
        ] {
            assert!(
                Cli::try_parse_from(["tiledesk-auth", "serve", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
    }

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

    #[test]
    fn attribute_parsing_refuses_reserved_claims() {
        assert_eq!(
            parse_attribute("plan=pro").unwrap(),
            ("plan".to_owned(), "pro".to_owned())
        );
        assert_eq!(parse_attribute("note=a=b").unwrap().1, "a=b");
        assert!(parse_attribute("role=agent").unwrap_err().contains("reserved"));
        assert!(parse_attribute("novalue").is_err());
    }

    #[test]
    fn csv_import_rows_and_attributes() {
        let rows = csv_rows("email,password,first_name,plan\na@b.co,pw1,Ann,pro\nc@d.co,pw2,,\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].line, rows[0].firstname.as_deref()), (2, Some("Ann")));
        assert_eq!(rows[0].attributes["plan"], "pro");
        assert_eq!(rows[1].firstname, None);
        assert!(rows[1].attributes.is_empty());
        assert_eq!(csv_rows("mail,pass\nx,y\n").unwrap_err().0, 1);
    }

    #[test]
    fn json_import_rows_name_the_bad_line() {
        let text = "{\"email\":\"a@b.co\",\"password\":\"pw\"}\n\n{\"email\":\"c@d.co\"}\n";
        let (line, err) = json_rows(text).unwrap_err();
        assert_eq!(line, 3);
        assert!(err.contains("password"), "{err}");
        let (line, err) =
            json_rows("{\"email\":\"a@b.co\",\"password\":\"pw\",\"role\":\"agent\"}").unwrap_err();
        assert_eq!(line, 1);
        assert!(err.contains("role"), "{err}");
    }
}
