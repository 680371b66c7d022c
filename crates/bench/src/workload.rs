//! The requests the load generator sends: built once as bytes, then rewritten in place.

use std::net::SocketAddr;

use anyhow::Context;
use serde_json::json;
use wagate_domain::signature;

/// Sends cycle over this many recipients, +1 555 010 0000 to +1 555 010 9999 (fictional numbers).
const RECIPIENTS: usize = 10_000;
const RECIPIENT_PREFIX: &str = "+155501";
/// Digits after the prefix; the only bytes of a send request that change between requests.
const RECIPIENT_DIGITS: usize = 5;
/// Each webhook delivery carries a message with its own wamid, `wamid.BENCH` and these digits.
const WAMID_DIGITS: usize = 12;
/// The sandbox app's secret in the benchmark, which signs its webhook deliveries.
pub const APP_SECRET: &str = "bench-app-secret";

/// The sandbox number the load goes to, as `GET /v1/phone-numbers` shows it.
pub struct SandboxNumber {
    pub id: String,
    pub waba_id: String,
    pub display: String,
}

/// Requests one connection repeats: pre-built bytes, with a counter rewritten in place (a send's
/// recipient, a delivery's wamid) and, for webhooks, the signature made again.
#[derive(Clone)]
pub struct Workload {
    pub request: Vec<u8>,
    counter: Option<Counter>,
    signature: Option<Signature>,
    /// The status every answer should have.
    pub expected: u16,
}

#[derive(Clone, Copy)]
struct Counter {
    at: usize,
    digits: usize,
    modulo: usize,
}

/// Where the hex of `X-Hub-Signature-256` goes, and where the signed body starts.
#[derive(Clone, Copy)]
struct Signature {
    hex_at: usize,
    body_at: usize,
}

impl Workload {
    pub fn healthz(addr: SocketAddr) -> Self {
        let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").into_bytes();
        Self { request, counter: None, signature: None, expected: 200 }
    }

    pub fn sends(addr: SocketAddr, api_key: &str, from: &str) -> anyhow::Result<Self> {
        let first = format!("{RECIPIENT_PREFIX}{:0RECIPIENT_DIGITS$}", 0);
        let body = json!({
            "from": from,
            "to": first,
            "type": "template",
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
        })
        .to_string();
        let request = format!(
            "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {api_key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        let at =
            position(&request, format!("\"{first}\"").as_bytes()).context("the recipient is not in the request")?;
        let counter = Counter { at: at + 1 + RECIPIENT_PREFIX.len(), digits: RECIPIENT_DIGITS, modulo: RECIPIENTS };
        Ok(Self { request, counter: Some(counter), signature: None, expected: 202 })
    }

    /// A customer's text message, as Meta delivers it: one entry, one change, one message.
    pub fn webhooks(addr: SocketAddr, number: &SandboxNumber) -> anyhow::Result<Self> {
        let wamid = format!("wamid.BENCH{:0WAMID_DIGITS$}", 0);
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": number.waba_id,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": number.display.trim_start_matches('+'),
                            "phone_number_id": number.id,
                        },
                        "contacts": [{"profile": {"name": "Bench Customer"}, "wa_id": "15550100000"}],
                        "messages": [{
                            "from": "15550100000",
                            "id": wamid,
                            "timestamp": "1763700000",
                            "type": "text",
                            "text": {"body": "Hello from the benchmark"},
                        }],
                    },
                }],
            }],
        })
        .to_string();
        let placeholder = "0".repeat(64);
        let request = format!(
            "POST /webhooks/meta HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
             x-hub-signature-256: sha256={placeholder}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes();
        let hex_at = position(&request, b"sha256=").context("no signature header")? + "sha256=".len();
        let body_at = position(&request, b"\r\n\r\n").context("no end of head")? + 4;
        let at = position(&request, wamid.as_bytes()).context("the wamid is not in the request")?;
        let counter = Counter { at: at + "wamid.BENCH".len(), digits: WAMID_DIGITS, modulo: usize::MAX };
        Ok(Self { request, counter: Some(counter), signature: Some(Signature { hex_at, body_at }), expected: 200 })
    }

    /// Writes request number `n` of this workload into `request`.
    pub fn prepare(&self, request: &mut [u8], n: usize) {
        if let Some(c) = self.counter {
            write_digits(&mut request[c.at..c.at + c.digits], n % c.modulo);
        }
        if let Some(s) = self.signature {
            let header = signature::sign(APP_SECRET, &request[s.body_at..]);
            request[s.hex_at..s.hex_at + 64].copy_from_slice(&header.as_bytes()["sha256=".len()..]);
        }
    }
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
fn write_digits(dst: &mut [u8], mut n: usize) {
    for digit in dst.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn rewrites_only_the_recipient() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let w = Workload::sends(addr, "k", "123").unwrap();
        let mut request = w.request.clone();
        w.prepare(&mut request, 19_876);
        let text = String::from_utf8(request.clone()).unwrap();
        assert!(text.contains("\"+15550109876\""), "{text}");
        assert_eq!(request.len(), w.request.len());
        assert_eq!(w.request.iter().zip(&request).filter(|(a, b)| a != b).count(), 4);
    }

    #[test]
    fn signs_each_delivery_with_its_own_wamid() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        let number =
            SandboxNumber { id: "106540352242922".into(), waba_id: "102290129340398".into(), display: "+1 555".into() };
        let w = Workload::webhooks(addr, &number).unwrap();
        let mut request = w.request.clone();
        w.prepare(&mut request, 42);
        let text = String::from_utf8(request).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.contains("\"wamid.BENCH000000000042\""), "{body}");
        let header = head.lines().find_map(|l| l.strip_prefix("x-hub-signature-256: ")).unwrap();
        assert!(signature::verify(APP_SECRET, body.as_bytes(), header));
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"], "106540352242922");
    }
}
