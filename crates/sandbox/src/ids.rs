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
    }
}
