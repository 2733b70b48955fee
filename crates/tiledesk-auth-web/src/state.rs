//! What the page sees: `{status, userId, expiresAt, error}`, a plain JS object made by serde.
//!
//! Each is serialized as a map with string keys, not through `#[derive(Serialize)]`: serde-wasm-bindgen turns a
//! struct's field names and an enum's variant names into JS strings through a cache (a hash map) that cost the
//! module 1 KiB gzipped; a map's keys are plain strings. Same objects, same key order.

use serde::ser::{Serialize, SerializeMap, Serializer};
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

impl Status {
    /// The name the page sees.
    pub(crate) fn as_str(self) -> &'static str {
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

impl Serialize for ErrorInfo {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("code", self.code)?;
        map.serialize_entry("message", &self.message)?;
        map.end()
    }
}

impl Serialize for AuthState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("status", self.status.as_str())?;
        map.serialize_entry("userId", &self.user_id)?;
        map.serialize_entry("expiresAt", &self.expires_at)?;
        map.serialize_entry("error", &self.error)?;
        map.end()
    }
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
