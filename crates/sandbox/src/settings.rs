//! What can be changed while the sandbox runs (`GET`/`PATCH`/`PUT /control/settings`): timings,
//! limits and misbehaviour. Every field has a default; a `PATCH` changes only the fields it names,
//! a `PUT` replaces them all.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub statuses: StatusSettings,
    /// Messages per second per business number, unless a number has its own.
    pub throughput_mps: u32,
    pub pair_rate: PairRate,
    /// How long a new or edited template stays PENDING before its verdict.
    pub template_review_ms: u64,
    pub webhooks: WebhookFaults,
    pub graph: GraphFaults,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            statuses: StatusSettings::default(),
            throughput_mps: 80,
            pair_rate: PairRate::default(),
            template_review_ms: 1_000,
            webhooks: WebhookFaults::default(),
            graph: GraphFaults::default(),
        }
    }
}

/// When each status webhook follows an accepted message. Each counts as at least the one before
/// it (`sent` ≤ `delivered` ≤ `read` ≤ `played`), so statuses keep Meta's order whichever delays
/// are set: a `read_ms` of 3000 with the default `played_ms` sends `played` at 3000 ms too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusSettings {
    pub sent_ms: u64,
    pub delivered_ms: u64,
    pub read_ms: u64,
    /// `played`, for voice messages, after `read`.
    pub played_ms: u64,
}

impl Default for StatusSettings {
    fn default() -> Self {
        Self { sent_ms: 300, delivered_ms: 800, read_ms: 1_500, played_ms: 2_000 }
    }
}

/// Meta's pair rate: a token bucket per (business number, user).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PairRate {
    /// Burst: messages that may go at once.
    pub capacity: u32,
    /// One message's worth comes back every this many milliseconds.
    pub refill_ms: u64,
}

impl Default for PairRate {
    fn default() -> Self {
        // Meta: one message per 6 seconds, bursts of up to 45.
        Self { capacity: 45, refill_ms: 6_000 }
    }
}

impl StatusSettings {
    /// The delays of `sent`, `delivered`, `read` and `played` as they apply: each at least the
    /// one before it.
    pub fn effective(&self) -> [u64; 4] {
        let mut d = [self.sent_ms, self.delivered_ms, self.read_ms, self.played_ms];
        for i in 1..d.len() {
            d[i] = d[i].max(d[i - 1]);
        }
        d
    }
}

/// How webhooks are retried, and how they misbehave, as Meta's may.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookFaults {
    /// Up to this many changes in one POST (1: one change a POST).
    pub batch_max: usize,
    /// How long to gather changes for one POST when batching.
    pub batch_window_ms: u64,
    /// Post every payload twice.
    pub duplicate: bool,
    /// Send a message's statuses in reverse order (`read` first).
    pub reorder: bool,
    /// Added to every webhook's delay.
    pub extra_delay_ms: u64,
    /// Lose the first attempt of every payload; the retry delivers it.
    pub drop_first_attempt: bool,
    /// Attempts at a payload the receiver refuses before it is given up (counted as an attempt
    /// too: a dropped first one).
    pub max_attempts: u32,
}

impl Default for WebhookFaults {
    fn default() -> Self {
        Self {
            batch_max: 0,
            batch_window_ms: 0,
            duplicate: false,
            reorder: false,
            extra_delay_ms: 0,
            drop_first_attempt: false,
            max_attempts: 10,
        }
    }
}

/// How the Graph API itself misbehaves (the messages endpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphFaults {
    /// Added before the messages endpoint answers.
    pub latency_ms: u64,
    /// Sends fail this way instead of being accepted: the next `fail_count` of them, or all of
    /// them until `fail` is set back to null when `fail_count` is null.
    pub fail: Option<FailMode>,
    pub fail_count: Option<u32>,
    /// How long the `hang_*` faults hold the answer back.
    pub hang_ms: u64,
}

impl Default for GraphFaults {
    fn default() -> Self {
        Self { latency_ms: 0, fail: None, fail_count: None, hang_ms: 60_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// HTTP 500 with an HTML body, as a proxy in front of Meta gives.
    Http500,
    /// HTTP 500 with Meta's 131016 "Service unavailable" (`error-codes.mdx`).
    Unavailable,
    /// Meta's 130429 throughput error.
    Throughput,
    /// Accept the message (it will be delivered) but answer only after `hang_ms`: a client's
    /// timeout leaves it not knowing.
    HangAfterAccept,
    /// Answer 131016 after `hang_ms` without accepting anything.
    HangBeforeAccept,
}

/// A settings field that does not fit: its path (`statuses.sent_ms`) and why.
#[derive(Debug)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl Settings {
    /// These settings with the fields `patch` names replaced.
    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let mut current = serde_json::to_value(self).expect("settings serialise");
        merge(&mut current, patch);
        // The path, so a misspelt field is named to whoever misspelt it.
        let patched: Self = serde_path_to_error::deserialize(current)
            .map_err(|e| Invalid { path: e.path().to_string(), message: e.inner().to_string() })?;
        if patched.webhooks.max_attempts == 0 {
            return Err(Invalid { path: "webhooks.max_attempts".into(), message: "must be at least 1".into() });
        }
        Ok(patched)
    }
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let s = Settings::default()
            .patched(&json!({"pair_rate": {"capacity": 3}, "webhooks": {"duplicate": true}}))
            .unwrap();
        assert_eq!(s.pair_rate, PairRate { capacity: 3, refill_ms: 6_000 });
        assert!(s.webhooks.duplicate);
        assert_eq!(s.throughput_mps, 80);
        assert_eq!(Settings::default().patched(&json!({"pair_rat": 1})).unwrap_err().path, "pair_rat");
        assert_eq!(Settings::default().patched(&json!({"statuses": {"sent": 1}})).unwrap_err().path, "statuses.sent");
        let s = s.patched(&json!({"graph": {"fail": "throughput", "fail_count": 2}})).unwrap();
        assert_eq!(s.graph.fail, Some(FailMode::Throughput));
        let zero = Settings::default().patched(&json!({"webhooks": {"max_attempts": 0}})).unwrap_err();
        assert_eq!(zero.path, "webhooks.max_attempts");
    }

    #[test]
    fn each_status_is_due_no_earlier_than_the_one_before() {
        let s = StatusSettings { sent_ms: 300, delivered_ms: 200, read_ms: 3_000, played_ms: 2_000 };
        assert_eq!(s.effective(), [300, 300, 3_000, 3_000]);
        assert_eq!(StatusSettings::default().effective(), [300, 800, 1_500, 2_000]);
    }
}
