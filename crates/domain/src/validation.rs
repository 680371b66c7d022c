//! Field errors: which JSON path broke which rule. Every surface maps these to its own shape.

use std::fmt;

/// One violated rule at one JSON path (`text.body`, `to`, `interactive.action.buttons[2].title`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    /// Stable snake_case name of the rule, for programs (`max_length`, `e164`, `required`).
    pub rule: &'static str,
    /// Sentence for people; names the field and the rule.
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = format!("{path}: {}", message.into());
        Self { path, rule, message }
    }

    pub fn required(path: impl Into<String>) -> Self {
        Self::new(path, "required", "is required")
    }

    /// Prefixes the path, for errors raised by a nested parser (`body` → `text.body`).
    pub fn within(mut self, parent: &str) -> Self {
        if !parent.is_empty() {
            let old = std::mem::take(&mut self.path);
            let joined = if old.is_empty() { parent.to_owned() } else { format!("{parent}.{old}") };
            self.message = self.message.replacen(&old, &joined, 1);
            self.path = joined;
        }
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

/// Checks a string's length in characters (Meta counts characters, not bytes).
pub fn check_length(path: &str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let n = value.chars().count();
    if n < min {
        return Err(if min == 1 {
            FieldError::new(path, "min_length", "must not be empty")
        } else {
            FieldError::new(path, "min_length", format!("must be at least {min} characters, got {n}"))
        });
    }
    if n > max {
        return Err(FieldError::new(path, "max_length", format!("must be at most {max} characters, got {n}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(check_length("t", "ééé", 1, 3).is_ok());
        let e = check_length("text.body", "abcd", 1, 3).unwrap_err();
        assert_eq!((e.path.as_str(), e.rule), ("text.body", "max_length"));
        assert_eq!(e.message, "text.body: must be at most 3 characters, got 4");
        assert_eq!(check_length("x", "", 1, 3).unwrap_err().rule, "min_length");
    }

    #[test]
    fn within_prefixes_path_and_message() {
        let e = FieldError::required("body").within("text");
        assert_eq!(e.path, "text.body");
        assert_eq!(e.message, "text.body: is required");
    }
}
