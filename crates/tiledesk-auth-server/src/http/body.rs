//! Strict JSON bodies: `application/json` only, one object, no key twice, no key the endpoint does not know,
//! each field of the right type, with a precise error for each way a body can be wrong.

use std::cell::Cell;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::http::error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// How long a client has to send a request's body; set per connection by [`crate::http::accept`], the default read
/// timeout otherwise.
#[derive(Clone, Copy, Debug)]
pub struct BodyTimeout(pub std::time::Duration);

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(super::limits::defaults::READ_TIMEOUT)
    }
}

/// A request body that is exactly one JSON object with no duplicate keys.
#[derive(Debug)]
pub(crate) struct JsonObject(pub(crate) Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_object(&read(req).await?).map(Self)
    }
}

/// A request body that is either empty (no `Content-Type` needed) or a [`JsonObject`].
#[derive(Debug)]
pub(crate) struct OptionalJsonObject(pub(crate) Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let json = is_json_content_type(req.headers().get(header::CONTENT_TYPE));
        let bytes = read(req).await?;
        match (bytes.is_empty(), json) {
            (true, _) => Ok(Self(None)),
            (false, true) => parse_object(&bytes).map(|map| Self(Some(map))),
            (false, false) => Err(ApiError::UnsupportedMediaType),
        }
    }
}

/// The whole body, at most [`MAX_BODY_BYTES`], within the connection's [`BodyTimeout`].
async fn read(req: Request) -> Result<Bytes, ApiError> {
    let deadline = req.extensions().get::<BodyTimeout>().copied().unwrap_or_default();
    let read = Limited::new(req.into_body(), MAX_BODY_BYTES).collect();
    // A client trickling its body (slow-loris) holds a connection and a task: it gets a deadline.
    let collected = tokio::time::timeout(deadline.0, read)
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|err| {
            if err.is::<LengthLimitError>() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::InvalidJson("the body could not be read".to_owned())
            }
        })?;
    Ok(collected.to_bytes())
}

pub(crate) fn is_json_content_type(value: Option<&header::HeaderValue>) -> bool {
    let Some(Ok(value)) = value.map(|v| v.to_str()) else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
}

/// Parses `bytes` as one JSON object, refusing a key given twice in any object of it.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let duplicate = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let root = StrictValue {
        path: Path::Root,
        duplicate: &duplicate,
    };
    let parsed = de
        .deserialize_any(root)
        .and_then(|value| de.end().map(|()| value));
    match (parsed, duplicate.take()) {
        (_, Some(path)) => Err(ApiError::DuplicateField(truncate(&path))),
        (Ok(Value::Object(map)), None) => Ok(map),
        (Ok(_), None) => Err(ApiError::InvalidJson("the body must be a JSON object".to_owned())),
        (Err(err), None) => Err(ApiError::InvalidJson(format!(
            "the body is not valid JSON: {err}"
        ))),
    }
}

/// Where a value sits in the body, kept as a chain of borrowed segments: the text (`attributes.plan`, `a[1].y`) is
/// only built for an error.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Key(Self::Root, key) => f.write_str(key),
            Self::Key(parent, key) => write!(f, "{parent}.{key}"),
            Self::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Any JSON value found at a path, in which a key given twice, at any depth, stops the parse: its path is left in
/// `duplicate` (the parse error itself only says it stopped). serde_json's own nesting limit still applies: each
/// level goes through its `deserialize_any`.
struct StrictValue<'p> {
    path: Path<'p>,
    duplicate: &'p Cell<Option<String>>,
}

impl StrictValue<'_> {
    fn at<'q>(&'q self, path: Path<'q>) -> StrictValue<'q> {
        StrictValue {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element_seed(self.at(Path::Index(&self.path, items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                self.duplicate.set(Some(Path::Key(&self.path, &key).to_string()));
                return Err(de::Error::custom("duplicate key"));
            }
            let value = access.next_value_seed(self.at(Path::Key(&self.path, &key)))?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// Reads the fields of one body, each at most once, and checks that nothing else was sent.
pub(crate) struct Fields(Map<String, Value>);

impl Fields {
    /// Takes the body, refusing any key not in `allowed`: a reserved claim name gets its own error.
    pub(crate) fn new(map: Map<String, Value>, allowed: &[&str]) -> Result<Self, ApiError> {
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(match tiledesk_jwt::reserved_claim(key) {
                Some(name) => ApiError::ReservedClaim(name.to_owned()),
                None => ApiError::UnknownField(truncate(key)),
            });
        }
        Ok(Self(map))
    }

    /// A string that must be present, non-null and not blank, at most `max` bytes.
    pub(crate) fn required_str(&mut self, name: &'static str, max: usize) -> Result<String, ApiError> {
        self.optional_str(name, max)?.ok_or(ApiError::MissingField(name))
    }

    /// A string that may be absent or null; blank counts as absent; at most `max` bytes.
    pub(crate) fn optional_str(
        &mut self,
        name: &'static str,
        max: usize,
    ) -> Result<Option<String>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) if s.len() > max => Err(ApiError::invalid(
                name,
                format!("is too long ({} bytes, at most {max})", s.len()),
            )),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be a string, not {}", kind(&other)),
            )),
        }
    }

    /// A JSON object that may be absent or null.
    pub(crate) fn optional_object(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Map<String, Value>>, ApiError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be an object, not {}", kind(&other)),
            )),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An unknown key is echoed back, but never more than 64 characters of it.
fn truncate(key: &str) -> String {
    key.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(bytes: &[u8]) -> &'static str {
        parse_object(bytes).map(|_| "ok").unwrap_or_else(|e| e.code())
    }

    #[test]
    fn parses_one_object_and_nothing_else() {
        assert_eq!(code(br#"{"a": 1, "b": {"a": 2}}"#), "ok");
        assert_eq!(code(br#"  {}  "#), "ok");
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\":}",
            b"[1]",
            b"\"str\"",
            b"42",
            b"null",
            b"true",
            b"{} {}",
            b"\xff\xfe",
        ] {
            assert_eq!(code(bad), "invalid_json", "{:?}", String::from_utf8_lossy(bad));
        }
        // Which of the two: told by what was parsed, not by the words of serde's message.
        let message = |bytes: &[u8]| match parse_object(bytes) {
            Err(ApiError::InvalidJson(message)) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(b"[1]"), "the body must be a JSON object");
        assert_eq!(message(br#""not an object""#), "the body must be a JSON object");
        assert!(message(b"{\"a\":}").starts_with("the body is not valid JSON: "));
        assert!(message(br#"{"duplicate key: a": 1,"#).starts_with("the body is not valid JSON: "));
    }

    #[test]
    fn duplicate_keys_are_refused_and_named() {
        let err = parse_object(br#"{"email": "a@b.co", "email": "c@d.co"}"#).unwrap_err();
        assert!(
            matches!(&err, ApiError::DuplicateField(k) if k == "email"),
            "{err:?}"
        );
        assert_eq!(code(br#"{"a": {"x": 1, "y": 2}, "b": 1}"#), "ok");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_and_named_by_path() {
        for (body, path) in [
            (
                &br#"{"attributes": {"plan": "free", "plan": "pro"}}"#[..],
                "attributes.plan",
            ),
            (br#"{"a": {"b": {"c": 1, "c": 2}}}"#, "a.b.c"),
            (br#"{"a": [{"x": 1}, {"y": 1, "y": 1}]}"#, "a[1].y"),
        ] {
            let err = parse_object(body).unwrap_err();
            assert!(
                matches!(&err, ApiError::DuplicateField(k) if k == path),
                "{err:?}"
            );
        }
        // The same key in sibling objects is no duplicate; the values come through whole.
        let map =
            parse_object(br#"{"a": [{"x": 1.5}, {"x": -2}], "b": {"x": null, "y": [true, "s"]}}"#).unwrap();
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"a": [{"x": 1.5}, {"x": -2}], "b": {"x": null, "y": [true, "s"]}})
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(code(deep.as_bytes()), "invalid_json");
    }

    #[test]
    fn fields_are_typed_and_bounded() {
        let map = parse_object(br#"{"s": "x", "n": 1, "blank": " ", "nul": null, "o": {}}"#).unwrap();
        let mut f = Fields::new(map, &["s", "n", "blank", "nul", "o"]).unwrap();
        assert_eq!(f.required_str("s", 10).unwrap(), "x");
        assert_eq!(f.required_str("n", 10).unwrap_err().code(), "invalid_field");
        assert_eq!(f.required_str("blank", 10).unwrap_err().code(), "missing_field");
        assert_eq!(f.optional_str("nul", 10).unwrap(), None);
        assert!(f.optional_object("o").unwrap().is_some());
        let map = parse_object(br#"{"s": "abcdef"}"#).unwrap();
        assert_eq!(
            Fields::new(map, &["s"])
                .unwrap()
                .required_str("s", 5)
                .unwrap_err()
                .code(),
            "invalid_field"
        );
    }

    #[test]
    fn unknown_and_reserved_keys_are_refused() {
        let map = parse_object(br#"{"email": "a", "extra": 1}"#).unwrap();
        assert!(matches!(Fields::new(map, &["email"]), Err(ApiError::UnknownField(k)) if k == "extra"));
        let map = parse_object(br#"{"email": "a", "Role": "agent"}"#).unwrap();
        assert!(matches!(Fields::new(map, &["email"]), Err(ApiError::ReservedClaim(k)) if k == "role"));
    }

    #[test]
    fn content_type_must_be_json() {
        let ok = |v: &str| is_json_content_type(Some(&header::HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json") && ok("application/json; charset=utf-8") && ok("Application/JSON"));
        assert!(!ok("text/plain") && !ok("application/x-www-form-urlencoded") && !ok("application/jsonp"));
        assert!(!is_json_content_type(None));
    }
}
