//! A template send checked against the template, as Meta checks it before it accepts the send.

use serde_json::Value;

use super::templates::{upper, variables};
use crate::errors::GraphError;
use crate::state::State;

/// The values of a send, by component: header, body, and buttons by index.
struct Values<'a> {
    header: Option<&'a Vec<Value>>,
    body: Option<&'a Vec<Value>>,
    buttons: Vec<(u64, String)>,
    cards: Option<usize>,
}

fn values(send: &Value) -> Values<'_> {
    let mut v = Values { header: None, body: None, buttons: Vec::new(), cards: None };
    for c in send.get("components").and_then(Value::as_array).into_iter().flatten() {
        match c.get("type").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            Some("header") => v.header = c.get("parameters").and_then(Value::as_array),
            Some("body") => v.body = c.get("parameters").and_then(Value::as_array),
            Some("button") => {
                let index = c.get("index").and_then(|i| i.as_u64().or_else(|| i.as_str().and_then(|s| s.parse().ok())));
                v.buttons.push((index.unwrap_or(u64::MAX), upper(c.get("sub_type"))));
            }
            Some("carousel") => v.cards = c.get("cards").and_then(Value::as_array).map(Vec::len),
            _ => {}
        }
    }
    v
}

fn mismatch(details: String) -> GraphError {
    GraphError::of(132_012, Some(details))
}

/// A template send: the template exists in that language and is approved, and the values fit its
/// variables in number (132000) and in form (132012).
/// Answers the template's category.
pub fn check_send(state: &State, phone_number_id: &str, send: &Value) -> Result<String, GraphError> {
    let Some((business, _)) = state.business_of_number(phone_number_id) else {
        return Err(GraphError::unknown_node(phone_number_id, "post"));
    };
    let name = send.get("name").and_then(Value::as_str).unwrap_or_default();
    let language = send.get("language").and_then(|l| l.get("code")).and_then(Value::as_str).unwrap_or_default();
    let template = state
        .lock()
        .saved
        .templates
        .iter()
        .find(|t| t.waba_id == business.waba_id && t.name == name && t.language == language)
        .cloned();
    let Some(t) = template else {
        return Err(GraphError::of(132_001, Some(format!("template name ({name}) does not exist in {language}"))));
    };
    match t.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => return Err(GraphError::of(132_015, None)),
        "DISABLED" => return Err(GraphError::of(132_016, None)),
        _ => {
            return Err(GraphError::of(
                132_001,
                Some(format!("template {name} ({language}) is {}, not approved", t.status)),
            ));
        }
    }
    let given = values(send);
    let named = t.parameter_format == "NAMED";
    for c in t.components.as_array().into_iter().flatten() {
        match upper(c.get("type")).as_str() {
            "HEADER" => {
                let format = upper(c.get("format"));
                let params = given.header.map_or(0, Vec::len);
                let wanted = match format.as_str() {
                    "TEXT" => variables(c["text"].as_str().unwrap_or_default()).len(),
                    _ => 1,
                };
                if params != wanted {
                    return Err(GraphError::of(
                        132_000,
                        Some(format!("header: expected {wanted} parameter(s), got {params}")),
                    ));
                }
                if format != "TEXT"
                    && let Some(p) = given.header.and_then(|h| h.first())
                {
                    let kind = upper(p.get("type"));
                    let ok = kind == format || (format == "GIF" && kind == "VIDEO");
                    if !ok {
                        return Err(mismatch(format!(
                            "header: the template's header is {format}, the value is {kind}"
                        )));
                    }
                }
            }
            "BODY" => {
                let vars = variables(c["text"].as_str().unwrap_or_default());
                let params = given.body.map_or(&[][..], Vec::as_slice);
                if params.len() != vars.len() {
                    return Err(GraphError::of(
                        132_000,
                        Some(format!("body: expected {} parameter(s), got {}", vars.len(), params.len())),
                    ));
                }
                for p in params {
                    let name = p.get("parameter_name").and_then(Value::as_str);
                    match (named, name) {
                        (true, Some(n)) if vars.iter().any(|v| v == n) => {}
                        (true, _) => {
                            return Err(mismatch(
                                "body: a named template's values each need a parameter_name it defines".into(),
                            ));
                        }
                        (false, Some(_)) => {
                            return Err(mismatch("body: a positional template's values take no parameter_name".into()));
                        }
                        (false, None) => {}
                    }
                }
            }
            "BUTTONS" => {
                for (i, b) in c["buttons"].as_array().into_iter().flatten().enumerate() {
                    let kind = upper(b.get("type"));
                    let url_var = kind == "URL" && b["url"].as_str().is_some_and(|u| u.contains("{{"));
                    let needs_value = url_var || kind == "COPY_CODE";
                    if needs_value && !given.buttons.iter().any(|(index, _)| *index == i as u64) {
                        return Err(GraphError::of(132_000, Some(format!("button {i}: a value is required"))));
                    }
                }
                if let Some((index, _)) = given
                    .buttons
                    .iter()
                    .find(|(index, _)| *index as usize >= c["buttons"].as_array().map_or(0, Vec::len))
                {
                    return Err(mismatch(format!("button {index}: the template has no such button")));
                }
            }
            "CAROUSEL" => {
                let cards = c["cards"].as_array().map_or(0, Vec::len);
                if given.cards != Some(cards) {
                    return Err(GraphError::of(132_000, Some(format!("carousel: expected {cards} cards"))));
                }
            }
            _ => {}
        }
    }
    Ok(t.category)
}
