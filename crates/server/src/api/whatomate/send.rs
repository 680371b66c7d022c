//! Sends in Whatomate's shapes, turned into native send requests (Meta's content objects) and
//! sent by `services::messages::send`: the core's validation, window, limits, storage and
//! events. A send to a contact and a media send wait for Meta's answer, bounded, as the
//! Meta-compatible surface does; a template send answers at once (`pending`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wagate_domain::id::MessageId;
use wagate_domain::message::SendRequest;
use wagate_domain::phone::PhoneNumber;
use wagate_domain::validation::{FieldError, check_length};
use wagate_storage::Message;

use super::common::{
    Request, WhatomateError, account_numbers, body, path_id, recipient, rename_field, renaming, sender_for, success,
};
use crate::outbox::DispatchOutcome;
use crate::services::contacts::{self, ContactDetails};
use crate::services::messages::{self, Sent};
use crate::services::templates::{self, Wanted};
use crate::state::AppState;

/// `POST /api/contacts/{id}/messages`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    interactive: Option<Interactive>,
    /// wagate's id of the message replied to.
    #[serde(default)]
    reply_to_message_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Interactive {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    buttons: Option<Vec<ReplyButton>>,
    #[serde(default)]
    button_text: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ReplyButton {
    id: String,
    title: String,
}

/// Where the native model's fields are in a contact send.
const CONTACT_FIELDS: &[(&str, &str)] = &[
    ("text.body", "text"),
    ("interactive.body.text", "interactive.body"),
    ("interactive.action.buttons", "interactive.buttons"),
    ("interactive.action.parameters.display_text", "interactive.button_text"),
    ("interactive.action.parameters.url", "interactive.url"),
    ("interactive.action", "interactive"),
    ("reply_to", "reply_to_message_id"),
    ("to", "id"),
    ("contact", "id"),
];

/// A contact send's field as Whatomate names it: buttons are `{id, title}`, without Meta's `reply`.
fn contact_field(path: &str) -> String {
    renaming(CONTACT_FIELDS)(path).replace(".reply.", ".")
}

impl ContactMessage {
    /// The native type and its Meta object.
    fn content(self) -> Result<(&'static str, Value), FieldError> {
        let required = |path: &str, v: Option<String>| v.ok_or_else(|| FieldError::required(path));
        match self.kind.as_str() {
            "text" => Ok(("text", json!({"body": required("text", self.text)?}))),
            "interactive" => {
                let i = self.interactive.ok_or_else(|| FieldError::required("interactive"))?;
                let body = json!({"text": required("interactive.body", i.body)?});
                let object = match i.kind.as_str() {
                    "button" => {
                        let buttons = i.buttons.ok_or_else(|| FieldError::required("interactive.buttons"))?;
                        let buttons: Vec<Value> =
                            buttons.into_iter().map(|b| json!({"type": "reply", "reply": b})).collect();
                        json!({"type": "button", "body": body, "action": {"buttons": buttons}})
                    }
                    "cta_url" => json!({
                        "type": "cta_url",
                        "body": body,
                        "action": {"name": "cta_url", "parameters": {
                            "display_text": required("interactive.button_text", i.button_text)?,
                            "url": required("interactive.url", i.url)?,
                        }},
                    }),
                    other => {
                        return Err(FieldError::new(
                            "interactive.type",
                            "invalid_value",
                            format!("must be button or cta_url, got '{other}'"),
                        ));
                    }
                };
                Ok(("interactive", object))
            }
            other => Err(FieldError::new(
                "type",
                "invalid_value",
                format!(
                    "must be text or interactive, got '{other}' (media goes to POST /api/messages/media, templates \
                     to POST /api/messages/template)"
                ),
            )),
        }
    }
}

/// `POST /api/contacts/{id}/messages`: a text or an interactive message, from the number the
/// contact last talked with.
pub(super) async fn contact_message(
    req: Request,
    path: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let id = path_id(path)?;
    let message: ContactMessage = body(raw)?;
    let reply_to = message.reply_to_message_id.clone();
    let (kind, object) = message.content()?;
    let contact = contacts::get(req.state.store.as_ref(), &id)
        .await
        .map_err(|e| WhatomateError::renamed(e, renaming(&[("contact", "id")])))?;
    let to = recipient(&contact.contact, "id")?;
    let sender = sender_for(&req.state, &contact, None).await?;
    let native = json!({"from": sender.id, "to": to, "type": kind, kind: object, "reply_to": reply_to});
    let sent = send(&req.state, native, contact_field).await?;
    let sent = dispatched(&req.state, &sent).await?;
    Ok(success(json!({
        "id": sent.id.as_str(),
        "wa_message_id": sent.wamid,
        "status": "sent",
        "timestamp": sent.created_at,
    })))
}

/// `POST /api/messages/template`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateMessage {
    #[serde(default)]
    contact_id: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    template_name: Option<String>,
    /// wagate's (Meta's) template id.
    #[serde(default)]
    template_id: Option<String>,
    /// By name (`{"name": "John"}`) or by position (`{"1": "John"}`).
    #[serde(default)]
    template_params: Option<Map<String, Value>>,
    /// Button index → the value of its URL's variable.
    #[serde(default)]
    button_params: Option<Map<String, Value>>,
    #[serde(default)]
    account_name: Option<String>,
    /// Not Whatomate's: the template's language, needed only when it exists in several.
    #[serde(default)]
    language: Option<String>,
}

/// `POST /api/messages/template`: checked against the stored template and queued; answered at
/// once as `pending`.
pub(super) async fn template_message(
    req: Request,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let t: TemplateMessage = body(raw)?;
    let (contact, who) = target(&req.state, t.contact_id.as_deref(), t.phone_number.as_deref()).await?;
    let numbers = match &t.account_name {
        Some(name) => Some(account_numbers(&req.state, name).await?),
        None => None,
    };
    let sender = sender_for(&req.state, &contact, numbers.as_deref()).await?;
    let named_by = if t.template_id.is_some() { "template_id" } else { "template_name" };
    let (name, language) = template_of(&req.state, &sender, t.template_name, t.template_id, t.language).await?;
    let mut template = json!({"name": name, "language": language});
    if let Some(params) = t.template_params {
        template["params"] = Value::Object(params);
    }
    if let Some(buttons) = t.button_params {
        template["buttons"] = Value::Object(buttons);
    }
    let to = recipient(&contact.contact, who)?;
    let native = json!({"from": sender.id, "to": to, "type": "template", "template": template});
    let fields = [
        ("template.params", "template_params"),
        ("template.buttons", "button_params"),
        ("template.language", "language"),
        ("template.name", named_by),
        ("template", named_by),
        ("to", who),
        ("from", "account_name"),
    ];
    let sent = send(&req.state, native, renaming(&fields)).await?;
    Ok(success(json!({
        "message_id": sent.as_str(),
        "phone_number": contact.contact.wa_id,
        "status": "pending",
        "template_name": name,
    })))
}

/// The name and language of the template a request names, by name (its only language, or the
/// one given) or by wagate's template id, among the sending number's account's templates.
async fn template_of(
    state: &AppState,
    sender: &wagate_storage::PhoneNumber,
    name: Option<String>,
    id: Option<String>,
    language: Option<String>,
) -> Result<(String, String), WhatomateError> {
    if let Some(l) = &language {
        check_length("language", l, 2, 16)?;
    }
    match (name, id) {
        (Some(_), Some(_)) => {
            Err(FieldError::new("template_id", "exclusive", "give template_name or template_id, not both").into())
        }
        (None, None) => Err(FieldError::new("template_name", "required", "is required (or template_id)").into()),
        (None, Some(id)) => {
            check_length("template_id", &id, 1, 64)?;
            let t = templates::get(state, &id)
                .await
                .map_err(|e| WhatomateError::renamed(e, renaming(&[("template", "template_id")])))?;
            if t.waba_id != sender.waba_id {
                return Err(FieldError::new(
                    "template_id",
                    "other_account",
                    format!("is a template of another account than the sending number {}'s", sender.id),
                )
                .into());
            }
            if language.as_ref().is_some_and(|l| *l != t.language) {
                return Err(
                    FieldError::new("language", "invalid_value", format!("template {id} is {}", t.language)).into()
                );
            }
            Ok((t.name, t.language))
        }
        (Some(name), None) => {
            check_length("template_name", &name, 1, 512)?;
            if let Some(l) = language {
                return Ok((name, l));
            }
            let wanted = Wanted {
                account_id: Some(sender.account_id.to_string()),
                name: Some(name.clone()),
                language: None,
                status: None,
                category: None,
            };
            let (found, _) = templates::list(state, wanted, None, 100).await?;
            let found: Vec<_> = found.into_iter().filter(|t| t.waba_id == sender.waba_id).collect();
            let approved: Vec<_> = found.iter().filter(|t| t.status == "APPROVED").collect();
            let pool = if approved.is_empty() { found.iter().collect() } else { approved };
            match pool.as_slice() {
                [only] => Ok((name, only.language.clone())),
                [] => Err(FieldError::new(
                    "template_name",
                    "template_not_found",
                    format!("no template named '{name}' exists for the sending number's account"),
                )
                .into()),
                several => {
                    let languages: Vec<&str> = several.iter().map(|t| t.language.as_str()).collect();
                    Err(FieldError::new(
                        "language",
                        "required",
                        format!("is required: {name} exists in {}", languages.join(", ")),
                    )
                    .into())
                }
            }
        }
    }
}

/// `POST /api/messages/media`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaMessage {
    #[serde(default)]
    contact_id: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    media_url: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
}

const MEDIA_TYPES: &[&str] = &["image", "video", "audio", "document"];

/// `POST /api/messages/media`: the file is fetched by wagate (network rules, Meta's per-type
/// limits, its real type checked), then sent as an upload of wagate's.
pub(super) async fn media_message(
    req: Request,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let m: MediaMessage = body(raw)?;
    let kind = m.kind.ok_or_else(|| FieldError::required("type"))?;
    let Some(kind) = MEDIA_TYPES.iter().copied().find(|k| *k == kind) else {
        return Err(FieldError::new(
            "type",
            "invalid_value",
            format!("must be image, video, audio or document, got '{kind}'"),
        )
        .into());
    };
    let url = m.media_url.ok_or_else(|| FieldError::required("media_url"))?;
    if kind == "audio" && m.caption.is_some() {
        return Err(FieldError::new("caption", "not_allowed", "an audio message has no caption").into());
    }
    if kind != "document" && m.filename.is_some() {
        return Err(FieldError::new("filename", "not_allowed", "only a document has a file name").into());
    }
    let (contact, who) = target(&req.state, m.contact_id.as_deref(), m.phone_number.as_deref()).await?;
    let to = recipient(&contact.contact, who)?;
    let sender = sender_for(&req.state, &contact, None).await?;
    let upload = crate::services::uploads::fetch(&req.state, &url, m.filename.clone())
        .await
        .map_err(|e| WhatomateError::renamed(e, renaming(&[("url", "media_url"), ("file", "media_url")])))?;
    if upload.kind != kind {
        return Err(FieldError::new(
            "media_url",
            "media_type_mismatch",
            format!("is {}, a file WhatsApp sends as {}, not as {kind}", upload.mime_type, upload.kind),
        )
        .into());
    }
    let mut object = json!({"media_id": upload.id.as_str()});
    if let Some(caption) = m.caption {
        object["caption"] = json!(caption);
    }
    if kind == "document"
        && let Some(filename) = m.filename.or(upload.filename)
    {
        object["filename"] = json!(filename);
    }
    let native = json!({"from": sender.id, "to": to, "type": kind, kind: object});
    let caption = format!("{kind}.caption");
    let filename = format!("{kind}.filename");
    let fields = [(caption.as_str(), "caption"), (filename.as_str(), "filename"), (kind, "media_url"), ("to", who)];
    let sent = send(&req.state, native, renaming(&fields)).await?;
    let sent = dispatched(&req.state, &sent).await?;
    Ok(success(json!({"id": sent.id.as_str(), "wa_message_id": sent.wamid, "status": "sent"})))
}

/// `PUT /api/messages/{id}/read`: Meta is told the customer's message was read.
pub(super) async fn mark_read(
    req: Request,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, WhatomateError> {
    req.admit().await?;
    let id = path_id(path)?;
    messages::mark_read(req.state.store.as_ref(), &req.state.graph, &id, false)
        .await
        .map_err(|e| WhatomateError::renamed(e, renaming(&[("message", "id")])))?;
    Ok(success(Value::Null))
}

/// The contact a request names by `contact_id`, or by `phone_number` (made when new), and which
/// of the two named it.
async fn target(
    state: &AppState,
    contact_id: Option<&str>,
    phone_number: Option<&str>,
) -> Result<(ContactDetails, &'static str), WhatomateError> {
    let store = state.store.as_ref();
    let id = match (contact_id, phone_number) {
        (Some(_), Some(_)) => {
            return Err(
                FieldError::new("phone_number", "exclusive", "give contact_id or phone_number, not both").into()
            );
        }
        (None, None) => return Err(FieldError::new("contact_id", "required", "is required (or phone_number)").into()),
        (Some(id), None) => {
            check_length("contact_id", id, 1, 64)?;
            let details = contacts::get(store, id)
                .await
                .map_err(|e| WhatomateError::renamed(e, renaming(&[("contact", "contact_id")])))?;
            return Ok((details, "contact_id"));
        }
        (None, Some(phone)) => contacts::by_phone(store, &phone_digits(phone)?).await?.id,
    };
    Ok((contacts::get(store, id.as_str()).await?, "phone_number"))
}

/// A phone number as Whatomate writes it: its digits with the country code (`919876543210`),
/// a leading `+` allowed.
fn phone_digits(phone: &str) -> Result<PhoneNumber, FieldError> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    PhoneNumber::parse("phone_number", &format!("+{digits}")).map_err(|_| {
        FieldError::new(
            "phone_number",
            "phone",
            "must be the number's digits with its country code, such as 919876543210 (7 to 15 digits)",
        )
    })
}

/// Sends a native request; the message's id. Errors name fields as `rename` says.
async fn send(state: &AppState, native: Value, rename: impl Fn(&str) -> String) -> Result<MessageId, WhatomateError> {
    let req: SendRequest = wagate_domain::message::from_value("", &native).map_err(|e| rename_field(e, &rename))?;
    match messages::send(state, req, None, &|_| Value::Null).await.map_err(|e| WhatomateError::renamed(e, &rename))? {
        Sent::New(details) => Ok(details.message.id),
        Sent::Replayed { message_id, .. } => Ok(message_id),
    }
}

/// Waits, bounded, for Meta's answer to a send: the message once Meta accepted it, or Meta's
/// refusal as an error.
async fn dispatched(state: &AppState, id: &MessageId) -> Result<Message, WhatomateError> {
    let wait = Duration::from_millis(state.config.graph_surface.wait_ms);
    match state.outbox.wait_for_dispatch(state.store.as_ref(), id, wait).await? {
        DispatchOutcome::Accepted(_) => Ok(messages::get(state.store.as_ref(), id.as_str()).await?.message),
        DispatchOutcome::Failed { status, error, .. } => {
            let status = StatusCode::from_u16(status).ok().filter(StatusCode::is_client_error);
            let why = error.map_or_else(
                || "the message could not be sent".to_owned(),
                |e| match (e.code, e.details) {
                    (Some(code), Some(details)) => format!("WhatsApp refused the message (code {code}): {details}"),
                    (Some(code), None) => format!("WhatsApp refused the message (code {code}): {}", e.message),
                    (None, _) => format!("the message could not be sent: {}", e.message),
                },
            );
            Err(WhatomateError::new(status.unwrap_or(StatusCode::BAD_GATEWAY), format!("{why} (message {id})")))
        }
        DispatchOutcome::Cancelled => Err(WhatomateError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the message was not handed to WhatsApp within {} ms and was cancelled: nothing was sent; retry",
                wait.as_millis()
            ),
        )),
    }
}
