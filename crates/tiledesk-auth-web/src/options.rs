//! The options of `new TiledeskAuth({...})`, read and checked once. An unknown key is an error: a typo
//! must not silently fall back to a default.

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::AuthError;

/// The loader Tiledesk publishes.
pub(crate) const DEFAULT_WIDGET_URL: &str = "https://widget.tiledesk.com/v6/launch.js";
const DEFAULT_TIMEOUT_MS: u32 = 15_000;
const MAX_TIMEOUT_MS: f64 = 300_000.0;
const KNOWN_LIST: &str =
    "projectId, authUrl, credentials, getToken, widgetUrl, settings, timeoutMs, onFailure, refresh, boot";
const KNOWN: &[&str] = &[
    "projectId",
    "authUrl",
    "credentials",
    "getToken",
    "widgetUrl",
    "settings",
    "timeoutMs",
    "onFailure",
    "refresh",
    "boot",
];

/// Where tokens come from.
pub(crate) enum TokenSource {
    /// POST to the site's endpoint, with a JSON body when credentials are given, else with the site's cookies.
    Endpoint {
        url: String,
        credentials: Option<JsValue>,
    },
    /// The page's own `getToken()`.
    Callback(Function),
}

/// What to do when the visitor cannot be signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Keep the widget hidden.
    Hidden,
    /// Sign in anonymously and show the widget.
    Anonymous,
}

/// When Tiledesk's loader boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Boot {
    /// As soon as the loader has run: the module gives it the interaction it waits for.
    Now,
    /// Tiledesk's own behaviour: at the visitor's first scroll, click, touch or key, or after 5 seconds.
    Interaction,
}

pub(crate) struct Options {
    pub(crate) project_id: String,
    pub(crate) source: TokenSource,
    pub(crate) widget_url: String,
    pub(crate) settings: Option<Object>,
    pub(crate) timeout_ms: u32,
    pub(crate) on_failure: OnFailure,
    pub(crate) refresh: bool,
    pub(crate) boot: Boot,
}

fn bad(message: impl Into<String>) -> AuthError {
    AuthError::BadOptions(message.into())
}

fn get(options: &JsValue, key: &str) -> Option<JsValue> {
    Reflect::get(options, &key.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn string(options: &JsValue, key: &str) -> Result<Option<String>, AuthError> {
    match get(options, key) {
        None => Ok(None),
        Some(value) => match value.as_string() {
            Some(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            _ => Err(bad(format!("`{key}` must be a non-empty string"))),
        },
    }
}

impl Options {
    pub(crate) fn parse(options: &JsValue) -> Result<Self, AuthError> {
        if !options.is_object() || options.is_function() {
            return Err(bad("pass an object: new TiledeskAuth({ projectId, authUrl })"));
        }
        for key in Object::keys::<JsValue>(options.unchecked_ref()).iter() {
            let key = key.as_string().unwrap_or_default();
            if !KNOWN.contains(&key.as_str()) {
                return Err(bad(format!("unknown option `{key}` (known: {KNOWN_LIST})")));
            }
        }
        let project_id = string(options, "projectId")?.ok_or_else(|| bad("`projectId` is required"))?;
        // The id becomes part of storage keys and URLs: the same rule as the token's `aud`.
        if let Err(tiledesk_jwt::InvalidProjectId(reason)) = tiledesk_jwt::ProjectId::check(&project_id) {
            return Err(bad(format!("`projectId` is not valid: {reason}")));
        }
        let auth_url = string(options, "authUrl")?;
        let credentials = get(options, "credentials");
        let source = match (get(options, "getToken"), auth_url) {
            (Some(_), Some(_)) => return Err(bad("give `authUrl` or `getToken`, not both")),
            (Some(callback), None) => {
                if credentials.is_some() {
                    return Err(bad("`credentials` go with `authUrl`, not with `getToken`"));
                }
                TokenSource::Callback(
                    callback
                        .dyn_into::<Function>()
                        .map_err(|_| bad("`getToken` must be a function"))?,
                )
            }
            (None, url) => {
                if let Some(c) = &credentials
                    && (!c.is_object() || js_sys::Array::is_array(c))
                {
                    return Err(bad("`credentials` must be an object, sent as the JSON body"));
                }
                TokenSource::Endpoint {
                    url: url.unwrap_or_else(|| "/auth".to_owned()),
                    credentials,
                }
            }
        };
        let widget_url = string(options, "widgetUrl")?.unwrap_or_else(|| DEFAULT_WIDGET_URL.to_owned());
        let settings = match get(options, "settings") {
            None => None,
            Some(s) if s.is_object() && !js_sys::Array::is_array(&s) => Some(s.unchecked_into::<Object>()),
            Some(_) => return Err(bad("`settings` must be an object")),
        };
        let timeout_ms = match get(options, "timeoutMs") {
            None => DEFAULT_TIMEOUT_MS,
            Some(v) => match v.as_f64() {
                Some(ms) if (1.0..=MAX_TIMEOUT_MS).contains(&ms) => ms as u32,
                _ => return Err(bad("`timeoutMs` must be a number of milliseconds, 1 to 300000")),
            },
        };
        let on_failure = match string(options, "onFailure")?.as_deref() {
            None | Some("hidden") => OnFailure::Hidden,
            Some("anonymous") => OnFailure::Anonymous,
            Some(_) => return Err(bad("`onFailure` is \"hidden\" or \"anonymous\"")),
        };
        let refresh = match get(options, "refresh") {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad("`refresh` must be true or false"))?,
        };
        let boot = match string(options, "boot")?.as_deref() {
            None | Some("now") => Boot::Now,
            Some("interaction") => Boot::Interaction,
            Some(_) => return Err(bad("`boot` is \"now\" or \"interaction\"")),
        };
        Ok(Self {
            boot,
            project_id,
            source,
            widget_url,
            settings,
            timeout_ms,
            on_failure,
            refresh,
        })
    }
}
