//! The browser module served by the service (`/tiledesk-auth/<version>-<hash>/<file>`): public, cached for a year,
//! precompressed variants chosen by `Accept-Encoding`, revalidated by `ETag`; a binary built without the module says
//! how to build it.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use common::{Options, test_app};
use tiledesk_auth_server::module::{BrowserModule, ENTRY, ModuleFile};

/// A module of two files whose variants are told apart by their bytes.
fn module() -> Arc<BrowserModule> {
    Arc::new(BrowserModule::new([
        ModuleFile::new(
            ENTRY,
            "text/javascript; charset=utf-8",
            [
                Bytes::from_static(b"export const entry = 1;"),
                Bytes::from_static(b"GZIP-OF-ENTRY"),
                Bytes::from_static(b"BROTLI-OF-ENTRY"),
            ],
        ),
        ModuleFile::new(
            "tiledesk_auth_web_bg.wasm",
            "application/wasm",
            [
                Bytes::from_static(b"\0asm-as-it-is"),
                Bytes::from_static(b"GZIP-OF-WASM"),
                Bytes::from_static(b"BROTLI-OF-WASM"),
            ],
        ),
    ]))
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn the_files_are_public_cached_for_a_year_and_precompressed() {
    let module = module();
    let app = test_app(Options {
        module: Some(Arc::clone(&module)),
        // A listed origin gets credentialed CORS on /auth; the module's files stay `*` without credentials.
        origins: vec!["https://www.example.com"],
        ..Options::default()
    })
    .await;
    let wasm = module.path_of("tiledesk_auth_web_bg.wasm");
    assert!(wasm.starts_with("/tiledesk-auth/0.1.0-"), "{wasm}");

    let mut etags = Vec::new();
    for (accept, body, encoding) in [
        (None, "\0asm-as-it-is", None),
        (Some("gzip, deflate"), "GZIP-OF-WASM", Some("gzip")),
        (Some("gzip, deflate, br, zstd"), "BROTLI-OF-WASM", Some("br")),
        (Some("br;q=0, gzip"), "GZIP-OF-WASM", Some("gzip")),
    ] {
        let mut headers = vec![("origin", "https://www.example.com")];
        headers.extend(accept.map(|a| ("accept-encoding", a)));
        let reply = app.send(get(&wasm, &headers)).await;
        assert_eq!(reply.status, StatusCode::OK, "{accept:?}");
        assert_eq!(reply.text, body, "{accept:?}");
        assert_eq!(reply.header("content-encoding"), encoding, "{accept:?}");
        assert_eq!(reply.header("content-type"), Some("application/wasm"));
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(reply.header("vary"), Some("accept-encoding"));
        assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
        assert_eq!(reply.header("access-control-allow-credentials"), None);
        assert_eq!(reply.header("cross-origin-resource-policy"), Some("cross-origin"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        etags.push(reply.header("etag").unwrap().to_owned());
    }
    // One tag per representation, the same one for the same representation.
    assert_eq!(etags[1], etags[3]);
    assert_eq!(
        etags.iter().collect::<std::collections::HashSet<_>>().len(),
        3,
        "{etags:?}"
    );

    // Revalidation: the same representation's tag is 304 without a body; another's is the file again.
    let reply = app
        .send(get(
            &wasm,
            &[("accept-encoding", "gzip"), ("if-none-match", &etags[1])],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);
    assert_eq!(reply.text, "");
    assert_eq!(reply.header("etag"), Some(etags[1].as_str()));
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
    let reply = app
        .send(get(
            &wasm,
            &[("accept-encoding", "br"), ("if-none-match", &etags[1])],
        ))
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (StatusCode::OK, "BROTLI-OF-WASM")
    );

    let entry = app.send(get(&module.path_of(ENTRY), &[])).await;
    assert_eq!(
        entry.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(entry.text, "export const entry = 1;");

    // HEAD answers the headers.
    let head = app
        .send(
            Request::head(&wasm)
                .header("accept-encoding", "br")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(head.text, "");
}

#[tokio::test]
async fn another_build_or_file_is_a_404_that_names_the_current_entry() {
    let module = module();
    let app = test_app(Options {
        module: Some(Arc::clone(&module)),
        ..Options::default()
    })
    .await;
    let reply = app
        .send(get("/tiledesk-auth/0.0.9-000000000000/tiledesk-auth.js", &[]))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "module_not_here")
    );
    let message = reply.json["message"].as_str().unwrap();
    assert!(message.contains(&module.path_of(ENTRY)), "{message}");
    assert!(message.contains("tiledesk-auth snippet"), "{message}");
    for missing in [
        format!("/tiledesk-auth/{}/secret.txt", module.dir()),
        format!("/tiledesk-auth/{}/", module.dir()),
        format!("/tiledesk-auth/{}/../Cargo.toml", module.dir()),
    ] {
        let reply = app.send(get(&missing, &[])).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store"),
            "an error is never cached"
        );
    }
    let reply = app
        .send(Request::post(module.path_of(ENTRY)).body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_binary_without_the_module_says_how_to_build_it() {
    let app = test_app(Options::default()).await;
    let reply = app
        .send(get("/tiledesk-auth/0.1.0-abcdef012345/tiledesk-auth.js", &[]))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::NOT_FOUND, "module_not_built")
    );
    assert!(
        reply.json["message"]
            .as_str()
            .unwrap()
            .contains("cargo xtask dist"),
        "{}",
        reply.text
    );
}

/// The binary as built for this test run: with the module when `TILEDESK_AUTH_MODULE_DIR` was set for the build
/// (`cargo xtask test` sets it), else without. Either way `serve --check` and `snippet` say which, and agree with
/// what the library reports.
#[test]
fn serve_check_and_snippet_say_whether_the_module_is_inside() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("users.db").display());
    let env = [
        ("TILEDESK_PROJECT_ID", common::PROJECT),
        ("TILEDESK_SECRET", common::SECRET),
        ("TILEDESK_AUTH_DATABASE", db.as_str()),
    ];
    let (_, check, _) = common::run_cli(&["serve", "--check"], &env, "");
    let (code, snippet, stderr) =
        common::run_cli(&["snippet", "--base-url", "https://auth.example.com"], &env, "");
    match BrowserModule::embedded() {
        Some(module) => {
            let entry = module.entry().unwrap();
            assert!(
                check.contains(&format!("module        inside: {}", module.path_of(ENTRY))),
                "{check}"
            );
            assert_eq!(code, 0, "{stderr}");
            assert!(
                snippet.contains(&format!(
                    "src=\"https://auth.example.com{}\" integrity=\"{}\"",
                    module.path_of(ENTRY),
                    entry.integrity()
                )),
                "{snippet}"
            );
            assert!(snippet.contains(&format!("data-project-id=\"{}\"", common::PROJECT)));
        }
        None => {
            assert!(check.contains("module        not inside"), "{check}");
            assert_eq!(code, 2);
            assert!(stderr.contains("cargo xtask dist"), "{stderr}");
        }
    }
}
