//! What a person signing in to the team inbox must give: an email address, a name, a password.

use crate::validation::{FieldError, check_length};

/// Shortest password taken: long enough that guessing it online, at the rate sign-in allows, is
/// hopeless.
pub const PASSWORD_MIN: usize = 10;
/// Longest password taken: Argon2 hashes any length, but a megabyte is no password.
pub const PASSWORD_MAX: usize = 256;

/// An email address as users are found by it: trimmed and lower case, one `@` with something on
/// each side and a dot in the domain, no spaces or control characters, at most 254 characters.
pub fn parse_email(path: &str, input: &str) -> Result<String, FieldError> {
    let email = input.trim().to_lowercase();
    check_length(path, &email, 3, 254)?;
    let rule = || FieldError::new(path, "email", "must be an email address such as ana@example.com");
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(rule());
    }
    let (local, domain) = email.split_once('@').ok_or_else(rule)?;
    if local.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(rule());
    }
    Ok(email)
}

/// A person's name as shown to the others: 1 to 100 characters, trimmed, no control characters.
pub fn parse_name(path: &str, input: &str) -> Result<String, FieldError> {
    let name = input.trim();
    check_length(path, name, 1, 100)?;
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(path, "invalid_value", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A password: [`PASSWORD_MIN`] to [`PASSWORD_MAX`] characters, not only spaces, no NUL.
pub fn check_password(path: &str, password: &str) -> Result<(), FieldError> {
    check_length(path, password, PASSWORD_MIN, PASSWORD_MAX)?;
    if password.trim().is_empty() || password.contains('\0') {
        return Err(FieldError::new(path, "invalid_value", "must not be only spaces or contain NUL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_found_in_lower_case() {
        assert_eq!(parse_email("email", " Ana@Example.COM ").unwrap(), "ana@example.com");
        for bad in
            ["ana", "@example.com", "ana@", "ana@example", "a b@example.com", "ana@@example.com", "ana@example.com."]
        {
            assert_eq!(parse_email("email", bad).unwrap_err().path, "email", "{bad}");
        }
    }

    #[test]
    fn passwords_have_a_length() {
        assert!(check_password("password", "correct horse").is_ok());
        assert_eq!(check_password("password", "short").unwrap_err().rule, "min_length");
        assert_eq!(check_password("password", &"x".repeat(257)).unwrap_err().rule, "max_length");
        assert_eq!(check_password("password", "          ").unwrap_err().rule, "invalid_value");
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(parse_name("name", "  Zoë 🌸 ").unwrap(), "Zoë 🌸");
        assert!(parse_name("name", "a\u{7}b").is_err());
        assert!(parse_name("name", "  ").is_err());
    }
}
