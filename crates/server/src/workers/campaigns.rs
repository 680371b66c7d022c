//! The campaign worker: feeds each running campaign into its number's queue a window at a
//! time, at the campaign's rate and never more than `campaigns.lookahead_ms` ahead of the
//! dispatcher, so a million recipients never become a million queued rows and a one-time code
//! on the same number waits behind half a second of campaign at most.
//!
//! A recipient is sent exactly once across pauses, crashes and instances: its message id is
//! reserved on the recipient first (`queue_recipients`), then the message is stored under that
//! id with the idempotency key `campaign:<campaign>:<recipient>`; a reservation whose message
//! was never stored is sent again under the same id and key when the campaign is next taken
//! up. One instance feeds a campaign at a time (`lease_campaign`).
//!
//! Once a second per campaign it also checks what would make it stop: the account paused, the
//! template paused or disabled, too many failures, the messaging limit reached (it waits as
//! `awaiting_quota` until the limit allows), and whether every recipient is done.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use wagate_domain::campaign::{CampaignState, PauseReason, skip};
use wagate_domain::event::EventType;
use wagate_domain::id::{ApiKeyId, CampaignId, MessageId, new_id};
use wagate_domain::message::{Content, MessageError, Outbound, Recipient, SimpleTemplate, Template};
use wagate_domain::time::Timestamp;
use wagate_domain::window;
use wagate_storage::{Account, Campaign, CampaignRecipient, Contact, PhoneNumber, Unqueue};

use crate::services::campaigns::{self as service, Change, CountsView};
use crate::services::messages::{self, Idempotency, SendOptions, Sent};
use crate::services::{ServiceError, accounts, campaign_recipients, templates};
use crate::state::{AppState, Worker};

/// How often campaigns are looked at and fed.
const TICK: Duration = Duration::from_millis(100);
/// How often a running campaign's causes to stop, counts and progress are checked.
const CHECK: Duration = Duration::from_secs(1);
/// How often the messaging limit's use is counted again (fed sends are subtracted meanwhile).
const QUOTA_RECOUNT: Duration = Duration::from_secs(10);
/// Recipients fed at most per tick, and sent at once.
const WINDOW_MAX: usize = 500;
const CONCURRENT_SENDS: usize = 64;
/// When the limit's freeing cannot be told, the wait before looking again.
const QUOTA_RETRY: Duration = Duration::from_secs(15 * 60);

pub async fn run(state: AppState, cancel: CancellationToken) {
    let holder = new_id("campaigns");
    let mut runners: HashMap<CampaignId, Runner> = HashMap::new();
    loop {
        state.health.beat(Worker::Campaigns);
        if let Err(e) = round(&state, &holder, &mut runners).await {
            tracing::warn!(error = %e, "a campaign round failed; trying again");
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(TICK) => {}
        }
    }
}

/// What the worker keeps about a campaign it feeds.
struct Runner {
    lease_until: Timestamp,
    /// Messages it may feed now: the rate's tokens.
    tokens: f64,
    fed_at: Instant,
    /// Reservations left without a message by an earlier holder are sent first.
    recovered: bool,
    checked_at: Option<Instant>,
    /// How often the checks run: every second, or less often when counting the recipients takes
    /// long (a campaign of millions), so that checks never take more than a tenth of the time.
    check_every: Duration,
    /// The counts of the last progress event.
    reported: Option<CountsView>,
    /// The counts when it last started or resumed: the failure share is judged since.
    baseline: Option<CountsView>,
    /// Unique customers outside the window it may still reach (None: unlimited), and when counted.
    quota: Option<i64>,
    quota_counted_at: Option<Instant>,
}

impl Runner {
    fn new(now: Timestamp) -> Self {
        Self {
            lease_until: now,
            tokens: 0.0,
            fed_at: Instant::now(),
            recovered: false,
            checked_at: None,
            check_every: CHECK,
            reported: None,
            baseline: None,
            quota: None,
            quota_counted_at: None,
        }
    }
}

async fn round(state: &AppState, holder: &str, runners: &mut HashMap<CampaignId, Runner>) -> Result<(), ServiceError> {
    let active = state.store.active_campaigns().await?;
    runners.retain(|id, _| active.iter().any(|c| &c.id == id && c.state == CampaignState::Running));
    let now = Timestamp::now();
    for c in active {
        let result = match c.state {
            CampaignState::Scheduled if c.send_at.is_none_or(|t| t <= now) => {
                service::change(state, &c.id, service::begin).await.map(drop)
            }
            CampaignState::Paused
                if c.pause_reason.as_deref() == Some(PauseReason::AwaitingQuota.as_str())
                    && c.resumes_at.is_some_and(|t| t <= now) =>
            {
                service::change(state, &c.id, service::resuming).await.map(drop)
            }
            CampaignState::Running => {
                let runner = runners.entry(c.id.clone()).or_insert_with(|| Runner::new(now));
                feed(state, holder, &c, runner).await
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(campaign = %c.id, error = %e, "a campaign could not be fed this round");
        }
    }
    Ok(())
}

/// One round of a running campaign: its lease, its checks, then a window of recipients.
async fn feed(state: &AppState, holder: &str, c: &Campaign, runner: &mut Runner) -> Result<(), ServiceError> {
    let settings = &state.config.campaigns;
    let lease = Duration::from_millis(settings.lease_ms);
    let now = Timestamp::now();
    if runner.lease_until.as_millis() - now.as_millis() < (lease.as_millis() / 2) as i64 {
        if !state.store.lease_campaign(&c.id, holder, now, now.plus(lease)).await? {
            // Another instance feeds it; look again when its lease may have lapsed.
            runner.recovered = false;
            return Ok(());
        }
        runner.lease_until = now.plus(lease);
    }
    let Some(number) = accounts::phone_number(state, &c.phone_number_id).await? else {
        let detail = format!("phone number {} is no longer connected", c.phone_number_id);
        return pause(state, c, PauseReason::AccountPaused, detail, None).await;
    };
    let Some(account) = accounts::account(state, &number.account_id).await? else {
        return Ok(());
    };
    let template = service::template_of(c)?;
    if !runner.recovered {
        resend_unsent(state, c, &number, &template).await?;
        runner.recovered = true;
    }
    if runner.checked_at.is_none_or(|at| at.elapsed() >= runner.check_every) {
        runner.checked_at = Some(Instant::now());
        if check(state, c, &number, &account, &template, runner).await? {
            return Ok(());
        }
    }
    if !quota_allows(state, c, &account, runner).await? {
        return Ok(());
    }
    let rate = f64::from(service::effective_rate(c.rate, service::number_rate(state, &number)));
    let ahead = (rate * settings.lookahead_ms as f64 / 1_000.0).max(1.0);
    let elapsed = runner.fed_at.elapsed().as_secs_f64();
    runner.fed_at = Instant::now();
    runner.tokens = (runner.tokens + rate * elapsed).min(ahead);
    if runner.tokens < 1.0 {
        return Ok(());
    }
    let queued = state.store.due_in_outbox(&number.id, now).await? as f64;
    let room = ahead - queued;
    let mut n = runner.tokens.min(room).floor().max(0.0) as usize;
    if let Some(q) = runner.quota {
        n = n.min(q.max(0) as usize);
    }
    let n = n.min(WINDOW_MAX);
    if n == 0 {
        return Ok(());
    }
    let pending = state.store.pending_recipients(&c.id, n as u32).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let reserved: Vec<(String, MessageId)> = pending.iter().map(|r| (r.to.clone(), MessageId::generate())).collect();
    state.store.queue_recipients(&c.id, &reserved, now).await?;
    let sends: Vec<(CampaignRecipient, MessageId)> = pending
        .into_iter()
        .zip(reserved)
        .map(|(mut r, (_, id))| {
            r.attempts += 1;
            r.message_id = Some(id.clone());
            (r, id)
        })
        .collect();
    let sent = send_all(state, c, &number, &template, sends).await?;
    runner.tokens -= sent as f64;
    if let Some(q) = runner.quota.as_mut() {
        *q -= sent as i64;
    }
    Ok(())
}

/// Recipients an earlier holder reserved a message for and did not store: sent again under
/// the same message id and idempotency key.
async fn resend_unsent(
    state: &AppState,
    c: &Campaign,
    number: &PhoneNumber,
    template: &SimpleTemplate,
) -> Result<(), ServiceError> {
    loop {
        let unsent = state.store.unsent_recipients(&c.id, WINDOW_MAX as u32).await?;
        if unsent.is_empty() {
            return Ok(());
        }
        let sends: Vec<_> = unsent.into_iter().filter_map(|r| r.message_id.clone().map(|id| (r, id))).collect();
        let count = sends.len();
        tracing::info!(campaign = %c.id, count, "sending recipients whose send was interrupted");
        let sent = send_all(state, c, number, template, sends).await?;
        if sent < count {
            // Some were given back (the queue is full) or skipped: the next round goes on.
            return Ok(());
        }
    }
}

/// What became of one recipient's send.
enum Outcome {
    Sent,
    Unqueued(Unqueue),
    /// The template cannot be sent now: the campaign pauses, the recipient waits.
    TemplateStopped(PauseReason, String),
    /// The queue is full, or the store failed: the recipient waits, and this window stops.
    Stop(String),
}

/// Sends reserved recipients, a bounded number at a time; takes the refused out of `queued`
/// and pauses the campaign when the template stopped. How many were stored.
async fn send_all(
    state: &AppState,
    c: &Campaign,
    number: &PhoneNumber,
    template: &SimpleTemplate,
    sends: Vec<(CampaignRecipient, MessageId)>,
) -> Result<usize, ServiceError> {
    let contacts = contacts_for(state, template, &sends).await?;
    let mut sent = 0;
    let mut unqueued: Vec<(String, Unqueue)> = Vec::new();
    let mut stopped: Option<(PauseReason, String)> = None;
    let mut halted = false;
    for chunk in sends.chunks(CONCURRENT_SENDS) {
        if halted {
            unqueued.extend(chunk.iter().map(|(r, _)| (r.to.clone(), Unqueue::GiveBack)));
            continue;
        }
        let outcomes = futures_util::future::join_all(chunk.iter().map(|(r, id)| {
            let contact = contacts.get(r.to.trim_start_matches('+'));
            send_one(state, c, number, template, r, id, contact)
        }))
        .await;
        for ((r, _), outcome) in chunk.iter().zip(outcomes) {
            match outcome {
                Outcome::Sent => sent += 1,
                Outcome::Unqueued(u) => unqueued.push((r.to.clone(), u)),
                Outcome::TemplateStopped(reason, detail) => {
                    unqueued.push((r.to.clone(), Unqueue::GiveBack));
                    stopped = Some((reason, detail));
                    halted = true;
                }
                Outcome::Stop(why) => {
                    tracing::warn!(campaign = %c.id, error = %why, "feeding paused for this round");
                    unqueued.push((r.to.clone(), Unqueue::GiveBack));
                    halted = true;
                }
            }
        }
    }
    if !unqueued.is_empty() {
        state.store.unqueue_recipients(&c.id, &unqueued, Timestamp::now()).await?;
    }
    if let Some((reason, detail)) = stopped {
        pause(state, c, reason, detail, None).await?;
    }
    Ok(sent)
}

/// The contacts of these recipients, when the campaign's values name contact fields.
async fn contacts_for(
    state: &AppState,
    template: &SimpleTemplate,
    sends: &[(CampaignRecipient, MessageId)],
) -> Result<HashMap<String, Contact>, ServiceError> {
    if !sends.iter().any(|(r, _)| campaign_recipients::names_contact_fields(template, r)) {
        return Ok(HashMap::new());
    }
    let wa_ids: Vec<String> = sends.iter().map(|(r, _)| r.to.trim_start_matches('+').to_owned()).collect();
    Ok(state
        .store
        .contacts_by_wa_ids(&wa_ids)
        .await?
        .into_iter()
        .filter_map(|ct| ct.wa_id.clone().map(|w| (w, ct)))
        .collect())
}

/// The idempotency key of a recipient's send: a retried recipient's later attempts have their own.
fn idempotency_key(c: &Campaign, r: &CampaignRecipient) -> String {
    match r.attempts {
        ..=1 => format!("campaign:{}:{}", c.id, r.to),
        n => format!("campaign:{}:{}:{n}", c.id, r.to),
    }
}

async fn send_one(
    state: &AppState,
    c: &Campaign,
    number: &PhoneNumber,
    template: &SimpleTemplate,
    r: &CampaignRecipient,
    id: &MessageId,
    contact: Option<&Contact>,
) -> Outcome {
    let simple = match campaign_recipients::template_for(template, r, contact) {
        Ok(t) => t,
        Err(e) => return skip_for(skip::INVALID, &e.message),
    };
    let outbound = Outbound {
        recipient: Recipient::Phone(r.to.clone()),
        recipient_type: Some("individual".into()),
        content: Content::Template(Box::new(Template::from(wagate_domain::message::template::TemplateSend::Simple(
            simple.clone(),
        )))),
        context: None,
        biz_opaque_callback_data: None,
        recipient_identity_key_hash: None,
    };
    let mut metadata = Map::new();
    metadata.insert("campaign_id".into(), Value::String(c.id.to_string()));
    if let Some(m) = &r.metadata {
        metadata.extend(m.clone());
    }
    let options = SendOptions {
        idempotency: Some(Idempotency {
            api_key_id: ApiKeyId::from_trusted(c.id.to_string()),
            key: idempotency_key(c, r),
            request_hash: c.id.to_string(),
        }),
        simple_template: Some(simple),
        id: Some(id.clone()),
        ..SendOptions::default()
    };
    let render = |d: &messages::MessageDetails| json!({"id": d.message.id});
    match messages::enqueue(state, number, outbound, Some(metadata), options, &render).await {
        Ok(Sent::New(_)) => Outcome::Sent,
        Ok(Sent::Replayed { message_id, .. }) => {
            if &message_id != id {
                tracing::warn!(campaign = %c.id, to = %r.to, reserved = %id, stored = %message_id,
                    "a recipient's key names another message than its reservation");
            }
            Outcome::Sent
        }
        Err(ServiceError::Invalid(e)) => match e.rule {
            "marketing_opt_out" => skip_for(skip::OPTED_OUT, &e.message),
            "template_paused" => Outcome::TemplateStopped(PauseReason::TemplatePaused, e.message),
            "template_disabled" | "template_not_approved" | "template_not_found" => {
                Outcome::TemplateStopped(PauseReason::TemplateUnavailable, e.message)
            }
            _ => skip_for(skip::INVALID, &e.message),
        },
        Err(ServiceError::OutsideWindow { customer, .. }) => skip_for(
            skip::OUTSIDE_WINDOW,
            &format!("{customer} is outside the 24-hour window and wagate is set to refuse such sends"),
        ),
        Err(ServiceError::NotFound { what: "template", id }) => {
            Outcome::TemplateStopped(PauseReason::TemplateUnavailable, format!("template {id} no longer exists"))
        }
        // The queue is full, or the store failed.
        Err(e) => Outcome::Stop(e.to_string()),
    }
}

fn skip_for(reason: &str, message: &str) -> Outcome {
    let error = MessageError::gateway(reason, message);
    Outcome::Unqueued(Unqueue::Skip { reason: reason.to_owned(), error })
}

async fn pause(
    state: &AppState,
    c: &Campaign,
    reason: PauseReason,
    detail: String,
    resumes_at: Option<Timestamp>,
) -> Result<(), ServiceError> {
    tracing::info!(campaign = %c.id, reason = reason.as_str(), %detail, "campaign paused");
    service::change(state, &c.id, service::pausing(reason, detail, resumes_at)).await.map(drop)
}

/// The checks of a running campaign; true when it stopped (paused or completed).
async fn check(
    state: &AppState,
    c: &Campaign,
    number: &PhoneNumber,
    account: &Account,
    template: &SimpleTemplate,
    runner: &mut Runner,
) -> Result<bool, ServiceError> {
    if let Some(p) = &account.paused {
        let detail = format!("account {} is paused: {}", account.id, p.error.message);
        pause(state, c, PauseReason::AccountPaused, detail, None).await?;
        return Ok(true);
    }
    match templates::checked(state, number, &template.name, &template.language).await {
        Ok(t) => {
            let def = &t.template;
            let reason = match def.status.as_str() {
                "APPROVED" => None,
                "PAUSED" => Some(PauseReason::TemplatePaused),
                _ => Some(PauseReason::TemplateUnavailable),
            };
            if let Some(reason) = reason {
                let detail = format!("template {} ({}) is {} at Meta", def.name, def.language, def.status);
                pause(state, c, reason, detail, None).await?;
                return Ok(true);
            }
        }
        Err(ServiceError::NotFound { .. }) => {
            let detail = format!("template {} ({}) no longer exists at Meta", template.name, template.language);
            pause(state, c, PauseReason::TemplateUnavailable, detail, None).await?;
            return Ok(true);
        }
        // Meta cannot say now: the sends themselves are checked.
        Err(e) => tracing::debug!(campaign = %c.id, error = %e, "the template could not be checked"),
    }
    let counting = Instant::now();
    let raw = service::counts(state, &c.id).await?;
    runner.check_every = CHECK.max(counting.elapsed() * 10);
    let counts = CountsView::from(&raw);
    let baseline = runner.baseline.get_or_insert_with(|| counts.clone());
    if let Some(detail) = service::too_many_failures(state, c, &counts, baseline) {
        pause(state, c, PauseReason::TooManyFailures, detail, None).await?;
        return Ok(true);
    }
    if counts.pending == 0 && counts.queued == 0 {
        service::change(state, &c.id, |c, now| {
            if c.state != CampaignState::Running {
                return Ok(Change::Unchanged);
            }
            let mut next = c.clone();
            next.state = CampaignState::Completed;
            next.finished_at = Some(now);
            Ok(Change::To(Box::new(next), Some(EventType::CampaignCompleted)))
        })
        .await?;
        return Ok(true);
    }
    if runner.reported.as_ref() != Some(&counts) {
        let event = service::event_with(state, EventType::CampaignProgress, c, &raw).await?;
        state.store.emit_events(&[event], Timestamp::now()).await?;
        runner.reported = Some(counts);
    }
    Ok(false)
}

/// Whether the messaging limit leaves room: counted again every few seconds, with what was fed
/// since subtracted meanwhile. At the limit the campaign waits as `awaiting_quota` until the
/// oldest conversations it counted leave the rolling 24 hours.
async fn quota_allows(
    state: &AppState,
    c: &Campaign,
    account: &Account,
    runner: &mut Runner,
) -> Result<bool, ServiceError> {
    let Some(limit) = accounts::tier_limit(account.messaging_tier, &state.config) else {
        runner.quota = None;
        return Ok(true);
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let now = Timestamp::now();
    let since = window::messaging_limit_since(now);
    if runner.quota.is_none() || runner.quota_counted_at.is_none_or(|at| at.elapsed() >= QUOTA_RECOUNT) {
        let used = state.store.count_conversations_opened(&account.id, since).await?;
        runner.quota = Some(limit - used);
        runner.quota_counted_at = Some(Instant::now());
    }
    if runner.quota.is_some_and(|q| q > 0) {
        return Ok(true);
    }
    // Counted again before waiting: what was subtracted may have failed since.
    let used = state.store.count_conversations_opened(&account.id, since).await?;
    if used < limit {
        runner.quota = Some(limit - used);
        runner.quota_counted_at = Some(Instant::now());
        return Ok(true);
    }
    let frees = state.store.conversation_opened_at(&account.id, since, used - limit).await?;
    let resumes_at =
        frees.map_or_else(|| now.plus(QUOTA_RETRY), |t| t.plus(window::WINDOW)).max(now.plus(Duration::from_secs(1)));
    let detail = format!(
        "the business has reached its messaging limit of {limit} customers outside the 24-hour window in a rolling \
         24 hours ({used} in the last 24 hours); it goes on by itself at {resumes_at}"
    );
    pause(state, c, PauseReason::AwaitingQuota, detail, Some(resumes_at)).await?;
    runner.quota = None;
    Ok(false)
}
