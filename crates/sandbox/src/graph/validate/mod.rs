//! Meta's checks on the body of `POST /{phone-number-id}/messages`, written from Meta's pages in
//! `reference/meta/docs/messages/` and independently of wagate's domain crate: this is the check
//! on wagate's own validation, so neither may share the other's mistakes.
//!
//! Errors read as Graph's do: a missing parameter is 131008, an unknown key or a value out of its
//! rules 100, a message type Meta does not have 131051; parameters are named `text['body']`.

use serde_json::Value;

use crate::errors::GraphError;

mod fields;
mod template;

use fields::*;
use template::template;

fn contacts(v: &Value) -> Check {
    let p = P::root("contacts");
    let list = v.as_array().ok_or_else(|| GraphError::invalid("Param contacts must be an array."))?;
    // The contacts page allows 257 per message (its OpenAPI schema says 5; the page wins).
    if list.is_empty() || list.len() > 257 {
        return Err(GraphError::invalid("Param contacts must have 1 to 257 contacts."));
    }
    for (i, c) in list.iter().enumerate() {
        let p = p.nth(i);
        let o = object(c, &p)?;
        only(o, &p, &["addresses", "birthday", "emails", "name", "org", "phones", "urls"])?;
        let name = child(o, "name", &p)?;
        let np = p.at("name");
        only(name, &np, &["formatted_name", "first_name", "last_name", "middle_name", "suffix", "prefix"])?;
        req(name, "formatted_name", &np, 1024)?;
        if let Some(b) = string(o, "birthday", &p, 10, false)? {
            let parts: Vec<&str> = b.split('-').collect();
            let ok = parts.len() == 3
                && parts.iter().zip([4, 2, 2]).all(|(x, n)| x.len() == n && x.bytes().all(|c| c.is_ascii_digit()));
            if !ok {
                return Err(GraphError::invalid(format!("Param {} must be YYYY-MM-DD.", p.at("birthday").0)));
            }
        }
        for (key, value_key, extra) in [
            ("emails", "email", &["type"][..]),
            ("phones", "phone", &["type", "wa_id"][..]),
            ("urls", "url", &["type"][..]),
        ] {
            let Some(items) = o.get(key) else { continue };
            let items = items
                .as_array()
                .ok_or_else(|| GraphError::invalid(format!("Param {} must be an array.", p.at(key).0)))?;
            for (j, item) in items.iter().enumerate() {
                let q = p.at(key).nth(j);
                let io = object(item, &q)?;
                let mut keys = vec![value_key];
                keys.extend_from_slice(extra);
                only(io, &q, &keys)?;
                let value = req(io, value_key, &q, 1024)?;
                if value_key == "email" && !value.contains('@') {
                    return Err(GraphError::invalid(format!("Param {} must be an email address.", q.at("email").0)));
                }
                if value_key == "url" && !is_http(value) {
                    return Err(GraphError::invalid(format!("Param {} must be a URL.", q.at("url").0)));
                }
            }
        }
    }
    Ok(())
}

fn text_object(o: &Obj, key: &str, p: &P, max: usize, required: bool) -> Check {
    match o.get(key) {
        None if required => Err(GraphError::missing(&p.at(key).at("text").0)),
        None => Ok(()),
        Some(v) => {
            let q = p.at(key);
            let t = object(v, &q)?;
            only(t, &q, &["text"])?;
            req(t, "text", &q, max).map(|_| ())
        }
    }
}

fn header(o: &Obj, p: &P, text_only: bool) -> Check {
    let Some(v) = o.get("header") else { return Ok(()) };
    let q = p.at("header");
    let h = object(v, &q)?;
    let kind = req(h, "type", &q, 20)?;
    match kind {
        "text" => {
            only(h, &q, &["type", "text", "sub_text"])?;
            req(h, "text", &q, 60)?;
            string(h, "sub_text", &q, 60, false).map(|_| ())
        }
        "image" | "video" | "document" if !text_only => {
            only(h, &q, &["type", kind])?;
            let extra: &[&str] = if kind == "document" { &["filename"] } else { &[] };
            media(h.get(kind).ok_or_else(|| GraphError::missing(&q.at(kind).0))?, &q.at(kind), extra)
        }
        other => {
            Err(GraphError::invalid(format!("Param {} has an unsupported header type '{other}'.", q.at("type").0)))
        }
    }
}

fn action_name(a: &Obj, p: &P, expected: &str) -> Check {
    if req(a, "name", p, 64)? == expected {
        Ok(())
    } else {
        Err(GraphError::invalid(format!("Param {} must be '{expected}'.", p.at("name").0)))
    }
}

fn cta(a: &Obj, p: &P) -> Check {
    only(a, p, &["name", "parameters"])?;
    action_name(a, p, "cta_url")?;
    let params = child(a, "parameters", p)?;
    let q = p.at("parameters");
    only(params, &q, &["display_text", "url"])?;
    req(params, "display_text", &q, 20)?;
    url(params, "url", &q)
}

fn interactive(v: &Value) -> Check {
    let p = P::root("interactive");
    let o = object(v, &p)?;
    let kind = req(o, "type", &p, 64)?;
    let a = || child(o, "action", &p);
    let ap = p.at("action");
    match kind {
        "button" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            header(o, &p, false)?;
            text_object(o, "body", &p, 1024, true)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["buttons"])?;
            let buttons = array(a, "buttons", &ap, 1, 3)?;
            let mut ids = Vec::new();
            let mut titles = Vec::new();
            for (i, b) in buttons.iter().enumerate() {
                let q = ap.at("buttons").nth(i);
                let bo = object(b, &q)?;
                only(bo, &q, &["type", "reply"])?;
                if req(bo, "type", &q, 16)? != "reply" {
                    return Err(GraphError::invalid(format!("Param {} must be 'reply'.", q.at("type").0)));
                }
                let r = child(bo, "reply", &q)?;
                let rq = q.at("reply");
                only(r, &rq, &["id", "title"])?;
                let id = req(r, "id", &rq, 256)?;
                if id.trim() != id {
                    return Err(GraphError::invalid(format!(
                        "Param {} cannot have leading or trailing spaces.",
                        rq.at("id").0
                    )));
                }
                ids.push(id);
                titles.push(req(r, "title", &rq, 20)?);
            }
            distinct(ids.into_iter(), "Button ids", &ap)?;
            distinct(titles.into_iter(), "Button titles", &ap)
        }
        "list" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            header(o, &p, true)?;
            // The list page allows a 4096-character body.
            text_object(o, "body", &p, 4096, true)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["button", "sections"])?;
            req(a, "button", &ap, 20)?;
            let sections = array(a, "sections", &ap, 1, 10)?;
            let mut rows = 0;
            let mut ids = Vec::new();
            for (i, s) in sections.iter().enumerate() {
                let q = ap.at("sections").nth(i);
                let so = object(s, &q)?;
                only(so, &q, &["title", "rows"])?;
                string(so, "title", &q, 24, sections.len() > 1)?;
                let list = array(so, "rows", &q, 0, 10)?;
                rows += list.len();
                for (j, r) in list.iter().enumerate() {
                    let rq = q.at("rows").nth(j);
                    let ro = object(r, &rq)?;
                    only(ro, &rq, &["id", "title", "description"])?;
                    ids.push(req(ro, "id", &rq, 200)?);
                    req(ro, "title", &rq, 24)?;
                    string(ro, "description", &rq, 72, false)?;
                }
            }
            if rows == 0 || rows > 10 {
                return Err(GraphError::invalid(format!(
                    "Param {} must hold 1 to 10 rows in all.",
                    ap.at("sections").0
                )));
            }
            distinct(ids.into_iter(), "Row ids", &ap)
        }
        "cta_url" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            header(o, &p, false)?;
            text_object(o, "body", &p, 1024, true)?;
            text_object(o, "footer", &p, 60, false)?;
            cta(a()?, &ap)
        }
        "flow" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            header(o, &p, false)?;
            text_object(o, "body", &p, 1024, true)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["name", "parameters"])?;
            action_name(a, &ap, "flow")?;
            let f = child(a, "parameters", &ap)?;
            let q = ap.at("parameters");
            only(
                f,
                &q,
                &[
                    "flow_message_version",
                    "flow_token",
                    "flow_id",
                    "flow_name",
                    "flow_cta",
                    "mode",
                    "flow_action",
                    "flow_action_payload",
                ],
            )?;
            if req(f, "flow_message_version", &q, 4)? != "3" {
                return Err(GraphError::invalid(format!("Param {} must be '3'.", q.at("flow_message_version").0)));
            }
            req(f, "flow_cta", &q, 30)?;
            match (f.get("flow_id"), f.get("flow_name")) {
                (Some(_), Some(_)) => {
                    return Err(GraphError::invalid(format!(
                        "Param {} cannot be given with {}: a flow is named by one of them.",
                        q.at("flow_name").0,
                        q.at("flow_id").0
                    )));
                }
                (None, None) => return Err(GraphError::missing(&q.at("flow_id").0)),
                _ => {}
            }
            if let Some(m) = string(f, "mode", &q, 16, false)?
                && !["draft", "published"].contains(&m)
            {
                return Err(GraphError::invalid(format!("Param {} must be draft or published.", q.at("mode").0)));
            }
            let action = string(f, "flow_action", &q, 16, false)?;
            if action.is_some_and(|a| !["navigate", "data_exchange"].contains(&a)) {
                return Err(GraphError::invalid(format!(
                    "Param {} must be navigate or data_exchange.",
                    q.at("flow_action").0
                )));
            }
            if f.contains_key("flow_action_payload") && action == Some("data_exchange") {
                return Err(GraphError::invalid(format!(
                    "Param {} is only taken with flow_action navigate.",
                    q.at("flow_action_payload").0
                )));
            }
            if let Some(payload) = f.get("flow_action_payload") {
                let pq = q.at("flow_action_payload");
                let po = object(payload, &pq)?;
                only(po, &pq, &["screen", "data"])?;
                if po.get("data").is_some_and(|d| d.as_object().is_none_or(Obj::is_empty)) {
                    return Err(GraphError::invalid(format!("Param {} must be a non-empty object.", pq.at("data").0)));
                }
            }
            Ok(())
        }
        "location_request_message" | "call_permission_request" => {
            only(o, &p, &["type", "body", "action"])?;
            text_object(o, "body", &p, 1024, true)?;
            let a = a()?;
            only(a, &ap, &["name"])?;
            action_name(a, &ap, if kind == "call_permission_request" { kind } else { "send_location" })
        }
        "product" => {
            only(o, &p, &["type", "body", "footer", "action"])?;
            text_object(o, "body", &p, 1024, false)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["catalog_id", "product_retailer_id"])?;
            req(a, "catalog_id", &ap, 128)?;
            req(a, "product_retailer_id", &ap, 256).map(|_| ())
        }
        "product_list" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            if !o.contains_key("header") {
                return Err(GraphError::missing(&p.at("header").0));
            }
            header(o, &p, true)?;
            text_object(o, "body", &p, 1024, true)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["catalog_id", "sections"])?;
            req(a, "catalog_id", &ap, 128)?;
            let sections = array(a, "sections", &ap, 1, 10)?;
            let mut items = 0;
            for (i, s) in sections.iter().enumerate() {
                let q = ap.at("sections").nth(i);
                let so = object(s, &q)?;
                only(so, &q, &["title", "product_items"])?;
                string(so, "title", &q, 24, sections.len() > 1)?;
                let list = array(so, "product_items", &q, 1, 30)?;
                items += list.len();
                for (j, item) in list.iter().enumerate() {
                    let iq = q.at("product_items").nth(j);
                    let io = object(item, &iq)?;
                    only(io, &iq, &["product_retailer_id"])?;
                    req(io, "product_retailer_id", &iq, 256)?;
                }
            }
            if items > 30 {
                return Err(GraphError::invalid(format!(
                    "Param {} must hold at most 30 products in all.",
                    ap.at("sections").0
                )));
            }
            Ok(())
        }
        "catalog_message" => {
            only(o, &p, &["type", "body", "footer", "action"])?;
            text_object(o, "body", &p, 1024, true)?;
            text_object(o, "footer", &p, 60, false)?;
            let a = a()?;
            only(a, &ap, &["name", "parameters"])?;
            action_name(a, &ap, "catalog_message")?;
            let params = child(a, "parameters", &ap)?;
            req(params, "thumbnail_product_retailer_id", &ap.at("parameters"), 256).map(|_| ())
        }
        "carousel" => {
            only(o, &p, &["type", "body", "action"])?;
            text_object(o, "body", &p, 1024, true)?;
            let a = a()?;
            only(a, &ap, &["cards"])?;
            let cards = array(a, "cards", &ap, 2, 10)?;
            let mut first_kind = None;
            let mut indexes = std::collections::HashSet::new();
            for (i, c) in cards.iter().enumerate() {
                let q = ap.at("cards").nth(i);
                let co = object(c, &q)?;
                match co.get("card_index").and_then(Value::as_u64) {
                    Some(n) if n <= 9 && indexes.insert(n) => {}
                    _ => {
                        return Err(GraphError::invalid(format!(
                            "Param {} must be a unique index from 0 to 9.",
                            q.at("card_index").0
                        )));
                    }
                }
                let kind = req(co, "type", &q, 16)?;
                if *first_kind.get_or_insert(kind) != kind {
                    return Err(GraphError::invalid(format!(
                        "Param {} must be the type of the first card: all cards of a carousel are of one type.",
                        q.at("type").0
                    )));
                }
                match kind {
                    "cta_url" => {
                        only(co, &q, &["card_index", "type", "header", "body", "action"])?;
                        header(co, &q, false)?;
                        if let Some(b) = co.get("body").and_then(|b| b.get("text")).and_then(Value::as_str)
                            && (chars(b) > 160 || b.matches('\n').count() > 2)
                        {
                            return Err(GraphError::invalid(format!(
                                "Param {} must be at most 160 characters and 2 lines.",
                                q.at("body").0
                            )));
                        }
                        cta(child(co, "action", &q)?, &q.at("action"))?;
                    }
                    "product" => {
                        only(co, &q, &["card_index", "type", "action"])?;
                        let act = child(co, "action", &q)?;
                        req(act, "product_retailer_id", &q.at("action"), 256)?;
                        req(act, "catalog_id", &q.at("action"), 128)?;
                    }
                    other => {
                        return Err(GraphError::invalid(format!(
                            "Param {} has an unsupported card type '{other}'.",
                            q.at("type").0
                        )));
                    }
                }
            }
            Ok(())
        }
        "address_message" => {
            only(o, &p, &["type", "header", "body", "footer", "action"])?;
            text_object(o, "body", &p, 1024, true)?;
            let a = a()?;
            action_name(a, &ap, "address_message")?;
            let params = child(a, "parameters", &ap)?;
            req(params, "country", &ap.at("parameters"), 2).map(|_| ())
        }
        "order_details" | "order_status" => {
            text_object(o, "body", &p, 1024, true)?;
            a().map(|_| ())
        }
        other => Err(GraphError::invalid(format!("Param {} has an unsupported value '{other}'.", p.at("type").0))),
    }
}

/// Meta's message types.
pub(super) const TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
];

const GROUP_TYPES: &[&str] = &["text", "image", "audio", "video", "document", "sticker", "template"];

/// Checks a message body's content (the envelope is checked by the caller); its type.
pub fn content(body: &Obj) -> Result<String, GraphError> {
    let kind = match body.get("type") {
        None => "text".to_owned(),
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return Err(GraphError::whatsapp(
                axum::http::StatusCode::BAD_REQUEST,
                131051,
                "Unsupported message type",
                format!("Message type {other} is not supported."),
            ));
        }
    };
    let mut keys = vec![
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "context",
        "biz_opaque_callback_data",
        "recipient_identity_key_hash",
    ];
    keys.push(kind.as_str());
    only(body, &P::root("message"), &keys)?;
    // Groups take text, media and templates (`groups/groups-messaging.mdx`); the docs name no
    // other type, so the rest are refused rather than accepted and never shown.
    if body.get("recipient_type").and_then(Value::as_str) == Some("group") && !GROUP_TYPES.contains(&kind.as_str()) {
        return Err(GraphError::invalid(format!(
            "Param type '{kind}' cannot be sent to a group: groups take text, media and templates."
        )));
    }
    let v = body.get(&kind).ok_or_else(|| GraphError::missing(&kind))?;
    let p = P::root(&kind);
    match kind.as_str() {
        "text" => {
            let o = object(v, &p)?;
            only(o, &p, &["body", "preview_url"])?;
            req(o, "body", &p, 4096)?;
            boolean(o, "preview_url", &p)
        }
        "image" | "video" => media(v, &p, &["caption"]),
        "document" => media(v, &p, &["caption", "filename"]),
        "audio" => media(v, &p, &["voice"]),
        "sticker" => media(v, &p, &[]),
        "location" => location(v, &p),
        "contacts" => contacts(v),
        "reaction" => {
            let o = object(v, &p)?;
            only(o, &p, &["message_id", "emoji"])?;
            req(o, "message_id", &p, 512)?;
            // An empty emoji takes a reaction back.
            match o.get("emoji") {
                Some(Value::String(e)) if chars(e) <= 32 => Ok(()),
                Some(_) => Err(GraphError::invalid("Param reaction['emoji'] must be one emoji.")),
                None => Err(GraphError::missing("reaction['emoji']")),
            }
        }
        "interactive" => interactive(v),
        _ => template(v),
    }?;
    if let Some(data) = body.get("biz_opaque_callback_data")
        && data.as_str().is_none_or(|d| chars(d) > 512)
    {
        return Err(GraphError::invalid("Param biz_opaque_callback_data must be a string of at most 512 characters."));
    }
    if let Some(c) = body.get("context") {
        let co = object(c, &P::root("context"))?;
        only(co, &P::root("context"), &["message_id"])?;
        req(co, "message_id", &P::root("context"), 512)?;
        if kind == "reaction" {
            return Err(GraphError::invalid(
                "Param context cannot be given with a reaction: a reaction is not a reply.",
            ));
        }
    }
    Ok(kind)
}
