//! Identifiers shaped like Meta's.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source is unavailable");
    b
}

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

pub fn alnum(n: usize) -> String {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).expect("random source");
    raw.iter().map(|b| ALNUM[usize::from(*b) % 62] as char).collect()
}

pub fn hex_token(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).expect("random source");
    hex::encode(raw)
}

fn digits(n: usize) -> String {
    let mut raw = vec![0u8; n];
    getrandom::fill(&mut raw).expect("random source");
    raw.iter().map(|b| char::from(b'0' + b % 10)).collect()
}

/// A 15-digit object id such as Meta gives WABAs and phone numbers (`106540352242922`).
pub fn numeric_id() -> String {
    format!("1{}", digits(14))
}

/// A number in the 555-01xx range reserved for fiction, formatted as Meta lists it.
pub fn display_number() -> String {
    let d = digits(6);
    format!("+1 555-01{}-{}", &d[..2], &d[2..])
}

/// Digits only, as webhook metadata carries the display number.
pub fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// ISO 3166 country of an E.164 number, by its calling code (the longest that matches); `ZZ`
/// ("unknown") for codes not listed. Shared codes (1, 7, 44…) go to their largest member.
pub fn country_of(wa_id: &str) -> &'static str {
    const CODES: &[(&str, &str)] = &[
        ("1", "US"),
        ("7", "RU"),
        ("20", "EG"),
        ("27", "ZA"),
        ("30", "GR"),
        ("31", "NL"),
        ("32", "BE"),
        ("33", "FR"),
        ("34", "ES"),
        ("36", "HU"),
        ("39", "IT"),
        ("40", "RO"),
        ("41", "CH"),
        ("43", "AT"),
        ("44", "GB"),
        ("45", "DK"),
        ("46", "SE"),
        ("47", "NO"),
        ("48", "PL"),
        ("49", "DE"),
        ("51", "PE"),
        ("52", "MX"),
        ("53", "CU"),
        ("54", "AR"),
        ("55", "BR"),
        ("56", "CL"),
        ("57", "CO"),
        ("58", "VE"),
        ("60", "MY"),
        ("61", "AU"),
        ("62", "ID"),
        ("63", "PH"),
        ("64", "NZ"),
        ("65", "SG"),
        ("66", "TH"),
        ("81", "JP"),
        ("82", "KR"),
        ("84", "VN"),
        ("86", "CN"),
        ("90", "TR"),
        ("91", "IN"),
        ("92", "PK"),
        ("93", "AF"),
        ("94", "LK"),
        ("95", "MM"),
        ("98", "IR"),
        ("212", "MA"),
        ("213", "DZ"),
        ("216", "TN"),
        ("234", "NG"),
        ("233", "GH"),
        ("254", "KE"),
        ("255", "TZ"),
        ("256", "UG"),
        ("351", "PT"),
        ("353", "IE"),
        ("358", "FI"),
        ("380", "UA"),
        ("420", "CZ"),
        ("502", "GT"),
        ("503", "SV"),
        ("506", "CR"),
        ("507", "PA"),
        ("591", "BO"),
        ("593", "EC"),
        ("595", "PY"),
        ("598", "UY"),
        ("852", "HK"),
        ("880", "BD"),
        ("886", "TW"),
        ("961", "LB"),
        ("962", "JO"),
        ("965", "KW"),
        ("966", "SA"),
        ("971", "AE"),
        ("972", "IL"),
        ("974", "QA"),
    ];
    CODES
        .iter()
        .filter(|(code, _)| wa_id.starts_with(code))
        .max_by_key(|(code, _)| code.len())
        .map_or("ZZ", |(_, country)| country)
}

/// A business-scoped user id shaped like Meta's (`US.13491208655302741918`): the user's country
/// and a number derived from `key` and the user, so it is stable for the same app and user and
/// differs between apps.
pub fn bsuid(key: &str, wa_id: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(wa_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    format!("{}.{n}", country_of(wa_id))
}

pub fn access_token() -> String {
    format!("EAAG{}", alnum(120))
}

pub fn fbtrace_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

/// A wamid as Meta makes them: `wamid.` and base64 of a small binary record that embeds the
/// recipient's number and a random message key.
pub fn wamid(recipient: &str) -> String {
    // The record stores the length in one byte.
    let mut end = recipient.len().min(200);
    while !recipient.is_char_boundary(end) {
        end -= 1;
    }
    let recipient = &recipient[..end];
    let key = hex::encode_upper(random_bytes::<9>());
    let mut raw = Vec::with_capacity(recipient.len() + 32);
    raw.extend_from_slice(&[0x1C, 0x18, recipient.len() as u8]);
    raw.extend_from_slice(recipient.as_bytes());
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x11, 0x18, key.len() as u8]);
    raw.extend_from_slice(key.as_bytes());
    raw.push(0x00);
    format!("wamid.{}", STANDARD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let w = wamid("16505551234");
        assert!(w.starts_with("wamid.HBgLMTY1MDU1NTEyMzQVAgARGB"), "{w}");
        assert_ne!(wamid("1"), wamid("1"));
        assert!(wamid(&"é".repeat(150)).starts_with("wamid."));
        assert_eq!(numeric_id().len(), 15);
        assert!(display_number().starts_with("+1 555-01"));
        assert_eq!(digits_only("+1 555-0123-4567"), "155501234567");
        assert_eq!((country_of("16505551234"), country_of("351912345678"), country_of("999")), ("US", "PT", "ZZ"));
        assert_eq!(bsuid("k", "16505551234"), bsuid("k", "16505551234"));
        assert_ne!(bsuid("k", "16505551234"), bsuid("other app", "16505551234"));
        assert!(bsuid("k", "351912345678").starts_with("PT."));
    }
}
