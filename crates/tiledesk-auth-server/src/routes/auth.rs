//! `POST /auth`: email and password in, a visitor token for that user out.

use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use tiledesk_jwt::{MAX_EMAIL_LEN, VisitorClaims};
use zeroize::Zeroizing;

use super::{ClientAddr, TokenResponse, UserView, claims_error, no_store};
use crate::body::{Fields, JsonObject};
use crate::device::{self, DeviceCookies};
use crate::passwords::{BUSY_RETRY_AFTER, HashError, MAX_PASSWORD_LEN};
use crate::users::{StoreError, email_key};
use crate::{ApiError, AppState};

pub(crate) fn router() -> Router<AppState> {
    no_store(Router::new().route("/auth", post(sign_in)))
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let mut fields = Fields::new(body, &["email", "password"])?;
    let email = fields.required_str("email", MAX_EMAIL_LEN)?;
    // The raw value, not trimmed: a password may begin or end with a space.
    let password = Zeroizing::new(fields.required_str("password", MAX_PASSWORD_LEN)?);
    if !tiledesk_jwt::is_valid_email(email.trim()) {
        return Err(ApiError::invalid("email", "is not a valid email address"));
    }
    let account = email_key(&email);
    let issuer = state.issuer.get();
    let cookies = DeviceCookies::new(issuer.secret());
    // A browser that signed in to this account before is judged on its own failures (see `device.rs`).
    let device =
        device::presented(&headers).and_then(|value| cookies.verify(value, &account, SystemTime::now()));

    // Counted from here, before the password is checked: concurrent guesses see each other.
    let attempt = state
        .throttle
        .begin(&account, address, device)
        .await
        .map_err(|retry_after| {
            crate::log::refused("login throttled", address);
            ApiError::TooManyAttempts { retry_after }
        })?;

    // A hashing thread before anything else: under a flood, a refusal costs no database query.
    let ticket = match state.passwords.admit().await {
        Ok(ticket) => ticket,
        Err(err) => {
            attempt.void();
            return Err(hash_error(err, address));
        }
    };
    let found = match state.users.find_by_email(&account).await {
        Ok(found) => found,
        Err(err) => {
            attempt.void();
            return Err(store_error(err));
        }
    };
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let matched = match ticket.verify(hash, password).await {
        Ok(matched) => matched,
        Err(err) => {
            // Not judged: the guess was not checked, so it costs the guesser nothing and the visitor nothing.
            attempt.void();
            return Err(hash_error(err, address));
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        // The email is not logged: people type their password into it by mistake. The attempt stays counted.
        tracing::info!(%address, "login failed");
        drop(attempt);
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded();

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
    let token = issuer.mint(&claims).map_err(|e| ApiError::Internal(e.into()))?;
    tracing::info!(user_id = %user.id, expires_at = token.expires_at(), "signed in");
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(
        header::SET_COOKIE,
        device::set_cookie(
            &cookies.issue(&account, SystemTime::now()),
            headers.get(header::HOST),
        ),
    );
    Ok((
        reply_headers,
        TokenResponse::new(
            &token,
            UserView {
                id: user.id,
                email: Some(user.email),
                firstname: user.firstname,
                lastname: user.lastname,
            },
        ),
    ))
}

fn hash_error(err: HashError, address: std::net::IpAddr) -> ApiError {
    match err {
        HashError::Busy => {
            crate::log::refused("login refused: the password hasher is busy", address);
            ApiError::Busy {
                retry_after: BUSY_RETRY_AFTER,
            }
        }
        HashError::Failed(err) => ApiError::Internal(err),
    }
}

pub(crate) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Database(db) => ApiError::Unavailable(db),
        other => ApiError::Internal(other.into()),
    }
}
