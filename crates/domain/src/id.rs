//! Opaque, sortable, prefixed identifiers: `<prefix>_<26 Crockford base32 chars>`, where the
//! first 10 characters encode the creation time in milliseconds and the rest are random. Ids made
//! by one process are strictly increasing, so they sort in creation order and serve as cursors.

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 26;

/// The last value made, and random bytes read ahead from the operating system: one read per
/// [`POOL`] bytes instead of a system call per id (every request makes one for its request id,
/// every send one for its message).
struct Source {
    last: u128,
    pool: [u8; POOL],
    used: usize,
}

const POOL: usize = 4000;
const RANDOM_BYTES: usize = 10;

static SOURCE: Mutex<Source> = Mutex::new(Source::new());

impl Source {
    const fn new() -> Self {
        Self { last: 0, pool: [0; POOL], used: POOL }
    }

    /// 80 bits from the operating system's random source, not used before.
    fn random(&mut self) -> u128 {
        if self.used + RANDOM_BYTES > POOL {
            getrandom::fill(&mut self.pool).expect("the operating system's random source is unavailable");
            self.used = 0;
        }
        let bytes = &self.pool[self.used..self.used + RANDOM_BYTES];
        self.used += RANDOM_BYTES;
        bytes.iter().fold(0, |value, b| (value << 8) | u128::from(*b))
    }
}

/// A new 128-bit value: 48 bits of milliseconds since the epoch, 80 random bits; strictly
/// greater than the previous value this process produced.
fn next_value() -> u128 {
    let millis =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut source = SOURCE.lock().unwrap_or_else(|e| e.into_inner());
    let mut value = (u128::from(millis) << 80) | source.random();
    if value <= source.last {
        value = source.last + 1;
    }
    source.last = value;
    value
}

fn encode(value: u128) -> String {
    let mut out = [0u8; BODY_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (BODY_LEN - 1 - i);
        *slot = ALPHABET[((value >> shift) & 0x1F) as usize];
    }
    String::from_utf8(out.to_vec()).expect("alphabet is ASCII")
}

/// A fresh id with the given prefix, for example `new_id("msg")` → `msg_01J…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", encode(next_value()))
}

/// True when `s` has the shape of an id with this prefix.
pub fn has_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|body| body.len() == BODY_LEN && body.bytes().all(|b| ALPHABET.contains(&b)))
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// Accepts only strings of this id's shape, so a wrong kind of id is caught early.
            pub fn parse(s: &str) -> Option<Self> {
                has_shape(s, $prefix).then(|| Self(s.to_owned()))
            }

            /// Wraps a value read back from storage, where it was written by `generate`.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A message, inbound or outbound.
    MessageId,
    "msg"
);
prefixed_id!(
    /// A connected Meta account (one WABA and its credentials).
    AccountId,
    "acc"
);
prefixed_id!(
    /// An API key's public identifier (never the key itself).
    ApiKeyId,
    "key"
);
prefixed_id!(
    /// A customer known from inbound traffic.
    ContactId,
    "ct"
);
prefixed_id!(
    /// A media file a customer sent, as wagate keeps it.
    MediaId,
    "med"
);
prefixed_id!(
    /// A conversation: one business number and one contact.
    ConversationId,
    "cv"
);
prefixed_id!(
    /// A campaign: one template sent to many recipients.
    CampaignId,
    "cmp"
);
prefixed_id!(
    /// A background job: an import or an export.
    JobId,
    "job"
);
prefixed_id!(
    /// A person who signs in to the team inbox.
    UserId,
    "usr"
);
prefixed_id!(
    /// A team of users: conversations are assigned to a team and its agents.
    TeamId,
    "team"
);

impl MediaId {
    /// The id written as Meta writes its media ids, in digits (SDKs check that a media id is
    /// numeric): 37 to 39 of them, longer than any id of Meta's.
    pub fn to_digits(&self) -> String {
        let body = self.0.strip_prefix("med_").unwrap_or_default();
        body.bytes()
            .try_fold(0u128, |value, b| {
                let digit = ALPHABET.iter().position(|a| *a == b)? as u128;
                value.checked_mul(32)?.checked_add(digit)
            })
            .map_or_else(|| self.0.clone(), |v| v.to_string())
    }

    /// The id [`to_digits`](Self::to_digits) wrote; None for digits of another length (Meta's
    /// own media ids).
    pub fn from_digits(s: &str) -> Option<Self> {
        if !(37..=39).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u128>().ok().map(|v| Self(format!("{}_{}", Self::PREFIX, encode(v))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_written_in_digits_and_back() {
        for _ in 0..100 {
            let id = MediaId::generate();
            let digits = id.to_digits();
            assert!((37..=39).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()), "{digits}");
            assert_eq!(MediaId::from_digits(&digits), Some(id));
        }
        assert_eq!(MediaId::from_digits("1234567890123456"), None, "Meta's own ids are shorter");
        assert_eq!(MediaId::from_digits(&"9".repeat(39)), None, "more than 128 bits");
    }

    #[test]
    fn ids_are_prefixed_shaped_and_increasing() {
        let ids: Vec<String> = (0..1000).map(|_| new_id("msg")).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
        }
        assert!(ids.iter().all(|id| has_shape(id, "msg")));
        assert!(!has_shape(&ids[0], "acc"));
        assert!(!has_shape("msg_short", "msg"));
    }

    #[test]
    fn random_bits_are_never_used_twice() {
        // Several read-aheads' worth: bytes handed out twice, or never read, would repeat.
        let mut source = Source::new();
        let n = 3 * POOL / RANDOM_BYTES + 7;
        let drawn: std::collections::HashSet<u128> = (0..n).map(|_| source.random()).collect();
        assert_eq!(drawn.len(), n);
        assert!(drawn.iter().all(|v| *v < 1 << 80));
    }

    #[test]
    fn typed_ids_reject_other_kinds() {
        let m = MessageId::generate();
        assert_eq!(MessageId::parse(m.as_str()), Some(m.clone()));
        assert_eq!(AccountId::parse(m.as_str()), None);
        assert_eq!(MessageId::parse("msg_01J0000000000000000000000I"), None);
    }
}
