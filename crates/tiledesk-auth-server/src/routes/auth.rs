//! `POST /auth`: email and password in, a visitor token for that user out.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use tiledesk_jwt::{MAX_EMAIL_LEN, VisitorClaims};
use zeroize::Zeroizing;

use super::{ClientAddr, TokenResponse, UserView, claims_error, no_store};
use crate::body::{Fields, JsonObject};
use crate::passwords::MAX_PASSWORD_LEN;
use crate::users::{StoreError, email_key};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    no_store(Router::new().route("/auth", post(sign_in)))
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    JsonObject(body): JsonObject,
) -> Result<TokenResponse, ApiError> {
    let mut fields = Fields::new(body, &["email", "password"])?;
    let email = fields.required_str("email", MAX_EMAIL_LEN)?;
    // The raw value, not trimmed: a password may begin or end with a space.
    let password = Zeroizing::new(fields.required_str("password", MAX_PASSWORD_LEN)?);
    if !tiledesk_jwt::is_valid_email(email.trim()) {
        return Err(ApiError::invalid("email", "is not a valid email address"));
    }
    let account = email_key(&email);

    state.throttle.check(&account, address).map_err(|retry_after| {
        tracing::info!(%address, "login throttled");
        ApiError::TooManyAttempts { retry_after }
    })?;

    let found = state.users.find_by_email(&account).await.map_err(store_error)?;
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let matched = state
        .passwords
        .verify(hash, password)
        .await
        .map_err(ApiError::Internal)?;
    let Some(user) = user.filter(|_| matched) else {
        // The email is not logged: people type their password into it by mistake.
        tracing::info!(%address, "login failed");
        state.throttle.record_failure(&account, address);
        return Err(ApiError::InvalidCredentials);
    };
    state.throttle.record_success(&account, address);

    let mut claims = VisitorClaims::builder(user.id.as_str()).email(user.email.as_str());
    if let Some(name) = &user.firstname {
        claims = claims.firstname(name.as_str());
    }
    if let Some(name) = &user.lastname {
        claims = claims.lastname(name.as_str());
    }
    let claims = claims
        .attributes(user.attributes.clone().into())
        .build()
        .map_err(claims_error)?;
    let token = state
        .issuer
        .get()
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.into()))?;
    tracing::info!(user_id = %user.id, expires_at = token.expires_at(), "signed in");
    Ok(TokenResponse::new(
        &token,
        UserView {
            id: user.id,
            email: Some(user.email),
            firstname: user.firstname,
            lastname: user.lastname,
        },
    ))
}

pub(crate) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Database(db) => ApiError::Unavailable(db),
        other => ApiError::Internal(other.into()),
    }
}
