//! The HTTP endpoints, one module per area, and what they share.

pub(crate) mod auth;
pub(crate) mod health;
pub(crate) mod site;
pub(crate) mod tokens;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tiledesk_jwt::VisitorToken;

use crate::http::error::ApiError;
use crate::state::Shared;

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// What `POST /auth` and `POST /tokens` answer.
/// A visitor token, and who it is for.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    /// `JWT <jwt>`, ready for `window.Tiledesk('signInWithCustomToken', token)`.
    pub(crate) token: String,
    /// The token's `exp`, in Unix seconds.
    pub(crate) expires_at: u64,
    /// Who it is for.
    pub(crate) user: UserView,
}

/// The visitor a token was minted for.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    /// The site's user id (the password store's id, the session's `id`, the ID token's `sub`, `/tokens`'s
    /// `user_id`); the token's `_id` is `<project>_<id>`.
    pub(crate) id: String,
    /// Their email, when known.
    pub(crate) email: Option<String>,
    /// Their first name, when known.
    pub(crate) firstname: Option<String>,
    /// Their last name, when known.
    pub(crate) lastname: Option<String>,
}

/// What the answer says of the visitor a token was minted for.
impl From<crate::identity::Visitor> for UserView {
    fn from(visitor: crate::identity::Visitor) -> Self {
        Self {
            id: visitor.id,
            email: visitor.email,
            firstname: visitor.firstname,
            lastname: visitor.lastname,
        }
    }
}

/// The credentials of `Authorization: Bearer <credentials>`: none without the header, `Err` for another scheme or
/// a value that is not text.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<Result<&str, ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let parsed = value.to_str().ok().and_then(|value| {
        let (scheme, credentials) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| credentials.trim())
    });
    Some(parsed.ok_or(()))
}

impl TokenResponse {
    pub(crate) fn new(token: &VisitorToken, user: UserView) -> Self {
        Self {
            token: token.as_str().to_owned(),
            expires_at: token.expires_at(),
            user,
        }
    }
}

/// An answer that carries a token: no cache, shared or private, may keep it.
impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        ([NO_STORE], Json(self)).into_response()
    }
}

/// `Cache-Control: no-store`, on every answer that carries a token and on every error.
pub(crate) const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

/// The client's address: the TCP peer, or behind a trusted proxy the address it forwarded (see [`crate::http::proxy`]).
/// Tests through `oneshot` without connect info get `0.0.0.0`.
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl FromRequestParts<Shared> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        if state.trusted_proxies.is_empty() {
            return Ok(Self(peer));
        }
        // A value that is not text is an unreadable entry: the walk from the right stops there.
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("unreadable"))
            .collect();
        Ok(Self(crate::http::proxy::client_address(
            peer,
            forwarded.into_iter(),
            &state.trusted_proxies,
        )))
    }
}
