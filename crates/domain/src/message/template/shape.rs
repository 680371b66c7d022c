//! A template as Meta keeps it (`GET /{waba-id}/message_templates`), read for what a send of it
//! must give: the header's variable or media, the body's variables, the buttons that take a value,
//! the carousel's cards.

use serde_json::Value;

/// How a template's variables are written: `{{1}}`, `{{2}}` or `{{first_name}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParameterFormat {
    Positional,
    Named,
}

impl ParameterFormat {
    /// Meta's `parameter_format`; positional when absent, as Meta defaults it.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some(f) if f.eq_ignore_ascii_case("named") => Self::Named,
            _ => Self::Positional,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positional => "POSITIONAL",
            Self::Named => "NAMED",
        }
    }
}

/// The variables of a text, in order of appearance: `{{1}}`, `{{ 2 }}`, `{{first_name}}`.
pub fn variables(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        out.push(rest[..end].trim().to_owned());
        rest = &rest[end + 2..];
    }
    out
}

/// `text` with each `{{var}}` replaced by what `value` gives for it (left as written when nothing).
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start + 2..].find("}}") else { break };
        out.push_str(&rest[..start]);
        let var = rest[start + 2..start + 2 + end].trim();
        match value(var) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 4 + end]),
        }
        rest = &rest[start + 4 + end..];
    }
    out.push_str(rest);
    out
}

#[derive(Clone, Debug, PartialEq)]
pub enum Header {
    /// A text header, with at most one variable.
    Text { text: String, variables: Vec<String> },
    /// A header whose value is sent: `image`, `video` (also for GIF headers), `document`,
    /// `location` or `product`.
    Media(&'static str),
}

/// What a button takes when the template is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ButtonValue {
    /// Nothing may be given (phone number, static URL, voice call).
    None,
    /// A value must be given, of this `sub_type`.
    Required(&'static str),
    /// A value may be given, of this `sub_type` (a quick reply's payload, a flow's token).
    Optional(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Button {
    /// Meta's button type, in capitals: `URL`, `COPY_CODE`, `QUICK_REPLY`, …
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
}

impl Button {
    pub fn value(&self) -> ButtonValue {
        match self.kind.as_str() {
            "URL" if self.url.as_deref().is_some_and(|u| u.contains("{{")) => ButtonValue::Required("url"),
            // An authentication template's code button (copy code, one-tap, zero-tap): the code
            // is sent as a URL button's value (`authentication-templates`, "Sending").
            "OTP" => ButtonValue::Required("url"),
            "COPY_CODE" => ButtonValue::Required("copy_code"),
            "MPM" => ButtonValue::Required("mpm"),
            "QUICK_REPLY" => ButtonValue::Optional("quick_reply"),
            "FLOW" => ButtonValue::Optional("flow"),
            "CATALOG" => ButtonValue::Optional("catalog"),
            _ => ButtonValue::None,
        }
    }

    /// How a person reads it in an error: `URL button 'Track order'`.
    pub fn describe(&self) -> String {
        format!("{} button '{}'", self.kind, self.text)
    }
}

/// A template's parts, or a carousel card's.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub format: ParameterFormat,
    pub header: Option<Header>,
    /// The body's text; empty when there is no body (a card may have none).
    pub body: String,
    pub body_variables: Vec<String>,
    pub footer: Option<String>,
    pub buttons: Vec<Button>,
    /// A carousel's cards, in order; empty for other templates.
    pub cards: Vec<Shape>,
}

fn upper(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase()
}

fn text_of(c: &Value) -> String {
    c.get("text").and_then(Value::as_str).unwrap_or_default().to_owned()
}

impl Shape {
    /// Reads Meta's `components` (any case in the types; unknown components are ignored, as
    /// they ask nothing of a send).
    pub fn parse(format: ParameterFormat, components: &Value) -> Self {
        let mut shape = Shape {
            format,
            header: None,
            body: String::new(),
            body_variables: Vec::new(),
            footer: None,
            buttons: Vec::new(),
            cards: Vec::new(),
        };
        for c in components.as_array().into_iter().flatten() {
            match upper(c.get("type")).as_str() {
                "HEADER" => {
                    shape.header = Some(match upper(c.get("format")).as_str() {
                        "IMAGE" => Header::Media("image"),
                        "VIDEO" | "GIF" => Header::Media("video"),
                        "DOCUMENT" => Header::Media("document"),
                        "LOCATION" => Header::Media("location"),
                        "PRODUCT" => Header::Media("product"),
                        _ => {
                            let text = text_of(c);
                            Header::Text { variables: distinct(format, variables(&text)), text }
                        }
                    })
                }
                "BODY" => {
                    shape.body = text_of(c);
                    shape.body_variables = distinct(format, variables(&shape.body));
                }
                "FOOTER" => shape.footer = Some(text_of(c)).filter(|t| !t.is_empty()),
                "BUTTONS" => {
                    shape.buttons = c
                        .get("buttons")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|b| Button {
                            kind: upper(b.get("type")),
                            text: text_of(b),
                            url: b.get("url").and_then(Value::as_str).map(str::to_owned),
                        })
                        .collect()
                }
                "CAROUSEL" => {
                    shape.cards = c
                        .get("cards")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|card| Shape::parse(format, card.get("components").unwrap_or(&Value::Null)))
                        .collect()
                }
                _ => {}
            }
        }
        shape
    }

    /// The header's variables (none for a media header).
    pub fn header_variables(&self) -> &[String] {
        match &self.header {
            Some(Header::Text { variables, .. }) => variables,
            _ => &[],
        }
    }
}

/// The variables a send gives values for: each once; positional ones by number (Meta's first
/// value is `{{1}}` wherever it stands), named ones in order of appearance.
fn distinct(format: ParameterFormat, found: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(found.len());
    for v in found {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if format == ParameterFormat::Positional {
        out.sort_by_key(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    }
    out
}

/// `{{1}}, {{2}}` or `first_name, order_id`: a list of variables as an error shows it.
pub fn list_variables(format: ParameterFormat, vars: &[String]) -> String {
    match format {
        ParameterFormat::Positional => vars.iter().map(|v| format!("{{{{{v}}}}}")).collect::<Vec<_>>().join(", "),
        ParameterFormat::Named => vars.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variables_in_order_and_filled() {
        assert_eq!(variables("Hi {{1}}, your {{ 2 }} and {{first_name}}"), ["1", "2", "first_name"]);
        assert!(variables("no variables {{").is_empty());
        let filled = fill("Hi {{1}}, {{ 2 }}! {{3}}", |v| (v != "3").then(|| format!("<{v}>")));
        assert_eq!(filled, "Hi <1>, <2>! {{3}}");
    }

    #[test]
    fn positional_variables_are_taken_by_number_once() {
        let shape = Shape::parse(
            ParameterFormat::Positional,
            &json!([{"type": "BODY", "text": "Hi {{2}}, {{1}} and {{2}} again, {{10}}"}]),
        );
        assert_eq!(shape.body_variables, ["1", "2", "10"]);
        let named = Shape::parse(ParameterFormat::Named, &json!([{"type": "BODY", "text": "{{b}} {{a}} {{b}}"}]));
        assert_eq!(named.body_variables, ["b", "a"]);
    }

    #[test]
    fn reads_meta_components() {
        let shape = Shape::parse(
            ParameterFormat::Positional,
            &json!([
                {"type": "HEADER", "format": "GIF"},
                {"type": "body", "text": "Order {{1}} ships {{2}}."},
                {"type": "FOOTER", "text": "Reply STOP"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Track", "url": "https://x.test/t/{{1}}"},
                    {"type": "URL", "text": "Shop", "url": "https://x.test/"},
                    {"type": "COPY_CODE", "example": "SAVE10"},
                    {"type": "QUICK_REPLY", "text": "Stop"},
                    {"type": "PHONE_NUMBER", "text": "Call", "phone_number": "15550001111"},
                    {"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}
                ]}
            ]),
        );
        assert_eq!(shape.header, Some(Header::Media("video")));
        assert_eq!(shape.body_variables, ["1", "2"]);
        assert_eq!(shape.footer.as_deref(), Some("Reply STOP"));
        let values: Vec<ButtonValue> = shape.buttons.iter().map(Button::value).collect();
        assert_eq!(
            values,
            [
                ButtonValue::Required("url"),
                ButtonValue::None,
                ButtonValue::Required("copy_code"),
                ButtonValue::Optional("quick_reply"),
                ButtonValue::None,
                ButtonValue::Required("url")
            ]
        );
    }
}
