//! Deserialising Meta's JSON with errors that name the exact JSON path.
//!
//! Meta's bodies are full of tagged unions written as `{"type": "image", "image": {...}}`. Serde's
//! internally tagged enums buffer their input and lose the path of any error inside, so the
//! unions here deserialise by hand (see [`tagged!`]): they read the tag, then deserialise the
//! variant from the rest of the object with paths tracked, and pass the inner path outwards
//! inside the error message, where [`from_value`] reassembles it.

use std::fmt;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::validation::FieldError;

/// Marks an error message that carries a path and a rule: `\u{1}path\u{1}rule\u{1}message`.
const MARK: char = '\u{1}';

/// A serde error that remembers where (relative to the value being deserialised) and which rule.
pub(crate) fn marked<E: serde::de::Error>(path: &str, rule: &str, message: &str) -> E {
    E::custom(format!("{MARK}{path}{MARK}{rule}{MARK}{message}"))
}

fn join(base: &str, inner: &str) -> String {
    match (base.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_owned(),
        (_, true) => base.to_owned(),
        _ if inner.starts_with('[') => format!("{base}{inner}"),
        _ => format!("{base}.{inner}"),
    }
}

/// A deserialisation error as path (relative to `base`), rule and message.
fn classify(base: &str, e: serde_path_to_error::Error<serde_json::Error>) -> (String, &'static str, String) {
    let at = e.path().to_string();
    let path = join(base, if at == "." { "" } else { &at });
    let message = e.into_inner().to_string();
    if let Some(rest) = message.strip_prefix(MARK) {
        let mut parts = rest.splitn(3, MARK);
        let inner = parts.next().unwrap_or_default();
        let rule = rule_name(parts.next().unwrap_or_default());
        return (join(&path, inner), rule, parts.next().unwrap_or_default().to_owned());
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or_default();
        return (join(&path, field), "required", "is required".into());
    }
    let rule = if message.starts_with("unknown field") { "unknown_field" } else { "invalid_type" };
    (path, rule, message)
}

/// Deserialises `value` into `T`, reporting the JSON path (under `base`) and the rule of the
/// first mismatch: `required`, `unknown_field`, `invalid_type` or a rule from a tagged union.
pub fn from_value<T: DeserializeOwned>(base: &str, value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (path, rule, message) = classify(base, e);
        FieldError::new(path, rule, message)
    })
}

/// Rules travel as strings through serde; give them back their `'static` names.
fn rule_name(rule: &str) -> &'static str {
    const RULES: &[&str] =
        &["required", "unknown_field", "invalid_type", "unsupported_type", "invalid_value", "type_mismatch"];
    RULES.iter().find(|r| **r == rule).copied().unwrap_or("invalid_value")
}

/// Deserialises one variant of a tagged union from the object left once the tag is removed.
pub(crate) fn variant<T: DeserializeOwned, E: serde::de::Error>(fields: Map<String, Value>) -> Result<T, E> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        let (path, rule, message) = classify("", e);
        marked(&path, rule, &message)
    })
}

/// Takes the string tag `key` out of an object, or says why it cannot.
pub(crate) fn take_tag<E: serde::de::Error>(map: &mut Map<String, Value>, key: &str) -> Result<String, E> {
    match map.remove(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(marked(key, "invalid_type", &format!("must be a string, got {other}"))),
        None => Err(marked(key, "required", "is required")),
    }
}

/// `impl Deserialize` for an enum whose variants are chosen by a string tag in the same object
/// (`{"type": "button", ...}`); each variant holds a struct deserialised from the other fields.
/// Serialisation is derived with `#[serde(tag = "...")]`.
macro_rules! tagged {
    ($enum:ident, $tag:literal, { $($name:literal => $variant:ident($ty:ty)),+ $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
                let tag: String = $crate::message::de::take_tag(&mut map, $tag)?;
                match tag.as_str() {
                    $($name => $crate::message::de::variant::<$ty, D::Error>(map).map($enum::$variant),)+
                    other => Err($crate::message::de::marked(
                        $tag,
                        "unsupported_type",
                        &format!(
                            "'{other}' is not supported (one of: {})",
                            [$($name),+].join(", ")
                        ),
                    )),
                }
            }
        }
    };
}
pub(crate) use tagged;

/// A value Meta takes as a number or a string (`"latitude": "37.4"` and `37.4` both appear in
/// its docs; template button `index` is `0` or `"0"`). Kept as given, so re-serialising is exact.
#[derive(Clone, Debug, PartialEq)]
pub enum NumOrStr {
    Num(Number),
    Str(String),
}

impl NumOrStr {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(n) => n.as_f64(),
            Self::Str(s) => s.trim().parse().ok(),
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Num(n) => n.as_u64(),
            Self::Str(s) => s.trim().parse().ok(),
        }
    }
}

impl fmt::Display for NumOrStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Num(n) => write!(f, "{n}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for NumOrStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Num(n) => n.serialize(s),
            Self::Str(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for NumOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => Ok(Self::Num(n)),
            Value::String(s) => Ok(Self::Str(s)),
            other => Err(D::Error::custom(format!("invalid type: {other}, expected a number or a string"))),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for NumOrStr {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for NumOrStr {}
