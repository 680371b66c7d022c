//! Chirp's send body, read in Chirp's names and turned into the native send request. Only the
//! object `type` names is read: Chirp's documentation shows every object in one body, and a
//! client that sends what it shows must not be refused for the others. Within `interactive`,
//! likewise, only the fields of its own `type` are read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value, json};
use wagate_domain::message::{SendRequest, from_value};
use wagate_domain::validation::FieldError;
use wagate_storage::PhoneNumber;

use super::error::ChirpError;
use super::ids::Ids;
use crate::services::ServiceError;
use crate::services::messages;
use crate::state::AppState;

/// Chirp's message types; each is Meta's of the same name.
const TYPES: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "template",
    "interactive",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChirpSend {
    pub from: String,
    to: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    media: Option<Value>,
    #[serde(default)]
    sticker: Option<Value>,
    #[serde(default)]
    location: Option<Value>,
    #[serde(default)]
    contacts: Option<Value>,
    #[serde(default)]
    reaction: Option<Value>,
    #[serde(default)]
    template: Option<Value>,
    #[serde(default)]
    interactive: Option<Value>,
    #[serde(default)]
    reply_to: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Media {
    media_id: String,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Sticker {
    media_id: String,
}

/// Read in Chirp's names, written in Meta's.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Location {
    latitude: Number,
    longitude: Number,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Contacts {
    contacts: Vec<Contact>,
}

/// A contact card: Chirp's camelCase names in, Meta's snake_case out.
#[derive(Deserialize, Serialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"), deny_unknown_fields)]
struct Contact {
    name: ContactName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phones: Option<Vec<Phone>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    emails: Option<Vec<Email>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    addresses: Option<Vec<Address>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<Org>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    urls: Option<Vec<Url>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    birthday: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"), deny_unknown_fields)]
struct ContactName {
    formatted_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suffix: Option<String>,
}

macro_rules! labelled {
    ($name:ident, $field:ident) => {
        /// A value with its optional `type` label (`CELL`, `WORK`, …).
        #[derive(Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $field: String,
            #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
            label: Option<String>,
        }
    };
}

labelled!(Phone, phone);
labelled!(Email, email);
labelled!(Url, url);

#[derive(Deserialize, Serialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"), deny_unknown_fields)]
struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country_code: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Org {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Reaction {
    message_id: String,
    emoji: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    name: String,
    language: String,
    /// `{"1": …}` for positional variables, `{"name": …}` for named ones: what the native simple
    /// form takes as `params`.
    #[serde(default)]
    variables: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Interactive {
    #[serde(rename = "type")]
    kind: String,
    body: String,
    #[serde(default)]
    header: Option<Header>,
    #[serde(default)]
    footer: Option<String>,
    #[serde(default)]
    buttons: Option<Vec<Button>>,
    #[serde(default)]
    button_text: Option<String>,
    #[serde(default)]
    sections: Option<Vec<Section>>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    flow_id: Option<String>,
    #[serde(default)]
    flow_token: Option<String>,
    #[serde(default)]
    flow_action: Option<String>,
    #[serde(default)]
    flow_action_payload: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Header {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    media_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Button {
    id: String,
    title: String,
}

/// The same in Chirp and in Meta.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    rows: Vec<Row>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Row {
    id: String,
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// A native send, and the ids it named as the caller gave them.
pub struct Native {
    pub request: SendRequest,
    pub ids: Ids,
}

/// Reads the object `name` for a message of type `kind`, which must be there.
fn object<T: serde::de::DeserializeOwned>(name: &str, kind: &str, value: Option<Value>) -> Result<T, FieldError> {
    match value {
        Some(v) if !v.is_null() => from_value(name, &v),
        _ => Err(FieldError::new(name, "required", format!("is required when type is '{kind}'"))),
    }
}

/// An object of the fields that are given.
fn fields<const N: usize>(pairs: [(&str, Option<Value>); N]) -> Value {
    Value::Object(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v))).collect())
}

fn required<T>(value: Option<T>, param: &str, kind: &str) -> Result<T, FieldError> {
    value.ok_or_else(|| FieldError::new(param, "required", format!("is required when interactive.type is '{kind}'")))
}

impl ChirpSend {
    /// The native send from `sender` this asks for. A reaction's message is looked up here: Meta
    /// takes its wamid, Chirp gives its message id.
    pub async fn into_native(self, state: &AppState, sender: &PhoneNumber) -> Result<Native, ChirpError> {
        let kind = self.kind.as_str();
        if !TYPES.contains(&kind) {
            return Err(FieldError::new(
                "type",
                "unsupported_type",
                format!("'{kind}' is not a message type (one of: {})", TYPES.join(", ")),
            )
            .into());
        }
        let mut ids = Ids::default();
        let content = match kind {
            "text" => json!({"body": object::<Text>("text", kind, self.text)?.body}),
            "image" | "video" | "audio" | "document" => media(kind, object("media", kind, self.media)?, &mut ids)?,
            "sticker" => {
                let sticker: Sticker = object("sticker", kind, self.sticker)?;
                json!({"media_id": ids.upload("sticker.mediaId", &sticker.media_id)?})
            }
            "location" => to_json(&object::<Location>("location", kind, self.location)?),
            "contacts" => to_json(&object::<Contacts>("contacts", kind, self.contacts)?.contacts),
            "reaction" => {
                let reaction: Reaction = object("reaction", kind, self.reaction)?;
                let wamid = reacted_wamid(state, sender, &reaction.message_id, &mut ids).await?;
                json!({"message_id": wamid, "emoji": reaction.emoji})
            }
            "template" => {
                let template: Template = object("template", kind, self.template)?;
                let params = template.variables.filter(|v| !v.is_empty()).map(Value::Object);
                fields([
                    ("name", Some(json!(template.name))),
                    ("language", Some(json!(template.language))),
                    ("params", params),
                ])
            }
            _ => interactive(object("interactive", kind, self.interactive)?, &mut ids)?,
        };
        let mut native = json!({"from": sender.id, "to": self.to, "type": kind, kind: content});
        if let Some(reply_to) = &self.reply_to {
            native["reply_to"] = json!(ids.message("replyTo", reply_to)?);
        }
        let request = from_value("", &native).map_err(|e| ChirpError::core(e.into(), &ids))?;
        Ok(Native { request, ids })
    }
}

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("the message model serialises")
}

/// `media` as Meta's object of `kind`: a caption where WhatsApp shows one (not on audio, where
/// it would be lost without a word), a file name for documents (the others show none).
fn media(kind: &str, media: Media, ids: &mut Ids) -> Result<Value, FieldError> {
    if kind == "audio" && media.caption.is_some() {
        return Err(FieldError::new("media.caption", "not_allowed", "audio messages have no caption on WhatsApp"));
    }
    let filename = media.filename.filter(|_| kind == "document");
    Ok(fields([
        ("media_id", Some(json!(ids.upload("media.mediaId", &media.media_id)?))),
        ("caption", media.caption.map(Value::String)),
        ("filename", filename.map(Value::String)),
    ]))
}

/// The wamid of the message a reaction is to: a message of the sending number that Meta has.
async fn reacted_wamid(
    state: &AppState,
    sender: &PhoneNumber,
    chirp: &str,
    ids: &mut Ids,
) -> Result<String, ChirpError> {
    let param = "reaction.messageId";
    let id = ids.message(param, chirp)?;
    let unknown = || FieldError::new(param, "unknown_message", format!("'{chirp}' is not a message of this number"));
    let message = match messages::get(state.store.as_ref(), id.as_str()).await {
        Ok(found) if found.message.phone_number_id == sender.id => found.message,
        Ok(_) | Err(ServiceError::NotFound { .. }) => return Err(unknown().into()),
        Err(e) => return Err(ChirpError::core(e, ids)),
    };
    message.wamid.ok_or_else(|| {
        FieldError::new(
            param,
            "not_sent_yet",
            format!("'{chirp}' has no WhatsApp id yet (Meta has not taken it): react once it is sent"),
        )
        .into()
    })
}

/// Chirp's flat interactive object as Meta's nested one of the same type.
fn interactive(i: Interactive, ids: &mut Ids) -> Result<Value, FieldError> {
    let kind = i.kind.as_str();
    let (meta_kind, action) = match kind {
        "buttons" => {
            let buttons = required(i.buttons, "interactive.buttons", kind)?;
            let buttons: Vec<Value> = buttons
                .into_iter()
                .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
                .collect();
            ("button", json!({ "buttons": buttons }))
        }
        "list" => {
            let sections = required(i.sections, "interactive.sections", kind)?;
            ("list", fields([("button", i.button_text.map(Value::String)), ("sections", Some(to_json(&sections)))]))
        }
        "cta_url" => {
            let url = required(i.url, "interactive.url", kind)?;
            let parameters = fields([("display_text", i.button_text.map(Value::String)), ("url", Some(json!(url)))]);
            ("cta_url", json!({"name": "cta_url", "parameters": parameters}))
        }
        "flow" => {
            let flow_id = required(i.flow_id, "interactive.flowId", kind)?;
            let parameters = fields([
                ("flow_message_version", Some(json!("3"))),
                ("flow_cta", i.button_text.map(Value::String)),
                ("flow_id", Some(json!(flow_id))),
                ("flow_token", i.flow_token.map(Value::String)),
                ("flow_action", i.flow_action.map(Value::String)),
                ("flow_action_payload", i.flow_action_payload),
            ]);
            ("flow", json!({"name": "flow", "parameters": parameters}))
        }
        other => {
            return Err(FieldError::new(
                "interactive.type",
                "unsupported_type",
                format!("'{other}' is not an interactive type (one of: buttons, list, cta_url, flow)"),
            ));
        }
    };
    let header = i.header.map(|h| header(h, ids)).transpose()?;
    Ok(fields([
        ("type", Some(json!(meta_kind))),
        ("header", header),
        ("body", Some(json!({"text": i.body}))),
        ("footer", i.footer.map(|f| json!({"text": f}))),
        ("action", Some(action)),
    ]))
}

/// A text header uses `text`, a media header `mediaId`.
fn header(h: Header, ids: &mut Ids) -> Result<Value, FieldError> {
    match h.kind.as_str() {
        "text" => Ok(fields([("type", Some(json!("text"))), ("text", h.text.map(Value::String))])),
        kind @ ("image" | "video" | "document") => {
            let param = "interactive.header.mediaId";
            let chirp = h.media_id.ok_or_else(|| {
                FieldError::new(param, "required", format!("is required when interactive.header.type is '{kind}'"))
            })?;
            Ok(json!({"type": kind, kind: {"media_id": ids.upload(param, &chirp)?}}))
        }
        other => Err(FieldError::new(
            "interactive.header.type",
            "unsupported_type",
            format!("'{other}' is not a header type (one of: text, image, video, document)"),
        )),
    }
}
