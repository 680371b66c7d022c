//! `template` messages: a template by name and language, with the values of its variables;
//! checked against the template itself when wagate knows it ([`Template::check_against`]), or
//! built from the simple form ([`SimpleTemplate::build`]).

mod check;
mod shape;
mod simple;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Validate;
use super::de::{NumOrStr, tagged};
use super::location::Location;
use super::media::{DocumentRef, MediaRef};
use super::rules::{count, http_url, idx, key, one_of, text, unique};
use crate::validation::FieldError;
pub use check::BODY_RENDERED_MAX;
use check::{Form, Given, GivenButton, Slot};
pub use shape::{Button, ButtonValue, Header, ParameterFormat, Shape, variables};
pub use simple::{SimpleCard, SimpleTemplate, is_simple};

pub const NAME_MAX: usize = 512;
/// A text variable's value; header values count against the header's 60 characters, URL
/// button values against the URL's 2000.
pub const TEXT_PARAM_MAX: usize = 32_768;
pub const HEADER_TEXT_MAX: usize = 60;
pub const URL_PARAM_MAX: usize = 2000;
/// Coupon codes: 20 characters since December 2025 (Meta's coupon-template page).
pub const COUPON_CODE_MAX: usize = 20;
pub const CARDS_MIN: usize = 2;
pub const CARDS_MAX: usize = 10;
const BUTTON_SUB_TYPES: &[&str] = &["quick_reply", "url", "copy_code", "flow", "mpm", "catalog"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The approved template's name: lowercase letters, digits and underscores.
    pub name: String,
    pub language: Language,
    /// Values of the template's variables, media headers and dynamic buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Language {
    /// `en_US`, `pt_BR`, `de`, …
    pub code: String,
    /// `deterministic`, the only policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

/// One component's values, by the component's `type`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Component {
    Header(Parameters),
    Body(Parameters),
    Button(ButtonComponent),
    Carousel(CarouselComponent),
    LimitedTimeOffer(Parameters),
    TapTargetConfiguration(Parameters),
}

tagged!(Component, "type", {
    "header" => Header(Parameters),
    "body" => Body(Parameters),
    "button" => Button(ButtonComponent),
    "carousel" => Carousel(CarouselComponent),
    "limited_time_offer" => LimitedTimeOffer(Parameters),
    "tap_target_configuration" => TapTargetConfiguration(Parameters),
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    pub parameters: Vec<Parameter>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ButtonComponent {
    /// `quick_reply`, `url`, `copy_code`, `flow`, `mpm` or `catalog` (any case, kept as given).
    pub sub_type: String,
    /// The button's position, 0 to 9; Meta's docs write it as a number or a string.
    pub index: NumOrStr,
    /// Catalog buttons may leave them out (the first catalog item's image is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CarouselComponent {
    /// As many cards as the template defines (2 to 10).
    pub cards: Vec<Card>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub card_index: u32,
    /// Header, body and buttons of the card (a card holds no carousel of its own).
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub components: Vec<Component>,
}

/// One variable's value, by its `type`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Parameter {
    Text(TextParam),
    Currency(CurrencyParam),
    DateTime(DateTimeParam),
    Image(ImageParam),
    Video(VideoParam),
    Document(DocumentParam),
    Location(LocationParam),
    Product(ProductParam),
    Payload(PayloadParam),
    CouponCode(CouponCodeParam),
    Action(ActionParam),
    LimitedTimeOffer(LimitedTimeOfferParam),
    TapTargetConfiguration(TapTargetParam),
    GroupId(GroupIdParam),
}

tagged!(Parameter, "type", {
    "text" => Text(TextParam),
    "currency" => Currency(CurrencyParam),
    "date_time" => DateTime(DateTimeParam),
    "image" => Image(ImageParam),
    "video" => Video(VideoParam),
    "document" => Document(DocumentParam),
    "location" => Location(LocationParam),
    "product" => Product(ProductParam),
    "payload" => Payload(PayloadParam),
    "coupon_code" => CouponCode(CouponCodeParam),
    "action" => Action(ActionParam),
    "limited_time_offer" => LimitedTimeOffer(LimitedTimeOfferParam),
    "tap_target_configuration" => TapTargetConfiguration(TapTargetParam),
    "group_id" => GroupId(GroupIdParam),
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TextParam {
    pub text: String,
    /// Named templates (`{{first_name}}`) name each value; positional ones never do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CurrencyParam {
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Currency {
    pub fallback_value: String,
    /// ISO 4217 (`USD`).
    pub code: String,
    /// The amount times 1000.
    pub amount_1000: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DateTimeParam {
    pub date_time: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
}

/// Cloud API always shows `fallback_value`; the other fields are accepted for compatibility.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DateTime {
    pub fallback_value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_month: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day_of_week: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ImageParam {
    pub image: MediaRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VideoParam {
    pub video: MediaRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DocumentParam {
    /// A PDF.
    pub document: DocumentRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LocationParam {
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductParam {
    pub product: Product,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub product_retailer_id: String,
    pub catalog_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PayloadParam {
    /// Sent back in the customer's quick reply.
    pub payload: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CouponCodeParam {
    pub coupon_code: String,
}

/// The action of a flow, multi-product or catalog button.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActionParam {
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub action: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitedTimeOfferParam {
    pub limited_time_offer: LimitedTimeOffer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitedTimeOffer {
    /// When the offer ends, Unix milliseconds.
    pub expiration_time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TapTargetParam {
    pub tap_target_configuration: Vec<TapTarget>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TapTarget {
    pub url: String,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupIdParam {
    /// Replaced by the group's invite link.
    pub group_id: String,
}

impl Parameter {
    fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Currency(_) => "currency",
            Self::DateTime(_) => "date_time",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Document(_) => "document",
            Self::Location(_) => "location",
            Self::Product(_) => "product",
            Self::Payload(_) => "payload",
            Self::CouponCode(_) => "coupon_code",
            Self::Action(_) => "action",
            Self::LimitedTimeOffer(_) => "limited_time_offer",
            Self::TapTargetConfiguration(_) => "tap_target_configuration",
            Self::GroupId(_) => "group_id",
        }
    }

    fn name(&self) -> Option<&String> {
        match self {
            Self::Text(p) => p.parameter_name.as_ref(),
            Self::Currency(p) => p.parameter_name.as_ref(),
            Self::DateTime(p) => p.parameter_name.as_ref(),
            _ => None,
        }
    }

    /// Checks the value; `text_max` is the room a text value has where it stands.
    fn validate(&self, path: &str, text_max: usize) -> Result<(), FieldError> {
        if let Some(name) = self.name() {
            let p = key(path, "parameter_name");
            text(&p, name, 512)?;
            if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(FieldError::new(p, "invalid_value", "must be lowercase letters, digits and underscores"));
            }
        }
        match self {
            Self::Text(p) => text(&key(path, "text"), &p.text, text_max),
            Self::Currency(p) => {
                let c = key(path, "currency");
                text(&key(&c, "fallback_value"), &p.currency.fallback_value, 1024)?;
                let code = &p.currency.code;
                if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(FieldError::new(
                        key(&c, "code"),
                        "invalid_value",
                        "must be an ISO 4217 code such as USD",
                    ));
                }
                Ok(())
            }
            Self::DateTime(p) => {
                text(&key(&key(path, "date_time"), "fallback_value"), &p.date_time.fallback_value, 1024)
            }
            Self::Image(p) => p.image.validate(&key(path, "image")),
            Self::Video(p) => p.video.validate(&key(path, "video")),
            Self::Document(p) => p.document.validate(&key(path, "document")),
            Self::Location(p) => p.location.validate(&key(path, "location")),
            Self::Product(p) => {
                let pp = key(path, "product");
                text(&key(&pp, "product_retailer_id"), &p.product.product_retailer_id, 256)?;
                text(&key(&pp, "catalog_id"), &p.product.catalog_id, 128)
            }
            Self::Payload(p) => text(&key(path, "payload"), &p.payload, 4096),
            Self::CouponCode(p) => {
                let cp = key(path, "coupon_code");
                text(&cp, &p.coupon_code, COUPON_CODE_MAX)?;
                if p.coupon_code.chars().all(|c| c.is_ascii_alphanumeric()) {
                    Ok(())
                } else {
                    Err(FieldError::new(cp, "invalid_value", "must be letters and digits only"))
                }
            }
            Self::Action(_) => Ok(()),
            Self::LimitedTimeOffer(p) => {
                if p.limited_time_offer.expiration_time_ms > 0 {
                    Ok(())
                } else {
                    Err(FieldError::new(
                        key(&key(path, "limited_time_offer"), "expiration_time_ms"),
                        "range",
                        "must be a positive Unix time in milliseconds",
                    ))
                }
            }
            Self::TapTargetConfiguration(p) => {
                let tp = key(path, "tap_target_configuration");
                count(&tp, p.tap_target_configuration.len(), 1, 1, "tap targets")?;
                let t = &p.tap_target_configuration[0];
                http_url(&key(&idx(&tp, 0), "url"), &t.url)?;
                text(&key(&idx(&tp, 0), "title"), &t.title, 256)
            }
            Self::GroupId(p) => text(&key(path, "group_id"), &p.group_id, 512),
        }
    }
}

/// Checks `params`, each of a type in `allowed`, text values within `text_max`; either every
/// value is named or none is (Meta answers 132012 to a mix).
fn parameters(path: &str, params: &[Parameter], allowed: &[&str], text_max: usize) -> Result<(), FieldError> {
    let named = params.iter().filter(|p| p.name().is_some()).count();
    for (i, p) in params.iter().enumerate() {
        let pp = idx(path, i);
        if !allowed.contains(&p.kind()) {
            return Err(FieldError::new(
                key(&pp, "type"),
                "invalid_value",
                format!("'{}' is not taken here (one of: {})", p.kind(), allowed.join(", ")),
            ));
        }
        let nameable = matches!(p, Parameter::Text(_) | Parameter::Currency(_) | Parameter::DateTime(_));
        if nameable && named > 0 && p.name().is_none() {
            return Err(FieldError::new(
                key(&pp, "parameter_name"),
                "parameter_format",
                "is required: the other values of this component are named, and a template is either named or positional",
            ));
        }
        p.validate(&pp, text_max)?;
    }
    Ok(())
}

impl ButtonComponent {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        let sub_type = self.sub_type.to_ascii_lowercase();
        one_of(&key(path, "sub_type"), &sub_type, BUTTON_SUB_TYPES)?;
        match self.index.as_u64() {
            Some(i) if i <= 9 => {}
            _ => return Err(FieldError::new(key(path, "index"), "range", "must be a button position from 0 to 9")),
        }
        let params = key(path, "parameters");
        let (allowed, text_max): (&[&str], usize) = match sub_type.as_str() {
            "quick_reply" => (&["payload"], 0),
            "url" => (&["text"], URL_PARAM_MAX),
            "copy_code" => (&["coupon_code"], 0),
            _ => (&["action"], 0),
        };
        match &self.parameters {
            None if sub_type == "catalog" => Ok(()),
            None => Err(FieldError::required(params)),
            Some(list) => {
                count(&params, list.len(), 1, 1, "parameters")?;
                parameters(&params, list, allowed, text_max)
            }
        }
    }
}

fn components(path: &str, list: &[Component], in_card: bool) -> Result<(), FieldError> {
    let (mut headers, mut bodies) = (0, 0);
    let mut indexes = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let p = idx(path, i);
        match c {
            Component::Header(h) => {
                headers += 1;
                if headers > 1 {
                    return Err(FieldError::new(key(&p, "type"), "unique", "there is one header"));
                }
                let pp = key(&p, "parameters");
                count(&pp, h.parameters.len(), 1, 1, "parameters")?;
                let allowed: &[&str] = if in_card {
                    &["image", "video", "product"]
                } else {
                    &["text", "image", "video", "document", "location", "product"]
                };
                parameters(&pp, &h.parameters, allowed, HEADER_TEXT_MAX)?;
            }
            Component::Body(b) => {
                bodies += 1;
                if bodies > 1 {
                    return Err(FieldError::new(key(&p, "type"), "unique", "there is one body"));
                }
                let pp = key(&p, "parameters");
                // Meta's spec sets no minimum, and clients send a body of a template without
                // variables as `"parameters": []` (ChakraHQ's documented example does).
                count(&pp, b.parameters.len(), 0, 100, "parameters")?;
                parameters(&pp, &b.parameters, &["text", "currency", "date_time", "group_id"], TEXT_PARAM_MAX)?;
            }
            Component::Button(b) => {
                b.validate(&p)?;
                indexes.push((key(&p, "index"), b.index.to_string()));
            }
            Component::Carousel(c) if !in_card => {
                let cards = key(&p, "cards");
                count(&cards, c.cards.len(), CARDS_MIN, CARDS_MAX, "cards")?;
                let mut seen = Vec::new();
                for (j, card) in c.cards.iter().enumerate() {
                    let cp = idx(&cards, j);
                    if card.card_index > 9 {
                        return Err(FieldError::new(key(&cp, "card_index"), "range", "must be between 0 and 9"));
                    }
                    seen.push((key(&cp, "card_index"), card.card_index.to_string()));
                    components(&key(&cp, "components"), &card.components, true)?;
                }
                unique(seen.iter().map(|(p, v)| (p.clone(), v.as_str())), "card index")?;
            }
            Component::LimitedTimeOffer(o) if !in_card => {
                let pp = key(&p, "parameters");
                count(&pp, o.parameters.len(), 1, 1, "parameters")?;
                parameters(&pp, &o.parameters, &["limited_time_offer"], 0)?;
            }
            Component::TapTargetConfiguration(t) if !in_card => {
                let pp = key(&p, "parameters");
                count(&pp, t.parameters.len(), 1, 1, "parameters")?;
                parameters(&pp, &t.parameters, &["tap_target_configuration"], 0)?;
            }
            _ => return Err(FieldError::new(key(&p, "type"), "invalid_value", "is not taken inside a carousel card")),
        }
    }
    unique(indexes.iter().map(|(p, v)| (p.clone(), v.as_str())), "button index")
}

impl Validate for Template {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        let name = key(path, "name");
        text(&name, &self.name, NAME_MAX)?;
        if !self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(FieldError::new(name, "invalid_value", "must be lowercase letters, digits and underscores"));
        }
        let lang = key(path, "language");
        let code = &self.language.code;
        let (base, region) = code.split_once('_').unwrap_or((code, ""));
        let ok_base = (2..=3).contains(&base.len()) && base.bytes().all(|b| b.is_ascii_lowercase());
        let ok_region =
            region.is_empty() || ((2..=4).contains(&region.len()) && region.bytes().all(|b| b.is_ascii_alphabetic()));
        if !ok_base || !ok_region {
            return Err(FieldError::new(
                key(&lang, "code"),
                "invalid_value",
                "must be a language code such as en_US or de",
            ));
        }
        if let Some(policy) = &self.language.policy {
            one_of(&key(&lang, "policy"), policy, &["deterministic"])?;
        }
        match &self.components {
            Some(list) => components(&key(path, "components"), list, false),
            None => Ok(()),
        }
    }
}

impl Template {
    /// Checks this send against the template it names, shaped `shape`; the template as the
    /// customer will see it. `base` is where the template object stands (`template`).
    pub fn check_against(&self, shape: &Shape, base: &str) -> Result<Value, FieldError> {
        let given = given_of(self.components.as_deref().unwrap_or_default(), &key(base, "components"));
        check::check(&self.name, shape, &given)
    }
}

/// What Meta's components give, each value at its path under `path` (a `components` array).
fn given_of(list: &[Component], path: &str) -> Given {
    let mut given = Given::new(Form::Meta { components: path.to_owned() });
    for (i, c) in list.iter().enumerate() {
        let at = idx(path, i);
        let params = key(&at, "parameters");
        let slots = |list: &[Parameter]| -> Vec<Slot> {
            list.iter()
                .enumerate()
                .map(|(j, p)| Slot { path: idx(&params, j), param: p.clone(), bare: false, keyed: false })
                .collect()
        };
        match c {
            Component::Header(h) => given.header = slots(&h.parameters).into_iter().next(),
            Component::Body(b) => {
                given.body_path = Some(params.clone());
                given.body = slots(&b.parameters);
            }
            Component::Button(b) => given.buttons.push(GivenButton {
                path: at.clone(),
                sub_type_path: Some(key(&at, "sub_type")),
                index: b.index.as_u64().unwrap_or(u64::MAX),
                sub_type: b.sub_type.to_ascii_lowercase(),
                value: b.parameters.as_deref().and_then(|p| slots(p).into_iter().next()),
            }),
            Component::Carousel(c) => {
                let cards = key(&at, "cards");
                let list = c
                    .cards
                    .iter()
                    .enumerate()
                    .map(|(j, card)| {
                        let card_path = idx(&cards, j);
                        let inner = given_of(&card.components, &key(&card_path, "components"));
                        (key(&card_path, "card_index"), u64::from(card.card_index), inner)
                    })
                    .collect();
                given.cards = Some((cards, list));
            }
            _ => {}
        }
    }
    given
}

/// A stored template's status allows sending it: `APPROVED` only. `path` names the template.
pub fn check_status(path: &str, name: &str, language: &str, status: &str) -> Result<(), FieldError> {
    match status {
        "APPROVED" => Ok(()),
        "PAUSED" => Err(FieldError::new(
            path,
            "template_paused",
            format!(
                "{name} ({language}) is paused by Meta for low quality and cannot be sent until it is edited and approved again"
            ),
        )),
        "DISABLED" => Err(FieldError::new(
            path,
            "template_disabled",
            format!("{name} ({language}) was disabled by Meta for low quality and can no longer be sent"),
        )),
        other => Err(FieldError::new(
            path,
            "template_not_approved",
            format!("{name} ({language}) is {other}; only APPROVED templates can be sent"),
        )),
    }
}

/// A native send's `template`: Meta's object, or the simple form (see [`is_simple`]).
#[derive(Clone, Debug, PartialEq)]
pub enum TemplateSend {
    Meta(Template),
    Simple(SimpleTemplate),
}

impl<'de> Deserialize<'de> for TemplateSend {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        if is_simple(&Value::Object(map.clone())) {
            super::de::variant::<SimpleTemplate, D::Error>(map).map(Self::Simple)
        } else {
            super::de::variant::<Template, D::Error>(map).map(Self::Meta)
        }
    }
}

/// The template a send names: the simple form's stands without components until they are built.
impl From<TemplateSend> for Template {
    fn from(t: TemplateSend) -> Self {
        match t {
            TemplateSend::Meta(t) => t,
            TemplateSend::Simple(s) => {
                Template { name: s.name, language: Language { code: s.language, policy: None }, components: None }
            }
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TemplateSend {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::OneOfBuilder;
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("Template"))
            .item(utoipa::openapi::Ref::from_schema_name("SimpleTemplate"))
            .description(Some(
                "Meta's template object, or the simple form: `{\"name\", \"language\": \"en_US\", \"params\", \"header\", \"buttons\", \"cards\"}`",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TemplateSend {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("Template".into(), <Template as utoipa::PartialSchema>::schema()));
        <Template as utoipa::ToSchema>::schemas(schemas);
        schemas.push(("SimpleTemplate".into(), <SimpleTemplate as utoipa::PartialSchema>::schema()));
        <SimpleTemplate as utoipa::ToSchema>::schemas(schemas);
    }
}
