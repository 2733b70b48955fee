//! `tiledesk-mock`: runs the Tiledesk test double on a local port and prints its URL.

use clap::Parser;
use tiledesk_jwt::args::ProjectArgs;
use tiledesk_mock::{MockState, WidgetSource};
use tracing_subscriber::EnvFilter;

/// TEST DOUBLE of the Tiledesk API, chat server and widget loader, for offline tests and the demo. Not Tiledesk.
#[derive(Debug, Parser)]
#[command(name = "tiledesk-mock", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the URL is printed).
    #[arg(long, env = "TILEDESK_MOCK_LISTEN", default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The project the mock holds, and its secret.
    #[command(flatten)]
    project: ProjectArgs,
    /// Serve the real Tiledesk widget built in this directory (`cargo xtask widget`) instead of the stand-in.
    #[arg(long)]
    widget_dir: Option<std::path::PathBuf>,
    /// The MQTT broker's plain listener, `host:port`: the mock relays chat messages through it.
    #[arg(long, requires = "mqtt_ws")]
    mqtt: Option<String>,
    /// The same broker's websockets URL, given to the real widget (`ws://127.0.0.1:PORT`).
    #[arg(long, requires = "mqtt")]
    mqtt_ws: Option<String>,
    /// Also serve "Example Shop", a site with a login of its own, on this address (repeat for several origins).
    #[arg(long, requires = "site_dir")]
    site_listen: Vec<std::net::SocketAddr>,
    /// The shop's pages.
    #[arg(long)]
    site_dir: Option<std::path::PathBuf>,
    /// The shop's one user, `EMAIL=PASSWORD[:FIRSTNAME]`.
    #[arg(long)]
    site_user: Option<tiledesk_mock::shop::ShopUser>,
    /// The Content-Security-Policy header of every shop answer.
    #[arg(long)]
    site_csp: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let (project, secret) = args.project.resolve()?;
    let mut state = MockState::new(project, secret);
    if let Some(dir) = args.widget_dir {
        anyhow::ensure!(
            dir.join("launch.js").is_file(),
            "{} holds no built widget (launch.js): run `cargo xtask widget`",
            dir.display()
        );
        state = state.with_widget(WidgetSource::Built(dir));
    }
    if let (Some(mqtt), Some(ws)) = (args.mqtt, args.mqtt_ws) {
        let (host, port) = mqtt
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("--mqtt takes host:port, not {mqtt}"))?;
        state = state.with_broker(&host, port, ws);
    }
    if let Some(dir) = args.site_dir {
        let csp = args
            .site_csp
            .map(|p| axum::http::HeaderValue::from_str(&p))
            .transpose()?;
        let shop = tiledesk_mock::shop::app(dir, args.site_user, csp);
        for address in args.site_listen {
            let listener = tokio::net::TcpListener::bind(address).await?;
            let shop = shop.clone();
            tokio::spawn(async move { axum::serve(listener, shop).await });
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    // The one line a test harness or the demo reads to find the mock.
    #[allow(clippy::print_stdout)]
    {
        println!("tiledesk-mock listening on http://{}", listener.local_addr()?);
    }
    axum::serve(listener, tiledesk_mock::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
