//! Campaigns and their recipients, run against SQLite always and PostgreSQL when
//! `WAGATE_TEST_DATABASE_URL` is set: every implementation of `Campaigns` must pass all of it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use wagate_domain::campaign::{CampaignState, RecipientStatus, skip};
use wagate_domain::event::EventType;
use wagate_domain::id::{CampaignId, MessageId};
use wagate_domain::message::MessageError;
use wagate_domain::status::DeliveryStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::testing::{self, StoreExt, TestDatabase};
use wagate_storage::*;

struct Fixture {
    store: Arc<dyn Store>,
    _db: TestDatabase,
}

async fn fixture(backend: Backend) -> Option<Fixture> {
    let db = TestDatabase::new(backend).await?;
    let store = connect(Some(db.url()), &db.data_dir(), db.cipher()).await.expect("connect and migrate");
    assert_eq!(store.backend(), backend);
    Some(Fixture { store, _db: db })
}

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

async fn seeded(store: &dyn Store) -> (Account, PhoneNumber) {
    let a = testing::account("waba-1", t(0));
    let n = testing::phone_number(&a, "1001", true, t(0));
    store.insert_account(&a, std::slice::from_ref(&n)).await.unwrap();
    (a, n)
}

fn campaign(n: &PhoneNumber, name: &str, state: CampaignState) -> Campaign {
    Campaign {
        id: CampaignId::generate(),
        name: name.into(),
        account_id: n.account_id.clone(),
        phone_number_id: n.id.clone(),
        template: json!({"name": "spring_sale", "language": "en_US", "params": ["Ana"]}),
        send_at: None,
        rate: None,
        max_failure_share: None,
        metadata: None,
        state,
        pause_reason: None,
        pause_detail: None,
        resumes_at: None,
        started_at: None,
        finished_at: None,
        created_at: t(0),
        updated_at: t(0),
        revision: 1,
        duplicates: 0,
    }
}

async fn saved(store: &dyn Store, n: &PhoneNumber, name: &str, state: CampaignState) -> Campaign {
    let c = campaign(n, name, state);
    assert!(store.save_campaign(&c, None, &[]).await.unwrap());
    c
}

/// The `i`th customer's number.
fn to(i: usize) -> String {
    format!("+1555010{i:04}")
}

fn plain(tos: &[String]) -> Vec<NewRecipient> {
    tos.iter().map(|to| NewRecipient { to: to.clone(), params: None, metadata: None }).collect()
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn send(n: &PhoneNumber, id: &MessageId, recipient: &str, due: Timestamp) -> NewOutbound {
    NewOutbound {
        id: id.clone(),
        account_id: n.account_id.clone(),
        phone_number_id: n.id.clone(),
        recipient: recipient.into(),
        kind: "template".into(),
        content: json!({"name": "spring_sale", "language": {"code": "en_US"}}),
        metadata: None,
        created_at: t(0),
        due_at: due,
        send_at: (due > t(0)).then_some(due),
        expires_at: None,
        window: None,
        idempotency: None,
        rendered: None,
    }
}

async fn enqueue(store: &dyn Store, n: &PhoneNumber, id: &MessageId, recipient: &str, due: Timestamp) {
    assert_eq!(store.enqueue_message(send(n, id, recipient, due)).await.unwrap(), Enqueued::Stored);
}

/// A text the customer `wa_id` sent to `n` at `sent_at`.
fn inbound(n: &PhoneNumber, wa_id: &str, wamid: &str, sent_at: Timestamp) -> NewInbound {
    NewInbound {
        id: MessageId::generate(),
        account_id: n.account_id.clone(),
        phone_number_id: n.id.clone(),
        wamid: wamid.into(),
        from: wagate_domain::contact::counterpart(wa_id),
        wa_id: Some(wa_id.into()),
        user_id: None,
        profile_name: Some(format!("name of {wa_id}")),
        kind: "text".into(),
        content: json!({"text": {"body": "thanks"}}),
        reply_to_wamid: None,
        error: None,
        sent_at,
        received_at: sent_at,
    }
}

async fn every(store: &dyn Store, id: &CampaignId) -> Vec<CampaignRecipient> {
    store.list_recipients(id, &RecipientFilter::default(), 1_000).await.unwrap()
}

async fn one(store: &dyn Store, id: &CampaignId, recipient: &str) -> CampaignRecipient {
    every(store, id).await.into_iter().find(|r| r.to == recipient).unwrap_or_else(|| panic!("no {recipient}"))
}

fn numbers(recipients: &[CampaignRecipient]) -> Vec<&str> {
    recipients.iter().map(|r| r.to.as_str()).collect()
}

fn meta_error(code: i64) -> MessageError {
    MessageError {
        code: Some(code),
        title: Some("Message undeliverable".into()),
        message: "Message undeliverable".into(),
        details: None,
        fbtrace_id: Some("AbC".into()),
        reason: None,
    }
}

async fn campaigns_are_written_over_the_revision_read(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let mut c = campaign(&n, "Spring sale", CampaignState::Draft);
    c.rate = Some(20);
    c.max_failure_share = Some(0.25);
    c.send_at = Some(t(3_600_000));
    c.metadata = Some(object(json!({"team": "growth", "budget": 12})));
    let created =
        NewEvent { kind: EventType::CampaignStarted, phone_number_id: Some(n.id.clone()), data: json!({"id": "x"}) };
    assert!(store.save_campaign(&c, None, &[]).await.unwrap());
    assert!(!store.save_campaign(&c, None, std::slice::from_ref(&created)).await.unwrap(), "the id is taken");
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(store.get_campaign(&CampaignId::generate()).await.unwrap(), None);

    // Started: every column written, with its event, over the revision read.
    let mut running = c.clone();
    running.state = CampaignState::Running;
    running.started_at = Some(t(10));
    running.updated_at = t(10);
    running.revision = 2;
    running.rate = None;
    running.metadata = None;
    let started =
        NewEvent { kind: EventType::CampaignStarted, phone_number_id: Some(n.id.clone()), data: json!({"id": c.id}) };
    assert!(store.save_campaign(&running, Some(1), std::slice::from_ref(&started)).await.unwrap());
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), Some(running.clone()));

    // A writer that read revision 1 loses: nothing of its write is kept, its event neither.
    let mut stale = c.clone();
    stale.name = "stale".into();
    stale.state = CampaignState::Canceled;
    stale.revision = 2;
    let canceled = NewEvent { kind: EventType::CampaignCanceled, phone_number_id: None, data: json!({}) };
    assert!(!store.save_campaign(&stale, Some(1), &[canceled]).await.unwrap());
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), Some(running.clone()));
    let kinds: Vec<String> =
        store.list_events(&EventFilter::default(), 100).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["campaign.started"]);

    // Paused, with its reason.
    let mut paused = running.clone();
    paused.state = CampaignState::Paused;
    paused.pause_reason = Some("awaiting_quota".into());
    paused.pause_detail = Some("1,000 customers a day".into());
    paused.resumes_at = Some(t(86_400_000));
    paused.revision = 3;
    assert!(store.save_campaign(&paused, Some(2), &[]).await.unwrap());
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), Some(paused.clone()));
    // An unknown campaign is not written.
    let ghost = Campaign { revision: 2, ..campaign(&n, "ghost", CampaignState::Running) };
    assert!(!store.save_campaign(&ghost, Some(1), &[]).await.unwrap());
    assert_eq!(store.get_campaign(&ghost.id).await.unwrap(), None);
}

async fn campaigns_are_listed_newest_first(store: &dyn Store) {
    let (a, n) = seeded(store).await;
    let other = testing::phone_number(&a, "1002", false, t(0));
    store.update_account(&a, a.updated_at, Some(&[n.clone(), other.clone()])).await.unwrap();
    let mut made = Vec::new();
    for (i, state) in CampaignState::ALL.into_iter().enumerate() {
        let number = if i % 2 == 0 { &n } else { &other };
        made.push(saved(store, number, &format!("c{i}"), state).await);
    }
    let ids = |cs: Vec<Campaign>| cs.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let newest_first: Vec<CampaignId> = made.iter().rev().map(|c| c.id.clone()).collect();
    assert_eq!(ids(store.list_campaigns(&CampaignFilter::default(), 100).await.unwrap()), newest_first);
    assert_eq!(ids(store.list_campaigns(&CampaignFilter::default(), 2).await.unwrap()), newest_first[..2]);
    let before = CampaignFilter { before: Some(newest_first[1].clone()), ..Default::default() };
    assert_eq!(ids(store.list_campaigns(&before, 100).await.unwrap()), newest_first[2..]);
    let running = CampaignFilter { state: Some(CampaignState::Running), ..Default::default() };
    assert_eq!(ids(store.list_campaigns(&running, 100).await.unwrap()), [made[2].id.clone()]);
    let on_other = CampaignFilter { phone_number_id: Some("1002".into()), ..Default::default() };
    let expected: Vec<CampaignId> =
        made.iter().rev().filter(|c| c.phone_number_id == "1002").map(|c| c.id.clone()).collect();
    assert_eq!(ids(store.list_campaigns(&on_other, 100).await.unwrap()), expected);

    // What the worker looks after: scheduled, running and paused.
    let mut active: Vec<CampaignState> = store.active_campaigns().await.unwrap().into_iter().map(|c| c.state).collect();
    active.sort_by_key(|s| s.as_str());
    assert_eq!(active, [CampaignState::Paused, CampaignState::Running, CampaignState::Scheduled]);
}

async fn a_campaign_is_fed_by_one_holder_at_a_time(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let c = saved(store, &n, "lease", CampaignState::Running).await;
    assert!(store.lease_campaign(&c.id, "a", t(0), t(1_000)).await.unwrap());
    assert!(!store.lease_campaign(&c.id, "b", t(500), t(1_500)).await.unwrap(), "a's lease runs");
    assert!(store.lease_campaign(&c.id, "a", t(600), t(2_000)).await.unwrap(), "a renews its own");
    assert!(!store.lease_campaign(&c.id, "b", t(2_000), t(3_000)).await.unwrap(), "until it lapses");
    // Saving the campaign leaves the lease alone.
    let later = Campaign { revision: 2, updated_at: t(1_900), ..c.clone() };
    assert!(store.save_campaign(&later, Some(1), &[]).await.unwrap());
    assert!(!store.lease_campaign(&c.id, "b", t(1_999), t(3_000)).await.unwrap());
    assert!(store.lease_campaign(&c.id, "b", t(2_001), t(3_000)).await.unwrap(), "a's lease lapsed");
    assert!(!store.lease_campaign(&c.id, "a", t(2_002), t(4_000)).await.unwrap());
    assert!(!store.lease_campaign(&CampaignId::generate(), "a", t(0), t(1)).await.unwrap());
}

async fn recipients_are_added_in_order_once(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let c = saved(store, &n, "adds", CampaignState::Draft).await;
    let first = vec![
        NewRecipient { to: to(1), params: Some(json!(["Ana", "20%"])), metadata: Some(object(json!({"crm_id": 7}))) },
        NewRecipient { to: to(2), params: Some(json!({"name": "Bo"})), metadata: None },
        NewRecipient { to: to(1), params: None, metadata: None },
        NewRecipient { to: to(3), params: None, metadata: None },
    ];
    assert_eq!(store.add_recipients(&c.id, &first, t(5)).await.unwrap(), [true, true, false, true]);
    assert_eq!(store.add_recipients(&c.id, &plain(&[to(3), to(4), to(4)]), t(6)).await.unwrap(), [false, true, false]);
    assert!(store.add_recipients(&c.id, &[], t(6)).await.unwrap().is_empty());
    let counted = store.get_campaign(&c.id).await.unwrap().unwrap();
    assert_eq!(counted.duplicates, 3, "the numbers refused are counted on the campaign");
    assert_eq!(counted.revision, c.revision, "without a write of the campaign's own");

    let all = every(store, &c.id).await;
    assert_eq!(numbers(&all), [to(1), to(2), to(3), to(4)]);
    assert_eq!(all.iter().map(|r| r.position).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let ana = &all[0];
    assert_eq!(ana.campaign_id, c.id);
    assert_eq!(ana.params, Some(json!(["Ana", "20%"])), "the first addition is kept");
    assert_eq!(ana.metadata, Some(object(json!({"crm_id": 7}))));
    assert_eq!((ana.state, ana.status), (RecipientState::Pending, RecipientStatus::Pending));
    assert_eq!((ana.attempts, &ana.message_id, &ana.wamid, &ana.error), (0, &None, &None, &None));
    assert_eq!((ana.created_at, ana.updated_at), (t(5), t(5)));
    assert_eq!(all[1].params, Some(json!({"name": "Bo"})));
    assert_eq!(all[3].created_at, t(6));

    // Pages by position.
    let pending = store.pending_recipients(&c.id, 2).await.unwrap();
    assert_eq!(numbers(&pending), [to(1), to(2)]);
    let after = RecipientFilter { status: None, after: Some(2) };
    assert_eq!(numbers(&store.list_recipients(&c.id, &after, 10).await.unwrap()), [to(3), to(4)]);
    let pending_after = RecipientFilter { status: Some(RecipientStatus::Pending), after: Some(3) };
    assert_eq!(numbers(&store.list_recipients(&c.id, &pending_after, 10).await.unwrap()), [to(4)]);

    // An unknown campaign takes nobody.
    assert_eq!(store.add_recipients(&CampaignId::generate(), &plain(&[to(9)]), t(7)).await.unwrap(), [false]);
}

async fn only_pending_recipients_are_removed(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let c = saved(store, &n, "removes", CampaignState::Running).await;
    store.add_recipients(&c.id, &plain(&[to(1), to(2), to(3)]), t(0)).await.unwrap();
    assert_eq!(store.remove_recipient(&c.id, &to(1)).await.unwrap(), RecipientRemoved::Removed);
    assert_eq!(store.remove_recipient(&c.id, &to(1)).await.unwrap(), RecipientRemoved::NotFound);
    assert_eq!(store.queue_recipients(&c.id, &[(to(2), MessageId::generate())], t(1)).await.unwrap(), 1);
    assert_eq!(store.remove_recipient(&c.id, &to(2)).await.unwrap(), RecipientRemoved::AlreadyQueued);
    assert_eq!(store.skip_pending(&c.id, skip::CANCELED, t(2)).await.unwrap(), 1);
    assert_eq!(store.remove_recipient(&c.id, &to(3)).await.unwrap(), RecipientRemoved::AlreadyQueued, "skipped");
    assert_eq!(store.remove_recipient(&c.id, &to(9)).await.unwrap(), RecipientRemoved::NotFound);
    assert_eq!(store.remove_recipient(&CampaignId::generate(), &to(2)).await.unwrap(), RecipientRemoved::NotFound);
    assert_eq!(numbers(&every(store, &c.id).await), [to(2), to(3)]);
    // A removed number may be added again, after the last.
    assert_eq!(store.add_recipients(&c.id, &plain(&[to(1)]), t(3)).await.unwrap(), [true]);
    assert_eq!(one(store, &c.id, &to(1)).await.position, 4);
}

/// A recipient is queued with the id of the message it will be sent as; until that message is
/// stored it is unsent, and a refused send takes it out of `queued`.
async fn queued_recipients_wait_for_their_message(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let c = saved(store, &n, "queue", CampaignState::Running).await;
    let tos: Vec<String> = (1..=5).map(to).collect();
    store.add_recipients(&c.id, &plain(&tos), t(0)).await.unwrap();
    let ids: Vec<MessageId> = tos.iter().map(|_| MessageId::generate()).collect();
    let queued: Vec<(String, MessageId)> = tos.iter().cloned().zip(ids.iter().cloned()).take(4).collect();
    assert_eq!(store.queue_recipients(&c.id, &queued, t(10)).await.unwrap(), 4);
    assert_eq!(
        store.queue_recipients(&c.id, &[(to(1), MessageId::generate())], t(11)).await.unwrap(),
        0,
        "queued already"
    );
    assert_eq!(store.queue_recipients(&c.id, &[], t(11)).await.unwrap(), 0);
    let first = one(store, &c.id, &to(1)).await;
    assert_eq!((first.state, first.status), (RecipientState::Queued, RecipientStatus::Queued));
    assert_eq!((first.message_id.as_ref(), first.attempts, first.updated_at), (Some(&ids[0]), 1, t(10)));
    assert_eq!(numbers(&store.pending_recipients(&c.id, 10).await.unwrap()), [to(5)]);

    // Nothing stored yet: all four are unsent. Once a message is stored with its id, it is not.
    assert_eq!(numbers(&store.unsent_recipients(&c.id, 10).await.unwrap()), [to(1), to(2), to(3), to(4)]);
    assert_eq!(numbers(&store.unsent_recipients(&c.id, 2).await.unwrap()), [to(1), to(2)]);
    enqueue(store, &n, &ids[0], &to(1), t(0)).await;
    assert_eq!(numbers(&store.unsent_recipients(&c.id, 10).await.unwrap()), [to(2), to(3), to(4)]);
    assert_eq!(one(store, &c.id, &to(1)).await.status, RecipientStatus::Queued, "its message is queued");

    // Refused before the queue: the queue was full (given back, the attempt undone), or the send
    // was invalid (skipped for good, with the refusal).
    let invalid = MessageError::gateway("invalid_parameter", "params: 2 values for 1 placeholder");
    let unqueued = [
        (to(2), Unqueue::GiveBack),
        (to(3), Unqueue::Skip { reason: skip::INVALID.into(), error: invalid.clone() }),
        (to(5), Unqueue::GiveBack),
    ];
    store.unqueue_recipients(&c.id, &unqueued, t(20)).await.unwrap();
    store.unqueue_recipients(&c.id, &[], t(20)).await.unwrap();
    let given_back = one(store, &c.id, &to(2)).await;
    assert_eq!((given_back.state, given_back.status), (RecipientState::Pending, RecipientStatus::Pending));
    assert_eq!((given_back.message_id, given_back.attempts, given_back.updated_at), (None, 0, t(20)));
    let skipped = one(store, &c.id, &to(3)).await;
    assert_eq!((skipped.state, skipped.status), (RecipientState::Skipped, RecipientStatus::Skipped));
    assert_eq!((skipped.skip_reason.as_deref(), skipped.error.as_ref()), (Some(skip::INVALID), Some(&invalid)));
    assert_eq!((skipped.message_id, skipped.attempts), (None, 1));
    let untouched = one(store, &c.id, &to(5)).await;
    assert_eq!((untouched.state, untouched.attempts, untouched.updated_at), (RecipientState::Pending, 0, t(0)));
    assert_eq!(numbers(&store.unsent_recipients(&c.id, 10).await.unwrap()), [to(4)]);

    // Skipping what is pending leaves the others.
    assert_eq!(store.skip_pending(&c.id, skip::OPTED_OUT, t(30)).await.unwrap(), 2);
    assert_eq!(store.skip_pending(&c.id, skip::OPTED_OUT, t(31)).await.unwrap(), 0);
    let opted_out = one(store, &c.id, &to(5)).await;
    assert_eq!((opted_out.status, opted_out.skip_reason.as_deref()), (RecipientStatus::Skipped, Some(skip::OPTED_OUT)));
    assert_eq!((opted_out.error, opted_out.updated_at), (None, t(30)));
    assert_eq!(one(store, &c.id, &to(1)).await.state, RecipientState::Queued);
    assert!(store.pending_recipients(&c.id, 10).await.unwrap().is_empty());
}

/// Ten recipients, one in each place a recipient can be; counted, listed by status, replies
/// counted within the window, the failed put back.
async fn recipients_are_counted_by_their_messages(store: &dyn Store) {
    use RecipientStatus::*;
    let (a, n) = seeded(store).await;
    let c = saved(store, &n, "counts", CampaignState::Running).await;
    let tos: Vec<String> = (0..10).map(to).collect();
    store.add_recipients(&c.id, &plain(&tos), t(0)).await.unwrap();
    let ids: Vec<MessageId> = tos.iter().map(|_| MessageId::generate()).collect();
    let queued: Vec<(String, MessageId)> =
        [0, 1, 2, 3, 4, 5, 6, 7, 9].into_iter().map(|i| (tos[i].clone(), ids[i].clone())).collect();
    assert_eq!(store.queue_recipients(&c.id, &queued, t(1)).await.unwrap(), 9);
    // 0–4 go now; 5 and 9 are scheduled; 6's message was never stored; 7 is refused; 8 waits.
    for i in 0..5 {
        enqueue(store, &n, &ids[i], &tos[i], t(0)).await;
    }
    for i in [5, 9] {
        enqueue(store, &n, &ids[i], &tos[i], t(1_000_000)).await;
    }
    let invalid = MessageError::gateway("invalid_parameter", "no such placeholder");
    let refused = [(tos[7].clone(), Unqueue::Skip { reason: skip::INVALID.into(), error: invalid })];
    store.unqueue_recipients(&c.id, &refused, t(2)).await.unwrap();
    let cancel = MessageError::gateway("canceled", "the campaign was canceled");
    assert!(store.cancel_unclaimed(&ids[9], &cancel, t(3)).await.unwrap());

    let claimed = store.outbox().claim(t(1), t(60_000), 100).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let network = MessageError::gateway("network_error", "connection reset");
    for d in &claimed {
        let i = ids.iter().position(|id| *id == d.message_id).unwrap();
        let wamid = format!("wamid.C{i}");
        let response = json!({"messages": [{"id": wamid}]});
        match i {
            0..=2 => assert!(store.record_accepted(d, &wamid, &response, t(4)).await.unwrap()),
            3 => assert!(store.record_failed(d, &meta_error(131026), None, t(4)).await.unwrap()),
            _ => assert!(store.record_failed(d, &network, None, t(4)).await.unwrap()),
        }
    }
    let status = |wamid: &str, s| testing::status_update(&a.id, wamid, s, 5);
    store.apply_status(&status("wamid.C1", DeliveryStatus::Delivered), t(6)).await.unwrap();
    store.apply_status(&status("wamid.C2", DeliveryStatus::Read), t(6)).await.unwrap();

    let counts = store.count_recipients(&c.id, 60_000).await.unwrap();
    let row = |status, reason: Option<&str>, count| CountRow { status, reason: reason.map(Into::into), count };
    assert_eq!(
        counts.rows,
        [
            row(Pending, None, 1),
            row(Queued, None, 2),
            row(Accepted, None, 1),
            row(Delivered, None, 1),
            row(Read, None, 1),
            row(Failed, Some("131026"), 1),
            row(Failed, Some("network_error"), 1),
            row(Skipped, Some(skip::CANCELED), 1),
            row(Skipped, Some(skip::INVALID), 1),
        ]
    );
    assert_eq!(counts.total(), 10);
    for s in RecipientStatus::ALL {
        let filter = RecipientFilter { status: Some(s), after: None };
        let listed = store.list_recipients(&c.id, &filter, 100).await.unwrap();
        assert_eq!(listed.len() as i64, counts.of(s), "{s}");
        assert!(listed.iter().all(|r| r.status == s), "{s}: {listed:?}");
    }

    // What each shows of its message.
    let all = every(store, &c.id).await;
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Accepted, Delivered, Read, Failed, Failed, Queued, Queued, Skipped, Pending, Skipped]
    );
    assert_eq!(all[0].wamid.as_deref(), Some("wamid.C0"));
    assert_eq!((all[0].message_id.as_ref(), all[0].attempts), (Some(&ids[0]), 1));
    assert_eq!(all[3].error, Some(meta_error(131026)));
    assert_eq!(
        (all[3].state, all[3].wamid.as_deref(), all[3].skip_reason.as_deref()),
        (RecipientState::Queued, None, None)
    );
    assert_eq!(all[4].error.as_ref().and_then(|e| e.reason.as_deref()), Some("network_error"));
    assert_eq!((all[9].state, all[9].skip_reason.as_deref()), (RecipientState::Queued, Some(skip::CANCELED)));
    assert_eq!(all[9].error.as_ref().and_then(|e| e.reason.as_deref()), Some("canceled"));
    assert_eq!(all[7].skip_reason.as_deref(), Some(skip::INVALID));
    assert!(all[0].error.is_none() && all[8].error.is_none());

    // Replies: 1 wrote back 5 s after its message, 2 after 3 hours, 8 (never sent) too.
    let digits = |i: usize| tos[i].trim_start_matches('+').to_owned();
    store.record_inbound(&inbound(&n, &digits(1), "wamid.R1", t(5_000))).await.unwrap();
    store.record_inbound(&inbound(&n, &digits(2), "wamid.R2", t(10_800_000))).await.unwrap();
    store.record_inbound(&inbound(&n, &digits(8), "wamid.R8", t(5_000))).await.unwrap();
    assert_eq!(store.count_recipients(&c.id, 60_000).await.unwrap().replied, 1);
    assert_eq!(store.count_recipients(&c.id, 86_400_000).await.unwrap().replied, 2);
    assert_eq!(store.count_recipients(&c.id, i64::MAX).await.unwrap().replied, 2);
    assert_eq!(store.count_recipients(&c.id, 1_000).await.unwrap().replied, 0);

    // Retrying: the failed named go back to pending (their attempts kept), no one else.
    let retry = [tos[3].clone(), tos[4].clone(), tos[0].clone(), tos[8].clone(), to(99)];
    assert_eq!(store.requeue_failed(&c.id, &retry, t(7)).await.unwrap(), 2);
    assert_eq!(store.requeue_failed(&c.id, &retry, t(8)).await.unwrap(), 0);
    assert_eq!(store.requeue_failed(&c.id, &[], t(8)).await.unwrap(), 0);
    let again = one(store, &c.id, &tos[3]).await;
    assert_eq!(
        (again.state, again.status, again.message_id, again.attempts),
        (RecipientState::Pending, Pending, None, 1)
    );
    assert_eq!((again.error, again.updated_at), (None, t(7)));
    let counts = store.count_recipients(&c.id, 60_000).await.unwrap();
    assert_eq!((counts.of(Pending), counts.of(Failed), counts.total()), (3, 0, 10));
    assert_eq!(numbers(&store.pending_recipients(&c.id, 10).await.unwrap()), [&tos[3], &tos[4], &tos[8]]);

    // An unknown campaign has nobody.
    assert_eq!(store.count_recipients(&CampaignId::generate(), 60_000).await.unwrap(), RecipientCounts::default());
}

async fn windows_and_queue_depth(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    store.record_inbound(&inbound(&n, "15550001111", "wamid.W1", t(1_000))).await.unwrap();
    store.record_inbound(&inbound(&n, "15550002222", "wamid.W2", t(5_000))).await.unwrap();
    let customers = ["+15550001111".to_owned(), "+15550002222".to_owned(), "+15550003333".to_owned()];
    let mut open = store.customers_in_window(&n.id, &customers, t(0)).await.unwrap();
    open.sort();
    assert_eq!(open, ["+15550001111", "+15550002222"]);
    assert_eq!(store.customers_in_window(&n.id, &customers, t(5_000)).await.unwrap(), ["+15550002222"]);
    assert!(store.customers_in_window(&n.id, &customers, t(5_001)).await.unwrap().is_empty());
    assert!(store.customers_in_window("9999", &customers, t(0)).await.unwrap().is_empty());
    assert!(store.customers_in_window(&n.id, &[], t(0)).await.unwrap().is_empty());

    // Due messages count until they are handed to Meta, those being sent included.
    for i in 0..2 {
        enqueue(store, &n, &MessageId::generate(), &to(i), t(0)).await;
    }
    enqueue(store, &n, &MessageId::generate(), &to(2), t(100_000)).await;
    assert_eq!(store.due_in_outbox(&n.id, t(10)).await.unwrap(), 2);
    let d = store.outbox().claim(t(10), t(60_000), 1).await.unwrap().pop().unwrap();
    assert_eq!(store.due_in_outbox(&n.id, t(10)).await.unwrap(), 2, "being sent");
    assert!(store.record_accepted(&d, "wamid.D", &json!({"messages": [{"id": "wamid.D"}]}), t(11)).await.unwrap());
    assert_eq!(store.due_in_outbox(&n.id, t(12)).await.unwrap(), 1);
    assert_eq!(store.due_in_outbox(&n.id, t(100_000)).await.unwrap(), 2, "the scheduled one is due");
    assert_eq!(store.due_in_outbox("9999", t(100_000)).await.unwrap(), 0);
}

async fn progress_events_are_stored(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let events = [
        NewEvent { kind: EventType::CampaignProgress, phone_number_id: Some(n.id.clone()), data: json!({"sent": 10}) },
        NewEvent { kind: EventType::CampaignCompleted, phone_number_id: Some(n.id.clone()), data: json!({"sent": 12}) },
    ];
    store.emit_events(&events, t(40)).await.unwrap();
    store.emit_events(&[], t(41)).await.unwrap();
    let listed = store.list_events(&EventFilter::default(), 10).await.unwrap();
    let seen: Vec<(&str, &Value, Timestamp)> =
        listed.iter().map(|e| (e.kind.as_str(), &e.data, e.created_at)).collect();
    assert_eq!(
        seen,
        [("campaign.completed", &json!({"sent": 12}), t(40)), ("campaign.progress", &json!({"sent": 10}), t(40))]
    );
    assert_eq!(listed[0].phone_number_id.as_deref(), Some("1001"));
}

async fn contacts_are_found_by_their_numbers(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    for (i, wa_id) in ["15550001111", "15550002222", "15550003333"].into_iter().enumerate() {
        store.record_inbound(&inbound(&n, wa_id, &format!("wamid.K{i}"), t(1_000))).await.unwrap();
    }
    let tagged = store.get_contact_by_wa_id("15550001111").await.unwrap().unwrap();
    let tags =
        ContactUpdate { attributes: None, tags: Some(vec!["vip".into()]), marketing_opt_out: None, at: t(2_000) };
    store.update_contact(&tagged.id, &tags).await.unwrap();

    let asked =
        ["15550003333".to_owned(), "15550001111".to_owned(), "15559999999".to_owned(), "15550001111".to_owned()];
    let mut found = store.contacts_by_wa_ids(&asked).await.unwrap();
    found.sort_by(|a, b| a.wa_id.cmp(&b.wa_id));
    let wa_ids: Vec<Option<&str>> = found.iter().map(|c| c.wa_id.as_deref()).collect();
    assert_eq!(wa_ids, [Some("15550001111"), Some("15550003333")]);
    assert_eq!(found[0], store.get_contact(&tagged.id).await.unwrap().unwrap());
    assert_eq!(found[0].tags, ["vip"]);
    assert!(store.contacts_by_wa_ids(&[]).await.unwrap().is_empty());
}

/// What a business pastes into a list comes back as it went in: right-to-left marks, emoji,
/// scripts, long values. A NUL byte is refused or kept, never a panic.
async fn odd_text_round_trips(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let long = "ß\u{200F}ﷺ".repeat(2_000);
    let mut c = campaign(&n, "\u{202E}tnemom \u{1F44B}\u{1F3FD} حملة 春", CampaignState::Draft);
    c.template =
        json!({"name": "t", "language": "ar", "params": [long.clone()], "header": {"text": "\u{FEFF}\u{0301}"}});
    c.metadata = Some(object(json!({"\u{1F600}": "\u{200D}\u{1F468}\u{200D}\u{1F469}", "nul": "a\u{0}b"})));
    c.pause_detail = Some("\u{2066}isolate\u{2069} 'quotes' \"double\" \\back; DROP TABLE campaigns; --".into());
    assert!(store.save_campaign(&c, None, &[]).await.unwrap());
    assert_eq!(store.get_campaign(&c.id).await.unwrap(), Some(c.clone()));

    let ten_kb = "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}x".repeat(700);
    assert!(ten_kb.len() > 10_000);
    let odd = NewRecipient {
        to: to(1),
        params: Some(json!({"1": "\u{200F}مرحبا\u{200E} 👋🏽", "2": ten_kb, "3": "line\nbreak\ttab \u{0}", "4": null})),
        metadata: Some(object(
            json!({"\u{202E}key": ["\u{1F1FA}\u{1F1F8}", 1.5, {"deep": "\u{10FFFF}"}], "big": long}),
        )),
    };
    assert_eq!(store.add_recipients(&c.id, std::slice::from_ref(&odd), t(1)).await.unwrap(), [true]);
    let got = one(store, &c.id, &to(1)).await;
    assert_eq!((got.params, got.metadata), (odd.params.clone(), odd.metadata.clone()));

    // Text the databases may refuse (PostgreSQL takes no NUL in text): an error or stored.
    let nul = NewRecipient { to: "+1555\u{0}0102".into(), params: None, metadata: None };
    match store.add_recipients(&c.id, &[nul], t(2)).await {
        Ok(added) => assert_eq!(added, [true]),
        Err(e) => assert_eq!(store.backend(), Backend::Postgres, "{e}"),
    }
    let named = Campaign { id: CampaignId::generate(), name: "a\u{0}b".into(), ..c.clone() };
    if let Ok(saved) = store.save_campaign(&named, None, &[]).await {
        assert!(saved);
        assert_eq!(store.get_campaign(&named.id).await.unwrap().unwrap().name, "a\u{0}b");
    }
    let _ = store.remove_recipient(&c.id, "\u{0}").await;
    let _ = store.customers_in_window(&n.id, &["+1\u{0}".to_owned(), "\"],[".to_owned()], t(0)).await;
    let _ = store.contacts_by_wa_ids(&["1\u{0}".to_owned(), "'); --".to_owned()]).await;
    // And the store goes on.
    assert_eq!(store.add_recipients(&c.id, &plain(&[to(2)]), t(3)).await.unwrap(), [true]);
    assert_eq!(one(store, &c.id, &to(1)).await.params, odd.params);
}

/// A list of 10,000 is added in one call, and another half overlapping it.
async fn ten_thousand_recipients_at_once(store: &dyn Store) {
    let (_, n) = seeded(store).await;
    let c = saved(store, &n, "big", CampaignState::Draft).await;
    let batch = |from: usize| -> Vec<NewRecipient> {
        (from..from + 10_000)
            .map(|i| NewRecipient {
                to: format!("+4477009{i:05}"),
                params: Some(json!([format!("customer {i}")])),
                metadata: None,
            })
            .collect()
    };
    let started = Instant::now();
    let added = store.add_recipients(&c.id, &batch(0), t(1)).await.unwrap();
    eprintln!("{:?}: 10,000 recipients added in {:?}", store.backend(), started.elapsed());
    assert!(added.iter().all(|a| *a));
    let started = Instant::now();
    let added = store.add_recipients(&c.id, &batch(5_000), t(2)).await.unwrap();
    eprintln!("{:?}: 10,000 more, half known, in {:?}", store.backend(), started.elapsed());
    assert_eq!(added.iter().filter(|a| **a).count(), 5_000);
    assert!(added[..5_000].iter().all(|a| !a) && added[5_000..].iter().all(|a| *a));

    let counts = store.count_recipients(&c.id, 60_000).await.unwrap();
    assert_eq!(counts.rows, [CountRow { status: RecipientStatus::Pending, reason: None, count: 15_000 }]);
    let last = RecipientFilter { status: None, after: Some(14_998) };
    let tail = store.list_recipients(&c.id, &last, 10).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| (r.position, r.to.as_str())).collect::<Vec<_>>(),
        [(14_999, "+447700914998"), (15_000, "+447700914999")]
    );
    let customers: Vec<String> = (0..10_000).map(|i| format!("+4477009{i:05}")).collect();
    assert!(store.customers_in_window(&n.id, &customers, t(0)).await.unwrap().is_empty());
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

            case!(campaigns_are_written_over_the_revision_read);
            case!(campaigns_are_listed_newest_first);
            case!(a_campaign_is_fed_by_one_holder_at_a_time);
            case!(recipients_are_added_in_order_once);
            case!(only_pending_recipients_are_removed);
            case!(queued_recipients_wait_for_their_message);
            case!(recipients_are_counted_by_their_messages);
            case!(windows_and_queue_depth);
            case!(progress_events_are_stored);
            case!(contacts_are_found_by_their_numbers);
            case!(odd_text_round_trips);
            case!(ten_thousand_recipients_at_once);
        }
    };
}

suite!(sqlite, Backend::Sqlite);
suite!(postgres, Backend::Postgres);
