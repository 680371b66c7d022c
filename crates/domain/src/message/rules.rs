//! The building blocks of Meta's limits: each rule written once, each error naming its path.

use crate::validation::{FieldError, check_length};

pub(crate) fn key(base: &str, k: &str) -> String {
    if base.is_empty() { k.to_owned() } else { format!("{base}.{k}") }
}

pub(crate) fn idx(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// 1 to `max` characters (Meta counts characters).
pub(crate) fn text(path: &str, value: &str, max: usize) -> Result<(), FieldError> {
    check_length(path, value, 1, max)
}

pub(crate) fn opt_text(path: &str, value: Option<&String>, max: usize) -> Result<(), FieldError> {
    value.map_or(Ok(()), |v| text(path, v, max))
}

/// Between `min` and `max` items.
pub(crate) fn count(path: &str, n: usize, min: usize, max: usize, what: &str) -> Result<(), FieldError> {
    if n < min {
        return Err(FieldError::new(path, "min_items", format!("must have at least {min} {what}, got {n}")));
    }
    if n > max {
        return Err(FieldError::new(path, "max_items", format!("must have at most {max} {what}, got {n}")));
    }
    Ok(())
}

/// An absolute `http` or `https` URL: the only schemes Meta fetches or opens.
pub(crate) fn http_url(path: &str, value: &str) -> Result<(), FieldError> {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        None => Err(FieldError::new(path, "url", "must be an http:// or https:// URL")),
        Some("") => Err(FieldError::new(path, "url", "must name a host")),
        Some(_) if value.chars().any(char::is_whitespace) => {
            Err(FieldError::new(path, "url", "must not contain whitespace"))
        }
        Some(_) if value.chars().count() > 2000 => {
            Err(FieldError::new(path, "max_length", "must be at most 2000 characters"))
        }
        Some(_) => Ok(()),
    }
}

/// No two of `values` (each with its path) are equal; the error names the later duplicate.
pub(crate) fn unique<'a>(values: impl IntoIterator<Item = (String, &'a str)>, what: &str) -> Result<(), FieldError> {
    let mut seen = std::collections::HashSet::new();
    for (path, v) in values {
        if !seen.insert(v) {
            return Err(FieldError::new(path, "unique", format!("repeats the {what} '{v}'; each must be unique")));
        }
    }
    Ok(())
}

/// `value` is one of `allowed`.
pub(crate) fn one_of(path: &str, value: &str, allowed: &[&str]) -> Result<(), FieldError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(path, "invalid_value", format!("must be one of {}, got '{value}'", allowed.join(", "))))
    }
}

/// A field that the surrounding type does not take.
pub(crate) fn forbidden(path: &str, why: &str) -> FieldError {
    FieldError::new(path, "not_allowed", format!("is not allowed {why}"))
}

pub(crate) fn required(path: &str, why: &str) -> FieldError {
    FieldError::new(path, "required", format!("is required {why}"))
}
