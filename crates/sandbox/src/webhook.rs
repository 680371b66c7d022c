//! Webhooks as Meta sends them: `whatsapp_business_account` envelopes, signed with
//! `X-Hub-Signature-256` over the exact bytes posted, non-ASCII escaped as `\uXXXX`; retried with
//! backoff while the receiver fails; batched, duplicated, reordered, delayed or dropped on request.
//! Each chat's webhooks go in the order they fall due unless a fault says otherwise.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Weak};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::ids;
use crate::outbox::{Change, Owed, Stats};
use crate::state::{State, unix_now};

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

struct Due {
    at: Instant,
    seq: u64,
    generation: u64,
    change: Change,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The `value` of a `messages` change for one business number: its metadata first.
pub fn messages_value(state: &State, phone_number_id: &str, mut value: Value) -> Value {
    let display = state
        .business_of_number(phone_number_id)
        .map(|(_, n)| ids::digits_only(&n.display_phone_number))
        .unwrap_or_default();
    if let Value::Object(v) = &mut value {
        v.insert("messaging_product".into(), json!("whatsapp"));
        v.insert("metadata".into(), json!({"display_phone_number": display, "phone_number_id": phone_number_id}));
    }
    value
}

/// Owes a `messages` change about `phone_number_id`'s business after `delay`.
pub fn push_messages(state: &State, phone_number_id: &str, delay: Duration, value: Value) {
    push_number(state, phone_number_id, "messages", delay, value);
}

/// Owes a change about one business number (messages, statuses, groups) after `delay`; its
/// value carries the number's metadata.
pub fn push_number(state: &State, phone_number_id: &str, field: &str, delay: Duration, value: Value) {
    let Some((business, _)) = state.business_of_number(phone_number_id) else { return };
    let value = messages_value(state, phone_number_id, value);
    let extra = Duration::from_millis(state.settings().webhooks.extra_delay_ms);
    state.outbox.push(delay + extra, Change { waba_id: business.waba_id, field: field.to_owned(), value });
}

/// Owes any other change (template status, groups, …) of a WABA, now.
pub fn push_field(state: &State, waba_id: &str, field: &str, value: Value) {
    let extra = Duration::from_millis(state.settings().webhooks.extra_delay_ms);
    state.outbox.push(extra, Change { waba_id: waba_id.to_owned(), field: field.to_owned(), value });
}

/// Drains the outbox until the sandbox shuts down. Holds the state weakly so a dropped sandbox
/// ends it.
pub async fn run(state: Weak<State>, mut rx: mpsc::UnboundedReceiver<Owed>) {
    let mut heap: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut seq = 0u64;
    // Per chat, the first attempt of the payload posted last: the next one waits for it.
    let mut lanes: HashMap<String, watch::Receiver<bool>> = HashMap::new();
    loop {
        let Some(strong) = state.upgrade() else { return };
        let shutdown = strong.shutdown.clone();
        drop(strong);
        let next = heap.peek().map(|Reverse(d)| d.at);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = rx.recv() => match got {
                Some((delay, generation, change)) => {
                    seq += 1;
                    heap.push(Reverse(Due { at: Instant::now() + delay, seq, generation, change }));
                }
                None => return,
            },
            _ = async { tokio::time::sleep_until(next.expect("guarded")).await }, if next.is_some() => {
                let Some(strong) = state.upgrade() else { return };
                let faults = strong.settings().webhooks;
                if faults.batch_max > 1 {
                    // Gather what falls due meanwhile into the same POSTs.
                    let window = Instant::now() + Duration::from_millis(faults.batch_window_ms);
                    tokio::select! {
                        _ = tokio::time::sleep_until(window) => {}
                        _ = strong.shutdown.cancelled() => return,
                    }
                    while let Ok((delay, generation, change)) = rx.try_recv() {
                        seq += 1;
                        heap.push(Reverse(Due { at: Instant::now() + delay, seq, generation, change }));
                    }
                }
                let now = Instant::now();
                let generation = strong.outbox.generation();
                let mut due = Vec::new();
                while heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
                    let d = heap.pop().expect("peeked").0;
                    if d.generation == generation {
                        due.push(d.change);
                    }
                }
                for payload in payloads(due, faults.batch_max.max(1)) {
                    let copies = if faults.duplicate { 2 } else { 1 };
                    for _ in 0..copies {
                        let keys = lanes_of(&payload);
                        let after: Vec<_> = keys.iter().filter_map(|k| lanes.get(k).cloned()).collect();
                        let (done, first_attempt) = watch::channel(false);
                        lanes.retain(|_, rx| !*rx.borrow() && rx.has_changed().is_ok());
                        for key in keys {
                            lanes.insert(key, first_attempt.clone());
                        }
                        let order = Order { after, done };
                        let drop_first = faults.drop_first_attempt;
                        tokio::spawn(deliver(strong.clone(), payload.clone(), generation, order, drop_first));
                    }
                }
            }
        }
    }
}

/// The chats a payload speaks of (business number and user or group; for other fields, the
/// WABA's field). Meta does not promise order, and posts concurrently; the sandbox keeps each
/// chat's webhooks in the order they fall due, so a bot's tests do not flake on a busy machine,
/// and leaves disorder to the `reorder` fault, a refused attempt's retry and a dropped attempt.
fn lanes_of(payload: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    for entry in payload["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or_default();
            let value = &change["value"];
            let Some(number) = value["metadata"]["phone_number_id"].as_str().filter(|_| field == "messages") else {
                keys.push(format!("{}/{field}", entry["id"].as_str().unwrap_or_default()));
                continue;
            };
            let list = |name: &str| value[name].as_array().cloned().unwrap_or_default();
            let pick = |item: &Value, names: &[&str]| {
                names.iter().find_map(|n| item[*n].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            };
            let chats: Vec<String> = list("statuses")
                .iter()
                .filter_map(|s| pick(s, &["recipient_user_id", "recipient_id"]))
                .chain(list("messages").iter().filter_map(|m| pick(m, &["group_id", "from", "from_user_id"])))
                .collect();
            if chats.is_empty() {
                keys.push(number.to_owned());
            }
            keys.extend(chats.into_iter().map(|chat| format!("{number}/{chat}")));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Where a payload stands in its chats' order: the first attempts to wait for, and the signal
/// that its own was made.
struct Order {
    after: Vec<watch::Receiver<bool>>,
    done: watch::Sender<bool>,
}

/// Whether Meta stamps an entry carrying `field` with `time`: it does for account and template
/// events, not for messages and group events.
fn carries_time(field: &str) -> bool {
    field != "messages" && !field.starts_with("group_")
}

/// Groups changes into envelopes of at most `max` changes, one entry per WABA (and kind of
/// field, as only some entries carry `time`).
fn payloads(changes: Vec<Change>, max: usize) -> Vec<Value> {
    let now = unix_now();
    let mut out = Vec::new();
    for chunk in changes.chunks(max) {
        let mut entries: BTreeMap<(&str, bool), Vec<Value>> = BTreeMap::new();
        for c in chunk {
            entries
                .entry((&c.waba_id, carries_time(&c.field)))
                .or_default()
                .push(json!({"value": c.value, "field": c.field}));
        }
        let entry: Vec<Value> = entries
            .into_iter()
            .map(|((id, timed), changes)| {
                let mut e = json!({"id": id, "changes": changes});
                if timed {
                    e["time"] = json!(now);
                }
                e
            })
            .collect();
        out.push(json!({"object": "whatsapp_business_account", "entry": entry}));
    }
    out
}

/// How long after attempt `n` (from 1) the next one is made: 250 ms, doubling to at most 30 s.
/// Ten attempts span about 90 s.
pub fn backoff(n: u32) -> Duration {
    let doubled = 250u64.saturating_mul(1u64 << n.saturating_sub(1).min(20));
    Duration::from_millis(doubled.min(30_000))
}

/// Posts one payload, retrying with backoff while the receiver fails, as Meta does, up to
/// `webhooks.max_attempts` attempts.
async fn deliver(state: Arc<State>, payload: Value, generation: u64, order: Order, drop_first: bool) {
    for mut earlier in order.after {
        // An error means the earlier delivery ended without its signal, which is as good.
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = earlier.wait_for(|made| *made) => {}
        }
    }
    let stats = &state.webhook_stats;
    let Some(url) = state.webhook_url() else {
        tracing::debug!("sandbox has no webhook URL; webhook dropped");
        Stats::count(&stats.discarded);
        return;
    };
    let body = encode(&payload);
    let signature = sign(&state.app_secret, &body);
    let max_attempts = state.settings().webhooks.max_attempts.max(1);
    for attempt in 1..=max_attempts {
        if state.outbox.generation() != generation {
            return;
        }
        if attempt == 1 && drop_first {
            Stats::count(&stats.dropped);
        } else {
            Stats::count(&stats.posted);
            let result = state
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", &signature)
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(r) if r.status().is_success() => {
                    Stats::count(&stats.delivered);
                    return;
                }
                Ok(r) => tracing::warn!(attempt, status = %r.status(), %url, "sandbox webhook refused"),
                Err(e) => tracing::warn!(attempt, error = %e.without_url(), %url, "sandbox webhook failed"),
            }
            Stats::count(&stats.refused);
        }
        // Later payloads of the same chats wait for a first attempt only, not for its retries.
        order.done.send_replace(true);
        if attempt == max_attempts {
            break;
        }
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff(attempt)) => {}
        }
    }
    Stats::count(&stats.given_up);
    tracing::error!(%url, "sandbox webhook given up after {max_attempts} attempts");
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
    fn retries_back_off_more_and_more_up_to_30_seconds() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
        let span: u64 = waits[..9].iter().sum();
        assert_eq!(span, 91_750, "ten attempts span about 90 s");
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn signs_with_hmac_sha256() {
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn a_chats_statuses_and_messages_share_a_lane() {
        let payload = |value: Value| {
            let mut value = value;
            value["metadata"] = json!({"phone_number_id": "42"});
            json!({"entry": [{"id": "7", "changes": [{"field": "messages", "value": value}]}]})
        };
        let status = lanes_of(&payload(json!({"statuses": [{"id": "w", "recipient_id": "1555"}]})));
        let inbound = lanes_of(&payload(json!({"messages": [{"id": "m", "from": "1555"}]})));
        let other = lanes_of(&payload(json!({"statuses": [{"id": "w", "recipient_id": "1666"}]})));
        assert_eq!(status, ["42/1555"]);
        assert_eq!(inbound, status);
        assert_ne!(other, status);
        let template =
            json!({"entry": [{"id": "7", "changes": [{"field": "message_template_status_update", "value": {}}]}]});
        assert_eq!(lanes_of(&template), ["7/message_template_status_update"]);
    }

    #[test]
    fn batches_group_changes_by_waba() {
        let change =
            |waba: &str, n: u64| Change { waba_id: waba.into(), field: "messages".into(), value: json!({"n": n}) };
        let out = payloads(vec![change("1", 1), change("2", 2), change("1", 3)], 3);
        assert_eq!(out.len(), 1);
        let entries = out[0]["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["changes"].as_array().unwrap().len(), 2);
        assert_eq!(payloads(vec![change("1", 1), change("1", 2)], 1).len(), 2);
    }
}
