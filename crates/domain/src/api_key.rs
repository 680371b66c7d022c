//! API keys: shown once in clear, stored as a SHA-256 hash with a short visible prefix, each
//! with the scopes that say what it may do.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::validation::FieldError;

const KEY_PREFIX: &str = "wgk_";
const KEY_RANDOM_CHARS: usize = 40;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub struct GeneratedKey {
    pub key: Secret,
    pub prefix: String,
    pub hash: String,
}

/// A new random key, `wgk_` and 40 base62 characters (about 238 bits).
pub fn generate() -> GeneratedKey {
    let mut raw = [0u8; KEY_RANDOM_CHARS];
    getrandom::fill(&mut raw).expect("the operating system's random source is unavailable");
    // 62 does not divide 256; the bias from `% 62` is under 2% per character, irrelevant at
    // 40 characters of entropy.
    let body: String = raw.iter().map(|b| BASE62[usize::from(*b) % 62] as char).collect();
    let key = format!("{KEY_PREFIX}{body}");
    GeneratedKey { prefix: visible_prefix(&key), hash: hash(&key), key: Secret::new(key) }
}

/// Hex SHA-256 of the key: what storage keeps and looks keys up by.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key that may be shown in lists: enough to recognise it, too little to use it.
/// Keys chosen by operators (`WAGATE_BOOTSTRAP_API_KEY`) may be short, so at most a quarter of
/// the key is ever shown.
pub fn visible_prefix(key: &str) -> String {
    let shown = (key.chars().count() / 4).min(KEY_PREFIX.len() + 6);
    key.chars().take(shown).collect()
}

/// Constant-time comparison of two hashes.
pub fn hashes_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// One right a key may have. `admin` implies the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(rename_all = "lowercase"))]
pub enum Scope {
    /// Accounts, phone-number settings, API keys, the sandbox's test-tool paths: what changes
    /// where wagate sends and who may use it.
    Admin,
    /// Sending, cancelling, marking read, writing contacts.
    Send,
    /// Reading messages, contacts, conversations, media, numbers and accounts.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Admin, Scope::Send, Scope::Read];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Send => "send",
            Scope::Read => "read",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Admin => 1,
            Scope::Send => 2,
            Scope::Read => 4,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's scopes, never empty. A set of bits: copied with the key on every request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Every right: the bootstrap key's, and a new key's unless it names its scopes.
    pub const ADMIN: Scopes = Scopes(1);

    /// A request's list of scope names: each must be one (`{path}[i]` is named when not), and
    /// there must be at least one. Repeats count once.
    pub fn parse_list<S: AsRef<str>>(path: &str, names: &[S]) -> Result<Self, FieldError> {
        let mut bits = 0;
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let scope = Scope::parse(name).ok_or_else(|| {
                let valid: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                FieldError::new(
                    format!("{path}[{i}]"),
                    "invalid_value",
                    format!("must be one of {}, got '{name}'", valid.join(", ")),
                )
            })?;
            bits |= scope.bit();
        }
        if bits == 0 {
            return Err(FieldError::new(path, "min_items", "must name at least 1 scope"));
        }
        Ok(Self(bits))
    }

    /// Whether a key with these scopes may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self.0 & (Scope::Admin.bit() | needed.bit()) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.0 & s.bit() != 0)
    }

    /// How storage keeps them: names joined by commas (`send,read`).
    pub fn to_stored(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }

    /// The stored form back; None when it names no scope or one unknown.
    pub fn from_stored(stored: &str) -> Option<Self> {
        let names: Vec<&str> = stored.split(',').collect();
        Self::parse_list("scopes", &names).ok()
    }
}

/// `[send, read]`.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        for needed in Scope::ALL {
            assert!(Scopes::ADMIN.allows(needed), "{needed}");
        }
        let app = Scopes::parse_list("scopes", &["read", "send", "read"]).unwrap();
        assert!(app.allows(Scope::Send) && app.allows(Scope::Read) && !app.allows(Scope::Admin));
        assert_eq!(app.to_string(), "[send, read]");
        let reader = Scopes::parse_list("scopes", &["read"]).unwrap();
        assert!(!reader.allows(Scope::Send));
    }

    #[test]
    fn scope_lists_name_the_entry_at_fault_and_the_valid_names() {
        let e = Scopes::parse_list("scopes", &["send", "write"]).unwrap_err();
        assert_eq!((e.path.as_str(), e.rule), ("scopes[1]", "invalid_value"));
        assert_eq!(e.message, "scopes[1]: must be one of admin, send, read, got 'write'");
        let e = Scopes::parse_list::<&str>("scopes", &[]).unwrap_err();
        assert_eq!((e.path.as_str(), e.rule), ("scopes", "min_items"));
    }

    #[test]
    fn the_stored_form_round_trips() {
        for names in [&["admin"][..], &["send"], &["read", "send"], &["admin", "read"]] {
            let scopes = Scopes::parse_list("scopes", names).unwrap();
            assert_eq!(Scopes::from_stored(&scopes.to_stored()), Some(scopes));
        }
        assert_eq!(Scopes::ADMIN.to_stored(), "admin");
        assert_eq!(Scopes::from_stored(""), None);
        assert_eq!(Scopes::from_stored("send,owner"), None);
    }

    #[test]
    fn generated_keys_hash_and_show_a_prefix_only() {
        let k = generate();
        assert!(k.key.expose().starts_with("wgk_"));
        assert_eq!(k.key.expose().len(), 44);
        assert_eq!(k.prefix.len(), 10);
        assert!(k.key.expose().starts_with(&k.prefix));
        assert!(hashes_match(&k.hash, &hash(k.key.expose())));
        assert!(!hashes_match(&k.hash, &hash("wgk_other")));
        assert_ne!(generate().key.expose(), k.key.expose());
    }

    #[test]
    fn short_operator_keys_show_little() {
        assert_eq!(visible_prefix("dev-key"), "d");
        assert_eq!(visible_prefix("abc"), "");
    }
}
