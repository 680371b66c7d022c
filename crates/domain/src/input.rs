//! Text from outside made storable on every backend. PostgreSQL refuses a NUL in text and an
//! index entry over about 2.7 KB, where SQLite stores both; so the rule is decided here, once:
//! - what clients send must be NUL-free, or is refused with the field named ([`nul_free`]);
//! - what Meta sends is never refused (refusing it would lose a customer's message): NUL and
//!   lone surrogates become U+FFFD ([`parse_from_meta`]), and identifiers too long to index are
//!   shortened to a stable form ([`bound_ids`]).

use std::borrow::Cow;

use memchr::memmem;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::validation::FieldError;

/// True when `json` may hold a NUL (the only way JSON text carries one is the `\u0000` escape):
/// the cheap test that spares well-formed bodies the walk of [`nul_free`].
pub fn may_hold_nul(json: &[u8]) -> bool {
    memmem::find(json, br"\u0000").is_some()
}

/// Refuses a NUL in any string or object key of a client's JSON, naming the first field that
/// holds one.
pub fn nul_free(value: &Value) -> Result<(), FieldError> {
    match find_nul(value, String::new()) {
        None => Ok(()),
        Some(path) => Err(FieldError::new(
            path,
            "nul_character",
            "must not contain the NUL character (\\u0000); no text wagate stores may hold one",
        )),
    }
}

fn find_nul(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| find_nul(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() {
                k.replace('\0', "\u{FFFD}")
            } else {
                format!("{path}.{}", k.replace('\0', "\u{FFFD}"))
            };
            if k.contains('\0') { Some(child) } else { find_nul(v, child) }
        }),
        _ => None,
    }
}

/// Refuses a NUL in one text a client gave outside JSON (a query parameter, a path segment).
pub fn nul_free_text(path: &str, text: &str) -> Result<(), FieldError> {
    if text.contains('\0') {
        return Err(FieldError::new(path, "nul_character", "must not contain the NUL character (%00)"));
    }
    Ok(())
}

/// Characters that change the direction text is shown in (bidirectional formatting): in a short
/// label they make it read as something else (`U+202E` reverses what follows).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` shows as something: not a space, a control, nor one of Unicode's default-ignorable
/// code points (zero-width characters, joiners, variation selectors, fillers, tags).
pub fn is_visible(c: char) -> bool {
    let ignorable = matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}'
        | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}');
    !(ignorable || c.is_whitespace() || c.is_control())
}

/// Parses JSON that Meta sent (a webhook, a Graph answer) so that everything in it can be
/// stored: a `\u0000` escape becomes U+FFFD, and when the text does not parse as it is, lone
/// surrogate escapes and bytes that are not UTF-8 become U+FFFD too and it is parsed again.
/// Well-formed input takes one pass, as `serde_json::from_slice` would.
pub fn parse_from_meta<T: DeserializeOwned>(json: &[u8]) -> serde_json::Result<T> {
    let nul_free = if may_hold_nul(json) { Cow::Owned(repair_escapes(json, false)) } else { Cow::Borrowed(json) };
    match serde_json::from_slice(&nul_free) {
        Ok(parsed) => Ok(parsed),
        Err(first) => {
            let utf8 = String::from_utf8_lossy(json);
            serde_json::from_slice(&repair_escapes(utf8.as_bytes(), true)).map_err(|_| first)
        }
    }
}

/// `json` with every `\u0000` escape, and with `surrogates` every unpaired surrogate escape,
/// replaced by `\ufffd`. Escapes only occur inside strings, so no string state is needed: a
/// backslash always starts an escape, and skipping two bytes passes `\\` and `\"`.
fn repair_escapes(json: &[u8], surrogates: bool) -> Vec<u8> {
    let hex4 = |at: usize| -> Option<u32> {
        let digits = json.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let is_unicode_escape = |at: usize| json.get(at) == Some(&b'\\') && json.get(at + 1) == Some(&b'u');
    let mut out = Vec::with_capacity(json.len());
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'\\', &json[at..]) {
        let escape = at + found;
        out.extend_from_slice(&json[at..escape]);
        let Some(code) = is_unicode_escape(escape).then(|| hex4(escape + 2)).flatten() else {
            let end = (escape + 2).min(json.len());
            out.extend_from_slice(&json[escape..end]);
            at = end;
            continue;
        };
        let mut end = escape + 6;
        let high = (0xD800..0xDC00).contains(&code);
        let paired = high && is_unicode_escape(end) && hex4(end + 2).is_some_and(|low| (0xDC00..0xE000).contains(&low));
        let replace = code == 0 || (surrogates && (0xD800..0xE000).contains(&code) && !paired);
        if paired {
            end += 6;
        }
        out.extend_from_slice(if replace { br"\ufffd" } else { &json[escape..end] });
        at = end;
    }
    out.extend_from_slice(&json[at..]);
    out
}

/// Bytes an identifier from Meta may take as it came. Meta's longest are BSUIDs (up to 256
/// characters); PostgreSQL indexes entries of up to about 2.7 KB, several ids to an entry.
pub const META_ID_MAX_BYTES: usize = 512;

/// Keys whose string values are Meta's identifiers: what wagate indexes and looks up.
const ID_KEYS: &[&str] = &[
    "id",
    "wa_id",
    "user_id",
    "from",
    "from_user_id",
    "to",
    "recipient_id",
    "recipient_user_id",
    "recipient_participant_id",
    "participant_id",
    "message_id",
    "phone_number_id",
    "group_id",
    "new_wa_id",
    "parent_user_id",
];

/// Shortens, everywhere in `value`, each identifier longer than [`META_ID_MAX_BYTES`] to its
/// first 400 bytes, `#` and a SHA-256 of the whole: the same long id always gives the same
/// short one, so duplicates are still recognised and statuses still find their message.
pub fn bound_ids(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(bound_ids),
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match v {
                    Value::String(s) if s.len() > META_ID_MAX_BYTES && ID_KEYS.contains(&k.as_str()) => {
                        *s = bounded_id(s);
                    }
                    other => bound_ids(other),
                }
            }
        }
        _ => {}
    }
}

/// `id` as [`bound_ids`] keeps it.
pub fn bounded_id(id: &str) -> String {
    if id.len() <= META_ID_MAX_BYTES {
        return id.to_owned();
    }
    let mut cut = 400;
    while !id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{}", &id[..cut], hex::encode(&Sha256::digest(id.as_bytes())[..16]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_nul_is_refused_with_its_path() {
        assert!(nul_free(&json!({"text": {"body": "fine"}, "n": 1})).is_ok());
        let e = nul_free(&json!({"text": {"body": "a\u{0}b"}})).unwrap_err();
        assert_eq!((e.path.as_str(), e.rule), ("text.body", "nul_character"));
        let e = nul_free(&json!({"tags": ["ok", "\u{0}"]})).unwrap_err();
        assert_eq!(e.path, "tags[1]");
        let e = nul_free(&json!({"attributes": {"k\u{0}": 1}})).unwrap_err();
        assert_eq!(e.path, "attributes.k\u{FFFD}");
        assert!(may_hold_nul(br#"{"a": "\u0000"}"#));
        assert!(!may_hold_nul(br#"{"a": "\u00e9"}"#));
        assert_eq!(nul_free_text("q", "a\0").unwrap_err().path, "q");
    }

    #[test]
    fn metas_nul_and_lone_surrogates_become_replacement_characters() {
        let v: Value = parse_from_meta(br#"{"name": "A\u0000na", "ok": "\u00e9\ud83d\ude00"}"#).unwrap();
        assert_eq!(v, json!({"name": "A\u{FFFD}na", "ok": "é😀"}));
        let v: Value = parse_from_meta(br#"{"a": "x\ud800y", "b": "\udc00", "c": "\ud800\u0041"}"#).unwrap();
        assert_eq!(v, json!({"a": "x\u{FFFD}y", "b": "\u{FFFD}", "c": "\u{FFFD}A"}));
        // An escaped backslash followed by text that looks like an escape is text.
        let v: Value = parse_from_meta(br#"{"a": "\\u0000 \\ud800"}"#).unwrap();
        assert_eq!(v, json!({"a": "\\u0000 \\ud800"}));
        let v: Value = parse_from_meta(b"{\"a\": \"caf\xe9\"}").unwrap();
        assert_eq!(v, json!({"a": "caf\u{FFFD}"}));
        assert!(parse_from_meta::<Value>(b"{\"a\": ").is_err());
    }

    #[test]
    fn long_ids_are_shortened_the_same_way_every_time() {
        let long = "w".repeat(10_000);
        let mut v = json!({"messages": [{"id": long, "from": "é".repeat(300), "text": {"body": long}}]});
        bound_ids(&mut v);
        let id = v["messages"][0]["id"].as_str().unwrap();
        assert!(id.len() <= META_ID_MAX_BYTES && id.starts_with("www") && id.contains('#'));
        assert_eq!(id, bounded_id(&long));
        assert_ne!(bounded_id(&long), bounded_id(&format!("{long}x")));
        assert_eq!(v["messages"][0]["from"].as_str().unwrap().len(), 400 + 1 + 32);
        assert_eq!(v["messages"][0]["text"]["body"].as_str().unwrap().len(), 10_000, "only ids are shortened");
        assert_eq!(bounded_id("wamid.short"), "wamid.short");
    }
}
