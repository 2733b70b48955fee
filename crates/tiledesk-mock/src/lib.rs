//! TEST DOUBLE of Tiledesk's server and widget loader. It is not Tiledesk: it answers the few calls the widget
//! makes during sign-in, with the verification rules of `shared/docs/tiledesk-contract.md` section 1, so that
//! tests and the demo run offline.
//!
//! - `POST /api/auth/signinWithCustomToken`: `Authorization: JWT <token>` verified as Tiledesk does (HS256/384/512
//!   with the project secret, `aud` selecting the project, `_id` required, `exp`/`nbf` enforced, no leeway); the
//!   reply is `{success, token, user}` with `id` and `fullName` derived as Tiledesk does.
//! - `POST /api/chat21/native/auth/createCustomToken`: the same check, then a chat token.
//! - `GET|POST /api/conversations`: the signed-in visitor's messages, kept per chat user id.
//! - `GET /widget/launch.js`: the stand-in loader (`web/fake-widget/launch.js`); `?delay_ms=N` delays it.
//! - `POST /test-site/auth`: a *site* token endpoint for browser tests (see [`TestSiteQuery`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tiledesk_jwt::{FindingCode, ProjectId, ProjectSecret, Severity, TokenIssuer, VisitorClaims};
use tower_http::cors::CorsLayer;

/// The stand-in widget loader, served at `/widget/launch.js`.
pub const LAUNCH_JS: &str = include_str!("../../../web/fake-widget/launch.js");

/// The mock's state: one project, conversations per chat user, request counts for tests.
#[derive(Clone, Debug)]
pub struct MockState {
    project: ProjectId,
    issuer: Arc<TokenIssuer>,
    conversations: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    site_requests: Arc<Mutex<HashMap<String, u64>>>,
}

impl MockState {
    /// A mock Tiledesk holding one project and its secret.
    pub fn new(project: ProjectId, secret: ProjectSecret) -> Self {
        Self {
            issuer: Arc::new(TokenIssuer::new(project.clone(), secret)),
            project,
            conversations: Arc::default(),
            site_requests: Arc::default(),
        }
    }
}

/// The mock's router. CORS is open: it is a local test double, reached from test pages on other ports.
pub fn app(state: MockState) -> Router {
    Router::new()
        .route("/api/auth/signinWithCustomToken", post(sign_in))
        .route("/api/chat21/native/auth/createCustomToken", post(chat_token))
        .route("/api/conversations", get(list_messages).post(add_message))
        .route("/widget/launch.js", get(launch_js))
        .route("/test-site/auth", post(test_site_auth))
        .route("/test-site/count", get(test_site_count))
        .route("/faulty/{status}/{delay_ms}/{*rest}", axum::routing::any(faulty))
        .layer(CorsLayer::permissive())
        .with_state(state)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "success": false, "msg": message }))).into_response()
}

/// Why Tiledesk would refuse a token: the status and its message.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// Verifies the Authorization header as Tiledesk's passport middleware does; returns the payload.
fn verify(state: &MockState, headers: &HeaderMap) -> Result<Map<String, Value>, Refusal> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(Refusal(StatusCode::UNAUTHORIZED, "Unauthorized"));
    };
    // A bare token finds no `<scheme> <token>` pair: 401. More than one space: the 403 of the contract.
    if value.split(' ').count() > 2 {
        return Err(Refusal(StatusCode::FORBIDDEN, "Forbidden"));
    }
    let report = tiledesk_jwt::check_at(value, &state.project, state.issuer.secret(), now());
    if report.has(FindingCode::MissingAudience) {
        return Err(Refusal(StatusCode::BAD_REQUEST, "aud is required"));
    }
    let rejected = report.findings().iter().any(|f| {
        f.severity == Severity::Rejected && f.code != FindingCode::NotVisitorSubject // sign-in ignores `sub`
    });
    match report.claims() {
        Some(claims) if !rejected => Ok(claims.clone()),
        _ => Err(Refusal(StatusCode::UNAUTHORIZED, "Unauthorized")),
    }
}

async fn sign_in(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let claims = match verify(&state, &headers) {
        Ok(claims) => claims,
        Err(refusal) => return refusal.into_response(),
    };
    let id = claims.get("_id").cloned().unwrap_or(Value::Null);
    let full_name = ["firstname", "lastname"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let mut user = claims;
    user.insert("id".to_owned(), id);
    user.insert("fullName".to_owned(), Value::String(full_name));
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Json(json!({ "success": true, "token": token, "user": user })).into_response()
}

async fn chat_token(State(state): State<MockState>, headers: HeaderMap) -> Response {
    match verify(&state, &headers) {
        Ok(claims) if claims.get("sub").and_then(Value::as_str) == Some(tiledesk_jwt::VISITOR_SUBJECT) => {
            Json(json!({ "token": format!("chat21-{}", now()), "userid": claims["_id"] })).into_response()
        }
        Ok(_) => error(StatusCode::UNAUTHORIZED, "not an external visitor"),
        Err(refusal) => refusal.into_response(),
    }
}

fn chat_user(claims: &Map<String, Value>) -> String {
    claims
        .get("_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

async fn list_messages(State(state): State<MockState>, headers: HeaderMap) -> Response {
    match verify(&state, &headers) {
        Ok(claims) => {
            let conversations = state
                .conversations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Json(json!({ "messages": conversations.get(&chat_user(&claims)).cloned().unwrap_or_default() }))
                .into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn add_message(
    State(state): State<MockState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    match verify(&state, &headers) {
        Ok(claims) => {
            let text = body
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut conversations = state
                .conversations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let messages = conversations.entry(chat_user(&claims)).or_default();
            messages.push(json!({ "text": text, "at": now() }));
            (StatusCode::CREATED, Json(json!({ "messages": messages.len() }))).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Deserialize)]
struct LaunchQuery {
    delay_ms: Option<u64>,
}

async fn launch_js(Query(query): Query<LaunchQuery>) -> Response {
    if let Some(ms) = query.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(30_000))).await;
    }
    let mut response = LAUNCH_JS.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Loadable as a classic script from cross-origin-isolated pages (the wasm test runner's page is one).
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// How `/test-site/auth` should behave, from its query string. It plays a *site's* token endpoint.
#[derive(Debug, Deserialize)]
pub struct TestSiteQuery {
    /// The site's user id (default `visitor`); also the key of the request count.
    pub user: Option<String>,
    /// Token lifetime in seconds (default 3600).
    pub ttl: Option<u64>,
    /// Answer this status with an error body instead of a token.
    pub status: Option<u16>,
    /// Wait this long before answering.
    pub delay_ms: Option<u64>,
    /// Answer the bare JWT, without the `JWT ` scheme.
    pub bare: Option<bool>,
    /// Mint a token that expired an hour ago (the widget's sign-in then fails).
    pub expired: Option<bool>,
    /// Answer 200 with a body that holds no token.
    pub empty: Option<bool>,
    /// Answer only this many requests for `user` normally, then 503 (the site's endpoint going down mid-session).
    pub fail_after: Option<u64>,
}

async fn test_site_auth(State(state): State<MockState>, Query(query): Query<TestSiteQuery>) -> Response {
    let user = query.user.clone().unwrap_or_else(|| "visitor".to_owned());
    let count = {
        let mut counts = state
            .site_requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(user.clone()).or_default();
        *count += 1;
        *count
    };
    if query.fail_after.is_some_and(|n| count > n) {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the site's endpoint is down");
    }
    if let Some(ms) = query.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(30_000))).await;
    }
    if let Some(status) = query.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({ "error": "test_site", "message": "as asked" })),
        )
            .into_response();
    }
    if query.empty == Some(true) {
        return Json(json!({ "ok": true })).into_response();
    }
    let ttl = Duration::from_secs(query.ttl.unwrap_or(3600).clamp(1, 86_400));
    let issuer = match (*state.issuer).clone().with_ttl(ttl) {
        Ok(issuer) => issuer,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let claims = match VisitorClaims::builder(user.as_str())
        .firstname("Test")
        .lastname(user.as_str())
        .build()
    {
        Ok(claims) => claims,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let issued_at = if query.expired == Some(true) {
        now() - 7200
    } else {
        now()
    };
    let token = match issuer.mint_at(&claims, issued_at) {
        Ok(token) => token,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let value = if query.bare == Some(true) {
        token.jwt()
    } else {
        token.as_str()
    };
    let mut response =
        Json(json!({ "token": value, "expires_at": token.expires_at(), "user": { "id": user } }))
            .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/faulty/{status}/{delay_ms}/...`: an API that is broken or slow. Point the widget's `apiUrl` here and every
/// call waits `delay_ms` (at most 30 s), then answers `status` with a JSON error.
async fn faulty(
    axum::extract::Path((status, delay_ms, _)): axum::extract::Path<(u16, u64, String)>,
) -> Response {
    tokio::time::sleep(Duration::from_millis(delay_ms.min(30_000))).await;
    error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "a faulty API, as asked",
    )
}

#[derive(Deserialize)]
struct CountQuery {
    user: String,
}

async fn test_site_count(State(state): State<MockState>, Query(query): Query<CountQuery>) -> Json<Value> {
    let counts = state
        .site_requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Json(json!({ "count": counts.get(&query.user).copied().unwrap_or(0) }))
}
