//! `tiledesk-auth token` and `tiledesk-auth check-token`.

#![allow(clippy::print_stdout)] // a command-line tool's output is its interface

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use tiledesk_jwt::{TokenIssuer, VisitorClaims, VisitorClaimsBuilder};

use super::{ProjectArgs, attributes_map, parse_attribute, parse_ttl};

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

pub(super) fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let (project, secret) = args.project.resolve()?;
    let issuer = TokenIssuer::new(project, secret).with_ttl(args.ttl)?;
    let mut claims = VisitorClaims::builder(args.user_id.as_str())
        .attributes(Value::Object(attributes_map(args.attributes.clone())))
        .with(args.email.as_deref(), VisitorClaimsBuilder::email)
        .with(args.first_name.as_deref(), VisitorClaimsBuilder::firstname)
        .with(args.last_name.as_deref(), VisitorClaimsBuilder::lastname);
    if args.no_project_prefix {
        claims = claims.without_project_prefix();
    }
    let token = issuer.mint(&claims.build()?)?;
    println!("{token}");
    Ok(())
}

pub(super) fn check_token(args: &CheckTokenArgs) -> anyhow::Result<ExitCode> {
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
