//! `GET /healthz`: liveness, 200 while the process serves HTTP, whatever its database says (a load balancer or an
//! orchestrator restarting replicas because a shared database is down would only make things worse). `GET /readyz`:
//! readiness, 200 when this replica can serve logins, 503 with what is wrong otherwise (see [`crate::readiness`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::state::Shared;

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
}

/// `GET /openapi.json`: [`crate::openapi::document`].
async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(crate::openapi::document);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process serves HTTP",
    responses((status = 200, description = "Alive", body = crate::openapi::Status))
)]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the database, Redis and the identity provider's keys answer as configured",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Status),
        (status = 503, description = "Not ready, and why", body = crate::openapi::NotReady),
    )
)]
pub(crate) async fn readyz(State(state): State<Shared>) -> (StatusCode, Json<Value>) {
    let report = state.readiness.report(&state).await;
    if report.ready() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "problems": report.problems })),
        )
    }
}
