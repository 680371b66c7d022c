//! Background jobs, run against SQLite always and PostgreSQL when `WAGATE_TEST_DATABASE_URL` is
//! set: every implementation of `Jobs` must pass all of it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use wagate_domain::campaign::CampaignState;
use wagate_domain::contact::MAX_ATTRIBUTES_BYTES;
use wagate_domain::event::EventPattern;
use wagate_domain::id::{CampaignId, JobId};
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, TestDatabase};
use wagate_storage::*;

struct Fixture {
    store: Arc<dyn Store>,
    _db: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDatabase::new(backend).await?;
    let store = connect_with_views(Some(db.url()), &db.data_dir(), db.cipher(), Arc::new(ContactViews))
        .await
        .expect("connect and migrate");
    assert_eq!(store.backend(), backend);
    Some(Fixture { store, _db: db })
}

/// Contacts in events with what an import changes; the rest as `PlainViews` shows it.
struct ContactViews;

impl EventViews for ContactViews {
    fn message(&self, message: &Message, history: &[StatusEntry]) -> Value {
        PlainViews.message(message, history)
    }

    fn contact(&self, c: &Contact) -> Value {
        json!({
            "id": c.id.as_str(),
            "wa_id": c.wa_id,
            "attributes": c.attributes,
            "tags": c.tags,
            "opted_out": c.marketing_opted_out(),
        })
    }

    fn media(&self, media: &Media) -> Value {
        PlainViews.media(media)
    }

    fn endpoint(&self, endpoint: &WebhookEndpoint) -> Value {
        PlainViews.endpoint(endpoint)
    }

    fn account(&self, account: &Account) -> Value {
        PlainViews.account(account)
    }

    fn webhook_event(&self, event: &WebhookEvent) -> Value {
        PlainViews.webhook_event(event)
    }

    fn template(&self, template: &MessageTemplate) -> Value {
        PlainViews.template(template)
    }
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn job(kind: JobKind) -> Job {
    Job {
        id: JobId::generate(),
        kind,
        state: JobState::Queued,
        subject: None,
        input: Some("imports/contacts.csv".into()),
        params: json!({"columns": ["phone", "name"]}),
        progress: JobProgress::default(),
        cursor: JobCursor::default(),
        result: None,
        error: None,
        created_at: t(0),
        updated_at: t(0),
        started_at: None,
        finished_at: None,
    }
}

async fn queued(store: &dyn Store, kind: JobKind) -> Job {
    let j = job(kind);
    store.insert_job(&j).await.unwrap();
    j
}

async fn get(store: &dyn Store, id: &JobId) -> Job {
    store.get_job(id).await.unwrap().expect("the job")
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn counted(succeeded: i64, line: i64) -> JobBatch {
    JobBatch {
        work: JobWork::Counted { succeeded },
        invalid: Vec::new(),
        cursor: JobCursor { offset: line * 10, line },
        total: None,
    }
}

fn invalid(line: i64, message: &str) -> JobEntry {
    JobEntry {
        line,
        outcome: EntryOutcome::Invalid,
        key: Some(format!("+1555000{line:04}")),
        code: Some("e164".into()),
        message: Some(message.into()),
    }
}

fn row(line: i64, wa_id: &str, attributes: Value, tags: &[&str], opt_out: Option<bool>) -> ImportedContact {
    ImportedContact {
        line,
        wa_id: wa_id.into(),
        attributes: object(attributes),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        marketing_opt_out: opt_out,
    }
}

fn contacts(rows: Vec<ImportedContact>, invalid: Vec<JobEntry>, line: i64) -> JobBatch {
    JobBatch { work: JobWork::Contacts(rows), invalid, cursor: JobCursor { offset: line * 100, line }, total: None }
}

fn recipients(campaign_id: &CampaignId, tos: &[(i64, String)], line: i64) -> JobBatch {
    let rows = tos
        .iter()
        .map(|(line, to)| {
            (*line, NewRecipient { to: to.clone(), params: Some(json!([format!("{line}")])), metadata: None })
        })
        .collect();
    JobBatch {
        work: JobWork::Recipients { campaign_id: campaign_id.clone(), rows },
        invalid: Vec::new(),
        cursor: JobCursor { offset: line * 100, line },
        total: None,
    }
}

async fn entries(store: &dyn Store, id: &JobId, filter: EntryFilter) -> Vec<JobEntry> {
    store.list_job_entries(id, &filter, 10_000).await.unwrap()
}

fn summary(entries: &[JobEntry]) -> Vec<(i64, EntryOutcome, Option<&str>, Option<&str>)> {
    entries.iter().map(|e| (e.line, e.outcome, e.key.as_deref(), e.code.as_deref())).collect()
}

/// A job claimed by `holder` at `t(0)` until `t(60_000)`.
async fn running(store: &dyn Store, kind: JobKind, holder: &str) -> Job {
    let j = queued(store, kind).await;
    let claimed = store.claim_job(holder, t(0), t(60_000)).await.unwrap().expect("a job to claim");
    assert_eq!(claimed.id, j.id);
    claimed
}

/// The events stored after `seq`, oldest first: type and data.
async fn events_after(store: &dyn Store, seq: i64) -> Vec<(String, Value)> {
    let filter = EventFilter { order: EventOrder::After(seq), ..EventFilter::default() };
    store.list_events(&filter, 1_000).await.unwrap().into_iter().map(|e| (e.kind, e.data)).collect()
}

async fn last_seq(store: &dyn Store) -> i64 {
    store.list_events(&EventFilter::default(), 1).await.unwrap().first().map_or(0, |e| e.seq)
}

async fn seeded_campaign(store: &dyn Store) -> Campaign {
    let a = testing::account("waba-1", t(0));
    let n = testing::phone_number(&a, "1001", true, t(0));
    store.insert_account(&a, std::slice::from_ref(&n)).await.unwrap();
    let c = Campaign {
        id: CampaignId::generate(),
        name: "Spring sale".into(),
        account_id: n.account_id.clone(),
        phone_number_id: n.id.clone(),
        template: json!({"name": "spring_sale", "language": "en_US"}),
        send_at: None,
        rate: None,
        max_failure_share: None,
        metadata: None,
        state: CampaignState::Draft,
        pause_reason: None,
        pause_detail: None,
        resumes_at: None,
        started_at: None,
        finished_at: None,
        created_at: t(0),
        updated_at: t(0),
        revision: 1,
        duplicates: 0,
    };
    assert!(store.save_campaign(&c, None, &[]).await.unwrap());
    c
}

fn to(i: usize) -> String {
    format!("+1555010{i:04}")
}

async fn jobs_are_stored_and_listed(store: &dyn Store) {
    let mut a = job(JobKind::ContactsImport);
    a.params = json!({"header": ["phone", "name", "tags"], "delimiter": ","});
    a.progress.total = Some(120);
    store.insert_job(&a).await.unwrap();
    let mut b = job(JobKind::RecipientsImport);
    b.subject = Some(CampaignId::generate().into_string());
    store.insert_job(&b).await.unwrap();
    let mut c = job(JobKind::RecipientsExport);
    c.state = JobState::Completed;
    c.input = None;
    c.result = Some("exports/recipients.csv".into());
    c.progress = JobProgress { total: Some(3), processed: 3, succeeded: 3, failed: 0, invalid: 0 };
    c.cursor = JobCursor { offset: 77, line: 3 };
    c.started_at = Some(t(1));
    c.finished_at = Some(t(2));
    store.insert_job(&c).await.unwrap();

    assert_eq!(get(store, &a.id).await, a);
    assert_eq!(get(store, &b.id).await, b);
    assert_eq!(get(store, &c.id).await, c);
    assert_eq!(store.get_job(&JobId::generate()).await.unwrap(), None);
    assert!(matches!(store.insert_job(&a).await, Err(StorageError::Conflict(_))), "the id is taken");

    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let list = |filter: JobFilter, limit: u32| async move { ids(store.list_jobs(&filter, limit).await.unwrap()) };
    assert_eq!(list(JobFilter::default(), 10).await, [c.id.clone(), b.id.clone(), a.id.clone()]);
    assert_eq!(list(JobFilter::default(), 2).await, [c.id.clone(), b.id.clone()]);
    let before = JobFilter { before: Some(b.id.clone()), ..JobFilter::default() };
    assert_eq!(list(before, 10).await, [a.id.clone()]);
    let kind = JobFilter { kind: Some(JobKind::RecipientsImport), ..JobFilter::default() };
    assert_eq!(list(kind, 10).await, [b.id.clone()]);
    let state = JobFilter { state: Some(JobState::Queued), ..JobFilter::default() };
    assert_eq!(list(state, 10).await, [b.id.clone(), a.id.clone()]);
    let both = JobFilter { kind: Some(JobKind::ContactsImport), state: Some(JobState::Completed), before: None };
    assert!(list(both, 10).await.is_empty());
}

async fn the_oldest_claimable_job_is_claimed(store: &dyn Store) {
    assert_eq!(store.claim_job("h1", t(0), t(100)).await.unwrap(), None, "nothing to claim");
    let mut done = job(JobKind::ContactsImport);
    done.state = JobState::Completed;
    store.insert_job(&done).await.unwrap();
    let a = queued(store, JobKind::ContactsImport).await;
    let b = queued(store, JobKind::RecipientsImport).await;

    // The oldest queued job; a finished one is never claimed.
    let claimed = store.claim_job("h1", t(10), t(100)).await.unwrap().unwrap();
    assert_eq!(claimed.id, a.id);
    assert_eq!((claimed.state, claimed.started_at, claimed.updated_at), (JobState::Running, Some(t(10)), t(10)));
    assert_eq!(get(store, &a.id).await, claimed);
    // While its lease runs another holder takes the next queued job, then nothing.
    assert_eq!(store.claim_job("h2", t(20), t(1_000)).await.unwrap().unwrap().id, b.id);
    assert_eq!(store.claim_job("h3", t(30), t(100)).await.unwrap(), None);
    // Its own holder takes it again (an instance started again under its name), as it was.
    let again = store.claim_job("h1", t(40), t(200)).await.unwrap().unwrap();
    assert_eq!((again.id.clone(), again.started_at, again.updated_at), (a.id.clone(), Some(t(10)), t(40)));
    assert_eq!(store.claim_job("h3", t(150), t(300)).await.unwrap(), None, "a renewed until t(200)");
    // Once it lapses another holder takes it over; it started when it first did.
    let taken = store.claim_job("h3", t(201), t(400)).await.unwrap().unwrap();
    assert_eq!((taken.id.clone(), taken.state, taken.started_at), (a.id.clone(), JobState::Running, Some(t(10))));
    assert!(!store.renew_job(&a.id, "h1", t(500)).await.unwrap(), "h1 lost it");
    assert!(store.renew_job(&a.id, "h3", t(500)).await.unwrap());

    assert!(store.cancel_job(&a.id, t(600)).await.unwrap() && store.cancel_job(&b.id, t(600)).await.unwrap());

    // By age, whatever the state: a queued job older than a lapsed one goes first...
    let (older, newer) = (job(JobKind::ContactsImport), job(JobKind::ContactsImport));
    store.insert_job(&newer).await.unwrap();
    assert_eq!(store.claim_job("h4", t(1_000), t(1_100)).await.unwrap().unwrap().id, newer.id);
    store.insert_job(&older).await.unwrap();
    assert_eq!(store.claim_job("h5", t(1_200), t(100_000)).await.unwrap().unwrap().id, older.id);
    assert_eq!(store.claim_job("h6", t(1_200), t(100_000)).await.unwrap().unwrap().id, newer.id);
    // ...and a lapsed one older than a queued one after it.
    let (first, second) = (job(JobKind::ContactsImport), job(JobKind::ContactsImport));
    store.insert_job(&first).await.unwrap();
    assert_eq!(store.claim_job("h7", t(1_300), t(1_400)).await.unwrap().unwrap().id, first.id);
    store.insert_job(&second).await.unwrap();
    assert_eq!(store.claim_job("h8", t(1_500), t(100_000)).await.unwrap().unwrap().id, first.id);
    assert_eq!(store.claim_job("h9", t(1_500), t(100_000)).await.unwrap().unwrap().id, second.id);
    assert_eq!(store.claim_job("h10", t(1_500), t(100_000)).await.unwrap(), None);
    let canceled = get(store, &a.id).await;
    assert_eq!((canceled.state, canceled.started_at), (JobState::Canceled, Some(t(10))));
}

/// Instances claiming at once each take a job of their own.
async fn claims_at_once_take_different_jobs(store: &dyn Store) {
    let only = queued(store, JobKind::ContactsImport).await;
    let (x, y) = tokio::join!(store.claim_job("x", t(0), t(100)), store.claim_job("y", t(0), t(100)));
    let claimed: Vec<Job> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(claimed.len(), 1, "one of two wins");
    assert_eq!(claimed[0].id, only.id);

    let mut jobs: Vec<JobId> = Vec::new();
    for _ in 0..3 {
        jobs.push(queued(store, JobKind::RecipientsImport).await.id);
    }
    let (a, b, c, d) = tokio::join!(
        store.claim_job("a", t(0), t(100)),
        store.claim_job("b", t(0), t(100)),
        store.claim_job("c", t(0), t(100)),
        store.claim_job("d", t(0), t(100)),
    );
    let mut claimed: Vec<JobId> =
        [a.unwrap(), b.unwrap(), c.unwrap(), d.unwrap()].into_iter().flatten().map(|j| j.id).collect();
    claimed.sort();
    // PostgreSQL's claims skip a job another claim is taking: one may find none left.
    assert!(claimed.windows(2).all(|w| w[0] != w[1]), "each job once: {claimed:?}");
    assert!(claimed.iter().all(|id| jobs.contains(id)));
    while let Some(j) = store.claim_job("e", t(0), t(100)).await.unwrap() {
        assert!(!claimed.contains(&j.id));
        claimed.push(j.id);
    }
    claimed.sort();
    assert_eq!(claimed, jobs);
}

async fn only_the_holder_writes(store: &dyn Store) {
    let j = running(store, JobKind::RecipientsExport, "h1").await;
    assert!(store.renew_job(&j.id, "h1", t(90_000)).await.unwrap());
    assert!(!store.renew_job(&j.id, "h2", t(90_000)).await.unwrap());
    assert!(!store.renew_job(&JobId::generate(), "h1", t(90_000)).await.unwrap());
    let before = get(store, &j.id).await;

    // Another holder's batch is refused, and writes nothing: no entry, no count, no cursor.
    let mut batch = counted(5, 6);
    batch.invalid = vec![invalid(3, "not a number")];
    batch.total = Some(50);
    assert!(!store.apply_job_batch(&j.id, "h2", &batch, t(1_000)).await.unwrap());
    assert!(!store.apply_job_batch(&JobId::generate(), "h1", &batch, t(1_000)).await.unwrap());
    assert_eq!(get(store, &j.id).await, before);
    assert!(entries(store, &j.id, EntryFilter::default()).await.is_empty());
    assert!(!store.finish_job(&j.id, "h2", JobState::Completed, Some("x.csv"), None, t(1_000)).await.unwrap());

    // Canceled: its holder's next writes fail.
    assert!(store.cancel_job(&j.id, t(2_000)).await.unwrap());
    assert!(!store.cancel_job(&j.id, t(2_001)).await.unwrap(), "canceled already");
    assert!(!store.renew_job(&j.id, "h1", t(90_000)).await.unwrap());
    assert!(!store.apply_job_batch(&j.id, "h1", &batch, t(3_000)).await.unwrap());
    assert!(!store.finish_job(&j.id, "h1", JobState::Completed, None, None, t(3_000)).await.unwrap());
    let canceled = get(store, &j.id).await;
    assert_eq!(
        (canceled.state, canceled.finished_at, canceled.updated_at),
        (JobState::Canceled, Some(t(2_000)), t(2_000))
    );
    assert_eq!(canceled.progress, before.progress);
    assert!(entries(store, &j.id, EntryFilter::default()).await.is_empty());
    assert_eq!(store.claim_job("h3", t(100_000), t(200_000)).await.unwrap(), None, "a canceled job is not claimed");

    // A queued job is canceled too; an ended one is not.
    let q = queued(store, JobKind::ContactsImport).await;
    assert!(store.cancel_job(&q.id, t(5)).await.unwrap());
    assert_eq!(get(store, &q.id).await.state, JobState::Canceled);
    let f = running(store, JobKind::ContactsImport, "h1").await;
    assert!(store.finish_job(&f.id, "h1", JobState::Failed, None, Some("the file is gone"), t(6)).await.unwrap());
    assert!(!store.cancel_job(&f.id, t(7)).await.unwrap());
    assert!(!store.cancel_job(&JobId::generate(), t(7)).await.unwrap());
    assert_eq!(get(store, &f.id).await.state, JobState::Failed);
}

async fn batches_count_and_move_the_cursor(store: &dyn Store) {
    let j = running(store, JobKind::RecipientsExport, "h1").await;
    let mut first = counted(40, 41);
    first.total = Some(100);
    first.invalid = vec![invalid(7, "bad"), JobEntry { outcome: EntryOutcome::Failed, ..invalid(9, "worse") }];
    assert!(store.apply_job_batch(&j.id, "h1", &first, t(1_000)).await.unwrap());
    let after = get(store, &j.id).await;
    assert_eq!(after.progress, JobProgress { total: Some(100), processed: 42, succeeded: 40, failed: 0, invalid: 2 });
    assert_eq!((after.cursor, after.updated_at), (JobCursor { offset: 410, line: 41 }, t(1_000)));
    assert_eq!((after.state, after.started_at), (JobState::Running, Some(t(0))));
    // Invalid rows are `invalid`, whatever they were given as.
    let listed = entries(store, &j.id, EntryFilter::default()).await;
    assert_eq!(
        summary(&listed),
        [
            (7, EntryOutcome::Invalid, Some("+15550000007"), Some("e164")),
            (9, EntryOutcome::Invalid, Some("+15550000009"), Some("e164"))
        ]
    );
    assert_eq!(listed[1].message.as_deref(), Some("worse"));

    // A total once known stays when a batch brings none.
    assert!(store.apply_job_batch(&j.id, "h1", &counted(50, 91), t(2_000)).await.unwrap());
    let after = get(store, &j.id).await;
    assert_eq!(after.progress, JobProgress { total: Some(100), processed: 92, succeeded: 90, failed: 0, invalid: 2 });
    assert_eq!(after.cursor, JobCursor { offset: 910, line: 91 });

    // Completed: the total is what it processed, the lease let go (anyone else may not claim it).
    assert!(store.finish_job(&j.id, "h1", JobState::Completed, Some("exports/x.csv"), None, t(3_000)).await.unwrap());
    assert!(!store.finish_job(&j.id, "h1", JobState::Completed, None, None, t(3_001)).await.unwrap(), "once");
    assert!(!store.apply_job_batch(&j.id, "h1", &counted(1, 92), t(3_002)).await.unwrap());
    let done = get(store, &j.id).await;
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.progress, JobProgress { total: Some(92), processed: 92, succeeded: 90, failed: 0, invalid: 2 });
    assert_eq!((done.result.as_deref(), done.error, done.finished_at), (Some("exports/x.csv"), None, Some(t(3_000))));
    assert_eq!(store.claim_job("h2", t(100_000), t(200_000)).await.unwrap(), None);
    let queued_ended = store.finish_job(&j.id, "h1", JobState::Queued, None, None, t(3_003)).await;
    assert!(queued_ended.is_err(), "a job ends completed or failed");

    // Failed: its error, its total as it was (none here).
    let f = running(store, JobKind::ContactsImport, "h1").await;
    assert!(store.apply_job_batch(&f.id, "h1", &counted(3, 4), t(10)).await.unwrap());
    assert!(store.finish_job(&f.id, "h1", JobState::Failed, None, Some("the upload is gone"), t(11)).await.unwrap());
    let failed = get(store, &f.id).await;
    assert_eq!(
        (failed.state, failed.error.as_deref(), failed.progress.total),
        (JobState::Failed, Some("the upload is gone"), None)
    );
    assert_eq!((failed.progress.processed, failed.finished_at), (3, Some(t(11))));
}

async fn contacts_are_made_and_changed(store: &dyn Store) {
    // Known before: with attributes, a tag, and opted out.
    let ana = ContactIds { wa_id: Some("15550000001".into()), user_id: None };
    let ana_id = store.upsert_contact(&ana, Some("Ana"), t(0)).await.unwrap();
    let patch = ContactUpdate {
        attributes: Some(object(json!({"plan": "basic", "keep": true}))),
        tags: Some(vec!["VIP".into()]),
        marketing_opt_out: Some(true),
        at: t(1),
    };
    assert_eq!(store.update_contact(&ana_id, &patch).await.unwrap(), ContactUpdated::Updated);
    let seq = last_seq(store).await;

    let j = running(store, JobKind::ContactsImport, "h1").await;
    let huge = json!({"blob": "x".repeat(MAX_ATTRIBUTES_BYTES)});
    let rows = vec![
        row(2, "15550000002", json!({"city": "Lisboa"}), &["new"], Some(true)),
        row(3, "15550000001", json!({"plan": "gold", "keep": null, "since": 2024}), &["vip", "Gold"], Some(false)),
        row(4, "15550000001", huge.clone(), &["never"], Some(true)),
        row(5, "15550000003", huge, &[], None),
        row(6, "15550000004", json!({}), &[], None),
        row(7, "15550000001", json!({"plan": "gold"}), &["GOLD"], None),
        row(8, "15550000002", json!({}), &["second"], None),
    ];
    let batch = contacts(rows, vec![invalid(9, "not a number")], 9);
    assert!(store.apply_job_batch(&j.id, "h1", &batch, t(100)).await.unwrap());

    let listed = entries(store, &j.id, EntryFilter::default()).await;
    assert_eq!(
        summary(&listed),
        [
            (2, EntryOutcome::Succeeded, Some("15550000002"), None),
            (3, EntryOutcome::Succeeded, Some("15550000001"), None),
            (4, EntryOutcome::Failed, Some("15550000001"), Some("max_size")),
            (5, EntryOutcome::Failed, Some("15550000003"), Some("max_size")),
            (6, EntryOutcome::Succeeded, Some("15550000004"), None),
            (7, EntryOutcome::Succeeded, Some("15550000001"), None),
            (8, EntryOutcome::Succeeded, Some("15550000002"), None),
            (9, EntryOutcome::Invalid, Some("+15550000009"), Some("e164")),
        ]
    );
    assert!(listed[2].message.as_deref().unwrap().contains("bytes"), "{:?}", listed[2].message);
    let progress = get(store, &j.id).await.progress;
    assert_eq!(progress, JobProgress { total: None, processed: 8, succeeded: 5, failed: 2, invalid: 1 });

    // Ana: attributes merged, tags added (one per spelling), opted in again at the batch's time;
    // nothing of the refused row.
    let a = store.get_contact(&ana_id).await.unwrap().unwrap();
    assert_eq!(a.attributes, object(json!({"plan": "gold", "since": 2024})));
    assert_eq!(a.tags, ["Gold", "VIP"]);
    assert_eq!(
        (a.marketing_opt_out_at, a.marketing_opt_in_at, a.marketing_opted_out()),
        (Some(t(1)), Some(t(100)), false)
    );
    assert_eq!((a.profile_name.as_deref(), a.updated_at), (Some("Ana"), t(100)));
    // New ones, found by a message from their numbers as any contact.
    let b = store.get_contact_by_wa_id("15550000002").await.unwrap().unwrap();
    assert_eq!(b.attributes, object(json!({"city": "Lisboa"})));
    assert_eq!(b.tags, ["new", "second"]);
    assert_eq!((b.marketing_opt_out_at, b.marketing_opted_out(), b.created_at), (Some(t(100)), true, t(100)));
    let by_message = ContactIds { wa_id: Some("15550000002".into()), user_id: None };
    assert_eq!(store.upsert_contact(&by_message, Some("Bia"), t(200)).await.unwrap(), b.id);
    let d = store.get_contact_by_wa_id("15550000004").await.unwrap().unwrap();
    assert!(d.attributes.is_empty() && d.tags.is_empty() && d.marketing_opt_out_at.is_none());
    assert_eq!(store.get_contact_by_wa_id("15550000003").await.unwrap(), None, "its only row failed");

    // An event for each contact made and each row that changed one, as that row left it; none
    // for the row that changed nothing (7) or failed.
    let events = events_after(store, seq).await;
    let kinds: Vec<(&str, &str)> =
        events.iter().map(|(kind, data)| (kind.as_str(), data["wa_id"].as_str().unwrap())).collect();
    assert_eq!(
        kinds,
        [
            ("contact.created", "15550000002"),
            ("contact.updated", "15550000001"),
            ("contact.created", "15550000004"),
            ("contact.updated", "15550000002"),
        ]
    );
    assert_eq!(events[0].1["tags"], json!(["new"]));
    assert_eq!(events[0].1["opted_out"], json!(true));
    assert_eq!(events[1].1["attributes"], json!({"plan": "gold", "since": 2024}));
    assert_eq!(events[1].1["tags"], json!(["Gold", "VIP"]));
    assert_eq!(events[1].1["opted_out"], json!(false));
    assert_eq!(events[3].1["tags"], json!(["new", "second"]));
    assert_eq!(events[0].1["id"], json!(b.id.as_str()));

    // A second batch: the same rows change nothing more, a stop later than the resume wins.
    let again = contacts(vec![row(10, "15550000001", json!({"plan": "gold"}), &["vip"], None)], vec![], 10);
    let seq = last_seq(store).await;
    assert!(store.apply_job_batch(&j.id, "h1", &again, t(300)).await.unwrap());
    assert!(events_after(store, seq).await.is_empty(), "nothing changed");
    assert_eq!(store.get_contact(&ana_id).await.unwrap().unwrap().updated_at, t(100));
    let stop = contacts(vec![row(11, "15550000001", json!({}), &[], Some(true))], vec![], 11);
    assert!(store.apply_job_batch(&j.id, "h1", &stop, t(400)).await.unwrap());
    assert!(store.get_contact(&ana_id).await.unwrap().unwrap().marketing_opted_out());
    assert_eq!(events_after(store, seq).await.len(), 1);

    // Too many tags fail the row.
    let many: Vec<String> = (0..60).map(|i| format!("tag{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let over = contacts(vec![row(12, "15550000001", json!({}), &many, None)], vec![], 12);
    assert!(store.apply_job_batch(&j.id, "h1", &over, t(500)).await.unwrap());
    let refused = entries(store, &j.id, EntryFilter { outcome: None, after: Some(11) }).await;
    assert_eq!(summary(&refused), [(12, EntryOutcome::Failed, Some("15550000001"), Some("max_items"))]);
    assert_eq!(store.get_contact(&ana_id).await.unwrap().unwrap().tags, ["Gold", "VIP"]);
    let progress = get(store, &j.id).await.progress;
    assert_eq!((progress.processed, progress.succeeded, progress.failed), (11, 7, 3));
}

/// A row of a number a contact had before (and none has now) changes that contact, as a message
/// from it would be filed with it.
async fn a_former_number_finds_its_contact(store: &dyn Store) {
    let old = ContactIds { wa_id: Some("15550000011".into()), user_id: None };
    let id = store.upsert_contact(&old, None, t(0)).await.unwrap();
    let new = ContactIds { wa_id: Some("15550000012".into()), user_id: None };
    assert_eq!(store.change_contact_ids(&old, &new, t(1)).await.unwrap(), Some(id.clone()));
    let j = running(store, JobKind::ContactsImport, "h1").await;
    let rows = vec![
        row(2, "15550000011", json!({"from": "old"}), &["a"], None),
        row(3, "15550000012", json!({"to": "new"}), &["b"], None),
    ];
    assert!(store.apply_job_batch(&j.id, "h1", &contacts(rows, vec![], 3), t(10)).await.unwrap());
    let c = store.get_contact(&id).await.unwrap().unwrap();
    assert_eq!(c.wa_id.as_deref(), Some("15550000012"));
    assert_eq!(c.attributes, object(json!({"from": "old", "to": "new"})));
    assert_eq!(c.tags, ["a", "b"]);
    assert_eq!(store.get_contact_by_wa_id("15550000011").await.unwrap(), None, "no contact made for the old number");
}

/// Two imports at once with numbers in common: each contact is made once, with both rows.
async fn imports_at_once_share_their_contacts(store: &dyn Store) {
    let j1 = running(store, JobKind::ContactsImport, "h1").await;
    let j2 = running(store, JobKind::ContactsImport, "h2").await;
    let rows = |from: i64, key: &str| -> Vec<ImportedContact> {
        (from..from + 300).map(|i| row(i, &format!("3161200{i:04}"), json!({key: i}), &[key], None)).collect()
    };
    let (b1, b2) = (contacts(rows(0, "one"), vec![], 300), contacts(rows(200, "two"), vec![], 500));
    let seq = last_seq(store).await;
    let (a, b) =
        tokio::join!(store.apply_job_batch(&j1.id, "h1", &b1, t(10)), store.apply_job_batch(&j2.id, "h2", &b2, t(10)));
    assert!(a.unwrap() && b.unwrap());
    let numbers: Vec<String> = (0..500).map(|i| format!("3161200{i:04}")).collect();
    let found = store.contacts_by_wa_ids(&numbers).await.unwrap();
    assert_eq!(found.len(), 500);
    let shared = store.get_contact_by_wa_id("31612000250").await.unwrap().unwrap();
    assert_eq!(shared.attributes, object(json!({"one": 250, "two": 250})));
    assert_eq!(shared.tags, ["one", "two"]);
    let kinds: Vec<String> = events_after(store, seq).await.into_iter().map(|(kind, _)| kind).collect();
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!((count("contact.created"), count("contact.updated")), (500, 100));
    for j in [&j1, &j2] {
        assert_eq!(get(store, &j.id).await.progress.succeeded, 300);
    }
}

async fn recipients_are_added_after_the_last(store: &dyn Store) {
    let c = seeded_campaign(store).await;
    let first = [to(1), to(2)].map(|to| NewRecipient { to, params: None, metadata: None });
    assert_eq!(store.add_recipients(&c.id, &first, t(1)).await.unwrap(), [true, true]);

    let j = running(store, JobKind::RecipientsImport, "h1").await;
    let rows = [(2, to(3)), (3, to(1)), (4, to(4)), (5, to(3)), (6, to(5))];
    let mut batch = recipients(&c.id, &rows, 6);
    batch.total = Some(9);
    batch.invalid = vec![invalid(7, "too short")];
    assert!(store.apply_job_batch(&j.id, "h1", &batch, t(10)).await.unwrap());
    let listed = entries(store, &j.id, EntryFilter::default()).await;
    assert_eq!(
        summary(&listed),
        [
            (2, EntryOutcome::Succeeded, Some(to(3).as_str()), None),
            (3, EntryOutcome::Failed, Some(to(1).as_str()), Some("duplicate")),
            (4, EntryOutcome::Succeeded, Some(to(4).as_str()), None),
            (5, EntryOutcome::Failed, Some(to(3).as_str()), Some("duplicate")),
            (6, EntryOutcome::Succeeded, Some(to(5).as_str()), None),
            (7, EntryOutcome::Invalid, Some("+15550000007"), Some("e164")),
        ]
    );
    assert!(listed[1].message.as_deref().unwrap().contains(&to(1)));
    assert!(listed[3].message.as_deref().unwrap().contains(&to(3)));
    let all = store.list_recipients(&c.id, &RecipientFilter::default(), 100).await.unwrap();
    let positions: Vec<(i64, String)> = all.iter().map(|r| (r.position, r.to.clone())).collect();
    assert_eq!(positions, (1..=5).map(|i| (i as i64, to(i))).collect::<Vec<_>>());
    assert_eq!((all[2].params.clone(), all[2].created_at), (Some(json!(["2"])), t(10)));
    let job = get(store, &j.id).await;
    assert_eq!(job.progress, JobProgress { total: Some(9), processed: 6, succeeded: 3, failed: 2, invalid: 1 });
    assert_eq!(job.cursor, JobCursor { offset: 600, line: 6 });

    // The next batch goes on after them.
    assert!(store.apply_job_batch(&j.id, "h1", &recipients(&c.id, &[(8, to(6)), (9, to(2))], 9), t(20)).await.unwrap());
    let all = store.list_recipients(&c.id, &RecipientFilter::default(), 100).await.unwrap();
    assert_eq!(all.last().map(|r| (r.position, r.to.clone())), Some((6, to(6))));
    let failed = entries(store, &j.id, EntryFilter { outcome: Some(EntryOutcome::Failed), after: None }).await;
    assert_eq!(failed.iter().map(|e| e.line).collect::<Vec<_>>(), [3, 5, 9]);

    // A campaign that is gone takes nobody: each row fails.
    let gone = CampaignId::generate();
    assert!(store.apply_job_batch(&j.id, "h1", &recipients(&gone, &[(10, to(7))], 10), t(30)).await.unwrap());
    let last = entries(store, &j.id, EntryFilter { outcome: None, after: Some(9) }).await;
    assert_eq!(summary(&last), [(10, EntryOutcome::Failed, Some(to(7).as_str()), Some("not_found"))]);
}

async fn entries_are_listed_by_outcome_and_line(store: &dyn Store) {
    let j = running(store, JobKind::ContactsImport, "h1").await;
    let rows: Vec<ImportedContact> =
        (2..=21).map(|line| row(line, &format!("1555100{line:04}"), json!({"n": line}), &[], None)).collect();
    let mut rows = rows;
    rows[4].attributes = object(json!({"blob": "x".repeat(MAX_ATTRIBUTES_BYTES)}));
    rows[9].attributes = object(json!({"blob": "y".repeat(MAX_ATTRIBUTES_BYTES)}));
    // Line 30 is invalid twice, and line 2 is both a row and invalid: the first entry stays.
    let invalid_rows = vec![invalid(25, "a"), invalid(30, "first"), invalid(30, "second"), invalid(2, "late")];
    assert!(store.apply_job_batch(&j.id, "h1", &contacts(rows, invalid_rows, 30), t(10)).await.unwrap());

    let all = entries(store, &j.id, EntryFilter::default()).await;
    assert_eq!(all.len(), 22);
    assert!(all.windows(2).all(|w| w[0].line < w[1].line), "by line");
    assert_eq!(all[0].outcome, EntryOutcome::Succeeded, "line 2's first entry");
    assert_eq!(all.last().unwrap().message.as_deref(), Some("first"));
    let failed = entries(store, &j.id, EntryFilter { outcome: Some(EntryOutcome::Failed), after: None }).await;
    assert_eq!(failed.iter().map(|e| e.line).collect::<Vec<_>>(), [6, 11]);
    let later = entries(store, &j.id, EntryFilter { outcome: Some(EntryOutcome::Failed), after: Some(6) }).await;
    assert_eq!(later.iter().map(|e| e.line).collect::<Vec<_>>(), [11]);
    let invalid = entries(store, &j.id, EntryFilter { outcome: Some(EntryOutcome::Invalid), after: None }).await;
    assert_eq!(invalid.iter().map(|e| e.line).collect::<Vec<_>>(), [25, 30]);
    let ok = EntryFilter { outcome: Some(EntryOutcome::Succeeded), after: Some(15) };
    assert_eq!(
        store.list_job_entries(&j.id, &ok, 3).await.unwrap().iter().map(|e| e.line).collect::<Vec<_>>(),
        [16, 17, 18]
    );
    assert!(entries(store, &JobId::generate(), EntryFilter::default()).await.is_empty());
    assert!(store.list_job_entries(&j.id, &EntryFilter::default(), 0).await.unwrap().is_empty());
}

/// A batch of 1,000 new contacts, one of 1,000 known ones, and one of 1,000 recipients.
async fn a_thousand_rows_a_batch(store: &dyn Store) {
    let j = running(store, JobKind::ContactsImport, "h1").await;
    let rows = |from: i64, tag: &str| -> Vec<ImportedContact> {
        (from..from + 1_000)
            .map(|line| {
                let attributes = json!({"name": format!("Customer {line}"), "score": line % 7, "tier": tag});
                row(line, &format!("4477009{:05}", line % 1_000), attributes, &[tag], Some(line % 3 == 0))
            })
            .collect()
    };
    let started = Instant::now();
    assert!(store.apply_job_batch(&j.id, "h1", &contacts(rows(2, "first"), vec![], 1_001), t(10)).await.unwrap());
    eprintln!("{:?}: 1,000 new contacts in {:?}", store.backend(), started.elapsed());
    let started = Instant::now();
    assert!(store.apply_job_batch(&j.id, "h1", &contacts(rows(1_002, "second"), vec![], 2_001), t(20)).await.unwrap());
    eprintln!("{:?}: 1,000 known contacts changed in {:?}", store.backend(), started.elapsed());
    let progress = get(store, &j.id).await.progress;
    assert_eq!(progress, JobProgress { total: None, processed: 2_000, succeeded: 2_000, failed: 0, invalid: 0 });
    let numbers: Vec<String> = (0..1_000).map(|i| format!("4477009{i:05}")).collect();
    let found = store.contacts_by_wa_ids(&numbers).await.unwrap();
    assert_eq!(found.len(), 1_000);
    assert!(found.iter().all(|c| c.tags == ["first", "second"] && c.attributes["tier"] == json!("second")));
    let updated =
        EventFilter { types: vec![EventPattern::parse("contact.updated").unwrap()], ..EventFilter::default() };
    assert_eq!(store.list_events(&updated, 2_000).await.unwrap().len(), 1_000);

    let c = seeded_campaign(store).await;
    let r = running(store, JobKind::RecipientsImport, "h2").await;
    let tos: Vec<(i64, String)> = (0..1_000).map(|i| (i + 2, format!("+4477009{:05}", i % 990))).collect();
    let started = Instant::now();
    assert!(store.apply_job_batch(&r.id, "h2", &recipients(&c.id, &tos, 1_001), t(30)).await.unwrap());
    eprintln!("{:?}: 1,000 recipients in {:?}", store.backend(), started.elapsed());
    let tos: Vec<(i64, String)> = (0..1_000).map(|i| (i + 1_002, format!("+4477019{i:05}"))).collect();
    let started = Instant::now();
    assert!(store.apply_job_batch(&r.id, "h2", &recipients(&c.id, &tos, 2_001), t(40)).await.unwrap());
    eprintln!("{:?}: 1,000 more recipients in {:?}", store.backend(), started.elapsed());
    let progress = get(store, &r.id).await.progress;
    assert_eq!((progress.processed, progress.succeeded, progress.failed), (2_000, 1_990, 10));
    let tail = RecipientFilter { status: None, after: Some(1_989) };
    let last = store.list_recipients(&c.id, &tail, 10).await.unwrap();
    assert_eq!(last.iter().map(|r| r.position).collect::<Vec<_>>(), [1_990]);
}

/// Odd text round-trips as given on both backends.
async fn odd_text_round_trips(store: &dyn Store) {
    let odd = "\u{202E}Zoë \u{1F1FA}\u{1F1F8} \"quoted\" \\ back'slash'); -- \u{10FFFF}\u{FEFF}\u{200D}";
    let mut j = job(JobKind::ContactsImport);
    j.params = json!({"header": [odd, "\u{0}\u{1}"], odd: {"deep": [odd, 1.5, null]}});
    j.input = Some(format!("imports/{odd}.csv"));
    j.subject = Some(odd.into());
    store.insert_job(&j).await.unwrap();
    assert_eq!(get(store, &j.id).await, j);

    let claimed = store.claim_job("h\u{202E}1", t(0), t(60_000)).await.unwrap().unwrap();
    assert_eq!(claimed.id, j.id);
    let attributes = json!({odd: odd, "emoji\u{1F600}": ["\u{0}", "\u{7F}", "\u{2028}\u{2029}"], "n": -0.5});
    let rows = vec![row(2, "15552000001", attributes.clone(), &[odd, "\u{1F600}"], None)];
    let entry = JobEntry {
        line: 3,
        outcome: EntryOutcome::Invalid,
        key: Some(odd.into()),
        code: Some("e164".into()),
        message: Some(format!("{odd} is not a number")),
    };
    let batch = contacts(rows, vec![entry.clone()], 3);
    assert!(store.apply_job_batch(&j.id, "h\u{202E}1", &batch, t(10)).await.unwrap());
    let c = store.get_contact_by_wa_id("15552000001").await.unwrap().unwrap();
    assert_eq!(Value::Object(c.attributes), attributes);
    let mut tags = vec![odd.to_owned(), "\u{1F600}".to_owned()];
    tags.sort();
    assert_eq!(c.tags, tags);
    assert_eq!(entries(store, &j.id, EntryFilter { outcome: Some(EntryOutcome::Invalid), after: None }).await, [entry]);

    // Text the databases may refuse (PostgreSQL takes no NUL in text): an error or stored.
    let nul = JobEntry { line: 4, message: Some("a\u{0}b".into()), ..invalid(4, "") };
    match store.apply_job_batch(&j.id, "h\u{202E}1", &counted_with(vec![nul.clone()], 4), t(20)).await {
        Ok(applied) => {
            assert!(applied);
            let after = EntryFilter { outcome: None, after: Some(3) };
            assert_eq!(entries(store, &j.id, after).await[0].message, nul.message);
        }
        Err(e) => assert_eq!(store.backend(), Backend::Postgres, "{e}"),
    }
    let message = format!("{odd}: the file ended inside a quoted field");
    assert!(store.finish_job(&j.id, "h\u{202E}1", JobState::Failed, None, Some(&message), t(30)).await.unwrap());
    assert_eq!(get(store, &j.id).await.error, Some(message));
    let _ = store
        .list_jobs(&JobFilter { before: Some(JobId::from_trusted("'); --\u{0}".into())), ..Default::default() }, 5)
        .await;
    // And the store goes on.
    assert_eq!(store.list_jobs(&JobFilter::default(), 5).await.unwrap().len(), 1);
}

fn counted_with(invalid: Vec<JobEntry>, line: i64) -> JobBatch {
    JobBatch { invalid, ..counted(0, line) }
}

macro_rules! suite {
    ($backend:ident, $b:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        if let Some(f) = fixture($b).await {
                            super::$name(f.store.as_ref()).await;
                        }
                    }
                };
            }

            case!(jobs_are_stored_and_listed);
            case!(the_oldest_claimable_job_is_claimed);
            case!(claims_at_once_take_different_jobs);
            case!(only_the_holder_writes);
            case!(batches_count_and_move_the_cursor);
            case!(contacts_are_made_and_changed);
            case!(a_former_number_finds_its_contact);
            case!(imports_at_once_share_their_contacts);
            case!(recipients_are_added_after_the_last);
            case!(entries_are_listed_by_outcome_and_line);
            case!(a_thousand_rows_a_batch);
            case!(odd_text_round_trips);
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
