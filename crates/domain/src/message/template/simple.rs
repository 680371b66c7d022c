//! The simple form of a template send: values by variable, header and button index, from which
//! Meta's components are built for the template they name.
//!
//! `{"name": "order_update", "language": "en_US", "params": {"name": "Ana"} | ["Ana"],
//!   "header": {...}, "buttons": {"0": "ORDER-123"}, "cards": [{...}]}`

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::check::{Form, Given, GivenButton, Slot, check};
use super::shape::{ButtonValue, Header, ParameterFormat, Shape, list_variables};
use super::{ButtonComponent, Card, CarouselComponent, Component, Language, Parameter, Parameters, Template};
use crate::message::de::{NumOrStr, from_value};
use crate::message::rules::{idx, key};
use crate::validation::FieldError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SimpleTemplate {
    pub name: String,
    /// The language's code: `en_US`.
    pub language: String,
    /// The body's values: an array in order for `{{1}}`, `{{2}}`…; an object by name for named
    /// variables. A value is a string, a number, or one of Meta's parameter objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Value>,
    /// The header's value: the text variable's value, or the media (`{"link": …}`,
    /// `{"id": …}`, `{"image": {…}}` or a full parameter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub header: Option<Value>,
    /// Button values by the button's index: a URL's variable part, a coupon code, a quick
    /// reply's payload, a flow's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub buttons: Option<Map<String, Value>>,
    /// A carousel's cards, in order, each with its own `header`, `params` and `buttons`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cards: Option<Vec<SimpleCard>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SimpleCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub header: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub buttons: Option<Map<String, Value>>,
}

/// Whether a `template` object is in the simple form rather than Meta's: a language given as a
/// string, or any of the simple form's own fields.
pub fn is_simple(template: &Value) -> bool {
    template.get("language").is_some_and(Value::is_string)
        || ["params", "header", "buttons", "cards"].iter().any(|k| template.get(*k).is_some())
}

/// A value given as a string or number, not as a parameter object.
fn is_bare(v: &Value) -> bool {
    v.is_string() || v.is_number()
}

/// A value given as one of Meta's parameter objects (`{"type": "currency", …}`).
fn parameter(path: &str, v: &Value) -> Result<Parameter, FieldError> {
    from_value(path, v)
}

/// A text value: a string, a number, or a parameter object.
fn text_value(path: &str, v: &Value, name: Option<&str>) -> Result<Parameter, FieldError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("type") => {
            let mut p = parameter(path, v)?;
            set_name(&mut p, name);
            return Ok(p);
        }
        _ => {
            return Err(FieldError::new(
                path,
                "invalid_type",
                "must be a string, a number, or a parameter object such as {\"type\": \"currency\", …}",
            ));
        }
    };
    Ok(Parameter::Text(super::TextParam { text, parameter_name: name.map(str::to_owned) }))
}

fn set_name(p: &mut Parameter, name: Option<&str>) {
    let name = name.map(str::to_owned);
    match p {
        Parameter::Text(t) if t.parameter_name.is_none() => t.parameter_name = name,
        Parameter::Currency(c) if c.parameter_name.is_none() => c.parameter_name = name,
        Parameter::DateTime(d) if d.parameter_name.is_none() => d.parameter_name = name,
        _ => {}
    }
}

/// A media header's value: `{"link"|"id": …}`, `{"image": {…}}`, a URL or id string, or a
/// full parameter object.
fn media_value(path: &str, kind: &str, v: &Value) -> Result<Parameter, FieldError> {
    let object = match v {
        Value::Object(o) if o.contains_key("type") => return parameter(path, v),
        Value::Object(o) if o.len() == 1 && o.contains_key(kind) => o[kind].clone(),
        Value::Object(_) => v.clone(),
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => json!({"link": s}),
        // A file uploaded to wagate, or Meta's media id.
        Value::String(s) if crate::id::has_shape(s, crate::id::MediaId::PREFIX) => json!({"media_id": s}),
        Value::String(s) => json!({"id": s}),
        _ => {
            return Err(FieldError::new(
                path,
                "invalid_type",
                format!("must be the {kind}: {{\"link\": …}} or {{\"id\": …}}"),
            ));
        }
    };
    parameter(path, &json!({"type": kind, kind: object}))
}

/// A button's value for a button of `sub_type`.
fn button_value(path: &str, sub_type: &str, v: &Value) -> Result<Parameter, FieldError> {
    if v.get("type").is_some() {
        return parameter(path, v);
    }
    let wrapped = match (sub_type, v) {
        ("url", _) => return text_value(path, v, None),
        ("copy_code", Value::String(s)) => json!({"type": "coupon_code", "coupon_code": s}),
        ("quick_reply", Value::String(s)) => json!({"type": "payload", "payload": s}),
        ("flow", Value::String(s)) => json!({"type": "action", "action": {"flow_token": s}}),
        (_, Value::Object(_)) => json!({"type": "action", "action": v}),
        ("mpm" | "catalog", _) => {
            return Err(FieldError::new(
                path,
                "invalid_type",
                format!("must be the {sub_type} button's action, an object"),
            ));
        }
        _ => {
            return Err(FieldError::new(path, "invalid_type", format!("must be a string for a {sub_type} button")));
        }
    };
    parameter(path, &wrapped)
}

/// The body's values from `params`, each at its path.
fn body_slots(name: &str, shape: &Shape, base: &str, params: Option<&Value>) -> Result<Vec<Slot>, FieldError> {
    let path = key(base, "params");
    let named = shape.format == ParameterFormat::Named;
    match params {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) if !named => list
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Slot {
                    path: idx(&path, i),
                    param: text_value(&idx(&path, i), v, None)?,
                    bare: is_bare(v),
                    keyed: false,
                })
            })
            .collect(),
        Some(Value::Array(_)) => Err(FieldError::new(
            path,
            "template_param_format",
            format!(
                "must be an object by variable name: {name}'s variables are named ({})",
                list_variables(shape.format, &shape.body_variables)
            ),
        )),
        Some(Value::Object(map)) if named => {
            let mut slots = map
                .iter()
                .map(|(k, v)| {
                    let p = key(&path, k);
                    Ok(Slot { param: text_value(&p, v, Some(k))?, path: p, bare: is_bare(v), keyed: true })
                })
                .collect::<Result<Vec<_>, FieldError>>()?;
            // In the template's order, which is how Meta lists them; names it lacks go last.
            let at = |s: &Slot| {
                let name = s.param.name().map(String::as_str);
                shape.body_variables.iter().position(|v| Some(v.as_str()) == name).unwrap_or(usize::MAX)
            };
            slots.sort_by_key(at);
            Ok(slots)
        }
        Some(Value::Object(map)) => {
            // Positional variables may be given by number: {"1": …, "2": …}.
            let mut numbered = Vec::with_capacity(map.len());
            for (k, v) in map {
                let p = key(&path, k);
                let Some(n) = k.parse::<usize>().ok().filter(|n| *n >= 1) else {
                    return Err(FieldError::new(
                        p,
                        "template_param_format",
                        format!(
                            "is not a variable of {name}: its variables are positional ({}); give params as an array",
                            list_variables(shape.format, &shape.body_variables)
                        ),
                    ));
                };
                numbered.push((n, Slot { param: text_value(&p, v, None)?, path: p, bare: is_bare(v), keyed: true }));
            }
            numbered.sort_by_key(|(n, _)| *n);
            if let Some((i, (_, slot))) = numbered.iter().enumerate().find(|(i, (n, _))| *n != i + 1) {
                return Err(FieldError::new(
                    &slot.path,
                    "template_param_count",
                    format!("skips {{{{{}}}}}: positional values are given for 1, 2, … in turn", i + 1),
                ));
            }
            Ok(numbered.into_iter().map(|(_, s)| s).collect())
        }
        Some(_) => Err(FieldError::new(path, "invalid_type", "must be an array or an object")),
    }
}

/// One part (the template, or a carousel card): Meta's components and what was given.
fn part(
    name: &str,
    shape: &Shape,
    base: &str,
    header: Option<&Value>,
    params: Option<&Value>,
    buttons: Option<&Map<String, Value>>,
) -> Result<(Vec<Component>, Given), FieldError> {
    let mut given = Given::new(Form::Simple { base: base.to_owned() });
    let mut components = Vec::new();
    if let Some(v) = header.filter(|v| !v.is_null()) {
        let path = key(base, "header");
        let param = match &shape.header {
            Some(Header::Media(kind)) => media_value(&path, kind, v)?,
            Some(Header::Text { variables, .. }) => {
                let name = (shape.format == ParameterFormat::Named).then(|| variables.first()).flatten();
                text_value(&path, v, name.map(String::as_str))?
            }
            None => text_value(&path, v, None)?,
        };
        components.push(Component::Header(Parameters { parameters: vec![param.clone()] }));
        given.header = Some(Slot { path, param, bare: is_bare(v), keyed: true });
    }
    given.body = body_slots(name, shape, base, params)?;
    if !given.body.is_empty() {
        given.body_path = Some(key(base, "params"));
        let parameters = given.body.iter().map(|s| s.param.clone()).collect();
        components.push(Component::Body(Parameters { parameters }));
    }
    let mut indexed: Vec<(u64, &String, &Value)> = Vec::new();
    for (k, v) in buttons.into_iter().flatten() {
        let Some(i) = k.parse::<u64>().ok().filter(|i| *i <= 9) else {
            return Err(FieldError::new(
                key(&key(base, "buttons"), k),
                "invalid_value",
                "must be a button's index, 0 to 9, as a key",
            ));
        };
        indexed.push((i, k, v));
    }
    indexed.sort_by_key(|(i, _, _)| *i);
    for (i, k, v) in indexed {
        let path = key(&key(base, "buttons"), k);
        let sub_type = match usize::try_from(i).ok().and_then(|i| shape.buttons.get(i)).map(|b| b.value()) {
            Some(ButtonValue::Required(s) | ButtonValue::Optional(s)) => s,
            // No such button, or one that takes nothing: the check says which.
            _ => "url",
        };
        let param = button_value(&path, sub_type, v)?;
        components.push(Component::Button(ButtonComponent {
            sub_type: sub_type.to_owned(),
            index: NumOrStr::Str(i.to_string()),
            parameters: Some(vec![param.clone()]),
        }));
        given.buttons.push(GivenButton {
            path: path.clone(),
            sub_type_path: None,
            index: i,
            sub_type: sub_type.to_owned(),
            value: Some(Slot { path, param, bare: is_bare(v), keyed: true }),
        });
    }
    Ok((components, given))
}

impl SimpleTemplate {
    /// Meta's template object for this send of the template shaped `shape`, checked by the
    /// same rules as a send in Meta's form, and the template as the customer will see it.
    /// `base` is where the simple form stands (`template`).
    pub fn build(&self, shape: &Shape, base: &str) -> Result<(Template, Value), FieldError> {
        let (mut components, mut given) =
            part(&self.name, shape, base, self.header.as_ref(), self.params.as_ref(), self.buttons.as_ref())?;
        if let Some(cards) = &self.cards {
            let cards_path = key(base, "cards");
            let mut meta_cards = Vec::with_capacity(cards.len());
            let mut given_cards = Vec::with_capacity(cards.len());
            let empty = Shape::parse(shape.format, &Value::Null);
            for (j, card) in cards.iter().enumerate() {
                let card_path = idx(&cards_path, j);
                let card_shape = shape.cards.get(j).unwrap_or(&empty);
                let card_name = format!("card {j} of {}", self.name);
                let (card_components, card_given) = part(
                    &card_name,
                    card_shape,
                    &card_path,
                    card.header.as_ref(),
                    card.params.as_ref(),
                    card.buttons.as_ref(),
                )?;
                meta_cards.push(Card { card_index: j as u32, components: card_components });
                given_cards.push((card_path, j as u64, card_given));
            }
            components.push(Component::Carousel(CarouselComponent { cards: meta_cards }));
            given.cards = Some((cards_path, given_cards));
        }
        let rendered = check(&self.name, shape, &given)?;
        let template = Template {
            name: self.name.clone(),
            language: Language { code: self.language.clone(), policy: None },
            components: (!components.is_empty()).then_some(components),
        };
        Ok((template, rendered))
    }
}
