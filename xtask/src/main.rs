//! `cargo xtask <command>`: the project's entry points, so a newcomer and CI run the same thing.
//!
//! - `setup`: installs what is missing (idempotent, quiet when everything is there).
//! - `test`: every gate and every test suite; ends with one line `N passed, M failed`.
//! - `demo`: runs the service locally with a throwaway database and a demo user, and prints the URL.
//! - `bench`: the benchmarks.

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;

use anyhow::{Context, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup(),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <setup | test | demo | bench>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

fn step(title: &str) {
    println!("\n==> {title}");
}

/// Runs a command to completion, failing with the command line when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------- setup

fn setup() -> anyhow::Result<()> {
    let installed = String::from_utf8(
        Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .context("rustup")?
            .stdout,
    )?;
    for component in ["rustfmt", "clippy"] {
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
    if !have("node", "--version") || !have("npm", "--version") {
        bail!(
            "Node.js and npm are needed for the Tiledesk interop test; install them (Debian: apt-get install nodejs npm)"
        );
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------- test

/// Test counts read from the runners' closing lines.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Reads a `cargo test` closing line: `test result: ok. 26 passed; 0 failed; ...`.
    fn read(&mut self, line: &str) {
        let Some(rest) = line.split("test result: ").nth(1) else {
            return;
        };
        let count = |word: &str| {
            rest.split(';')
                .find_map(|part| {
                    part.trim()
                        .strip_suffix(word)
                        .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
                })
                .unwrap_or(0)
        };
        self.passed += count("passed");
        self.failed += count("failed");
    }
}

/// Runs a command, echoing its output, and counts the tests its closing lines report.
fn run_counted(command: &mut Command, tally: &mut Tally) -> anyhow::Result<()> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?;
    let (sender, lines) = mpsc::channel::<(bool, String)>();
    let pipes: [(bool, Box<dyn Read + Send>); 2] = [
        (false, Box::new(child.stdout.take().expect("piped"))),
        (true, Box::new(child.stderr.take().expect("piped"))),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .map(|(is_err, pipe)| {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = sender.send((is_err, line));
                }
            })
        })
        .collect();
    drop(sender);
    for (is_err, line) in lines {
        tally.read(&line);
        if is_err {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    setup()?;
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    // A gate counts as one check; a test suite counts its tests (and one failure if it breaks without
    // reporting a failed test, e.g. when it does not compile).
    let mut gate = |title: &str, command: &mut Command, is_suite: bool| {
        step(title);
        let failed_before = tally.failed;
        match run_counted(command, &mut tally) {
            Ok(()) if !is_suite => tally.passed += 1,
            Ok(()) => {}
            Err(err) => {
                eprintln!("FAILED: {title}: {err:#}");
                if !is_suite || tally.failed == failed_before {
                    tally.failed += 1;
                }
                failures.push(title.to_owned());
            }
        }
    };
    gate(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--", "--check"]),
        false,
    );
    gate(
        "clippy (host)",
        cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        false,
    );
    gate(
        "clippy (wasm32: the token core compiles for any target)",
        cargo().args([
            "clippy",
            "--package",
            "tiledesk-jwt",
            "--target",
            "wasm32-unknown-unknown",
            "--",
            "-D",
            "warnings",
        ]),
        false,
    );
    gate(
        "rustdoc -D warnings",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--quiet"])
            .env("RUSTDOCFLAGS", "-D warnings"),
        false,
    );
    gate(
        "cargo test --workspace",
        cargo().args(["test", "--workspace"]),
        true,
    );

    println!();
    if !failures.is_empty() {
        println!("failed: {}", failures.join(", "));
    }
    if tally.passed == 0 {
        println!("no test ran");
        tally.failed += 1;
    }
    // The summary is the last line, for people and for CI.
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------- demo

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("/dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn demo() -> anyhow::Result<()> {
    step("building tiledesk-auth");
    run(cargo().args(["build", "--quiet", "--package", "tiledesk-auth-server"]))?;
    let binary = root().join("target/debug/tiledesk-auth");

    let dir = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let project_id = random_hex(12)?; // the shape of a Tiledesk project id
    let secret_file = dir.join("project-secret");
    std::fs::write(&secret_file, random_hex(24)?)?;
    let database = format!("sqlite://{}", dir.join("users.db").display());
    let email = "andrew@scientists.com";
    let password = random_hex(8)?;

    step(&format!("creating the demo user {email}"));
    let mut add = Command::new(&binary)
        .args([
            "users",
            "add",
            "--database",
            &database,
            "--email",
            email,
            "--first-name",
            "Andrew",
        ])
        .args(["--last-name", "Wiles", "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        &mut add.stdin.take().expect("piped"),
        format!("{password}\n").as_bytes(),
    )?;
    if !add.wait()?.success() {
        bail!("could not create the demo user");
    }

    let listen = "127.0.0.1:3000";
    println!(
        "\nThe demo service is starting on http://{listen} (project {project_id}).\n\
         Demo user: {email}, password: {password} (printed once; the database is in target/demo).\n\
         Sign in and get a Tiledesk token:\n\n  \
         curl -s http://{listen}/auth -H 'content-type: application/json' \\\n    \
         -d '{{\"email\": \"{email}\", \"password\": \"{password}\"}}'\n\n\
         Stop with Ctrl-C.\n"
    );
    let status = Command::new(&binary)
        .args(["serve", "--listen", listen, "--database", &database])
        .env("TILEDESK_PROJECT_ID", &project_id)
        .env("TILEDESK_SECRET_FILE", &secret_file)
        .env_remove("TILEDESK_SECRET")
        .status()?;
    if !status.success() {
        bail!("tiledesk-auth exited with {status}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------- bench

fn bench(extra: &[String]) -> anyhow::Result<()> {
    step("criterion: minting against a bare HMAC-SHA256");
    run(cargo()
        .args(["bench", "--package", "tiledesk-jwt", "--bench", "mint", "--"])
        .args(extra))
}
