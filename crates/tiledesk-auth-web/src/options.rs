//! The options of `new TiledeskAuth({...})` and of `signIn({...})`, read key by key and checked once. An unknown
//! key is an error: a typo must not silently fall back to a default. Each message names the key and what it must
//! be, never the value given (it could be a password).
//!
//! Read by hand, not through a serde derive: the derive and a `Deserializer` over JS values cost the module about
//! 2 KiB gzipped for twelve keys (measured when they were replaced).

use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::AuthError;

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
        /// A sign-in with credentials went through: the service gave the browser a login session, which refreshes
        /// use instead of the credentials, and which `signOut()` ends (`DELETE authUrl`).
        login_session: bool,
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

/// The keys of `new TiledeskAuth({...})`, in the order an unknown key's message lists them.
const KEYS: [&str; 12] = [
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
    "syncTabs",
    "withCredentials",
];

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

/// Whether `value` is an object that is neither a function nor an array.
pub(crate) fn plain_object(value: &JsValue) -> bool {
    value.is_object() && !value.is_function() && !Array::is_array(value)
}

/// `a, b, c`, each quoted with `quote`.
fn list(items: &[&str], quote: &str) -> String {
    let mut out = String::new();
    for item in items {
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(quote);
        out.push_str(item);
        out.push_str(quote);
    }
    out
}

/// A plain object whose keys are all options; `example` shows the page what to pass.
struct Given<'a>(&'a JsValue);

impl<'a> Given<'a> {
    fn check(value: &'a JsValue, example: &str) -> Result<Self, AuthError> {
        if !plain_object(value) {
            return Err(bad(["pass an object: ", example].concat()));
        }
        if let Some(key) = Self::keys(value)
            .into_iter()
            .find(|k| !KEYS.contains(&k.as_str()))
        {
            return Err(bad([
                "unknown option `",
                &key,
                "` (known: ",
                &list(&KEYS, ""),
                ")",
            ]
            .concat()));
        }
        Ok(Self(value))
    }

    fn keys(value: &JsValue) -> Vec<String> {
        Object::keys::<JsValue>(value.unchecked_ref())
            .iter()
            .filter_map(|k| k.as_string())
            .collect()
    }

    /// `options[key]`, unless it is `undefined` or `null` (as if not given).
    fn get(&self, key: &str) -> Option<JsValue> {
        Reflect::get(self.0, &key.into())
            .ok()
            .filter(|v| !v.is_undefined() && !v.is_null())
    }

    /// `options[key]` read by `read`, which says `None` for a value of another type: "`key` must be `what`".
    fn typed<T>(
        &self,
        key: &str,
        what: &str,
        read: fn(&JsValue) -> Option<T>,
    ) -> Result<Option<T>, AuthError> {
        self.get(key)
            .map(|v| read(&v).ok_or_else(|| bad(["`", key, "` must be ", what].concat())))
            .transpose()
    }

    fn string(&self, key: &str) -> Result<Option<String>, AuthError> {
        self.typed(key, "a string", JsValue::as_string)
    }

    /// A non-empty string, trimmed.
    fn text(&self, key: &str) -> Result<Option<String>, AuthError> {
        match self.string(key)?.map(|s| s.trim().to_owned()) {
            Some(s) if s.is_empty() => Err(bad(["`", key, "` must be a non-empty string"].concat())),
            other => Ok(other),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, AuthError> {
        self.typed(key, "a boolean", JsValue::as_bool)
    }

    /// One of `names`, as its index.
    fn choice(&self, key: &str, names: &[&str]) -> Result<Option<usize>, AuthError> {
        self.get(key)
            .map(|v| {
                v.as_string()
                    .and_then(|s| names.iter().position(|n| *n == s))
                    .ok_or_else(|| bad(["`", key, "` must be one of ", &list(names, "\"")].concat()))
            })
            .transpose()
    }
}

impl Options {
    pub(crate) fn parse(options: &JsValue) -> Result<Self, AuthError> {
        let given = Given::check(options, "new TiledeskAuth({ projectId, authUrl })")?;
        let project_id = given
            .text("projectId")?
            .ok_or_else(|| bad("`projectId` is required"))?;
        // The id becomes part of storage keys and URLs: the same rule as the token's `aud`.
        if let Some(reason) = tiledesk_rules::project_id_problem(&project_id) {
            return Err(bad(["`projectId` is not valid: ", reason].concat()));
        }
        let auth_url = given.text("authUrl")?;
        let source = source(
            given.get("credentials"),
            given.get("getToken"),
            auth_url,
            given.boolean("withCredentials")?.unwrap_or(true),
        )?;
        let settings = match given.get("settings") {
            None => None,
            Some(s) if plain_object(&s) => Some(s.unchecked_into::<Object>()),
            Some(_) => return Err(bad("`settings` must be an object")),
        };
        let timeout_ms = match given.get("timeoutMs").map(|v| v.as_f64()) {
            None => DEFAULT_TIMEOUT_MS,
            Some(Some(ms)) if (1.0..=MAX_TIMEOUT_MS).contains(&ms) => ms as u32,
            Some(_) => return Err(bad("`timeoutMs` must be a number of milliseconds, 1 to 300000")),
        };
        Ok(Self {
            project_id,
            source: Rc::new(source),
            widget_url: given
                .text("widgetUrl")?
                .unwrap_or_else(|| DEFAULT_WIDGET_URL.to_owned()),
            settings,
            timeout_ms,
            on_failure: match given.choice("onFailure", &["hidden", "anonymous"])? {
                Some(1) => OnFailure::Anonymous,
                _ => OnFailure::Hidden,
            },
            refresh: given.boolean("refresh")?.unwrap_or(true),
            boot: match given.choice("boot", &["now", "interaction"])? {
                Some(1) => Boot::Interaction,
                _ => Boot::Now,
            },
            sync_tabs: given.boolean("syncTabs")?.unwrap_or(true),
        })
    }

    /// The token source of one `signIn(options)`: `None` means the constructor's. The endpoint stays the
    /// constructor's `authUrl`.
    pub(crate) fn sign_in_source(&self, options: &JsValue) -> Result<Option<Rc<TokenSource>>, AuthError> {
        if options.is_undefined() || options.is_null() {
            return Ok(None);
        }
        // The constructor's keys, read by the same code: only these two may be given here.
        let given = Given::check(options, "signIn({ credentials }) or signIn({ getToken })")?;
        if let Some(key) = Given::keys(options)
            .into_iter()
            .find(|k| k != "credentials" && k != "getToken")
        {
            return Err(bad([
                "`",
                &key,
                "` is an option of new TiledeskAuth(), not of signIn()",
            ]
            .concat()));
        }
        let credentials = given.get("credentials");
        let get_token = given.get("getToken");
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

impl TokenSource {
    /// What the session refreshes with once a sign-in with `credentials` went through: the same endpoint, `{}` and
    /// the login session the service gave the browser. The password is sent once, not kept to be sent again.
    pub(crate) fn after_sign_in(source: &Rc<Self>) -> Rc<Self> {
        match &**source {
            Self::Endpoint {
                url,
                credentials: Some(_),
                with_credentials,
                ..
            } => Rc::new(Self::Endpoint {
                url: url.clone(),
                credentials: None,
                with_credentials: *with_credentials,
                login_session: true,
            }),
            _ => Rc::clone(source),
        }
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
                login_session: false,
            })
        }
    }
}
