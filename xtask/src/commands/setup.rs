//! `cargo xtask setup`: installs what is missing (idempotent, quiet when everything is there): the wasm target and
//! tools from crates.io, binaryen and terser from npm, browsers, drivers and databases from Debian, Trunk.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::*;
use anyhow::{Context, bail};

/// wasm-pack, built from crates.io (its installer would download a binary).
pub(crate) const WASM_PACK: &str = "0.15.1";

/// The wasm-bindgen version in Cargo.lock: the CLI must be exactly the same.
pub(crate) fn wasm_bindgen_version() -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    bail!("no wasm-bindgen in Cargo.lock")
}

pub(crate) fn setup() -> anyhow::Result<()> {
    setup_build()?;
    setup_browser()?;
    setup_databases()
}

/// What the replica tests run: Debian's PostgreSQL (the shared user store) and Redis (the shared login throttle),
/// each started by the tests as a process of their own.
pub(crate) fn setup_databases() -> anyhow::Result<()> {
    apt_install(&[("initdb", "postgresql"), ("redis-server", "redis-server")])
}

/// What building the browser module needs: Rust components, the wasm target, wasm-bindgen-cli, wasm-pack,
/// Node.js and binaryen.
pub(crate) fn setup_build() -> anyhow::Result<()> {
    let installed = String::from_utf8(
        Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .context("rustup")?
            .stdout,
    )?;
    // rust-src: the browser module's release build compiles std itself (see pkg.rs).
    for component in ["rustfmt", "clippy", "rust-src"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            step(&format!("installing the {component} component"));
            run(Command::new("rustup").args(["component", "add", component]))
                .with_context(|| format!("run by hand: rustup component add {component}"))?;
        }
    }
    let targets = String::from_utf8(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .context("rustup")?
            .stdout,
    )?;
    if !targets.lines().any(|l| l.trim() == "wasm32-unknown-unknown") {
        step("installing the wasm32-unknown-unknown target");
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))
            .context("run by hand: rustup target add wasm32-unknown-unknown")?;
    }
    let wasm_bindgen = wasm_bindgen_version()?;
    if !command_output("wasm-bindgen", &["--version"]).is_some_and(|v| v.contains(&wasm_bindgen)) {
        step(&format!(
            "installing wasm-bindgen-cli {wasm_bindgen} (the version in Cargo.lock; ~3 minutes)"
        ));
        run(cargo().args(["install", "wasm-bindgen-cli", "--version", &wasm_bindgen])).with_context(
            || format!("run by hand: cargo install wasm-bindgen-cli --version {wasm_bindgen}"),
        )?;
    }
    if !command_output("wasm-pack", &["--version"]).is_some_and(|v| v.contains(WASM_PACK)) {
        step(&format!("installing wasm-pack {WASM_PACK} (~5 minutes)"));
        run(cargo().args(["install", "wasm-pack", "--version", WASM_PACK]))
            .with_context(|| format!("run by hand: cargo install wasm-pack --version {WASM_PACK}"))?;
    }
    // Node runs the Tiledesk interop test and binaryen's wasm-opt.
    if !have("node", "--version") || !have("npm", "--version") {
        bail!("Node.js and npm are needed; install them (Debian: apt-get install nodejs npm)");
    }
    install_binaryen()
}

/// What the browser and end-to-end tests need: Chromium and its driver, Firefox ESR, and mosquitto (the chat
/// broker the real widget connects to), from Debian through apt; geckodriver, Firefox's driver, from crates.io.
pub(crate) fn setup_browser() -> anyhow::Result<()> {
    apt_install(&[
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("firefox-esr", "firefox-esr"),
        ("mosquitto", "mosquitto"),
        // Safari's engine: WebKitGTK's WebDriver (its MiniBrowser comes with it) on a virtual X display.
        ("/usr/bin/WebKitWebDriver", "webkit2gtk-driver"),
        ("/usr/bin/Xvfb", "xvfb"),
    ])?;
    if !command_output(&geckodriver().to_string_lossy(), &["--version"])
        .is_some_and(|v| v.contains(GECKODRIVER))
    {
        step(&format!(
            "installing geckodriver {GECKODRIVER} from crates.io (~2 minutes)"
        ));
        run(cargo().args(["install", "geckodriver", "--version", GECKODRIVER]))
            .with_context(|| format!("run by hand: cargo install geckodriver --version {GECKODRIVER}"))?;
    }
    Ok(())
}

/// geckodriver, pinned: Debian ships none, and wasm-pack must not download one.
pub(crate) const GECKODRIVER: &str = "0.37.1";

/// Where `cargo install` puts geckodriver.
pub(crate) fn geckodriver() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("bin/geckodriver")
}

/// Installs the Debian packages whose program is missing, through apt when running as root.
pub(crate) fn apt_install(wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let installed = |program: &str| {
        if program.starts_with('/') {
            // Named by path: programs without a `--version` (Xvfb, WebKitWebDriver).
            Path::new(program).exists()
        } else if program == "mosquitto" {
            // `mosquitto --help` exits 3; its path says it is there.
            ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
                .iter()
                .any(|p| Path::new(p).exists())
        } else if program == "initdb" {
            // Debian keeps PostgreSQL's programs off the PATH, in /usr/lib/postgresql/<version>/bin.
            have(program, "--version")
                || std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|version| version.path().join("bin/initdb").exists())
        } else {
            have(program, "--version")
        }
    };
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(program, _)| !installed(program))
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let packages = missing.join(" ");
        step(&format!("installing {packages} through apt"));
        let is_root = command_output("id", &["-u"]).is_some_and(|id| id.trim() == "0");
        let installed = is_root
            && run(Command::new("apt-get").arg("update").arg("-qq")).is_ok()
            && run(Command::new("apt-get")
                .args(["install", "-y", "-qq"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"))
            .is_ok();
        if !installed {
            bail!("run by hand, as root: apt-get update && apt-get install -y {packages}");
        }
    }
    Ok(())
}

/// binaryen from npm: Debian's wasm-opt 108 cannot parse `table.fill`, which current toolchains emit.
pub(crate) const BINARYEN: &str = "132.0.0";

/// terser from npm: minifies wasm-bindgen's JS glue (its JSDoc and long names; the `.d.ts` keeps the docs).
pub(crate) const TERSER: &str = "5.51.4";

pub(crate) fn npm_wasm_opt() -> PathBuf {
    tools_dir().join("node_modules/.bin/wasm-opt")
}

pub(crate) fn install_binaryen() -> anyhow::Result<()> {
    let tools = [("binaryen", BINARYEN), ("terser", TERSER)];
    let installed = tools.iter().all(|(name, version)| {
        std::fs::read_to_string(tools_dir().join(format!("node_modules/{name}/package.json")))
            .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")))
    });
    if installed {
        return Ok(());
    }
    step(&format!(
        "installing binaryen {BINARYEN} (wasm-opt) and terser {TERSER} (the JS glue's minifier) from npm into target/tools"
    ));
    std::fs::create_dir_all(tools_dir())?;
    // Both in one install: npm removes what an install does not name from a folder without a package.json.
    run(Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--no-save",
            "--prefix",
        ])
        .arg(tools_dir())
        .args(tools.iter().map(|(name, version)| format!("{name}@{version}"))))
    .with_context(|| {
        format!("run by hand: npm install --prefix target/tools binaryen@{BINARYEN} terser@{TERSER}")
    })
}

/// Trunk 0.21 (0.22 needs a newer rustc), built from crates.io.
pub(crate) const TRUNK: &str = "0.21.14";

pub(crate) fn install_trunk() -> anyhow::Result<()> {
    if command_output("trunk", &["--version"]).is_some_and(|v| v.contains(TRUNK)) {
        return Ok(());
    }
    step(&format!("installing trunk {TRUNK} (about 15 minutes, once)"));
    run(cargo().args(["install", "trunk", "--version", TRUNK, "--locked"]))
        .with_context(|| format!("run by hand: cargo install trunk --version {TRUNK} --locked"))
}
