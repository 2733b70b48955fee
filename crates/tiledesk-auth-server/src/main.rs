//! The `tiledesk-auth` binary: parses the command line, sets up logging, runs the command.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tiledesk_auth_server::cli::{Cli, LogFormat, run};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the C library's allocator. Memory allocated on one thread and freed on another is the rule
/// here (every value bound to an SQLite statement is freed on sqlx's worker thread: the audit trail's strings, five a
/// token), and glibc's allocator pays for it on the allocating thread: with the trail on, its slow paths (chunk
/// consolidation) took 2.8 % of the request thread's time (BENCHMARKS.md). The library leaves the choice to the
/// program that embeds it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match tiledesk_auth_server::cli::config::with_config_file(
        std::env::args_os().collect(),
        &<Cli as clap::CommandFactory>::command(),
    ) {
        Ok(args) => args,
        Err(err) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err}");
            }
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            // One line, for a person: the chain of causes joined.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(2)
        }
    }
}
