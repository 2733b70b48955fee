//! The `tiledesk-auth` command line: `serve`, `users ...`, `token`, `check-token`, `snippet`.
//!
//! Parsed once in `main`; nothing else reads the environment.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout)]

mod audit;
pub mod config;
mod import;
mod new_user;
mod serve;
mod snippet;
mod token;
mod users;

pub use audit::AuditArgs;
pub use serve::ServeArgs;
pub use snippet::SnippetArgs;
pub use token::{CheckTokenArgs, TokenArgs};
pub use users::UsersCommand;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};
use tiledesk_jwt::MAX_TOKEN_TTL;
pub use tiledesk_jwt::args::ProjectArgs;

/// Signs a site's logged-in users into the Tiledesk chat widget with verified tokens.
#[derive(Debug, Parser)]
#[command(name = "tiledesk-auth", version, about, propagate_version = true)]
pub struct Cli {
    /// How log lines are written to standard error: `text` for people, `json` (one object per line, the same
    /// fields) for a log pipeline.
    #[arg(long, global = true, value_enum, env = "TILEDESK_AUTH_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, for people.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (the message among them), `span`.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once, at start: its size costs nothing
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
    /// Print the `<script>` tag a site adds beside Tiledesk's snippet: the browser module this binary serves,
    /// pinned by its integrity hash, with the chosen settings (README: "Add it to your site").
    Snippet(SnippetArgs),
    /// Print the identity audit trail: which chat identity was handed out, to whom, when and how, and the users
    /// disabled or enabled (README: "Audit trail").
    Audit(AuditArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (the service serves it at /openapi.json too).
    Openapi,
    /// Ask a running service whether it is alive (`GET /healthz`, or `/readyz` with --ready): exit 0 if it says so,
    /// 1 otherwise. For a container's HEALTHCHECK, where no curl is at hand.
    Health(HealthArgs),
}

/// `tiledesk-auth health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The service's address.
    #[arg(long, env = "TILEDESK_AUTH_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: std::net::SocketAddr,
    /// Ask for readiness (`/readyz`) instead of liveness (`/healthz`).
    #[arg(long)]
    pub ready: bool,
}

/// Where the users live.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The user database: `sqlite://FILE` (created with its schema on first run) or
    /// `postgres://USER:PASSWORD@HOST/DATABASE` (the table created on first run; replicas share it). A password in
    /// it is never printed; keep it out of the command line with the environment variable.
    #[arg(
        long,
        env = "TILEDESK_AUTH_DATABASE",
        default_value = "sqlite://tiledesk-auth.db"
    )]
    pub database: String,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30m, 1h, 90s)"))?;
    if ttl < Duration::from_secs(1) || ttl > MAX_TOKEN_TTL {
        return Err("must be between 1s and 24h".to_owned());
    }
    Ok(ttl)
}

/// A time limit on the command line (`10s`, `1m30s`, `500ms`), between 100 ms and 5 minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Duration);

impl std::str::FromStr for Timeout {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let timeout = humantime::parse_duration(text).map_err(|e| e.to_string())?;
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(300) {
            return Err("must be between 100ms and 5m".to_owned());
        }
        Ok(Self(timeout))
    }
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

fn parse_attribute(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    if let Some(name) = tiledesk_jwt::reserved_claim(key) {
        return Err(format!("`{name}` is a reserved claim"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Users(command) => users::users(command).await.map(|()| ExitCode::SUCCESS),
        Command::Token(args) => token::token(&args).map(|()| ExitCode::SUCCESS),
        Command::CheckToken(args) => token::check_token(&args),
        Command::Snippet(args) => snippet::snippet(&args),
        Command::Audit(args) => audit::audit(&args).await.map(|()| ExitCode::SUCCESS),
        Command::Health(args) => Ok(health(&args).await),
        Command::Openapi => {
            print!("{}", crate::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tiledesk-auth health`: one `GET`, at most 5 s.
async fn health(args: &HealthArgs) -> ExitCode {
    // A service listening on every address is asked on loopback.
    let mut address = args.listen;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let path = if args.ready { "readyz" } else { "healthz" };
    let answer = async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?
            .get(format!("http://{address}/{path}"))
            .send()
            .await
    };
    match answer.await {
        Ok(response) if response.status().is_success() => {
            println!("{path}: {}", response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            println!("{path}: {}", response.status());
            ExitCode::FAILURE
        }
        Err(err) => {
            println!("{path}: no answer from {address}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn attributes_map(pairs: Vec<(String, String)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
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
        assert_eq!(args.read_timeout, Timeout(Duration::from_secs(2)));
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
    fn attribute_parsing_refuses_reserved_claims() {
        assert_eq!(
            parse_attribute("plan=pro").unwrap(),
            ("plan".to_owned(), "pro".to_owned())
        );
        assert_eq!(parse_attribute("note=a=b").unwrap().1, "a=b");
        assert!(parse_attribute("role=agent").unwrap_err().contains("reserved"));
        assert!(parse_attribute("novalue").is_err());
    }
}
