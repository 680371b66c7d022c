//! Events, webhook endpoints, their deliveries and attempts: the statements both backends run
//! as the same text, the readers of their rows, and which events a message's change makes.

use std::collections::BTreeMap;

use wagate_domain::event::{EventPattern, EventType};
use wagate_domain::sealed::Cipher;
use wagate_domain::secret::Secret;
use wagate_domain::status::MessageStatus;

use super::{Columns, Values, corrupt, json_text, parse_json, ts};
use crate::*;

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (id, type, phone_number_id, data, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING seq";

macro_rules! event_cols {
    () => {
        "seq, id, type, phone_number_id, data, created_at"
    };
}
// On PostgreSQL an event has no `seq` until it is ordered after its commit, and is not read
// before (see postgres/events.rs).
pub(crate) const SELECT_EVENT: &str =
    concat!("SELECT ", event_cols!(), " FROM events WHERE id = $1 AND seq IS NOT NULL");
pub(crate) const SELECT_EVENT_BY_SEQ: &str = concat!("SELECT ", event_cols!(), " FROM events WHERE seq = $1");
/// Newest first from before `$3` (NULL: the newest), of number `$1` (NULL: any); the types are
/// filtered by the caller (patterns), which reads pages until it has enough.
pub(crate) const SELECT_EVENTS_NEWEST: &str = concat!(
    "SELECT ",
    event_cols!(),
    " FROM events WHERE ($1 IS NULL OR phone_number_id = $1) AND seq IS NOT NULL AND ($2 IS NULL OR seq < $2) \
     ORDER BY seq DESC LIMIT $3"
);
pub(crate) const SELECT_EVENTS_AFTER: &str = concat!(
    "SELECT ",
    event_cols!(),
    " FROM events WHERE ($1 IS NULL OR phone_number_id = $1) AND seq > $2 ORDER BY seq LIMIT $3"
);
pub(crate) const SELECT_EVENT_SEQ: &str = "SELECT seq FROM events WHERE id = $1 AND seq IS NOT NULL";
/// What fan-out reads of the events after seq `$1`: their routes, oldest first.
pub(crate) const SELECT_EVENT_ROUTES_AFTER: &str =
    "SELECT seq, type, phone_number_id FROM events WHERE seq > $1 ORDER BY seq LIMIT $2";
/// The routes of events created since `$1`, after seq `$2`, oldest first: for a replay.
pub(crate) const SELECT_EVENT_ROUTES_SINCE: &str =
    "SELECT seq, type, phone_number_id FROM events WHERE created_at >= $1 AND seq > $2 ORDER BY seq LIMIT $3";
/// Events replayed per statement.
pub(crate) const REPLAY_PAGE: i64 = 1000;
/// The endpoints events are fanned out to: the enabled ones.
pub(crate) const SELECT_ROUTES: &str =
    "SELECT id, event_types, phone_number_ids, format, include_echoes FROM webhook_endpoints WHERE enabled";
/// How many enabled endpoints take Meta's format: Meta's bodies are kept to forward only then.
pub(crate) const COUNT_META_ENDPOINTS: &str =
    "SELECT COUNT(*) FROM webhook_endpoints WHERE enabled AND format = 'meta'";

pub(crate) const SELECT_FANOUT_CURSOR: &str = "SELECT through_seq FROM event_fanout WHERE id = 1";
pub(crate) const SET_FANOUT_CURSOR: &str = "UPDATE event_fanout SET through_seq = $1 WHERE id = 1";
pub(crate) const INSERT_EVENT_DELIVERY: &str = "INSERT INTO event_deliveries \
    (endpoint_id, event_seq, available_at, attempts, state, created_at) VALUES ($1, $2, $3, 0, 'pending', $3)";

macro_rules! endpoint_cols {
    () => {
        "id, url, description, event_types, phone_number_ids, headers, format, enabled, disabled_reason, secret, \
         previous_secret, previous_secret_until, failing_since, created_at, updated_at, app_secret, include_echoes"
    };
}
pub(crate) const INSERT_ENDPOINT: &str = concat!(
    "INSERT INTO webhook_endpoints (",
    endpoint_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16)"
);
pub(crate) const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = $1, description = $2, \
    event_types = $3, phone_number_ids = $4, headers = $5, format = $6, enabled = $7, disabled_reason = $8, \
    secret = $9, previous_secret = $10, previous_secret_until = $11, failing_since = $12, app_secret = $13, \
    include_echoes = $14, updated_at = $15 WHERE id = $16";
pub(crate) const SELECT_ENDPOINT: &str = concat!("SELECT ", endpoint_cols!(), " FROM webhook_endpoints WHERE id = $1");
pub(crate) const SELECT_ENDPOINTS: &str = concat!("SELECT ", endpoint_cols!(), " FROM webhook_endpoints ORDER BY id");
pub(crate) const DELETE_ENDPOINT: &str = "DELETE FROM webhook_endpoints WHERE id = $1";
pub(crate) const SELECT_ENDPOINT_SECRETS: &str =
    "SELECT id, secret, previous_secret, headers, app_secret FROM webhook_endpoints";
pub(crate) const UPDATE_ENDPOINT_SECRETS: &str =
    "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2, headers = $3, app_secret = $4 WHERE id = $5";
pub(crate) const DISABLE_ENDPOINT: &str = "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $1, \
    updated_at = $2 WHERE id = $3 AND enabled";

/// Claims an endpoint's due deliveries; `lock` keeps PostgreSQL instances off each other's rows.
macro_rules! claim_event_deliveries {
    ($lock:literal) => {
        concat!(
            "UPDATE event_deliveries SET lease = $1, available_at = $2, attempts = attempts + 1 ",
            "WHERE id IN (SELECT id FROM event_deliveries WHERE endpoint_id = $3 AND available_at IS NOT NULL ",
            "AND available_at <= $4 ORDER BY available_at, id LIMIT $5",
            $lock,
            ") RETURNING id, endpoint_id, event_seq, attempts"
        )
    };
}
pub(crate) use claim_event_deliveries;

/// The endpoints with deliveries due at `$1`: whose deliveries a claim across endpoints takes.
/// One probe of the due index per endpoint, however many deliveries wait.
pub(crate) const SELECT_DUE_ENDPOINTS: &str = "SELECT w.id FROM webhook_endpoints w WHERE w.enabled AND EXISTS \
    (SELECT 1 FROM event_deliveries d WHERE d.endpoint_id = w.id AND d.available_at IS NOT NULL \
    AND d.available_at <= $1)";
/// A delivery the receiver took: only while the lease is still held.
pub(crate) const FINISH_EVENT_DELIVERY: &str = "UPDATE event_deliveries SET available_at = NULL, lease = NULL, \
    state = $1, last_error = $2, finished_at = $3 WHERE id = $4 AND lease = $5";
pub(crate) const RETRY_EVENT_DELIVERY: &str = "UPDATE event_deliveries SET available_at = $1, lease = NULL, \
    last_error = $2 WHERE id = $3 AND lease = $4";
pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO event_attempts \
    (delivery_id, endpoint_id, event_id, attempted_at, status_code, latency_ms, response, error) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(crate) const ENDPOINT_SUCCEEDED: &str =
    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
pub(crate) const ENDPOINT_FAILED: &str =
    "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL";
pub(crate) const SELECT_ATTEMPTS: &str = "SELECT id, delivery_id, endpoint_id, event_id, attempted_at, status_code, \
    latency_ms, response, error FROM event_attempts WHERE endpoint_id = $1 AND ($2 IS NULL OR id < $2) \
    ORDER BY id DESC LIMIT $3";
pub(crate) const COUNT_PENDING_EVENT_DELIVERIES: &str = "SELECT endpoint_id, COUNT(*) FROM event_deliveries \
    WHERE available_at IS NOT NULL GROUP BY endpoint_id ORDER BY endpoint_id";
pub(crate) const COUNT_ALL_PENDING_EVENT_DELIVERIES: &str =
    "SELECT COUNT(*) FROM event_deliveries WHERE available_at IS NOT NULL";

/// Retention: events before `$1` (never the newest, whose `seq` orders what comes after it),
/// then the deliveries done before it, then the attempts made before it; `$2` rows at most each.
pub(crate) const DELETE_OLD_EVENTS: &str = "DELETE FROM events WHERE seq IN (SELECT seq FROM events \
    WHERE created_at < $1 AND seq < (SELECT MAX(seq) FROM events) ORDER BY seq LIMIT $2)";
pub(crate) const DELETE_OLD_EVENT_DELIVERIES: &str = "DELETE FROM event_deliveries WHERE id IN (SELECT id \
    FROM event_deliveries WHERE available_at IS NULL AND finished_at < $1 LIMIT $2)";
pub(crate) const DELETE_OLD_ATTEMPTS: &str =
    "DELETE FROM event_attempts WHERE id IN (SELECT id FROM event_attempts WHERE attempted_at < $1 LIMIT $2)";

/// An event as `event_cols!` selects it.
pub(crate) fn event(r: &impl Columns) -> Result<Event> {
    Ok(Event {
        seq: r.get(0)?,
        id: r.get(1)?,
        kind: r.get(2)?,
        phone_number_id: r.get(3)?,
        data: parse_json("data", &r.get::<String>(4)?)?,
        created_at: ts(r.get(5)?),
    })
}

/// An event's route: seq, type, number.
pub(crate) type EventRoute = (i64, String, Option<String>);

pub(crate) fn event_route(r: &impl Columns) -> Result<EventRoute> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// An endpoint as fan-out sees it: what it is sent.
pub(crate) struct Route {
    pub(crate) endpoint_id: String,
    format: EndpointFormat,
    include_echoes: bool,
    patterns: Vec<EventPattern>,
    numbers: Option<Vec<String>>,
}

impl Route {
    pub(crate) fn subscription(&self) -> Subscription<'_> {
        Subscription {
            format: self.format,
            include_echoes: self.include_echoes,
            patterns: &self.patterns,
            numbers: self.numbers.as_deref(),
        }
    }
}

pub(crate) fn route(r: &impl Columns) -> Result<Route> {
    let format: String = r.get(3)?;
    Ok(Route {
        endpoint_id: r.get(0)?,
        format: EndpointFormat::parse(&format).ok_or_else(|| corrupt("endpoint format", &format))?,
        include_echoes: r.get(4)?,
        patterns: patterns(r.get(1)?)?,
        numbers: r.get::<Option<String>>(2)?.map(|t| strings("phone_number_ids", t)).transpose()?,
    })
}

fn strings(column: &'static str, text: String) -> Result<Vec<String>> {
    serde_json::from_str(&text).map_err(|_| corrupt(column, &text))
}

fn patterns(text: String) -> Result<Vec<EventPattern>> {
    Ok(strings("event_types", text)?.into_iter().map(EventPattern::from_trusted).collect())
}

/// Events read per page by `list_events`, which filters their types itself.
pub(crate) fn event_page(limit: u32) -> i64 {
    (i64::from(limit) * 2).clamp(50, 1000)
}

/// Adds the events of a page that `filter` wants to `out` (up to `limit`); where the next page
/// starts, or `None` when the list is done.
pub(crate) fn next_page(
    filter: &EventFilter,
    order: EventOrder,
    page: i64,
    events: Vec<Event>,
    out: &mut Vec<Event>,
    limit: u32,
) -> Option<EventOrder> {
    let full = events.len() as i64 == page;
    let last = events.last().map(|e| e.seq)?;
    out.extend(events.into_iter().filter(|e| filter.wants(e)));
    out.truncate(limit as usize);
    if out.len() >= limit as usize || !full {
        return None;
    }
    Some(match order {
        EventOrder::Newest { .. } => EventOrder::Newest { before: Some(last) },
        EventOrder::After(_) => EventOrder::After(last),
    })
}

/// A claimed delivery's row: id, endpoint, event seq, attempts.
pub(crate) type ClaimedRow = (i64, String, i64, i64);

pub(crate) fn claimed_row(r: &impl Columns) -> Result<ClaimedRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// The claimed deliveries with their events, in id order, and the ids of those whose event is
/// gone: removed by retention while the delivery waited (its endpoint disabled long), they are
/// failed rather than sent empty.
pub(crate) fn with_events(
    mut rows: Vec<ClaimedRow>,
    mut events: std::collections::HashMap<i64, Event>,
    lease: &str,
    lease_until: Timestamp,
) -> (Vec<Leased<EventDelivery>>, Vec<i64>) {
    rows.sort_by_key(|r| r.0);
    let (mut claimed, mut gone) = (Vec::with_capacity(rows.len()), Vec::new());
    for (id, endpoint_id, seq, attempts) in rows {
        match events.remove(&seq) {
            Some(event) => claimed.push(Leased {
                item: EventDelivery { id, endpoint_id, event },
                lease: lease.to_owned(),
                lease_until,
                attempts,
            }),
            None => gone.push(id),
        }
    }
    (claimed, gone)
}

/// Why a delivery whose event is gone failed.
pub(crate) const EVENT_GONE: &str = "the event is no longer kept";

/// [`INSERT_ATTEMPT`]'s values: an attempt at delivery `d`.
pub(crate) fn attempt_values<'a>(d: &'a Leased<EventDelivery>, a: &'a Attempt) -> impl Values<'a> + 'a {
    (
        d.id,
        d.endpoint_id.as_str(),
        d.event.id.as_str(),
        a.at.as_millis(),
        a.status.map(i64::from),
        a.latency_ms,
        a.response.as_deref(),
        a.error.as_deref(),
    )
}

pub(crate) fn attempt(r: &impl Columns) -> Result<LoggedAttempt> {
    Ok(LoggedAttempt {
        id: r.get(0)?,
        delivery_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        event_id: r.get(3)?,
        attempt: Attempt {
            at: ts(r.get(4)?),
            status: r.get::<Option<i64>>(5)?.and_then(|s| u16::try_from(s).ok()),
            latency_ms: r.get(6)?,
            response: r.get(7)?,
            error: r.get(8)?,
        },
    })
}

/// An endpoint with its secrets and headers opened.
pub(crate) fn endpoint(cipher: &Cipher, r: &impl Columns) -> Result<WebhookEndpoint> {
    let id: String = r.get(0)?;
    let open = |column: &'static str, sealed: &str| super::open_endpoint(cipher, &id, column, sealed);
    let format: String = r.get(6)?;
    let headers: BTreeMap<String, Secret> = match r.get::<Option<String>>(5)? {
        Some(sealed) => {
            let text = open("headers", &sealed)?;
            let map: BTreeMap<String, String> =
                serde_json::from_str(text.expose()).map_err(|_| corrupt("headers", "(sealed)"))?;
            map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()
        }
        None => BTreeMap::new(),
    };
    let previous = match (r.get::<Option<String>>(10)?, r.get::<Option<i64>>(11)?) {
        (Some(sealed), Some(until)) => Some((open("previous_secret", &sealed)?, ts(until))),
        _ => None,
    };
    Ok(WebhookEndpoint {
        url: r.get(1)?,
        description: r.get(2)?,
        events: patterns(r.get(3)?)?,
        phone_number_ids: r.get::<Option<String>>(4)?.map(|t| strings("phone_number_ids", t)).transpose()?,
        headers,
        format: EndpointFormat::parse(&format).ok_or_else(|| corrupt("endpoint format", &format))?,
        app_secret: r.get::<Option<String>>(15)?.map(|sealed| open("app_secret", &sealed)).transpose()?,
        include_echoes: r.get(16)?,
        enabled: r.get(7)?,
        disabled_reason: r.get(8)?,
        secret: open("secret", &r.get::<String>(9)?)?,
        previous_secret: previous,
        failing_since: r.get::<Option<i64>>(12)?.map(ts),
        created_at: ts(r.get(13)?),
        updated_at: ts(r.get(14)?),
        id,
    })
}

/// An endpoint's columns as `INSERT_ENDPOINT` and `UPDATE_ENDPOINT` take them, secrets sealed.
pub(crate) struct EndpointColumns {
    id: String,
    url: String,
    description: Option<String>,
    event_types: String,
    phone_number_ids: Option<String>,
    headers: Option<String>,
    format: &'static str,
    enabled: bool,
    disabled_reason: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_until: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
    app_secret: Option<String>,
    include_echoes: bool,
}

impl EndpointColumns {
    pub(crate) fn new(cipher: &Cipher, e: &WebhookEndpoint) -> Self {
        let seal = |column: &str, s: &str| cipher.seal(&Secret::new(s), &super::endpoint_context(&e.id, column));
        let patterns: Vec<&str> = e.events.iter().map(EventPattern::as_str).collect();
        let headers: BTreeMap<&str, &str> = e.headers.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            event_types: json_text(&serde_json::json!(patterns)),
            phone_number_ids: e.phone_number_ids.as_ref().map(|ids| json_text(&serde_json::json!(ids))),
            headers: (!headers.is_empty()).then(|| seal("headers", &json_text(&serde_json::json!(headers)))),
            format: e.format.as_str(),
            enabled: e.enabled,
            disabled_reason: e.disabled_reason.clone(),
            secret: seal("secret", e.secret.expose()),
            previous_secret: e.previous_secret.as_ref().map(|(s, _)| seal("previous_secret", s.expose())),
            previous_secret_until: e.previous_secret.as_ref().map(|(_, until)| until.as_millis()),
            failing_since: e.failing_since.map(Timestamp::as_millis),
            created_at: e.created_at.as_millis(),
            updated_at: e.updated_at.as_millis(),
            app_secret: e.app_secret.as_ref().map(|s| seal("app_secret", s.expose())),
            include_echoes: e.include_echoes,
        }
    }

    /// The values of `INSERT_ENDPOINT`, in its parameters' order (a new endpoint was updated
    /// when it was created).
    pub(crate) fn insert_values(&self) -> impl Values<'_> + '_ {
        let c = self;
        let (a, b, d, e, f, g, h, i, j, k, l, m) = c.settings();
        (c.id.as_str(), a, b, d, e, f, g, h, i, j, k, l, m, c.created_at, c.app_secret.as_deref(), c.include_echoes)
    }

    /// The values of `UPDATE_ENDPOINT`, in its parameters' order.
    pub(crate) fn update_values(&self) -> impl Values<'_> + '_ {
        let c = self;
        let (a, b, d, e, f, g, h, i, j, k, l, m) = c.settings();
        (a, b, d, e, f, g, h, i, j, k, l, m, c.app_secret.as_deref(), c.include_echoes, c.updated_at, c.id.as_str())
    }

    /// Every column but the id and the times.
    #[allow(clippy::type_complexity)]
    fn settings(
        &self,
    ) -> (
        &str,
        Option<&str>,
        &str,
        Option<&str>,
        Option<&str>,
        &'static str,
        bool,
        Option<&str>,
        &str,
        Option<&str>,
        Option<i64>,
        Option<i64>,
    ) {
        (
            &self.url,
            self.description.as_deref(),
            &self.event_types,
            self.phone_number_ids.as_deref(),
            self.headers.as_deref(),
            self.format,
            self.enabled,
            self.disabled_reason.as_deref(),
            &self.secret,
            self.previous_secret.as_deref(),
            self.previous_secret_until,
            self.failing_since,
        )
    }
}

/// The event a webhook change stored as `id` makes (`account.event`), its data as
/// `GET /v1/accounts/{id}/events` lists it.
pub(crate) fn account_event(views: &dyn EventViews, id: i64, e: &NewWebhookEvent) -> NewEvent {
    let stored = WebhookEvent {
        id,
        account_id: e.account_id.clone(),
        field: e.field.clone(),
        kind: e.kind.clone(),
        subject: e.subject.clone(),
        payload: e.payload.clone(),
        occurred_at: e.occurred_at,
        recorded_at: e.recorded_at,
    };
    NewEvent { kind: EventType::AccountEvent, phone_number_id: None, data: views.webhook_event(&stored) }
}

/// The event a media file's end makes: `media.stored` or `media.failed`.
pub(crate) fn media_event(views: &dyn EventViews, media: &Media) -> NewEvent {
    let kind = if media.state == MediaState::Stored { EventType::MediaStored } else { EventType::MediaFailed };
    NewEvent { kind, phone_number_id: Some(media.phone_number_id.clone()), data: views.media(media) }
}

/// The event an account's pause or resume makes.
pub(crate) fn account_state_event(views: &dyn EventViews, account: &Account) -> NewEvent {
    let kind = if account.paused.is_some() { EventType::AccountPaused } else { EventType::AccountResumed };
    NewEvent { kind, phone_number_id: None, data: views.account(account) }
}

/// The event resolving a contact's ids makes: `contact.created` for a contact made,
/// `contact.updated` for contacts merged or ids changed (a customer's new number or user id).
pub(crate) fn contact_change(found: usize, seen: &super::Seen<'_>) -> Option<EventType> {
    match (found, seen) {
        (0, _) => Some(EventType::ContactCreated),
        (1, super::Seen::Message { .. }) => None,
        _ => Some(EventType::ContactUpdated),
    }
}

/// A contact's event, its data the contact as the native API shows it.
pub(crate) fn contact_event(views: &dyn EventViews, kind: EventType, contact: &Contact) -> NewEvent {
    NewEvent { kind, phone_number_id: None, data: views.contact(contact) }
}

/// The gateway's reason for a message that was not sent before its `expires_at`.
pub(crate) const EXPIRED: &str = "expired";

/// The events a change to a message makes: one for each status its history gained (a `read`
/// that implies a `delivered` makes both), except a `failed` that came too late to be the
/// message's status (it is only recorded). Statuses of a group's participants make none.
pub(crate) fn message_changes(before: &[StatusEntry], message: &Message, after: &[StatusEntry]) -> Vec<EventType> {
    let had = |s: MessageStatus| before.iter().any(|e| e.participant.is_none() && e.status == s);
    let mut kinds: Vec<EventType> = Vec::new();
    for e in after.iter().filter(|e| e.participant.is_none() && !had(e.status)) {
        if e.status == MessageStatus::Failed && message.status != MessageStatus::Failed {
            continue;
        }
        let kind = match (e.status, &e.error) {
            (MessageStatus::Failed, Some(error)) if error.reason.as_deref() == Some(EXPIRED) => {
                Some(EventType::MessageExpired)
            }
            (status, _) => EventType::of_status(status),
        };
        if let Some(kind) = kind
            && !kinds.contains(&kind)
        {
            kinds.push(kind);
        }
    }
    kinds
}

/// The events of what changed in `message` since its history was `before` (see
/// [`message_changes`]), its data the message as it is now.
pub(crate) fn message_events(
    views: &dyn EventViews,
    message: &Message,
    before: &[StatusEntry],
    after: &[StatusEntry],
) -> Vec<NewEvent> {
    let kinds = message_changes(before, message, after);
    if kinds.is_empty() {
        return Vec::new();
    }
    let data = views.message(message, after);
    let number = Some(message.phone_number_id.clone());
    kinds.into_iter().map(|kind| NewEvent { kind, phone_number_id: number.clone(), data: data.clone() }).collect()
}

/// Every statement here, for the test of their parameters' order.
#[cfg(test)]
pub(super) fn statements() -> Vec<&'static str> {
    vec![
        INSERT_EVENT,
        SELECT_EVENT,
        SELECT_EVENT_BY_SEQ,
        SELECT_EVENTS_NEWEST,
        SELECT_EVENTS_AFTER,
        SELECT_EVENT_SEQ,
        SELECT_EVENT_ROUTES_AFTER,
        SELECT_EVENT_ROUTES_SINCE,
        SELECT_ROUTES,
        COUNT_META_ENDPOINTS,
        SELECT_FANOUT_CURSOR,
        SET_FANOUT_CURSOR,
        INSERT_EVENT_DELIVERY,
        INSERT_ENDPOINT,
        SELECT_ENDPOINT,
        SELECT_ENDPOINTS,
        DELETE_ENDPOINT,
        DISABLE_ENDPOINT,
        SELECT_ENDPOINT_SECRETS,
        UPDATE_ENDPOINT_SECRETS,
        claim_event_deliveries!(""),
        claim_event_deliveries!(" FOR UPDATE SKIP LOCKED"),
        SELECT_DUE_ENDPOINTS,
        FINISH_EVENT_DELIVERY,
        RETRY_EVENT_DELIVERY,
        INSERT_ATTEMPT,
        ENDPOINT_SUCCEEDED,
        ENDPOINT_FAILED,
        SELECT_ATTEMPTS,
        COUNT_PENDING_EVENT_DELIVERIES,
        COUNT_ALL_PENDING_EVENT_DELIVERIES,
        DELETE_OLD_EVENTS,
        DELETE_OLD_EVENT_DELIVERIES,
        DELETE_OLD_ATTEMPTS,
    ]
}
