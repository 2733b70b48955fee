//! The options of `new TiledeskAuth({...})` and of `signIn({...})`, read through serde and checked once. An
//! unknown key is an error: a typo must not silently fall back to a default.

use std::rc::Rc;

use js_sys::{Function, Object};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::AuthError;
use crate::js_de::{self, Millis, Present, plain_object};

/// The loader Tiledesk publishes.
pub(crate) const DEFAULT_WIDGET_URL: &str = "https://widget.tiledesk.com/v6/launch.js";
const DEFAULT_TIMEOUT_MS: u32 = 15_000;
const MAX_TIMEOUT_MS: f64 = 300_000.0;

/// Where tokens come from.
pub(crate) enum TokenSource {
    /// POST to the site's endpoint, with the credentials as its JSON body (`{}` without: the site's cookies and
    /// session say who the visitor is).
    Endpoint {
        url: String,
        credentials: Option<JsValue>,
        /// Send the browser's cookies to an `authUrl` of another origin (`withCredentials`, default true).
        with_credentials: bool,
    },
    /// The page's own `getToken()`.
    Callback(Function),
}

/// What to do when the visitor cannot be signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnFailure {
    /// Keep the widget hidden.
    Hidden,
    /// Sign in anonymously and show the widget.
    Anonymous,
}

/// When Tiledesk's loader boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Boot {
    /// As soon as the loader has run: the module gives it the interaction it waits for.
    Now,
    /// Tiledesk's own behaviour: at the visitor's first scroll, click, touch or key, or after 5 seconds.
    Interaction,
}

/// `new TiledeskAuth({...})` as the page wrote it. Objects and functions are only marked present here, and read
/// as they are afterwards.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    project_id: Option<String>,
    auth_url: Option<String>,
    credentials: Option<Present>,
    get_token: Option<Present>,
    widget_url: Option<String>,
    settings: Option<Present>,
    timeout_ms: Option<Millis>,
    on_failure: Option<OnFailure>,
    refresh: Option<bool>,
    boot: Option<Boot>,
    sync_tabs: Option<bool>,
    with_credentials: Option<bool>,
}

pub(crate) struct Options {
    pub(crate) project_id: String,
    /// The constructor's token source: for `signIn()` without options and for sign-ins that follow another tab.
    pub(crate) source: Rc<TokenSource>,
    pub(crate) widget_url: String,
    pub(crate) settings: Option<Object>,
    pub(crate) timeout_ms: u32,
    pub(crate) on_failure: OnFailure,
    pub(crate) refresh: bool,
    pub(crate) boot: Boot,
    pub(crate) sync_tabs: bool,
}

fn bad(message: impl Into<String>) -> AuthError {
    AuthError::BadOptions(message.into())
}

/// `options[key]` when `present`.
fn kept(options: &JsValue, key: &str, present: Option<Present>) -> Option<JsValue> {
    present.and_then(|_| js_sys::Reflect::get(options, &key.into()).ok())
}

/// A non-empty string, trimmed.
fn text(value: Option<String>, key: &str) -> Result<Option<String>, AuthError> {
    match value.map(|s| s.trim().to_owned()) {
        Some(s) if s.is_empty() => Err(bad(format!("`{key}` must be a non-empty string"))),
        other => Ok(other),
    }
}

/// Reads `value` as `T`; an unknown key is refused.
fn read<T: DeserializeOwned>(value: &JsValue, example: &str) -> Result<T, AuthError> {
    if !plain_object(value) {
        return Err(bad(format!("pass an object: {example}")));
    }
    js_de::from_value(value).map_err(|js_de::Error(message)| bad(message))
}

impl Options {
    pub(crate) fn parse(options: &JsValue) -> Result<Self, AuthError> {
        let raw: Raw = read(options, "new TiledeskAuth({ projectId, authUrl })")?;
        let project_id = text(raw.project_id, "projectId")?.ok_or_else(|| bad("`projectId` is required"))?;
        // The id becomes part of storage keys and URLs: the same rule as the token's `aud`.
        if let Some(reason) = tiledesk_rules::project_id_problem(&project_id) {
            return Err(bad(format!("`projectId` is not valid: {reason}")));
        }
        let auth_url = text(raw.auth_url, "authUrl")?;
        let source = source(
            kept(options, "credentials", raw.credentials),
            kept(options, "getToken", raw.get_token),
            auth_url,
            raw.with_credentials.unwrap_or(true),
        )?;
        let settings = match kept(options, "settings", raw.settings) {
            None => None,
            Some(s) if plain_object(&s) => Some(s.unchecked_into::<Object>()),
            Some(_) => return Err(bad("`settings` must be an object")),
        };
        let timeout_ms = match raw.timeout_ms {
            None => DEFAULT_TIMEOUT_MS,
            Some(Millis(ms)) if (1.0..=MAX_TIMEOUT_MS).contains(&ms) => ms as u32,
            Some(_) => return Err(bad("`timeoutMs` must be a number of milliseconds, 1 to 300000")),
        };
        Ok(Self {
            project_id,
            source: Rc::new(source),
            widget_url: text(raw.widget_url, "widgetUrl")?.unwrap_or_else(|| DEFAULT_WIDGET_URL.to_owned()),
            settings,
            timeout_ms,
            on_failure: raw.on_failure.unwrap_or(OnFailure::Hidden),
            refresh: raw.refresh.unwrap_or(true),
            boot: raw.boot.unwrap_or(Boot::Now),
            sync_tabs: raw.sync_tabs.unwrap_or(true),
        })
    }

    /// The token source of one `signIn(options)`: `None` means the constructor's. The endpoint stays the
    /// constructor's `authUrl`.
    pub(crate) fn sign_in_source(&self, options: &JsValue) -> Result<Option<Rc<TokenSource>>, AuthError> {
        if options.is_undefined() || options.is_null() {
            return Ok(None);
        }
        // The constructor's keys, read by the same code: only these two may be given here.
        let raw: Raw = read(options, "signIn({ credentials }) or signIn({ getToken })")?;
        if let Some(key) = js_sys::Object::keys::<JsValue>(options.unchecked_ref())
            .iter()
            .filter_map(|k| k.as_string())
            .find(|k| k != "credentials" && k != "getToken")
        {
            return Err(bad(format!(
                "`{key}` is an option of new TiledeskAuth(), not of signIn()"
            )));
        }
        let credentials = kept(options, "credentials", raw.credentials);
        let get_token = kept(options, "getToken", raw.get_token);
        if credentials.is_none() && get_token.is_none() {
            return Ok(None);
        }
        let (url, with_credentials) = match (&*self.source, &credentials) {
            (
                TokenSource::Endpoint {
                    url,
                    with_credentials,
                    ..
                },
                Some(_),
            ) => (Some(url.clone()), *with_credentials),
            (TokenSource::Callback(_), Some(_)) => {
                return Err(bad(
                    "`credentials` need an `authUrl`: this object was made with `getToken`",
                ));
            }
            (_, None) => (None, true),
        };
        source(credentials, get_token, url, with_credentials).map(|s| Some(Rc::new(s)))
    }
}

/// The token source from `credentials`, `getToken`, `authUrl` and `withCredentials`.
fn source(
    credentials: Option<JsValue>,
    get_token: Option<JsValue>,
    auth_url: Option<String>,
    with_credentials: bool,
) -> Result<TokenSource, AuthError> {
    match (get_token, credentials) {
        (Some(_), Some(_)) => Err(bad("give `credentials` or `getToken`, not both")),
        (Some(_), None) if auth_url.is_some() => Err(bad("give `authUrl` or `getToken`, not both")),
        (Some(callback), None) => Ok(TokenSource::Callback(
            callback
                .dyn_into::<Function>()
                .map_err(|_| bad("`getToken` must be a function"))?,
        )),
        (None, credentials) => {
            if credentials.as_ref().is_some_and(|c| !plain_object(c)) {
                return Err(bad("`credentials` must be an object, sent as the JSON body"));
            }
            Ok(TokenSource::Endpoint {
                url: auth_url.unwrap_or_else(|| "/auth".to_owned()),
                credentials,
                with_credentials,
            })
        }
    }
}
