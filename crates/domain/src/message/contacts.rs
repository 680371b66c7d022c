//! `contacts` messages: contact cards, as an array of Meta's contact objects.

use serde::{Deserialize, Serialize};

use super::Validate;
use super::rules::{count, http_url, idx, key, opt_text, text};
use crate::validation::FieldError;

/// Meta's docs page allows 257 contacts per message; its OpenAPI spec says 5. The docs page
/// wins (DESIGN.md: follow the docs where they disagree).
pub const CONTACTS_MAX: usize = 257;
/// Meta documents no lengths for contact fields; this only stops nonsense.
const FIELD_MAX: usize = 1024;

macro_rules! optional_strings {
    ($(#[$doc:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<String>,
            )*
        }

        impl $name {
            fn validate_fields(&self, path: &str) -> Result<(), FieldError> {
                $(opt_text(&key(path, stringify!($field).trim_start_matches("r#")), self.$field.as_ref(), FIELD_MAX)?;)*
                Ok(())
            }
        }
    };
}

optional_strings!(
    /// A postal address; `type` is free text such as `HOME`, `WORK` or `Office`.
    Address { street, city, state, zip, country, country_code, r#type }
);
optional_strings!(
    /// `org`: company, department and title.
    Org { company, department, title }
);

/// `name`: `formatted_name` is what the card shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Name {
    pub formatted_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub email: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Phone {
    /// Any notation: `+1 (940) 555-1234`.
    pub phone: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The WhatsApp id: the card then offers "Message" instead of "Invite to WhatsApp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Url {
    pub url: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// One contact card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Address>>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<Email>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Org>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<Phone>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<Url>>,
}

fn birthday(path: &str, value: &str) -> Result<(), FieldError> {
    let rule = || FieldError::new(path, "date", "must be a date as YYYY-MM-DD");
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(rule());
    }
    let num = |r: std::ops::Range<usize>| value[r].parse::<u32>().ok();
    match (num(0..4), num(5..7), num(8..10)) {
        (Some(_), Some(m), Some(d)) if (1..=12).contains(&m) && (1..=31).contains(&d) => Ok(()),
        _ => Err(rule()),
    }
}

impl Validate for Contact {
    fn validate(&self, path: &str) -> Result<(), FieldError> {
        let name = key(path, "name");
        text(&key(&name, "formatted_name"), &self.name.formatted_name, FIELD_MAX)?;
        for (field, value) in [
            ("first_name", &self.name.first_name),
            ("last_name", &self.name.last_name),
            ("middle_name", &self.name.middle_name),
            ("suffix", &self.name.suffix),
            ("prefix", &self.name.prefix),
        ] {
            opt_text(&key(&name, field), value.as_ref(), FIELD_MAX)?;
        }
        if let Some(b) = &self.birthday {
            birthday(&key(path, "birthday"), b)?;
        }
        if let Some(org) = &self.org {
            org.validate_fields(&key(path, "org"))?;
        }
        for (i, a) in self.addresses.iter().flatten().enumerate() {
            a.validate_fields(&idx(&key(path, "addresses"), i))?;
        }
        for (i, e) in self.emails.iter().flatten().enumerate() {
            let p = idx(&key(path, "emails"), i);
            text(&key(&p, "email"), &e.email, 320)?;
            if !e.email.contains('@') {
                return Err(FieldError::new(key(&p, "email"), "email", "must be an email address"));
            }
            opt_text(&key(&p, "type"), e.kind.as_ref(), FIELD_MAX)?;
        }
        for (i, ph) in self.phones.iter().flatten().enumerate() {
            let p = idx(&key(path, "phones"), i);
            text(&key(&p, "phone"), &ph.phone, 64)?;
            opt_text(&key(&p, "type"), ph.kind.as_ref(), FIELD_MAX)?;
            opt_text(&key(&p, "wa_id"), ph.wa_id.as_ref(), 64)?;
        }
        for (i, u) in self.urls.iter().flatten().enumerate() {
            let p = idx(&key(path, "urls"), i);
            http_url(&key(&p, "url"), &u.url)?;
            opt_text(&key(&p, "type"), u.kind.as_ref(), FIELD_MAX)?;
        }
        Ok(())
    }
}

/// The whole `contacts` array.
pub(crate) fn validate_all(contacts: &[Contact], path: &str) -> Result<(), FieldError> {
    count(path, contacts.len(), 1, CONTACTS_MAX, "contacts")?;
    contacts.iter().enumerate().try_for_each(|(i, c)| c.validate(&idx(path, i)))
}
