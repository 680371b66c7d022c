//! API keys: shown once in clear, stored as a SHA-256 hash with a short visible prefix.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

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

#[cfg(test)]
mod tests {
    use super::*;

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
