//! Webhooks as Meta sends them: `whatsapp_business_account` envelopes, signed with
//! `X-Hub-Signature-256` over the exact bytes posted, non-ASCII escaped as `\uXXXX`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::ids;
use crate::state::State;

/// Meta's payloads escape every non-ASCII character as `\uXXXX` with lowercase hex (surrogate
/// pairs beyond the BMP), and sign those bytes. Verifiers that hash the raw body pass, and so do
/// verifiers that re-escape before hashing.
pub fn encode(payload: &Value) -> Vec<u8> {
    let text = payload.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out.into_bytes()
}

pub fn sign(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The envelope around one `messages` change for one business number.
pub fn envelope(state: &State, phone_number_id: &str, value: Value) -> Value {
    let display = state.number(phone_number_id).map(|n| ids::digits_only(&n.display_phone_number)).unwrap_or_default();
    let mut value = value;
    if let Value::Object(v) = &mut value {
        v.insert("messaging_product".into(), json!("whatsapp"));
        v.insert("metadata".into(), json!({"display_phone_number": display, "phone_number_id": phone_number_id}));
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": state.seed.waba_id,
            "changes": [{"value": value, "field": "messages"}],
        }],
    })
}

const MAX_ATTEMPTS: u32 = 8;

/// Posts `payload` after `delay`, retrying with backoff while the receiver fails, as Meta does.
pub fn schedule(state: &Arc<State>, delay: Duration, payload: Value) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        let Some(url) = state.webhook_url() else {
            tracing::debug!("sandbox has no webhook URL; webhook dropped");
            return;
        };
        let body = encode(&payload);
        let signature = sign(&state.seed.app_secret, &body);
        let mut backoff = Duration::from_millis(250);
        for attempt in 1..=MAX_ATTEMPTS {
            let result = state
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", &signature)
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(attempt, status = %r.status(), %url, "sandbox webhook refused"),
                Err(e) => tracing::warn!(attempt, error = %e, %url, "sandbox webhook failed"),
            }
            tokio::select! {
                _ = state.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        tracing::error!(%url, "sandbox webhook given up after {MAX_ATTEMPTS} attempts");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_non_ascii_like_meta() {
        let body = encode(&json!({"t": "äöå 😀 ok"}));
        assert_eq!(String::from_utf8(body).unwrap(), r#"{"t":"\u00e4\u00f6\u00e5 \ud83d\ude00 ok"}"#);
        let back: Value = serde_json::from_slice(&encode(&json!({"t": "äöå 😀"}))).unwrap();
        assert_eq!(back["t"], "äöå 😀");
    }

    #[test]
    fn signs_with_hmac_sha256() {
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
