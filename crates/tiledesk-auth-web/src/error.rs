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
            Self::AuthRejected(status) => [
                "the site's token endpoint refused the visitor (",
                &decimal(u32::from(*status)),
                ")",
            ]
            .concat(),
            Self::AuthEndpoint(detail) => ["the site's token endpoint failed: ", detail].concat(),
            Self::Network(detail) => ["the site's token endpoint could not be reached: ", detail].concat(),
            Self::Timeout(step) => ["timed out waiting for ", step].concat(),
            Self::WidgetLoad(url) => ["the Tiledesk widget could not be loaded from ", url].concat(),
            Self::SignInRejected(detail) => ["the Tiledesk widget refused the token: ", detail].concat(),
            Self::BadOptions(detail) => ["bad options: ", detail].concat(),
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

/// `n` in decimal. Messages are joined with `concat`, not `format!`: the module then carries no `core::fmt`
/// (its formatting machinery, kept alive by any one `format!`, was about 1 KiB of the gzipped module).
pub(crate) fn decimal(n: u32) -> String {
    let mut out = String::new();
    let mut power = 1_000_000_000;
    while power > 1 && n / power == 0 {
        power /= 10;
    }
    while power > 0 {
        out.push(char::from(b'0' + (n / power % 10) as u8));
        power /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_writes_what_display_writes() {
        for n in [0, 7, 10, 99, 100, 401, 65_535, 1_000_000_000, u32::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
    }
}
