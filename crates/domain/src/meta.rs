//! Meta's wire formats that wagate reads: Graph API responses and errors, and webhook payloads.
//! Fields wagate does not interpret stay as JSON so nothing Meta sends is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"error": {...}}`, the body of every Graph API error.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct GraphErrorBody {
    pub error: GraphError,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub code: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_data: Option<ErrorData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_user_msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_transient: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
pub struct ErrorData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// Success body of `POST /{phone-number-id}/messages`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SendResponse {
    #[serde(default)]
    pub messaging_product: String,
    #[serde(default)]
    pub contacts: Vec<SendContact>,
    pub messages: Vec<SentMessage>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SendContact {
    #[serde(default)]
    pub input: String,
    #[serde(default)]
    pub wa_id: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SentMessage {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_status: Option<String>,
}

/// `{"data": [...], "paging": {...}}`, Graph's list envelope.
#[derive(Clone, Debug, Deserialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub paging: Option<Value>,
}

/// One entry of `GET /{waba-id}/phone_numbers`.
#[derive(Clone, Debug, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default)]
    pub verified_name: Option<String>,
    #[serde(default)]
    pub quality_rating: Option<String>,
    /// Present when asked for (`?fields=throughput`): `{"level": "STANDARD"}`.
    #[serde(default)]
    pub throughput: Option<Throughput>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Throughput {
    pub level: crate::limits::ThroughputLevel,
}

pub mod webhook {
    //! `POST /webhooks/meta` bodies: `{"object", "entry": [{"id", "changes": [{"field", "value"}]}]}`.

    use super::*;

    #[derive(Clone, Debug, Deserialize)]
    pub struct Payload {
        #[serde(default)]
        pub object: String,
        #[serde(default)]
        pub entry: Vec<Entry>,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct Entry {
        /// The WhatsApp Business Account id.
        pub id: String,
        /// When Meta triggered the webhook (Unix seconds), on fields other than `messages`.
        #[serde(default)]
        pub time: Option<i64>,
        #[serde(default)]
        pub changes: Vec<Change>,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct Change {
        pub field: String,
        #[serde(default)]
        pub value: Value,
    }

    /// The value of a `messages` change: inbound messages, statuses, or both.
    #[derive(Clone, Debug, Deserialize)]
    pub struct MessagesValue {
        #[serde(default)]
        pub metadata: Option<Metadata>,
        #[serde(default)]
        pub contacts: Vec<Contact>,
        #[serde(default)]
        pub messages: Vec<InboundMessage>,
        #[serde(default)]
        pub statuses: Vec<Status>,
        #[serde(default)]
        pub errors: Vec<Value>,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct Metadata {
        #[serde(default)]
        pub display_phone_number: String,
        pub phone_number_id: String,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct Contact {
        #[serde(default)]
        pub profile: Option<Profile>,
        #[serde(default)]
        pub wa_id: Option<String>,
        #[serde(default)]
        pub user_id: Option<String>,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct Profile {
        #[serde(default)]
        pub name: Option<String>,
    }

    /// An inbound message. `rest` keeps the type's own object (`text`, `image`, …), `context`,
    /// `referral` and anything Meta adds later.
    #[derive(Clone, Debug, Deserialize)]
    pub struct InboundMessage {
        #[serde(default)]
        pub from: String,
        pub id: String,
        pub timestamp: String,
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(flatten)]
        pub rest: Map<String, Value>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub struct Status {
        pub id: String,
        pub status: String,
        pub timestamp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_id: Option<String>,
        /// For a message to a group: the participant this status is about.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_participant_id: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub errors: Vec<StatusError>,
        #[serde(flatten)]
        pub rest: Map<String, Value>,
    }

    #[derive(Clone, Debug, Deserialize, Serialize)]
    pub struct StatusError {
        pub code: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub message: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_data: Option<ErrorData>,
        #[serde(flatten)]
        pub rest: Map<String, Value>,
    }

    /// The value of an `smb_message_echoes` change: messages the business sent from the
    /// WhatsApp Business app on a number it also uses with the Cloud API.
    #[derive(Clone, Debug, Deserialize)]
    pub struct EchoesValue {
        #[serde(default)]
        pub metadata: Option<Metadata>,
        #[serde(default)]
        pub message_echoes: Vec<MessageEcho>,
    }

    #[derive(Clone, Debug, Deserialize)]
    pub struct MessageEcho {
        #[serde(default)]
        pub to: String,
        pub id: String,
        pub timestamp: String,
        #[serde(rename = "type")]
        pub kind: String,
        /// The type's own object and anything else (`from` included).
        #[serde(flatten)]
        pub rest: Map<String, Value>,
    }

    /// What identifies a change however often Meta delivers it: its field, Meta's time and its
    /// value (serialized with sorted keys, so the same change always gives the same text).
    pub fn change_fingerprint(field: &str, time: Option<i64>, value: &Value) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(field.as_bytes());
        h.update(b"\0");
        h.update(time.map(|t| t.to_string()).unwrap_or_default().as_bytes());
        h.update(b"\0");
        h.update(value.to_string().as_bytes());
        hex::encode(h.finalize())
    }

    /// Meta's timestamps are Unix seconds as strings.
    pub fn parse_unix_seconds(s: &str) -> Option<crate::time::Timestamp> {
        s.parse::<i64>().ok().map(crate::time::Timestamp::from_unix_seconds)
    }
}
