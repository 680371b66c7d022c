//! The sandbox's state: its business, what it received, and the webhooks it owes.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{SandboxConfig, Seed, SeedNumber, StatusDelays};

/// One request the messages endpoint received, with what it answered.
#[derive(Clone, Debug, Serialize)]
pub struct Received {
    pub phone_number_id: String,
    /// The request body exactly as received.
    pub body: Value,
    /// The wamid answered, when the request was accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wamid: Option<String>,
    /// The Graph error answered, when it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Unix seconds.
    pub received_at: u64,
}

/// Misbehaviour on request, to test clients against a Meta that is slow or failing.
#[derive(Clone, Copy, Debug, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Added before the messages endpoint answers.
    #[serde(default)]
    pub latency_ms: u64,
}

pub struct State {
    pub seed: Seed,
    pub faults: RwLock<Faults>,
    pub webhook_url: RwLock<Option<String>>,
    pub delays: StatusDelays,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    received: Mutex<Vec<Received>>,
    /// Last inbound message per (business number, user), Unix seconds: the 24-hour window.
    last_inbound: Mutex<HashMap<(String, String), u64>>,
}

/// Requests kept for `GET /control/messages`.
const RECEIVED_KEPT: usize = 100_000;

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl State {
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            seed: config.seed,
            faults: RwLock::new(Faults::default()),
            webhook_url: RwLock::new(config.webhook_url),
            delays: config.delays,
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(20)).build().expect("HTTP client"),
            shutdown: CancellationToken::new(),
            received: Mutex::new(Vec::new()),
            last_inbound: Mutex::new(HashMap::new()),
        }
    }

    pub fn number(&self, id: &str) -> Option<&SeedNumber> {
        self.seed.phone_numbers.iter().find(|n| n.id == id)
    }

    pub fn token_is_valid(&self, token: &str) -> bool {
        // Constant time is not needed for an emulator's token, but it costs nothing.
        let expected = self.seed.access_token.as_bytes();
        token.len() == expected.len() && token.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }

    pub fn record(&self, r: Received) {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        if received.len() >= RECEIVED_KEPT {
            // A sandbox left running for days keeps the recent past, not all of it.
            let excess = received.len() + 1 - RECEIVED_KEPT;
            received.drain(..excess);
        }
        received.push(r);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear_received(&self) {
        self.received.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn note_inbound(&self, phone_number_id: &str, user: &str, at: u64) {
        self.last_inbound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((phone_number_id.to_owned(), user.to_owned()), at);
    }

    pub fn faults(&self) -> Faults {
        *self.faults.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.webhook_url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
