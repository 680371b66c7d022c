//! Message templates: `/{waba-id}/message_templates` (create, list, delete) and `/{template-id}`
//! (get, edit), with review (PENDING, then APPROVED or REJECTED after `template_review_ms`),
//! `message_template_status_update` webhooks, and the checks a template send must pass.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::call::{GraphCall, GraphQuery, JsonBody, PageQuery, Shared, page};
use crate::errors::GraphError;
use crate::ids;
use crate::state::{State, Template, unix_now};
use crate::webhook;

/// Meta's supported template languages (`templates/supported-languages.mdx`).
const LANGUAGES: &[&str] = &[
    "af", "sq", "ar", "ar_EG", "ar_AE", "ar_LB", "ar_MA", "ar_QA", "az", "be_BY", "bn", "bn_IN", "bg", "ca", "zh_CN",
    "zh_HK", "zh_TW", "hr", "cs", "da", "prs_AF", "nl", "nl_BE", "en", "en_GB", "en_US", "en_AE", "en_AU", "en_CA",
    "en_GH", "en_IE", "en_IN", "en_JM", "en_MY", "en_NZ", "en_QA", "en_SG", "en_UG", "en_ZA", "et", "fil", "fi", "fr",
    "fr_BE", "fr_CA", "fr_CH", "fr_CI", "fr_MA", "ka", "de", "de_AT", "de_CH", "el", "gu", "ha", "he", "hi", "hu",
    "id", "ga", "it", "ja", "kn", "kk", "rw_RW", "ko", "ky_KG", "lo", "lv", "lt", "mk", "ms", "ml", "mr", "nb",
    "ps_AF", "fa", "pl", "pt_BR", "pt_PT", "pa", "ro", "ru", "sr", "si_LK", "sk", "sl", "es", "es_AR", "es_CL",
    "es_CO", "es_CR", "es_DO", "es_EC", "es_HN", "es_MX", "es_PA", "es_PE", "es_ES", "es_UY", "sw", "sv", "ta", "te",
    "th", "tr", "uk", "ur", "uz", "vi", "zu",
];

const CATEGORIES: &[&str] = &["AUTHENTICATION", "MARKETING", "UTILITY"];

const DAY: u64 = 86_400;

/// Meta's limit for a verified business.
const TEMPLATES_PER_WABA: usize = 6_000;

fn invalid(details: impl Into<String>) -> GraphError {
    GraphError::invalid(details)
}

/// The variables of a text: `{{1}}`, `{{2}}` or `{{first_name}}`, in order of appearance.
pub(super) fn variables(text: &str) -> Vec<String> {
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

pub(super) fn upper(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase()
}

/// A template creation error: code 100 with Meta's subcode and user-facing title
/// (`error-codes.mdx`, "Template creation errors").
fn creation_error(subcode: i64, title: &str, details: impl Into<String>) -> GraphError {
    let details = details.into();
    let mut e = invalid(details.clone());
    e.body["error"]["error_subcode"] = json!(subcode);
    e.body["error"]["error_user_title"] = json!(title);
    e.body["error"]["error_user_msg"] = json!(details);
    e
}

fn too_long(what: &str, max: usize) -> GraphError {
    creation_error(2_388_040, "Character limit exceeded", format!("The {what} has more than {max} characters."))
}

fn header_format(details: impl Into<String>) -> GraphError {
    creation_error(2_388_047, "Message header format is incorrect", details)
}

fn body_format(details: impl Into<String>) -> GraphError {
    creation_error(2_388_072, "Message body format is incorrect", details)
}

const BUTTON_TYPES: &[&str] =
    &["QUICK_REPLY", "URL", "PHONE_NUMBER", "COPY_CODE", "OTP", "FLOW", "CATALOG", "MPM", "SPM", "VOICE_CALL", "APP"];

/// Checks a template's components as Meta does on creation; returns them as Meta stores them
/// (component types in capitals, OTP buttons as URL buttons).
fn check_components(components: &Value, category: &str, named: bool) -> Result<Value, GraphError> {
    let list = components.as_array().ok_or_else(|| invalid("Param components must be an array."))?;
    let mut out = Vec::new();
    let (mut headers, mut bodies, mut footers) = (0, 0, 0);
    for c in list {
        let mut c = c.as_object().cloned().ok_or_else(|| invalid("Each component must be an object."))?;
        let kind = upper(c.get("type"));
        c.insert("type".into(), json!(kind));
        let text = c.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
        let vars = variables(&text);
        match kind.as_str() {
            "HEADER" => {
                headers += 1;
                let format = upper(c.get("format"));
                if !["TEXT", "IMAGE", "VIDEO", "GIF", "DOCUMENT", "LOCATION", "PRODUCT"].contains(&format.as_str()) {
                    return Err(header_format(format!("Header format '{format}' is not supported.")));
                }
                c.insert("format".into(), json!(format));
                if format == "TEXT" {
                    if text.is_empty() {
                        return Err(header_format("A text header needs text."));
                    }
                    if text.chars().count() > 60 {
                        return Err(too_long("header", 60));
                    }
                    if vars.len() > 1 {
                        return Err(header_format("A text header has at most one variable."));
                    }
                }
            }
            "BODY" => {
                bodies += 1;
                if category == "AUTHENTICATION" && text.is_empty() {
                    // Meta writes an authentication template's body itself.
                    c.insert("text".into(), json!("*{{1}}* is your verification code."));
                    out.push(Value::Object(c));
                    continue;
                }
                if text.trim().is_empty() {
                    return Err(body_format("A body needs text."));
                }
                if text.chars().count() > 1024 {
                    return Err(too_long("body", 1024));
                }
                let trimmed = text.trim();
                if trimmed.starts_with("{{") || trimmed.ends_with("}}") {
                    return Err(creation_error(
                        2_388_299,
                        "Leading or trailing parameters not allowed",
                        "Variables cannot be at the start or end of the template.",
                    ));
                }
                let words = strip_variables(&text).split_whitespace().count();
                if vars.len() * 2 > words {
                    return Err(creation_error(
                        2_388_293,
                        "Parameters words ratio exceeds limit",
                        format!(
                            "This template has {} variables for {words} words; reduce the variables or lengthen the text.",
                            vars.len()
                        ),
                    ));
                }
                check_variables(&vars, named, c.get("example"))?;
            }
            "FOOTER" => {
                footers += 1;
                if category != "AUTHENTICATION" {
                    if text.is_empty() {
                        return Err(creation_error(
                            2_388_073,
                            "Message footer format is incorrect",
                            "A footer needs text.",
                        ));
                    }
                    if text.chars().count() > 60 {
                        return Err(too_long("footer", 60));
                    }
                    if !vars.is_empty() {
                        return Err(creation_error(
                            2_388_073,
                            "Message footer format is incorrect",
                            "A footer cannot have variables.",
                        ));
                    }
                }
            }
            "BUTTONS" => {
                let buttons = c
                    .get_mut("buttons")
                    .and_then(Value::as_array_mut)
                    .ok_or_else(|| GraphError::missing("components[].buttons"))?;
                if buttons.is_empty() || buttons.len() > 10 {
                    return Err(invalid("A template has 1 to 10 buttons."));
                }
                let mut counts = std::collections::HashMap::new();
                for b in buttons.iter_mut() {
                    let kind = upper(b.get("type"));
                    if !BUTTON_TYPES.contains(&kind.as_str()) {
                        return Err(invalid(format!(
                            "Button type '{kind}' is not one of {}.",
                            BUTTON_TYPES.join(", ")
                        )));
                    }
                    *counts.entry(kind.clone()).or_insert(0) += 1;
                    if b.get("text").and_then(Value::as_str).is_some_and(|t| t.chars().count() > 25) {
                        return Err(too_long("button label", 25));
                    }
                    if kind == "OTP" {
                        // Stored and shown as a URL button that carries the code.
                        let otp = upper(b.get("otp_type"));
                        *b = json!({"type": "URL", "text": "Copy code", "url": format!("https://www.whatsapp.com/otp/code/?otp_type={otp}&code={{{{1}}}}")});
                    } else {
                        b["type"] = json!(kind);
                    }
                }
                for (kind, max) in [("URL", 2), ("PHONE_NUMBER", 1), ("COPY_CODE", 1), ("QUICK_REPLY", 10)] {
                    if counts.get(kind).copied().unwrap_or(0) > max {
                        return Err(invalid(format!("A template has at most {max} {kind} button(s).")));
                    }
                }
            }
            "CAROUSEL" | "LIMITED_TIME_OFFER" => {}
            other => return Err(invalid(format!("Component type '{other}' is not supported."))),
        }
        out.push(Value::Object(c));
    }
    if bodies != 1 || headers > 1 || footers > 1 {
        return Err(invalid("A template has one body, and at most one header and one footer."));
    }
    Ok(Value::Array(out))
}

/// The text without its `{{…}}` variables.
fn strip_variables(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        out.push(' ');
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Positional variables run 1, 2, 3…; named ones are lowercase and unique; either way an example
/// value is given for each.
fn check_variables(vars: &[String], named: bool, example: Option<&Value>) -> Result<(), GraphError> {
    if vars.is_empty() {
        return Ok(());
    }
    if named {
        let mut seen = BTreeSet::new();
        for v in vars {
            if !v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') || !seen.insert(v) {
                return Err(body_format(format!(
                    "Named variable '{{{{{v}}}}}' must be unique lowercase letters and underscores."
                )));
            }
        }
        let given = example.and_then(|e| e.get("body_text_named_params")).and_then(Value::as_array);
        let names: BTreeSet<&str> =
            given.iter().flat_map(|g| g.iter()).filter_map(|p| p["param_name"].as_str()).collect();
        if !seen.iter().all(|v| names.contains(v.as_str())) {
            return Err(body_format("Every named variable needs an example in example.body_text_named_params."));
        }
    } else {
        for (i, v) in vars.iter().enumerate() {
            if v != &(i + 1).to_string() {
                return Err(body_format("Positional variables must be {{1}}, {{2}}, … in order."));
            }
        }
        let given = example.and_then(|e| e.get("body_text")).and_then(|b| b.get(0)).and_then(Value::as_array);
        if given.is_none_or(|g| g.len() != vars.len()) {
            return Err(body_format("Every variable needs an example value in example.body_text."));
        }
    }
    Ok(())
}

fn template_json(t: &Template) -> Value {
    let mut v = json!({
        "name": t.name,
        "parameter_format": t.parameter_format,
        "components": t.components,
        "language": t.language,
        "status": t.status,
        "category": t.category,
        "id": t.id,
    });
    if let Some(r) = &t.rejected_reason {
        v["rejected_reason"] = json!(r);
    }
    v
}

fn pick(full: Value, fields: Option<&str>) -> Value {
    let Some(fields) = fields else { return full };
    let mut out = json!({ "id": full["id"] });
    for f in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if let Some(v) = full.get(f) {
            out[f] = v.clone();
        }
    }
    out
}

pub async fn create(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    JsonBody(body): JsonBody,
) -> Result<Response, GraphError> {
    let waba = state.business(&call.node).ok_or_else(|| GraphError::unknown_node(&call.node, "post"))?;
    let req: Map<String, Value> =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("The body is not a JSON object: {e}")))?;
    let name = req.get("name").and_then(Value::as_str).ok_or_else(|| GraphError::missing("name"))?;
    if name.is_empty()
        || name.len() > 512
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid("Param name must be 1 to 512 lowercase letters, digits and underscores."));
    }
    let category = upper(req.get("category"));
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(invalid("Param category must be AUTHENTICATION, MARKETING or UTILITY."));
    }
    let language = req.get("language").and_then(Value::as_str).ok_or_else(|| GraphError::missing("language"))?;
    if !LANGUAGES.contains(&language) {
        return Err(invalid(format!("Param language '{language}' is not a supported template language.")));
    }
    let format = match req.get("parameter_format").map(|f| upper(Some(f))).as_deref() {
        None | Some("POSITIONAL") => "POSITIONAL",
        Some("NAMED") => "NAMED",
        Some(_) => return Err(invalid("Param parameter_format must be named or positional.")),
    };
    let components = check_components(
        req.get("components").ok_or_else(|| GraphError::missing("components"))?,
        &category,
        format == "NAMED",
    )?;
    let template = {
        let mut inner = state.lock();
        if inner.saved.templates.iter().any(|t| t.waba_id == waba.waba_id && t.name == name && t.language == language) {
            let mut e =
                invalid(format!("Content in this language already exists: a template named '{name}' in {language}."));
            e.body["error"]["error_subcode"] = json!(2388024);
            return Err(e);
        }
        let deleted_at = inner.saved.deleted_names.get(&format!("{}/{name}", waba.waba_id)).copied();
        if deleted_at.is_some_and(|at| unix_now().saturating_sub(at) < 30 * DAY) {
            return Err(invalid(format!(
                "A template named '{name}' was deleted after approval; its name can be used again 30 days after the deletion."
            )));
        }
        if inner.saved.templates.iter().filter(|t| t.waba_id == waba.waba_id).count() >= TEMPLATES_PER_WABA {
            return Err(creation_error(
                2_388_019,
                "Message Template Limit Exceeded",
                format!("A WhatsApp Business Account may have at most {TEMPLATES_PER_WABA} message templates."),
            ));
        }
        let template = Template {
            id: ids::numeric_id(),
            waba_id: waba.waba_id.clone(),
            name: name.to_owned(),
            language: language.to_owned(),
            category: category.clone(),
            status: "PENDING".into(),
            parameter_format: format.into(),
            components,
            rejected_reason: None,
            created_at: unix_now(),
            approved_edits: Vec::new(),
        };
        inner.saved.templates.push(template.clone());
        template
    };
    state.save();
    review_then(&state, &template.id, None);
    Ok(axum::Json(json!({"id": template.id, "status": "PENDING", "category": category})).into_response())
}

/// After `template_review_ms`, the verdict: REJECTED for a body holding the word "reject" or two
/// variables side by side, APPROVED otherwise, each announced by webhook. An approval after a
/// change of category (from `previous_category`) is announced by `template_category_update` too.
fn review_then(state: &Shared, id: &str, previous_category: Option<String>) {
    let state = state.clone();
    let id = id.to_owned();
    let delay = Duration::from_millis(state.settings().template_review_ms);
    tokio::spawn(async move {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let verdict = {
            let inner = state.lock();
            inner.saved.templates.iter().find(|t| t.id == id).filter(|t| t.status == "PENDING").map(|t| {
                if body_says_reject(&t.components) {
                    ("REJECTED", "PROMOTIONAL")
                } else if has_adjacent_variables(&t.components) {
                    ("REJECTED", "INVALID_FORMAT")
                } else {
                    ("APPROVED", "NONE")
                }
            })
        };
        if let Some((status, reason)) = verdict {
            set_status(&state, &id, status, reason);
            if let Some(previous) = previous_category.filter(|_| status == "APPROVED") {
                announce_category(&state, &id, &previous);
            }
        }
    });
}

/// `template_category_update` for a category change that passed review.
fn announce_category(state: &State, id: &str, previous: &str) {
    let Some(t) = state.lock().saved.templates.iter().find(|t| t.id == id).cloned() else { return };
    let value = json!({
        "message_template_id": t.id.parse::<u64>().unwrap_or_default(),
        "message_template_name": t.name,
        "message_template_language": t.language,
        "previous_category": previous,
        "new_category": t.category,
    });
    webhook::push_field(state, &t.waba_id, "template_category_update", value);
}

/// `message_template_components_update`'s value: the texts of the edited template and its URL and
/// phone number buttons (`webhooks/reference/message_template_components_update.mdx`).
fn components_update(t: &Template) -> Value {
    let mut value = json!({
        "message_template_id": t.id.parse::<u64>().unwrap_or_default(),
        "message_template_name": t.name,
        "message_template_language": t.language,
    });
    let mut buttons = Vec::new();
    for c in t.components.as_array().into_iter().flatten() {
        let text = c.get("text").cloned().unwrap_or(Value::Null);
        match upper(c.get("type")).as_str() {
            "BODY" => value["message_template_element"] = text,
            "HEADER" if upper(c.get("format")) == "TEXT" => value["message_template_title"] = text,
            "FOOTER" if !text.is_null() => value["message_template_footer"] = text,
            "BUTTONS" => {
                for b in c["buttons"].as_array().into_iter().flatten() {
                    let (kind, target) = match upper(b.get("type")).as_str() {
                        "URL" => ("URL", "message_template_button_url"),
                        "PHONE_NUMBER" => ("PHONE_NUMBER", "message_template_button_phone_number"),
                        _ => continue,
                    };
                    let field = if kind == "URL" { "url" } else { "phone_number" };
                    buttons.push(json!({
                        "message_template_button_type": kind,
                        "message_template_button_text": b.get("text"),
                        target: b.get(field),
                    }));
                }
            }
            _ => {}
        }
    }
    if !buttons.is_empty() {
        value["message_template_buttons"] = json!(buttons);
    }
    value
}

/// The sandbox's stand-in for Meta's content review: a body with the word "reject" in it. Only the
/// body counts, so "Accept"/"Reject" quick-reply buttons pass as they do at Meta.
fn body_says_reject(components: &Value) -> bool {
    components
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| upper(c.get("type")) == "BODY")
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .any(|text| text.split(|ch: char| !ch.is_alphanumeric()).any(|w| w.eq_ignore_ascii_case("reject")))
}

/// Whether a text of the template has two variables with nothing but white space between them,
/// which Meta rejects: "parameters placed next to each other (like {{1}}{{2}}) without text or
/// punctuation between them".
fn has_adjacent_variables(components: &Value) -> bool {
    components
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .any(|text| text.match_indices("}}").any(|(end, _)| text[end + 2..].trim_start().starts_with("{{")))
}

/// Sets a template's status and posts `message_template_status_update`.
pub fn set_status(state: &Arc<State>, id: &str, status: &str, reason: &str) -> bool {
    let changed = {
        let mut inner = state.lock();
        inner.saved.templates.iter_mut().find(|t| t.id == id).map(|t| {
            let was = std::mem::replace(&mut t.status, status.to_owned());
            t.rejected_reason = (status == "REJECTED").then(|| reason.to_owned());
            (was, t.clone())
        })
    };
    let Some((was, t)) = changed else { return false };
    state.save();
    let mut value = json!({
        "event": status,
        "message_template_id": t.id.parse::<u64>().unwrap_or_default(),
        "message_template_name": t.name,
        "message_template_language": t.language,
        "reason": reason,
        "message_template_category": t.category,
    });
    // The extras Meta documents for pauses, unpauses and disabling (the unpause wording is Meta's
    // example; the pause wording is the sandbox's). The sandbox keeps no pause count, so every
    // pause is the first.
    match (was.as_str(), status) {
        (_, "DISABLED") => value["disable_info"] = json!({"disable_date": unix_now()}),
        (_, "PAUSED") => {
            value["other_info"] = json!({"title": "FIRST_PAUSE", "description": "Your WhatsApp message template has been paused because of low quality."});
        }
        ("PAUSED", "APPROVED") => {
            value["other_info"] =
                json!({"title": "UNPAUSE", "description": "Your WhatsApp message template has been unpaused."});
        }
        _ => {}
    }
    if status == "REJECTED" && reason == "INVALID_FORMAT" {
        value["rejection_info"] = json!({
            "reason": "Your template has parameters placed next to each other (like {{1}}{{2}}) without text or punctuation between them.",
            "recommendation": "Separate parameters with descriptive text and ensure each parameter is clearly contextualized.",
        });
    }
    webhook::push_field(state, &t.waba_id, "message_template_status_update", value);
    true
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    name: Option<String>,
    status: Option<String>,
    category: Option<String>,
    language: Option<String>,
    fields: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
    before: Option<String>,
}

pub async fn list(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<ListQuery>,
) -> Result<Response, GraphError> {
    let waba = state.business(&call.node).ok_or_else(|| GraphError::unknown_node(&call.node, "get"))?;
    let all: Vec<Template> = state
        .lock()
        .saved
        .templates
        .iter()
        .filter(|t| t.waba_id == waba.waba_id)
        .filter(|t| q.name.as_ref().is_none_or(|n| &t.name == n))
        .filter(|t| q.status.as_ref().is_none_or(|s| t.status.eq_ignore_ascii_case(s)))
        .filter(|t| q.category.as_ref().is_none_or(|c| t.category.eq_ignore_ascii_case(c)))
        .filter(|t| q.language.as_ref().is_none_or(|l| &t.language == l))
        .cloned()
        .collect();
    let all: Vec<Value> = all.iter().map(|t| pick(template_json(t), q.fields.as_deref())).collect();
    let (page, paging) = page(&all, &PageQuery { limit: q.limit, after: q.after, before: q.before }, 1000, &call)?;
    Ok(axum::Json(json!({ "data": page, "paging": paging })).into_response())
}

/// `GET /{template-id}`, when the node is a template.
/// `GET /{template-id}[?fields=…]`, when the node is a template.
pub fn get(state: &State, id: &str, fields: Option<&str>) -> Option<Response> {
    let t = state.lock().saved.templates.iter().find(|t| t.id == id).cloned()?;
    Some(axum::Json(pick(template_json(&t), fields)).into_response())
}

/// Whether `t` may be edited now: `template-management.md` allows an approved template one edit
/// in 24 hours and ten in 30 days, rejected and paused ones without limit, and no change of an
/// approved template's category.
fn editable(t: &Template, category: Option<&str>, now: u64) -> Result<(), GraphError> {
    if !["APPROVED", "REJECTED", "PAUSED"].contains(&t.status.as_str()) {
        return Err(invalid(format!("A template in status {} cannot be edited.", t.status)));
    }
    let within = |secs: u64| t.approved_edits.iter().filter(|e| now.saturating_sub(**e) < secs).count();
    if t.status == "APPROVED" && (within(DAY) >= 1 || within(30 * DAY) >= 10) {
        return Err(invalid(
            "An approved template can be edited once in 24 hours and 10 times in 30 days; this one has reached that limit.",
        ));
    }
    if category.is_some_and(|c| c != t.category) && t.status == "APPROVED" {
        return Err(invalid("The category of an approved template cannot be changed."));
    }
    Ok(())
}

/// An edit checked against the template as it was read, to be written by [`Edit::commit`].
struct Edit {
    id: String,
    category: Option<String>,
    components: Option<Value>,
    now: u64,
}

impl Edit {
    /// Checks an edit's body against the template as it is now.
    fn prepare(state: &State, id: &str, body: &[u8]) -> Result<Self, GraphError> {
        let req: Map<String, Value> =
            serde_json::from_slice(body).map_err(|e| invalid(format!("The body is not a JSON object: {e}")))?;
        let current = state
            .lock()
            .saved
            .templates
            .iter()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| GraphError::unknown_node(id, "post"))?;
        let now = unix_now();
        let asked = req.get("category").map(|c| upper(Some(c)));
        editable(&current, asked.as_deref(), now)?;
        if let Some(k) =
            req.keys().find(|k| !["components", "category", "message_send_ttl_seconds"].contains(&k.as_str()))
        {
            return Err(invalid(format!("Param {k} cannot be edited.")));
        }
        let category = asked.clone().unwrap_or(current.category.clone());
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(invalid("Param category must be AUTHENTICATION, MARKETING or UTILITY."));
        }
        let components = req
            .get("components")
            .map(|c| check_components(c, &category, current.parameter_format == "NAMED"))
            .transpose()?;
        Ok(Self { id: id.to_owned(), category: asked, components, now })
    }

    /// Writes the edit; the template edited, and its old category when that changed.
    fn commit(self, state: &State) -> Result<(Template, Option<String>), GraphError> {
        let edited = {
            let mut inner = state.lock();
            let t = inner
                .saved
                .templates
                .iter_mut()
                .find(|t| t.id == self.id)
                .ok_or_else(|| GraphError::unknown_node(&self.id, "post"))?;
            // Checked again where the edit is written: another edit may have landed since it
            // was prepared, and only one may pass.
            editable(t, self.category.as_deref(), self.now)?;
            let category = self.category.unwrap_or_else(|| t.category.clone());
            // A new category is announced once the template passes review again.
            let recategorized = (category != t.category).then(|| t.category.clone());
            if t.status == "APPROVED" {
                t.approved_edits.push(self.now);
            }
            if let Some(c) = self.components {
                t.components = c;
            }
            t.category = category;
            t.status = "PENDING".into();
            t.rejected_reason = None;
            (t.clone(), recategorized)
        };
        state.save();
        Ok(edited)
    }
}

/// `POST /{template-id}`: replace components or change category; back to review.
pub fn edit(state: &Shared, id: &str, body: &[u8]) -> Result<Response, GraphError> {
    let edit = Edit::prepare(state, id, body)?;
    let new_components = edit.components.is_some();
    let (t, recategorized) = edit.commit(state)?;
    if new_components {
        webhook::push_field(state, &t.waba_id, "message_template_components_update", components_update(&t));
    }
    review_then(state, id, recategorized);
    Ok(axum::Json(json!({ "success": true })).into_response())
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    name: Option<String>,
    hsm_id: Option<String>,
}

/// `DELETE /{waba-id}/message_templates?name=…[&hsm_id=…]`: every language of a name, or one.
pub async fn delete(
    AxState(state): AxState<Shared>,
    call: GraphCall,
    GraphQuery(q): GraphQuery<DeleteQuery>,
) -> Result<Response, GraphError> {
    let waba = state.business(&call.node).ok_or_else(|| GraphError::unknown_node(&call.node, "delete"))?;
    let name = q.name.ok_or_else(|| GraphError::missing("name"))?;
    let chosen =
        |t: &Template| t.waba_id == waba.waba_id && t.name == name && q.hsm_id.as_ref().is_none_or(|h| &t.id == h);
    let removed = {
        let mut inner = state.lock();
        // `template-management.md`: "DISABLED templates cannot be deleted".
        if inner.saved.templates.iter().any(|t| chosen(t) && t.status == "DISABLED") {
            return Err(invalid(format!(
                "Message template '{name}' is disabled; disabled templates cannot be deleted."
            )));
        }
        let before = inner.saved.templates.len();
        let approved = inner.saved.templates.iter().any(|t| chosen(t) && t.status == "APPROVED");
        inner.saved.templates.retain(|t| !chosen(t));
        // The name of a deleted approved template stays taken for 30 days.
        if approved {
            inner.saved.deleted_names.insert(format!("{}/{name}", waba.waba_id), unix_now());
        }
        before - inner.saved.templates.len()
    };
    if removed == 0 {
        return Err(invalid(format!("Message template '{name}' was not found.")));
    }
    state.save();
    Ok(axum::Json(json!({ "success": true })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_edits_prepared_together_only_the_first_written_passes() {
        let (outbox, _queue) = crate::outbox::Outbox::new();
        let seed = crate::seed::Seed::generate(None, None, None);
        let config =
            crate::config::SandboxConfig { seed, webhook_url: None, delays: Default::default(), state_dir: None };
        let state = State::new(config, outbox);
        let id = state.lock().saved.templates[0].id.clone();
        let body = |text: &str| json!({"components": [{"type": "BODY", "text": text}]}).to_string();
        // Both pass their checks against the approved, never edited `hello_world`…
        let first = Edit::prepare(&state, &id, body("First edit.").as_bytes()).unwrap();
        let second = Edit::prepare(&state, &id, body("Second edit.").as_bytes()).unwrap();
        // …but once one is written the template is in review, and the other must not be.
        first.commit(&state).unwrap();
        let refused = second.commit(&state).unwrap_err();
        assert!(refused.body.to_string().contains("PENDING"), "{}", refused.body);
        let t = state.lock().saved.templates[0].clone();
        assert_eq!((t.components[0]["text"].as_str(), t.approved_edits.len()), (Some("First edit."), 1));
    }

    #[test]
    fn variables_in_order() {
        assert_eq!(variables("Hi {{1}}, your {{ 2 }} and {{first_name}}"), ["1", "2", "first_name"]);
        assert!(variables("no variables").is_empty());
    }

    #[test]
    fn positional_variables_run_in_order_with_examples() {
        let ex = json!({"body_text": [["a", "b"]]});
        assert!(check_variables(&["1".into(), "2".into()], false, Some(&ex)).is_ok());
        assert!(check_variables(&["1".into(), "3".into()], false, Some(&ex)).is_err());
        assert!(check_variables(&["1".into(), "2".into()], false, None).is_err());
        let named = json!({"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]});
        assert!(check_variables(&["first_name".into()], true, Some(&named)).is_ok());
        assert!(check_variables(&["First".into()], true, Some(&named)).is_err());
    }
}
