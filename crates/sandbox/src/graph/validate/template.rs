//! Template sends: the template named, its language, and its components' values, in Meta's
//! shapes and limits.

use serde_json::Value;

use super::fields::*;
use crate::errors::GraphError;

/// The shape of a template send; whether it matches an approved template is checked apart, so
/// a value out of Meta's rules is refused (100) before the template is looked up.
pub(super) fn template(v: &Value) -> Check {
    let p = P::root("template");
    let o = object(v, &p)?;
    only(o, &p, &["name", "language", "components"])?;
    let name = req(o, "name", &p, 512)?;
    // Template names are lowercase letters, digits and underscores (`templates/overview.mdx`).
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(GraphError::invalid(format!(
            "Param {} may hold only lowercase letters, digits and underscores.",
            p.at("name").0
        )));
    }
    let lp = p.at("language");
    let lang = child(o, "language", &p)?;
    only(lang, &lp, &["code", "policy"])?;
    if !is_language_code(req(lang, "code", &lp, 16)?) {
        return Err(GraphError::invalid(format!(
            "Param {} must be a language code such as en or en_US.",
            lp.at("code").0
        )));
    }
    if string(lang, "policy", &lp, 32, false)?.is_some_and(|policy| policy != "deterministic") {
        return Err(GraphError::invalid(format!("Param {} must be 'deterministic'.", lp.at("policy").0)));
    }
    match o.get("components") {
        Some(c) => template_components(c, &p.at("components")),
        None => Ok(()),
    }
}

/// `en`, `fil`, `en_US`, `prs_AF`: the forms of `templates/supported-languages.mdx`.
fn is_language_code(code: &str) -> bool {
    let (lang, region) = code.split_once('_').unwrap_or((code, "AA"));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.len() == 2
        && region.bytes().all(|b| b.is_ascii_uppercase())
}

fn template_components(v: &Value, p: &P) -> Check {
    let list = v.as_array().ok_or_else(|| GraphError::invalid(format!("Param {} must be an array.", p.0)))?;
    for (i, c) in list.iter().enumerate() {
        let q = p.nth(i);
        let co = object(c, &q)?;
        // Meta's examples write `type` and `sub_type` in either case.
        match req(co, "type", &q, 32)?.to_ascii_lowercase().as_str() {
            "header" => {
                only(co, &q, &["type", "parameters"])?;
                template_values(co, &q, 1, 1, None)?;
            }
            // A body without variables is sent as `"parameters": []` too (Meta sets no minimum).
            "body" => {
                only(co, &q, &["type", "parameters"])?;
                template_values(co, &q, 0, usize::MAX, None)?;
            }
            "limited_time_offer" | "tap_target_configuration" => {
                only(co, &q, &["type", "parameters"])?;
                template_values(co, &q, 1, usize::MAX, None)?;
            }
            "button" => template_button(co, &q)?,
            "carousel" => {
                only(co, &q, &["type", "cards"])?;
                let cards = array(co, "cards", &q, 2, 10)?;
                let mut indexes = std::collections::HashSet::new();
                for (j, card) in cards.iter().enumerate() {
                    let cq = q.at("cards").nth(j);
                    let card = object(card, &cq)?;
                    only(card, &cq, &["card_index", "components"])?;
                    match card.get("card_index").and_then(Value::as_u64) {
                        Some(n) if n <= 9 && indexes.insert(n) => {}
                        _ => {
                            return Err(GraphError::invalid(format!(
                                "Param {} must be a unique index from 0 to 9.",
                                cq.at("card_index").0
                            )));
                        }
                    }
                    let components =
                        card.get("components").ok_or_else(|| GraphError::missing(&cq.at("components").0))?;
                    template_components(components, &cq.at("components"))?;
                }
            }
            // Component types Meta adds later are left to the template check.
            _ => {}
        }
    }
    Ok(())
}

/// Which value type each button sub_type takes (`templates/components.mdx`, marketing templates).
fn button_value_type(sub_type: &str) -> Option<&'static str> {
    Some(match sub_type {
        "quick_reply" => "payload",
        "url" => "text",
        "copy_code" => "coupon_code",
        "flow" | "mpm" | "catalog" => "action",
        _ => return None,
    })
}

fn template_button(co: &Obj, q: &P) -> Check {
    only(co, q, &["type", "sub_type", "index", "parameters"])?;
    let sub_type = req(co, "sub_type", q, 32)?.to_ascii_lowercase();
    let Some(value_type) = button_value_type(&sub_type) else {
        return Err(GraphError::invalid(format!(
            "Param {} must be quick_reply, url, copy_code, flow, mpm or catalog.",
            q.at("sub_type").0
        )));
    };
    // The docs write the index as a number and as a string.
    let index = match co.get("index") {
        None => return Err(GraphError::missing(&q.at("index").0)),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        Some(_) => None,
    };
    if index.is_none_or(|i| i > 9) {
        return Err(GraphError::invalid(format!("Param {} must be a button index from 0 to 9.", q.at("index").0)));
    }
    // A catalog button may leave its thumbnail to the catalog (`catalog-templates.mdx`).
    if sub_type == "catalog" && !co.contains_key("parameters") {
        return Ok(());
    }
    template_values(co, q, 1, usize::MAX, Some(value_type))
}

/// A component's `parameters`: at most `max`, all named or all positional, each of a type Meta
/// has (`only` of one type, for buttons).
fn template_values(co: &Obj, q: &P, min: usize, max: usize, only_type: Option<&str>) -> Check {
    let values = array(co, "parameters", q, min, max)?;
    let named = values.first().is_some_and(|v| v.get("parameter_name").is_some());
    for (j, v) in values.iter().enumerate() {
        let vq = q.at("parameters").nth(j);
        let vo = object(v, &vq)?;
        if vo.contains_key("parameter_name") != named {
            return Err(GraphError::invalid(format!(
                "Param {} must be given on all of a component's values or on none.",
                vq.at("parameter_name").0
            )));
        }
        let kind = req(vo, "type", &vq, 32)?;
        if only_type.is_some_and(|t| t != kind) {
            return Err(GraphError::invalid(format!(
                "Param {} must be '{}' for this button.",
                vq.at("type").0,
                only_type.unwrap_or_default()
            )));
        }
        template_value(vo, kind, &vq)?;
    }
    Ok(())
}

fn template_value(vo: &Obj, kind: &str, vq: &P) -> Check {
    only(vo, vq, &["type", "parameter_name", kind])?;
    let inner = || vo.get(kind).ok_or_else(|| GraphError::missing(&vq.at(kind).0));
    let ip = vq.at(kind);
    match kind {
        "text" => req(vo, "text", vq, 32_768).map(|_| ()),
        "payload" => req(vo, "payload", vq, 1024).map(|_| ()),
        "group_id" => req(vo, "group_id", vq, 256).map(|_| ()),
        "coupon_code" => {
            let code = req(vo, "coupon_code", vq, 20)?;
            if code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Ok(())
            } else {
                Err(GraphError::invalid(format!("Param {} may hold only letters and digits.", ip.0)))
            }
        }
        "currency" => {
            let c = object(inner()?, &ip)?;
            only(c, &ip, &["fallback_value", "code", "amount_1000"])?;
            req(c, "fallback_value", &ip, 1024)?;
            // ISO 4217: three capital letters.
            let code = req(c, "code", &ip, 3)?;
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(GraphError::invalid(format!(
                    "Param {} must be an ISO 4217 code such as USD.",
                    ip.at("code").0
                )));
            }
            match c.get("amount_1000") {
                None => Err(GraphError::missing(&ip.at("amount_1000").0)),
                Some(a) if a.is_i64() => Ok(()),
                Some(_) => Err(GraphError::invalid(format!("Param {} must be an integer.", ip.at("amount_1000").0))),
            }
        }
        "date_time" => {
            // The calendar fields are taken and ignored: Cloud API always shows the fallback.
            req(object(inner()?, &ip)?, "fallback_value", &ip, 1024).map(|_| ())
        }
        "image" | "video" => media(inner()?, &ip, &[]),
        "document" => media(inner()?, &ip, &["filename"]),
        "location" => location(inner()?, &ip),
        "product" => {
            let p = object(inner()?, &ip)?;
            only(p, &ip, &["product_retailer_id", "catalog_id"])?;
            req(p, "product_retailer_id", &ip, 256)?;
            req(p, "catalog_id", &ip, 128).map(|_| ())
        }
        "action" => object(inner()?, &ip).map(|_| ()),
        "limited_time_offer" => match object(inner()?, &ip)?.get("expiration_time_ms") {
            Some(t) if t.is_i64() => Ok(()),
            Some(_) => Err(GraphError::invalid(format!("Param {} must be an integer.", ip.at("expiration_time_ms").0))),
            None => Err(GraphError::missing(&ip.at("expiration_time_ms").0)),
        },
        "tap_target_configuration" => {
            let targets =
                inner()?.as_array().ok_or_else(|| GraphError::invalid(format!("Param {} must be an array.", ip.0)))?;
            for (k, t) in targets.iter().enumerate() {
                let tq = ip.nth(k);
                let to = object(t, &tq)?;
                only(to, &tq, &["url", "title"])?;
                url(to, "url", &tq)?;
                req(to, "title", &tq, 1024)?;
            }
            Ok(())
        }
        other => Err(GraphError::invalid(format!("Param {} has an unsupported value '{other}'.", vq.at("type").0))),
    }
}
