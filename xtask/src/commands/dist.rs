//! What a site installs: the files the service serves (`target/module`, put inside the binary by its build script),
//! the npm package (`target/pkg`, ready to publish as [`NPM_NAME`]), and `cargo xtask dist`: the release binary
//! with the module inside and the package's tarball, in `target/dist`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use base64::Engine as _;
use sha2::{Digest, Sha384};

use crate::commands::{pkg, setup_build};
use crate::process::{cargo, root, run, step, tools_dir};

/// The name the npm package is published under (free on the npm registry when chosen, 2026-12).
pub(crate) const NPM_NAME: &str = "tiledesk-auth";

/// The variable the server's build script reads (see `crates/tiledesk-auth-server/build.rs`).
pub(crate) const MODULE_DIR_VAR: &str = "TILEDESK_AUTH_MODULE_DIR";

/// The files the service serves under `/tiledesk-auth/<version>-<hash>/`, each with `.gz` and `.br` beside it.
pub(crate) fn module_dir() -> PathBuf {
    root().join("target/module")
}

pub(crate) fn dist_dir() -> PathBuf {
    root().join("target/dist")
}

/// `sha384-<base64>` of `bytes`: a Subresource Integrity value.
fn integrity(bytes: &[u8]) -> String {
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    )
}

/// The one-tag entry's source: the glue (imports already renamed) without its `export default`, then
/// `js/one-tag.js` with the `.wasm`'s integrity written in.
pub(crate) fn entry_source(glue: &str, wasm: &[u8]) -> anyhow::Result<String> {
    const EXPORTS: &str = "export { initSync, __wbg_init as default };";
    if glue.matches(EXPORTS).count() != 1 {
        bail!("the JS glue does not name `{EXPORTS}` once: wasm-bindgen changed its output");
    }
    let one_tag = std::fs::read_to_string(root().join("crates/tiledesk-auth-web/js/one-tag.js"))
        .context("crates/tiledesk-auth-web/js/one-tag.js")?;
    const MARKER: &str = "__TILEDESK_AUTH_WASM_INTEGRITY__";
    if one_tag.matches(MARKER).count() != 2 {
        bail!("js/one-tag.js must name {MARKER} twice (its comment and the fetch)");
    }
    let one_tag = one_tag.replacen(&format!("\"{MARKER}\""), &format!("{:?}", integrity(wasm)), 1);
    Ok(format!(
        "{}\n{one_tag}",
        glue.replacen(EXPORTS, "export { initSync };", 1)
    ))
}

/// Minifies an ES module in place with terser (exported names stay).
pub(crate) fn minify(file: &Path) -> anyhow::Result<()> {
    run(Command::new(tools_dir().join("node_modules/.bin/terser"))
        .arg(file)
        .args(["--module", "--compress", "--mangle", "--output"])
        .arg(file))
}

/// Writes `target/module` from the package in `pkg` and the entry file: each file as it is, gzip -9 and brotli 11.
pub(crate) fn write_module(pkg: &Path, entry: &Path) -> anyhow::Result<()> {
    let dir = module_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let files = [
        ("tiledesk-auth.js", entry.to_owned()),
        ("tiledesk_auth_web.js", pkg.join("tiledesk_auth_web.js")),
        ("tiledesk_auth_web_bg.wasm", pkg.join("tiledesk_auth_web_bg.wasm")),
        ("tiledesk_auth_web.d.ts", pkg.join("tiledesk_auth_web.d.ts")),
    ];
    for (name, source) in files {
        let bytes = std::fs::read(&source).with_context(|| source.display().to_string())?;
        std::fs::write(dir.join(name), &bytes)?;
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&bytes)?;
        let gzip = gzip.finish()?;
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gzip.as_slice()), &mut decoded)?;
        if decoded != bytes {
            bail!("{name}.gz does not decode to {name}");
        }
        std::fs::write(dir.join(format!("{name}.gz")), gzip)?;
        let mut brotli = Vec::new();
        let params = brotli::enc::BrotliEncoderParams {
            quality: 11,
            lgwin: 22,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut bytes.as_slice(), &mut brotli, &params)?;
        // Browsers check the integrity of what they decoded: a variant that decodes to other bytes would not load.
        let mut decoded = Vec::new();
        brotli::BrotliDecompress(&mut brotli.as_slice(), &mut decoded)?;
        if decoded != bytes {
            bail!("{name}.br does not decode to {name}");
        }
        std::fs::write(dir.join(format!("{name}.br")), brotli)?;
    }
    Ok(())
}

/// Replaces wasm-pack's `package.json` (named after the crate, no `exports`, a `sideEffects` naming a `snippets/`
/// folder that does not exist) with one ready to publish, and writes the package's README.
pub(crate) fn npm_package(pkg: &Path) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let manifest = serde_json::json!({
        "name": NPM_NAME,
        "version": version,
        "description": "Signs a site's logged-in visitor into the Tiledesk chat widget with a verified token: no race with the loader, no dead session.",
        "license": "MIT OR Apache-2.0",
        "repository": {"type": "git", "url": "https://github.com/tiledesk-auth/tiledesk-auth"},
        "keywords": ["tiledesk", "chat", "widget", "jwt", "authentication", "wasm"],
        "type": "module",
        "main": "./tiledesk_auth_web.js",
        "types": "./tiledesk_auth_web.d.ts",
        "exports": {
            ".": {
                "types": "./tiledesk_auth_web.d.ts",
                "default": "./tiledesk_auth_web.js"
            },
            "./tiledesk_auth_web_bg.wasm": "./tiledesk_auth_web_bg.wasm",
            "./package.json": "./package.json"
        },
        "files": [
            "tiledesk_auth_web.js",
            "tiledesk_auth_web.d.ts",
            "tiledesk_auth_web_bg.wasm",
            "tiledesk_auth_web_bg.wasm.d.ts",
            "README.md",
            "LICENSE-MIT",
            "LICENSE-APACHE"
        ],
        // Importing the module runs nothing: the page calls init() and new TiledeskAuth().
        "sideEffects": false
    });
    std::fs::write(
        pkg.join("package.json"),
        format!("{}\n", serde_json::to_string_pretty(&manifest)?),
    )?;
    std::fs::write(pkg.join("README.md"), NPM_README.replace("{version}", version))?;
    Ok(())
}

const NPM_README: &str = r#"# tiledesk-auth

Signs a site's logged-in visitor into the [Tiledesk](https://tiledesk.com) chat widget with a token your backend
verified, so a customer is the same person to your support team on every device. Loads Tiledesk's widget for you,
waits for it without racing its loader, shows it once the visitor is online, renews the session before the token
expires, and signs out (every tab) on a shared computer.

It needs a token endpoint: the `tiledesk-auth` service (`POST /auth`), or any endpoint of yours that answers
`{"token": "JWT ...", "expires_at": ...}`.

```sh
npm install tiledesk-auth
```

```js
import init, { TiledeskAuth } from "tiledesk-auth";

await init(); // loads tiledesk_auth_web_bg.wasm beside the module (bundlers resolve it)
const auth = new TiledeskAuth({ projectId: "YOUR_TILEDESK_PROJECT_ID", authUrl: "https://auth.example.com/auth" });
auth.onStateChange((s) => console.log(s.status, s.userId, s.error));
await auth.signIn();                                  // the site's session (cookies) says who the visitor is
await auth.signIn({ credentials: { email, password } }); // or the service's own users
await auth.signOut();
```

Bundlers: Vite and webpack 5 resolve the `.wasm` through `new URL("tiledesk_auth_web_bg.wasm", import.meta.url)`
with no configuration. Content-Security-Policy: `script-src 'self' 'wasm-unsafe-eval'` plus the widget's hosts, and
`connect-src` for the token endpoint; the project README has the whole policy.

Types are in `tiledesk_auth_web.d.ts`. Version {version}. MIT OR Apache-2.0.
"#;

/// `cargo xtask dist`: the release service with the module inside, and the npm tarball, in `target/dist`.
pub(crate) fn dist() -> anyhow::Result<()> {
    setup_build()?;
    pkg()?;
    step("building the release service with the browser module inside (a few minutes)");
    run(cargo()
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "tiledesk-auth-server",
            "--bin",
            "tiledesk-auth",
        ])
        .env(MODULE_DIR_VAR, module_dir()))?;
    let dist = dist_dir();
    std::fs::create_dir_all(&dist)?;
    std::fs::copy(
        root().join("target/release/tiledesk-auth"),
        dist.join("tiledesk-auth"),
    )
    .context("target/release/tiledesk-auth")?;
    pack_npm()?;
    println!(
        "\n{}\n{}\n\nPrint the tag for your site: target/dist/tiledesk-auth snippet --base-url https://auth.example.com --project-id <id>",
        dist.join("tiledesk-auth").display(),
        npm_tarball()?.display()
    );
    Ok(())
}

/// `npm pack` of `target/pkg` into `target/dist`; returns the tarball.
pub(crate) fn pack_npm() -> anyhow::Result<PathBuf> {
    step("packing the npm package into target/dist");
    let dist = dist_dir();
    std::fs::create_dir_all(&dist)?;
    let _ = std::fs::remove_file(dist.join(format!("{NPM_NAME}-{}.tgz", env!("CARGO_PKG_VERSION"))));
    run(Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(&dist)
        .arg(root().join("target/pkg")))?;
    npm_tarball()
}

/// The tarball `npm pack` wrote in `target/dist`.
pub(crate) fn npm_tarball() -> anyhow::Result<PathBuf> {
    let path = dist_dir().join(format!("{NPM_NAME}-{}.tgz", env!("CARGO_PKG_VERSION")));
    if !path.is_file() {
        bail!("{} is missing: run `cargo xtask dist`", path.display());
    }
    Ok(path)
}
