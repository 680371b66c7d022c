//! Field checks every message type's rules are made of, with parameters named as Graph names them.

use serde_json::{Map, Value};

use crate::errors::GraphError;

pub(super) type Obj = Map<String, Value>;
pub(super) type Check = Result<(), GraphError>;

/// A parameter's name as Graph writes it: `interactive['action']['buttons'][0]`.
#[derive(Clone)]
pub(super) struct P(pub(super) String);

impl P {
    pub(super) fn root(name: &str) -> Self {
        Self(name.to_owned())
    }
    pub(super) fn at(&self, key: &str) -> Self {
        Self(format!("{}['{key}']", self.0))
    }
    pub(super) fn nth(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }
}

pub(super) fn object<'a>(v: &'a Value, p: &P) -> Result<&'a Obj, GraphError> {
    v.as_object().ok_or_else(|| GraphError::invalid(format!("Param {} must be a JSON object.", p.0)))
}

pub(super) fn only(o: &Obj, p: &P, keys: &[&str]) -> Check {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(GraphError::invalid(format!("Unexpected key \"{k}\" on param \"{}\".", p.0))),
        None => Ok(()),
    }
}

pub(super) fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A string of 1 to `max` characters.
pub(super) fn string<'a>(
    o: &'a Obj,
    key: &str,
    p: &P,
    max: usize,
    required: bool,
) -> Result<Option<&'a str>, GraphError> {
    let q = p.at(key);
    match o.get(key) {
        None if required => Err(GraphError::missing(&q.0)),
        None => Ok(None),
        // Given but empty is a value out of its rules (100), not a missing parameter (131008).
        Some(Value::String(s)) if s.is_empty() && required => {
            Err(GraphError::invalid(format!("Param {} must be at least 1 character long.", q.0)))
        }
        Some(Value::String(s)) if chars(s) > max => {
            Err(GraphError::invalid(format!("Param {} must be at most {max} characters long.", q.0)))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid(format!("Param {} must be a string.", q.0))),
    }
}

pub(super) fn req<'a>(o: &'a Obj, key: &str, p: &P, max: usize) -> Result<&'a str, GraphError> {
    Ok(string(o, key, p, max, true)?.unwrap_or_default())
}

pub(super) fn boolean(o: &Obj, key: &str, p: &P) -> Check {
    match o.get(key) {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(_) => Err(GraphError::invalid(format!("Param {} must be a boolean.", p.at(key).0))),
    }
}

pub(super) fn array<'a>(o: &'a Obj, key: &str, p: &P, min: usize, max: usize) -> Result<&'a Vec<Value>, GraphError> {
    let q = p.at(key);
    match o.get(key) {
        None => Err(GraphError::missing(&q.0)),
        Some(Value::Array(a)) if a.len() < min => {
            Err(GraphError::invalid(format!("Param {} must have at least {min} element(s).", q.0)))
        }
        Some(Value::Array(a)) if a.len() > max => {
            Err(GraphError::invalid(format!("Param {} must have at most {max} elements.", q.0)))
        }
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(GraphError::invalid(format!("Param {} must be an array.", q.0))),
    }
}

pub(super) fn child<'a>(o: &'a Obj, key: &str, p: &P) -> Result<&'a Obj, GraphError> {
    match o.get(key) {
        None => Err(GraphError::missing(&p.at(key).0)),
        Some(v) => object(v, &p.at(key)),
    }
}

pub(super) fn is_http(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && !url.contains(char::is_whitespace)
}

pub(super) fn url(o: &Obj, key: &str, p: &P) -> Check {
    let u = req(o, key, p, 2000)?;
    if is_http(u) {
        Ok(())
    } else {
        Err(GraphError::invalid(format!("Param {} must be an http or https URL.", p.at(key).0)))
    }
}

pub(super) fn distinct<'a>(values: impl Iterator<Item = &'a str>, what: &str, p: &P) -> Check {
    let mut seen = std::collections::HashSet::new();
    for v in values {
        if !seen.insert(v) {
            return Err(GraphError::invalid(format!("{what} must be unique in {}: '{v}' repeats.", p.0)));
        }
    }
    Ok(())
}

/// `{"id"}` or `{"link"}`, never both (media messages and headers).
pub(super) fn media(v: &Value, p: &P, extra: &[&str]) -> Check {
    let o = object(v, p)?;
    let mut keys = vec!["id", "link"];
    keys.extend_from_slice(extra);
    only(o, p, &keys)?;
    match (o.get("id"), o.get("link")) {
        (Some(_), Some(_)) => Err(GraphError::invalid(format!("Param {} takes id or link, not both.", p.0))),
        (None, None) => Err(GraphError::missing(&p.at("id").0)),
        (Some(_), None) => req(o, "id", p, 512).map(|_| ()),
        (None, Some(_)) => url(o, "link", p),
    }?;
    if extra.contains(&"caption") {
        string(o, "caption", p, 1024, false)?;
    }
    if extra.contains(&"filename") && string(o, "filename", p, 255, false)? == Some("") {
        // The client picks the document's icon from the filename's extension.
        return Err(GraphError::invalid(format!("Param {} must be at least 1 character long.", p.at("filename").0)));
    }
    if extra.contains(&"voice") {
        boolean(o, "voice", p)?;
    }
    Ok(())
}

pub(super) fn coordinate(o: &Obj, key: &str, p: &P, bound: f64) -> Check {
    let q = p.at(key);
    let v = match o.get(key) {
        None => return Err(GraphError::missing(&q.0)),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match v {
        Some(x) if x.is_finite() && x.abs() <= bound => Ok(()),
        _ => Err(GraphError::invalid(format!("Param {} must be a number between -{bound} and {bound}.", q.0))),
    }
}

pub(super) fn location(v: &Value, p: &P) -> Check {
    let o = object(v, p)?;
    only(o, p, &["latitude", "longitude", "name", "address"])?;
    coordinate(o, "latitude", p, 90.0)?;
    coordinate(o, "longitude", p, 180.0)?;
    string(o, "name", p, 1000, false)?;
    string(o, "address", p, 1000, false).map(|_| ())
}
