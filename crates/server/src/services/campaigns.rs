//! Campaigns: one template to many recipients, fed into the number's queue at the campaign's
//! rate by the campaign worker (see `workers::campaigns`). Here: creating, starting, pausing,
//! resuming, cancelling, retrying and cloning them, and how they are shown. Every change is a
//! write of the campaign at the revision it was read, with its event in the same transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use wagate_domain::campaign::{CampaignState, PauseReason, RecipientStatus, is_retryable, skip};
use wagate_domain::event::EventType;
use wagate_domain::id::CampaignId;
use wagate_domain::message::{MessageError, SimpleTemplate};
use wagate_domain::time::Timestamp;
use wagate_domain::validation::{FieldError, check_length};
use wagate_storage::{Campaign, CampaignFilter, NewEvent, PhoneNumber, RecipientCounts, RecipientFilter, Store};

use super::ServiceError;
use crate::state::AppState;

const NAME_MAX: usize = 200;
/// Attempts at writing a campaign that others (the worker, another request) write meanwhile.
const WRITE_ATTEMPTS: usize = 8;
/// Failed recipients read per page when retrying them.
const RETRY_PAGE: u32 = 1_000;
/// Settled sends before the failure share is judged.
pub const FAILURE_SAMPLE: i64 = 20;

/// `POST /v1/campaigns`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCampaign {
    /// 1 to 200 characters.
    pub name: String,
    /// The business number it goes out from.
    pub phone_number_id: String,
    /// The template in the simple form: `name` and `language`, and values every recipient
    /// shares (`header`, `buttons`, default `params`); each recipient's `params` fill the body.
    pub template: SimpleTemplate,
    /// When to start (RFC 3339); `start` then schedules it. Absent: `start` starts it at once.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Messages a second, at most the number's own rate (the default).
    #[serde(default)]
    pub rate: Option<u32>,
    /// The share of failed sends (0–1) above which the campaign pauses itself
    /// (`too_many_failures`); `campaigns.max_failure_share` when absent.
    #[serde(default)]
    pub max_failure_share: Option<f64>,
    /// Yours: kept and shown, never sent.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A campaign as the API shows it.
#[derive(Clone, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub phone_number_id: String,
    #[schema(value_type = Object)]
    pub template: Value,
    /// `draft`, `scheduled`, `running`, `paused`, `completed` or `canceled`.
    pub state: CampaignState,
    /// Why it is paused: `requested`, `awaiting_quota`, `template_paused`,
    /// `template_unavailable`, `quality_dropped`, `account_paused` or `too_many_failures`.
    pub pause_reason: Option<String>,
    /// The pause's cause in words.
    pub pause_detail: Option<String>,
    /// When a campaign `awaiting_quota` goes on by itself.
    pub resumes_at: Option<Timestamp>,
    pub send_at: Option<Timestamp>,
    /// The rate asked for (null: the number's).
    pub rate: Option<u32>,
    /// What it is fed at: the rate asked for, at most the number's.
    pub effective_rate: u32,
    pub max_failure_share: Option<f64>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub counts: CountsView,
    /// Numbers refused as already in the campaign when recipients were added (not in `counts`:
    /// they are no recipients).
    pub duplicates: i64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// While running: when the recipients left would be handed to Meta at the effective rate.
    pub estimated_finish_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Recipients by status: each recipient is in exactly one of `pending` … `skipped`, so these
/// add up to `total`; `replied` counts those of them who wrote back.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct CountsView {
    pub total: i64,
    pub pending: i64,
    pub queued: i64,
    pub accepted: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub skipped: i64,
    /// Wrote back within `campaigns.replied_within_hours` of their message.
    pub replied: i64,
    /// Failures by Meta's error code (or wagate's reason when Meta gave none).
    pub failed_by_code: BTreeMap<String, i64>,
    /// Skips by reason: `opted_out`, `invalid`, `outside_window`, `canceled`.
    pub skipped_by_reason: BTreeMap<String, i64>,
}

impl From<&RecipientCounts> for CountsView {
    fn from(c: &RecipientCounts) -> Self {
        let mut v = CountsView { total: c.total(), replied: c.replied, ..CountsView::default() };
        for row in &c.rows {
            let slot = match row.status {
                RecipientStatus::Pending => &mut v.pending,
                RecipientStatus::Queued => &mut v.queued,
                RecipientStatus::Accepted => &mut v.accepted,
                RecipientStatus::Sent => &mut v.sent,
                RecipientStatus::Delivered => &mut v.delivered,
                RecipientStatus::Read => &mut v.read,
                RecipientStatus::Failed => &mut v.failed,
                RecipientStatus::Skipped => &mut v.skipped,
            };
            *slot += row.count;
            let reason = row.reason.clone().unwrap_or_else(|| "unknown".into());
            match row.status {
                RecipientStatus::Failed => *v.failed_by_code.entry(reason).or_default() += row.count,
                RecipientStatus::Skipped => *v.skipped_by_reason.entry(reason).or_default() += row.count,
                _ => {}
            }
        }
        v
    }
}

impl CountsView {
    /// Handed to Meta and answered: what the failure share is judged on.
    pub fn settled_sends(&self) -> i64 {
        self.accepted + self.sent + self.delivered + self.read + self.failed
    }
}

/// A campaign with its counts, shown as the API shows it.
pub fn view(c: &Campaign, counts: &RecipientCounts, number_rate: u32, now: Timestamp) -> CampaignView {
    let counts = CountsView::from(counts);
    let effective_rate = effective_rate(c.rate, number_rate);
    let left = counts.pending + counts.queued;
    let estimated_finish_at = (c.state == CampaignState::Running).then(|| {
        now.plus(Duration::from_millis((left.max(0) as u64).saturating_mul(1_000) / u64::from(effective_rate.max(1))))
    });
    CampaignView {
        id: c.id.to_string(),
        name: c.name.clone(),
        account_id: c.account_id.to_string(),
        phone_number_id: c.phone_number_id.clone(),
        template: c.template.clone(),
        state: c.state,
        pause_reason: c.pause_reason.clone(),
        pause_detail: c.pause_detail.clone(),
        resumes_at: c.resumes_at,
        send_at: c.send_at,
        rate: c.rate,
        effective_rate,
        max_failure_share: c.max_failure_share,
        metadata: c.metadata.clone(),
        counts,
        duplicates: c.duplicates,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: c.finished_at,
        estimated_finish_at,
        updated_at: c.updated_at,
    }
}

/// The rate a campaign is fed at: its own, at most its number's.
pub fn effective_rate(rate: Option<u32>, number_rate: u32) -> u32 {
    rate.map_or(number_rate, |r| r.min(number_rate)).max(1)
}

/// The number's rate, as the dispatcher sends it.
pub fn number_rate(state: &AppState, number: &PhoneNumber) -> u32 {
    crate::workers::dispatcher::messages_per_second(number, state.config.dispatcher.default_messages_per_second)
}

/// The campaign's template as stored: the simple form.
pub fn template_of(c: &Campaign) -> Result<SimpleTemplate, ServiceError> {
    serde_json::from_value(c.template.clone()).map_err(|e| {
        ServiceError::Storage(wagate_storage::StorageError::Corrupt(format!("campaign {} template: {e}", c.id)))
    })
}

pub fn replied_within(state: &AppState) -> i64 {
    i64::try_from(state.config.campaigns.replied_within_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
}

pub async fn counts(state: &AppState, id: &CampaignId) -> Result<RecipientCounts, ServiceError> {
    Ok(state.store.count_recipients(id, replied_within(state)).await?)
}

/// The campaign's view, read now.
pub async fn show(state: &AppState, c: &Campaign) -> Result<CampaignView, ServiceError> {
    let counts = counts(state, &c.id).await?;
    show_with(state, c, &counts).await
}

/// The campaign's view with counts read already.
pub async fn show_with(state: &AppState, c: &Campaign, counts: &RecipientCounts) -> Result<CampaignView, ServiceError> {
    let rate = match super::accounts::phone_number(state, &c.phone_number_id).await? {
        Some(n) => number_rate(state, &n),
        None => state.config.dispatcher.default_messages_per_second,
    };
    Ok(view(c, counts, rate, Timestamp::now()))
}

fn parse_id(id: &str) -> Result<CampaignId, ServiceError> {
    CampaignId::parse(id).ok_or_else(|| ServiceError::not_found("campaign", id))
}

pub async fn get(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let parsed = parse_id(id)?;
    state.store.get_campaign(&parsed).await?.ok_or_else(|| ServiceError::not_found("campaign", id))
}

pub async fn list(
    store: &dyn Store,
    filter: &CampaignFilter,
    limit: usize,
) -> Result<(Vec<Campaign>, bool), ServiceError> {
    let mut page = store.list_campaigns(filter, (limit + 1) as u32).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    Ok((page, more))
}

fn check_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    check_length("name", name, 1, NAME_MAX)?;
    wagate_domain::input::nul_free_text("name", name)?;
    Ok(name.to_owned())
}

fn check_share(path: &str, share: Option<f64>) -> Result<Option<f64>, FieldError> {
    match share {
        Some(s) if !(0.0..=1.0).contains(&s) => Err(FieldError::new(path, "range", "must be between 0 and 1")),
        other => Ok(other),
    }
}

/// The number a campaign names, and its rate; a rate above the number's is refused.
async fn sender(state: &AppState, phone_number_id: &str, rate: Option<u32>) -> Result<PhoneNumber, ServiceError> {
    let number = super::accounts::phone_number(state, phone_number_id).await?.ok_or_else(|| {
        FieldError::new(
            "phone_number_id",
            "unknown_sender",
            format!("'{phone_number_id}' is not the id of a connected phone number (see GET /v1/phone-numbers)"),
        )
    })?;
    let most = number_rate(state, &number);
    match rate {
        Some(0) => Err(FieldError::new("rate", "range", "must be at least 1 message a second").into()),
        Some(r) if r > most => Err(FieldError::new(
            "rate",
            "above_number_rate",
            format!("must be at most the number's own rate, {most} messages a second"),
        )
        .into()),
        _ => Ok(number),
    }
}

/// `POST /v1/campaigns`: a draft, its template checked to exist.
pub async fn create(state: &AppState, req: CreateCampaign) -> Result<Campaign, ServiceError> {
    let name = check_name(&req.name)?;
    let max_failure_share = check_share("max_failure_share", req.max_failure_share)?;
    let number = sender(state, &req.phone_number_id, req.rate).await?;
    let send_at = wagate_domain::message::instant("send_at", req.send_at.as_deref())?;
    if let Some(meta) = &req.metadata {
        wagate_domain::message::check_metadata("metadata", meta)?;
    }
    if req.template.cards.is_some() {
        return Err(FieldError::new(
            "template.cards",
            "not_supported",
            "carousel templates cannot be sent as campaigns yet",
        )
        .into());
    }
    // The template must exist now; whether each recipient's values fit it is the preflight's.
    super::templates::checked(state, &number, &req.template.name, &req.template.language).await?;
    let now = Timestamp::now();
    let campaign = Campaign {
        id: CampaignId::generate(),
        name,
        account_id: number.account_id.clone(),
        phone_number_id: number.id.clone(),
        template: serde_json::to_value(&req.template).expect("a template serialises"),
        send_at,
        rate: req.rate,
        max_failure_share,
        metadata: req.metadata,
        state: CampaignState::Draft,
        pause_reason: None,
        pause_detail: None,
        resumes_at: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        revision: 1,
        duplicates: 0,
    };
    if !state.store.save_campaign(&campaign, None, &[]).await? {
        return Err(ServiceError::Conflict(format!("campaign id {} is taken", campaign.id)));
    }
    Ok(campaign)
}

/// What a change to a campaign does: nothing (it is as asked already), or a new campaign and
/// the event that tells of it.
pub enum Change {
    Unchanged,
    To(Box<Campaign>, Option<EventType>),
}

/// Reads the campaign, applies `change`, writes it at the revision read with its event (the
/// campaign as changed, with its counts), again from a fresh read when another write came
/// first. The campaign as it stands after.
pub async fn change(
    state: &AppState,
    id: &CampaignId,
    change: impl Fn(&Campaign, Timestamp) -> Result<Change, ServiceError>,
) -> Result<Campaign, ServiceError> {
    for _ in 0..WRITE_ATTEMPTS {
        let current =
            state.store.get_campaign(id).await?.ok_or_else(|| ServiceError::not_found("campaign", id.as_str()))?;
        let now = Timestamp::now();
        let (mut next, event) = match change(&current, now)? {
            Change::Unchanged => return Ok(current),
            Change::To(next, event) => (*next, event),
        };
        next.revision = current.revision + 1;
        next.updated_at = now;
        let events = match event {
            Some(kind) => vec![event_of(state, kind, &next).await?],
            None => Vec::new(),
        };
        if state.store.save_campaign(&next, Some(current.revision), &events).await? {
            return Ok(next);
        }
    }
    Err(ServiceError::Conflict(format!("campaign {id} is being changed by others; try again")))
}

/// An event about the campaign, with the campaign as the API shows it.
pub async fn event_of(state: &AppState, kind: EventType, c: &Campaign) -> Result<NewEvent, ServiceError> {
    let counts = counts(state, &c.id).await?;
    event_with(state, kind, c, &counts).await
}

/// [`event_of`] with counts read already.
pub async fn event_with(
    state: &AppState,
    kind: EventType,
    c: &Campaign,
    counts: &RecipientCounts,
) -> Result<NewEvent, ServiceError> {
    let data = serde_json::to_value(show_with(state, c, counts).await?).expect("a campaign serialises");
    Ok(NewEvent { kind, phone_number_id: Some(c.phone_number_id.clone()), data })
}

fn conflict(c: &Campaign, action: &str, allowed: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "campaign {} is {}: only a campaign that is {allowed} can be {action}",
        c.id, c.state
    ))
}

/// `POST /v1/campaigns/{id}/start`: running now, or scheduled for its `send_at`.
pub async fn start(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let id = parse_id(id)?;
    let c = state.store.get_campaign(&id).await?.ok_or_else(|| ServiceError::not_found("campaign", id.as_str()))?;
    if c.state == CampaignState::Draft {
        // Starting a campaign whose template cannot be sent would only fail every recipient.
        let number = sender(state, &c.phone_number_id, None).await?;
        let t = template_of(&c)?;
        let checked = super::templates::checked(state, &number, &t.name, &t.language).await?;
        let def = &checked.template;
        wagate_domain::message::template::check_status("template.name", &def.name, &def.language, &def.status)?;
    }
    change(state, &id, |c, now| match c.state {
        CampaignState::Draft => {
            let mut next = c.clone();
            match c.send_at.filter(|t| *t > now) {
                Some(_) => {
                    next.state = CampaignState::Scheduled;
                    Ok(Change::To(Box::new(next), None))
                }
                None => {
                    next.state = CampaignState::Running;
                    next.started_at = Some(now);
                    Ok(Change::To(Box::new(next), Some(EventType::CampaignStarted)))
                }
            }
        }
        CampaignState::Running | CampaignState::Scheduled => Ok(Change::Unchanged),
        _ => Err(conflict(c, "started", "a draft")),
    })
    .await
}

/// The change that begins a scheduled campaign at its time.
pub fn begin(c: &Campaign, now: Timestamp) -> Result<Change, ServiceError> {
    if c.state != CampaignState::Scheduled || c.send_at.is_some_and(|t| t > now) {
        return Ok(Change::Unchanged);
    }
    let mut next = c.clone();
    next.state = CampaignState::Running;
    next.started_at = Some(now);
    Ok(Change::To(Box::new(next), Some(EventType::CampaignStarted)))
}

/// The change that pauses a running (or scheduled) campaign for `reason`.
pub fn pausing(
    reason: PauseReason,
    detail: String,
    resumes_at: Option<Timestamp>,
) -> impl Fn(&Campaign, Timestamp) -> Result<Change, ServiceError> {
    move |c, _| match c.state {
        CampaignState::Running | CampaignState::Scheduled => {
            let mut next = c.clone();
            next.state = CampaignState::Paused;
            next.pause_reason = Some(reason.as_str().to_owned());
            next.pause_detail = Some(detail.clone());
            next.resumes_at = resumes_at;
            Ok(Change::To(Box::new(next), Some(EventType::CampaignPaused)))
        }
        // Paused already: a person's pause stays a person's, a cause found later replaces quota's wait.
        CampaignState::Paused
            if reason != PauseReason::Requested
                && c.pause_reason.as_deref() == Some(PauseReason::AwaitingQuota.as_str()) =>
        {
            let mut next = c.clone();
            next.pause_reason = Some(reason.as_str().to_owned());
            next.pause_detail = Some(detail.clone());
            next.resumes_at = resumes_at;
            Ok(Change::To(Box::new(next), Some(EventType::CampaignPaused)))
        }
        CampaignState::Paused => Ok(Change::Unchanged),
        _ if reason == PauseReason::Requested => Err(conflict(c, "paused", "running or scheduled")),
        _ => Ok(Change::Unchanged),
    }
}

/// `POST /v1/campaigns/{id}/pause`: feeding stops; what is queued already (at most
/// `campaigns.lookahead_ms` of it) still goes.
pub async fn pause(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let id = parse_id(id)?;
    change(state, &id, pausing(PauseReason::Requested, "paused at the caller's request".into(), None)).await
}

/// The change that resumes a paused campaign (a scheduled one not yet due goes back to waiting).
pub fn resuming(c: &Campaign, now: Timestamp) -> Result<Change, ServiceError> {
    match c.state {
        CampaignState::Paused => {
            let mut next = c.clone();
            next.pause_reason = None;
            next.pause_detail = None;
            next.resumes_at = None;
            if c.started_at.is_none() && c.send_at.is_some_and(|t| t > now) {
                next.state = CampaignState::Scheduled;
                return Ok(Change::To(Box::new(next), Some(EventType::CampaignResumed)));
            }
            next.state = CampaignState::Running;
            next.started_at = c.started_at.or(Some(now));
            Ok(Change::To(Box::new(next), Some(EventType::CampaignResumed)))
        }
        CampaignState::Running => Ok(Change::Unchanged),
        _ => Err(conflict(c, "resumed", "paused")),
    }
}

/// `POST /v1/campaigns/{id}/resume`.
pub async fn resume(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let id = parse_id(id)?;
    change(state, &id, resuming).await
}

/// `POST /v1/campaigns/{id}/cancel`: no more is fed, what is queued and not handed to Meta is
/// withdrawn, and the recipients not sent are skipped as `canceled`.
pub async fn cancel(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let id = parse_id(id)?;
    let canceled = change(state, &id, |c, now| {
        if c.state.is_final() {
            return match c.state {
                CampaignState::Canceled => Ok(Change::Unchanged),
                _ => Err(conflict(c, "canceled", "not completed")),
            };
        }
        let mut next = c.clone();
        next.state = CampaignState::Canceled;
        next.pause_reason = None;
        next.pause_detail = None;
        next.resumes_at = None;
        next.finished_at = Some(now);
        Ok(Change::To(Box::new(next), None))
    })
    .await?;
    withdraw(state, &canceled).await?;
    // The event after the withdrawal, so its counts say what was withdrawn.
    let event = event_of(state, EventType::CampaignCanceled, &canceled).await?;
    state.store.emit_events(&[event], Timestamp::now()).await?;
    Ok(canceled)
}

/// Skips the pending recipients and cancels the queued messages a dispatcher has not taken.
/// A message already being sent finishes: it is Meta's now.
async fn withdraw(state: &AppState, c: &Campaign) -> Result<(), ServiceError> {
    let now = Timestamp::now();
    state.store.skip_pending(&c.id, skip::CANCELED, now).await?;
    let reason = MessageError::gateway(skip::CANCELED, format!("campaign {} was canceled", c.id));
    let mut after = None;
    loop {
        let filter = RecipientFilter { status: Some(RecipientStatus::Queued), after };
        let page = state.store.list_recipients(&c.id, &filter, RETRY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        for r in &page {
            if let Some(m) = &r.message_id
                && state.store.cancel_unclaimed(m, &reason, now).await?
            {
                state.outbox.left(m);
            }
        }
    }
    Ok(())
}

/// `POST /v1/campaigns/{id}/retry-failed`: recipients whose failure may pass if sent again
/// (see `is_retryable`) go back to `pending`, each to be sent under a new idempotency key; a
/// completed campaign runs again. How many were requeued.
pub async fn retry_failed(state: &AppState, id: &str) -> Result<(Campaign, u64), ServiceError> {
    let c = get(state, id).await?;
    if matches!(c.state, CampaignState::Draft | CampaignState::Scheduled | CampaignState::Canceled) {
        return Err(conflict(&c, "retried", "running, paused or completed"));
    }
    let now = Timestamp::now();
    let mut requeued = 0;
    let mut after = None;
    loop {
        let filter = RecipientFilter { status: Some(RecipientStatus::Failed), after };
        let page = state.store.list_recipients(&c.id, &filter, RETRY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        let retry: Vec<String> =
            page.iter().filter(|r| r.error.as_ref().is_some_and(is_retryable)).map(|r| r.to.clone()).collect();
        if !retry.is_empty() {
            requeued += state.store.requeue_failed(&c.id, &retry, now).await?;
        }
    }
    if requeued == 0 {
        return Ok((c, 0));
    }
    let c = change(state, &c.id, |c, _| {
        if c.state != CampaignState::Completed {
            return Ok(Change::Unchanged);
        }
        let mut next = c.clone();
        next.state = CampaignState::Running;
        next.finished_at = None;
        Ok(Change::To(Box::new(next), Some(EventType::CampaignResumed)))
    })
    .await?;
    Ok((c, requeued))
}

/// `POST /v1/campaigns/{id}/clone`: a draft with the same template, number, pace and
/// recipients (their values and metadata), none of them sent.
pub async fn clone(state: &AppState, id: &str) -> Result<Campaign, ServiceError> {
    let source = get(state, id).await?;
    let now = Timestamp::now();
    let mut name: String = format!("{} (copy)", source.name);
    if name.chars().count() > NAME_MAX {
        name = name.chars().take(NAME_MAX).collect();
    }
    let copy = Campaign {
        id: CampaignId::generate(),
        name,
        state: CampaignState::Draft,
        pause_reason: None,
        pause_detail: None,
        resumes_at: None,
        send_at: None,
        started_at: None,
        finished_at: None,
        created_at: now,
        updated_at: now,
        revision: 1,
        duplicates: 0,
        ..source.clone()
    };
    if !state.store.save_campaign(&copy, None, &[]).await? {
        return Err(ServiceError::Conflict(format!("campaign id {} is taken", copy.id)));
    }
    let mut after = None;
    loop {
        let page =
            state.store.list_recipients(&source.id, &RecipientFilter { status: None, after }, RETRY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.position);
        let recipients: Vec<_> = page
            .into_iter()
            .map(|r| wagate_storage::NewRecipient { to: r.to, params: r.params, metadata: r.metadata })
            .collect();
        state.store.add_recipients(&copy.id, &recipients, now).await?;
    }
    Ok(copy)
}

/// Whether the campaign's failures pass its share: judged on the sends settled since
/// `baseline` (the counts when it last started or resumed), once there are enough of them.
pub fn too_many_failures(state: &AppState, c: &Campaign, now: &CountsView, baseline: &CountsView) -> Option<String> {
    let share = c.max_failure_share.unwrap_or(state.config.campaigns.max_failure_share);
    let settled = now.settled_sends() - baseline.settled_sends();
    let failed = now.failed - baseline.failed;
    if settled < FAILURE_SAMPLE || (failed as f64) <= share * settled as f64 {
        return None;
    }
    Some(format!(
        "{failed} of the last {settled} sends failed, more than the campaign's {:.0} % (max_failure_share); \
         see GET /v1/campaigns/{}/recipients?status=failed",
        share * 100.0,
        c.id
    ))
}

/// Every filter value `?status=` takes.
pub fn parse_status(s: &str) -> Result<RecipientStatus, FieldError> {
    RecipientStatus::parse(s).ok_or_else(|| {
        let all: Vec<&str> = RecipientStatus::ALL.iter().map(|r| r.as_str()).collect();
        FieldError::new("status", "one_of", format!("must be one of {}", all.join(", ")))
    })
}

/// Pauses the running campaigns of a number: Meta flagged its quality or lowered its limit.
pub async fn pause_for_number(state: &AppState, phone_number_id: &str, detail: &str) -> Result<(), ServiceError> {
    for c in state.store.active_campaigns().await? {
        if c.phone_number_id == phone_number_id {
            change(state, &c.id, pausing(PauseReason::QualityDropped, detail.to_owned(), None)).await?;
        }
    }
    Ok(())
}
