//! The service's one error type and its JSON shape: `{"error": "<stable code>", "message": "<for a person>"}`.
//! Details of a 5xx are logged, never sent.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::identity::oidc::OidcError;
use crate::identity::session::SessionError;

impl From<OidcError> for ApiError {
    fn from(err: OidcError) -> Self {
        match err {
            OidcError::Invalid(why) => Self::InvalidIdToken(why),
            OidcError::Unavailable(why) => Self::IdentityProviderUnavailable(why),
        }
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not JSON, or not a JSON object.
    #[error("{0}")]
    InvalidJson(String),
    /// The request is not `Content-Type: application/json`.
    #[error("the body must be sent as Content-Type: application/json")]
    UnsupportedMediaType,
    /// The client did not send the whole body in time.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The body is over the 16 KiB limit.
    #[error("the body is larger than 16 KiB")]
    PayloadTooLarge,
    /// A required field is absent or null.
    #[error("`{0}` is required")]
    MissingField(&'static str),
    /// A field the endpoint does not know.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// The same key twice in one object: which one wins would be a guess.
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    /// A field of the wrong type, empty, too long or of the wrong shape.
    #[error("`{field}` {problem}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it, as the end of a sentence.
        problem: String,
    },
    /// A claim only this service may set (`role`, `_id`, `sub`, `aud`, `exp`...).
    #[error("`{0}` is a reserved claim and cannot be set by the caller")]
    ReservedClaim(String),
    /// Wrong email or password (the same answer for both).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// The right password, for a user the site disabled (`tiledesk-auth users disable`).
    #[error("this account is disabled")]
    AccountDisabled,
    /// `POST /tokens` without `Authorization: Bearer <api key>`.
    #[error("an API key is required: Authorization: Bearer <key>")]
    MissingApiKey,
    /// `POST /tokens` with a key that is not the configured one.
    #[error("the API key is not valid")]
    InvalidApiKey,
    /// Too many failed logins for this account or from this address.
    #[error("too many failed attempts; try again in {} s", .retry_after.as_secs().max(1))]
    TooManyAttempts {
        /// When the caller may try again.
        retry_after: Duration,
    },
    /// Too many password checks are waiting: the service is protecting itself under a flood.
    #[error("the service is busy; try again in {} s", .retry_after.as_secs().max(1))]
    Busy {
        /// When the caller may try again.
        retry_after: Duration,
    },
    /// The session bridge could not sign the visitor in (see [`crate::identity::session`]).
    #[error("{}", .0.public_message())]
    Session(#[from] crate::identity::session::SessionError),
    /// The ID token does not sign the visitor in (see [`crate::identity::oidc`]); why goes to the log.
    #[error("the ID token is not valid for this service")]
    InvalidIdToken(String),
    /// The identity provider's keys cannot be fetched.
    #[error("the identity provider cannot be reached; try again in 5 s")]
    IdentityProviderUnavailable(String),
    /// No such route.
    #[error("no such endpoint")]
    NotFound,
    /// A path of the browser module, in a binary built without it.
    #[error("{}", crate::module::NOT_BUILT)]
    ModuleNotBuilt,
    /// A path of another build of the browser module (an old tag); the current entry's path is kept.
    #[error(
        "this service serves another build of the browser module, at {0}: run `tiledesk-auth snippet` for the current tag"
    )]
    ModuleNotHere(String),
    /// A `POST /auth` through the session bridge from a page of an origin that is neither the service's own nor
    /// listed with `--allowed-origin`: the visitor's cookies must not sign them in for another site.
    #[error("this origin may not sign visitors in with their session; list it with --allowed-origin")]
    OriginNotAllowed,
    /// A `POST /auth` with a login session that is over (its lifetime, a password change, a removed user); the
    /// headers clear its cookie.
    #[error("the login session is over: sign in again")]
    LoginSessionEnded(axum::http::HeaderMap),
    /// The route exists, but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The user database cannot be used right now.
    #[error("the user database is unavailable")]
    Unavailable(#[source] crate::identity::users::StoreError),
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_)
            | Self::MissingField(_)
            | Self::UnknownField(_)
            | Self::DuplicateField(_)
            | Self::InvalidField { .. }
            | Self::ReservedClaim(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::InvalidCredentials | Self::MissingApiKey | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InvalidIdToken(_) | Self::LoginSessionEnded(_) => StatusCode::UNAUTHORIZED,
            Self::IdentityProviderUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Session(err) => match err {
                SessionError::Rejected(_) => StatusCode::UNAUTHORIZED,
                SessionError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_GATEWAY,
            },
            Self::NotFound | Self::ModuleNotBuilt | Self::ModuleNotHere(_) => StatusCode::NOT_FOUND,
            Self::OriginNotAllowed | Self::AccountDisabled => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code sent as `error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::MissingField(_) => "missing_field",
            Self::UnknownField(_) => "unknown_field",
            Self::DuplicateField(_) => "duplicate_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::ReservedClaim(_) => "reserved_claim",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AccountDisabled => "account_disabled",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidApiKey => "invalid_api_key",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::Busy { .. } => "busy",
            Self::Session(err) => err.code(),
            Self::InvalidIdToken(_) => "invalid_id_token",
            Self::LoginSessionEnded(_) => "auth_rejected",
            Self::IdentityProviderUnavailable(_) => "identity_provider_unavailable",
            Self::NotFound => "not_found",
            Self::ModuleNotBuilt => "module_not_built",
            Self::ModuleNotHere(_) => "module_not_here",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            problem: problem.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unavailable(err.into())
    }
}

impl From<crate::identity::users::StoreError> for ApiError {
    fn from(err: crate::identity::users::StoreError) -> Self {
        if err.is_unavailable() {
            Self::Unavailable(err)
        } else {
            Self::Internal(err.into())
        }
    }
}

impl From<crate::guard::passwords::HashError> for ApiError {
    fn from(err: crate::guard::passwords::HashError) -> Self {
        match err {
            crate::guard::passwords::HashError::Busy => Self::Busy {
                retry_after: crate::guard::passwords::BUSY_RETRY_AFTER,
            },
            crate::guard::passwords::HashError::Failed(err) => Self::Internal(err),
        }
    }
}

/// A claims error from the token core, named after the request field it came from; anything else (a token that
/// cannot be signed) is internal.
impl From<tiledesk_jwt::Error> for ApiError {
    fn from(err: tiledesk_jwt::Error) -> Self {
        use tiledesk_jwt::Error as E;
        let field = |core_name: &'static str| match core_name {
            "user id" => "user_id",
            other => other,
        };
        match err {
            E::ReservedClaim { name } => Self::ReservedClaim(name),
            E::EmptyUserId => Self::MissingField("user_id"),
            E::InvalidEmail => Self::invalid("email", "is not a valid email address"),
            E::TooLong {
                field: name,
                len,
                max,
            } => Self::invalid(field(name), format!("is too long ({len} bytes, at most {max})")),
            E::ControlCharacter { field: name } => Self::invalid(field(name), "contains a control character"),
            E::InvalidAttributeKey { reason } => Self::invalid("attributes", reason),
            E::TokenTooLarge { len, max } => Self::invalid(
                "attributes",
                format!(
                    "make the token {len} bytes, over the {max} a token may have: send fewer or shorter ones"
                ),
            ),
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Unavailable(source) => {
                crate::metrics::metrics().store_error(crate::metrics::Store::database);
                tracing::error!(error = %source, "user database unavailable");
            }
            Self::Internal(source) => tracing::error!(error = format!("{source:#}"), "internal error"),
            Self::Session(SessionError::Rejected(status)) => {
                tracing::debug!(%status, "session bridge: the site does not know the visitor");
            }
            Self::Session(err) => crate::http::log::failed("session bridge failed", err),
            Self::InvalidIdToken(why) => crate::http::log::failed("ID token refused", why),
            Self::IdentityProviderUnavailable(why) => {
                crate::http::log::failed("identity provider unavailable", why);
            }
            _ => tracing::debug!(code = self.code(), "request refused"),
        }
        let body = Json(json!({ "error": self.code(), "message": self.to_string() }));
        let mut response = (status, [crate::routes::NO_STORE], body).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::IdentityProviderUnavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(5));
            }
            Self::Session(SessionError::Busy) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1));
            }
            Self::TooManyAttempts { retry_after } | Self::Busy { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            Self::MissingApiKey | Self::InvalidApiKey => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::LoginSessionEnded(extra) => headers.extend(extra.clone()),
            _ => {}
        }
        response
    }
}
