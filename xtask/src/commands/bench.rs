//! `cargo xtask bench`: every figure of `BENCHMARKS.md`, measured in one run on this machine, each comparison side
//! by side (same load generator, concurrency, body and duration; interleaved rounds; medians).
//!
//! `cargo xtask bench --quick` runs shorter rounds and writes `target/bench/BENCHMARKS.md` (for checking the
//! harness, not for publishing); `--only <mint|tokens|floor|operations|curve|flood|soak|replicas|browser|real|attacks>` runs one section
//! (`browser` with `real`: the module in the browser, then on Tiledesk's real widget).
//!
//! What a person writes into `BENCHMARKS.md` beside the figures (what was tried, why a figure is what it is) goes
//! between `<!-- notes -->` and `<!-- /notes -->` at the end of its section: every run carries it over to the end of
//! the section of the same heading (`report::with_notes`), so a run replaces the figures and never the analysis.

mod attacks;
mod browser;
mod flood;
mod load;
mod logins;
mod replicas;
mod report;
mod servers;
mod service;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use tiledesk_test_support::Process;

use crate::commands::{pkg, setup_build};
use crate::process::{build_binaries, cargo, command_output, random_hex, root, run, step};

use load::*;
use report::*;
use servers::*;

/// The request body both token servers get: the claims of the README's example.
const TOKEN_BODY: &str = r#"{"user_id":"42","firstname":"Andrew","lastname":"Wiles","email":"andrew@scientists.com","attributes":{"plan":"pro"}}"#;
const BENCH_EMAIL: &str = "bench@example.com";

/// Durations and round counts; `--quick` shrinks them.
struct Plan {
    quick: bool,
    rounds: usize,
    run_secs: u32,
    curve_secs: u32,
    flood_secs: u32,
    warmup_secs: u32,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                rounds: 3,
                run_secs: 1,
                curve_secs: 1,
                flood_secs: 2,
                warmup_secs: 1,
            }
        } else {
            Self {
                quick,
                rounds: 3,
                run_secs: 5,
                curve_secs: 3,
                flood_secs: 10,
                warmup_secs: 3,
            }
        }
    }
}

pub(crate) fn bench(args: &[String]) -> anyhow::Result<()> {
    let plan = Plan::new(args.iter().any(|a| a == "--quick"));
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let wanted = |section: &str| only.is_none_or(|o| o == section);
    setup_build()?;
    install_wrk()?;
    let baseline_dir = root().join("bench/baseline-node");
    step("installing the Node baseline's packages (npm ci, from the committed lockfile)");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&baseline_dir))?;
    step("building the release tiledesk-auth");
    run(cargo().args([
        "build",
        "--release",
        "--quiet",
        "--package",
        "tiledesk-auth-server",
        "--package",
        "baseline-axum",
    ]))?;
    step("building the mock Tiledesk and the browser package");
    build_binaries()?;
    let package = pkg()?;

    let dir = root().join("target/bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let project = Project::create(&dir)?;
    let mut report = Report::default();

    if wanted("mint") {
        service::mint(&plan, &mut report)?;
    }
    if wanted("tokens") {
        service::side_by_side(&plan, &project, &dir, &mut report)?;
    }
    if wanted("floor") {
        service::floor(&plan, &project, &dir, &mut report)?;
    }
    if wanted("operations") {
        service::operations(&plan, &project, &dir, &mut report)?;
    }
    if wanted("curve") {
        service::curve_and_memory(&plan, &project, &dir, &mut report)?;
    }
    if wanted("flood") {
        logins::login_flood(&plan, &project, &dir, &mut report)?;
    }
    if wanted("soak") {
        logins::soak(&plan, &project, &dir, &mut report)?;
    }
    if wanted("replicas") {
        crate::commands::setup_databases()?;
        replicas::replicas(&plan, &project, &dir, &mut report)?;
    }
    if wanted("browser") {
        browser::browser(&plan, &package, &mut report)?;
    }
    // `--only browser` measures the module on the real widget too (its ratio to the inline-token floor); `--only real`
    // that alone.
    if wanted("real") || only == Some("browser") {
        browser::real_widget(&plan, &mut report)?;
    }
    if wanted("attacks") && !plan.quick {
        step("the attacks of issue 11, against a fresh release server each (into SECURITY.md)");
        let table = attacks::run(&project, &dir)?;
        println!("{table}");
        write_between_markers(&root().join("SECURITY.md"), "attacks", &table)?;
    }

    let path = if plan.quick || only.is_some() {
        dir.join("BENCHMARKS.md")
    } else {
        root().join("BENCHMARKS.md")
    };
    // What was written by hand beside the figures (`<!-- notes -->`) is carried over, section by section.
    let existing = std::fs::read_to_string(root().join("BENCHMARKS.md")).unwrap_or_default();
    std::fs::write(&path, with_notes(&report.markdown(&plan)?, &existing))?;
    println!("\n{}", report.summary.join("\n"));
    println!("\nwrote {}", path.display());
    Ok(())
}

/// Replaces what lies between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in `path` with `text`.
fn write_between_markers(path: &Path, name: &str, text: &str) -> anyhow::Result<()> {
    let document = std::fs::read_to_string(path)?;
    let (begin, end) = (format!("<!-- {name}:begin -->\n"), format!("<!-- {name}:end -->"));
    let (Some(start), Some(stop)) = (document.find(&begin), document.find(&end)) else {
        bail!("{} has no {begin:?} ... {end:?} markers", path.display());
    };
    let updated = format!("{}{begin}{text}{}", &document[..start], &document[stop..]);
    std::fs::write(path, updated)?;
    Ok(())
}

fn install_wrk() -> anyhow::Result<()> {
    if Path::new("/usr/bin/wrk").exists() {
        return Ok(());
    }
    step("installing wrk (Debian)");
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get").args(["install", "-y", "-qq", "wrk"]))
        .context("install wrk by hand: apt-get install wrk")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn kib(value: u64) -> String {
    format!("{:.1} MiB", value as f64 / 1024.0)
}
