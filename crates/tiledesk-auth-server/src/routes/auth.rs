//! `POST /auth`: a visitor token for whoever the request proves to be. Email and password in the body: a user of
//! the password store. No body at all (or `{}`) with `--session-url`: whoever the site's own session says (see
//! [`crate::identity::session`]). No body with `Authorization: Bearer <ID token>` and `--oidc-issuer`: the token's subject (see
//! [`crate::identity::oidc`]).

use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::routing::post;
use tiledesk_jwt::{MAX_EMAIL_LEN, TokenIssuer, VisitorClaims, VisitorClaimsBuilder};
use zeroize::Zeroizing;

use super::{ClientAddr, TokenResponse, bearer};
use crate::audit::AuditTrail;
use crate::guard::device::{self, DeviceCookies};
use crate::guard::passwords::{HashError, MAX_PASSWORD_LEN};
use crate::guard::throttle::Admission;
use crate::http::body::{Fields, OptionalJsonObject};
use crate::http::error::ApiError;
use crate::identity::Visitor;
use crate::identity::login_session::{self, LoginSessions};
use crate::identity::session::SessionError;
use crate::identity::users::email_key;
use crate::metrics::{Way, metrics};
use crate::state::Shared;

pub(crate) fn router() -> Router<Shared> {
    Router::new().route("/auth", post(sign_in).delete(sign_out))
}

/// `POST /auth`.
#[utoipa::path(
    post,
    path = "/auth",
    tag = "visitors",
    summary = "A visitor token for whoever the request proves to be",
    description = "With `{email, password}`: a user of the password store (a device cookie and a login-session cookie \
        are set). With `{}` (as `application/json`) and no credentials: the login session's account, or whoever the \
        site's session says (`--session-url`). With `Authorization: Bearer <ID token>` and `--oidc-issuer`: the token's \
        subject.",
    request_body(content = crate::openapi::AuthRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, description = "A field is missing, unknown or invalid", body = crate::openapi::ErrorBody),
        (status = 401, description = "Wrong credentials, a refused ID token, the site's session says no one, or the login session ended", body = crate::openapi::ErrorBody),
        (status = 403, description = "An origin not allowed, or a disabled account", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorBody),
        (status = 429, description = "Too many attempts (`Retry-After`)", body = crate::openapi::ErrorBody),
        (status = 502, description = "The site's session URL failed", body = crate::openapi::ErrorBody),
        (status = 503, description = "Busy, the identity provider or the database unavailable (`Retry-After`)", body = crate::openapi::ErrorBody),
    )
)]
pub(crate) async fn sign_in(
    State(state): State<Shared>,
    ClientAddr(address): ClientAddr,
    request: Parts,
    OptionalJsonObject(body): OptionalJsonObject,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let answer = sign_in_with(&state, address, &request, body).await;
    if let Err(refused) = &answer {
        metrics().login_refused(refused.code());
    }
    answer
}

async fn sign_in_with(
    state: &Shared,
    address: std::net::IpAddr,
    request: &Parts,
    body: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let headers = &request.headers;
    let credentials = body.filter(|body| !body.is_empty());
    if let Some(body) = credentials {
        return with_password(state, address, headers, body).await;
    }
    let (user, by) = match (&state.oidc, bearer(headers).and_then(Result::ok), &state.session) {
        (Some(bridge), Some(token), _) => (bridge.visitor(token).await?, Way::oidc),
        _ if login_session::presented(headers).is_some() => {
            ambient_cookie_allowed(state, address, headers)?;
            return with_login_session(state, headers, address).await;
        }
        _ if state.site.is_some() => {
            ambient_cookie_allowed(state, address, headers)?;
            (site_visitor(state, request, address).await?, Way::session)
        }
        (_, _, Some(bridge)) => {
            ambient_cookie_allowed(state, address, headers)?;
            (
                session_visitor(state, bridge, address, headers).await?,
                Way::session,
            )
        }
        _ => return Err(ApiError::MissingField("email")),
    };
    Ok((
        HeaderMap::new(),
        signed_in(&state.issuer.get(), user, by, state.audit.as_ref(), address)?,
    ))
}

/// Whoever the site that mounts this service says is signed in to it (see [`crate::identity::site`]).
async fn site_visitor(
    state: &Shared,
    request: &Parts,
    address: std::net::IpAddr,
) -> Result<Visitor, ApiError> {
    let Some(site) = &state.site else {
        return Err(ApiError::MissingField("email"));
    };
    match site.visitor(request).await {
        Ok(Some(user)) => user.into_visitor().map_err(|err| {
            tracing::warn!(%address, error = %err, "the site's user cannot be signed in");
            ApiError::Session(SessionError::Invalid(err.to_string()))
        }),
        Ok(None) => Err(ApiError::Session(SessionError::Rejected(
            axum::http::StatusCode::UNAUTHORIZED,
        ))),
        Err(err) => {
            tracing::warn!(%address, error = %err, "the site could not say who is signed in");
            Err(ApiError::Session(SessionError::Status(
                axum::http::StatusCode::BAD_GATEWAY,
            )))
        }
    }
}

/// A sign-in by a cookie the browser sends by itself (the site's session, this service's login session): another
/// site's page could make the browser send it here. A JSON body (`{}`, as the module sends) is one no form can send,
/// and one a browser sends cross-origin only after a CORS preflight this service answers for listed origins only;
/// and the page must be of this service's origin or a listed one.
fn ambient_cookie_allowed(
    state: &Shared,
    address: std::net::IpAddr,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if !crate::http::body::is_json_content_type(headers.get(header::CONTENT_TYPE)) {
        crate::http::log::refused("session sign-in refused: not JSON", address);
        return Err(ApiError::UnsupportedMediaType);
    }
    if !origin_may_use_the_session(headers, &state.allowed_origins) {
        crate::http::log::refused("session sign-in refused: origin not allowed", address);
        return Err(ApiError::OriginNotAllowed);
    }
    Ok(())
}

/// `DELETE /auth` (the module's `signOut()`): the login session's cookie is cleared, so that nothing signs the next
/// visitor of this browser in as this one.
/// `DELETE /auth`.
#[utoipa::path(
    delete,
    path = "/auth",
    tag = "visitors",
    summary = "Ends the login session (the module's signOut)",
    responses((status = 200, description = "The login-session cookie cleared", body = crate::openapi::Status))
)]
pub(crate) async fn sign_out(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> (HeaderMap, axum::Json<serde_json::Value>) {
    let mut reply = HeaderMap::new();
    reply.insert(
        header::SET_COOKIE,
        login_session::set_cookie(None, secure_cookies(&state, &headers)),
    );
    reply.insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    (reply, axum::Json(serde_json::json!({ "status": "signed_out" })))
}

fn secure_cookies(state: &Shared, headers: &HeaderMap) -> bool {
    state
        .cookie_security
        .secure(headers.get(header::HOST), !state.trusted_proxies.is_empty())
}

/// A refresh of a password login: the account the login-session cookie names, while its password is the one it was
/// issued with. Anything else is `401 auth_rejected`, and the cookie is cleared.
async fn with_login_session(
    state: &Shared,
    headers: &HeaderMap,
    address: std::net::IpAddr,
) -> Result<(HeaderMap, TokenResponse), ApiError> {
    let value = login_session::presented(headers).unwrap_or_default();
    let issuer = std::sync::Arc::clone(&*state.issuer.get());
    let sessions = LoginSessions::new(issuer.secret());
    let found = match LoginSessions::account(value) {
        Some(account) => state
            .users
            .find_by_email(&account)
            .await?
            .map(|found| (account, found)),
        None => None,
    };
    let now = SystemTime::now();
    let mut renewed = HeaderMap::new();
    let user = found.and_then(|(account, (user, hash))| {
        if sessions.verify(value, &account, &hash, now) {
            return Some(user);
        }
        // Signed before the last secret rotation: still this visitor's session, signed anew with the current key.
        let retired = state.retired_secret.get();
        let retired = retired.as_ref().as_ref()?;
        LoginSessions::new(retired)
            .verify(value, &account, &hash, now)
            .then(|| {
                let session = sessions.issue(&account, &hash, now);
                renewed.insert(
                    header::SET_COOKIE,
                    login_session::set_cookie(Some(&session), secure_cookies(state, headers)),
                );
                user
            })
    });
    // A user their site disabled (`users disable`): the session ends at its next refresh.
    let Some(user) = user.filter(|user| user.disabled_at.is_none()) else {
        let mut cleared = HeaderMap::new();
        cleared.insert(
            header::SET_COOKIE,
            login_session::set_cookie(None, secure_cookies(state, headers)),
        );
        return Err(ApiError::LoginSessionEnded(cleared));
    };
    Ok((
        renewed,
        signed_in(
            &issuer,
            store_visitor(user)?,
            Way::login_session,
            state.audit.as_ref(),
            address,
        )?,
    ))
}

/// A user of the password store, as the visitor to mint for.
fn store_visitor(user: crate::identity::users::User) -> Result<Visitor, ApiError> {
    let claims = VisitorClaims::builder(user.id.as_str())
        .email(user.email.as_str())
        .with(user.firstname.as_deref(), VisitorClaimsBuilder::firstname)
        .with(user.lastname.as_deref(), VisitorClaimsBuilder::lastname)
        .attributes(user.attributes.into())
        .build()?;
    Ok(Visitor {
        claims,
        id: user.id,
        email: Some(user.email),
        firstname: user.firstname,
        lastname: user.lastname,
        not_after: None,
    })
}

/// Who the site's session says the visitor is. When the visitor's `Authorization` goes to the site too, the
/// site's 401 or 403 is a credential refused: counted like a failed login on the address, so the bridge is no
/// relay for guessing the site's passwords (Basic credentials, say) from one address without limit.
async fn session_visitor(
    state: &Shared,
    bridge: &crate::identity::session::SessionBridge,
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
                    crate::http::log::refused("session sign-in throttled", address);
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
            Err(SessionError::Rejected(_)) => drop(attempt),
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

/// The token and answer for a visitor, minted by `issuer`; `way` says how they came in (the log, the metrics).
fn signed_in(
    issuer: &TokenIssuer,
    user: Visitor,
    way: Way,
    audit: Option<&AuditTrail>,
    address: std::net::IpAddr,
) -> Result<TokenResponse, ApiError> {
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
    let by = match way {
        Way::password => "a password",
        Way::login_session => "the login session",
        Way::session => "the site's session",
        Way::oidc => "an ID token",
        Way::api_key => "the API key",
    };
    tracing::info!(user_id = %user.id, expires_at = token.expires_at(), by, "signed in");
    metrics().minted(way);
    if let Some(audit) = audit {
        audit.minted(&token, way, &user.id, address);
    }
    Ok(TokenResponse::new(&token, user.into()))
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

    // Counted from here, before the password is checked: concurrent guesses see each other. A hashing thread
    // before anything else: under a flood, a refusal costs no database query, and nothing is written to Redis.
    let (attempt, ticket) = state
        .throttle
        .begin_admitted(&account, address, device, || state.passwords.admit())
        .await
        .map_err(|refusal| match refusal {
            Admission::Throttled(retry_after) => {
                crate::http::log::refused("login throttled", address);
                ApiError::TooManyAttempts { retry_after }
            }
            Admission::Refused(err) => refused(err, address),
        })?;
    let found = match state.users.find_by_email(&account).await {
        Ok(found) => found,
        Err(err) => {
            attempt.void().await;
            return Err(err.into());
        }
    };
    let (user, hash) = found.map_or((None, None), |(user, hash)| (Some(user), Some(hash)));
    let session_hash = hash.clone();
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
    // The right password, for an account its site has disabled: said only to whoever knows the password.
    if user.disabled_at.is_some() {
        return Err(ApiError::AccountDisabled);
    }

    let answer = signed_in(
        &issuer,
        store_visitor(user)?,
        Way::password,
        state.audit.as_ref(),
        address,
    )?;
    let secure = secure_cookies(state, headers);
    let mut reply_headers = HeaderMap::new();
    reply_headers.append(
        header::SET_COOKIE,
        device::set_cookie(&cookies.issue(&account, now), secure),
    );
    // The module's refreshes sign in with this, not with the password again (see `login_session.rs`).
    if let Some(hash) = session_hash {
        let session = LoginSessions::new(issuer.secret()).issue(&account, &hash, now);
        reply_headers.append(
            header::SET_COOKIE,
            login_session::set_cookie(Some(&session), secure),
        );
    }
    Ok((reply_headers, answer))
}

/// A password check not done, logged (sampled) when it is the flood defence at work.
fn refused(err: HashError, address: std::net::IpAddr) -> ApiError {
    if matches!(err, HashError::Busy) {
        crate::http::log::refused("login refused: the password hasher is busy", address);
    }
    err.into()
}
