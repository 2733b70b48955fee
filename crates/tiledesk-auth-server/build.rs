//! Puts the browser module inside the binary when `TILEDESK_AUTH_MODULE_DIR` names a directory of its files
//! (`cargo xtask dist` and `cargo xtask test` set it to `target/module`, written by `cargo xtask pkg`): each file
//! as it is and its gzip and brotli variants, compressed at build time. Without the variable the binary carries no
//! module and answers its paths with a 404 that says how to build it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The files served, with their content type: the one-tag entry, the ES module glue for pages that import it,
/// the WebAssembly it loads, and the TypeScript declarations.
const FILES: [(&str, &str); 4] = [
    ("tiledesk-auth.js", "text/javascript; charset=utf-8"),
    ("tiledesk_auth_web.js", "text/javascript; charset=utf-8"),
    ("tiledesk_auth_web_bg.wasm", "application/wasm"),
    ("tiledesk_auth_web.d.ts", "text/plain; charset=utf-8"),
];

fn main() {
    println!("cargo::rerun-if-env-changed=TILEDESK_AUTH_MODULE_DIR");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut code = String::from("&[\n");
    if let Some(dir) = std::env::var_os("TILEDESK_AUTH_MODULE_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        for (name, content_type) in FILES {
            let [identity, gzip, brotli] =
                ["", ".gz", ".br"].map(|suffix| file(&dir, &format!("{name}{suffix}")));
            writeln!(
                code,
                "    crate::module::Embedded {{ name: {name:?}, content_type: {content_type:?}, \
                 identity: include_bytes!({identity:?}), gzip: include_bytes!({gzip:?}), \
                 brotli: include_bytes!({brotli:?}) }},"
            )
            .expect("writing to a String");
        }
    }
    code.push(']');
    std::fs::write(out.join("module_files.rs"), code).expect("writing OUT_DIR/module_files.rs");
}

/// The absolute path of `dir/name`, which must exist: a half-built module must not be shipped.
fn file(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    println!("cargo::rerun-if-changed={}", path.display());
    let path = path.canonicalize().unwrap_or_else(|err| {
        panic!(
            "TILEDESK_AUTH_MODULE_DIR={}: {name} is missing ({err}); run `cargo xtask pkg` first, or unset the variable",
            dir.display()
        )
    });
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
        .to_owned()
}
