//! What the page sees: `{status, userId, expiresAt, error}`, a plain JS object made by serde.

use serde::Serialize;
use wasm_bindgen::JsValue;

use crate::error::AuthError;

/// Where the visitor stands with the widget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Idle,
    Loading,
    Authenticated,
    Anonymous,
    SignedOut,
    Error,
}

/// An error as the state shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct ErrorInfo {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl From<&AuthError> for ErrorInfo {
    fn from(err: &AuthError) -> Self {
        Self {
            code: err.code(),
            message: err.message(),
        }
    }
}

/// The state handed to `onStateChange` listeners and returned by `signIn`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuthState {
    pub(crate) status: Status,
    /// The visitor's chat user id (`<project id>_<site user id>`), once the widget reports it online.
    pub(crate) user_id: Option<String>,
    /// When the current token expires, in Unix seconds.
    pub(crate) expires_at: Option<f64>,
    pub(crate) error: Option<ErrorInfo>,
}

impl AuthState {
    pub(crate) fn idle() -> Self {
        Self::of(Status::Idle)
    }

    /// `status` with nothing else known.
    pub(crate) fn of(status: Status) -> Self {
        Self {
            status,
            user_id: None,
            expires_at: None,
            error: None,
        }
    }

    /// A fresh plain object (absent values are `null`), so a listener that changes it changes nothing here.
    pub(crate) fn to_js(&self) -> JsValue {
        self.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
            .unwrap_or(JsValue::NULL)
    }
}
