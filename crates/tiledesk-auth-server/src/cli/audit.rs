//! `tiledesk-auth audit`: the identity audit trail (see [`crate::audit`]), newest last.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::DatabaseArgs;
use crate::audit::AuditRecord;

/// `tiledesk-auth audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    /// Only the records of this site user id (the password store's id, the session's `id`, the ID token's `sub`, or
    /// `/tokens`'s `user_id`).
    #[arg(long)]
    pub user: Option<String>,
    /// Only the records of this last while (`2d`, `12h`, `30m`).
    #[arg(long, default_value = "1d", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// `table` for people, `json` (one object per line) or `csv` for tools.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `audit` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON object per line.
    Json,
    /// Comma-separated, with a header line.
    Csv,
}

const COLUMNS: [&str; 9] = [
    "at",
    "event",
    "way",
    "user_id",
    "chat_id",
    "jti",
    "expires_at",
    "address",
    "dropped",
];

pub(super) async fn audit(args: &AuditArgs) -> anyhow::Result<()> {
    let store = super::users::open(&args.database).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let since = i64::try_from(now.saturating_sub(args.since.as_secs()))?;
    let records = store.audit(args.user.as_deref(), since).await?;
    store.close().await;
    match args.format {
        Format::Json => {
            for record in &records {
                println!("{}", serde_json::to_string(record)?);
            }
        }
        Format::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout());
            out.write_record(COLUMNS)?;
            for record in &records {
                out.write_record(fields(record))?;
            }
            out.flush()?;
        }
        Format::Table => {
            let rows: Vec<[String; 9]> = records.iter().map(fields).collect();
            let mut widths = COLUMNS.map(str::len);
            for row in &rows {
                for (width, field) in widths.iter_mut().zip(row) {
                    *width = (*width).max(field.len());
                }
            }
            let line = |cells: [&str; 9]| {
                cells
                    .iter()
                    .zip(widths)
                    .map(|(cell, width)| format!("{cell:width$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!("{}", line(COLUMNS));
            for row in &rows {
                println!("{}", line(row.each_ref().map(String::as_str)));
            }
            if rows.is_empty() {
                println!(
                    "(no record in the last {})",
                    humantime::format_duration(args.since)
                );
            }
        }
    }
    Ok(())
}

/// A record's fields as text, in [`COLUMNS`]' order (time as RFC 3339, UTC).
fn fields(record: &AuditRecord) -> [String; 9] {
    let time = |secs: i64| {
        u64::try_from(secs)
            .map(|secs| {
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string()
            })
            .unwrap_or_default()
    };
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    [
        time(record.at),
        record.event.as_str().to_owned(),
        record.way.map(|way| way.as_str().to_owned()).unwrap_or_default(),
        text(&record.user_id),
        text(&record.chat_id),
        text(&record.jti),
        record.expires_at.map(time).unwrap_or_default(),
        text(&record.address),
        record.dropped.map(|n| n.to_string()).unwrap_or_default(),
    ]
}
