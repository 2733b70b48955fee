//! `cargo xtask widget`: Tiledesk's real chat widget (chat21-web-widget), built from source into
//! `target/tiledesk-widget/dist`, cached by the source's hash so a second run costs nothing.
//!
//! The source comes from, in order: `TILEDESK_WIDGET_SRC` (a directory or a `.tar.gz`), the tarball vendored beside
//! this repository for its developers (`../shared/vendor/`, checked against its `SHA256SUMS`), or a `git clone` of
//! Tiledesk's repository at the tested commit. The build is the one Tiledesk's Dockerfile runs, with one change
//! that makes it work offline: a build configuration without font inlining (the `prod` one downloads Google Fonts),
//! added to `angular.json` by code.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::process::{command_output, have, root, run, step};

/// The widget version the tests and the demo run against.
pub(crate) const VERSION: &str = "5.2.3";
/// Its commit in Tiledesk's repository ("package ver: 5.2.3").
const COMMIT: &str = "b69eae3";
const REPOSITORY: &str = "https://github.com/Tiledesk/chat21-web-widget";
const TARBALL: &str = "chat21-web-widget-5.2.3.tar.gz";
/// The configuration added to `angular.json`: `prod` without font inlining.
const CONFIGURATION: &str = "offline";

fn work_dir() -> PathBuf {
    root().join("target/tiledesk-widget")
}

/// Where the built widget is: the directory a loader URL points at (`launch.js`, `widget-config.json`...).
pub(crate) fn dist_dir() -> PathBuf {
    work_dir().join("dist")
}

/// A source of the widget's code.
enum Source {
    Directory(PathBuf),
    Tarball(PathBuf),
    /// The last resort; `tried` says what was tried before it, for the error when it fails too.
    Git {
        tried: Vec<String>,
    },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Self::Directory(dir) => format!("the directory {}", dir.display()),
            Self::Tarball(file) => format!("the tarball {}", file.display()),
            Self::Git { .. } => format!("{REPOSITORY} at {COMMIT}"),
        }
    }
}

/// The vendored tarball, for the project's own developers: it sits beside the repository, not in it.
fn vendored() -> PathBuf {
    let dir = root().join("../shared/vendor");
    dir.canonicalize().unwrap_or(dir).join(TARBALL)
}

fn sha256_of_file(path: &Path) -> anyhow::Result<String> {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("sha256sum")?;
    if !output.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A cache key for a source directory: every file's path, size and modification time.
fn hash_of_directory(dir: &Path) -> anyhow::Result<String> {
    fn walk(dir: &Path, base: &Path, lines: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if [".git", "node_modules", "dist", ".angular"]
                .iter()
                .any(|skip| name == *skip)
            {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(&entry.path(), base, lines)?;
            } else {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let path = entry.path();
                let relative = path.strip_prefix(base).unwrap_or(&path);
                lines.push(format!("{} {} {modified}", relative.display(), meta.len()));
            }
        }
        Ok(())
    }
    let mut lines = Vec::new();
    walk(dir, dir, &mut lines).with_context(|| format!("reading {}", dir.display()))?;
    lines.sort();
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("sha256sum")?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("piped")?,
        lines.join("\n").as_bytes(),
    )?;
    let output = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Picks the source and its cache key. Tried in order; the error lists every one tried and why it was not used.
fn find_source() -> anyhow::Result<(Source, String)> {
    let mut tried = Vec::new();
    match std::env::var_os("TILEDESK_WIDGET_SRC").map(PathBuf::from) {
        Some(path) if path.is_dir() => {
            let hash = hash_of_directory(&path)?;
            return Ok((Source::Directory(path), format!("dir-{hash}")));
        }
        Some(path) if path.is_file() => {
            let hash = sha256_of_file(&path)?;
            return Ok((Source::Tarball(path), hash));
        }
        Some(path) => bail!(
            "TILEDESK_WIDGET_SRC is {}, which is neither a directory nor a file",
            path.display()
        ),
        None => tried.push("TILEDESK_WIDGET_SRC: not set".to_owned()),
    }
    let tarball = vendored();
    if tarball.is_file() {
        let sums = std::fs::read_to_string(tarball.with_file_name("SHA256SUMS")).unwrap_or_default();
        let expected = sums
            .lines()
            .find(|l| l.ends_with(TARBALL))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned);
        let actual = sha256_of_file(&tarball)?;
        match expected {
            Some(expected) if expected == actual => return Ok((Source::Tarball(tarball), actual)),
            Some(expected) => bail!(
                "{} has SHA-256 {actual}, but SHA256SUMS says {expected}: refusing to build it",
                tarball.display()
            ),
            None => tried.push(format!("{}: no SHA256SUMS entry for it", tarball.display())),
        }
    } else {
        tried.push(format!("{}: not there", tarball.display()));
    }
    if have("git", "--version") {
        return Ok((Source::Git { tried }, format!("git-{COMMIT}")));
    }
    tried.push("git clone: git is not installed".to_owned());
    bail!("{}", no_source(&tried))
}

/// The one error when no source can be had: every source tried, and how to provide one.
fn no_source(tried: &[String]) -> String {
    format!(
        "no source for Tiledesk's widget {VERSION}. Tried:\n  - {}\nProvide one: TILEDESK_WIDGET_SRC=<a checkout or a \
         `git archive` tarball of {REPOSITORY} at {COMMIT}>",
        tried.join("\n  - ")
    )
}

/// Unpacks or copies the source into `into` (emptied first).
fn prepare_source(source: &Source, into: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into)?;
    match source {
        Source::Tarball(file) => run(Command::new("tar")
            .arg("-xzf")
            .arg(file)
            .arg("--strip-components=1")
            .arg("-C")
            .arg(into)),
        Source::Directory(dir) => copy_tree(dir, into),
        Source::Git { tried } => {
            if let Err(err) = run(Command::new("git")
                .args(["clone", "--quiet", REPOSITORY])
                .arg(into))
            {
                let mut tried = tried.clone();
                tried.push(format!("git clone {REPOSITORY}: failed (offline?): {err:#}"));
                bail!("{}", no_source(&tried));
            }
            run(Command::new("git")
                .arg("-C")
                .arg(into)
                .args(["checkout", "--quiet", COMMIT]))
        }
    }
}

/// Copies a source tree, without what a build makes (another machine's node_modules is no use).
fn copy_tree(dir: &Path, into: &Path) -> anyhow::Result<()> {
    let mut producer = Command::new("tar")
        .args([
            "--exclude=./node_modules",
            "--exclude=./dist",
            "--exclude=./.angular",
            "-C",
        ])
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("tar")?;
    let status = Command::new("tar")
        .args(["-xf", "-", "-C"])
        .arg(into)
        .stdin(producer.stdout.take().context("piped")?)
        .status()?;
    if !(producer.wait()?.success() && status.success()) {
        bail!("copying {} failed", dir.display());
    }
    Ok(())
}

/// The `angular.json` edit: a configuration that is `prod` without font inlining, so the build needs no network.
const ADD_CONFIGURATION: &str = r#"
const fs = require("fs");
const angular = JSON.parse(fs.readFileSync("angular.json", "utf8"));
const project = Object.keys(angular.projects)[0];
const configurations = angular.projects[project].architect.build.configurations;
if (!configurations.prod) throw new Error("angular.json has no prod configuration");
configurations[process.argv[1]] = Object.assign({}, configurations.prod, {
  optimization: { scripts: true, styles: { minify: true, inlineCritical: true }, fonts: false },
});
fs.writeFileSync("angular.json", JSON.stringify(angular, null, 2));
"#;

/// Builds the widget unless the build of the same source is there already; returns the `dist` directory.
pub(crate) fn ensure_built() -> anyhow::Result<PathBuf> {
    let (source, hash) = find_source()?;
    let dist = dist_dir();
    let stamp = dist.join(".source-hash");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == hash) && dist.join("launch.js").is_file() {
        return Ok(dist);
    }
    step(&format!(
        "building Tiledesk's widget {VERSION} from {} (about 2 minutes: npm ci, then an Angular build)",
        source.describe()
    ));
    let started = Instant::now();
    let src = work_dir().join("src");
    prepare_source(&source, &src)?;
    let npm = |args: &[&str]| {
        let mut command = Command::new("npm");
        command
            .args(args)
            .current_dir(&src)
            .env("NG_CLI_ANALYTICS", "false")
            .env("CI", "true");
        command
    };
    run(&mut npm(&["ci", "--no-audit", "--no-fund", "--loglevel=error"]))
        .context("npm ci in the widget's source")?;
    run(&mut npm(&["run", "--silent", "copy-onnx-wasm"]))?;
    run(Command::new("node")
        .args(["-e", ADD_CONFIGURATION, CONFIGURATION])
        .current_dir(&src))
    .context("adding the offline build configuration to angular.json")?;
    let configuration = format!("--configuration={CONFIGURATION}");
    run(&mut npm(&[
        "exec",
        "--",
        "ng",
        "build",
        &configuration,
        "--output-path=dist",
        "--base-href=./",
        "--output-hashing=none",
    ]))
    .context("the widget's Angular build")?;
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::rename(src.join("dist/browser"), &dist).context("moving the build into place")?;
    std::fs::write(&stamp, &hash)?;
    // The sources and node_modules (~600 MB) are not needed once built.
    let _ = std::fs::remove_dir_all(&src);
    println!(
        "Tiledesk's widget {VERSION} built in {:.0} s into {}",
        started.elapsed().as_secs_f64(),
        dist.display()
    );
    Ok(dist)
}

/// `cargo xtask widget`.
pub(crate) fn widget() -> anyhow::Result<()> {
    if command_output("node", &["--version"]).is_none() {
        bail!("Node.js and npm are needed to build the widget (Debian: apt-get install nodejs npm)");
    }
    let dist = ensure_built()?;
    println!("Tiledesk's widget {VERSION}: {}", dist.display());
    Ok(())
}
