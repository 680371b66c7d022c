//! Secrets at rest: AES-256-GCM under a key the operator holds, so that a copy of the database
//! alone reveals no credential.
//!
//! A sealed value reads `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id (the
//! first 8 hex digits of the key's SHA-256) names the key that sealed it, so a wrong key is
//! reported by name instead of as damage, and rotation knows what it is replacing. Each value is
//! bound to where it is stored (its `context`, the additional authenticated data): a sealed value
//! copied into another row or column does not open.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Bytes in a key (AES-256).
pub const KEY_LEN: usize = 32;
const PREFIX: &str = "enc:v1:";
const TAG_LEN: usize = 16;

/// The key secrets are sealed with; shown nowhere, named by its [`KeyId`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// A key for another purpose, derived from this one (HMAC-SHA256 of the purpose's name):
    /// what is signed for one purpose is worth nothing for another, and no secret is kept twice.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
        Self(bytes)
    }

    /// Base64 (standard or URL-safe alphabet, padded or not) of exactly 32 bytes, surrounding
    /// whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyError::NotBase64)?;
        let len = bytes.len();
        bytes.try_into().map(Self).map_err(|_| KeyError::WrongLength(len))
    }

    /// Standard padded base64, as `openssl rand -base64 32` writes a key.
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.0))
    }

    pub fn id(&self) -> KeyId {
        KeyId(hex::encode(&Sha256::digest(self.0)[..4]))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

/// Why a text is not a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    NotBase64,
    WrongLength(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "is empty; it must be the base64 of {KEY_LEN} random bytes"),
            Self::NotBase64 => write!(f, "is not base64; it must be the base64 of {KEY_LEN} random bytes"),
            Self::WrongLength(n) => write!(f, "holds {n} bytes; it must be the base64 of exactly {KEY_LEN}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The first 8 hex digits of a key's SHA-256: names a key without revealing it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a stored value did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Clear text where a sealed value belongs.
    NotSealed,
    /// Sealed by a key this cipher does not hold.
    OtherKey { sealed_by: String, key: KeyId },
    /// Not in the sealed form.
    Malformed,
    /// The key is the right one but the value does not authenticate: it was altered, or moved
    /// from another place.
    Rejected { key: KeyId },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSealed => f.write_str("it is stored in clear"),
            Self::OtherKey { sealed_by, key } => {
                write!(f, "it was sealed by key {sealed_by}, but the key given is {key}")
            }
            Self::Malformed => f.write_str("it is not a value wagate sealed"),
            Self::Rejected { key } => {
                write!(f, "it does not authenticate under key {key}: it was altered or copied from elsewhere")
            }
        }
    }
}

impl std::error::Error for OpenError {}

struct Sealing {
    id: KeyId,
    key: LessSafeKey,
}

impl Sealing {
    fn new(key: &SecretKey) -> Self {
        let unbound = UnboundKey::new(&AES_256_GCM, &key.0).expect("32 bytes is an AES-256 key");
        Self { id: key.id(), key: LessSafeKey::new(unbound) }
    }
}

/// Seals with one key; opens with it and with any previous keys it was given (to re-seal what
/// they sealed). Cheap to clone.
#[derive(Clone)]
pub struct Cipher {
    current: Arc<Sealing>,
    previous: Arc<[Sealing]>,
}

impl Cipher {
    pub fn new(key: &SecretKey) -> Self {
        Self { current: Arc::new(Sealing::new(key)), previous: Arc::new([]) }
    }

    /// This cipher, also opening what `keys` sealed (for [`Cipher::reseal`] under the current key).
    pub fn opening_previous<'a>(self, keys: impl IntoIterator<Item = &'a SecretKey>) -> Self {
        let previous = keys.into_iter().filter(|k| k.id() != self.current.id).map(Sealing::new).collect();
        Self { previous, ..self }
    }

    /// The id of the key that seals.
    pub fn key_id(&self) -> &KeyId {
        &self.current.id
    }

    /// `secret` sealed for `context` (where it is stored) under a fresh random nonce.
    pub fn seal(&self, secret: &Secret, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source is unavailable");
        let mut body = secret.expose().as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut body)
            .expect("AES-GCM seals any value shorter than 64 GiB");
        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        format!("{PREFIX}{}:{}", self.current.id, URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The secret `stored` holds, if one of this cipher's keys sealed it for `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<Secret, OpenError> {
        let (key_id, payload) = split(stored)?;
        let sealing = std::iter::once(&*self.current)
            .chain(self.previous.iter())
            .find(|s| s.id.as_str() == key_id)
            .ok_or_else(|| OpenError::OtherKey { sealed_by: key_id.to_owned(), key: self.current.id.clone() })?;
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let nonce: [u8; NONCE_LEN] = bytes[..NONCE_LEN].try_into().expect("length checked");
        let rejected = || OpenError::Rejected { key: sealing.id.clone() };
        let clear = sealing
            .key
            .open_within(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut bytes, NONCE_LEN..)
            .map_err(|_| rejected())?;
        String::from_utf8(clear.to_vec()).map(Secret::new).map_err(|_| rejected())
    }

    /// What `stored` should become: `None` when the current key sealed it (and it opens), the
    /// value sealed by the current key when it is in clear (written before secrets were sealed)
    /// or sealed by a previous key.
    pub fn reseal(&self, stored: &str, context: &str) -> Result<Option<String>, OpenError> {
        if !is_sealed(stored) {
            return Ok(Some(self.seal(&Secret::new(stored), context)));
        }
        let secret = self.open(stored, context)?;
        let (key_id, _) = split(stored)?;
        Ok((key_id != self.current.id.as_str()).then(|| self.seal(&secret, context)))
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|s| s.id.as_str()).collect();
        f.debug_struct("Cipher").field("key", &self.current.id.as_str()).field("previous", &previous).finish()
    }
}

/// Whether `stored` is in the sealed form (by any key).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The id of the key that sealed `stored`, when it is sealed.
pub fn sealed_by(stored: &str) -> Option<&str> {
    split(stored).ok().map(|(id, _)| id)
}

fn split(stored: &str) -> Result<(&str, &str), OpenError> {
    let rest = stored.strip_prefix(PREFIX).ok_or(OpenError::NotSealed)?;
    rest.split_once(':').ok_or(OpenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "accounts/acc_1/access_token";

    #[test]
    fn a_sealed_secret_opens_to_itself() {
        let key = SecretKey::generate();
        let cipher = Cipher::new(&key);
        let secret = Secret::new("EAAG-very-secret-token");
        let sealed = cipher.seal(&secret, CONTEXT);
        assert!(sealed.starts_with(&format!("enc:v1:{}:", key.id())), "{sealed}");
        assert!(!sealed.contains("very-secret"));
        assert_eq!(sealed_by(&sealed), Some(key.id().as_str()));
        assert_eq!(cipher.open(&sealed, CONTEXT), Ok(secret));
        assert_eq!(cipher.open(&cipher.seal(&Secret::new(""), CONTEXT), CONTEXT), Ok(Secret::new("")));
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce() {
        let cipher = Cipher::new(&SecretKey::generate());
        let secret = Secret::new("same value");
        let sealed: std::collections::HashSet<String> = (0..100).map(|_| cipher.seal(&secret, CONTEXT)).collect();
        assert_eq!(sealed.len(), 100);
        let nonces: std::collections::HashSet<Vec<u8>> = sealed
            .iter()
            .map(|s| URL_SAFE_NO_PAD.decode(s.rsplit(':').next().unwrap()).unwrap()[..NONCE_LEN].to_vec())
            .collect();
        assert_eq!(nonces.len(), 100);
    }

    #[test]
    fn another_key_is_refused_by_name() {
        let (a, b) = (SecretKey::generate(), SecretKey::generate());
        let sealed = Cipher::new(&a).seal(&Secret::new("token"), CONTEXT);
        assert_eq!(
            Cipher::new(&b).open(&sealed, CONTEXT),
            Err(OpenError::OtherKey { sealed_by: a.id().to_string(), key: b.id() })
        );
        let message = Cipher::new(&b).open(&sealed, CONTEXT).unwrap_err().to_string();
        assert!(message.contains(a.id().as_str()) && message.contains(b.id().as_str()), "{message}");
    }

    #[test]
    fn a_value_relabelled_with_another_key_id_is_refused() {
        let key = SecretKey::generate();
        let sealed = Cipher::new(&key).seal(&Secret::new("token"), CONTEXT);
        let forged = SecretKey::generate();
        let forged_sealed = sealed.replace(key.id().as_str(), forged.id().as_str());
        assert_eq!(Cipher::new(&forged).open(&forged_sealed, CONTEXT), Err(OpenError::Rejected { key: forged.id() }));
    }

    #[test]
    fn tampering_is_refused() {
        let cipher = Cipher::new(&SecretKey::generate());
        let sealed = cipher.seal(&Secret::new("a token of some length"), CONTEXT);
        let (head, payload) = sealed.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 0x01;
            let altered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(matches!(cipher.open(&altered, CONTEXT), Err(OpenError::Rejected { .. })), "byte {i}");
            bytes[i] ^= 0x01;
        }
        let truncated = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes[..NONCE_LEN + TAG_LEN - 1]));
        assert_eq!(cipher.open(&truncated, CONTEXT), Err(OpenError::Malformed));
        assert_eq!(cipher.open(&format!("{head}:not base64!"), CONTEXT), Err(OpenError::Malformed));
        assert_eq!(cipher.open("enc:v1:nocolon", CONTEXT), Err(OpenError::Malformed));
        assert_eq!(cipher.open("EAAG-clear-token", CONTEXT), Err(OpenError::NotSealed));
    }

    #[test]
    fn a_value_moved_to_another_place_is_refused() {
        let cipher = Cipher::new(&SecretKey::generate());
        let sealed = cipher.seal(&Secret::new("token"), CONTEXT);
        assert!(matches!(cipher.open(&sealed, "accounts/acc_2/access_token"), Err(OpenError::Rejected { .. })));
        assert!(matches!(cipher.open(&sealed, "accounts/acc_1/app_secret"), Err(OpenError::Rejected { .. })));
    }

    #[test]
    fn resealing_seals_clear_text_and_moves_previous_keys_to_the_current() {
        let (old, new) = (SecretKey::generate(), SecretKey::generate());
        let by_old = Cipher::new(&old).seal(&Secret::new("token"), CONTEXT);
        let cipher = Cipher::new(&new).opening_previous([&old]);
        let moved = cipher.reseal(&by_old, CONTEXT).unwrap().expect("re-sealed under the new key");
        assert_eq!(sealed_by(&moved), Some(new.id().as_str()));
        assert_eq!(Cipher::new(&new).open(&moved, CONTEXT), Ok(Secret::new("token")));
        assert_eq!(cipher.reseal(&moved, CONTEXT), Ok(None), "already sealed by the current key");
        let from_clear = cipher.reseal("clear-token", CONTEXT).unwrap().unwrap();
        assert_eq!(cipher.open(&from_clear, CONTEXT), Ok(Secret::new("clear-token")));
        let stranger = Cipher::new(&SecretKey::generate()).seal(&Secret::new("x"), CONTEXT);
        assert!(matches!(cipher.reseal(&stranger, CONTEXT), Err(OpenError::OtherKey { .. })));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = SecretKey::generate();
        let text = key.to_base64();
        assert_eq!(SecretKey::from_base64(text.expose()), Ok(key.clone()));
        assert_eq!(SecretKey::from_base64(&format!(" {}\n", text.expose())), Ok(key.clone()));
        assert_eq!(SecretKey::from_base64(&URL_SAFE_NO_PAD.encode(key.0)), Ok(key.clone()));
        assert_eq!(SecretKey::from_base64(""), Err(KeyError::Empty));
        assert_eq!(SecretKey::from_base64("not base64 at all!"), Err(KeyError::NotBase64));
        assert_eq!(SecretKey::from_base64(&STANDARD.encode([7u8; 16])), Err(KeyError::WrongLength(16)));
        assert_eq!(key.id().as_str().len(), 8);
        assert!(!format!("{key:?}").contains(text.expose()));
        assert!(!format!("{:?}", Cipher::new(&key)).contains(text.expose()));
    }
}
