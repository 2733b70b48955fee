//! Tiledesk's own verification stack (passport-jwt 4 + jsonwebtoken 8, configured as tiledesk-server's
//! `middleware/passport.js`, run in Node by `tests/interop/verify.js`) accepts the tokens this project
//! mints through every route, and rejects tampered, wrong-secret and expired ones.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{API_KEY, Options, PROJECT, SECRET, post_json, run_cli, test_app, with_api_key, write_input};
use serde_json::{Value, json};
use tiledesk_jwt::{ProjectSecret, TokenIssuer, VisitorClaims};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Installs the pinned npm packages from the committed lockfile, once.
fn ensure_node_modules() {
    let dir = interop_dir();
    if dir.join("node_modules/passport-jwt/package.json").exists()
        && dir.join("node_modules/jsonwebtoken/package.json").exists()
    {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("npm is needed for the Tiledesk interop test (Node.js 18 or later)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs Tiledesk's verification on each (name, Authorization value); returns the outcome per name.
fn tiledesk_verifies(tokens: &[(&str, String)]) -> Vec<Value> {
    ensure_node_modules();
    let input = json!({
        "projects": { PROJECT: SECRET, "other-project": "other-secret" },
        "tokens": tokens.iter().map(|(name, auth)| json!({"name": name, "authorization": auth})).collect::<Vec<_>>(),
    });
    let mut child = Command::new("node")
        .arg("verify.js")
        .current_dir(interop_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is needed for the Tiledesk interop test");
    // If node stops early (a missing package), its stderr below says why.
    write_input(&mut child, input.to_string().as_bytes());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "verify.js failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), tokens.len());
    results
}

#[tokio::test]
async fn tiledesk_accepts_our_tokens_and_rejects_bad_ones() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let user = app
        .add_user("andrew@scientists.com", "correct horse", Some("Andrew"))
        .await;

    let from_auth = app
        .send(post_json(
            "/auth",
            r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#,
        ))
        .await;
    assert_eq!(from_auth.status, 200, "{}", from_auth.text);
    let from_tokens = app
        .send(with_api_key(
            post_json(
                "/tokens",
                r#"{"user_id": "site-7", "firstname": "Marie", "lastname": "Curie"}"#,
            ),
            &format!("Bearer {API_KEY}"),
        ))
        .await;
    assert_eq!(from_tokens.status, 200, "{}", from_tokens.text);
    let (code, from_cli, stderr) = run_cli(
        &[
            "token",
            "--user-id",
            "cli-9",
            "--email",
            "cli@scientists.com",
            "--ttl",
            "10m",
        ],
        &[("TILEDESK_PROJECT_ID", PROJECT), ("TILEDESK_SECRET", SECRET)],
        "",
    );
    assert_eq!(code, 0, "{stderr}");

    let project = common::project();
    let good = VisitorClaims::builder("42").build().unwrap();
    let issuer = TokenIssuer::new(project.clone(), common::secret());
    let fresh = issuer.mint(&good).unwrap().to_string();
    // An attacker's edit: same signature, payload re-encoded to claim another user's identity.
    let tampered = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = fresh.strip_prefix("JWT ").unwrap().split('.').collect();
        let mut payload: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        payload["_id"] = json!(format!("{PROJECT}_someone-else"));
        format!(
            "JWT {}.{}.{}",
            parts[0],
            engine.encode(payload.to_string()),
            parts[2]
        )
    };
    let wrong_secret = TokenIssuer::new(
        project.clone(),
        ProjectSecret::new("not-the-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap(),
    )
    .mint(&good)
    .unwrap()
    .to_string();
    let expired = TokenIssuer::new(project, common::secret())
        .with_ttl(Duration::from_secs(60))
        .unwrap()
        .mint_at(&good, 1_000_000)
        .unwrap()
        .to_string();

    let tokens = [
        ("auth", from_auth.json["token"].as_str().unwrap().to_owned()),
        ("tokens", from_tokens.json["token"].as_str().unwrap().to_owned()),
        ("cli", from_cli.trim().to_owned()),
        ("tampered", tampered),
        ("wrong_secret", wrong_secret),
        ("expired", expired),
        ("bare", fresh.strip_prefix("JWT ").unwrap().to_owned()),
    ];
    let results = tiledesk_verifies(&tokens);
    let by_name = |name: &str| results.iter().find(|r| r["name"] == name).unwrap();

    for (name, id) in [
        ("auth", format!("{PROJECT}_{}", user.id)),
        ("tokens", format!("{PROJECT}_site-7")),
        ("cli", format!("{PROJECT}_cli-9")),
    ] {
        let r = by_name(name);
        assert_eq!(r["accepted"], true, "{name}: {r}");
        assert_eq!(r["user"]["_id"], id, "{name}");
        assert_eq!(r["user"]["id"], id, "{name}");
        assert_eq!(r["user"]["sub"], "userexternal", "{name}");
    }
    assert_eq!(by_name("auth")["user"]["firstname"], "Andrew");
    assert_eq!(by_name("tokens")["user"]["fullName"], "Marie Curie");
    assert_eq!(by_name("cli")["user"]["email"], "cli@scientists.com");

    for (name, reason) in [
        ("tampered", "invalid signature"),
        ("wrong_secret", "invalid signature"),
        ("expired", "jwt expired"),
        ("bare", "No auth token"),
    ] {
        let r = by_name(name);
        assert_eq!(r["accepted"], false, "{name}: {r}");
        assert_eq!(r["status"], 401, "{name}: {r}");
        assert!(r["reason"].as_str().unwrap().contains(reason), "{name}: {r}");
    }
}
