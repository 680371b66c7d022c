//! Phone numbers in E.164 form, the only form the native API accepts for recipients.

use std::fmt;

use crate::validation::FieldError;

/// `+` followed by 7 to 15 digits, the first not 0: `+15551234567`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(path: &str, input: &str) -> Result<Self, FieldError> {
        let rule = |why: &str| {
            FieldError::new(path, "e164", format!("must be a phone number in E.164 form such as +15551234567 ({why})"))
        };
        let digits = input.strip_prefix('+').ok_or_else(|| rule("it must start with +"))?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(rule("only digits may follow the +"));
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(rule("it must have 7 to 15 digits"));
        }
        if digits.starts_with('0') {
            return Err(rule("a country code never starts with 0"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as WhatsApp ids write it: digits only.
    pub fn wa_id(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_only() {
        let p = PhoneNumber::parse("to", "+15551234567").unwrap();
        assert_eq!(p.wa_id(), "15551234567");
        for bad in ["15551234567", "+1555", "+1555123456789012", "+0555123456", "+1 555 123", ""] {
            let e = PhoneNumber::parse("to", bad).unwrap_err();
            assert_eq!((e.path.as_str(), e.rule), ("to", "e164"), "{bad}");
        }
    }
}
