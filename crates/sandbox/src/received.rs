//! What the sandbox's messages endpoint received: each request with what it answered, kept
//! within a count and a size (see `State`), for tests to count what reached "Meta".

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

/// One request the messages endpoint received, with what it answered.
#[derive(Clone, Debug, Serialize)]
pub struct Received {
    pub phone_number_id: String,
    /// The body's `to`, the one field the filters and lookups read; the body itself is parsed
    /// again only when asked for ([`Received::body`]).
    #[serde(skip)]
    pub to: Option<String>,
    /// The request body exactly as received: its bytes when they are JSON, else their text as a
    /// JSON string; when `truncated`, the text of its first KiB.
    #[serde(rename = "body")]
    pub raw: Box<serde_json::value::RawValue>,
    /// Set when only the start of the body is kept: a body over the endpoint's limit, or a
    /// refused one too large to be worth keeping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
    /// The HTTP status answered.
    pub status: u16,
    /// The wamid answered, when the request was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// What a refused request was answered: Meta's error object, or the text of a non-JSON
    /// answer (the `http500` fault's page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Unix seconds.
    pub received_at: u64,
    /// Unix milliseconds, for a finer look at rates.
    pub received_at_ms: u64,
}

/// What is left of a body kept only in part.
#[derive(Clone, Debug, Serialize)]
pub struct Truncated {
    /// The body's size in bytes (counted up to 32 MiB).
    pub size: u64,
}

/// A refused body over this size is kept as its first KiB: refusals are many and rarely need
/// more to be told apart.
const REFUSED_KEPT_WHOLE: usize = 256 * 1024;

impl Received {
    /// A body received whole, and accepted so far.
    pub fn new(phone_number_id: &str, bytes: &[u8], parsed: &Value) -> Self {
        let now_ms = unix_now_ms();
        Self {
            phone_number_id: phone_number_id.to_owned(),
            to: parsed.get("to").and_then(Value::as_str).map(str::to_owned),
            raw: Self::raw_body(bytes),
            truncated: None,
            status: 200,
            wamid: None,
            error: None,
            received_at: now_ms / 1000,
            received_at_ms: now_ms,
        }
    }

    /// A body of which only `head` is kept, of `size` bytes in all.
    pub fn head_of(phone_number_id: &str, head: &[u8], size: u64) -> Self {
        let text = Value::String(String::from_utf8_lossy(&head[..head.len().min(crate::body::HEAD_KEPT)]).into_owned());
        let now_ms = unix_now_ms();
        Self {
            phone_number_id: phone_number_id.to_owned(),
            to: None,
            raw: serde_json::value::RawValue::from_string(text.to_string()).expect("a JSON string is JSON"),
            truncated: Some(Truncated { size }),
            status: 200,
            wamid: None,
            error: None,
            received_at: now_ms / 1000,
            received_at_ms: now_ms,
        }
    }

    /// This request, refused with `status` and `error`; a large body is kept as its start.
    pub fn refused(&self, status: u16, error: Value) -> Self {
        let mut r = if self.truncated.is_none() && self.raw.get().len() > REFUSED_KEPT_WHOLE {
            let size = self.raw.get().len() as u64;
            Self { to: self.to.clone(), ..Self::head_of(&self.phone_number_id, self.raw.get().as_bytes(), size) }
        } else {
            self.clone()
        };
        r.status = status;
        r.error = Some(error);
        r
    }

    /// The raw form of a request body, kept byte for byte when it is JSON.
    pub fn raw_body(bytes: &[u8]) -> Box<serde_json::value::RawValue> {
        serde_json::from_slice::<Box<serde_json::value::RawValue>>(bytes).unwrap_or_else(|_| {
            let text = Value::String(String::from_utf8_lossy(bytes).into_owned()).to_string();
            serde_json::value::RawValue::from_string(text).expect("a JSON string is JSON")
        })
    }

    /// The body, parsed (null when it is not JSON).
    pub fn body(&self) -> Value {
        serde_json::from_str(self.raw.get()).unwrap_or(Value::Null)
    }

    /// Roughly the memory the record holds, for the cap on what is kept.
    pub(crate) fn weight(&self) -> usize {
        let error = self.error.as_ref().map_or(0, |e| e.to_string().len());
        self.raw.get().len()
            + self.phone_number_id.len()
            + self.to.as_ref().map_or(0, String::len)
            + self.wamid.as_ref().map_or(0, String::len)
            + error
            + std::mem::size_of::<Self>()
    }
}

/// Drops the oldest of `received` until at most `count` are kept, holding at most `bytes`.
pub(crate) fn keep_within(received: &mut VecDeque<Received>, held: &mut usize, count: usize, bytes: usize) {
    while received.len() > count || (*held > bytes && received.len() > 1) {
        let Some(old) = received.pop_front() else { break };
        *held -= old.weight();
    }
}

pub fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn what_is_received_is_capped_by_count_and_by_size() {
        let record = |n: usize| Received::new("1", format!("\"{}\"", "x".repeat(n)).as_bytes(), &Value::Null);
        let mut kept = VecDeque::new();
        let mut held = 0;
        for _ in 0..10 {
            let r = record(1000);
            held += r.weight();
            kept.push_back(r);
        }
        let one = kept[0].weight();
        keep_within(&mut kept, &mut held, 100, one * 4);
        assert_eq!((kept.len(), held), (4, one * 4), "the oldest go until the rest fit");
        keep_within(&mut kept, &mut held, 2, usize::MAX);
        assert_eq!((kept.len(), held), (2, one * 2));
    }

    #[test]
    fn a_large_refused_body_is_kept_as_its_start() {
        let big = json!({"to": "15550100", "text": {"body": "x".repeat(REFUSED_KEPT_WHOLE)}});
        let bytes = serde_json::to_vec(&big).unwrap();
        let r = Received::new("1", &bytes, &big).refused(400, json!({"code": 100}));
        assert_eq!(r.truncated.as_ref().map(|t| t.size), Some(bytes.len() as u64));
        assert!(r.raw.get().len() < crate::body::HEAD_KEPT * 2, "{}", r.raw.get().len());
        assert_eq!(r.to.as_deref(), Some("15550100"), "still found by its recipient");
        let small = json!({"to": "15550100"});
        let r = Received::new("1", small.to_string().as_bytes(), &small).refused(400, json!({"code": 100}));
        assert!(r.truncated.is_none());
        assert_eq!(r.body(), small);
    }
}
