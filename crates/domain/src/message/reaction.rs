//! `reaction` messages: an emoji on a message the customer sent, or none to take it back.

use serde::{Deserialize, Serialize};

use super::Validate;
use super::rules::{key, text};
use crate::validation::{FieldError, check_length};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reaction {
    /// The wamid of the message reacted to.
    pub message_id: String,
    /// The emoji; an empty string removes the reaction.
    pub emoji: String,
}

/// Long enough for any emoji ZWJ sequence (a family emoji is 11 code points).
const EMOJI_MAX: usize = 32;

impl Validate for Reaction {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        text(&key(path, "message_id"), &self.message_id, 512)?;
        check_length(&key(path, "emoji"), &self.emoji, 0, EMOJI_MAX)
    }
}
