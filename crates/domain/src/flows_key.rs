//! The Flows business public key: a 2048-bit RSA public key in PEM, which Meta uses to encrypt
//! what a Flow sends to the business's endpoint.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::validation::FieldError;

/// The DER start of a SubjectPublicKeyInfo holding a 2048-bit RSA key: the sequences' lengths,
/// the rsaEncryption OID (1.2.840.113549.1.1.1) with its NULL parameters, and a 257-byte modulus
/// (a leading zero and 2048 bits).
const RSA_2048_SPKI: [u8; 33] = [
    0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    0x03, 0x82, 0x01, 0x0f, 0x00, 0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00,
];
/// The rsaEncryption OID, as DER.
const RSA_OID: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// A 2048-bit key's SubjectPublicKeyInfo with the usual exponent (65537) is 294 bytes.
const SPKI_LEN: usize = 294;

/// A business public key as Meta takes it: PEM (`-----BEGIN PUBLIC KEY-----`), RSA, 2048 bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessPublicKey(String);

impl BusinessPublicKey {
    /// `path` names the field in the error.
    pub fn parse(path: &str, pem: &str) -> Result<Self, FieldError> {
        let pem = pem.trim();
        let body = pem
            .strip_prefix("-----BEGIN PUBLIC KEY-----")
            .and_then(|b| b.strip_suffix("-----END PUBLIC KEY-----"))
            .ok_or_else(|| {
                let why = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
                    "must be a PEM public key (-----BEGIN PUBLIC KEY-----, SubjectPublicKeyInfo), not PKCS#1 \
                     (-----BEGIN RSA PUBLIC KEY-----); convert it with `openssl rsa -RSAPublicKey_in -pubout`"
                } else if pem.contains("PRIVATE KEY") {
                    "is a private key: give the public key only (`openssl rsa -pubout`)"
                } else {
                    "must be a PEM public key between -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY-----"
                };
                FieldError::new(path, "public_key", why)
            })?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| FieldError::new(path, "public_key", "is not valid PEM: its body is not base64"))?;
        if der.len() == SPKI_LEN && der.starts_with(&RSA_2048_SPKI) {
            return Ok(Self(format!("{pem}\n")));
        }
        let why = if der.windows(RSA_OID.len()).any(|w| w == RSA_OID) {
            "is an RSA key of another size; Meta takes 2048-bit RSA keys only"
        } else {
            "must be a 2048-bit RSA public key; this is another kind of key"
        };
        Err(FieldError::new(path, "rsa_2048", why))
    }

    pub fn as_pem(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../../testdata/flows-public-key-2048.pem");
    const KEY_1024: &str = include_str!("../../../testdata/flows-public-key-1024.pem");

    #[test]
    fn takes_only_2048_bit_rsa_public_keys_in_pem() {
        let key = BusinessPublicKey::parse("public_key", KEY).unwrap();
        assert!(key.as_pem().starts_with("-----BEGIN PUBLIC KEY-----") && key.as_pem().ends_with("-----\n"));
        let small = BusinessPublicKey::parse("k", KEY_1024).unwrap_err();
        assert_eq!(small.rule, "rsa_2048");
        assert!(small.message.contains("another size"), "{small}");
        let garbled = "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----";
        assert_eq!(BusinessPublicKey::parse("k", garbled).unwrap_err().rule, "public_key");
        assert_eq!(BusinessPublicKey::parse("k", "hello").unwrap_err().rule, "public_key");
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        assert!(BusinessPublicKey::parse("k", private).unwrap_err().message.contains("private key"));
    }
}
