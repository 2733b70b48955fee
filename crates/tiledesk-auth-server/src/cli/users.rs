//! `tiledesk-auth users ...`: add, list, remove, set a password, import.

#![allow(clippy::print_stdout)] // a command-line tool's output is its interface

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use zeroize::Zeroizing;

use crate::guard::passwords::hash_blocking;
use crate::identity::users::{UserStore, redacted};

use super::new_user::{check_password, checked_user};
use super::{DatabaseArgs, attributes_map, parse_attribute};
use crate::audit::{AuditRecord, Event};

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
    /// Disable a user, by email or id: from now on no replica mints a token for them (their password logins get
    /// `403 account_disabled`, their login sessions end at their next refresh). Recorded in the audit trail.
    Disable {
        #[command(flatten)]
        #[allow(missing_docs)]
        database: DatabaseArgs,
        /// The user's email or id.
        user: String,
    },
    /// Enable a disabled user again. Recorded in the audit trail.
    Enable {
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
    /// Copy every user into another, empty, database (e.g. from SQLite to PostgreSQL), in one transaction: ids,
    /// password hashes, names, attributes and dates kept, so everyone signs in as before and keeps their chat
    /// history. The source is left as it was. Stop the services writing to the source first.
    Migrate {
        /// The database the users are in (`sqlite://FILE` or `postgres://...`).
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty database they go to; created (SQLite) or given its table (PostgreSQL) if needed.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub(super) async fn users(command: UsersCommand) -> anyhow::Result<()> {
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
                    let disabled = if user.disabled_at.is_some() {
                        "\tdisabled"
                    } else {
                        ""
                    };
                    println!("{}\t{}\t{}{disabled}", user.id, user.email, name);
                }
            }
        }
        UsersCommand::Remove { database, user } => {
            open(&database).await?.remove(&user).await?;
            println!("removed {user}");
        }
        UsersCommand::Disable { database, user } => {
            let store = open(&database).await?;
            let changed = store.set_disabled(&user, Some(unix_now())).await?;
            store
                .insert_audit(vec![AuditRecord::user_changed(Event::Disabled, &changed.id)])
                .await?;
            println!("disabled {user}: no token is minted for them until `users enable`");
        }
        UsersCommand::Enable { database, user } => {
            let store = open(&database).await?;
            let changed = store.set_disabled(&user, None).await?;
            store
                .insert_audit(vec![AuditRecord::user_changed(Event::Enabled, &changed.id)])
                .await?;
            println!("enabled {user}");
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
            let users = super::import::read_import(&file)?;
            let store = open(&database).await?;
            let count = users.len();
            store
                .add_all(&users.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>())
                .await
                .map_err(|(index, err)| super::import::ImportError::Row {
                    path: file.clone(),
                    line: users.get(index).map_or(0, |(line, _)| *line),
                    problem: err.to_string(),
                })?;
            println!("imported {count} users");
        }
        UsersCommand::Migrate { from, to } => {
            let source = open_url(&from).await?;
            let destination = open_url(&to).await?;
            let moved = source.migrate_to(&destination).await.with_context(|| {
                format!(
                    "cannot migrate the users from {} to {}",
                    redacted(&from),
                    redacted(&to)
                )
            })?;
            source.close().await;
            destination.close().await;
            println!(
                "migrated {moved} users from {} to {}",
                redacted(&from),
                redacted(&to)
            );
        }
    }
    Ok(())
}

pub(super) async fn open(database: &DatabaseArgs) -> anyhow::Result<UserStore> {
    open_url(&database.database).await
}

async fn open_url(url: &str) -> anyhow::Result<UserStore> {
    UserStore::connect(url)
        .await
        .with_context(|| format!("cannot open the user database {}", redacted(url)))
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}
