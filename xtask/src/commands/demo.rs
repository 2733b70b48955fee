//! `cargo xtask demo`: the service, the mock Tiledesk with Tiledesk's real widget, a broker and Example Shop, on this
//! machine, with a throwaway project and a demo user; prints the URL.

use std::path::Path;
use std::process::Command;

use crate::commands::*;
use crate::process::*;
use anyhow::{Context, bail};
use tiledesk_test_support::{Broker, Mock};

/// The mock Tiledesk, started from `target/debug` (see [`build_binaries`]).
pub(crate) fn start_mock(
    project: &str,
    secret: &str,
    listen: &str,
    real: Option<(&Path, &Broker)>,
    extra: &[String],
) -> anyhow::Result<Mock> {
    Mock::try_start(
        &root().join("target/debug/tiledesk-mock"),
        project,
        secret,
        listen,
        real,
        extra,
    )
    .map_err(anyhow::Error::msg)
}

/// A throwaway project for the demo and the dev loop, with its demo user's password.
pub(crate) struct DemoProject {
    project: tiledesk_test_support::Project,
    pub(crate) password: String,
}

impl std::ops::Deref for DemoProject {
    type Target = tiledesk_test_support::Project;
    fn deref(&self) -> &Self::Target {
        &self.project
    }
}

pub(crate) const DEMO_EMAIL: &str = "andrew@scientists.com";

/// Creates the project under `dir` (emptied first) with the demo user.
pub(crate) fn demo_project(dir: &Path) -> anyhow::Result<DemoProject> {
    let _ = std::fs::remove_dir_all(dir);
    let project = DemoProject {
        project: tiledesk_test_support::Project::create(dir)?,
        password: random_hex(8)?,
    };
    step(&format!("creating the demo user {DEMO_EMAIL}"));
    project
        .add_user(
            &tiledesk_auth(),
            DEMO_EMAIL,
            &["Andrew", "Wiles"],
            &project.password,
        )
        .map_err(anyhow::Error::msg)?;
    Ok(project)
}

/// `tiledesk-auth serve` for the project.
pub(crate) fn serve_command(project: &DemoProject, listen: &str) -> Command {
    project.serve(&tiledesk_auth(), listen)
}

/// The dev loop's `demo-config.json`: which project, where the stand-in loader and the mock API are.
/// The demo page's configuration: the project, and Tiledesk's loader at `mock_base` (empty: the page's own origin).
pub(crate) fn demo_config(project: &DemoProject, mock_base: &str) -> String {
    serde_json::json!({
        "projectId": project.id,
        "widgetUrl": format!("{mock_base}/widget/launch.js"),
    })
    .to_string()
}

pub(crate) fn demo() -> anyhow::Result<()> {
    setup_build()?;
    apt_install(&[("mosquitto", "mosquitto")])?;
    step("building the browser module, then tiledesk-auth (with the module inside) and the mock Tiledesk");
    let package = pkg()?;
    build_binaries()?;
    let widget = widget::ensure_built()?;

    let dir = root().join("target/demo");
    let project = demo_project(&dir)?;
    // The JS API page, served by the service itself at /.
    let site = dir.join("site");
    copy_assets(&site, &package)?;
    std::fs::copy(root().join("web/index.html"), site.join("index.html"))?;

    step(&format!(
        "starting mosquitto, the mock Tiledesk with Tiledesk's widget {} and Example Shop",
        widget::VERSION
    ));
    let broker = Broker::start();
    let listen = "127.0.0.1:3000";
    let service = format!("http://{listen}");
    let shop_listen = "127.0.0.1:8000";
    let shop = format!("http://{shop_listen}");
    let mock_listen = format!("127.0.0.1:{}", tiledesk_test_support::free_port());
    let mock_url = format!("http://{mock_listen}");
    let shop_dir = dir.join("shop");
    std::fs::create_dir_all(&shop_dir)?;
    let shop_args: Vec<String> = [
        "--site-listen",
        shop_listen,
        "--site-dir",
        &shop_dir.to_string_lossy(),
        "--site-user",
        &format!("{DEMO_EMAIL}={}:Andrew", project.password),
        "--site-csp",
        &tiledesk_test_support::content_security_policy(&service, &mock_url, &broker.ws_url()),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    let mock = start_mock(
        &project.id,
        &project.secret,
        &mock_listen,
        Some((&widget, &broker)),
        &shop_args,
    )?;
    std::fs::write(site.join("demo-config.json"), demo_config(&project, &mock.url))?;
    write_shop(&shop_dir, &project.id, &service, &mock.url)?;

    println!(
        "\nOpen {shop}/ : Example Shop, a site with a login of its own on another origin, with Tiledesk's snippet and\n\
         one tiledesk-auth tag. Sign in to the shop as {DEMO_EMAIL}, password {}: the widget appears, signed in\n\
         as that customer, on every page load; sign out of the shop and the next page shows no trace of them.\n\
         The JS API way (a page that signs in with the service's own users): {service}/ , same email and password.\n\
         (Printed once; everything lives in target/demo and is thrown away on the next run. Stop with Ctrl-C.)\n",
        project.password
    );
    let status = serve_command(&project, listen)
        .arg("--static-dir")
        .arg(&site)
        .args([
            "--session-url",
            &format!("{shop}/shop/me"),
            "--allowed-origin",
            &shop,
        ])
        .status()?;
    drop(mock);
    drop(broker);
    if !status.success() {
        bail!("tiledesk-auth exited with {status}");
    }
    Ok(())
}

/// Example Shop's page: `web/one-tag/` with the tag `tiledesk-auth snippet` prints for the service at `service`,
/// and Tiledesk's snippet pointing at the mock's loader.
pub(crate) fn write_shop(dir: &Path, project_id: &str, service: &str, mock_url: &str) -> anyhow::Result<()> {
    let tag = tiledesk_test_support::snippet_tag(&tiledesk_auth(), service, project_id)
        .map_err(anyhow::Error::msg)?;
    let loader = format!("{mock_url}/widget/launch.js");
    tiledesk_test_support::write_shop_page(&root(), dir, &tag, project_id, &loader)
        .context("writing the shop's page")
}

/// The page's script and style and the package into `site` (not `index.html`: Trunk processes that one).
pub(crate) fn copy_assets(site: &Path, package: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(site.join("pkg"))?;
    for file in ["demo.js", "demo.css"] {
        std::fs::copy(root().join("web").join(file), site.join(file))
            .with_context(|| format!("web/{file}"))?;
    }
    for file in [
        "tiledesk_auth_web.js",
        "tiledesk_auth_web_bg.wasm",
        "tiledesk_auth_web.d.ts",
    ] {
        std::fs::copy(package.join(file), site.join("pkg").join(file))?;
    }
    Ok(())
}
