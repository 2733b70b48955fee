//! `tiledesk-mock`: runs the Tiledesk test double on a local port and prints its URL.

use clap::Parser;
use tiledesk_jwt::{ProjectId, ProjectSecret};
use tracing_subscriber::EnvFilter;

/// TEST DOUBLE of the Tiledesk API and widget loader, for offline tests and the demo. Not Tiledesk.
#[derive(Debug, Parser)]
#[command(name = "tiledesk-mock", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the URL is printed).
    #[arg(long, env = "TILEDESK_MOCK_LISTEN", default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The project the mock holds.
    #[arg(long, env = "TILEDESK_PROJECT_ID")]
    project_id: ProjectId,
    /// That project's secret.
    #[arg(
        long,
        env = "TILEDESK_SECRET",
        hide_env_values = true,
        conflicts_with = "secret_file"
    )]
    secret: Option<ProjectSecret>,
    /// A file holding that project's secret.
    #[arg(long, env = "TILEDESK_SECRET_FILE")]
    secret_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let secret = match (args.secret, args.secret_file) {
        (Some(secret), _) => secret,
        (None, Some(path)) => ProjectSecret::from_file(path)?,
        (None, None) => anyhow::bail!("no project secret: set TILEDESK_SECRET or TILEDESK_SECRET_FILE"),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The one line a test harness or the demo reads to find the mock.
    #[allow(clippy::print_stdout)]
    {
        println!("tiledesk-mock listening on http://{}", listener.local_addr()?);
    }
    let app = tiledesk_mock::app(tiledesk_mock::MockState::new(args.project_id, secret));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
