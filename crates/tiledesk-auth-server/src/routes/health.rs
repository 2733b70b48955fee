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
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Shared>) -> (StatusCode, Json<Value>) {
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
