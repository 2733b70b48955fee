//! `POST /tokens`: for a site backend that already knows who the visitor is. Guarded by the API key;
//! the route exists only when a key is configured.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::post;
use serde_json::Value;
use tiledesk_jwt::{MAX_EMAIL_LEN, MAX_NAME_LEN, MAX_USER_ID_LEN, VisitorClaims, VisitorClaimsBuilder};

use super::{ClientAddr, TokenResponse, bearer};
use crate::http::body::{Fields, JsonObject};
use crate::http::error::ApiError;
use crate::identity::Visitor;
use crate::state::Shared;

pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/tokens", post(issue_token))
}

/// Proof that the caller presented the configured API key. Checked before the body is even read.
pub(crate) struct SiteBackend;

impl FromRequestParts<Shared> for SiteBackend {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let Some(expected) = &state.api_key else {
            return Err(ApiError::NotFound);
        };
        let ClientAddr(address) = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        let key = bearer(&parts.headers)
            .ok_or(ApiError::MissingApiKey)?
            .map_err(|()| ApiError::InvalidApiKey)?;
        match state
            .throttle
            .check_api_key(address, || expected.get().matches(key))
        {
            Ok(true) => Ok(Self),
            Ok(false) => {
                crate::http::log::refused("POST /tokens with a wrong API key", address);
                Err(ApiError::InvalidApiKey)
            }
            Err(retry_after) => {
                crate::metrics::metrics().throttled(crate::metrics::Throttled::api_key);
                crate::http::log::refused(
                    "POST /tokens refused: too many wrong API keys from this address",
                    address,
                );
                Err(ApiError::TooManyAttempts { retry_after })
            }
        }
    }
}

/// `POST /tokens`.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "site backends",
    summary = "A visitor token for a user the site's backend vouches for",
    description = "Exists only with an API key configured (`--api-key-file`); 404 otherwise.",
    security(("api_key" = [])),
    request_body(content = crate::openapi::TokensRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Minted", body = TokenResponse),
        (status = 400, description = "A field is missing, unknown or invalid", body = crate::openapi::ErrorBody),
        (status = 401, description = "No API key, or a wrong one", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many wrong keys from this address (`Retry-After`)", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn issue_token(
    _caller: SiteBackend,
    ClientAddr(address): ClientAddr,
    State(state): State<Shared>,
    JsonObject(body): JsonObject,
) -> Result<TokenResponse, ApiError> {
    let mut fields = Fields::new(body, &["user_id", "firstname", "lastname", "email", "attributes"])?;
    let user_id = fields.required_str("user_id", MAX_USER_ID_LEN)?;
    let firstname = fields.optional_str("firstname", MAX_NAME_LEN)?;
    let lastname = fields.optional_str("lastname", MAX_NAME_LEN)?;
    let email = fields.optional_str("email", MAX_EMAIL_LEN)?;
    let attributes = fields.optional_object("attributes")?;

    let visitor = Visitor {
        claims: VisitorClaims::builder(user_id.as_str())
            .with(firstname.as_deref(), VisitorClaimsBuilder::firstname)
            .with(lastname.as_deref(), VisitorClaimsBuilder::lastname)
            .with(email.as_deref(), VisitorClaimsBuilder::email)
            .with(attributes.map(Value::Object), VisitorClaimsBuilder::attributes)
            .build()?,
        id: user_id,
        email,
        firstname,
        lastname,
        not_after: None,
    };
    let token = state.issuer.get().mint(&visitor.claims)?;
    crate::metrics::metrics().minted(crate::metrics::Way::api_key);
    if let Some(audit) = &state.audit {
        audit.minted(&token, crate::metrics::Way::api_key, &visitor.id, address);
    }
    // Debug, not info: a site backend may mint thousands a second; logins (POST /auth) are logged at info.
    tracing::debug!(
        chat_user_id = token.chat_user_id(),
        expires_at = token.expires_at(),
        "token issued"
    );
    Ok(TokenResponse::new(&token, visitor.into()))
}
