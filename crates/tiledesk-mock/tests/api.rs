//! The mock verifies tokens with Tiledesk's rules and answers what the widget expects.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};
use tower::ServiceExt;

fn state() -> tiledesk_mock::MockState {
    tiledesk_mock::MockState::new(
        ProjectId::new("proj1").unwrap(),
        ProjectSecret::new("mock-secret-3f1c9a52-5d2e-4f7b-9c1a").unwrap(),
    )
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    let response = app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn token(secret: &str, project: &str, issued_at: Option<u64>) -> String {
    let issuer = TokenIssuer::new(
        ProjectId::new(project).unwrap(),
        ProjectSecret::new(secret).unwrap(),
    );
    let claims = VisitorClaims::builder("42")
        .firstname("Ada")
        .lastname("Lovelace")
        .build()
        .unwrap();
    match issued_at {
        Some(at) => issuer.mint_at(&claims, at).unwrap().to_string(),
        None => issuer.mint(&claims).unwrap().to_string(),
    }
}

#[tokio::test]
async fn sign_in_returns_the_token_and_the_decorated_user() {
    let app = tiledesk_mock::app(state());
    let good = token("mock-secret-3f1c9a52-5d2e-4f7b-9c1a", "proj1", None);
    let (status, body) = call(&app, "POST", "/api/auth/signinWithCustomToken", Some(&good), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["token"], good);
    assert_eq!(body["user"]["_id"], "proj1_42");
    assert_eq!(body["user"]["id"], "proj1_42");
    assert_eq!(body["user"]["fullName"], "Ada Lovelace");
    let (status, body) = call(
        &app,
        "POST",
        "/api/chat21/native/auth/createCustomToken",
        Some(&good),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["userid"], "proj1_42");
}

#[tokio::test]
async fn sign_in_refuses_what_tiledesk_refuses() {
    let app = tiledesk_mock::app(state());
    let good = token("mock-secret-3f1c9a52-5d2e-4f7b-9c1a", "proj1", None);
    let cases = [
        (None, StatusCode::UNAUTHORIZED),
        (
            Some(good.replacen("JWT ", "Bearer ", 1)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(good.strip_prefix("JWT ").unwrap().to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        (Some(good.replacen("JWT ", "JWT  ", 1)), StatusCode::FORBIDDEN),
        (
            Some(token("other-secret-3f1c9a52-5d2e-4f7b-9c1a", "proj1", None)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(token("mock-secret-3f1c9a52-5d2e-4f7b-9c1a", "another", None)),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(token(
                "mock-secret-3f1c9a52-5d2e-4f7b-9c1a",
                "proj1",
                Some(1_000_000),
            )),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (auth, expected) in cases {
        let (status, _) = call(
            &app,
            "POST",
            "/api/auth/signinWithCustomToken",
            auth.as_deref(),
            None,
        )
        .await;
        assert_eq!(status, expected, "{auth:?}");
    }
}

#[tokio::test]
async fn conversations_are_kept_per_chat_user() {
    let app = tiledesk_mock::app(state());
    let ada = token("mock-secret-3f1c9a52-5d2e-4f7b-9c1a", "proj1", None);
    let (status, _) = call(
        &app,
        "POST",
        "/api/conversations",
        Some(&ada),
        Some(json!({"text": "hello"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let again = token("mock-secret-3f1c9a52-5d2e-4f7b-9c1a", "proj1", None); // another token, same user: same history
    let (_, body) = call(&app, "GET", "/api/conversations", Some(&again), None).await;
    assert_eq!(body["messages"][0]["text"], "hello");
}

#[tokio::test]
async fn test_site_endpoint_counts_and_obeys() {
    let app = tiledesk_mock::app(state());
    let (status, body) = call(&app, "POST", "/test-site/auth?user=u1&ttl=60", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["token"].as_str().unwrap().starts_with("JWT "));
    let (_, body) = call(&app, "POST", "/test-site/auth?user=u1&bare=true", None, None).await;
    assert!(!body["token"].as_str().unwrap().starts_with("JWT "));
    let (status, _) = call(&app, "POST", "/test-site/auth?user=u1&status=401", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body) = call(&app, "GET", "/test-site/count?user=u1", None, None).await;
    assert_eq!(body["count"], 3);
    let (status, _) = call(&app, "GET", "/widget/launch.js", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// `GET /widget/widget-config.json` with these headers; returns its `apiUrl`.
async fn config_api_url(headers: &[(&str, &str)]) -> Value {
    let app =
        tiledesk_mock::app(state().with_widget(tiledesk_mock::WidgetSource::Built(std::env::temp_dir())));
    let mut request = Request::builder().uri("/widget/widget-config.json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice::<Value>(&bytes).unwrap()["apiUrl"].clone()
}

#[tokio::test]
async fn the_widget_config_points_where_the_browser_asked_even_behind_a_proxy() {
    assert_eq!(
        config_api_url(&[("host", "127.0.0.1:3001")]).await,
        json!("http://127.0.0.1:3001/api/")
    );
    // Trunk's proxy (cargo xtask dev) sends the backend's host without its port, and the browser's in
    // X-Forwarded-Host.
    assert_eq!(
        config_api_url(&[("host", "127.0.0.1"), ("x-forwarded-host", "127.0.0.1:8080")]).await,
        json!("http://127.0.0.1:8080/api/")
    );
}

#[tokio::test]
async fn a_regenerated_secret_refuses_every_token_of_the_old_one() {
    const OLD: &str = "mock-secret-3f1c9a52-5d2e-4f7b-9c1a";
    const NEW: &str = "regenerated-7d41b0e2-9c35-4f0e-8a6b";
    let app = tiledesk_mock::app(state());
    let post = |path: &'static str, auth: Option<String>, body: Option<Value>| {
        let app = app.clone();
        async move { call(&app, "POST", path, auth.as_deref(), body).await.0 }
    };
    let sign_in = "/api/auth/signinWithCustomToken";
    let old = token(OLD, "proj1", None);
    assert_eq!(post(sign_in, Some(old.clone()), None).await, StatusCode::OK);
    let rotate = |secret: &str| post("/test/rotate-secret", None, Some(json!({ "secret": secret })));
    assert_eq!(rotate(NEW).await, StatusCode::NO_CONTENT);
    assert_eq!(
        post(sign_in, Some(old.clone()), None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post("/api/proj1/events", Some(old), None).await,
        StatusCode::UNAUTHORIZED
    );
    let new = token(NEW, "proj1", None);
    assert_eq!(post(sign_in, Some(new), None).await, StatusCode::OK);
    assert_eq!(
        rotate("short").await,
        StatusCode::BAD_REQUEST,
        "a secret Tiledesk would not take"
    );
}
