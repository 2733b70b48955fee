//! `POST /auth`: a visitor token for whoever the request proves to be. Email and password in the body: a user of
//! the password store. No body at all (or `{}`) with `--session-url`: whoever the site's own session says (see
//! [`crate::session`]). No body with `Authorization: Bearer <ID token>` and `--oidc-issuer`: the token's subject (see
//! [`crate::oidc`]).

use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::post;
use tiledesk_jwt::{MAX_EMAIL_LEN, VisitorClaims, VisitorClaimsBuilder};
use zeroize::Zeroizing;

use super::{ClientAddr, TokenResponse, UserView};
use crate::body::{Fields, OptionalJsonObject};
use crate::device::{self, DeviceCookies};
use crate::passwords::{HashError, MAX_PASSWORD_LEN};
use crate::users::email_key;
use crate::{ApiError, Shared, Visitor};

pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/auth", post(sign_in))
}

async fn sign_in(
    State(state): State<Shared>,
    ClientAddr(address): ClientAddr,
    headers: HeaderMap,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let credentials = body.filter(|body| !body.is_empty());
    if let Some(body) = credentials {
        return with_password(&state, address, &headers, body).await;
    }
    let (user, by) = match (&state.oidc, bearer(&headers), &state.session) {
        (Some(bridge), Some(token), _) => (bridge.visitor(token).await?, "an ID token"),
        (_, _, Some(bridge)) => {
            // The visitor's cookies are ambient: another site's page could make the browser send them here. A JSON
            // body (`{}`, as the module sends) is one no form can send, and one a browser sends cross-origin only
            // after a CORS preflight this service answers for listed origins only.
            if !crate::body::is_json_content_type(headers.get(header::CONTENT_TYPE)) {
                crate::log::refused("session sign-in refused: not JSON", address);
                return Err(ApiError::UnsupportedMediaType);
            }
            if !origin_may_use_the_session(&headers, &state.allowed_origins) {
                crate::log::refused("session sign-in refused: origin not allowed", address);
                return Err(ApiError::OriginNotAllowed);
            }
            (
                session_visitor(&state, bridge, address, &headers).await?,
                "the site's session",
            )
        }
        _ => return Err(ApiError::MissingField("email")),
    };
    Ok((HeaderMap::new(), signed_in(&state, user, by)?))
}

/// Who the site's session says the visitor is. When the visitor's `Authorization` goes to the site too, the
/// site's 401 or 403 is a credential refused: counted like a failed login on the address, so the bridge is no
/// relay for guessing the site's passwords (Basic credentials, say) from one address without limit.
async fn session_visitor(
    state: &Shared,
    bridge: &crate::session::SessionBridge,
    address: std::net::IpAddr,
    headers: &HeaderMap,
) -> Result<Visitor, ApiError> {
    let attempt = if bridge.forwards_authorization() && headers.contains_key(header::AUTHORIZATION) {
        Some(
            state
                .throttle
                .begin_forwarded(address)
                .await
                .map_err(|retry_after| {
                    crate::log::refused("session sign-in throttled", address);
                    ApiError::TooManyAttempts { retry_after }
                })?,
        )
    } else {
        None
    };
    let answer = bridge.visitor(headers, Some(address)).await;
    if let Some(attempt) = attempt {
        match &answer {
            Ok(_) => attempt.succeeded().await,
            // Dropped: counted as a failure.
            Err(crate::session::SessionError::Rejected(_)) => drop(attempt),
            Err(_) => attempt.void().await,
        }
    }
    Ok(answer?)
}

/// Whether a page may sign its visitor in with the cookies this request carries: its `Origin` is this service's own
/// (scheme and `Host`) or one of `allowed`; without an `Origin` (a client that is not a browser, or an old one),
/// unless the browser says the request is `Sec-Fetch-Site: cross-site`. `Origin: null` (a sandboxed frame, a
/// `data:` page) is no origin anyone listed. So a login-CSRF form or a probing page on another site gets a 403 before
/// the site's login is asked anything.
fn origin_may_use_the_session(headers: &HeaderMap, allowed: &[HeaderValue]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return headers
            .get("sec-fetch-site")
            .is_none_or(|site| !site.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    };
    if allowed
        .iter()
        .any(|listed| listed.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    {
        return true;
    }
    let (Ok(origin), Some(host)) = (origin.to_str(), headers.get(header::HOST)) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    authority.is_some_and(|authority| authority.as_bytes().eq_ignore_ascii_case(host.as_bytes()))
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token and answer for a visitor a bridge vouches for; `by` says which, in the log.
fn signed_in(state: &Shared, user: Visitor, by: &'static str) -> Result<TokenResponse, ApiError> {
    let issuer = state.issuer.get();
    let token = match user.not_after {
        Some(not_after) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|err| ApiError::Internal(err.into()))?
                .as_secs();
            // A proof taken within its leeway may end this very second: the token still lives one.
            issuer.mint_until(&user.claims, now, not_after.max(now + 1))?
        }
        None => issuer.mint(&user.claims)?,
    };
    tracing::info!(user_id = %user.id, expires_at = token.expires_at(), by, "signed in");
    Ok(TokenResponse::new(
        &token,
        UserView {
            id: user.id,
            email: user.email,
            firstname: user.firstname,
            lastname: user.lastname,
        },
    ))
}

/// Signs in a user of the password store.
async fn with_password(
    state: &Shared,
    address: std::net::IpAddr,
    headers: &HeaderMap,
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let mut fields = Fields::new(body, &["email", "password"])?;
    let email = fields.required_str("email", MAX_EMAIL_LEN)?;
    // The raw value, not trimmed: a password may begin or end with a space.
    let password = Zeroizing::new(fields.required_str("password", MAX_PASSWORD_LEN)?);
    if !tiledesk_jwt::is_valid_email(email.trim()) {
        return Err(ApiError::invalid("email", "is not a valid email address"));
    }
    let account = email_key(&email);
    // Held across the password check: a full reference, not a short-lived guard.
    let issuer = std::sync::Arc::clone(&*state.issuer.get());
    let cookies = DeviceCookies::new(issuer.secret());
    // A browser that signed in to this account before is judged on its own failures (see `device.rs`).
    // Every cookie presented is tried: one tossed in by a sibling subdomain does not hide the browser's own.
    let now = SystemTime::now();
    let device = device::presented(headers).find_map(|value| cookies.verify(value, &account, now));

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
            attempt.void().await;
            return Err(refused(err, address));
        }
    };
    let found = match state.users.find_by_email(&account).await {
        Ok(found) => found,
        Err(err) => {
            attempt.void().await;
            return Err(err.into());
        }
    };
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let matched = match ticket.verify(hash, password).await {
        Ok(matched) => matched,
        Err(err) => {
            // Not judged: the guess was not checked, so it costs the guesser nothing and the visitor nothing.
            attempt.void().await;
            return Err(refused(err, address));
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        // The email is not logged: people type their password into it by mistake. The attempt stays counted.
        tracing::info!(%address, "login failed");
        drop(attempt);
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded().await;

    let claims = VisitorClaims::builder(user.id.as_str())
        .email(user.email.as_str())
        .with(user.firstname.as_deref(), VisitorClaimsBuilder::firstname)
        .with(user.lastname.as_deref(), VisitorClaimsBuilder::lastname)
        .attributes(user.attributes.clone().into())
        .build()?;
    let token = issuer.mint(&claims)?;
    tracing::info!(user_id = %user.id, expires_at = token.expires_at(), "signed in");
    let mut reply_headers = HeaderMap::new();
    reply_headers.insert(
        header::SET_COOKIE,
        device::set_cookie(
            &cookies.issue(&account, SystemTime::now()),
            state
                .cookie_security
                .secure(headers.get(header::HOST), !state.trusted_proxies.is_empty()),
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

/// A password check not done, logged (sampled) when it is the flood defence at work.
fn refused(err: HashError, address: std::net::IpAddr) -> ApiError {
    if matches!(err, HashError::Busy) {
        crate::log::refused("login refused: the password hasher is busy", address);
    }
    err.into()
}
