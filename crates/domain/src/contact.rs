//! Contacts: how Meta's user ids become the counterparts messages are filed under, and the rules
//! of the fields a business keeps on a contact (attributes, tags, marketing opt-out).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::input;
use crate::message::from_value;
use crate::validation::{FieldError, check_length};

/// Tags per contact, at most.
pub const MAX_TAGS: usize = 50;
/// Characters per tag, at most.
pub const MAX_TAG_LEN: usize = 64;
/// Attributes per contact, at most (after a merge).
pub const MAX_ATTRIBUTES: usize = 100;
/// Characters per attribute name, at most.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
/// Bytes of a contact's attributes as JSON, at most (after a merge).
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// The counterpart a message with this customer is filed under: `+` and the digits of a
/// phone-number wa_id (as the API shows numbers), anything else (a BSUID) as it is.
pub fn counterpart(id: &str) -> String {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) { format!("+{id}") } else { id.to_owned() }
}

/// Characters of a business-scoped user id after its country code (and `ENT`), at most.
pub const USER_ID_BODY_MAX: usize = 128;

/// A business-scoped user id as Meta writes it (`business-scoped-user-ids.mdx`): a two-letter
/// ISO 3166 country code, a period and up to 128 alphanumerics (`US.13491208655302741918`); a
/// parent BSUID has `ENT` between (`US.ENT.11815799212886844830`); Meta's examples also show
/// `user.` and a hex digest. Anything else (`undefined`, `msg_01`, `wamid.…`) is not a user id.
pub fn parse_user_id(s: &str) -> Option<&str> {
    let (scope, body) = s.split_once('.')?;
    let body = body.strip_prefix("ENT.").filter(|_| scope != "user").unwrap_or(body);
    let body_ok = (1..=USER_ID_BODY_MAX).contains(&body.len()) && body.bytes().all(|b| b.is_ascii_alphanumeric());
    (body_ok && (scope == "user" || is_country_code(scope))).then_some(s)
}

/// ISO 3166-1 alpha-2 codes assigned to countries and territories, and `XK` (Kosovo), which
/// WhatsApp uses.
fn is_country_code(code: &str) -> bool {
    const CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN \
        BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ \
        EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM \
        HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK \
        LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG \
        NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG \
        SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM \
        US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";
    code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && CODES.split_ascii_whitespace().any(|c| c == code)
}

/// Meta's id as given, or nothing for the empty string Meta sends for an unknown phone number
/// (`business-scoped-user-ids.mdx`: `wa_id` is empty for some username users).
pub fn non_empty(id: Option<&str>) -> Option<String> {
    id.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// How names and tags are compared in searches: Unicode lowercase, done here and stored, so
/// both backends match alike (SQLite's `lower()` folds ASCII only).
pub fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Whether a customer is opted out of marketing, from their latest stop and latest resume: a
/// rule on the two maxima, so the order webhooks arrive in does not matter.
pub fn marketing_opted_out<T: PartialOrd>(latest_stop: Option<T>, latest_resume: Option<T>) -> bool {
    match (latest_stop, latest_resume) {
        (Some(stop), Some(resume)) => stop > resume,
        (stop, _) => stop.is_some(),
    }
}

/// `PATCH /v1/contacts/{id}`, parsed and checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContactPatch {
    /// Attributes to set; a `null` value deletes the key.
    pub attributes: Option<Map<String, Value>>,
    /// The new tags, replacing the old ones; unique, in the order given.
    pub tags: Option<Vec<String>>,
    /// True: the customer opted out of marketing messages; false: they opted in again.
    pub marketing_opt_out: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatch {
    #[serde(default)]
    attributes: Option<Map<String, Value>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    marketing_opt_out: Option<bool>,
}

impl ContactPatch {
    /// Parses the body; every error names its field and rule.
    pub fn parse(body: &Value) -> Result<Self, FieldError> {
        let raw: RawPatch = from_value("", body)?;
        if let Some(attributes) = &raw.attributes {
            for key in attributes.keys() {
                attribute_key(key)?;
            }
        }
        let tags = raw.tags.map(|t| parse_tags(&t)).transpose()?;
        if raw.attributes.is_none() && tags.is_none() && raw.marketing_opt_out.is_none() {
            return Err(FieldError::new(
                "",
                "empty_patch",
                "name at least one of attributes, tags or marketing_opt_out",
            ));
        }
        Ok(Self { attributes: raw.attributes, tags, marketing_opt_out: raw.marketing_opt_out })
    }
}

pub fn attribute_key(key: &str) -> Result<(), FieldError> {
    let path = format!("attributes.{key}");
    if key.is_empty() {
        return Err(FieldError::new("attributes", "min_length", "an attribute name must not be empty"));
    }
    check_length(&path, key, 1, MAX_ATTRIBUTE_KEY_LEN)?;
    if key.chars().any(char::is_control) {
        return Err(FieldError::new(path, "invalid_value", "an attribute name must not contain control characters"));
    }
    Ok(())
}

/// Tags: 1 to 64 characters without control characters, direction controls or surrounding
/// spaces, with at least one visible character; unique regardless of case (`VIP` and `vip` are
/// one tag); at most 50.
pub fn parse_tags(tags: &[String]) -> Result<Vec<String>, FieldError> {
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(
            "tags",
            "max_items",
            format!("must have at most {MAX_TAGS} tags, got {}", tags.len()),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let path = format!("tags[{i}]");
        check_length(&path, tag, 1, MAX_TAG_LEN)?;
        if tag.trim() != tag || tag.chars().any(|c| c.is_control() || input::is_bidi_control(c)) {
            return Err(FieldError::new(
                path,
                "invalid_value",
                "a tag must not start or end with spaces or contain control or text-direction characters",
            ));
        }
        if !tag.chars().any(input::is_visible) {
            return Err(FieldError::new(
                path,
                "invalid_value",
                "a tag must contain a visible character, not only spaces or invisible ones",
            ));
        }
        if let Some(same) = out.iter().find(|t| fold(t) == fold(tag)) {
            return Err(FieldError::new(path, "duplicate", format!("'{tag}' is the tag '{same}' given again")));
        }
        out.push(tag.clone());
    }
    Ok(out)
}

/// `current` with `patch` applied (a `null` deletes the key), within the limits on the whole.
pub fn merge_attributes(
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
) -> Result<Map<String, Value>, FieldError> {
    let mut merged = current.clone();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    if merged.len() > MAX_ATTRIBUTES {
        return Err(FieldError::new(
            "attributes",
            "max_items",
            format!("a contact may have at most {MAX_ATTRIBUTES} attributes; this would make {}", merged.len()),
        ));
    }
    let bytes = Value::Object(merged.clone()).to_string().len();
    if bytes > MAX_ATTRIBUTES_BYTES {
        return Err(FieldError::new(
            "attributes",
            "max_size",
            format!(
                "a contact's attributes may take at most {MAX_ATTRIBUTES_BYTES} bytes as JSON; this would make {bytes}"
            ),
        ));
    }
    Ok(merged)
}

/// The attributes of two contacts being merged: all of the older one's, then the newer one's
/// other keys in key order while they fit the limits. The rest of the newer one's are dropped:
/// a merge cannot be refused (it follows Meta's ids), and dropping by key order is the same
/// whatever order the merge's inputs were read in.
pub fn combine_attributes(older: &Map<String, Value>, newer: &Map<String, Value>) -> Map<String, Value> {
    let mut out = older.clone();
    let mut extra: Vec<_> = newer.iter().filter(|(k, _)| !older.contains_key(*k)).collect();
    extra.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in extra {
        if out.len() >= MAX_ATTRIBUTES {
            break;
        }
        out.insert(k.clone(), v.clone());
        if Value::Object(out.clone()).to_string().len() > MAX_ATTRIBUTES_BYTES {
            out.remove(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merged_attributes_keep_the_older_ones_within_the_limits() {
        let older: Map<String, Value> = (0..60).map(|i| (format!("a{i:02}"), json!(i))).collect();
        let mut newer: Map<String, Value> = (0..60).map(|i| (format!("b{i:02}"), json!(i))).collect();
        newer.insert("a00".into(), json!("newer"));
        let merged = combine_attributes(&older, &newer);
        assert_eq!(merged.len(), MAX_ATTRIBUTES);
        assert_eq!((&merged["a00"], merged.contains_key("b39"), merged.contains_key("b40")), (&json!(0), true, false));
        let big = |k: &str| (k.to_owned(), json!("x".repeat(MAX_ATTRIBUTES_BYTES / 3)));
        let older: Map<String, Value> = [big("a")].into_iter().collect();
        let newer: Map<String, Value> = [big("b"), big("c"), big("d"), ("e".into(), json!(1))].into_iter().collect();
        let merged = combine_attributes(&older, &newer);
        assert!(Value::Object(merged.clone()).to_string().len() <= MAX_ATTRIBUTES_BYTES);
        assert_eq!(merged.keys().collect::<Vec<_>>(), ["a", "b", "e"], "what does not fit is skipped");
        assert!(merge_attributes(&merged, &Map::new()).is_ok());
    }

    #[test]
    fn opted_out_while_the_latest_stop_is_newer_than_the_latest_resume() {
        assert!(!marketing_opted_out::<i64>(None, None));
        assert!(marketing_opted_out(Some(3), None));
        assert!(marketing_opted_out(Some(3), Some(2)));
        assert!(!marketing_opted_out(Some(2), Some(2)));
        assert!(!marketing_opted_out(None, Some(2)));
        assert_eq!(fold("ÉLODIE Ñandú"), "élodie ñandú");
    }

    #[test]
    fn counterparts_put_a_plus_before_phone_numbers_only() {
        assert_eq!(counterpart("16505551234"), "+16505551234");
        assert_eq!(counterpart("US.13491208655302741918"), "US.13491208655302741918");
        assert_eq!(non_empty(Some("")), None);
        assert_eq!(non_empty(Some("1650")), Some("1650".into()));
    }

    #[test]
    fn patches_name_the_field_and_rule() {
        let err = |v: Value| ContactPatch::parse(&v).unwrap_err();
        let e = err(json!({"tags": ["vip", "vip"]}));
        assert_eq!((e.path.as_str(), e.rule), ("tags[1]", "duplicate"));
        let e = err(json!({"tags": ["VIP", "vip"]}));
        assert_eq!((e.path.as_str(), e.rule), ("tags[1]", "duplicate"));
        for invisible in ["\u{200B}", "\u{200B}\u{FEFF}", "\u{2060}\u{00AD}", "\u{3164}"] {
            let e = err(json!({"tags": [invisible]}));
            assert_eq!((e.path.as_str(), e.rule), ("tags[0]", "invalid_value"), "{invisible:?}");
        }
        for direction in ["vip\u{202E}", "\u{2066}vip", "a\u{200F}b"] {
            let e = err(json!({"tags": [direction]}));
            assert_eq!((e.path.as_str(), e.rule), ("tags[0]", "invalid_value"), "{direction:?}");
        }
        assert!(ContactPatch::parse(&json!({"tags": ["⭐\u{FE0F}", "niño", "a\u{200D}b"]})).is_ok());
        let e = err(json!({"tags": ["ok", ""]}));
        assert_eq!((e.path.as_str(), e.rule), ("tags[1]", "min_length"));
        let e = err(json!({"tags": [" padded"]}));
        assert_eq!((e.path.as_str(), e.rule), ("tags[0]", "invalid_value"));
        let e = err(json!({"tags": "vip"}));
        assert_eq!(e.path, "tags");
        let e = err(json!({"marketing_opt_out": "yes"}));
        assert_eq!(e.path, "marketing_opt_out");
        let e = err(json!({"nickname": "x"}));
        assert_eq!(e.rule, "unknown_field");
        let e = err(json!({}));
        assert_eq!(e.rule, "empty_patch");
        let long = "k".repeat(MAX_ATTRIBUTE_KEY_LEN + 1);
        let e = err(json!({"attributes": {long.clone(): 1}}));
        assert_eq!((e.path, e.rule), (format!("attributes.{long}"), "max_length"));
        let p = ContactPatch::parse(&json!({"tags": ["a", "b"], "marketing_opt_out": false})).unwrap();
        assert_eq!((p.tags, p.marketing_opt_out), (Some(vec!["a".into(), "b".into()]), Some(false)));
    }

    #[test]
    fn merges_delete_with_null_and_keep_limits() {
        let current = json!({"plan": "gold", "city": "Lima"}).as_object().unwrap().clone();
        let patch = json!({"city": null, "orders": 3}).as_object().unwrap().clone();
        assert_eq!(Value::Object(merge_attributes(&current, &patch).unwrap()), json!({"plan": "gold", "orders": 3}));
        let many: Map<String, Value> = (0..=MAX_ATTRIBUTES).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(merge_attributes(&Map::new(), &many).unwrap_err().rule, "max_items");
        let big = json!({"blob": "x".repeat(MAX_ATTRIBUTES_BYTES)}).as_object().unwrap().clone();
        assert_eq!(merge_attributes(&Map::new(), &big).unwrap_err().rule, "max_size");
    }
}
