//! What every command shares: the workspace root, cargo (with the browser module built in once `pkg` ran), steps,
//! commands run to completion, tools looked for, random values, the built binaries.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Set once `pkg` has written `target/module`: from then on every cargo command of this run builds the service
/// with the browser module inside (one build, not one with and one without).
pub(crate) static MODULE_BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();

pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    if MODULE_BUILT.get().is_some() {
        command.env(
            crate::commands::dist::MODULE_DIR_VAR,
            crate::commands::dist::module_dir(),
        );
    } else {
        command.env_remove(crate::commands::dist::MODULE_DIR_VAR);
    }
    command.current_dir(root());
    command
}

pub(crate) fn step(title: &str) {
    println!("\n==> {title}");
}

/// Runs a command to completion, failing with the command line when it fails.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// The first line a command prints, if it runs and succeeds.
pub(crate) fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

pub(crate) fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn tools_dir() -> PathBuf {
    root().join("target/tools")
}

pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    tiledesk_test_support::random_hex(bytes).context("/dev/urandom")
}

pub(crate) fn tiledesk_auth() -> PathBuf {
    root().join("target/debug/tiledesk-auth")
}

/// The `tiledesk-auth` and `tiledesk-mock` binaries, in `target/debug`.
pub(crate) fn build_binaries() -> anyhow::Result<()> {
    run(cargo().args([
        "build",
        "--quiet",
        "--package",
        "tiledesk-auth-server",
        "--package",
        "tiledesk-mock",
    ]))
}
