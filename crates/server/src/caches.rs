//! What this instance keeps in memory to save a database read on every request or delivery:
//! API keys, the numbers sends go out from, the accounts that sign webhooks, the numbers whose
//! webhooks were seen, and the templates sends are checked against. Each entry lasts a moment; what changes through this instance's API
//! drops it at once (by the outbox's settings epoch, or by name).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wagate_domain::message::template::{ParameterFormat, Shape};
use wagate_storage::{Account, ApiKey, MessageTemplate, PhoneNumber};

#[derive(Default)]
pub struct Caches {
    /// API keys recently authenticated, dropped when one is revoked here.
    pub api_keys: KeyCache,
    /// Phone numbers recently read for sends, dropped when the settings epoch moves.
    pub senders: SenderCache,
    /// Connected accounts as the webhook receiver last read them.
    pub signers: SignerCache,
    /// Numbers already known to have their webhooks seen (saves a write per delivery).
    pub webhooks_noted: WebhooksNoted,
    /// Templates recently read for sends, dropped when this instance changes any.
    pub templates: TemplateCache,
}

/// Active keys by hash, as recently read: every API request presents a key, and reading it
/// each time was a tenth of a send's work on the request threads. Only active keys are kept,
/// each for [`KEYS_CACHED_FOR`]; a key revoked through this instance is dropped at once, one
/// revoked elsewhere (another instance, the CLI) stops working within that time.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, (ApiKey, Instant)>>);

const KEYS_CACHED_FOR: Duration = Duration::from_secs(2);

impl KeyCache {
    /// The key and when it was read.
    pub fn get(&self, hash: &str) -> Option<(ApiKey, Instant)> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(hash).filter(|(_, read_at)| read_at.elapsed() < KEYS_CACHED_FOR).cloned()
    }

    /// `read_at`: when the key was read from the store; a use does not extend its stay.
    pub fn put(&self, key: &ApiKey, read_at: Instant) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only active keys get here, so the map stays as small as the keys in use.
        cache.insert(key.key_hash.clone(), (key.clone(), read_at));
    }

    pub fn forget_all(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Phone numbers by id, as recently read: a send names its number by id, and reading it each
/// time would be a database round trip per request for what changes rarely. An entry lasts
/// [`SENDERS_CACHED_FOR`], or until the settings epoch moves.
#[derive(Default)]
pub struct SenderCache(Mutex<HashMap<String, (PhoneNumber, u64, Instant)>>);

const SENDERS_CACHED_FOR: Duration = Duration::from_secs(2);

impl SenderCache {
    pub fn get(&self, id: &str, epoch: u64) -> Option<PhoneNumber> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(id).filter(|(_, e, at)| *e == epoch && at.elapsed() < SENDERS_CACHED_FOR).map(|(n, _, _)| n.clone())
    }

    pub fn put(&self, number: &PhoneNumber, epoch: u64) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Only real numbers get here, so the map stays as small as the numbers connected.
        cache.insert(number.id.clone(), (number.clone(), epoch, Instant::now()));
    }
}

/// Connected accounts (their WABAs and app secrets) as last read, for up to
/// [`SIGNERS_CACHED_FOR`] or until the settings epoch moves. Only used to say yes: a delivery the
/// cached list refuses is checked again against a fresh read, so an account connected or a
/// secret rotated on another instance is honoured at once.
#[derive(Default)]
pub struct SignerCache(Mutex<Option<Signers>>);

/// The accounts read, the settings epoch they were read at, and when.
type Signers = (Arc<Vec<Account>>, u64, Instant);

const SIGNERS_CACHED_FOR: Duration = Duration::from_secs(2);

impl SignerCache {
    pub fn get(&self, epoch: u64) -> Option<Arc<Vec<Account>>> {
        let cached = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().filter(|(_, e, at)| *e == epoch && at.elapsed() < SIGNERS_CACHED_FOR).map(|(a, _, _)| a.clone())
    }

    pub fn put(&self, accounts: Arc<Vec<Account>>, epoch: u64) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((accounts, epoch, Instant::now()));
    }
}

/// Numbers whose webhooks this instance has recorded as seen: recorded once, they stay so.
#[derive(Default)]
pub struct WebhooksNoted(Mutex<HashSet<String>>);

impl WebhooksNoted {
    pub fn contains(&self, phone_number_id: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(phone_number_id)
    }

    pub fn insert(&self, phone_number_id: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(phone_number_id.to_owned());
    }
}

/// A stored template with its shape, as a send is checked against it.
pub struct CheckedTemplate {
    pub template: MessageTemplate,
    pub shape: Shape,
}

impl CheckedTemplate {
    pub fn new(template: MessageTemplate) -> Arc<Self> {
        let format = ParameterFormat::parse(Some(&template.parameter_format));
        let shape = Shape::parse(format, &template.components);
        Arc::new(Self { template, shape })
    }
}

/// Templates by WABA, name and language, as recently read: every template send is checked
/// against its template, and reading it each time would be a database round trip per send. An
/// entry lasts [`TEMPLATES_CACHED_FOR`]; a change this instance makes or applies (a webhook, a
/// sync, an edit) drops them all at once, and one applied by another instance is seen within
/// that time.
#[derive(Default)]
pub struct TemplateCache {
    found: Mutex<HashMap<TemplateKey, (Arc<CheckedTemplate>, Instant)>>,
    /// Templates Meta was asked for and did not have, and when: a send naming one is refused
    /// without asking again for [`MISSES_KEPT_FOR`] (a webhook or sync here forgets them).
    missed: Mutex<HashMap<TemplateKey, Instant>>,
}

const MISSES_KEPT_FOR: Duration = Duration::from_secs(30);

/// A WABA's template by name and language.
type TemplateKey = (String, String, String);

const TEMPLATES_CACHED_FOR: Duration = Duration::from_secs(2);

impl TemplateCache {
    pub fn get(&self, waba_id: &str, name: &str, language: &str) -> Option<Arc<CheckedTemplate>> {
        let cache = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let key = (waba_id.to_owned(), name.to_owned(), language.to_owned());
        cache.get(&key).filter(|(_, at)| at.elapsed() < TEMPLATES_CACHED_FOR).map(|(t, _)| t.clone())
    }

    /// Only stored templates get here, so the map stays as small as the templates in use.
    pub fn put(&self, t: Arc<CheckedTemplate>) {
        let key = (t.template.waba_id.clone(), t.template.name.clone(), t.template.language.clone());
        self.found.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (t, Instant::now()));
    }

    /// Whether Meta lacked this template when last asked, a moment ago.
    pub fn missed(&self, waba_id: &str, name: &str, language: &str) -> bool {
        let misses = self.missed.lock().unwrap_or_else(|e| e.into_inner());
        let key = (waba_id.to_owned(), name.to_owned(), language.to_owned());
        misses.get(&key).is_some_and(|at| at.elapsed() < MISSES_KEPT_FOR)
    }

    pub fn miss(&self, waba_id: &str, name: &str, language: &str) {
        let mut misses = self.missed.lock().unwrap_or_else(|e| e.into_inner());
        // Names come from requests: the old ones go, so the map cannot grow without end.
        misses.retain(|_, at| at.elapsed() < MISSES_KEPT_FOR);
        misses.insert((waba_id.to_owned(), name.to_owned(), language.to_owned()), Instant::now());
    }

    pub fn forget_all(&self) {
        self.found.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.missed.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
