//! `text` messages.

use serde::{Deserialize, Serialize};

use super::Validate;
use super::rules::{key, text};
use crate::validation::FieldError;

/// Meta's limit for `text.body`.
pub const TEXT_BODY_MAX: usize = 4096;

/// `{"body": "...", "preview_url": true}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Text {
    /// 1 to 4096 characters; URLs are linked.
    pub body: String,
    /// Render a preview of the first http(s) URL in the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<bool>,
}

impl Validate for Text {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        text(&key(path, "body"), &self.body, TEXT_BODY_MAX)
    }
}
