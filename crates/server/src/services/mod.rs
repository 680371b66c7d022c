//! What the surfaces call: one function per operation, surface-neutral errors. Handlers of the
//! native API, the Meta-compatible surface and the dialects all map [`ServiceError`] their way.

pub mod accounts;
pub mod api_keys;
pub mod campaign_recipients;
pub mod campaigns;
pub mod events;
pub mod groups;
pub mod imports;
pub mod jobs;
pub mod media;
pub mod messages;
pub mod templates;
pub mod uploads;
pub mod users;
pub mod webhooks;
// Contacts and conversations.
pub mod contacts;
pub mod conversations;

use wagate_domain::meta::GraphError;
use wagate_domain::validation::FieldError;
use wagate_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(#[from] FieldError),
    #[error("no {what} with id '{id}'")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// Meta refused a Graph call made on the caller's behalf.
    #[error("Meta refused the request: {}", .error.message)]
    MetaRejected { error: Box<GraphError> },
    /// A non-template message to a customer whose last message is more than 24 hours old.
    #[error("more than 24 hours have passed since {customer} last wrote to this number; only templates may be sent")]
    OutsideWindow { customer: String, last_inbound: Option<wagate_domain::time::Timestamp> },
    /// An idempotency key used before for a different request.
    #[error("idempotency key '{key}' was used for a different request (message {message_id})")]
    IdempotencyKeyReused { key: String, message_id: wagate_domain::id::MessageId },
    /// More messages wait than `dispatcher.max_backlog`: come back later.
    #[error("{backlog} messages are waiting to be sent; try again shortly")]
    Backpressure { backlog: i64 },
    /// The Graph API could not be reached or answered nonsense.
    #[error("the Graph API is unavailable: {0}")]
    GraphUnavailable(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ServiceError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(m) => Self::Conflict(m),
            other => Self::Storage(other),
        }
    }
}

/// A URL given for wagate to call: 1 to `max` characters, http or https, with a host; `path`
/// names the field in the error.
pub fn http_url(path: &str, url: &str, max: usize) -> Result<reqwest::Url, FieldError> {
    wagate_domain::validation::check_length(path, url, 1, max)?;
    wagate_domain::input::nul_free_text(path, url)?;
    let rule = |why: &str| FieldError::new(path, "url", format!("must be an http or https URL ({why})"));
    let parsed = reqwest::Url::parse(url).map_err(|e| rule(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(rule("the scheme is not http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(rule("there is no host"));
    }
    Ok(parsed)
}

impl ServiceError {
    pub fn not_found(what: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { what, id: id.into() }
    }

    /// A Graph call made on the caller's behalf failed: Meta's refusal as it is, anything else
    /// as Meta being unavailable.
    pub fn from_graph(e: crate::graph::GraphFailure) -> Self {
        match e {
            crate::graph::GraphFailure::Meta { error, .. } => Self::MetaRejected { error: Box::new(error) },
            other => Self::GraphUnavailable(other.to_string()),
        }
    }
}
