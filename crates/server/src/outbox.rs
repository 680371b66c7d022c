//! This instance's hold on the outbox: how many messages wait (what backpressure compares with
//! `dispatcher.max_backlog`), the wake-ups of each number's dispatcher, the news of each send's
//! result for whoever waits on it, and the epoch of sending settings. The rows themselves are in
//! storage; this is what the instance knows between reads.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};
use wagate_domain::id::MessageId;
use wagate_domain::message::MessageError;
use wagate_domain::status::MessageStatus;
use wagate_domain::time::Timestamp;
use wagate_storage::Store;

use crate::services::ServiceError;

/// How many messages had been queued when a count of the queue started.
#[derive(Clone, Copy, Debug)]
pub struct CountMark(i64);

pub struct Outbox {
    /// Messages waiting to be sent, as last counted plus those accepted since, less those that
    /// left the queue since.
    backlog: AtomicI64,
    /// Messages ever queued by this instance: what a count running meanwhile may have missed.
    queued_total: AtomicI64,
    max_backlog: i64,
    wakeups: Wakeups,
    /// Ids of messages whose send result was just recorded, for callers waiting on one.
    completions: broadcast::Sender<MessageId>,
    /// Bumped when a number's or an account's settings change through the API, so this
    /// instance's number workers and caches reread them at once (other instances do within a
    /// second or two).
    settings_epoch: AtomicU64,
}

impl Outbox {
    /// `max_backlog`: `dispatcher.max_backlog`.
    pub fn new(max_backlog: u64) -> Self {
        Self {
            backlog: AtomicI64::new(0),
            queued_total: AtomicI64::new(0),
            max_backlog: i64::try_from(max_backlog).unwrap_or(i64::MAX),
            wakeups: Wakeups::default(),
            // Waiters that fall behind read the database instead; the channel only saves time.
            completions: broadcast::channel(1024).0,
            settings_epoch: AtomicU64::new(0),
        }
    }

    /// Room for another message, or the backlog that leaves none.
    pub fn check_room(&self) -> Result<(), i64> {
        let backlog = self.backlog.load(Ordering::Relaxed);
        if backlog >= self.max_backlog { Err(backlog) } else { Ok(()) }
    }

    /// A message was queued from `phone_number_id`: counted, and the number's dispatcher woken.
    pub fn queued(&self, phone_number_id: &str) {
        self.queued_total.fetch_add(1, Ordering::Relaxed);
        self.backlog.fetch_add(1, Ordering::Relaxed);
        self.wakeups.of(phone_number_id).notify_one();
    }

    /// A message left the queue for good (accepted by Meta, failed, cancelled, expired): no
    /// longer counted, and whoever waits on it is told.
    pub fn left(&self, id: &MessageId) {
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        self.recorded(id);
    }

    /// A send's result was recorded, whatever it was: whoever waits on the message is told.
    pub fn recorded(&self, id: &MessageId) {
        // Nobody waiting is fine: the result is stored either way.
        let _ = self.completions.send(id.clone());
    }

    /// Taken before counting the queue, for [`Self::counted`].
    pub fn count_started(&self) -> CountMark {
        CountMark(self.queued_total.load(Ordering::Relaxed))
    }

    /// The queue as just counted (by the janitor): the backlog starts again from it, plus the
    /// messages queued while it was counted, which the count may not have seen. It errs high
    /// (a message both counted and added, one that left while counted) until the next count,
    /// never low: backpressure refuses a little early rather than lets the queue past its limit.
    pub fn counted(&self, waiting: i64, started: CountMark) {
        let since = self.queued_total.load(Ordering::Relaxed) - started.0;
        self.backlog.store(waiting + since.max(0), Ordering::Relaxed);
    }

    /// What wakes the dispatcher of `phone_number_id`.
    pub fn wakeup_of(&self, phone_number_id: &str) -> Arc<Notify> {
        self.wakeups.of(phone_number_id)
    }

    pub fn settings_epoch(&self) -> u64 {
        self.settings_epoch.load(Ordering::Relaxed)
    }

    /// Sending settings changed through the API: every number worker rereads its number and
    /// account, and those of `numbers` are woken to do it now.
    pub fn settings_changed<'a>(&self, numbers: impl IntoIterator<Item = &'a str>) {
        self.settings_epoch.fetch_add(1, Ordering::Relaxed);
        for n in numbers {
            self.wakeups.of(n).notify_one();
        }
    }

    /// Waits, at most about `wait`, for the dispatcher to hand message `id` to Meta. A message not
    /// yet handed over when the time is up is cancelled (so a client's retry cannot send it twice);
    /// one being handed over is waited for until its result is known.
    pub async fn wait_for_dispatch(
        &self,
        store: &dyn Store,
        id: &MessageId,
        wait: Duration,
    ) -> Result<DispatchOutcome, ServiceError> {
        let mut done = self.completions.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(outcome) = outcome(store, id).await? {
                return Ok(outcome);
            }
            if tokio::time::Instant::now() >= deadline {
                let reason = MessageError::gateway(
                    "not_dispatched_in_time",
                    format!(
                        "not handed to Meta within {} ms; cancelled so a retry cannot send it twice",
                        wait.as_millis()
                    ),
                );
                if store.cancel_unclaimed(id, &reason, Timestamp::now()).await? {
                    self.left(id);
                    return Ok(DispatchOutcome::Cancelled);
                }
            }
            let tick = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    _ = &mut tick => break,
                    got = done.recv() => match got {
                        Ok(done_id) if &done_id == id => break,
                        Ok(_) => {}
                        // Lagged or closed: the database is the truth; read it at the next tick.
                        Err(_) => {
                            (&mut tick).await;
                            break;
                        }
                    },
                }
            }
        }
    }
}

/// One `Notify` per business number, made on first use.
#[derive(Default)]
struct Wakeups {
    numbers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakeups {
    fn of(&self, phone_number_id: &str) -> Arc<Notify> {
        let mut numbers = self.numbers.lock().unwrap_or_else(|e| e.into_inner());
        numbers.entry(phone_number_id.to_owned()).or_default().clone()
    }
}

/// How a send made through the Meta-compatible surface ended, in Meta's terms.
pub enum DispatchOutcome {
    /// Meta's answer to the send.
    Accepted(Value),
    /// Meta's error answer (HTTP status and body), or none when the gateway gave up itself.
    Failed { status: u16, body: Option<Value>, error: Option<MessageError> },
    /// Not handed to Meta in time, and cancelled: nothing was sent.
    Cancelled,
}

async fn outcome(store: &dyn Store, id: &MessageId) -> Result<Option<DispatchOutcome>, ServiceError> {
    let Some(message) = store.get_message(id).await? else {
        return Err(ServiceError::not_found("message", id.as_str()));
    };
    let entry = |status: MessageStatus| async move {
        let history = store.message_history(id).await?;
        Ok::<_, ServiceError>(history.into_iter().find(|e| e.status == status))
    };
    Ok(match message.status {
        MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Scheduled => None,
        MessageStatus::Canceled => Some(DispatchOutcome::Cancelled),
        MessageStatus::Failed if message.wamid.is_none() => {
            let answer = entry(MessageStatus::Failed).await?.and_then(|e| e.detail);
            let status = answer.as_ref().and_then(|a| a["status"].as_u64()).unwrap_or(500) as u16;
            Some(DispatchOutcome::Failed { status, body: answer.map(|a| a["body"].clone()), error: message.error })
        }
        _ => {
            // Meta took it; whatever happened since (even a `failed` webhook) is not the send's answer.
            let answer = entry(MessageStatus::Accepted).await?.and_then(|e| e.detail);
            let wamid = message.wamid.unwrap_or_default();
            Some(DispatchOutcome::Accepted(answer.unwrap_or_else(|| {
                json!({"messaging_product": "whatsapp", "contacts": [{"input": message.counterpart}], "messages": [{"id": wamid}]})
            })))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_refuses_at_the_limit_and_starts_again_from_each_count() {
        let outbox = Outbox::new(2);
        let id = MessageId::generate();
        outbox.queued("1");
        assert_eq!(outbox.check_room(), Ok(()));
        outbox.queued("1");
        assert_eq!(outbox.check_room(), Err(2));
        outbox.left(&id);
        assert_eq!(outbox.check_room(), Ok(()));
        let mark = outbox.count_started();
        outbox.counted(5, mark);
        assert_eq!(outbox.check_room(), Err(5));
    }

    #[test]
    fn a_message_queued_while_the_queue_is_counted_is_not_lost_from_the_backlog() {
        let outbox = Outbox::new(3);
        outbox.queued("1");
        outbox.queued("1");
        // The count reads two rows; the third message commits and is queued before the count
        // is stored.
        let mark = outbox.count_started();
        outbox.queued("1");
        outbox.counted(2, mark);
        assert_eq!(outbox.check_room(), Err(3));
    }

    #[tokio::test]
    async fn queueing_wakes_the_number_and_a_settings_change_moves_the_epoch() {
        let outbox = Outbox::new(10);
        let wake = outbox.wakeup_of("1");
        outbox.queued("1");
        tokio::time::timeout(Duration::from_secs(1), wake.notified()).await.expect("woken");
        let epoch = outbox.settings_epoch();
        outbox.settings_changed(["1"]);
        assert_eq!(outbox.settings_epoch(), epoch + 1);
        tokio::time::timeout(Duration::from_secs(1), wake.notified()).await.expect("woken again");
    }
}
