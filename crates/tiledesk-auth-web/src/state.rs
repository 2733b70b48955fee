//! What the page sees: `{status, userId, expiresAt, error}`, a plain JS object.

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

use crate::error::AuthError;

/// Where the visitor stands with the widget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Idle,
    Loading,
    Authenticated,
    Anonymous,
    SignedOut,
    Error,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Loading => "loading",
            Self::Authenticated => "authenticated",
            Self::Anonymous => "anonymous",
            Self::SignedOut => "signed_out",
            Self::Error => "error",
        }
    }
}

/// An error as the state shows it.
#[derive(Clone, Debug, PartialEq)]
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
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AuthState {
    pub(crate) status: Status,
    /// The visitor's chat user id (`<project id>_<site user id>`), once the widget reports it online.
    pub(crate) user_id: Option<String>,
    /// When the current token expires, in Unix seconds.
    pub(crate) expires_at: Option<f64>,
    pub(crate) error: Option<ErrorInfo>,
}

fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &key.into(), value);
}

impl AuthState {
    pub(crate) fn idle() -> Self {
        Self {
            status: Status::Idle,
            user_id: None,
            expires_at: None,
            error: None,
        }
    }

    /// A fresh plain object, so a listener that changes it changes nothing here.
    pub(crate) fn to_js(&self) -> JsValue {
        let state = Object::new();
        set(&state, "status", &self.status.as_str().into());
        set(
            &state,
            "userId",
            &self.user_id.as_deref().map_or(JsValue::NULL, JsValue::from),
        );
        set(
            &state,
            "expiresAt",
            &self.expires_at.map_or(JsValue::NULL, JsValue::from),
        );
        let error = self.error.as_ref().map_or(JsValue::NULL, |e| {
            let error = Object::new();
            set(&error, "code", &e.code.into());
            set(&error, "message", &e.message.as_str().into());
            error.into()
        });
        set(&state, "error", &error);
        state.into()
    }
}
