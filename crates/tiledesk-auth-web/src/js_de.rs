//! serde's `Deserializer` over a JS value, for `#[derive(Deserialize)]` options and tab messages.
//!
//! Why not `serde_wasm_bindgen::from_value`: its errors go through serde's default messages, which format the
//! offending value with `Unexpected` (`Display` for `f64`, `Debug` for `str`): that alone linked core's float
//! formatting and Unicode tables into the module, about 9 KiB gzipped (measured, `cargo xtask size`). Here every
//! message is written without them, and each names the key it is about. The module still uses
//! serde-wasm-bindgen's `Serializer` for what it hands to the page.

use std::fmt;

use js_sys::{Array, Object};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Expected, IntoDeserializer, MapAccess, Unexpected, Visitor,
};
use wasm_bindgen::{JsCast, JsValue};

/// A message for a person, naming the key it is about.
#[derive(Debug)]
pub(crate) struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }

    // The value itself is never shown: it could be a password, and formatting it costs kilobytes.
    fn invalid_type(_: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self(format!("must be {expected}"))
    }

    fn invalid_value(_: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self(format!("must be {expected}"))
    }

    fn invalid_length(_: usize, expected: &dyn Expected) -> Self {
        Self(format!("must be {expected}"))
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        Self(format!("must be one of {}", list(expected, "\"")))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self(format!(
            "unknown option `{field}` (known: {})",
            list(expected, "")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Self(format!("`{field}` is required"))
    }
}

/// `a, b, c`, each quoted with `quote` (no `join`: its generic copy costs 1 KB here).
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

/// Reads `value` (a plain object) as `T`.
pub(crate) fn from_value<T: DeserializeOwned>(value: &JsValue) -> Result<T, Error> {
    T::deserialize(Value(value.clone()))
}

/// Whether `value` is an object that is neither a function nor an array.
pub(crate) fn plain_object(value: &JsValue) -> bool {
    value.is_object() && !value.is_function() && !Array::is_array(value)
}

fn nullish(value: &JsValue) -> bool {
    value.is_null() || value.is_undefined()
}

/// One JS value.
struct Value(JsValue);

impl<'de> de::Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value = &self.0;
        if nullish(value) {
            visitor.visit_unit()
        } else if let Some(b) = value.as_bool() {
            visitor.visit_bool(b)
        } else if let Some(n) = value.as_f64() {
            visitor.visit_f64(n)
        } else if let Some(s) = value.as_string() {
            visitor.visit_string(s)
        } else if plain_object(value) {
            let entries = Object::entries(value.unchecked_ref());
            visitor.visit_map(Entries {
                entries,
                next: 0,
                key: String::new(),
                value: JsValue::UNDEFINED,
            })
        } else {
            // A function or an array where a value of another kind is expected.
            Err(de::Error::invalid_type(Unexpected::Other(""), &visitor))
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if nullish(&self.0) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    /// Unit variants, written as their name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0.as_string() {
            Some(name) => visitor.visit_enum(name.into_deserializer()),
            None => Err(de::Error::unknown_variant("", variants)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier
    }
}

/// An object's own `[key, value]` pairs, in order; a value's error is prefixed with its key.
struct Entries {
    entries: Array,
    next: u32,
    key: String,
    value: JsValue,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        if self.next >= self.entries.length() {
            return Ok(None);
        }
        let pair: Array = self.entries.get(self.next).unchecked_into();
        self.next += 1;
        self.key = pair.get(0).as_string().unwrap_or_default();
        self.value = pair.get(1);
        seed.deserialize(self.key.as_str().into_deserializer()).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        let value = std::mem::replace(&mut self.value, JsValue::UNDEFINED);
        seed.deserialize(Value(value))
            .map_err(|Error(message)| Error(format!("`{}` {message}", self.key)))
    }
}

/// A key whose value is a JS object or function kept as it is: deserialized as "present", and read by the
/// caller with `Reflect` (serde has no way to carry a `JsValue` through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Present;

impl<'de> de::Deserialize<'de> for Present {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_ignored_any(de::IgnoredAny)?;
        Ok(Present)
    }
}

/// A number of milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Millis(pub(crate) f64);

impl<'de> de::Deserialize<'de> for Millis {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of milliseconds, 1 to 300000")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<f64, E> {
                Ok(n)
            }
        }
        deserializer.deserialize_f64(Number).map(Millis)
    }
}
