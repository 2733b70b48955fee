//! The floor `POST /tokens` is measured against: axum and jsonwebtoken as their documentation shows them, minting
//! the same claims as `tiledesk-auth` from the same body, with none of its checks (no API key, no strict body, no
//! limits, no logging). `PORT`, `TILEDESK_PROJECT_ID` and `TILEDESK_SECRET` from the environment.

#![allow(clippy::print_stdout, clippy::expect_used)] // a bench fixture: it says where it listens, or stops

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone)]
struct Minter {
    project: String,
    key: EncodingKey,
}

/// The request, as the service takes it.
#[derive(Deserialize)]
struct Visitor {
    user_id: String,
    firstname: Option<String>,
    lastname: Option<String>,
    email: Option<String>,
    attributes: Option<Map<String, Value>>,
}

/// The claims the service mints.
#[derive(Serialize)]
struct Claims<'a> {
    _id: String,
    sub: &'static str,
    aud: String,
    iat: u64,
    exp: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    firstname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lastname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attributes: Option<&'a Map<String, Value>>,
}

#[derive(Serialize)]
struct Minted {
    token: String,
    expires_at: u64,
}

async fn tokens(State(minter): State<Minter>, Json(visitor): Json<Visitor>) -> Json<Minted> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        _id: format!("{}_{}", minter.project, visitor.user_id),
        sub: "userexternal",
        aud: format!("https://tiledesk.com/projects/{}", minter.project),
        iat: now,
        exp: now + 3600,
        jti: uuid::Uuid::new_v4().to_string(),
        firstname: visitor.firstname.as_deref(),
        lastname: visitor.lastname.as_deref(),
        email: visitor.email.as_deref(),
        attributes: visitor.attributes.as_ref(),
    };
    let token = encode(&Header::default(), &claims, &minter.key).expect("HS256 signs anything");
    Json(Minted {
        token: format!("JWT {token}"),
        expires_at: now + 3600,
    })
}

#[tokio::main]
async fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is required"));
    let minter = Minter {
        project: var("TILEDESK_PROJECT_ID"),
        key: EncodingKey::from_secret(var("TILEDESK_SECRET").as_bytes()),
    };
    let app = Router::new().route("/tokens", post(tokens)).with_state(minter);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", var("PORT").parse::<u16>().expect("PORT")))
        .await
        .expect("bind");
    println!(
        "baseline-axum listening on {}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}
