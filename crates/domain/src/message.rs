//! The message model. Meta's own content objects are the model (`{"type": "text", "text": {...}}`);
//! the native envelope adds what a gateway adds (`from`, `to`, `metadata`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::phone::PhoneNumber;
use crate::validation::{FieldError, check_length};

/// Meta's documented limit for `text.body`.
pub const TEXT_BODY_MAX: usize = 4096;
/// Bytes of serialised JSON a message's `metadata` may take.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;

/// `{"body": "...", "preview_url": true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// 1 to 4096 characters.
    pub body: String,
    /// Render a preview of the first URL in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

impl Text {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        check_length(&format!("{path}.body"), &self.body, 1, TEXT_BODY_MAX)
    }
}

/// What a message says, in Meta's content objects.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageContent {
    Text(Text),
}

/// The message types this build can send.
pub const SUPPORTED_TYPES: &[&str] = &["text"];

impl MessageContent {
    /// Meta's `type` value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
        }
    }

    /// Parses and validates the object of type `kind` found at JSON path `kind`.
    pub fn parse(kind: &str, object: &Value) -> Result<Self, FieldError> {
        match kind {
            "text" => {
                let text: Text = from_value(kind, object)?;
                text.validate(kind)?;
                Ok(Self::Text(text))
            }
            other => Err(unsupported_type(other)),
        }
    }

    /// The type's own object, as stored and as sent to Meta.
    pub fn object(&self) -> Value {
        match self {
            Self::Text(t) => serde_json::to_value(t).expect("text serialises"),
        }
    }

    /// The message's fields as stored: `{"<type>": <object>}`, later with `context` and the
    /// other fields Meta takes beside the type's object.
    pub fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        fields.insert(self.kind().to_owned(), self.object());
        fields
    }
}

/// The body of `POST /{phone-number-id}/messages` for a stored message.
pub fn graph_body(to: &str, kind: &str, fields: &Map<String, Value>) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
    });
    if let Value::Object(b) = &mut body {
        b.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    body
}

fn unsupported_type(kind: &str) -> FieldError {
    FieldError::new(
        "type",
        "unsupported_type",
        format!("'{kind}' is not a supported message type (supported: {})", SUPPORTED_TYPES.join(", ")),
    )
}

/// Deserialises `value` into `T`, reporting the JSON path of the first mismatch under `base`.
pub fn from_value<T: serde::de::DeserializeOwned>(base: &str, value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match inner.as_str() {
            "." => base.to_owned(),
            _ if base.is_empty() => inner,
            _ => format!("{base}.{inner}"),
        };
        let err = e.into_inner().to_string();
        match err.strip_prefix("missing field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or_default();
                let full = if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") };
                FieldError::required(full)
            }
            None if err.starts_with("unknown field") => FieldError::new(path, "unknown_field", err),
            None => FieldError::new(path, "invalid_type", err),
        }
    })
}

/// `POST /v1/messages`: the native envelope around one of Meta's content objects.
#[derive(Clone, Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The sender's phone-number id (or its display number); optional when one number is the default.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(example = "106540352242922"))]
    pub from: Option<String>,
    /// The recipient in E.164 form.
    #[cfg_attr(feature = "openapi", schema(example = "+15551234567"))]
    pub to: String,
    /// Meta's message type; the object of the same name carries the content.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(example = "text"))]
    pub kind: String,
    /// The content of a `text` message.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub text: Option<Value>,
    /// Your own data (an object of at most 16 KiB), stored with the message and echoed back.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
}

/// A send request that passed every rule.
#[derive(Clone, Debug)]
pub struct ValidSend {
    pub from: Option<String>,
    pub to: PhoneNumber,
    pub content: MessageContent,
    pub metadata: Option<Map<String, Value>>,
}

impl SendRequest {
    pub fn validate(self) -> Result<ValidSend, FieldError> {
        let to = PhoneNumber::parse("to", &self.to)?;
        if let Some(from) = &self.from {
            check_length("from", from, 1, 64)?;
        }
        if !SUPPORTED_TYPES.contains(&self.kind.as_str()) {
            return Err(unsupported_type(&self.kind));
        }
        let objects = [("text", &self.text)];
        let mut content_object = None;
        for (name, object) in objects {
            match object {
                Some(v) if name == self.kind => content_object = Some(v),
                Some(_) => {
                    return Err(FieldError::new(
                        name,
                        "type_mismatch",
                        format!("is given but type is '{}'", self.kind),
                    ));
                }
                None => {}
            }
        }
        let object = content_object.ok_or_else(|| {
            FieldError::new(&self.kind, "required", format!("is required when type is '{}'", self.kind))
        })?;
        let content = MessageContent::parse(&self.kind, object)?;
        if let Some(meta) = &self.metadata {
            let size = serde_json::to_vec(meta).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > METADATA_MAX_BYTES {
                return Err(FieldError::new(
                    "metadata",
                    "max_size",
                    format!("must serialise to at most {METADATA_MAX_BYTES} bytes, got {size}"),
                ));
            }
        }
        Ok(ValidSend { from: self.from, to, content, metadata: self.metadata })
    }
}

/// Why a message failed: Meta's error, or the gateway's own reason when Meta never answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageError {
    /// Meta's integer error code (131047, 131026, …); absent when the failure is the gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// Meta's error title, or a short title of the gateway's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub message: String,
    /// Meta's `error_data.details`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
    /// Stable snake_case reason for failures decided by the gateway (`network_error`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MessageError {
    pub fn from_graph(e: &crate::meta::GraphError) -> Self {
        Self {
            code: Some(e.code),
            title: e.error_user_title.clone().or_else(|| e.kind.clone()),
            message: e.message.clone(),
            details: e.error_data.as_ref().and_then(|d| d.details.clone()),
            fbtrace_id: e.fbtrace_id.clone(),
            reason: None,
        }
    }

    pub fn from_status(e: &crate::meta::webhook::StatusError) -> Self {
        Self {
            code: Some(e.code),
            title: e.title.clone(),
            message: e.message.clone().or_else(|| e.title.clone()).unwrap_or_default(),
            details: e.error_data.as_ref().and_then(|d| d.details.clone()),
            fbtrace_id: None,
            reason: None,
        }
    }

    pub fn gateway(reason: &str, message: impl Into<String>) -> Self {
        Self {
            code: None,
            title: None,
            message: message.into(),
            details: None,
            fbtrace_id: None,
            reason: Some(reason.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> Result<ValidSend, FieldError> {
        from_value::<SendRequest>("", &v)?.validate()
    }

    #[test]
    fn a_valid_text_send() {
        let s = req(json!({"to": "+15551234567", "type": "text", "text": {"body": "hi"}})).unwrap();
        assert_eq!(s.to.wa_id(), "15551234567");
        assert_eq!(
            graph_body(s.to.as_str(), s.content.kind(), &s.content.fields()),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": "+15551234567", "type": "text", "text": {"body": "hi"}})
        );
    }

    #[test]
    fn errors_name_the_path_and_rule() {
        let cases = [
            (json!({"to": "+15551234567", "type": "text", "text": {"body": ""}}), "text.body", "min_length"),
            (
                json!({"to": "+15551234567", "type": "text", "text": {"body": "x".repeat(4097)}}),
                "text.body",
                "max_length",
            ),
            (json!({"to": "+15551234567", "type": "text", "text": {}}), "text.body", "required"),
            (json!({"to": "+15551234567", "type": "text", "text": {"body": 5}}), "text.body", "invalid_type"),
            (
                json!({"to": "+15551234567", "type": "text", "text": {"body": "a", "bdy": 1}}),
                "text.bdy",
                "unknown_field",
            ),
            (json!({"to": "+15551234567", "type": "text"}), "text", "required"),
            (json!({"to": "5551234567", "type": "text", "text": {"body": "a"}}), "to", "e164"),
            (json!({"type": "text", "text": {"body": "a"}}), "to", "required"),
            (json!({"to": "+15551234567", "type": "image", "text": {"body": "a"}}), "type", "unsupported_type"),
            (json!({"to": "+15551234567", "type": "carrier_pigeon"}), "type", "unsupported_type"),
            (
                json!({"to": "+15551234567", "type": "text", "text": {"body": "a"}, "sned_at": 1}),
                "sned_at",
                "unknown_field",
            ),
            (json!({"to": 15551234567u64, "type": "text", "text": {"body": "a"}}), "to", "invalid_type"),
        ];
        for (body, path, rule) in cases {
            let e = req(body.clone()).unwrap_err();
            assert_eq!((e.path.as_str(), e.rule), (path, rule), "{body} → {e}");
        }
    }

    #[test]
    fn body_length_counts_characters() {
        assert!(req(json!({"to": "+15551234567", "type": "text", "text": {"body": "é".repeat(4096)}})).is_ok());
    }
}
