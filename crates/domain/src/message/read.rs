//! The other bodies of Meta's messages endpoint: a read receipt, with an optional typing
//! indicator.

use serde::{Deserialize, Serialize};

use super::rules::{key, one_of, text};
use crate::validation::FieldError;

/// `{"messaging_product": "whatsapp", "status": "read", "message_id": "wamid…"}`, and
/// `"typing_indicator": {"type": "text"}` to show "typing…" for up to 25 seconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReadReceipt {
    pub messaging_product: String,
    /// Always `read`.
    pub status: String,
    /// The wamid of the customer's message (earlier ones are marked read too).
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing_indicator: Option<TypingIndicator>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TypingIndicator {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ReadReceipt {
    pub fn new(message_id: &str, typing: bool) -> Self {
        Self {
            messaging_product: "whatsapp".into(),
            status: "read".into(),
            message_id: message_id.to_owned(),
            typing_indicator: typing.then(|| TypingIndicator { kind: "text".into() }),
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        one_of("messaging_product", &self.messaging_product, &["whatsapp"])?;
        one_of("status", &self.status, &["read"])?;
        text("message_id", &self.message_id, 512)?;
        if let Some(t) = &self.typing_indicator {
            one_of(&key("typing_indicator", "type"), &t.kind, &["text"])?;
        }
        Ok(())
    }
}
