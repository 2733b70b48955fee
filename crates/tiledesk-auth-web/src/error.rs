//! The failures the module reports, each a JS `Error` whose `code` property names it.

use wasm_bindgen::JsValue;

/// Why a sign-in failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// The site's token endpoint answered 401 or 403: the visitor is not signed in on the site.
    AuthRejected(u16),
    /// The token endpoint answered another error, or a body without a usable token.
    AuthEndpoint(String),
    /// The token endpoint could not be reached.
    Network(String),
    /// A step did not finish in `timeoutMs`.
    Timeout(&'static str),
    /// The widget's loader script failed to load.
    WidgetLoad(String),
    /// The widget's `signInWithCustomToken` Promise rejected (Tiledesk refused the token).
    SignInRejected(String),
    /// The options passed to `new TiledeskAuth(...)` are not usable.
    BadOptions(String),
    /// The object was freed (`free()`) before the sign-in finished.
    Aborted,
    /// A `signIn()` with other credentials (or `getToken`) replaced this one before it finished.
    Replaced,
}

impl AuthError {
    /// The stable code, also the `code` property of the JS error.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::AuthRejected(_) => "auth_rejected",
            Self::AuthEndpoint(_) => "auth_endpoint",
            Self::Network(_) => "network",
            Self::Timeout(_) => "timeout",
            Self::WidgetLoad(_) => "widget_load",
            Self::SignInRejected(_) => "sign_in_rejected",
            Self::BadOptions(_) => "bad_options",
            Self::Aborted | Self::Replaced => "aborted",
        }
    }

    /// A sentence for a person (never a token or a secret).
    pub(crate) fn message(&self) -> String {
        match self {
            Self::AuthRejected(status) => format!("the site's token endpoint refused the visitor ({status})"),
            Self::AuthEndpoint(detail) => format!("the site's token endpoint failed: {detail}"),
            Self::Network(detail) => format!("the site's token endpoint could not be reached: {detail}"),
            Self::Timeout(step) => format!("timed out waiting for {step}"),
            Self::WidgetLoad(url) => format!("the Tiledesk widget could not be loaded from {url}"),
            Self::SignInRejected(detail) => format!("the Tiledesk widget refused the token: {detail}"),
            Self::BadOptions(detail) => format!("bad options: {detail}"),
            Self::Aborted => "the TiledeskAuth object was freed before the sign-in finished".to_owned(),
            Self::Replaced => "a newer signIn() with other credentials replaced this one".to_owned(),
        }
    }

    /// A JS `Error` with `code` set.
    pub(crate) fn to_js(&self) -> JsValue {
        let error = js_sys::Error::new(&self.message());
        let _ = js_sys::Reflect::set(&error, &"code".into(), &self.code().into());
        error.into()
    }
}
