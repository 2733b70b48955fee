//! `GET /healthz`: 200 when the service can serve logins, 503 when its database does not answer.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.users.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}
