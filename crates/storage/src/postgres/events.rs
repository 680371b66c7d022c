//! Events, webhook endpoints and their deliveries (a leased queue claimed per endpoint), and
//! the helpers the other aggregates' transactions call to store the events of their changes.
//!
//! Events are read in `seq` order by fan-out, by consumers catching up and by the live stream,
//! each from the last `seq` it saw. A `seq` drawn at insert would become visible at commit, so
//! a transaction that drew a smaller one could commit after a reader moved past a greater one,
//! which would never see it. So transactions store their events without a `seq`, in parallel,
//! and fan-out, one at a time (under the lock of its cursor's row), gives the events committed
//! since its last run the next ones, in the order they were stored: a reader that saw a `seq`
//! saw every smaller one. A reader orders what committed before it reads.

use std::collections::{BTreeSet, HashMap, HashSet};

use async_trait::async_trait;
use wagate_domain::event::EventType;
use wagate_domain::id::new_id;
use wagate_domain::time::Timestamp;

use super::{PgStore, Tx, all, execute, first, lease_only, value};
use crate::shared::{self, ClaimedRow, Columns, EndpointColumns, claim_event_deliveries, json_text};
use crate::*;

/// Instances skip each other's rows instead of waiting on them.
const CLAIM_EVENT_DELIVERIES: &str = claim_event_deliveries!(" FOR UPDATE SKIP LOCKED");

/// Stores events in `tx`, to be given their `seq` once committed (see the module's comment).
pub(super) async fn emit_all(tx: &mut Tx, events: &[NewEvent], at: Timestamp) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    // One statement for them all, rows inserted (and their `inserted` drawn) in the arrays' order.
    let ids: Vec<String> = events.iter().map(|_| new_id("evt")).collect();
    sqlx::query(
        "INSERT INTO events (id, type, phone_number_id, data, created_at) \
         SELECT id, type, phone_number_id, data, $5 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) \
         WITH ORDINALITY AS e (id, type, phone_number_id, data, n) ORDER BY n",
    )
    .bind(&ids)
    .bind(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.phone_number_id.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| json_text(&e.data)).collect::<Vec<_>>())
    .bind(at.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A message and its history as they are in `tx`.
pub(super) async fn message_state(tx: &mut Tx, id: &str) -> Result<Option<(Message, Vec<StatusEntry>)>> {
    let Some(message) = first(&mut **tx, shared::SELECT_MESSAGE, (id,), shared::message).await? else {
        return Ok(None);
    };
    Ok(Some((message, message_history(tx, id).await?)))
}

/// A message's history alone: before a change, for [`message_changes`] after it (the message
/// itself is read once, after the change).
pub(super) async fn message_history(tx: &mut Tx, id: &str) -> Result<Vec<StatusEntry>> {
    shared::history(all(&mut **tx, shared::SELECT_HISTORY, (id,), shared::status_row).await?)
}

/// The events of what changed in a message since its history was `before`, to store with
/// [`emit_all`].
pub(super) async fn message_changes(
    tx: &mut Tx,
    views: &dyn EventViews,
    id: &str,
    before: &[StatusEntry],
) -> Result<Vec<NewEvent>> {
    let Some((message, after)) = message_state(tx, id).await? else { return Ok(Vec::new()) };
    Ok(shared::message_events(views, &message, before, &after))
}

impl PgStore {
    /// Orders every event committed unordered, so that a reader sees each event committed
    /// before it asked (fan-out would order them within its poll interval).
    async fn order_committed(&self) -> Result<()> {
        const UNORDERED: &str = "SELECT EXISTS (SELECT 1 FROM events WHERE seq IS NULL)";
        while value::<bool>(&self.pool, UNORDERED, ()).await? {
            let mut tx = self.begin().await?;
            value::<i64>(&mut *tx, FANOUT_CURSOR_FOR_UPDATE, ()).await?;
            execute(&mut *tx, ORDER_EVENTS, (i64::from(ORDER_BATCH),)).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Events ordered per transaction by a reader.
const ORDER_BATCH: u32 = 1000;

#[async_trait]
impl Events for PgStore {
    async fn list_events(&self, filter: &EventFilter, limit: u32) -> Result<Vec<Event>> {
        self.order_committed().await?;
        let number = filter.phone_number_id.as_deref();
        let page = shared::event_page(limit);
        let (mut order, mut out) = (filter.order, Vec::new());
        loop {
            let events = match order {
                EventOrder::Newest { before } => {
                    all(&self.pool, shared::SELECT_EVENTS_NEWEST, (number, before, page), shared::event).await?
                }
                EventOrder::After(after) => {
                    all(&self.pool, shared::SELECT_EVENTS_AFTER, (number, after, page), shared::event).await?
                }
            };
            let Some(next) = shared::next_page(filter, order, page, events, &mut out, limit) else { break };
            order = next;
        }
        Ok(out)
    }

    async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        self.order_committed().await?;
        first(&self.pool, shared::SELECT_EVENT, (id,), shared::event).await
    }

    async fn fan_out_events(&self, limit: u32, at: Timestamp) -> Result<usize> {
        let mut tx = self.begin().await?;
        // The cursor row's lock makes instances order and fan out one at a time.
        let through: i64 = value(&mut *tx, FANOUT_CURSOR_FOR_UPDATE, ()).await?;
        let ordered = execute(&mut *tx, ORDER_EVENTS, (i64::from(limit),)).await?;
        let events =
            all(&mut *tx, shared::SELECT_EVENT_ROUTES_AFTER, (through, i64::from(limit)), shared::event_route).await?;
        let Some(last) = events.last().map(|e| e.0) else {
            if ordered > 0 {
                tx.commit().await?;
            }
            return Ok(0);
        };
        let routes = all(&mut *tx, shared::SELECT_ROUTES, (), shared::route).await?;
        let (mut endpoints, mut seqs) = (Vec::new(), Vec::new());
        for (seq, kind, number) in &events {
            for route in &routes {
                if route.subscription().wants(kind, number.as_deref()) {
                    endpoints.push(route.endpoint_id.as_str());
                    seqs.push(*seq);
                }
            }
        }
        insert_deliveries(&mut tx, &endpoints, &seqs, at).await?;
        execute(&mut *tx, shared::SET_FANOUT_CURSOR, (last,)).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    async fn insert_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let columns = EndpointColumns::new(&self.cipher, endpoint);
        execute(&self.pool, shared::INSERT_ENDPOINT, columns.insert_values()).await?;
        Ok(())
    }

    async fn update_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<bool> {
        let columns = EndpointColumns::new(&self.cipher, endpoint);
        Ok(execute(&self.pool, shared::UPDATE_ENDPOINT, columns.update_values()).await? == 1)
    }

    async fn get_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        first(&self.pool, shared::SELECT_ENDPOINT, (id,), |r| shared::endpoint(&self.cipher, r)).await
    }

    async fn list_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        all(&self.pool, shared::SELECT_ENDPOINTS, (), |r| shared::endpoint(&self.cipher, r)).await
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        // The delete cascades to the endpoint's deliveries while the delivery worker may hold
        // some of them and wait on the endpoint's row: PostgreSQL breaks that cycle by failing
        // one side, and the delete is simply made again.
        let mut attempt = 0;
        loop {
            match execute(&self.pool, shared::DELETE_ENDPOINT, (id,)).await {
                Err(StorageError::Database(sqlx::Error::Database(e)))
                    if e.code().as_deref() == Some("40P01") && attempt < 5 =>
                {
                    attempt += 1;
                }
                other => return Ok(other? == 1),
            }
        }
    }

    async fn disable_endpoint(&self, id: &str, reason: &str, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        if execute(&mut *tx, shared::DISABLE_ENDPOINT, (reason, at.as_millis(), id)).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(endpoint) =
            first(&mut *tx, shared::SELECT_ENDPOINT, (id,), |r| shared::endpoint(&self.cipher, r)).await?
        {
            let event = NewEvent {
                kind: EventType::EndpointDisabled,
                phone_number_id: None,
                data: self.views.endpoint(&endpoint),
            };
            emit_all(&mut tx, &[event], at).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_event_deliveries(
        &self,
        endpoint_id: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Leased<EventDelivery>>> {
        let mut tx = self.begin().await?;
        lease_only(&mut tx).await?;
        let claimed = claim(&mut tx, endpoint_id, now, lease_until, limit).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn due_endpoints(&self, now: Timestamp) -> Result<Vec<String>> {
        all(&self.pool, shared::SELECT_DUE_ENDPOINTS, (now.as_millis(),), |r| r.get(0)).await
    }

    async fn complete_event_deliveries(&self, done: &[(&Leased<EventDelivery>, Attempt)]) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        // Three statements for the batch: the deliveries whose lease is still held are done,
        // their attempts logged, their endpoints no longer failing.
        let mut tx = self.begin().await?;
        let finished: HashSet<i64> = sqlx::query_scalar(
            "UPDATE event_deliveries d SET available_at = NULL, lease = NULL, state = 'delivered', \
             last_error = NULL, finished_at = u.at FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) AS u (id, lease, at) \
             WHERE d.id = u.id AND d.lease = u.lease RETURNING d.id",
        )
        .bind(done.iter().map(|(d, _)| d.id).collect::<Vec<_>>())
        .bind(done.iter().map(|(d, _)| d.lease.as_str()).collect::<Vec<_>>())
        .bind(done.iter().map(|(_, a)| a.at.as_millis()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let logged: Vec<&(&Leased<EventDelivery>, Attempt)> =
            done.iter().filter(|(d, _)| finished.contains(&d.id)).collect();
        sqlx::query(
            "INSERT INTO event_attempts \
             (delivery_id, endpoint_id, event_id, attempted_at, status_code, latency_ms, response, error) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], \
             $7::text[], $8::text[])",
        )
        .bind(logged.iter().map(|(d, _)| d.id).collect::<Vec<_>>())
        .bind(logged.iter().map(|(d, _)| d.endpoint_id.as_str()).collect::<Vec<_>>())
        .bind(logged.iter().map(|(d, _)| d.event.id.as_str()).collect::<Vec<_>>())
        .bind(logged.iter().map(|(_, a)| a.at.as_millis()).collect::<Vec<_>>())
        .bind(logged.iter().map(|(_, a)| a.status.map(i64::from)).collect::<Vec<_>>())
        .bind(logged.iter().map(|(_, a)| a.latency_ms).collect::<Vec<_>>())
        .bind(logged.iter().map(|(_, a)| a.response.as_deref()).collect::<Vec<_>>())
        .bind(logged.iter().map(|(_, a)| a.error.as_deref()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        let endpoints: BTreeSet<&str> = logged.iter().map(|(d, _)| d.endpoint_id.as_str()).collect();
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ANY($1) AND failing_since IS NOT NULL",
        )
        .bind(endpoints.into_iter().collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_attempts(&self, endpoint_id: &str, before: Option<i64>, limit: u32) -> Result<Vec<LoggedAttempt>> {
        all(&self.pool, shared::SELECT_ATTEMPTS, (endpoint_id, before, i64::from(limit)), shared::attempt).await
    }

    async fn replay_events(&self, endpoint_id: &str, replay: &Replay, at: Timestamp) -> Result<u64> {
        let Some(endpoint) = self.get_endpoint(endpoint_id).await? else { return Ok(0) };
        let mut seqs = Vec::new();
        match replay {
            Replay::Ids(ids) => {
                for id in ids {
                    if let Some(seq) = first(&self.pool, shared::SELECT_EVENT_SEQ, (id.as_str(),), |r| r.get(0)).await?
                    {
                        seqs.push(seq);
                    }
                }
            }
            Replay::Since(since) => {
                let mut after = 0;
                loop {
                    let values = (since.as_millis(), after, shared::REPLAY_PAGE);
                    let page = all(&self.pool, shared::SELECT_EVENT_ROUTES_SINCE, values, shared::event_route).await?;
                    let Some(last) = page.last().map(|e| e.0) else { break };
                    seqs.extend(
                        page.iter().filter(|(_, kind, n)| endpoint.subscribes(kind, n.as_deref())).map(|e| e.0),
                    );
                    after = last;
                }
            }
        }
        let mut tx = self.begin().await?;
        let endpoints = vec![endpoint.id.as_str(); seqs.len()];
        insert_deliveries(&mut tx, &endpoints, &seqs, at).await?;
        tx.commit().await?;
        Ok(seqs.len() as u64)
    }

    async fn ping_endpoint(&self, endpoint_id: &str, at: Timestamp) -> Result<Event> {
        let data = serde_json::json!({ "endpoint_id": endpoint_id, "message": "a test event, sent on request" });
        let (id, text) = (new_id("evt"), json_text(&data));
        let mut tx = self.begin().await?;
        // Ordered at once, as fan-out orders the others, under the same lock.
        value::<i64>(&mut *tx, FANOUT_CURSOR_FOR_UPDATE, ()).await?;
        let values = (id.as_str(), EventType::Ping.as_str(), None::<&str>, text.as_str(), at.as_millis());
        let seq: i64 = value(&mut *tx, INSERT_ORDERED_EVENT, values).await?;
        execute(&mut *tx, shared::INSERT_EVENT_DELIVERY, (endpoint_id, seq, at.as_millis())).await?;
        tx.commit().await?;
        Ok(Event { seq, id, kind: EventType::Ping.as_str().to_owned(), phone_number_id: None, data, created_at: at })
    }

    async fn delete_old_events(&self, before: Timestamp, limit: u32) -> Result<u64> {
        let mut removed = 0;
        for sql in [shared::DELETE_OLD_EVENTS, shared::DELETE_OLD_EVENT_DELIVERIES, shared::DELETE_OLD_ATTEMPTS] {
            removed += self.delete_older(sql, before, limit).await?;
        }
        Ok(removed)
    }

    async fn pending_event_deliveries(&self) -> Result<Vec<(String, i64)>> {
        all(&self.pool, shared::COUNT_PENDING_EVENT_DELIVERIES, (), |r| Ok((r.get(0)?, r.get(1)?))).await
    }
}

/// Deliveries to every endpoint. A claim takes each endpoint's due deliveries in turn (see
/// `Events::claim_event_deliveries`); a failed attempt is logged with its retry or give-up.
#[async_trait]
impl LeasedQueue<EventDelivery, Attempt> for PgStore {
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<EventDelivery>>> {
        let endpoints = self.due_endpoints(now).await?;
        let mut claimed = Vec::new();
        for endpoint in endpoints {
            let left = limit.saturating_sub(claimed.len() as u32);
            if left == 0 {
                break;
            }
            claimed.extend(self.claim_event_deliveries(&endpoint, now, lease_until, left).await?);
        }
        Ok(claimed)
    }

    async fn retry(
        &self,
        d: &Leased<EventDelivery>,
        due_at: Timestamp,
        attempt: &Attempt,
        _: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let retry = (due_at.as_millis(), attempt.error.as_deref(), d.id, d.lease.as_str());
        if execute(&mut *tx, shared::RETRY_EVENT_DELIVERY, retry).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        failed_attempt(&mut tx, d, attempt).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn give_up(&self, d: &Leased<EventDelivery>, attempt: &Attempt, at: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let finish = ("failed", attempt.error.as_deref(), at.as_millis(), d.id, d.lease.as_str());
        if execute(&mut *tx, shared::FINISH_EVENT_DELIVERY, finish).await? == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        failed_attempt(&mut tx, d, attempt).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn pending(&self) -> Result<i64> {
        value(&self.pool, shared::COUNT_ALL_PENDING_EVENT_DELIVERIES, ()).await
    }
}

const SELECT_EVENTS_BY_SEQ: &str =
    "SELECT seq, id, type, phone_number_id, data, created_at FROM events WHERE seq = ANY($1)";
const FANOUT_CURSOR_FOR_UPDATE: &str = "SELECT through_seq FROM event_fanout WHERE id = 1 FOR UPDATE";
/// Gives up to `$1` events committed without a `seq` the next ones, in the order they were stored.
const ORDER_EVENTS: &str = "UPDATE events e SET seq = o.seq FROM (SELECT id, nextval('events_order') AS seq \
    FROM (SELECT id FROM events WHERE seq IS NULL ORDER BY inserted LIMIT $1) u) o WHERE e.id = o.id";
const INSERT_ORDERED_EVENT: &str = "INSERT INTO events (seq, id, type, phone_number_id, data, created_at) \
    VALUES (nextval('events_order'), $1, $2, $3, $4, $5) RETURNING seq";

/// One delivery for each (endpoint, event seq), in one statement.
async fn insert_deliveries(tx: &mut Tx, endpoints: &[&str], seqs: &[i64], at: Timestamp) -> Result<()> {
    if endpoints.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO event_deliveries (endpoint_id, event_seq, available_at, attempts, state, created_at) \
         SELECT endpoint_id, event_seq, $3, 0, 'pending', $3 FROM UNNEST($1::text[], $2::bigint[]) AS d (endpoint_id, event_seq)",
    )
    .bind(endpoints)
    .bind(seqs)
    .bind(at.as_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn log_attempt(tx: &mut Tx, d: &Leased<EventDelivery>, a: &Attempt) -> Result<()> {
    execute(&mut **tx, shared::INSERT_ATTEMPT, shared::attempt_values(d, a)).await?;
    Ok(())
}

async fn failed_attempt(tx: &mut Tx, d: &Leased<EventDelivery>, a: &Attempt) -> Result<()> {
    log_attempt(tx, d, a).await?;
    execute(&mut **tx, shared::ENDPOINT_FAILED, (a.at.as_millis(), d.endpoint_id.as_str())).await?;
    Ok(())
}

async fn claim(
    tx: &mut Tx,
    endpoint_id: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Leased<EventDelivery>>> {
    let lease = new_id("lease");
    let values = (lease.as_str(), lease_until.as_millis(), endpoint_id, now.as_millis(), i64::from(limit));
    let rows: Vec<ClaimedRow> = all(&mut **tx, CLAIM_EVENT_DELIVERIES, values, shared::claimed_row).await?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let events: HashMap<i64, Event> = sqlx::query(SELECT_EVENTS_BY_SEQ)
        .bind(&seqs)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| shared::event(r).map(|e| (e.seq, e)))
        .collect::<Result<_>>()?;
    let (claimed, gone) = shared::with_events(rows, events, &lease, lease_until);
    for id in gone {
        let finish = ("failed", shared::EVENT_GONE, now.as_millis(), id, lease.as_str());
        execute(&mut **tx, shared::FINISH_EVENT_DELIVERY, finish).await?;
    }
    Ok(claimed)
}
