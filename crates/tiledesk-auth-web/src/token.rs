//! Getting a token from the site (its endpoint or the page's callback) and reading it.

use gloo_net::http::Request;
use js_sys::{Function, Reflect};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, RequestCredentials, RequestInit};

use crate::error::{AuthError, decimal};
use crate::options::TokenSource;
use crate::widget::{message_of, thenable};

/// A token ready for the widget, and when it expires.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SiteToken {
    /// `JWT <jwt>`.
    pub(crate) value: String,
    /// `exp` in Unix seconds, from the endpoint's `expires_at` or the token itself.
    pub(crate) expires_at: Option<f64>,
    /// The chat user id the widget will report online (the token's `_id`), when the token says.
    pub(crate) user_id: Option<String>,
}

/// Ends the login session a sign-in with credentials gave the browser (`DELETE authUrl`), so that nothing signs the
/// next visitor of this browser in as this one. In the background; a failure changes nothing here.
pub(crate) fn end_login_session(source: &TokenSource) {
    if let TokenSource::Endpoint {
        url,
        with_credentials,
        login_session: true,
        ..
    } = source
        && let Ok(request) = request("DELETE", url, *with_credentials, None)
    {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = request.send().await;
        });
    }
}

/// A request to the site's endpoint, sent by gloo-net; with `body`, a JSON one. `with_credentials`: cookies to a
/// service on another origin too (the session bridge, the device cookie), which answers CORS with credentials only
/// for the origins it lists. Built with `web_sys`, not gloo-net's `RequestBuilder`: that one joins query strings
/// with `format!`, which alone kept `core::fmt` in the module.
fn request(
    method: &str,
    url: &str,
    with_credentials: bool,
    body: Option<&str>,
) -> Result<Request, AuthError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_credentials(if with_credentials {
        RequestCredentials::Include
    } else {
        RequestCredentials::SameOrigin
    });
    let failed = |e: JsValue| AuthError::Network(message_of(&e));
    if let Some(body) = body {
        let headers = Headers::new().map_err(failed)?;
        for (name, value) in [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
        ] {
            headers.set(name, value).map_err(failed)?;
        }
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(body));
    }
    web_sys::Request::new_with_str_and_init(url, &init)
        .map(Request::from)
        .map_err(failed)
}

/// Asks the site for a token.
pub(crate) async fn fetch(source: &TokenSource) -> Result<SiteToken, AuthError> {
    let (raw, expires_at) = match source {
        TokenSource::Endpoint {
            url,
            credentials,
            with_credentials,
            ..
        } => from_endpoint(url, credentials.as_ref(), *with_credentials).await?,
        TokenSource::Callback(callback) => from_callback(callback).await?,
    };
    let value = normalize(&raw)?;
    let claims = claims_of(&value);
    let claim = |name: &str| claims.as_ref().and_then(|c| Reflect::get(c, &name.into()).ok());
    let expires_at = expires_at.or_else(|| claim("exp").and_then(|v| v.as_f64()));
    let user_id = claim("_id").and_then(|v| v.as_string());
    Ok(SiteToken {
        value,
        expires_at,
        user_id,
    })
}

async fn from_endpoint(
    url: &str,
    credentials: Option<&JsValue>,
    with_credentials: bool,
) -> Result<(String, Option<f64>), AuthError> {
    // Always a JSON body, `{}` without credentials: a cross-origin POST then needs the CORS preflight, so another
    // site's page cannot make the browser send it with the visitor's cookies as a "simple request".
    let body = match credentials {
        Some(body) => js_sys::JSON::stringify(body)
            .ok()
            .and_then(|text| text.as_string())
            .ok_or_else(|| AuthError::BadOptions("`credentials` cannot be sent as JSON".to_owned()))?,
        None => "{}".to_owned(),
    };
    let response = request("POST", url, with_credentials, Some(&body))?
        .send()
        .await
        .map_err(|e| {
            AuthError::Network(match e {
                // What the error's `toString()` says, e.g. `TypeError: Failed to fetch`.
                gloo_net::Error::JsError(e) => [e.name.as_str(), ": ", &e.message].concat(),
                gloo_net::Error::GlooError(text) => text,
            })
        })?;
    let status = response.status();
    if status == 401 || status == 403 {
        return Err(AuthError::AuthRejected(status));
    }
    if !response.ok() {
        return Err(AuthError::AuthEndpoint(
            ["HTTP ", &decimal(u32::from(status))].concat(),
        ));
    }
    // The browser's own JSON parser: no serde_json in the module.
    let not_json = || AuthError::AuthEndpoint("the body is not JSON".to_owned());
    let text = response.text().await.map_err(|_| not_json())?;
    let body = js_sys::JSON::parse(&text).map_err(|_| not_json())?;
    read_token_object(&body)
}

async fn from_callback(callback: &Function) -> Result<(String, Option<f64>), AuthError> {
    let failed = |e: JsValue| AuthError::AuthEndpoint(["getToken(): ", &message_of(&e)].concat());
    let mut value = callback.call0(&JsValue::NULL).map_err(failed)?;
    if let Some(promise) = thenable(&value) {
        value = JsFuture::from(promise).await.map_err(failed)?;
    }
    match value.as_string() {
        Some(token) => Ok((token, None)),
        None => read_token_object(&value),
    }
}

/// Reads `{token, expires_at | expiresAt}`.
fn read_token_object(body: &JsValue) -> Result<(String, Option<f64>), AuthError> {
    let token = Reflect::get(body, &"token".into())
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| AuthError::AuthEndpoint("the answer holds no `token` string".to_owned()))?;
    let expires_at = ["expires_at", "expiresAt"]
        .iter()
        .find_map(|k| Reflect::get(body, &(*k).into()).ok().and_then(|v| v.as_f64()));
    Ok((token, expires_at))
}

/// `JWT <jwt>` from what the site gave: a bare JWT gets the prefix, never twice; another scheme is refused.
pub(crate) fn normalize(raw: &str) -> Result<String, AuthError> {
    let raw = raw.trim();
    // Split at the first space by bytes (a space is one byte, so both sides are whole characters): `split_once`
    // with a `char` brings core's character searcher into the module.
    let split = raw
        .bytes()
        .position(|b| b == b' ')
        .map(|at| (&raw[..at], &raw[at + 1..]));
    let jwt = match split {
        Some((scheme, rest)) if tiledesk_rules::is_token_scheme(scheme) => rest.trim(),
        Some((scheme, _)) => {
            let shown: String = scheme.chars().take(16).collect();
            return Err(AuthError::AuthEndpoint(
                ["the token has the scheme `", &shown, "`; Tiledesk needs `JWT`"].concat(),
            ));
        }
        None => raw,
    };
    if !is_compact_jwt(jwt) {
        return Err(AuthError::AuthEndpoint(
            "the answer's `token` is not a JWT".to_owned(),
        ));
    }
    Ok(["JWT ", jwt].concat())
}

/// Whether `jwt` has the shape of a signed JWT in compact form: three base64url parts joined by dots, the header and
/// payload not empty. One pass over the bytes, no iterator of parts: code is size here.
fn is_compact_jwt(jwt: &str) -> bool {
    let mut dots = [0; 2];
    let mut seen = 0;
    for (i, &b) in jwt.as_bytes().iter().enumerate() {
        if b == b'.' {
            let Some(slot) = dots.get_mut(seen) else {
                return false;
            };
            *slot = i;
            seen += 1;
        } else if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return false;
        }
    }
    seen == 2 && dots[0] > 0 && dots[1] > dots[0] + 1
}

/// The claims of `JWT <jwt>`, read without verifying (the widget and Tiledesk verify).
fn claims_of(token: &str) -> Option<JsValue> {
    let text = payload_of(token)?;
    js_sys::JSON::parse(&text).ok().filter(JsValue::is_object)
}

/// The payload of `JWT <jwt>` (between its first two dots), base64url-decoded, as UTF-8 text. Decoded here, not by the
/// browser's `atob`, which gives one character per byte: a claim outside ASCII (a site user id `josé`) would come out
/// as `josÃ©` and never match the id the widget reports.
fn payload_of(token: &str) -> Option<String> {
    let jwt = token.strip_prefix("JWT ").unwrap_or(token).as_bytes();
    let rest = jwt.get(jwt.iter().position(|&b| b == b'.')? + 1..)?;
    let payload = rest.get(..rest.iter().position(|&b| b == b'.').unwrap_or(rest.len()))?;
    let mut bytes = Vec::with_capacity(payload.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for &c in payload {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            bytes.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::{normalize, payload_of};

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJfaWQiOiIxIn0.c2lnbmF0dXJl";

    #[test]
    fn adds_the_prefix_once() {
        assert_eq!(normalize(JWT).unwrap(), format!("JWT {JWT}"));
        assert_eq!(normalize(&format!("JWT {JWT}")).unwrap(), format!("JWT {JWT}"));
        assert_eq!(normalize(&format!("jwt {JWT}\n")).unwrap(), format!("JWT {JWT}"));
        assert_eq!(normalize(&format!("  {JWT}  ")).unwrap(), format!("JWT {JWT}"));
        assert_eq!(
            normalize("a.b.").unwrap(),
            "JWT a.b.",
            "an empty signature is the server's to refuse"
        );
    }

    #[test]
    fn refuses_other_schemes_and_non_tokens() {
        for bad in [
            format!("Bearer {JWT}"),
            "".to_owned(),
            "JWT ".to_owned(),
            "a.b".to_owned(),
            "<b>.x.y z".to_owned(),
            "..".to_owned(),
            "a.b.c.d".to_owned(),
            ".b.c".to_owned(),
            "a..c".to_owned(),
            "a.b.c=".to_owned(),
            "a.b/c.d".to_owned(),
        ] {
            assert!(normalize(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_payload_is_read_as_utf8_whatever_its_padding() {
        // {"_id":"josé-東京"} and shorter payloads, each length modulo 3, encoded without padding as JWTs are.
        let cases = [
            ("eyJfaWQiOiJqb3PDqS3mnbHkuqwifQ", r#"{"_id":"josé-東京"}"#),
            ("eyJhIjoxfQ", r#"{"a":1}"#),
            ("eyJhYiI6MX0", r#"{"ab":1}"#),
            ("eyJhYmMiOjF9", r#"{"abc":1}"#),
        ];
        for (payload, text) in cases {
            let token = ["JWT eyJhbGciOiJIUzI1NiJ9.", payload, ".c2ln"].concat();
            assert_eq!(payload_of(&token).as_deref(), Some(text), "{payload}");
        }
        assert_eq!(payload_of("JWT a.b+c.d"), None, "not base64url");
        assert_eq!(payload_of("JWT a._w.d"), None, "not UTF-8 (0xFF)");
    }
}
