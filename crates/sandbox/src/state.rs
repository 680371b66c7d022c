//! The sandbox's state: its businesses and numbers, templates, media, groups, windows and limits,
//! what it received, and its settings. In memory; saved to a state directory when it has one.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::config::SandboxConfig;
use crate::files::{create_private_dir, write_private};
use crate::limits::Bucket;
use crate::outbox::{Outbox, Stats};
use crate::received::{Received, keep_within};
use crate::seed::{Seed, SeedNumber};
use crate::settings::Settings;

/// A WhatsApp Business Account and its numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Business {
    pub waba_id: String,
    pub name: String,
    pub phone_numbers: Vec<SeedNumber>,
}

/// A message template, as the template API shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub waba_id: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub parameter_format: String,
    pub components: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_reason: Option<String>,
    pub created_at: u64,
    /// When it was edited while approved (Unix seconds): Meta allows one such edit a day and ten
    /// in 30 days.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_edits: Vec<u64>,
}

/// An uploaded (or simulated) media file; the bytes are kept apart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Media {
    pub id: String,
    pub phone_number_id: String,
    pub mime_type: String,
    /// Hex SHA-256, as `GET /{media-id}` reports it.
    pub sha256: String,
    pub file_size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub created_at: u64,
}

/// A group made through the Groups API.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub phone_number_id: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub invite_link: String,
    pub join_approval_mode: String,
    /// wa_ids of members.
    pub participants: Vec<String>,
    /// Pending join requests: (request id, wa_id, Unix seconds).
    pub join_requests: Vec<(String, String, u64)>,
    /// wa_ids the business removed: they cannot come back through the invite link.
    #[serde(default)]
    pub removed: Vec<String>,
    pub created_at: u64,
}

/// A WhatsApp user the sandbox has heard from: the profile and business-scoped user id its
/// webhooks show.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub wa_id: String,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl User {
    /// The `contacts[]` item of a webhook about this user.
    pub fn contact(&self, wa_id_shown: &str) -> Value {
        // A BSUID starts with its user's country (`US.1349…`), which stands in for an unknown number.
        let country = match self.user_id.split_once('.') {
            Some((cc, _)) if self.wa_id.is_empty() && cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) => cc,
            _ => crate::ids::country_of(&self.wa_id),
        };
        let mut profile = serde_json::json!({ "country_code": country });
        if let Some(name) = &self.name {
            profile["name"] = serde_json::json!(name);
        }
        serde_json::json!({"profile": profile, "wa_id": wa_id_shown, "user_id": self.user_id})
    }
}

/// The app's access tokens.
struct Tokens {
    current: String,
    expired: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    Valid,
    /// Once valid, rotated away since.
    Expired,
    Invalid,
}

/// What survives a restart when the sandbox has a state directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    pub businesses: Vec<Business>,
    pub templates: Vec<Template>,
    pub media: Vec<Media>,
    pub groups: Vec<Group>,
    /// Last inbound message per (business number, user), Unix seconds: the 24-hour window.
    pub windows: BTreeMap<String, u64>,
    /// Flows business public keys by phone number.
    pub encryption_keys: BTreeMap<String, String>,
    /// Numbers' own messages-per-second, where set.
    pub throughput: BTreeMap<String, u32>,
    /// Names of deleted approved templates, by `waba_id/name`, with when: Meta blocks the name
    /// for 30 days.
    pub deleted_names: BTreeMap<String, u64>,
    /// Users who wrote, by wa_id.
    pub users: BTreeMap<String, User>,
    /// Users whose messages fail, with the error code they fail with.
    pub failing: BTreeMap<String, i64>,
    pub settings: Settings,
    /// The status delays the sandbox was last started with: while they stay the same, the
    /// delays in `settings` (perhaps changed at run time) survive a restart.
    pub started_with: Option<StartDelays>,
}

/// The status delays a start was given (flags, configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartDelays {
    pub sent_ms: u64,
    pub delivered_ms: u64,
    pub read_ms: u64,
}

/// Requests kept for `GET /control/messages`: at most this many, holding at most this much.
const RECEIVED_KEPT: usize = 100_000;
const RECEIVED_BYTES: usize = 256 * 1024 * 1024;

/// Rate buckets are swept of those full again once there are this many (or twice as many as
/// after the last sweep): a full bucket is no different from one never made.
const BUCKETS_SWEPT_FROM: usize = 1024;

pub struct Inner {
    pub saved: Saved,
    /// Media files' bytes, shared cheaply with downloads.
    pub media_bytes: HashMap<String, axum::body::Bytes>,
    /// Media files already written to the state directory.
    media_on_disk: std::collections::HashSet<String>,
    pub received: VecDeque<Received>,
    /// What `received` holds, by [`Received::weight`].
    received_bytes: usize,
    pub rate: HashMap<String, Bucket>,
    pub pair: HashMap<(String, String), Bucket>,
    /// When `pair` is next swept of full buckets.
    pair_sweep_at: usize,
    /// Downloads made to fail on purpose (`PUT /control/media/{id}/download-failures`), by
    /// media id.
    pub media_failures: HashMap<String, DownloadFailure>,
}

/// How the next downloads of a media file fail.
pub struct DownloadFailure {
    pub status: u16,
    /// Where a redirect (a 3xx status) points.
    pub location: Option<String>,
    /// How many more downloads fail.
    pub left: u32,
}

pub struct State {
    /// The business the sandbox started with; its credentials are the app's.
    pub seed: Seed,
    /// The app's credentials: one access token, app secret and verify token for all WABAs.
    /// The current access token and the ones rotated away (Meta's "session has expired").
    tokens: RwLock<Tokens>,
    pub app_secret: String,
    pub verify_token: String,
    inner: Mutex<Inner>,
    pub webhook_url: RwLock<Option<String>>,
    pub http: reqwest::Client,
    pub shutdown: CancellationToken,
    pub outbox: Outbox,
    pub webhook_stats: Stats,
    state_dir: Option<PathBuf>,
    /// Set by `save`; the persister writes the state soon after. Shared with the persister, which
    /// waits on it without holding the state.
    dirty: std::sync::Arc<tokio::sync::Notify>,
    /// Held for a whole `flush`: two at once would write the same temporary file.
    flushing: Mutex<()>,
    /// The settings the sandbox started with, which a reset returns to.
    initial_settings: Settings,
}

/// Posts webhooks and their verification requests: to loopback too (a test tool's receivers run
/// there), but never on to where a redirect points, which would carry the verify token along;
/// and without a proxy from the environment, which would not reach a receiver on loopback.
fn webhook_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .no_proxy()
        .build()
        .expect("HTTP client")
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn window_key(phone_number_id: &str, user: &str) -> String {
    format!("{phone_number_id}/{user}")
}

impl State {
    pub fn new(config: SandboxConfig, outbox: Outbox) -> Self {
        let seed = config.seed.clone();
        let Seed { waba_id, business_name, access_token, app_secret, verify_token, phone_numbers } = config.seed;
        let loaded = config.state_dir.as_ref().and_then(|d| load(d));
        let mut saved = loaded.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
        // The seed's business is the first; a saved state keeps what else was made.
        saved.businesses.retain(|b| b.waba_id != waba_id);
        saved.businesses.insert(0, Business { waba_id: waba_id.clone(), name: business_name, phone_numbers });
        // The delays given at start win on a first start and when they differ from the last
        // start's (a flag or the configuration changed); otherwise the saved ones, perhaps
        // changed at run time, stay. The callers always give delays, defaults included, so a
        // change is the only sign of a choice.
        let given = StartDelays {
            sent_ms: config.delays.sent.as_millis() as u64,
            delivered_ms: config.delays.delivered.as_millis() as u64,
            read_ms: config.delays.read.as_millis() as u64,
        };
        if saved.started_with.as_ref() != Some(&given) {
            saved.settings.statuses.sent_ms = given.sent_ms;
            saved.settings.statuses.delivered_ms = given.delivered_ms;
            saved.settings.statuses.read_ms = given.read_ms;
            saved.started_with = Some(given.clone());
        }
        if !saved.templates.iter().any(|t| t.waba_id == waba_id && t.name == "hello_world") {
            saved.templates.push(hello_world(&waba_id));
        }
        let media_bytes: HashMap<String, axum::body::Bytes> =
            loaded.map(|(_, m)| m.into_iter().map(|(id, b)| (id, b.into())).collect()).unwrap_or_default();
        let media_on_disk = media_bytes.keys().cloned().collect();
        let mut initial_settings = Settings::default();
        initial_settings.statuses.sent_ms = given.sent_ms;
        initial_settings.statuses.delivered_ms = given.delivered_ms;
        initial_settings.statuses.read_ms = given.read_ms;
        Self {
            seed,
            tokens: RwLock::new(Tokens { current: access_token, expired: Vec::new() }),
            app_secret,
            verify_token,
            inner: Mutex::new(Inner {
                saved,
                media_bytes,
                media_on_disk,
                received: VecDeque::new(),
                received_bytes: 0,
                rate: HashMap::new(),
                pair: HashMap::new(),
                pair_sweep_at: BUCKETS_SWEPT_FROM,
                media_failures: HashMap::new(),
            }),
            webhook_url: RwLock::new(config.webhook_url),
            http: webhook_client(),
            shutdown: CancellationToken::new(),
            outbox,
            webhook_stats: Default::default(),
            state_dir: config.state_dir,
            dirty: Default::default(),
            flushing: Mutex::new(()),
            initial_settings,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the state changed: with a state directory, the persister writes it soon after
    /// (changes made together are written once), and `flush` writes it at once.
    pub fn save(&self) {
        if self.state_dir.is_some() {
            self.dirty.notify_one();
        }
    }

    /// Writes what must survive a restart, when there is somewhere to write it: `state.json`
    /// (replaced atomically) and media files not yet on disk. The lock is held only to take a
    /// snapshot.
    pub fn flush(&self) {
        let Some(dir) = &self.state_dir else { return };
        let _flushing = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let (json, media) = {
            let inner = self.lock();
            let json = serde_json::to_vec(&inner.saved).expect("state serialises");
            let media: Vec<(String, axum::body::Bytes)> = inner
                .saved
                .media
                .iter()
                .filter(|m| !inner.media_on_disk.contains(&m.id))
                .filter_map(|m| inner.media_bytes.get(&m.id).map(|b| (m.id.clone(), b.clone())))
                .collect();
            (json, media)
        };
        let result = (|| -> std::io::Result<()> {
            create_private_dir(&dir.join("media"))?;
            for (id, bytes) in &media {
                write_private(&dir.join("media").join(id), bytes)?;
            }
            let tmp = dir.join("state.json.tmp");
            write_private(&tmp, &json)?;
            std::fs::rename(tmp, dir.join("state.json"))
        })();
        match result {
            Ok(()) => self.lock().media_on_disk.extend(media.into_iter().map(|(id, _)| id)),
            Err(e) => tracing::error!(error = %e, dir = %dir.display(), "saving the sandbox state failed"),
        }
    }

    /// Writes the state a moment after each change until the sandbox shuts down (`shutdown`
    /// writes the last, before the data directory may go). Holds the state only to write it, so
    /// a sandbox dropped without `shutdown` is freed (its drop cancels the token, which ends this).
    pub async fn persist(state: std::sync::Weak<State>) {
        let Some((dirty, stop)) = state.upgrade().map(|s| (s.dirty.clone(), s.shutdown.clone())) else { return };
        loop {
            tokio::select! {
                _ = dirty.notified() => {}
                _ = stop.cancelled() => return,
            }
            // Let the changes of one request (or a burst of them) land in one write.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stop.is_cancelled() {
                return;
            }
            let Some(writer) = state.upgrade() else { return };
            let _ = tokio::task::spawn_blocking(move || writer.flush()).await;
        }
    }

    /// Forgets a deleted media file's bytes on disk too.
    pub fn remove_media_file(&self, id: &str) {
        self.lock().media_on_disk.remove(id);
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_file(dir.join("media").join(id));
        }
    }

    pub fn settings(&self) -> Settings {
        self.lock().saved.settings.clone()
    }

    pub fn patch_settings(&self, patch: &Value) -> Result<Settings, crate::settings::Invalid> {
        self.change_settings(patch, false)
    }

    /// The settings the sandbox started with, changed where `given` says.
    pub fn replace_settings(&self, given: &Value) -> Result<Settings, crate::settings::Invalid> {
        self.change_settings(given, true)
    }

    fn change_settings(&self, patch: &Value, from_start: bool) -> Result<Settings, crate::settings::Invalid> {
        let patched = {
            let mut inner = self.lock();
            let base = if from_start { &self.initial_settings } else { &inner.saved.settings };
            let patched = base.patched(patch)?;
            // A new limit applies from a full bucket; any other change leaves what is spent
            // spent, or toggling a fault would let a burst through.
            if patched.throughput_mps != inner.saved.settings.throughput_mps {
                inner.rate.clear();
            }
            if patched.pair_rate != inner.saved.settings.pair_rate {
                inner.pair.clear();
            }
            inner.saved.settings = patched.clone();
            patched
        };
        self.save();
        Ok(patched)
    }

    pub fn business_of_number(&self, phone_number_id: &str) -> Option<(Business, SeedNumber)> {
        let inner = self.lock();
        inner
            .saved
            .businesses
            .iter()
            .find_map(|b| b.phone_numbers.iter().find(|n| n.id == phone_number_id).map(|n| (b.clone(), n.clone())))
    }

    pub fn business(&self, waba_id: &str) -> Option<Business> {
        self.lock().saved.businesses.iter().find(|b| b.waba_id == waba_id).cloned()
    }

    pub fn businesses(&self) -> Vec<Business> {
        self.lock().saved.businesses.clone()
    }

    pub fn access_token(&self) -> String {
        self.tokens.read().unwrap_or_else(|e| e.into_inner()).current.clone()
    }

    pub fn check_token(&self, token: &str) -> TokenCheck {
        let tokens = self.tokens.read().unwrap_or_else(|e| e.into_inner());
        // Constant time is not needed for an emulator's token, but it costs nothing.
        let same = |expected: &str| {
            token.len() == expected.len()
                && token.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        };
        if same(&tokens.current) {
            TokenCheck::Valid
        } else if tokens.expired.iter().any(|t| same(t)) {
            TokenCheck::Expired
        } else {
            TokenCheck::Invalid
        }
    }

    /// Replaces the access token (with `new`, or a new one): the old one now gets Meta's
    /// "session has expired". Until the sandbox restarts.
    pub fn rotate_token(&self, new: Option<String>) -> String {
        let mut tokens = self.tokens.write().unwrap_or_else(|e| e.into_inner());
        let next = new.unwrap_or_else(crate::ids::access_token);
        let old = std::mem::replace(&mut tokens.current, next.clone());
        if old != next {
            tokens.expired.push(old);
        }
        next
    }

    pub fn record(&self, r: Received) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        inner.received_bytes += r.weight();
        inner.received.push_back(r);
        // A sandbox left running for days keeps the recent past, not all of it.
        keep_within(&mut inner.received, &mut inner.received_bytes, RECEIVED_KEPT, RECEIVED_BYTES);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received_matching(|_| true)
    }

    /// The requests `pick` chooses, oldest first; only they are copied.
    pub fn received_matching(&self, pick: impl Fn(&Received) -> bool) -> Vec<Received> {
        self.lock().received.iter().filter(|r| pick(r)).cloned().collect()
    }

    /// Whether `phone_number_id` sent (and the sandbox accepted) the message `wamid`.
    pub fn sent_from(&self, phone_number_id: &str, wamid: &str) -> bool {
        self.lock().received.iter().any(|r| r.phone_number_id == phone_number_id && r.wamid.as_deref() == Some(wamid))
    }

    /// The last message `phone_number_id` sent to `user` (a wa_id).
    pub fn last_sent_to(&self, phone_number_id: &str, user: &str) -> Option<String> {
        self.lock()
            .received
            .iter()
            .rev()
            .filter(|r| r.phone_number_id == phone_number_id)
            .filter(|r| r.to.as_deref().is_some_and(|to| crate::ids::digits_only(to) == user))
            .find_map(|r| r.wamid.clone())
    }

    pub fn clear_received(&self) {
        let mut inner = self.lock();
        inner.received.clear();
        inner.received_bytes = 0;
    }

    pub fn note_inbound(&self, phone_number_id: &str, user: &str, at: u64) {
        self.lock().saved.windows.insert(window_key(phone_number_id, user), at);
        self.save();
    }

    pub fn close_window(&self, phone_number_id: &str, user: &str) {
        self.lock().saved.windows.remove(&window_key(phone_number_id, user));
        self.save();
    }

    /// The user behind `wa_id`: as last seen, or with the BSUID Meta would give them.
    pub fn user(&self, wa_id: &str) -> User {
        let known = self.lock().saved.users.get(wa_id).cloned();
        known.unwrap_or_else(|| User {
            wa_id: wa_id.to_owned(),
            user_id: crate::ids::bsuid(&self.app_secret, wa_id),
            name: None,
        })
    }

    /// Remembers a user who wrote, with their profile name and (when given) their own BSUID.
    pub fn remember_user(&self, wa_id: &str, user_id: Option<&str>, name: &str) -> User {
        let mut user = self.user(wa_id);
        if let Some(id) = user_id {
            user.user_id = id.to_owned();
        }
        user.name = Some(name.to_owned());
        self.lock().saved.users.insert(wa_id.to_owned(), user.clone());
        self.save();
        user
    }

    /// The wa_id of the user a BSUID belongs to, if they wrote.
    pub fn wa_id_of(&self, user_id: &str) -> Option<String> {
        self.lock().saved.users.values().find(|u| u.user_id == user_id).map(|u| u.wa_id.clone())
    }

    /// Whether `user` wrote to `phone_number_id` in the last 24 hours.
    pub fn window_open(&self, phone_number_id: &str, user: &str) -> bool {
        let now = unix_now();
        self.lock()
            .saved
            .windows
            .get(&window_key(phone_number_id, user))
            .is_some_and(|t| now.saturating_sub(*t) < 86_400)
    }

    /// The number's messages per second: its own, or the sandbox's default.
    pub fn throughput_of(&self, phone_number_id: &str) -> u32 {
        let inner = self.lock();
        inner.saved.throughput.get(phone_number_id).copied().unwrap_or(inner.saved.settings.throughput_mps)
    }

    /// Spends one token of the number's throughput and one of the pair's; the Meta error code
    /// when either is spent out.
    pub fn take_rate(&self, phone_number_id: &str, user: &str) -> Result<(), i64> {
        let mut inner = self.lock();
        let settings = inner.saved.settings.clone();
        let mps = inner.saved.throughput.get(phone_number_id).copied().unwrap_or(settings.throughput_mps).max(1);
        let capacity = f64::from(mps);
        let per = Duration::from_secs_f64(1.0 / capacity);
        let ok =
            inner.rate.entry(phone_number_id.to_owned()).or_insert_with(|| Bucket::full(capacity)).take(capacity, per);
        if !ok {
            return Err(130_429);
        }
        let pair_capacity = f64::from(settings.pair_rate.capacity.max(1));
        let refill = Duration::from_millis(settings.pair_rate.refill_ms.max(1));
        // Keyed by users, who are without number: buckets that refilled go, or the map grows
        // with every user ever written to. (`rate` is keyed by the sandbox's own numbers.)
        if inner.pair.len() >= inner.pair_sweep_at {
            inner.pair.retain(|_, b| !b.is_full(pair_capacity, refill));
            inner.pair_sweep_at = (inner.pair.len() * 2).max(BUCKETS_SWEPT_FROM);
        }
        let ok = inner
            .pair
            .entry((phone_number_id.to_owned(), user.to_owned()))
            .or_insert_with(|| Bucket::full(pair_capacity))
            .take(pair_capacity, refill);
        if !ok {
            // Refused, so it used none of the number's throughput either.
            if let Some(b) = inner.rate.get_mut(phone_number_id) {
                b.give_back(capacity);
            }
            return Err(131_056);
        }
        Ok(())
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.webhook_url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Clears what tests leave behind: messages and the webhooks still owed for them, windows,
    /// limits (per-number throughput included), templates (but `hello_world`), media, groups,
    /// encryption keys, known users, failing users and settings. Businesses stay.
    pub fn reset(&self) {
        self.outbox.forget_owed();
        {
            let mut inner = self.lock();
            let businesses = std::mem::take(&mut inner.saved.businesses);
            let templates = businesses.iter().map(|b| hello_world(&b.waba_id)).collect();
            let started_with = inner.saved.started_with.take();
            let settings = self.initial_settings.clone();
            inner.saved = Saved { businesses, templates, settings, started_with, ..Saved::default() };
            inner.media_bytes.clear();
            inner.media_on_disk.clear();
            inner.received.clear();
            inner.received_bytes = 0;
            inner.rate.clear();
            inner.pair.clear();
            inner.media_failures.clear();
        }
        self.webhook_stats.clear();
        if let Some(dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(dir.join("media"));
        }
        self.save();
    }
}

impl Drop for State {
    /// A sandbox dropped without `shutdown` still ends its tasks: they wait on this token.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Meta's `hello_world`, which every new account starts with.
pub fn hello_world(waba_id: &str) -> Template {
    Template {
        id: crate::ids::numeric_id(),
        waba_id: waba_id.to_owned(),
        name: "hello_world".into(),
        language: "en_US".into(),
        category: "UTILITY".into(),
        status: "APPROVED".into(),
        parameter_format: "POSITIONAL".into(),
        components: serde_json::json!([
            {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
            {"type": "BODY", "text": "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us."},
            {"type": "FOOTER", "text": "WhatsApp Business Platform sample message"}
        ]),
        rejected_reason: None,
        created_at: unix_now(),
        approved_edits: Vec::new(),
    }
}

fn load(dir: &std::path::Path) -> Option<(Saved, HashMap<String, Vec<u8>>)> {
    let text = std::fs::read(dir.join("state.json")).ok()?;
    let saved: Saved = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the saved sandbox state is unreadable; starting afresh");
            return None;
        }
    };
    let bytes = saved
        .media
        .iter()
        .filter_map(|m| std::fs::read(dir.join("media").join(&m.id)).ok().map(|b| (m.id.clone(), b)))
        .collect();
    Some((saved, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> State {
        let (outbox, _queue) = Outbox::new();
        let seed = Seed::generate(None, None, None);
        let config = SandboxConfig { seed, webhook_url: None, delays: Default::default(), state_dir: None };
        State::new(config, outbox)
    }

    #[test]
    fn pair_buckets_that_refilled_are_forgotten_and_spent_ones_kept() {
        let s = state();
        let number = s.seed.phone_numbers[0].id.clone();
        s.patch_settings(&json!({"throughput_mps": 100_000, "pair_rate": {"capacity": 2, "refill_ms": 1}})).unwrap();
        for i in 0..BUCKETS_SWEPT_FROM {
            s.take_rate(&number, &format!("user {i}")).unwrap();
        }
        // One token back a millisecond: by now every bucket is full again.
        std::thread::sleep(Duration::from_millis(20));
        s.take_rate(&number, "one more").unwrap();
        assert_eq!(s.lock().pair.len(), 1, "only the bucket just used is kept");

        s.patch_settings(&json!({"pair_rate": {"refill_ms": 3_600_000}})).unwrap();
        for i in 0..=BUCKETS_SWEPT_FROM {
            s.take_rate(&number, &format!("user {i}")).unwrap();
        }
        assert_eq!(s.lock().pair.len(), BUCKETS_SWEPT_FROM + 1, "spent buckets are not forgotten");
    }
}
