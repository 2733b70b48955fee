//! `/test-site/*` plays a *site's* token endpoint for the browser tests, and `/faulty/*` a broken Tiledesk API.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tiledesk_jwt::VisitorClaims;

use crate::{MockState, error, lock, now};

pub(crate) fn router() -> Router<MockState> {
    Router::new()
        .route("/test-site/auth", post(test_site_auth))
        .route("/test-site/count", get(test_site_count))
        .route("/faulty/{status}/{delay_ms}/{*rest}", any(faulty))
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
    /// The status answered after `fail_after` requests instead of 503 (401: the visitor signed out on the site).
    pub fail_status: Option<u16>,
    /// Answer 401 unless the request carries a cookie of this name (the site's session, sent or not).
    pub cookie: Option<String>,
}

async fn test_site_auth(
    State(state): State<MockState>,
    Query(query): Query<TestSiteQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(name) = &query.cookie {
        let sent = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|c| c.to_str().ok())
            .flat_map(|c| c.split(';'))
            .any(|kv| kv.trim().split('=').next() == Some(name.as_str()));
        if !sent {
            return error(StatusCode::UNAUTHORIZED, "no session cookie");
        }
    }
    let user = query.user.clone().unwrap_or_else(|| "visitor".to_owned());
    let count = {
        let mut counts = lock(&state.site_requests);
        let count = counts.entry(user.clone()).or_default();
        *count += 1;
        *count
    };
    if query.fail_after.is_some_and(|n| count > n) {
        return match query.fail_status.and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(status) => error(status, "as asked"),
            None => error(StatusCode::SERVICE_UNAVAILABLE, "the site's endpoint is down"),
        };
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
    let issuer = match (*state.issuer()).clone().with_ttl(ttl) {
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
    let counts = lock(&state.site_requests);
    Json(json!({ "count": counts.get(&query.user).copied().unwrap_or(0) }))
}
