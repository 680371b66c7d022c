//! The message model. Meta's own content objects are the model (`{"type": "text", "text": {...}}`);
//! the native envelope adds what a gateway adds (`from`, `to`, `reply_to`, `metadata`).
//!
//! Every type serialises to exactly Meta's JSON, and Meta's JSON deserialises and re-serialises
//! without loss. Each of Meta's documented limits is checked here, once, by [`Validate`].

pub mod contacts;
pub(crate) mod de;
pub mod interactive;
pub mod location;
pub mod media;
pub mod reaction;
pub mod read;
mod rules;
pub mod template;
pub mod text;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use self::contacts::Contact;
pub use self::de::{NumOrStr, from_value};
pub use self::interactive::Interactive;
pub use self::location::Location;
pub use self::media::{Audio, Document, Image, Sticker, Video};
pub use self::reaction::Reaction;
pub use self::read::ReadReceipt;
pub use self::template::{SimpleTemplate, Template, TemplateSend};
pub use self::text::Text;
use crate::phone::PhoneNumber;
use crate::time::Timestamp;
use crate::validation::{FieldError, check_length};
use rules::{key, one_of, text as text_rule};

/// Bytes of serialised JSON a message's `metadata` may take.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
/// `biz_opaque_callback_data`: 512 characters (Meta's changelog; it was 256).
pub const CALLBACK_DATA_MAX: usize = 512;
/// Group ids.
const GROUP_ID_MAX: usize = 256;

/// Checks Meta's rules for a value found at JSON path `path`.
pub trait Validate {
    fn validate(&self, path: &str) -> Result<(), FieldError>;
}

/// Meta's message types, in the order its docs list them.
pub const MESSAGE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
];

/// What a message says: one of Meta's content objects.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Text(Text),
    Image(Image),
    Audio(Audio),
    Video(Video),
    Document(Document),
    Sticker(Sticker),
    Location(Location),
    Contacts(Vec<Contact>),
    Reaction(Reaction),
    // Boxed: by far the largest, and rare next to text.
    Interactive(Box<Interactive>),
    Template(Box<Template>),
}

impl Content {
    /// Meta's `type` value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Audio(_) => "audio",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Contacts(_) => "contacts",
            Self::Reaction(_) => "reaction",
            Self::Interactive(_) => "interactive",
            Self::Template(_) => "template",
        }
    }

    /// The type's own object (an array for `contacts`), as Meta takes it.
    pub fn object(&self) -> Value {
        let v = match self {
            Self::Text(c) => serde_json::to_value(c),
            Self::Image(c) => serde_json::to_value(c),
            Self::Audio(c) => serde_json::to_value(c),
            Self::Video(c) => serde_json::to_value(c),
            Self::Document(c) => serde_json::to_value(c),
            Self::Sticker(c) => serde_json::to_value(c),
            Self::Location(c) => serde_json::to_value(c),
            Self::Contacts(c) => serde_json::to_value(c),
            Self::Reaction(c) => serde_json::to_value(c),
            Self::Interactive(c) => serde_json::to_value(c),
            Self::Template(c) => serde_json::to_value(c),
        };
        v.expect("the message model serialises")
    }

    /// Checks every rule; the paths start at the type's name (`text.body`).
    pub fn validate(&self) -> Result<(), FieldError> {
        let path = self.kind();
        match self {
            Self::Text(c) => c.validate(path),
            Self::Image(c) => c.validate(path),
            Self::Audio(c) => c.validate(path),
            Self::Video(c) => c.validate(path),
            Self::Document(c) => c.validate(path),
            Self::Sticker(c) => c.validate(path),
            Self::Location(c) => c.validate(path),
            Self::Contacts(c) => contacts::validate_all(c, path),
            Self::Reaction(c) => c.validate(path),
            Self::Interactive(c) => c.validate(path),
            Self::Template(c) => c.validate(path),
        }
    }

    /// Parses (without checking Meta's limits) the object of type `kind`.
    pub fn from_object(kind: &str, object: &Value) -> Result<Self, FieldError> {
        Ok(match kind {
            "text" => Self::Text(from_value(kind, object)?),
            "image" => Self::Image(from_value(kind, object)?),
            "audio" => Self::Audio(from_value(kind, object)?),
            "video" => Self::Video(from_value(kind, object)?),
            "document" => Self::Document(from_value(kind, object)?),
            "sticker" => Self::Sticker(from_value(kind, object)?),
            "location" => Self::Location(from_value(kind, object)?),
            "contacts" => Self::Contacts(from_value(kind, object)?),
            "reaction" => Self::Reaction(from_value(kind, object)?),
            "interactive" => Self::Interactive(Box::new(from_value(kind, object)?)),
            "template" => Self::Template(Box::new(from_value(kind, object)?)),
            other => return Err(unsupported_type(other)),
        })
    }

    /// Groups take text, media and templates only (Meta's groups guide).
    fn allowed_in_groups(&self) -> bool {
        matches!(
            self,
            Self::Text(_)
                | Self::Image(_)
                | Self::Audio(_)
                | Self::Video(_)
                | Self::Document(_)
                | Self::Sticker(_)
                | Self::Template(_)
        )
    }
}

fn unsupported_type(kind: &str) -> FieldError {
    FieldError::new(
        "type",
        "unsupported_type",
        format!("'{kind}' is not a message type (one of: {})", MESSAGE_TYPES.join(", ")),
    )
}

/// Who a message goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number; on the native API always E.164, on the Meta-compatible surface as given.
    Phone(String),
    /// A business-scoped user id (`US.1349…`), for users known only by their username.
    User(String),
    /// A group id from the Groups API.
    Group(String),
}

impl Recipient {
    /// The native API's rule: E.164 numbers (`+15551234567`), user ids, or a group with
    /// `recipient_type: "group"`.
    pub fn parse_native(to: &str, recipient_type: Option<&str>) -> Result<Self, FieldError> {
        if let Some(rt) = recipient_type {
            one_of("recipient_type", rt, &["individual", "group"])?;
        }
        if recipient_type == Some("group") {
            return group_id(to).map(Self::Group);
        }
        if to.starts_with('+') || to.bytes().all(|b| b.is_ascii_digit() || b" -()".contains(&b)) {
            return PhoneNumber::parse("to", to).map(|p| Self::Phone(p.as_str().to_owned()));
        }
        user_id(to).map(Self::User)
    }

    /// Meta's rule: a phone number in any common notation (Meta adds the business number's
    /// country code when there is no `+`), a user id, or a group id with `recipient_type: group`.
    pub fn parse_graph(to: &str, recipient_type: Option<&str>) -> Result<Self, FieldError> {
        if let Some(rt) = recipient_type {
            one_of("recipient_type", rt, &["individual", "group"])?;
        }
        if recipient_type == Some("group") {
            return group_id(to).map(Self::Group);
        }
        if to.bytes().any(|b| b.is_ascii_alphabetic()) {
            return user_id(to).map(Self::User);
        }
        let digits = to.bytes().filter(u8::is_ascii_digit).count();
        if !to.bytes().all(|b| b.is_ascii_digit() || b" +-().".contains(&b)) || !(7..=15).contains(&digits) {
            return Err(FieldError::new(
                "to",
                "phone",
                "must be a phone number with its country code, a user id or a group id",
            ));
        }
        Ok(Self::Phone(to.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(s) | Self::User(s) | Self::Group(s) => s,
        }
    }

    pub fn is_group(&self) -> bool {
        matches!(self, Self::Group(_))
    }
}

fn user_id(to: &str) -> Result<String, FieldError> {
    crate::contact::parse_user_id(to).map(str::to_owned).ok_or_else(|| {
        FieldError::new(
            "to",
            "e164",
            "must be a phone number in E.164 form such as +15551234567, or a business-scoped user id such as \
             US.13491208655302741918",
        )
    })
}

fn group_id(to: &str) -> Result<String, FieldError> {
    let ok = !to.is_empty()
        && to.len() <= GROUP_ID_MAX
        && to.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-=".contains(&b));
    if ok {
        Ok(to.to_owned())
    } else {
        Err(FieldError::new("to", "group_id", "must be a group id from the Groups API"))
    }
}

/// A message to send, as wagate stores it and Meta takes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outbound {
    pub recipient: Recipient,
    /// `recipient_type` as the request gave it (the native API always gives it).
    pub recipient_type: Option<String>,
    pub content: Content,
    /// The wamid this message replies to.
    pub context: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
    /// Deliver only if the customer's identity key still has this hash (identity change check).
    pub recipient_identity_key_hash: Option<String>,
}

impl Outbound {
    /// What is stored beside the recipient: the type's object and the fields Meta takes with it.
    pub fn fields(&self) -> Map<String, Value> {
        let mut fields = Map::new();
        if let Some(rt) = &self.recipient_type {
            fields.insert("recipient_type".into(), json!(rt));
        }
        if let Some(id) = &self.context {
            fields.insert("context".into(), json!({ "message_id": id }));
        }
        if let Some(data) = &self.biz_opaque_callback_data {
            fields.insert("biz_opaque_callback_data".into(), json!(data));
        }
        if let Some(hash) = &self.recipient_identity_key_hash {
            fields.insert("recipient_identity_key_hash".into(), json!(hash));
        }
        fields.insert(self.content.kind().to_owned(), self.content.object());
        fields
    }

    fn check(&self) -> Result<(), FieldError> {
        self.content.validate()?;
        if let Some(data) = &self.biz_opaque_callback_data {
            text_rule("biz_opaque_callback_data", data, CALLBACK_DATA_MAX)?;
        }
        if let Some(hash) = &self.recipient_identity_key_hash {
            text_rule("recipient_identity_key_hash", hash, 256)?;
        }
        if self.context.is_some() && matches!(self.content, Content::Reaction(_)) {
            // Meta's contextual-replies page: a reaction cannot be a reply.
            return Err(FieldError::new("context", "not_allowed", "a reaction cannot reply to a message"));
        }
        if self.recipient.is_group() && !self.content.allowed_in_groups() {
            return Err(FieldError::new(
                "type",
                "not_allowed",
                format!("'{}' cannot be sent to a group (groups take text, media and templates)", self.content.kind()),
            ));
        }
        Ok(())
    }
}

/// The body of `POST /{phone-number-id}/messages` for a stored message.
pub fn graph_body(to: &str, kind: &str, fields: &Map<String, Value>) -> Value {
    let mut body = json!({ "messaging_product": "whatsapp", "to": to, "type": kind });
    if let Value::Object(b) = &mut body {
        b.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    body
}

/// Defines an envelope struct: the given fields plus one optional field per content type, and
/// a method that takes out the content object matching `type`.
macro_rules! envelope {
    (template: $template:ty; $(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub text: Option<Text>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub image: Option<Image>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub audio: Option<Audio>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub video: Option<Video>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub document: Option<Document>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub sticker: Option<Sticker>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub location: Option<Location>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub contacts: Option<Vec<Contact>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub reaction: Option<Reaction>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub interactive: Option<Interactive>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub template: Option<$template>,
        }

        impl $name {
            /// The content object named by `kind`; another type's object beside it is an error.
            fn take_content(&mut self, kind: &str) -> Result<Content, FieldError> {
                if !MESSAGE_TYPES.contains(&kind) {
                    return Err(unsupported_type(kind));
                }
                let present: [(&'static str, Option<Content>); 11] = [
                    ("text", self.text.take().map(Content::Text)),
                    ("image", self.image.take().map(Content::Image)),
                    ("audio", self.audio.take().map(Content::Audio)),
                    ("video", self.video.take().map(Content::Video)),
                    ("document", self.document.take().map(Content::Document)),
                    ("sticker", self.sticker.take().map(Content::Sticker)),
                    ("location", self.location.take().map(Content::Location)),
                    ("contacts", self.contacts.take().map(Content::Contacts)),
                    ("reaction", self.reaction.take().map(Content::Reaction)),
                    ("interactive", self.interactive.take().map(|c| Content::Interactive(Box::new(c)))),
                    ("template", self.template.take().map(|c| Content::Template(Box::new(c.into())))),
                ];
                let mut found = None;
                for (name, content) in present {
                    match content {
                        Some(c) if name == kind => found = Some(c),
                        Some(_) => {
                            return Err(FieldError::new(
                                name,
                                "type_mismatch",
                                format!("is given but type is '{kind}'"),
                            ));
                        }
                        None => {}
                    }
                }
                found.ok_or_else(|| FieldError::new(kind, "required", format!("is required when type is '{kind}'")))
            }
        }
    };
}

envelope! {
    template: TemplateSend;
    /// `POST /v1/messages`: the native envelope around one of Meta's content objects.
    #[derive(Clone, Debug, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct SendRequest {
        /// The sender's phone-number id or display number; optional when a number is the default.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(example = "106540352242922"))]
        pub from: Option<String>,
        /// The recipient: an E.164 number, a business-scoped user id, or a group id.
        #[cfg_attr(feature = "openapi", schema(example = "+15551234567"))]
        pub to: String,
        /// `individual` (default) or `group`.
        #[serde(default)]
        pub recipient_type: Option<String>,
        /// Meta's message type; the object of the same name carries the content.
        #[serde(rename = "type")]
        #[cfg_attr(feature = "openapi", schema(example = "text"))]
        pub kind: String,
        /// Reply to a message: wagate's message id (`msg_…`) or Meta's wamid.
        #[serde(default)]
        pub reply_to: Option<String>,
        /// Echoed by Meta in this message's status webhooks, up to 512 characters.
        #[serde(default)]
        pub biz_opaque_callback_data: Option<String>,
        /// Deliver only if the customer's identity key still has this hash.
        #[serde(default)]
        pub recipient_identity_key_hash: Option<String>,
        /// Your own data (an object of at most 16 KiB), stored with the message and echoed back.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub metadata: Option<Map<String, Value>>,
        /// Makes retrying the request safe: the same key with the same body answers the first
        /// request's answer and sends nothing more (also the `Idempotency-Key` header).
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(example = "order-4711-shipped"))]
        pub idempotency_key: Option<String>,
        /// Send at this time (RFC 3339) instead of now; the message is `scheduled` until then.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(example = "2026-11-22T09:00:00Z"))]
        pub send_at: Option<String>,
        /// Fail the message instead of sending it after this time (RFC 3339): for one-time codes
        /// and offers that must not arrive late.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(example = "2026-11-22T09:05:00Z"))]
        pub expires_at: Option<String>,
    }
}

/// A native send request that passed every rule. `reply_to` is resolved by the caller; times
/// are checked against the clock by the caller too.
#[derive(Clone, Debug)]
pub struct ValidSend {
    pub from: Option<String>,
    pub outbound: Outbound,
    pub reply_to: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub idempotency_key: Option<String>,
    pub send_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// A template send in the simple form: its components are built from the stored template
    /// (the outbound's template names it, without components, until then).
    pub simple_template: Option<SimpleTemplate>,
}

/// A hash of a send request, to tell a retry (same body) from another request reusing its
/// idempotency key: SHA-256 of the JSON with object keys sorted and `idempotency_key` left out.
pub fn request_hash(body: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut body = body.clone();
    if let Value::Object(m) = &mut body {
        m.remove("idempotency_key");
    }
    // serde_json's Map keeps keys sorted, so equal bodies serialise equally.
    hex::encode(Sha256::digest(body.to_string().as_bytes()))
}

/// An idempotency key: 1 to 255 visible ASCII characters.
pub fn check_idempotency_key(path: &str, key: &str) -> Result<(), FieldError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(FieldError::new(path, "idempotency_key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(())
}

/// A client's own `metadata`: at most [`METADATA_MAX_BYTES`] as JSON.
pub fn check_metadata(path: &str, metadata: &Map<String, Value>) -> Result<(), FieldError> {
    let size = serde_json::to_vec(metadata).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > METADATA_MAX_BYTES {
        return Err(FieldError::new(
            path,
            "max_size",
            format!("must serialise to at most {METADATA_MAX_BYTES} bytes, got {size}"),
        ));
    }
    Ok(())
}

/// An RFC 3339 time a client gave, if any.
pub fn instant(path: &str, value: Option<&str>) -> Result<Option<Timestamp>, FieldError> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                FieldError::new(path, "rfc3339", format!("'{v}' is not an RFC 3339 time such as 2026-11-22T09:00:00Z"))
            })
        })
        .transpose()
}

impl SendRequest {
    pub fn validate(mut self) -> Result<ValidSend, FieldError> {
        let simple_template = match &self.template {
            Some(TemplateSend::Simple(s)) if self.kind == "template" => Some(s.clone()),
            _ => None,
        };
        let content = self.take_content(&self.kind.clone())?;
        let recipient = Recipient::parse_native(&self.to, self.recipient_type.as_deref())?;
        if let Some(from) = &self.from {
            check_length("from", from, 1, 64)?;
        }
        if let Some(r) = &self.reply_to {
            check_length("reply_to", r, 1, 512)?;
        }
        if let Some(meta) = &self.metadata {
            check_metadata("metadata", meta)?;
        }
        let recipient_type = if recipient.is_group() { "group" } else { "individual" };
        let outbound = Outbound {
            recipient,
            recipient_type: Some(recipient_type.into()),
            content,
            context: None,
            biz_opaque_callback_data: self.biz_opaque_callback_data,
            recipient_identity_key_hash: self.recipient_identity_key_hash,
        };
        outbound.check()?;
        if self.reply_to.is_some() && matches!(outbound.content, Content::Reaction(_)) {
            return Err(FieldError::new("reply_to", "not_allowed", "a reaction cannot reply to a message"));
        }
        if let Some(k) = &self.idempotency_key {
            check_idempotency_key("idempotency_key", k)?;
        }
        let send_at = instant("send_at", self.send_at.as_deref())?;
        let expires_at = instant("expires_at", self.expires_at.as_deref())?;
        if let (Some(s), Some(e)) = (send_at, expires_at)
            && e <= s
        {
            return Err(FieldError::new("expires_at", "after_send_at", "must be after send_at"));
        }
        Ok(ValidSend {
            from: self.from,
            outbound,
            reply_to: self.reply_to,
            metadata: self.metadata,
            idempotency_key: self.idempotency_key,
            send_at,
            expires_at,
            simple_template,
        })
    }
}

/// `{"message_id": "wamid…"}`: the message replied to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub message_id: String,
}

envelope! {
    template: Template;
    /// The body of Meta's `POST /{phone-number-id}/messages` for a message, exactly as Meta takes it.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GraphMessage {
        pub messaging_product: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_type: Option<String>,
        pub to: String,
        /// Meta defaults it to `text`.
        #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub context: Option<Context>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub biz_opaque_callback_data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub recipient_identity_key_hash: Option<String>,
    }
}

impl GraphMessage {
    pub fn validate(mut self) -> Result<Outbound, FieldError> {
        one_of("messaging_product", &self.messaging_product, &["whatsapp"])?;
        let kind = self.kind.clone().unwrap_or_else(|| "text".into());
        let content = self.take_content(&kind)?;
        let recipient = Recipient::parse_graph(&self.to, self.recipient_type.as_deref())?;
        if let Some(c) = &self.context {
            text_rule(&key("context", "message_id"), &c.message_id, 512)?;
        }
        let outbound = Outbound {
            recipient,
            recipient_type: self.recipient_type,
            content,
            context: self.context.map(|c| c.message_id),
            biz_opaque_callback_data: self.biz_opaque_callback_data,
            recipient_identity_key_hash: self.recipient_identity_key_hash,
        };
        outbound.check()?;
        Ok(outbound)
    }
}

/// What Meta's messages endpoint takes: a message, or a read receipt (with a typing indicator).
#[derive(Clone, Debug)]
pub enum GraphRequest {
    Send(Box<Outbound>),
    Read(ReadReceipt),
}

/// The message's object parameters (each type's object, and `context`): what the Graph API also
/// reads from a JSON-encoded string.
fn object_parameters() -> impl Iterator<Item = &'static str> {
    MESSAGE_TYPES.iter().copied().chain(["context"])
}

/// A body as the Graph API reads it: an object parameter given as a JSON-encoded string
/// (`"text": "{\"body\": \"hi\"}"`, as Node SDKs send them) is that object, and a top-level
/// `recipient` (a BSUID, since Meta's 2026 rollout) names the user when `to` does not (`to`
/// wins when both are given).
pub fn graph_params(body: &Value) -> std::borrow::Cow<'_, Value> {
    use std::borrow::Cow;
    let Some(map) = body.as_object() else { return Cow::Borrowed(body) };
    let encoded = |k: &str| map.get(k).is_some_and(Value::is_string);
    if !object_parameters().any(encoded) && !map.contains_key("recipient") {
        return Cow::Borrowed(body);
    }
    let mut map = map.clone();
    for k in object_parameters() {
        if let Some(Value::String(s)) = map.get(k)
            && let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s.trim())
        {
            map.insert(k.to_owned(), v);
        }
    }
    if let Some(r) = map.remove("recipient")
        && !map.contains_key("to")
    {
        map.insert("to".into(), r);
    }
    Cow::Owned(Value::Object(map))
}

impl GraphRequest {
    /// Parses and checks a body of Meta's messages endpoint, read as the Graph API reads it
    /// ([`graph_params`]).
    pub fn parse(body: &Value) -> Result<Self, FieldError> {
        let body = graph_params(body);
        let body = body.as_ref();
        if body.get("status").is_some() && body.get("to").is_none() {
            let receipt: ReadReceipt = from_value("", body)?;
            receipt.validate()?;
            return Ok(Self::Read(receipt));
        }
        let message: GraphMessage = from_value("", body)?;
        message.validate().map(|o| Self::Send(Box::new(o)))
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
mod tests;
