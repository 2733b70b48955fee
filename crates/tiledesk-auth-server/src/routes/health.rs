//! `GET /healthz`: 200 when the service can serve logins, 503 when its database does not answer.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::{ApiError, Shared};

pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<Shared>) -> Result<Json<Value>, ApiError> {
    state.users.ping().await?;
    Ok(Json(json!({ "status": "ok" })))
}
