//! Customers' side (`/simulate/…`): a customer writes to a business number (every inbound type
//! Meta documents), or joins or leaves a group. Each posts the webhook Meta would.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::errors::catalogue;
use crate::graph::call::BaseUrl;
use crate::graph::{groups, media};
use crate::state::{State, unix_now};
use crate::test_tool::{ControlBody, ControlError, parse};
use crate::{ids, webhook};

type Shared = Arc<State>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/simulate/inbound", post(inbound))
        .route("/simulate/groups/{group_id}/join", post(join_group))
        .route("/simulate/groups/{group_id}/leave", post(leave_group))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inbound {
    phone_number_id: String,
    /// The customer's phone number.
    from: String,
    /// The customer's profile name.
    #[serde(default)]
    name: Option<String>,
    /// The customer's business-scoped user id, where the test wants one.
    #[serde(default)]
    user_id: Option<String>,
    /// A group of this number the customer is in, for a message written in the group.
    #[serde(default)]
    group_id: Option<String>,
    message: Map<String, Value>,
}

/// Parses `value` as `T`, naming the field at fault under `at`.
fn typed<T: DeserializeOwned>(value: &Value, at: &str) -> Result<T, ControlError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." { at.to_owned() } else { format!("{at}.{inner}") };
        ControlError::invalid(path, e.inner())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Text {
    body: String,
}

/// A customer's media file: the bytes (base64) or, without them, a small stand-in file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaIn {
    #[serde(default)]
    content_base64: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    voice: Option<bool>,
    #[serde(default)]
    animated: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Location {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    id: String,
    title: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowReply {
    name: String,
    body: String,
    /// The flow's answer: an object (encoded to a string, as Meta sends it) or a string.
    response_json: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Button {
    payload: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reaction {
    message_id: String,
    /// Empty removes a reaction.
    emoji: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Order {
    catalog_id: String,
    #[serde(default)]
    text: Option<String>,
    product_items: Vec<OrderItem>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct OrderItem {
    product_retailer_id: String,
    quantity: u32,
    /// Kept as given: a whole price stays an integer, as in Meta's example (`30`, not `30.0`).
    item_price: serde_json::Number,
    currency: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct System {
    /// `user_changed_number` (the only type Meta documents for numbers).
    #[serde(rename = "type")]
    kind: String,
    /// The customer's new number.
    new_wa_id: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Unsupported {
    /// What the customer really sent (`poll`, `edit`, …).
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Referral {
    source_url: String,
    source_id: String,
    source_type: String,
    // Meta's ad referrals always carry the ad's text, headline and media type.
    body: String,
    headline: String,
    media_type: String,
    #[serde(default)]
    image_url: Option<String>,
    #[serde(default)]
    video_url: Option<String>,
    #[serde(default)]
    thumbnail_url: Option<String>,
    #[serde(default)]
    ctwa_clid: Option<String>,
    #[serde(default)]
    welcome_message: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Context {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    forwarded: Option<bool>,
    #[serde(default)]
    frequently_forwarded: Option<bool>,
    #[serde(default)]
    referred_product: Option<ReferredProduct>,
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ReferredProduct {
    catalog_id: String,
    product_retailer_id: String,
}

/// Inserts the non-empty optional strings.
fn put_opt(into: &mut Map<String, Value>, fields: &[(&str, &Option<String>)]) {
    for (k, v) in fields {
        if let Some(v) = v {
            into.insert((*k).to_owned(), json!(v));
        }
    }
}

fn check_len(path: &str, text: &str, max: usize) -> Result<(), ControlError> {
    let n = text.chars().count();
    if n == 0 || n > max {
        Err(ControlError::invalid(path, format!("must have 1 to {max} characters")))
    } else {
        Ok(())
    }
}

/// The stand-in for a customer's file when the test gives none: a few bytes that start like
/// the real thing.
fn placeholder(mime: &str) -> Vec<u8> {
    let head: &[u8] = match mime.split(';').next().unwrap_or_default() {
        "image/jpeg" => b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00",
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "image/webp" => b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        "application/pdf" => b"%PDF-1.4\n",
        "audio/ogg" => b"OggS\x00\x02",
        "video/mp4" | "audio/mp4" => b"\x00\x00\x00\x18ftypmp42",
        _ => b"",
    };
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(format!("wagate sandbox media {}", ids::alnum(16)).as_bytes());
    bytes
}

/// The usual file extension of a document type.
fn extension(mime: &str) -> &'static str {
    match base_mime(mime) {
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        _ => "bin",
    }
}

fn default_mime(kind: &str) -> &'static str {
    match kind {
        "image" => "image/jpeg",
        "video" => "video/mp4",
        "audio" => "audio/ogg; codecs=opus",
        "sticker" => "image/webp",
        _ => "application/pdf",
    }
}

/// The type without its parameters (`audio/ogg` of `audio/ogg; codecs=opus`).
fn base_mime(mime: &str) -> &str {
    mime.split(';').next().unwrap_or_default().trim()
}

/// The MIME type a customer's file is reported with: the one given, else the one its content
/// shows, else the usual one for the kind. It must fit the kind; a voice note is always Opus in
/// OGG, which WhatsApp reports as `audio/ogg; codecs=opus`.
fn media_mime(kind: &str, given: Option<&str>, seen: Option<&str>, voice: bool) -> Result<String, String> {
    let fits = |mime: &str| {
        let base = base_mime(mime).to_ascii_lowercase();
        match kind {
            "image" => base.starts_with("image/"),
            "video" => base.starts_with("video/"),
            "audio" => base.starts_with("audio/"),
            "sticker" => base == "image/webp",
            _ => !base.is_empty(),
        }
    };
    let mime = match (given.map(str::trim), seen) {
        (Some(t), _) => t.to_owned(),
        // MP4 containers sniff as video; an audio message's is audio.
        (None, Some("video/mp4")) if kind == "audio" => "audio/mp4".to_owned(),
        (None, Some(s)) if fits(s) && !(kind == "audio" && s == "audio/ogg") => s.to_owned(),
        (None, _) => default_mime(kind).to_owned(),
    };
    if !fits(&mime) {
        return Err(format!("'{mime}' is not a type a {kind} message can have"));
    }
    if voice {
        if !base_mime(&mime).eq_ignore_ascii_case("audio/ogg") {
            return Err(format!("a voice note is audio/ogg; codecs=opus, not '{mime}'"));
        }
        return Ok(default_mime("audio").to_owned());
    }
    Ok(mime)
}

/// A customer's file, checked, to be stored once the whole request has passed its checks.
struct MediaFile {
    mime: String,
    bytes: Vec<u8>,
    filename: Option<String>,
}

impl MediaFile {
    /// Stores the file and completes the message's `kind` object with what it then has: an id a
    /// bot can fetch and download, and its digest.
    fn store(self, state: &State, base: &str, phone_number_id: &str, content: &mut Value) -> String {
        let stored = media::store(state, phone_number_id, &self.mime, self.bytes, self.filename);
        content["sha256"] = json!(media::sha256_base64(&stored));
        content["id"] = json!(stored.id);
        content["url"] = json!(media::url(state, base, &stored.id));
        stored.id
    }
}

/// What the customer's message holds, as the webhook shows it, and the file it carries, to store
/// once nothing more can refuse the request.
fn content(kind: &str, raw: &Value) -> Result<(Value, Option<MediaFile>), ControlError> {
    let at = format!("message.{kind}");
    let out = match kind {
        "text" => {
            let t: Text = typed(raw, &at)?;
            check_len(&format!("{at}.body"), &t.body, 4096)?;
            json!({"body": t.body})
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            let m: MediaIn = typed(raw, &at)?;
            let allowed: &[&str] = match kind {
                "image" | "video" => &["caption"],
                "document" => &["caption", "filename"],
                "audio" => &["voice"],
                _ => &["animated"],
            };
            for (field, given) in [
                ("caption", m.caption.is_some()),
                ("filename", m.filename.is_some()),
                ("voice", m.voice.is_some()),
                ("animated", m.animated.is_some()),
            ] {
                if given && !allowed.contains(&field) {
                    return Err(ControlError::invalid(
                        format!("{at}.{field}"),
                        format!("is not part of a {kind} message"),
                    ));
                }
            }
            let given = match &m.content_base64 {
                Some(b64) => {
                    let bytes = STANDARD.decode(b64).map_err(|e| {
                        ControlError::invalid(format!("{at}.content_base64"), format!("is not base64: {e}"))
                    })?;
                    if bytes.is_empty() {
                        return Err(ControlError::invalid(format!("{at}.content_base64"), "is an empty file"));
                    }
                    Some(bytes)
                }
                None => None,
            };
            let seen = given.as_deref().and_then(media::sniff);
            let mime = media_mime(kind, m.mime_type.as_deref(), seen, m.voice == Some(true))
                .map_err(|rule| ControlError::invalid(format!("{at}.mime_type"), rule))?;
            if let Some(seen) = seen
                && !media::compatible(seen, base_mime(&mime))
            {
                return Err(ControlError::invalid(
                    format!("{at}.content_base64"),
                    format!("holds {seen} content, not {mime}"),
                ));
            }
            let bytes = given.unwrap_or_else(|| placeholder(&mime));
            // A shared document always has a file name on WhatsApp; make one up when the test
            // gives none.
            let filename = match (kind, &m.filename) {
                ("document", None) => Some(format!("document.{}", extension(&mime))),
                _ => m.filename.clone(),
            };
            let mut o = Map::new();
            put_opt(&mut o, &[("caption", &m.caption), ("filename", &filename)]);
            o.insert("mime_type".into(), json!(mime));
            // Meta's audio and sticker messages always carry these flags, true or false.
            if kind == "audio" {
                o.insert("voice".into(), json!(m.voice.unwrap_or(false)));
            }
            if kind == "sticker" {
                o.insert("animated".into(), json!(m.animated.unwrap_or(false)));
            }
            return Ok((Value::Object(o), Some(MediaFile { mime, bytes, filename })));
        }
        "location" => {
            let l: Location = typed(raw, &at)?;
            if !(-90.0..=90.0).contains(&l.latitude) {
                return Err(ControlError::invalid(format!("{at}.latitude"), "must be between -90 and 90"));
            }
            if !(-180.0..=180.0).contains(&l.longitude) {
                return Err(ControlError::invalid(format!("{at}.longitude"), "must be between -180 and 180"));
            }
            let mut o = Map::new();
            o.insert("latitude".into(), json!(l.latitude));
            o.insert("longitude".into(), json!(l.longitude));
            put_opt(&mut o, &[("name", &l.name), ("address", &l.address), ("url", &l.url)]);
            Value::Object(o)
        }
        "contacts" => {
            let cards = raw
                .as_array()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ControlError::invalid(&at, "must be a non-empty array of contact cards"))?;
            for (i, c) in cards.iter().enumerate() {
                if c.pointer("/name/formatted_name").and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(ControlError::invalid(format!("{at}[{i}].name.formatted_name"), "is required"));
                }
            }
            raw.clone()
        }
        "interactive" => {
            let sub = raw.get("type").and_then(Value::as_str).unwrap_or_default();
            let inner = raw.get(sub).cloned().unwrap_or(Value::Null);
            let at = format!("{at}.{sub}");
            let reply = match sub {
                "button_reply" | "list_reply" => {
                    let r: Reply = typed(&inner, &at)?;
                    if sub == "button_reply" && r.description.is_some() {
                        return Err(ControlError::invalid(format!("{at}.description"), "is only part of a list_reply"));
                    }
                    let mut o = Map::new();
                    o.insert("id".into(), json!(r.id));
                    o.insert("title".into(), json!(r.title));
                    put_opt(&mut o, &[("description", &r.description)]);
                    Value::Object(o)
                }
                "nfm_reply" => {
                    let f: FlowReply = typed(&inner, &at)?;
                    if !["flow", "address_message"].contains(&f.name.as_str()) {
                        return Err(ControlError::invalid(
                            format!("{at}.name"),
                            "must be \"flow\" or \"address_message\"",
                        ));
                    }
                    let response = match f.response_json {
                        Value::String(s) => {
                            serde_json::from_str::<Value>(&s).map_err(|e| {
                                ControlError::invalid(format!("{at}.response_json"), format!("is not JSON: {e}"))
                            })?;
                            s
                        }
                        Value::Object(o) => Value::Object(o).to_string(),
                        _ => {
                            return Err(ControlError::invalid(
                                format!("{at}.response_json"),
                                "must be a JSON object or its text",
                            ));
                        }
                    };
                    json!({"name": f.name, "body": f.body, "response_json": response})
                }
                _ => {
                    return Err(ControlError::invalid(
                        "message.interactive.type",
                        "must be button_reply, list_reply or nfm_reply",
                    ));
                }
            };
            json!({"type": sub, sub: reply})
        }
        "button" => {
            let b: Button = typed(raw, &at)?;
            json!({"payload": b.payload, "text": b.text})
        }
        "reaction" => {
            let r: Reaction = typed(raw, &at)?;
            json!({"message_id": r.message_id, "emoji": r.emoji})
        }
        "order" => {
            let o: Order = typed(raw, &at)?;
            if o.product_items.is_empty() {
                return Err(ControlError::invalid(format!("{at}.product_items"), "must list at least one item"));
            }
            if let Some(i) = o.product_items.iter().position(|p| p.quantity == 0) {
                return Err(ControlError::invalid(format!("{at}.product_items[{i}].quantity"), "must be at least 1"));
            }
            if let Some(i) = o.product_items.iter().position(|p| p.item_price.as_f64().is_none_or(|v| v < 0.0)) {
                return Err(ControlError::invalid(
                    format!("{at}.product_items[{i}].item_price"),
                    "must not be negative",
                ));
            }
            let mut out = json!({"catalog_id": o.catalog_id, "product_items": o.product_items});
            if let Some(t) = o.text {
                out["text"] = json!(t);
            }
            out
        }
        "unsupported" => {
            let u: Unsupported = if raw.is_null() { Unsupported::default() } else { typed(raw, &at)? };
            json!({"type": u.kind.unwrap_or_else(|| "unknown".into())})
        }
        other => {
            return Err(ControlError::invalid(
                "message.type",
                format!(
                    "'{other}' is not an inbound type; use text, image, audio, video, document, sticker, location, contacts, interactive, button, reaction, order, system, unsupported or request_welcome"
                ),
            ));
        }
    };
    Ok((out, None))
}

/// Whether the business's message `wamid` went to this customer (by number or user id), or to
/// the group the customer writes in.
fn sent_to(
    state: &State,
    phone_number_id: &str,
    wamid: &str,
    from: &str,
    user_id: Option<&str>,
    group_id: Option<&str>,
) -> bool {
    let inner = state.lock();
    inner.received.iter().any(|r| {
        let to = r.to.as_deref().unwrap_or_default();
        r.phone_number_id == phone_number_id
            && r.wamid.as_deref() == Some(wamid)
            && match group_id {
                Some(g) => to == g,
                None => ids::digits_only(to) == from || user_id == Some(to),
            }
    })
}

/// A customer's message, delivered to the webhook URL as Meta would. Everything is checked
/// before anything changes: a refused request leaves no user, file or window behind.
async fn inbound(
    AxState(state): AxState<Shared>,
    BaseUrl(base): BaseUrl,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let req: Inbound = parse(&body, "simulate request")?;
    let Some((_, number)) = state.business_of_number(&req.phone_number_id) else {
        return Err(ControlError::invalid("phone_number_id", "is not one of this sandbox's numbers"));
    };
    let from = ids::digits_only(&req.from);
    if !(7..=15).contains(&from.len()) || !req.from.trim_start_matches('+').bytes().all(|b| b.is_ascii_digit()) {
        return Err(ControlError::invalid(
            "from",
            "must be the customer's phone number: 7 to 15 digits with an optional +",
        ));
    }
    let business = ids::digits_only(&number.display_phone_number);
    if from == business {
        return Err(ControlError::invalid("from", "is the business number itself"));
    }
    if let Some(g) = &req.group_id {
        let group = groups::find(&state, g).filter(|g| g.phone_number_id == req.phone_number_id);
        match group {
            None => return Err(ControlError::invalid("group_id", "is not a group of this number")),
            Some(g) if !g.participants.contains(&from) => {
                return Err(ControlError::invalid(
                    "group_id",
                    "the customer is not in the group; join it first (POST /simulate/groups/{group_id}/join)",
                ));
            }
            Some(_) => {}
        }
    }
    let mut msg = req.message;
    let kind = match msg.remove("type") {
        Some(Value::String(k)) if !k.is_empty() => k,
        _ => return Err(ControlError::invalid("message.type", "is required (for example \"text\")")),
    };
    let context = msg.remove("context").map(|c| typed::<Context>(&c, "message.context")).transpose()?;
    let referral = msg.remove("referral").map(|r| typed::<Referral>(&r, "message.referral")).transpose()?;
    let raw = msg.remove(&kind).unwrap_or(Value::Null);
    if let Some(k) = msg.keys().next() {
        return Err(ControlError::invalid(format!("message.{k}"), format!("is not part of a {kind} message")));
    }
    let name = req.name.unwrap_or_else(|| "Sandbox Customer".into());
    let now = unix_now();
    let wamid = ids::wamid(&from);
    // The user as they will be once remembered, which waits until nothing can refuse.
    let user_id = req.user_id.clone().unwrap_or_else(|| state.user(&from).user_id);
    let mut message = Map::new();
    message.insert("from".into(), json!(from));
    message.insert("from_user_id".into(), json!(user_id));
    if let Some(g) = &req.group_id {
        message.insert("group_id".into(), json!(g));
    }
    message.insert("id".into(), json!(wamid));
    message.insert("timestamp".into(), json!(now.to_string()));
    let mut file = None;
    match kind.as_str() {
        "request_welcome" => {
            if !raw.is_null() {
                return Err(ControlError::invalid("message.request_welcome", "a welcome request has no content"));
            }
        }
        "system" => {
            let s: System = typed(&raw, "message.system")?;
            if s.kind != "user_changed_number" {
                return Err(ControlError::invalid("message.system.type", "must be user_changed_number"));
            }
            let new = ids::digits_only(&s.new_wa_id);
            if !(7..=15).contains(&new.len()) {
                return Err(ControlError::invalid(
                    "message.system.new_wa_id",
                    "must be the customer's new phone number",
                ));
            }
            message.insert(
                "system".into(),
                json!({"body": format!("User {name} changed from {from} to {new}"), "wa_id": new, "type": "user_changed_number"}),
            );
        }
        _ => {
            if raw.is_null() && kind != "unsupported" {
                return Err(ControlError::invalid(
                    format!("message.{kind}"),
                    format!("a {kind} message needs a '{kind}' object"),
                ));
            }
            let (c, f) = content(&kind, &raw)?;
            file = f;
            message.insert(kind.clone(), c);
        }
    }
    if kind == "unsupported" {
        // One-to-one: 131051; in groups Meta reports 130501.
        let code = if req.group_id.is_some() { 130_501 } else { 131_051 };
        let (title, details, _) = catalogue(code);
        // Meta's group example words `message` apart from the title (`groups-messaging.mdx`).
        let text = if code == 130_501 { "Message type is not currently supported" } else { title };
        message.insert(
            "errors".into(),
            json!([{"code": code, "title": title, "message": text, "error_data": {"details": details}}]),
        );
    }
    // Replies to business messages say which; interactive and quick-reply answers always do.
    let needs_context = matches!(kind.as_str(), "interactive" | "button");
    let context_id = match context.as_ref().and_then(|c| c.id.clone()) {
        Some(id) => {
            if !state.sent_from(&req.phone_number_id, &id) {
                return Err(ControlError::invalid("message.context.id", "is not a message this number sent"));
            }
            if !sent_to(&state, &req.phone_number_id, &id, &from, Some(user_id.as_str()), req.group_id.as_deref()) {
                return Err(ControlError::invalid(
                    "message.context.id",
                    "is a message this number sent to someone else; a customer can only answer what they received",
                ));
            }
            Some(id)
        }
        None if needs_context => Some(state.last_sent_to(&req.phone_number_id, &from).ok_or_else(|| {
            ControlError::invalid(
                "message.context.id",
                format!("a {kind} reply answers a business message, and this number sent none to {from}"),
            )
        })?),
        None => None,
    };
    let mut ctx = Map::new();
    if let Some(id) = context_id {
        ctx.insert("from".into(), json!(business));
        ctx.insert("id".into(), json!(id));
    }
    if let Some(c) = context {
        if c.forwarded == Some(true) && c.frequently_forwarded == Some(true) {
            // Meta sends one or the other: forwarded up to five times, or more often.
            return Err(ControlError::invalid(
                "message.context",
                "forwarded and frequently_forwarded exclude each other",
            ));
        }
        if c.forwarded == Some(true) {
            ctx.insert("forwarded".into(), json!(true));
        }
        if c.frequently_forwarded == Some(true) {
            ctx.insert("frequently_forwarded".into(), json!(true));
        }
        if let Some(p) = c.referred_product {
            ctx.insert("referred_product".into(), json!(p));
        }
    }
    if !ctx.is_empty() {
        message.insert("context".into(), Value::Object(ctx));
    }
    if let Some(r) = referral {
        if !["ad", "post"].contains(&r.source_type.as_str()) {
            return Err(ControlError::invalid("message.referral.source_type", "must be \"ad\" or \"post\""));
        }
        if !["image", "video"].contains(&r.media_type.as_str()) {
            return Err(ControlError::invalid("message.referral.media_type", "must be \"image\" or \"video\""));
        }
        let mut o = Map::new();
        o.insert("source_url".into(), json!(r.source_url));
        o.insert("source_id".into(), json!(r.source_id));
        o.insert("source_type".into(), json!(r.source_type));
        o.insert("body".into(), json!(r.body));
        o.insert("headline".into(), json!(r.headline));
        o.insert("media_type".into(), json!(r.media_type));
        put_opt(
            &mut o,
            &[
                ("image_url", &r.image_url),
                ("video_url", &r.video_url),
                ("thumbnail_url", &r.thumbnail_url),
                ("ctwa_clid", &r.ctwa_clid),
            ],
        );
        if let Some(w) = r.welcome_message {
            o.insert("welcome_message".into(), w);
        }
        message.insert("referral".into(), Value::Object(o));
    }
    message.insert("type".into(), json!(kind));

    // Nothing below refuses: the request takes effect.
    // Every messages webhook names the user's BSUID (`business-scoped-user-ids.mdx`).
    let user = state.remember_user(&from, req.user_id.as_deref(), &name);
    let media_id = file.map(|f| {
        let content = message.get_mut(&kind).expect("a media message has its content");
        f.store(&state, &base, &req.phone_number_id, content)
    });
    let message = Value::Object(message);
    let mut value = json!({ "messages": [message] });
    // System messages come without the sender's profile.
    if kind != "system" {
        value["contacts"] = json!([user.contact(&from)]);
    }
    // A customer's message opens the 24-hour window (a group has none; a number change is not a
    // message).
    if req.group_id.is_none() && kind != "system" {
        state.note_inbound(&req.phone_number_id, &from, now);
    }
    webhook::push_messages(&state, &req.phone_number_id, Duration::ZERO, value);
    let mut answer = json!({"wamid": wamid, "message": message});
    if let Some(id) = media_id {
        answer["media_id"] = json!(id);
    }
    Ok(axum::Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    /// The customer's phone number.
    wa_id: String,
}

fn member(body: &[u8]) -> Result<String, ControlError> {
    let m: Member = parse(body, "group member")?;
    let wa_id = ids::digits_only(&m.wa_id);
    if !(7..=15).contains(&wa_id.len()) {
        return Err(ControlError::invalid("wa_id", "must be the customer's phone number"));
    }
    Ok(wa_id)
}

/// A customer follows the group's invite link: joins (`group_participants_add`) or, when the
/// group requires approval, asks to (`group_join_request_created`).
async fn join_group(
    AxState(state): AxState<Shared>,
    Path(group_id): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let wa_id = member(&body)?;
    match groups::join(&state, &group_id, &wa_id).map_err(|e| ControlError::invalid("group_id", e))? {
        groups::Joined::Member => Ok(axum::Json(json!({"joined": true})).into_response()),
        groups::Joined::Requested(id) => {
            Ok(axum::Json(json!({"joined": false, "join_request_id": id})).into_response())
        }
    }
}

/// A customer leaves the group (`group_participants_remove`, initiated by the participant).
async fn leave_group(
    AxState(state): AxState<Shared>,
    Path(group_id): Path<String>,
    ControlBody(body): ControlBody,
) -> Result<Response, ControlError> {
    let wa_id = member(&body)?;
    groups::leave(&state, &group_id, &wa_id).map_err(|e| ControlError::invalid("group_id", e))?;
    Ok(axum::Json(json!({"left": true})).into_response())
}
