//! `cargo xtask dev`: the dev loop: the service, the mock, and `trunk serve` with live reload.

use std::path::PathBuf;
use std::process::Command;

use crate::commands::*;
use crate::process::*;
use anyhow::Context;
use tiledesk_test_support::{Broker, Process};

pub(crate) fn dev() -> anyhow::Result<()> {
    setup_build()?;
    install_trunk()?;
    apt_install(&[("mosquitto", "mosquitto")])?;
    step("building tiledesk-auth and the mock Tiledesk");
    build_binaries()?;
    let widget = widget::ensure_built()?;
    let dir = root().join("target/dev");
    let project = demo_project(&dir)?;
    // Relative URLs: Trunk proxies /widget/, /api/ and /chatapi/ to the mock, /auth to the service (Trunk.toml).
    std::fs::write(dir.join("demo-config.json"), demo_config(&project, ""))?;
    step(&format!(
        "starting mosquitto and the mock Tiledesk with Tiledesk's widget {}",
        widget::VERSION
    ));
    let broker = Broker::start();
    let _mock = start_mock(
        &project.id,
        &project.secret,
        "127.0.0.1:3001",
        Some((&widget, &broker)),
        &[],
    )?;
    let _server = Process(
        serve_command(&project, "127.0.0.1:3000")
            .spawn()
            .context("cannot start tiledesk-auth")?,
    );
    println!(
        "\nOpen http://127.0.0.1:8080/ once Trunk has built, and sign in as {DEMO_EMAIL}, password {}\n\
         Edits to web/ or to the browser module rebuild and reload the page. Stop with Ctrl-C.\n",
        project.password
    );
    run(Command::new("trunk")
        .arg("serve")
        .current_dir(root())
        .env("TRUNK_OFFLINE", "true"))
}

/// Trunk's post-build hook: the browser package and the page's own files, into Trunk's staging directory.
pub(crate) fn dev_assets() -> anyhow::Result<()> {
    let staging =
        PathBuf::from(std::env::var("TRUNK_STAGING_DIR").context("run by Trunk (TRUNK_STAGING_DIR)")?);
    let package = pkg()?;
    copy_assets(&staging, &package)?;
    let config = root().join("target/dev/demo-config.json");
    if config.exists() {
        std::fs::copy(config, staging.join("demo-config.json"))?;
    }
    Ok(())
}
