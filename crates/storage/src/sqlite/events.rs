//! Events, webhook endpoints and their deliveries (a leased queue claimed per endpoint), and
//! the helpers the other aggregates' writes call to store the events of their changes.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, Transaction, params};
use wagate_domain::event::EventType;
use wagate_domain::id::new_id;
use wagate_domain::time::Timestamp;

use super::SqliteStore;
use super::rows::{all, execute, first, value};
use crate::shared::{self, ClaimedRow, EndpointColumns, claim_event_deliveries, json_text};
use crate::*;

const CLAIM_EVENT_DELIVERIES: &str = claim_event_deliveries!("");

/// Stores an event, in the transaction of the change it tells of.
pub(super) fn emit(tx: &Transaction<'_>, event: &NewEvent, at: i64) -> Result<()> {
    let values = (new_id("evt"), event.kind.as_str(), event.phone_number_id.as_deref(), json_text(&event.data), at);
    let _seq: i64 = value(tx, shared::INSERT_EVENT, values)?;
    Ok(())
}

/// A message and its history as they are in `tx`.
pub(super) fn message_state(tx: &Connection, id: &str) -> Result<Option<(Message, Vec<StatusEntry>)>> {
    let Some(message) = first(tx, shared::SELECT_MESSAGE, [id], |r| shared::message(r))? else {
        return Ok(None);
    };
    Ok(Some((message, message_history(tx, id)?)))
}

/// A message's history alone: before a change, for [`emit_message_changes`] after it (the
/// message itself is read once, after the change).
pub(super) fn message_history(tx: &Connection, id: &str) -> Result<Vec<StatusEntry>> {
    shared::history(all(tx, shared::SELECT_HISTORY, [id], |r| shared::status_row(r))?)
}

/// Stores the events of what changed in a message since its history was `before`.
pub(super) fn emit_message_changes(
    tx: &Transaction<'_>,
    views: &dyn EventViews,
    id: &str,
    before: &[StatusEntry],
    at: i64,
) -> Result<()> {
    let Some((message, after)) = message_state(tx, id)? else { return Ok(()) };
    for event in shared::message_events(views, &message, before, &after) {
        emit(tx, &event, at)?;
    }
    Ok(())
}

#[async_trait]
impl Events for SqliteStore {
    async fn list_events(&self, filter: &EventFilter, limit: u32) -> Result<Vec<Event>> {
        let filter = filter.clone();
        self.readers.scan(move |c| list_events(c, &filter, limit)).await
    }

    async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        self.readers.read(|c| first(c, shared::SELECT_EVENT, [id], |r| shared::event(r)))
    }

    async fn fan_out_events(&self, limit: u32, at: Timestamp) -> Result<usize> {
        self.writer.write(move |tx| fan_out(tx, limit, at.as_millis())).await
    }

    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let columns = EndpointColumns::new(&self.cipher, endpoint);
        self.writer.write(move |tx| execute(tx, shared::INSERT_ENDPOINT, columns.insert_values()).map(|_| ())).await
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool> {
        let columns = EndpointColumns::new(&self.cipher, endpoint);
        self.writer.write(move |tx| Ok(execute(tx, shared::UPDATE_ENDPOINT, columns.update_values())? == 1)).await
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        self.readers.read(|c| first(c, shared::SELECT_ENDPOINT, [id], |r| shared::endpoint(&self.cipher, r)))
    }

    async fn list_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.readers.read(|c| all(c, shared::SELECT_ENDPOINTS, [], |r| shared::endpoint(&self.cipher, r)))
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        Ok(self.execute(shared::DELETE_ENDPOINT, (id.to_owned(),)).await? == 1)
    }

    async fn disable_endpoint(&self, id: &str, reason: &str, at: Timestamp) -> Result<bool> {
        let (id, reason, at) = (id.to_owned(), reason.to_owned(), at.as_millis());
        let (cipher, views) = (self.cipher.clone(), self.views.clone());
        self.writer
            .write(move |tx| {
                if execute(tx, shared::DISABLE_ENDPOINT, params![reason, at, id])? == 0 {
                    return Ok(false);
                }
                if let Some(endpoint) = first(tx, shared::SELECT_ENDPOINT, [&id], |r| shared::endpoint(&cipher, r))? {
                    let event = NewEvent {
                        kind: EventType::EndpointDisabled,
                        phone_number_id: None,
                        data: views.endpoint(&endpoint),
                    };
                    emit(tx, &event, at)?;
                }
                Ok(true)
            })
            .await
    }

    async fn claim_event_deliveries(
        &self,
        endpoint_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Leased<EventDelivery>>> {
        let endpoint_id = endpoint_id.to_owned();
        self.writer.write(move |tx| claim(tx, &endpoint_id, now, lease_until, limit)).await
    }

    async fn due_endpoints(&self, now: Timestamp) -> Result<Vec<String>> {
        self.readers.scan(move |c| all(c, shared::SELECT_DUE_ENDPOINTS, [now.as_millis()], |r| Ok(r.get(0)?))).await
    }

    async fn complete_event_deliveries(&self, done: &[(&Leased<EventDelivery>, Attempt)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let done: Vec<(Leased<EventDelivery>, Attempt)> = done.iter().map(|(d, a)| ((*d).clone(), a.clone())).collect();
        self.writer
            .write(move |tx| {
                for (d, attempt) in &done {
                    let finish = params!["delivered", None::<String>, attempt.at.as_millis(), d.id, d.lease];
                    if execute(tx, shared::FINISH_EVENT_DELIVERY, finish)? == 1 {
                        log_attempt(tx, d, attempt)?;
                        execute(tx, shared::ENDPOINT_SUCCEEDED, [&d.endpoint_id])?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn list_attempts(&self, endpoint_id: &str, before: Option<i64>, limit: u32) -> Result<Vec<LoggedAttempt>> {
        let params = (endpoint_id.to_owned(), before, limit);
        self.readers.scan(move |c| all(c, shared::SELECT_ATTEMPTS, params, |r| shared::attempt(r))).await
    }

    async fn replay_events(&self, endpoint_id: &str, replay: &Replay, at: Timestamp) -> Result<u64> {
        let Some(endpoint) = self.get_endpoint(endpoint_id).await? else { return Ok(0) };
        let replay = replay.clone();
        self.writer.write(move |tx| replay_events(tx, &endpoint, &replay, at.as_millis())).await
    }

    async fn ping_endpoint(&self, endpoint_id: &str, at: Timestamp) -> Result<Event> {
        let endpoint_id = endpoint_id.to_owned();
        let data = serde_json::json!({ "endpoint_id": endpoint_id, "message": "a test event, sent on request" });
        self.writer
            .write(move |tx| {
                let (id, text, at) = (new_id("evt"), json_text(&data), at.as_millis());
                let values = (id.as_str(), EventType::Ping.as_str(), None::<&str>, text.as_str(), at);
                let seq: i64 = value(tx, shared::INSERT_EVENT, values)?;
                execute(tx, shared::INSERT_EVENT_DELIVERY, params![endpoint_id, seq, at])?;
                Ok(Event {
                    seq,
                    id,
                    kind: EventType::Ping.as_str().to_owned(),
                    phone_number_id: None,
                    data: data.clone(),
                    created_at: shared::ts(at),
                })
            })
            .await
    }

    async fn delete_old_events(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let params = (before.as_millis(), limit);
        let mut removed = 0;
        for sql in [shared::DELETE_OLD_EVENTS, shared::DELETE_OLD_EVENT_DELIVERIES, shared::DELETE_OLD_ATTEMPTS] {
            removed += self.execute(sql, params).await? as u64;
        }
        Ok(removed)
    }

    async fn pending_event_deliveries(&self) -> Result<Vec<(String, i64)>> {
        self.readers.scan(|c| all(c, shared::COUNT_PENDING_EVENT_DELIVERIES, [], |r| Ok((r.get(0)?, r.get(1)?)))).await
    }
}

/// Deliveries to every endpoint. A claim takes each endpoint's due deliveries in turn (see
/// `Events::claim_event_deliveries`); a failed attempt is logged with its retry or give-up.
#[async_trait]
impl LeasedQueue<EventDelivery, Attempt> for SqliteStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<EventDelivery>>> {
        self.writer
            .write(move |tx| {
                let endpoints: Vec<String> =
                    all(tx, shared::SELECT_DUE_ENDPOINTS, [now.as_millis()], |r| Ok(r.get(0)?))?;
                let mut claimed = Vec::new();
                for endpoint in endpoints {
                    let left = limit.saturating_sub(claimed.len() as u32);
                    if left == 0 {
                        break;
                    }
                    claimed.extend(claim(tx, &endpoint, now, lease_until, left)?);
                }
                Ok(claimed)
            })
            .await
    }

    async fn retry(
        &self,
        item: &Leased<EventDelivery>,
        due_at: Timestamp,
        attempt: &Attempt,
        _: Timestamp,
    ) -> Result<bool> {
        let (d, attempt) = (item.clone(), attempt.clone());
        self.writer
            .write(move |tx| {
                let retry = params![due_at.as_millis(), attempt.error, d.id, d.lease];
                if execute(tx, shared::RETRY_EVENT_DELIVERY, retry)? == 0 {
                    return Ok(false);
                }
                failed_attempt(tx, &d, &attempt)?;
                Ok(true)
            })
            .await
    }

    async fn give_up(&self, item: &Leased<EventDelivery>, attempt: &Attempt, at: Timestamp) -> Result<bool> {
        let (d, attempt) = (item.clone(), attempt.clone());
        self.writer
            .write(move |tx| {
                let finish = params!["failed", attempt.error, at.as_millis(), d.id, d.lease];
                if execute(tx, shared::FINISH_EVENT_DELIVERY, finish)? == 0 {
                    return Ok(false);
                }
                failed_attempt(tx, &d, &attempt)?;
                Ok(true)
            })
            .await
    }

    async fn pending(&self) -> Result<i64> {
        self.readers.scan(|c| value(c, shared::COUNT_ALL_PENDING_EVENT_DELIVERIES, [])).await
    }
}

fn log_attempt(tx: &Transaction<'_>, d: &Leased<EventDelivery>, a: &Attempt) -> Result<()> {
    execute(tx, shared::INSERT_ATTEMPT, shared::attempt_values(d, a))?;
    Ok(())
}

fn failed_attempt(tx: &Transaction<'_>, d: &Leased<EventDelivery>, a: &Attempt) -> Result<()> {
    log_attempt(tx, d, a)?;
    execute(tx, shared::ENDPOINT_FAILED, params![a.at.as_millis(), d.endpoint_id])?;
    Ok(())
}

fn claim(
    tx: &Transaction<'_>,
    endpoint_id: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Leased<EventDelivery>>> {
    let lease = new_id("lease");
    let params = params![lease, lease_until.as_millis(), endpoint_id, now.as_millis(), limit];
    let rows: Vec<ClaimedRow> = all(tx, CLAIM_EVENT_DELIVERIES, params, |r| shared::claimed_row(r))?;
    let mut events = HashMap::with_capacity(rows.len());
    for (_, _, seq, _) in &rows {
        if let Some(event) = first(tx, shared::SELECT_EVENT_BY_SEQ, [seq], |r| shared::event(r))? {
            events.insert(*seq, event);
        }
    }
    let (claimed, gone) = shared::with_events(rows, events, &lease, lease_until);
    for id in gone {
        let finish = params!["failed", shared::EVENT_GONE, now.as_millis(), id, lease];
        execute(tx, shared::FINISH_EVENT_DELIVERY, finish)?;
    }
    Ok(claimed)
}

/// Delivers each event read after the cursor to every endpoint that wants it (see `Events::fan_out_events`).
fn fan_out(tx: &Transaction<'_>, limit: u32, at: i64) -> Result<usize> {
    let through: i64 = value(tx, shared::SELECT_FANOUT_CURSOR, [])?;
    let events = all(tx, shared::SELECT_EVENT_ROUTES_AFTER, params![through, limit], |r| shared::event_route(r))?;
    let Some(last) = events.last().map(|e| e.0) else { return Ok(0) };
    let routes = all(tx, shared::SELECT_ROUTES, [], |r| shared::route(r))?;
    if !routes.is_empty() {
        let mut insert = tx.prepare_cached(shared::INSERT_EVENT_DELIVERY)?;
        for (seq, kind, number) in &events {
            for route in &routes {
                if route.subscription().wants(kind, number.as_deref()) {
                    insert.execute(params![route.endpoint_id, seq, at])?;
                }
            }
        }
    }
    execute(tx, shared::SET_FANOUT_CURSOR, [last])?;
    Ok(events.len())
}

fn replay_events(tx: &Transaction<'_>, endpoint: &WebhookEndpoint, replay: &Replay, at: i64) -> Result<u64> {
    let mut insert = tx.prepare_cached(shared::INSERT_EVENT_DELIVERY)?;
    let mut queued = 0;
    match replay {
        Replay::Ids(ids) => {
            for id in ids {
                if let Some(seq) = first(tx, shared::SELECT_EVENT_SEQ, [id], |r| Ok(r.get::<_, i64>(0)?))? {
                    queued += insert.execute(params![endpoint.id, seq, at])? as u64;
                }
            }
        }
        Replay::Since(since) => {
            let mut after = 0;
            loop {
                let params = params![since.as_millis(), after, shared::REPLAY_PAGE];
                let page = all(tx, shared::SELECT_EVENT_ROUTES_SINCE, params, |r| shared::event_route(r))?;
                let Some(last) = page.last().map(|e| e.0) else { break };
                for (seq, kind, number) in &page {
                    if endpoint.subscribes(kind, number.as_deref()) {
                        queued += insert.execute(params![endpoint.id, seq, at])? as u64;
                    }
                }
                after = last;
            }
        }
    }
    Ok(queued)
}

fn list_events(c: &Connection, filter: &EventFilter, limit: u32) -> Result<Vec<Event>> {
    let number = filter.phone_number_id.as_deref();
    let page = shared::event_page(limit);
    let (mut order, mut out) = (filter.order, Vec::new());
    loop {
        let events = match order {
            EventOrder::Newest { before } => {
                all(c, shared::SELECT_EVENTS_NEWEST, params![number, before, page], |r| shared::event(r))?
            }
            EventOrder::After(after) => {
                all(c, shared::SELECT_EVENTS_AFTER, params![number, after, page], |r| shared::event(r))?
            }
        };
        let Some(next) = shared::next_page(filter, order, page, events, &mut out, limit) else { break };
        order = next;
    }
    Ok(out)
}
