//! `interactive` messages: reply buttons, lists, call-to-action URLs, flows, location requests,
//! single- and multi-product messages, catalogs, carousels, address requests, call permission
//! requests, and Meta's payment order messages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Validate;
use super::de::tagged;
use super::media::{DocumentRef, MediaRef};
use super::rules::{count, forbidden, http_url, idx, key, one_of, opt_text, required, text, unique};
use crate::validation::FieldError;

mod catalog;

pub use catalog::*;

pub const HEADER_TEXT_MAX: usize = 60;
pub const BODY_MAX: usize = 1024;
/// Meta's list-message page allows 4096; the OpenAPI spec's generic body says 1024. The docs
/// page wins (DESIGN.md).
pub const LIST_BODY_MAX: usize = 4096;
pub const FOOTER_MAX: usize = 60;
pub const REPLY_BUTTONS_MAX: usize = 3;
pub const BUTTON_TITLE_MAX: usize = 20;
pub const BUTTON_ID_MAX: usize = 256;
pub const LIST_BUTTON_MAX: usize = 20;
pub const LIST_SECTIONS_MAX: usize = 10;
/// Meta's docs: 10 rows across all sections (the OpenAPI spec says 10 per section).
pub const LIST_ROWS_MAX: usize = 10;
pub const SECTION_TITLE_MAX: usize = 24;
pub const ROW_ID_MAX: usize = 200;
pub const ROW_TITLE_MAX: usize = 24;
pub const ROW_DESCRIPTION_MAX: usize = 72;
pub const CTA_DISPLAY_TEXT_MAX: usize = 20;
pub const FLOW_CTA_MAX: usize = 30;
/// Product lists: 30 products; Meta's multi-product docs count them across all sections.
pub const PRODUCT_ITEMS_MAX: usize = 30;
pub const CAROUSEL_CARDS_MIN: usize = 2;
pub const CAROUSEL_CARDS_MAX: usize = 10;
pub const CARD_BODY_MAX: usize = 160;

/// `header`: text, or an image, video or document.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Header {
    Text(TextHeader),
    Image(ImageHeader),
    Video(VideoHeader),
    Document(DocumentHeader),
}

tagged!(Header, "type", {
    "text" => Text(TextHeader),
    "image" => Image(ImageHeader),
    "video" => Video(VideoHeader),
    "document" => Document(DocumentHeader),
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TextHeader {
    /// Up to 60 characters.
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageHeader {
    pub image: MediaRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VideoHeader {
    pub video: MediaRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentHeader {
    pub document: DocumentRef,
}

impl Header {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        match self {
            Self::Text(t) => {
                text(&key(path, "text"), &t.text, HEADER_TEXT_MAX)?;
                opt_text(&key(path, "sub_text"), t.sub_text.as_ref(), HEADER_TEXT_MAX)
            }
            Self::Image(h) => h.image.validate(&key(path, "image")),
            Self::Video(h) => h.video.validate(&key(path, "video")),
            Self::Document(h) => h.document.validate(&key(path, "document")),
        }
    }
}

/// `body` or `footer`: `{"text": "..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TextObject {
    pub text: String,
}

fn body(path: &str, b: &TextObject, max: usize) -> Result<(), FieldError> {
    text(&key(&key(path, "body"), "text"), &b.text, max)
}

fn footer(path: &str, f: Option<&TextObject>) -> Result<(), FieldError> {
    f.map_or(Ok(()), |f| text(&key(&key(path, "footer"), "text"), &f.text, FOOTER_MAX))
}

fn header(path: &str, h: Option<&Header>) -> Result<(), FieldError> {
    h.map_or(Ok(()), |h| h.validate(&key(path, "header")))
}

/// An action identified only by its `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NamedAction {
    pub name: String,
}

fn action_name(path: &str, name: &str, expected: &str) -> Result<(), FieldError> {
    one_of(&key(&key(path, "action"), "name"), name, &[expected])
}

/// The interactive object, by its `type`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Interactive {
    Button(ButtonMessage),
    List(ListMessage),
    CtaUrl(CtaUrlMessage),
    Flow(FlowMessage),
    LocationRequestMessage(LocationRequestMessage),
    Product(ProductMessage),
    ProductList(ProductListMessage),
    CatalogMessage(CatalogMessage),
    Carousel(CarouselMessage),
    AddressMessage(AddressMessage),
    CallPermissionRequest(CallPermissionRequest),
    /// Payments (India): passed to Meta as given, beyond a body and an action.
    OrderDetails(OrderMessage),
    OrderStatus(OrderMessage),
}

tagged!(Interactive, "type", {
    "button" => Button(ButtonMessage),
    "list" => List(ListMessage),
    "cta_url" => CtaUrl(CtaUrlMessage),
    "flow" => Flow(FlowMessage),
    "location_request_message" => LocationRequestMessage(LocationRequestMessage),
    "product" => Product(ProductMessage),
    "product_list" => ProductList(ProductListMessage),
    "catalog_message" => CatalogMessage(CatalogMessage),
    "carousel" => Carousel(CarouselMessage),
    "address_message" => AddressMessage(AddressMessage),
    "call_permission_request" => CallPermissionRequest(CallPermissionRequest),
    "order_details" => OrderDetails(OrderMessage),
    "order_status" => OrderStatus(OrderMessage),
});

impl Validate for Interactive {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        match self {
            Self::Button(m) => m.validate(path),
            Self::List(m) => m.validate(path),
            Self::CtaUrl(m) => m.validate(path),
            Self::Flow(m) => m.validate(path),
            Self::LocationRequestMessage(m) => {
                body(path, &m.body, BODY_MAX)?;
                action_name(path, &m.action.name, "send_location")
            }
            Self::Product(m) => m.validate(path),
            Self::ProductList(m) => m.validate(path),
            Self::CatalogMessage(m) => m.validate(path),
            Self::Carousel(m) => m.validate(path),
            Self::AddressMessage(m) => m.validate(path),
            Self::CallPermissionRequest(m) => {
                body(path, &m.body, BODY_MAX)?;
                action_name(path, &m.action.name, "call_permission_request")
            }
            Self::OrderDetails(m) | Self::OrderStatus(m) => m.validate(path),
        }
    }
}

// Reply buttons.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ButtonMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: ButtonAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ButtonAction {
    /// 1 to 3 buttons.
    pub buttons: Vec<ReplyButton>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Always `reply`.
    #[serde(rename = "type")]
    pub kind: String,
    pub reply: Reply,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// Up to 256 characters, unique; sent back in the customer's reply.
    pub id: String,
    /// Up to 20 characters, unique.
    pub title: String,
}

impl ButtonMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        header(path, self.header.as_ref())?;
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        let buttons = key(&key(path, "action"), "buttons");
        count(&buttons, self.action.buttons.len(), 1, REPLY_BUTTONS_MAX, "buttons")?;
        for (i, b) in self.action.buttons.iter().enumerate() {
            let p = idx(&buttons, i);
            one_of(&key(&p, "type"), &b.kind, &["reply"])?;
            let id = key(&key(&p, "reply"), "id");
            text(&id, &b.reply.id, BUTTON_ID_MAX)?;
            if b.reply.id.trim() != b.reply.id {
                return Err(FieldError::new(id, "invalid_value", "must not start or end with spaces"));
            }
            text(&key(&key(&p, "reply"), "title"), &b.reply.title, BUTTON_TITLE_MAX)?;
        }
        let at = |i: usize, field: &str| key(&key(&idx(&buttons, i), "reply"), field);
        let buttons = &self.action.buttons;
        unique(buttons.iter().enumerate().map(|(i, b)| (at(i, "id"), b.reply.id.as_str())), "button id")?;
        unique(buttons.iter().enumerate().map(|(i, b)| (at(i, "title"), b.reply.title.as_str())), "button title")
    }
}

// Lists.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListMessage {
    /// Text only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: ListAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListAction {
    /// The label of the button that opens the list, up to 20 characters.
    pub button: String,
    pub sections: Vec<ListSection>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    /// Up to 24 characters; required when there is more than one section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<Row>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn section_titles<'a>(path: &str, titles: impl ExactSizeIterator<Item = Option<&'a String>>) -> Result<(), FieldError> {
    let several = titles.len() > 1;
    for (i, title) in titles.enumerate() {
        let p = key(&idx(path, i), "title");
        match title {
            Some(t) => text(&p, t, SECTION_TITLE_MAX)?,
            None if several => return Err(required(&p, "when there is more than one section")),
            None => {}
        }
    }
    Ok(())
}

impl ListMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        if let Some(h) = &self.header {
            if !matches!(h, Header::Text(_)) {
                return Err(FieldError::new(
                    key(&key(path, "header"), "type"),
                    "invalid_value",
                    "must be text in a list",
                ));
            }
            h.validate(&key(path, "header"))?;
        }
        body(path, &self.body, LIST_BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        let action = key(path, "action");
        text(&key(&action, "button"), &self.action.button, LIST_BUTTON_MAX)?;
        let sections = key(&action, "sections");
        count(&sections, self.action.sections.len(), 1, LIST_SECTIONS_MAX, "sections")?;
        section_titles(&sections, self.action.sections.iter().map(|s| s.title.as_ref()))?;
        let rows: usize = self.action.sections.iter().map(|s| s.rows.len()).sum();
        if rows == 0 {
            return Err(FieldError::new(key(&idx(&sections, 0), "rows"), "min_items", "must have at least 1 row"));
        }
        if rows > LIST_ROWS_MAX {
            return Err(FieldError::new(
                &sections,
                "max_items",
                format!("must have at most {LIST_ROWS_MAX} rows across all sections, got {rows}"),
            ));
        }
        let mut ids = Vec::new();
        for (s, section) in self.action.sections.iter().enumerate() {
            for (r, row) in section.rows.iter().enumerate() {
                let p = idx(&key(&idx(&sections, s), "rows"), r);
                text(&key(&p, "id"), &row.id, ROW_ID_MAX)?;
                text(&key(&p, "title"), &row.title, ROW_TITLE_MAX)?;
                opt_text(&key(&p, "description"), row.description.as_ref(), ROW_DESCRIPTION_MAX)?;
                ids.push((key(&p, "id"), row.id.as_str()));
            }
        }
        unique(ids, "row id")
    }
}

// Call-to-action URL.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtaUrlMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: CtaUrlAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtaUrlAction {
    /// Always `cta_url`.
    pub name: String,
    pub parameters: CtaUrlParameters,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CtaUrlParameters {
    /// The button's label, up to 20 characters.
    pub display_text: String,
    pub url: String,
}

impl CtaUrlAction {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        one_of(&key(path, "name"), &self.name, &["cta_url"])?;
        let p = key(path, "parameters");
        text(&key(&p, "display_text"), &self.parameters.display_text, CTA_DISPLAY_TEXT_MAX)?;
        http_url(&key(&p, "url"), &self.parameters.url)
    }
}

impl CtaUrlMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        header(path, self.header.as_ref())?;
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        self.action.validate(&key(path, "action"))
    }
}

// Flows.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: FlowAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowAction {
    /// Always `flow`.
    pub name: String,
    pub parameters: FlowParameters,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowParameters {
    /// Always `3`.
    pub flow_message_version: String,
    /// The button's label, up to 30 characters.
    pub flow_cta: String,
    /// Exactly one of `flow_id` and `flow_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_name: Option<String>,
    /// `draft` or `published` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_token: Option<String>,
    /// `navigate` (default) or `data_exchange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action: Option<String>,
    /// Only with `navigate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_action_payload: Option<FlowActionPayload>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FlowActionPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// When given, not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Map<String, Value>>,
}

impl FlowMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        header(path, self.header.as_ref())?;
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        action_name(path, &self.action.name, "flow")?;
        let p = key(&key(path, "action"), "parameters");
        let f = &self.action.parameters;
        one_of(&key(&p, "flow_message_version"), &f.flow_message_version, &["3"])?;
        text(&key(&p, "flow_cta"), &f.flow_cta, FLOW_CTA_MAX)?;
        match (&f.flow_id, &f.flow_name) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    key(&p, "flow_name"),
                    "one_of",
                    "give either flow_id or flow_name, not both",
                ));
            }
            (None, None) => return Err(required(&key(&p, "flow_id"), "(or flow_name)")),
            (Some(id), None) => text(&key(&p, "flow_id"), id, 128)?,
            (None, Some(name)) => text(&key(&p, "flow_name"), name, 256)?,
        }
        if let Some(mode) = &f.mode {
            one_of(&key(&p, "mode"), mode, &["draft", "published"])?;
        }
        opt_text(&key(&p, "flow_token"), f.flow_token.as_ref(), 1024)?;
        if let Some(a) = &f.flow_action {
            one_of(&key(&p, "flow_action"), a, &["navigate", "data_exchange"])?;
        }
        if let Some(payload) = &f.flow_action_payload {
            let pp = key(&p, "flow_action_payload");
            if f.flow_action.as_deref() == Some("data_exchange") {
                return Err(forbidden(&pp, "when flow_action is data_exchange"));
            }
            opt_text(&key(&pp, "screen"), payload.screen.as_ref(), 256)?;
            if payload.data.as_ref().is_some_and(Map::is_empty) {
                return Err(FieldError::new(key(&pp, "data"), "min_items", "must not be empty when given"));
            }
        }
        Ok(())
    }
}

// Location request.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LocationRequestMessage {
    pub body: TextObject,
    /// `{"name": "send_location"}`.
    pub action: NamedAction,
}

// Address requests (India).

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddressMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: TextObject,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<TextObject>,
    pub action: AddressAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddressAction {
    /// Always `address_message`.
    pub name: String,
    pub parameters: AddressParameters,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddressParameters {
    /// ISO 3166 country code (`IN`).
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub values: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Object>>))]
    pub saved_addresses: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub validation_errors: Option<Map<String, Value>>,
}

impl AddressMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        header(path, self.header.as_ref())?;
        body(path, &self.body, BODY_MAX)?;
        footer(path, self.footer.as_ref())?;
        action_name(path, &self.action.name, "address_message")?;
        let country = key(&key(&key(path, "action"), "parameters"), "country");
        let c = &self.action.parameters.country;
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(country, "invalid_value", "must be a two-letter ISO country code such as IN"));
        }
        Ok(())
    }
}

// Call permission requests.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CallPermissionRequest {
    pub body: TextObject,
    /// `{"name": "call_permission_request"}`.
    pub action: NamedAction,
}

// Payment orders.

/// `order_details` and `order_status` (payments in India): only documented by example, so kept
/// as given once a body and an action are there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderMessage {
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
}

impl OrderMessage {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        match self.fields.get("body").and_then(|b| b.get("text")).and_then(Value::as_str) {
            Some(t) => text(&key(&key(path, "body"), "text"), t, BODY_MAX)?,
            None => return Err(FieldError::required(key(&key(path, "body"), "text"))),
        }
        match self.fields.get("action") {
            Some(Value::Object(a)) if a.contains_key("name") => Ok(()),
            _ => Err(FieldError::required(key(&key(path, "action"), "name"))),
        }
    }
}
