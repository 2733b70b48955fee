//! `cargo xtask <command>`: the project's entry points, so a newcomer and CI run the same thing.
//!
//! - `setup`: installs what is missing (idempotent, quiet when everything is there), Trunk included.
//! - `test`: every gate and every test suite; ends with one line `N passed, M failed`.
//! - `demo`: runs the service locally with a throwaway database and a demo user, and prints the URL.
//! - `bench`: every benchmark, side by side with its baseline; writes `BENCHMARKS.md` (see `bench.rs`).
//! - `fuzz [CASES]`: the property tests with many more cases than `test` runs (default 20 000 per property).
//! - `dev`: the dev loop: the service and the mock, and `trunk serve` with live reload (installs Trunk).
//! - `pkg`: the browser module as an npm package in `target/pkg`, size-optimised, and the files the service serves
//!   (the one-tag entry among them) in `target/module`.
//! - `dist`: the release service with the browser module inside, and the npm tarball, in `target/dist`.
//! - `image`: a container image from scratch (static binary, CA certificates, non-root, HEALTHCHECK), built with
//!   buildah into `target/dist/tiledesk-auth-image.tar` and run once (see `commands/image.rs`).
//! - `widget`: Tiledesk's real widget, built from source into `target/tiledesk-widget/dist` (see `widget.rs`).

// A command-line tool's output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

mod commands;
mod process;

use commands::*;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // Everything, Trunk included; `test` installs only what the tests need.
        Some("setup") => setup().and_then(|()| install_trunk()),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("dev") => dev(),
        Some("dev-assets") => dev_assets(),
        Some("widget") => commands::widget::widget(),
        Some("dist") => commands::dist::dist(),
        Some("image") => commands::image::image(),
        Some("pkg") => setup().and_then(|()| pkg()).map(|out| {
            println!(
                "package ready in {}; the files the service serves in {}",
                out.display(),
                commands::dist::module_dir().display()
            );
        }),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup | test | demo | dev | bench | fuzz [CASES] | pkg | dist | image | widget>"
            );
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
