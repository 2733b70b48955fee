//! Shared set-up for the integration tests: an app on a throwaway database, and request helpers.

// Test support: a failed set-up step should panic with its error.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tiledesk_auth_server::users::{NewUser, User};
use tiledesk_auth_server::{ApiKey, AppState, LoginThrottle, Passwords, ThrottlePolicy, UserStore, app};
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer};
use tower::ServiceExt;

pub const PROJECT: &str = "64f0c0ffee0123456789abcd";
pub const SECRET: &str = "3f1c9a52-test-secret-2b8e6d4f0a17";
pub const API_KEY: &str = "site-backend-key-0123456789";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    pub api_key: bool,
    pub origins: Vec<&'static str>,
}

pub fn project() -> ProjectId {
    ProjectId::new(PROJECT).unwrap()
}

pub fn secret() -> ProjectSecret {
    ProjectSecret::new(SECRET).unwrap()
}

pub async fn test_app(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let state = AppState {
        issuer: Arc::new(TokenIssuer::new(project(), secret())),
        users: UserStore::connect(&url).await.unwrap(),
        passwords: Passwords::new(2).unwrap(),
        throttle: Arc::new(LoginThrottle::new(ThrottlePolicy::default())),
        api_key: options.api_key.then(|| ApiKey::new(API_KEY).unwrap()),
        allowed_origins: options
            .origins
            .iter()
            .map(|o| o.parse().unwrap())
            .collect::<Vec<_>>()
            .into(),
    };
    TestApp {
        router: app(state.clone()),
        state,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn add_user(&self, email: &str, password: &str, firstname: Option<&str>) -> User {
        let hash = self
            .state
            .passwords
            .hash(zeroize::Zeroizing::new(password.to_owned()))
            .await
            .unwrap();
        let user = NewUser {
            email: email.to_owned(),
            firstname: firstname.map(str::to_owned),
            lastname: None,
            attributes: serde_json::Map::new(),
            password_hash: hash,
        };
        self.state.users.add(&user).await.unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn post_json(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

pub fn from_address(mut request: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(IpAddr::from(ip), 40000)));
    request
}

pub fn with_api_key(mut request: Request<Body>, value: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("authorization", value.parse().unwrap());
    request
}
