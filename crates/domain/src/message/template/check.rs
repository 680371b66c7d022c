//! A template send checked against the template it names, before Meta sees it: every variable
//! given once and none extra, in the template's parameter format, values Meta takes, the buttons
//! that need a value given one, the carousel's cards complete. What passes is rendered as the
//! customer will see it.

use serde_json::{Map, Value, json};

use super::shape::{ButtonValue, Header, ParameterFormat, Shape, fill, list_variables};
use super::{HEADER_TEXT_MAX, Parameter, TEXT_PARAM_MAX, URL_PARAM_MAX};
use crate::message::rules::key;
use crate::validation::FieldError;

/// A body as the customer sees it may be this long (Meta's 132005 beyond it)…
pub const BODY_RENDERED_MAX: usize = 1024;
/// …except in a template that has nothing but its body, whose values may total this much
/// (Meta's changelog: "can now total up to 32,768 characters").
pub const BODY_ONLY_VALUES_MAX: usize = 32_768;
/// Consecutive spaces a template value may hold (Meta: "more than 4 consecutive spaces").
const SPACES_MAX: usize = 4;

/// One value, and the JSON path it was given at.
#[derive(Clone, Debug)]
pub(super) struct Slot {
    pub path: String,
    pub param: Parameter,
    /// Given as a bare string or number (the simple form): errors about its text name `path`.
    pub bare: bool,
    /// Named by its key (the simple form's `params` object) rather than by `parameter_name`.
    pub keyed: bool,
}

impl Slot {
    /// Where its variable's name was given.
    fn name_path(&self) -> String {
        if self.keyed { self.path.clone() } else { key(&self.path, "parameter_name") }
    }
}

#[derive(Clone, Debug)]
pub(super) struct GivenButton {
    /// Where the button's value was given (its component, or the simple form's key).
    pub path: String,
    /// Where its `sub_type` is (the component's; the simple form has none to get wrong).
    pub sub_type_path: Option<String>,
    pub index: u64,
    pub sub_type: String,
    pub value: Option<Slot>,
}

/// Where a value that is missing belongs.
#[derive(Clone, Debug)]
pub(super) enum Form {
    /// Meta's form: the `components` array (`template.components`).
    Meta { components: String },
    /// The simple form: the object holding `header`, `params`, `buttons` and `cards`.
    Simple { base: String },
}

/// What a send gives, by part of the template.
#[derive(Clone, Debug)]
pub(super) struct Given {
    pub form: Form,
    pub header: Option<Slot>,
    /// Where the body's values were given, when they were.
    pub body_path: Option<String>,
    pub body: Vec<Slot>,
    pub buttons: Vec<GivenButton>,
    /// Where the cards were given, and each card.
    pub cards: Option<(String, Vec<GivenCard>)>,
}

/// A carousel card's values: where its index was given, the index, and its values.
pub(super) type GivenCard = (String, u64, Given);

impl Given {
    pub fn new(form: Form) -> Self {
        Self { form, header: None, body_path: None, body: Vec::new(), buttons: Vec::new(), cards: None }
    }

    fn missing_header(&self) -> String {
        match &self.form {
            Form::Meta { components } => components.clone(),
            Form::Simple { base } => key(base, "header"),
        }
    }

    fn missing_body(&self, var: &str, format: ParameterFormat) -> String {
        match (&self.form, format) {
            (Form::Meta { components }, _) => self.body_path.clone().unwrap_or_else(|| components.clone()),
            (Form::Simple { base }, ParameterFormat::Named) => key(&key(base, "params"), var),
            (Form::Simple { base }, ParameterFormat::Positional) => key(base, "params"),
        }
    }

    fn missing_button(&self, index: usize) -> String {
        match &self.form {
            Form::Meta { components } => components.clone(),
            Form::Simple { base } => key(&key(base, "buttons"), &index.to_string()),
        }
    }

    fn missing_cards(&self) -> String {
        match &self.form {
            Form::Meta { components } => components.clone(),
            Form::Simple { base } => key(base, "cards"),
        }
    }
}

fn count_error(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(path, "template_param_count", message)
}

fn format_error(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(path, "template_param_format", message)
}

/// What a value shows where its variable stands.
fn shown(p: &Parameter) -> Option<&str> {
    match p {
        Parameter::Text(t) => Some(&t.text),
        Parameter::Currency(c) => Some(&c.currency.fallback_value),
        Parameter::DateTime(d) => Some(&d.date_time.fallback_value),
        _ => None,
    }
}

/// Meta refuses template values with new lines, tabs, or more than four spaces in a row.
fn plain_value(path: &str, value: &str) -> Result<(), FieldError> {
    let mut run = 0;
    for c in value.chars() {
        if c == '\n' || c == '\r' || c == '\t' {
            return Err(FieldError::new(
                path,
                "template_param_text",
                "must not contain new lines or tabs (Meta's rule for template values; the template's own text may)",
            ));
        }
        run = if c == ' ' { run + 1 } else { 0 };
        if run > SPACES_MAX {
            return Err(FieldError::new(
                path,
                "template_param_text",
                format!("must not contain more than {SPACES_MAX} consecutive spaces (Meta's rule for template values)"),
            ));
        }
    }
    Ok(())
}

/// The path of a value's text (`….text`, `….currency.fallback_value`), for errors about it.
fn text_path(slot: &Slot) -> String {
    if slot.bare {
        return slot.path.clone();
    }
    match &slot.param {
        Parameter::Text(_) => key(&slot.path, "text"),
        Parameter::Currency(_) => key(&key(&slot.path, "currency"), "fallback_value"),
        Parameter::DateTime(_) => key(&key(&slot.path, "date_time"), "fallback_value"),
        _ => slot.path.clone(),
    }
}

/// Values for `vars` (a header's or a body's), matched by position or by name: each variable
/// given once, none extra; the value each variable shows, in `vars`' order.
fn match_values<'a>(
    name: &str,
    part: &str,
    vars: &[String],
    format: ParameterFormat,
    slots: &'a [Slot],
    missing: impl Fn(&str) -> String,
) -> Result<Vec<&'a Slot>, FieldError> {
    if vars.is_empty() {
        if let Some(first) = slots.first() {
            return Err(count_error(&first.path, format!("{name}'s {part} has no variables; leave its values out")));
        }
        return Ok(Vec::new());
    }
    let wanted = list_variables(format, vars);
    match format {
        ParameterFormat::Positional => {
            if let Some(s) = slots.iter().find(|s| s.param.name().is_some()) {
                return Err(format_error(
                    s.name_path(),
                    format!("is not taken: {name}'s variables are positional ({wanted}), given in order"),
                ));
            }
            if slots.len() != vars.len() {
                let at =
                    if slots.len() > vars.len() { slots[vars.len()].path.clone() } else { missing(&vars[slots.len()]) };
                return Err(count_error(
                    at,
                    format!(
                        "{name}'s {part} has {} variable(s) ({wanted}); {} value(s) given",
                        vars.len(),
                        slots.len()
                    ),
                ));
            }
            Ok(slots.iter().collect())
        }
        ParameterFormat::Named => {
            let mut out: Vec<Option<&Slot>> = vec![None; vars.len()];
            for s in slots {
                let Some(n) = s.param.name() else {
                    return Err(format_error(
                        s.name_path(),
                        format!("is required: {name}'s variables are named ({wanted})"),
                    ));
                };
                let Some(at) = vars.iter().position(|v| v == n) else {
                    return Err(FieldError::new(
                        s.name_path(),
                        "unknown_parameter",
                        format!("'{n}' is not a variable of {name}'s {part} (its variables: {wanted})"),
                    ));
                };
                if out[at].is_some() {
                    return Err(FieldError::new(
                        s.name_path(),
                        "unique",
                        format!("gives '{n}' a second time; each variable takes one value"),
                    ));
                }
                out[at] = Some(s);
            }
            if let Some(at) = out.iter().position(Option::is_none) {
                return Err(count_error(
                    missing(&vars[at]),
                    format!("'{}' is not given: {name}'s {part} needs {wanted}", vars[at]),
                ));
            }
            Ok(out.into_iter().flatten().collect())
        }
    }
}

/// Checks `given` against the template `name` shaped `shape`; the template as the customer will
/// see it (`header`, `body`, `footer`, `buttons`, `cards`).
pub(super) fn check(name: &str, shape: &Shape, given: &Given) -> Result<Value, FieldError> {
    let mut rendered = Map::new();
    // The header: its variable's value, or its media; nothing for a static text header.
    match (&shape.header, &given.header) {
        (Some(Header::Text { text, variables }), slot) if !variables.is_empty() => {
            let Some(slot) = slot else {
                return Err(count_error(
                    given.missing_header(),
                    format!(
                        "{name}'s header has the variable {}; give its value",
                        list_variables(shape.format, variables)
                    ),
                ));
            };
            let slots = std::slice::from_ref(slot);
            let matched = match_values(name, "header", variables, shape.format, slots, |_| given.missing_header())?;
            let value = value_text(matched[0], "header")?;
            slot.param.validate(&slot.path, HEADER_TEXT_MAX)?;
            let text = fill(text, |_| Some(value.to_owned()));
            if text.chars().count() > HEADER_TEXT_MAX {
                return Err(FieldError::new(
                    text_path(slot),
                    "template_text_too_long",
                    format!(
                        "makes the header {} characters long; a header shows at most {HEADER_TEXT_MAX}",
                        text.chars().count()
                    ),
                ));
            }
            rendered.insert("header".into(), json!(text));
        }
        (Some(Header::Media(kind)), slot) => {
            let Some(slot) = slot else {
                return Err(count_error(
                    given.missing_header(),
                    format!("{name} has a {} header; give the {kind} to show in it", kind.to_uppercase()),
                ));
            };
            if slot.param.kind() != *kind {
                return Err(format_error(
                    key(&slot.path, "type"),
                    format!("must be '{kind}': {name}'s header is {}, not {}", kind.to_uppercase(), slot.param.kind()),
                ));
            }
            slot.param.validate(&slot.path, 0)?;
            rendered.insert("header".into(), media_shown(&slot.param));
        }
        (header, Some(slot)) => {
            let why = match header {
                Some(Header::Text { .. }) => "its header text has no variable",
                _ => "it has no header",
            };
            return Err(count_error(&slot.path, format!("is not taken: {name}'s {why}")));
        }
        (Some(Header::Text { text, .. }), None) => {
            rendered.insert("header".into(), json!(text));
        }
        (None, None) => {}
    }
    // The body.
    let matched = match_values(name, "body", &shape.body_variables, shape.format, &given.body, |v| {
        given.missing_body(v, shape.format)
    })?;
    let mut values = Vec::with_capacity(matched.len());
    for slot in &matched {
        slot.param.validate(&slot.path, TEXT_PARAM_MAX)?;
        values.push(value_text(slot, "body")?);
    }
    if !shape.body.is_empty() {
        let body =
            fill(&shape.body, |v| shape.body_variables.iter().position(|b| b == v).map(|i| values[i].to_owned()));
        let at = || given.body_path.clone().unwrap_or_else(|| given.missing_body("", shape.format));
        let body_only =
            shape.header.is_none() && shape.footer.is_none() && shape.buttons.is_empty() && shape.cards.is_empty();
        if body_only {
            let total: usize = values.iter().map(|v| v.chars().count()).sum();
            if total > BODY_ONLY_VALUES_MAX {
                return Err(FieldError::new(
                    at(),
                    "template_text_too_long",
                    format!(
                        "total {total} characters; a body-only template's values total at most {BODY_ONLY_VALUES_MAX}"
                    ),
                ));
            }
        } else {
            let n = body.chars().count();
            if n > BODY_RENDERED_MAX {
                return Err(FieldError::new(
                    at(),
                    "template_text_too_long",
                    format!(
                        "make(s) the body {n} characters long; a template's body shows at most {BODY_RENDERED_MAX}"
                    ),
                ));
            }
        }
        rendered.insert("body".into(), json!(body));
    }
    if let Some(footer) = &shape.footer {
        rendered.insert("footer".into(), json!(footer));
    }
    // Buttons: every value names a button of the template, of its kind; every button that needs
    // a value has one.
    let mut buttons: Vec<Value> = Vec::new();
    for b in &given.buttons {
        let Some(def) = usize::try_from(b.index).ok().and_then(|i| shape.buttons.get(i)) else {
            let have =
                shape.buttons.iter().enumerate().map(|(i, b)| format!("{i}: {}", b.describe())).collect::<Vec<_>>();
            return Err(FieldError::new(
                &b.path,
                "unknown_button",
                if have.is_empty() {
                    format!("{name} has no buttons")
                } else {
                    format!("{name} has no button {} (its buttons: {})", b.index, have.join(", "))
                },
            ));
        };
        let (ButtonValue::Required(sub_type) | ButtonValue::Optional(sub_type)) = def.value() else {
            return Err(count_error(
                &b.path,
                format!("is not taken: button {} of {name} ({}) takes no value", b.index, def.describe()),
            ));
        };
        if !b.sub_type.eq_ignore_ascii_case(sub_type) {
            return Err(format_error(
                b.sub_type_path.clone().unwrap_or_else(|| b.path.clone()),
                format!("must be '{sub_type}': button {} of {name} is a {}", b.index, def.describe()),
            ));
        }
        if given.buttons.iter().filter(|o| o.index == b.index).count() > 1 {
            return Err(FieldError::new(&b.path, "unique", format!("gives button {} a second value", b.index)));
        }
        if let Some(v) = &b.value {
            let max = if sub_type == "url" { URL_PARAM_MAX } else { 0 };
            v.param.validate(&v.path, max)?;
            if sub_type == "url" {
                let suffix = value_text(v, "button")?;
                let url = fill(def.url.as_deref().unwrap_or_default(), |_| Some(suffix.to_owned()));
                if url.chars().count() > URL_PARAM_MAX {
                    return Err(FieldError::new(
                        text_path(v),
                        "template_text_too_long",
                        format!("makes the button's URL longer than {URL_PARAM_MAX} characters"),
                    ));
                }
            }
        }
    }
    for (i, def) in shape.buttons.iter().enumerate() {
        let value = given.buttons.iter().find(|b| b.index == i as u64).and_then(|b| b.value.as_ref());
        if let (ButtonValue::Required(sub_type), None) = (def.value(), value) {
            let what = match sub_type {
                "url" if def.kind == "OTP" => "the code",
                "url" => "the end of its URL",
                "copy_code" => "the code it copies",
                _ => "its action",
            };
            return Err(count_error(
                given.missing_button(i),
                format!("button {i} of {name} ({}) needs {what}", def.describe()),
            ));
        }
        let mut shown_button = json!({"type": def.kind, "text": def.text});
        if let Some(url) = &def.url {
            let suffix = value.and_then(|v| shown(&v.param)).unwrap_or_default();
            shown_button["url"] = json!(fill(url, |_| Some(suffix.to_owned())));
        }
        if let Some(Parameter::CouponCode(c)) = value.map(|v| &v.param) {
            shown_button["code"] = json!(c.coupon_code);
        }
        buttons.push(shown_button);
    }
    if !buttons.is_empty() {
        rendered.insert("buttons".into(), Value::Array(buttons));
    }
    // A carousel's cards: every card, each checked as a template of its own.
    match (&given.cards, shape.cards.len()) {
        (None, 0) => {}
        (Some((path, _)), 0) => {
            return Err(count_error(path, format!("is not taken: {name} is not a carousel")));
        }
        (None, n) => {
            return Err(count_error(
                given.missing_cards(),
                format!("{name} is a carousel of {n} cards; give each card's values"),
            ));
        }
        (Some((path, cards)), n) => {
            if cards.len() != n {
                return Err(count_error(path, format!("has {} card(s); {name} has {n}", cards.len())));
            }
            let mut out = vec![Value::Null; n];
            for (card_path, index, card) in cards {
                let Some(slot) = usize::try_from(*index).ok().filter(|i| *i < n) else {
                    return Err(FieldError::new(
                        card_path,
                        "unknown_card",
                        format!("names card {index}; {name}'s cards are 0 to {}", n - 1),
                    ));
                };
                out[slot] = check(&format!("card {index} of {name}"), &shape.cards[slot], card)?;
            }
            rendered.insert("cards".into(), Value::Array(out));
        }
    }
    Ok(Value::Object(rendered))
}

/// The text a value shows, checked against Meta's rules for template values.
fn value_text<'a>(slot: &'a Slot, part: &str) -> Result<&'a str, FieldError> {
    let Some(text) = shown(&slot.param) else {
        return Err(format_error(
            key(&slot.path, "type"),
            format!("must be text, currency or date_time in a {part}, not {}", slot.param.kind()),
        ));
    };
    plain_value(&text_path(slot), text)?;
    Ok(text)
}

/// A media header as a conversation shows it: its kind, and the link or id.
fn media_shown(p: &Parameter) -> Value {
    let value = serde_json::to_value(p).unwrap_or(Value::Null);
    let mut out = json!({"type": p.kind()});
    if let Some(obj) = value.get(p.kind()) {
        out[p.kind()] = obj.clone();
    }
    out
}
