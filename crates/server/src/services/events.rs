//! Events and the webhook endpoints they are posted to: endpoints checked before they are
//! stored (a URL the address policy lets wagate reach, event types that exist, numbers that
//! exist, headers that are headers), secrets made and rotated, deliveries replayed and tested.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::watch;
use wagate_domain::event::{EventPattern, new_secret};
use wagate_domain::id::new_id;
use wagate_domain::input::nul_free_text;
use wagate_domain::network::AddressPolicy;
use wagate_domain::secret::Secret;
use wagate_domain::time::Timestamp;
use wagate_domain::validation::{FieldError, check_length};
use wagate_storage::{EndpointFormat, Event, EventFilter, EventOrder, LoggedAttempt, Replay, Store, WebhookEndpoint};

use super::ServiceError;
use crate::outbound::literal_refused;

/// How long the secret before a rotation keeps signing deliveries, beside the new one.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const MAX_URL_CHARS: usize = 2048;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_HEADERS: usize = 20;
const MAX_PATTERNS: usize = 50;
const MAX_NUMBERS: usize = 100;
/// Most events a replay by ids names.
pub const MAX_REPLAY_IDS: usize = 1000;

/// An endpoint's settings as a request gives them; `None`: unchanged (on update) or the default.
#[derive(Default)]
pub struct EndpointSettings {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)`: every number.
    pub phone_number_ids: Option<Option<Vec<String>>>,
    pub description: Option<Option<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    pub format: Option<String>,
    /// `Some(None)`: the account's own.
    pub app_secret: Option<Option<String>>,
    pub include_echoes: Option<bool>,
}

/// An endpoint just made, with its Standard Webhooks secret (shown this once; an endpoint of
/// Meta's format is signed with an app secret instead).
pub struct Created {
    pub endpoint: WebhookEndpoint,
    pub secret: Option<Secret>,
}

pub async fn create(
    store: &dyn Store,
    policy: &AddressPolicy,
    settings: EndpointSettings,
) -> Result<Created, ServiceError> {
    let now = Timestamp::now();
    let url = settings.url.as_deref().ok_or_else(|| FieldError::new("url", "required", "is required"))?;
    let format = check_format(settings.format.as_deref())?;
    let events = match (format, settings.events.as_deref()) {
        (EndpointFormat::Standard, Some(events)) => check_patterns(events)?,
        (EndpointFormat::Standard, None) => return Err(FieldError::new("events", "required", "is required").into()),
        (EndpointFormat::Meta, None) => Vec::new(),
        (EndpointFormat::Meta, Some(_)) => return Err(meta_events().into()),
    };
    let secret = Secret::new(new_secret());
    let endpoint = WebhookEndpoint {
        id: new_id("wep"),
        url: check_url(url, policy)?,
        description: check_description(settings.description.flatten())?,
        events,
        phone_number_ids: check_numbers(store, settings.phone_number_ids.flatten()).await?,
        headers: check_headers(settings.headers.unwrap_or_default())?,
        format,
        app_secret: check_app_secret(format, settings.app_secret.flatten())?,
        include_echoes: check_echoes(format, settings.include_echoes)?,
        enabled: settings.enabled.unwrap_or(true),
        disabled_reason: None,
        secret: secret.clone(),
        previous_secret: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_endpoint(&endpoint).await?;
    let secret = (format == EndpointFormat::Standard).then_some(secret);
    Ok(Created { endpoint, secret })
}

pub async fn get(store: &dyn Store, id: &str) -> Result<WebhookEndpoint, ServiceError> {
    store.get_endpoint(id).await?.ok_or_else(|| ServiceError::not_found("webhook endpoint", id))
}

pub async fn list(store: &dyn Store) -> Result<Vec<WebhookEndpoint>, ServiceError> {
    Ok(store.list_endpoints().await?)
}

/// Changes what `settings` names. Enabling an endpoint clears why wagate disabled it, and its
/// failing streak: its deliveries waiting meanwhile go out again.
pub async fn update(
    store: &dyn Store,
    policy: &AddressPolicy,
    id: &str,
    settings: EndpointSettings,
) -> Result<WebhookEndpoint, ServiceError> {
    let mut e = get(store, id).await?;
    if let Some(format) = &settings.format
        && check_format(Some(format))? != e.format
    {
        let why = "cannot change: the deliveries waiting were made for the other; create another endpoint";
        return Err(FieldError::new("format", "immutable", why).into());
    }
    if let Some(url) = &settings.url {
        e.url = check_url(url, policy)?;
    }
    if let Some(events) = &settings.events {
        if e.format == EndpointFormat::Meta {
            return Err(meta_events().into());
        }
        e.events = check_patterns(events)?;
    }
    if let Some(app_secret) = settings.app_secret {
        e.app_secret = check_app_secret(e.format, app_secret)?;
    }
    if let Some(echoes) = settings.include_echoes {
        e.include_echoes = check_echoes(e.format, Some(echoes))?;
    }
    if let Some(numbers) = settings.phone_number_ids {
        e.phone_number_ids = check_numbers(store, numbers).await?;
    }
    if let Some(description) = settings.description {
        e.description = check_description(description)?;
    }
    if let Some(headers) = settings.headers {
        e.headers = check_headers(headers)?;
    }
    if let Some(enabled) = settings.enabled {
        if enabled && !e.enabled {
            e.disabled_reason = None;
            e.failing_since = None;
        }
        e.enabled = enabled;
    }
    e.updated_at = Timestamp::now();
    if !store.update_endpoint(&e).await? {
        return Err(ServiceError::not_found("webhook endpoint", id));
    }
    Ok(e)
}

pub async fn delete(store: &dyn Store, id: &str) -> Result<(), ServiceError> {
    if store.delete_endpoint(id).await? { Ok(()) } else { Err(ServiceError::not_found("webhook endpoint", id)) }
}

/// A new secret; the one before keeps signing, beside it, for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(store: &dyn Store, id: &str) -> Result<(WebhookEndpoint, Secret), ServiceError> {
    let mut e = get(store, id).await?;
    if e.format == EndpointFormat::Meta {
        return Err(ServiceError::Conflict(
            "an endpoint of Meta's format is signed with an app secret (X-Hub-Signature-256), not a rotating \
             secret: PATCH its app_secret"
                .to_owned(),
        ));
    }
    let now = Timestamp::now();
    let secret = Secret::new(new_secret());
    e.previous_secret = Some((std::mem::replace(&mut e.secret, secret.clone()), now.plus(ROTATION_OVERLAP)));
    e.updated_at = now;
    if !store.update_endpoint(&e).await? {
        return Err(ServiceError::not_found("webhook endpoint", id));
    }
    Ok((e, secret))
}

/// An endpoint's attempts, newest first, before the attempt `cursor` names, `limit` at most.
pub async fn attempts(
    store: &dyn Store,
    id: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Vec<LoggedAttempt>, ServiceError> {
    get(store, id).await?;
    let before = cursor
        .map(|c| {
            c.parse::<i64>().map_err(|_| FieldError::new("cursor", "invalid_value", "is not a cursor this API gave"))
        })
        .transpose()?;
    Ok(store.list_attempts(id, before, limit).await?)
}

/// Queues again the events `replay` names; how many.
pub async fn replay(store: &dyn Store, id: &str, replay: Replay) -> Result<u64, ServiceError> {
    let endpoint = get(store, id).await?;
    if let Replay::Ids(ids) = &replay {
        if ids.is_empty() || ids.len() > MAX_REPLAY_IDS {
            return Err(
                FieldError::new("event_ids", "length", format!("must name 1 to {MAX_REPLAY_IDS} events")).into()
            );
        }
        for (i, event_id) in ids.iter().enumerate() {
            let path = format!("event_ids[{i}]");
            let Some(event) = store.get_event(event_id).await? else {
                return Err(FieldError::new(path, "not_found", format!("no event '{event_id}' is kept")).into());
            };
            if !endpoint.format.carries(&event.kind) {
                let why = format!(
                    "'{event_id}' is a {} event, which an endpoint of format '{}' is not sent",
                    event.kind,
                    endpoint.format.as_str()
                );
                return Err(FieldError::new(path, "format", why).into());
            }
        }
    }
    Ok(store.replay_events(id, &replay, Timestamp::now()).await?)
}

/// Queues a `ping` event for this endpoint alone.
pub async fn ping(store: &dyn Store, id: &str) -> Result<Event, ServiceError> {
    get(store, id).await?;
    Ok(store.ping_endpoint(id, Timestamp::now()).await?)
}

pub async fn list_events(store: &dyn Store, filter: &EventFilter, limit: u32) -> Result<Vec<Event>, ServiceError> {
    Ok(store.list_events(filter, limit).await?)
}

/// How many events a follower reads from the log at a time.
const FOLLOW_PAGE: u32 = 100;

/// The events `filter` wants as they come: after the one its order names (`EventOrder::After`),
/// or, without one, after the newest. Read from the log a page at a time; when nothing is new,
/// it waits for fan-out's word (`found`) or `poll`, for what other instances stored.
pub async fn follow(
    store: Arc<dyn Store>,
    mut filter: EventFilter,
    found: watch::Receiver<u64>,
    poll: Duration,
) -> Result<impl Stream<Item = Event>, ServiceError> {
    let after = match filter.order {
        EventOrder::After(seq) => seq,
        EventOrder::Newest { .. } => store.list_events(&EventFilter::default(), 1).await?.first().map_or(0, |e| e.seq),
    };
    filter.order = EventOrder::After(after);
    let state = (store, filter, Vec::<Event>::new().into_iter(), found);
    Ok(futures_util::stream::unfold(state, move |(store, mut filter, mut page, mut found)| async move {
        loop {
            if let Some(event) = page.next() {
                filter.order = EventOrder::After(event.seq);
                return Some((event, (store, filter, page, found)));
            }
            match store.list_events(&filter, FOLLOW_PAGE).await {
                Ok(events) if !events.is_empty() => {
                    page = events.into_iter();
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading events to follow failed"),
            }
            let _ = tokio::time::timeout(poll, found.changed()).await;
        }
    }))
}

/// The event `id` names, for a cursor or `after`.
pub async fn event(store: &dyn Store, field: &str, id: &str) -> Result<Event, ServiceError> {
    store
        .get_event(id)
        .await?
        .ok_or_else(|| FieldError::new(field, "not_found", format!("no event '{id}' is kept")).into())
}

/// Event types and patterns, as a filter or a subscription gives them.
pub fn check_patterns(patterns: &[impl AsRef<str>]) -> Result<Vec<EventPattern>, FieldError> {
    if patterns.is_empty() || patterns.len() > MAX_PATTERNS {
        return Err(FieldError::new(
            "events",
            "length",
            format!("must name 1 to {MAX_PATTERNS} event types or patterns"),
        ));
    }
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            EventPattern::parse(p.as_ref()).map_err(|why| FieldError::new(format!("events[{i}]"), "event_type", why))
        })
        .collect()
}

fn check_url(url: &str, policy: &AddressPolicy) -> Result<String, FieldError> {
    let parsed = super::http_url("url", url, MAX_URL_CHARS)?;
    let rule = |why: &str| FieldError::new("url", "url", format!("must be an http or https URL ({why})"));
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(rule("credentials belong in `headers`, not in the URL"));
    }
    if parsed.fragment().is_some() {
        return Err(rule("it must not have a fragment"));
    }
    // A literal address is judged now; a name is judged at each delivery by what it resolves to.
    literal_refused(policy, &parsed)
        .map_err(|refused| FieldError::new("url", "private_address", refused.to_string()))?;
    Ok(parsed.to_string())
}

fn check_description(description: Option<String>) -> Result<Option<String>, FieldError> {
    if let Some(d) = &description {
        check_length("description", d, 0, MAX_DESCRIPTION_CHARS)?;
        nul_free_text("description", d)?;
    }
    Ok(description.filter(|d| !d.is_empty()))
}

async fn check_numbers(store: &dyn Store, numbers: Option<Vec<String>>) -> Result<Option<Vec<String>>, ServiceError> {
    let Some(numbers) = numbers else { return Ok(None) };
    if numbers.is_empty() || numbers.len() > MAX_NUMBERS {
        let why = format!("must name 1 to {MAX_NUMBERS} phone-number ids, or be null for every number");
        return Err(FieldError::new("phone_number_ids", "length", why).into());
    }
    for (i, id) in numbers.iter().enumerate() {
        nul_free_text(&format!("phone_number_ids[{i}]"), id)?;
        if id.len() > 64 || store.get_phone_number(id).await?.is_none() {
            let why = format!("'{id}' is no phone number of this gateway (GET /v1/phone-numbers lists them)");
            return Err(FieldError::new(format!("phone_number_ids[{i}]"), "not_found", why).into());
        }
    }
    Ok(Some(numbers))
}

fn check_headers(headers: BTreeMap<String, String>) -> Result<BTreeMap<String, Secret>, FieldError> {
    if headers.len() > MAX_HEADERS {
        return Err(FieldError::new("headers", "length", format!("must have at most {MAX_HEADERS} headers")));
    }
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let path = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() || name.len() > 100 {
            return Err(FieldError::new(path, "header_name", "is not an HTTP header name"));
        }
        if wagate_domain::event::is_reserved_header(&lower) {
            return Err(FieldError::new(path, "reserved", "is set by wagate on every delivery"));
        }
        if value.len() > 4096 || reqwest::header::HeaderValue::from_str(&value).is_err() {
            return Err(FieldError::new(path, "header_value", "must be visible ASCII of at most 4096 bytes"));
        }
        out.insert(lower, Secret::new(value));
    }
    Ok(out)
}

fn check_format(format: Option<&str>) -> Result<EndpointFormat, FieldError> {
    match format {
        None => Ok(EndpointFormat::Standard),
        Some(f) => EndpointFormat::parse(f).ok_or_else(|| {
            let why = format!(
                "'{f}' is not a format; 'standard' posts wagate's events as Standard Webhooks, 'meta' forwards \
                 Meta's webhook bodies as Meta sent them"
            );
            FieldError::new("format", "invalid_value", why)
        }),
    }
}

fn meta_events() -> FieldError {
    let why = "is not used by an endpoint of Meta's format, which is sent every webhook Meta sends about its numbers \
               (and with include_echoes the messages sent through wagate): leave it out";
    FieldError::new("events", "not_allowed", why)
}

fn only_meta(field: &str) -> FieldError {
    FieldError::new(field, "not_allowed", "applies only to an endpoint of format 'meta'")
}

/// The rule of an account's app secret.
fn check_app_secret(format: EndpointFormat, secret: Option<String>) -> Result<Option<Secret>, FieldError> {
    let Some(secret) = secret else { return Ok(None) };
    if format != EndpointFormat::Meta {
        return Err(only_meta("app_secret"));
    }
    super::accounts::check_secret("app_secret", &secret).map(Some)
}

fn check_echoes(format: EndpointFormat, echoes: Option<bool>) -> Result<bool, FieldError> {
    match echoes {
        Some(true) if format != EndpointFormat::Meta => Err(only_meta("include_echoes")),
        echoes => Ok(echoes.unwrap_or(false)),
    }
}
