//! The background flows' wake-ups: the receiver wakes the processor when it stores a delivery,
//! the processor wakes the media downloader when it records media, and tells whoever waits for
//! an inbound message that it is applied; fan-out tells the event deliverer and the live
//! streams that new events are stored.

use tokio::sync::futures::Notified;
use tokio::sync::{Notify, broadcast, watch};

pub struct Signals {
    delivery_stored: Notify,
    media_recorded: Notify,
    /// Wamids of inbound messages just written (or applied, for system messages); sent only
    /// while someone listens.
    inbound_applied: broadcast::Sender<String>,
    /// Bumped each time fan-out finds new events.
    events_found: watch::Sender<u64>,
    event_deliveries_queued: Notify,
    /// Request ids of groups Meta just announced; sent only while someone listens.
    group_announced: broadcast::Sender<String>,
    job_queued: Notify,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            delivery_stored: Notify::new(),
            media_recorded: Notify::new(),
            inbound_applied: broadcast::channel(1024).0,
            events_found: watch::channel(0).0,
            event_deliveries_queued: Notify::new(),
            group_announced: broadcast::channel(64).0,
            job_queued: Notify::new(),
        }
    }
}

impl Signals {
    /// A webhook delivery was stored: the processor takes it now, or when it next waits.
    pub fn delivery_stored(&self) {
        self.delivery_stored.notify_one();
    }

    pub fn next_delivery_stored(&self) -> Notified<'_> {
        self.delivery_stored.notified()
    }

    /// A job was queued: the job worker takes it now, or when it next waits.
    pub fn job_queued(&self) {
        self.job_queued.notify_one();
    }

    pub fn next_job_queued(&self) -> Notified<'_> {
        self.job_queued.notified()
    }

    /// Media was recorded to download: the downloader claims it now, or when it next waits.
    pub fn media_recorded(&self) {
        self.media_recorded.notify_one();
    }

    pub fn next_media_recorded(&self) -> Notified<'_> {
        self.media_recorded.notified()
    }

    /// The inbound message `wamid` is stored, its window open (see
    /// `sandbox_mode::answer_once_applied`).
    pub fn inbound_applied(&self, wamid: &str) {
        if self.inbound_applied.receiver_count() > 0 {
            let _ = self.inbound_applied.send(wamid.to_owned());
        }
    }

    /// Wamids of inbound messages applied from now on.
    pub fn watch_inbound_applied(&self) -> broadcast::Receiver<String> {
        self.inbound_applied.subscribe()
    }

    /// New events are stored and fanned out: their deliveries are queued, and live streams
    /// have more to read.
    pub fn events_found(&self) {
        self.events_found.send_modify(|n| *n = n.wrapping_add(1));
        self.event_deliveries_queued.notify_one();
    }

    /// Deliveries were queued other than by fan-out (a replay, a test event).
    pub fn event_deliveries_queued(&self) {
        self.event_deliveries_queued.notify_one();
    }

    pub fn next_event_deliveries_queued(&self) -> Notified<'_> {
        self.event_deliveries_queued.notified()
    }

    /// Meta announced the group of creation request `request_id`, and it is stored.
    pub fn group_announced(&self, request_id: &str) {
        if self.group_announced.receiver_count() > 0 {
            let _ = self.group_announced.send(request_id.to_owned());
        }
    }

    /// Request ids of groups announced from now on.
    pub fn watch_group_announced(&self) -> broadcast::Receiver<String> {
        self.group_announced.subscribe()
    }

    /// Changes each time new events are found.
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.events_found.subscribe()
    }
}
