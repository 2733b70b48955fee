//! `cargo xtask pkg`: the browser module as an npm package in `target/pkg`, size-optimised, and the files the service
//! serves in `target/module`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::commands::*;
use crate::process::*;
use anyhow::{Context, bail};

mod imports;

/// How the release module's std is built (from the toolchain's `rust-src`, `-Zbuild-std`): a panic is the
/// `unreachable` trap it already was on wasm32, without std's panic machinery (the hook, the message formatting, the
/// payload), whose code every module carried: 3.6 KiB gzipped; no source locations and empty `Debug` output
/// (nothing the module shows uses `Debug`): 0.7 KiB more. Unstable flags, so `RUSTC_BOOTSTRAP=1` for this one
/// build; the browser tests and `cargo test` build the module as usual, with std's panics and their messages.
const SMALL_STD: [&str; 4] = [
    "-Zunstable-options",
    "-Cpanic=immediate-abort",
    "-Zfmt-debug=none",
    "-Zlocation-detail=none",
];

/// Builds the browser module with the size profile, optimises it with wasm-opt -Oz, gives its imports short names
/// (module and glue alike), minifies the glue, and checks that the two still link.
pub(crate) fn pkg() -> anyhow::Result<PathBuf> {
    let out = root().join("target/pkg");
    // Panic locations embed source paths; shortened, they cost fewer bytes on the wire.
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("no CARGO_HOME or HOME")?;
    let rustc_hash = command_output("rustc", &["-vV"])
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("commit-hash: ").map(str::to_owned))
        })
        .unwrap_or_default();
    let rustflags = format!(
        "--remap-path-prefix={}=/cargo --remap-path-prefix={}=/src --remap-path-prefix=/rustc/{rustc_hash}=/rustc {}",
        cargo_home.join("registry/src").display(),
        root().display(),
        SMALL_STD.join(" "),
    );
    run(wasm_pack()
        .env("RUSTFLAGS", rustflags)
        // The stable compiler's own unstable flags, for this build only: see SMALL_STD.
        .env("RUSTC_BOOTSTRAP", "1")
        .args([
            "build",
            "--target",
            "web",
            "--profile",
            "wasm-release",
            "--no-opt",
            "--mode",
            "no-install",
            "--out-dir",
        ])
        .arg(&out)
        .arg("crates/tiledesk-auth-web")
        .args(["--", "-Zbuild-std=std,panic_abort"])
        // std's smaller variants where it has two (sorting, formatting, searching): 1.0 KiB gzipped.
        .arg("-Zbuild-std-features=optimize_for_size"))?;
    let wasm = out.join("tiledesk_auth_web_bg.wasm");
    let optimised = out.join("tiledesk_auth_web_bg.opt.wasm");
    run(Command::new(npm_wasm_opt())
        .arg(&wasm)
        .arg("-o")
        .arg(&optimised)
        .args([
            "-Oz",
            // Until nothing shrinks: 0.3 KiB gzipped, a few seconds.
            "--converge",
            "--enable-bulk-memory",
            "--enable-reference-types",
            "--enable-multivalue",
            "--enable-sign-ext",
        ])
        .args(["--enable-mutable-globals", "--enable-nontrapping-float-to-int"]))?;
    // Short import names, the same in the module and its glue (see imports.rs).
    let glue = out.join("tiledesk_auth_web.js");
    let shortened =
        imports::shorten(&std::fs::read(&optimised)?).context("shortening the module's imports")?;
    let renamed = imports::rename_in_glue(&std::fs::read_to_string(&glue)?, &shortened)
        .context("renaming the imports in the JS glue")?;
    std::fs::write(&wasm, &shortened.wasm)?;
    std::fs::remove_file(&optimised)?;
    // The one-tag entry: the glue and the code that reads the tag, one file under one integrity hash.
    let entry = root().join("target/tiledesk-auth.js");
    std::fs::write(&entry, dist::entry_source(&renamed, &shortened.wasm)?)?;
    std::fs::write(&glue, renamed)?;
    // The glue is an ES module: top-level names that are exported stay as they are.
    dist::minify(&glue)?;
    dist::minify(&entry)?;
    check_links(&out)?;
    dist::npm_package(&out)?;
    dist::write_module(&out, &entry)?;
    let _ = MODULE_BUILT.set(());
    Ok(out)
}

/// Instantiates the package's module with its own glue in Node: every import the module names must be one the glue
/// gives (a rename that missed one fails here, not in a visitor's browser).
pub(crate) fn check_links(out: &Path) -> anyhow::Result<()> {
    const SCRIPT: &str = r#"
        import { readFileSync } from "node:fs";
        import { pathToFileURL } from "node:url";
        const dir = process.argv[1];
        const glue = await import(pathToFileURL(dir + "/tiledesk_auth_web.js"));
        const bytes = readFileSync(dir + "/tiledesk_auth_web_bg.wasm");
        const wanted = WebAssembly.Module.imports(new WebAssembly.Module(bytes)).length;
        glue.initSync({ module: bytes });
        try { new glue.TiledeskAuth({}); throw new Error("options without projectId were accepted"); }
        catch (e) { if (e.code !== "bad_options") throw e; }
        console.log(`  the module's ${wanted} imports link to its glue`);
    "#;
    run(Command::new("node")
        .args(["--input-type=module", "--eval", SCRIPT])
        .arg(out))
    .context("the package's module does not instantiate with its glue")
}

/// The `.wasm` and JS glue of the package in `out`, each `gzip -9`, summed.
pub(crate) fn wasm_size_of(out: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for file in ["tiledesk_auth_web_bg.wasm", "tiledesk_auth_web.js"] {
        let output = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(out.join(file))
            .output()
            .context("gzip")?;
        if !output.status.success() {
            bail!("gzip {file} failed");
        }
        println!("  {file}: {} bytes gzipped", output.stdout.len());
        total += output.stdout.len() as u64;
    }
    Ok(total)
}

pub(crate) fn wasm_pack() -> Command {
    let mut command = Command::new("wasm-pack");
    command.current_dir(root());
    command
}
