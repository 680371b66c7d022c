//! The durable queue every kind of background work runs on: webhook deliveries to process,
//! media to download, messages to send. An item is claimed under a lease; the holder completes
//! it, retries it at a later time or gives it up. A lease that lapses (its holder died) makes
//! the item claimable again, so nothing is lost and an item is worked on by one holder at a time.
//! When to retry and when to give up is the caller's `RetryPolicy` (in the domain); how an item
//! completes is its queue's own (a delivery's statuses applied, a file stored, a wamid recorded).

use std::ops::Deref;

use async_trait::async_trait;
use wagate_domain::time::Timestamp;

use crate::Result;

/// An item claimed from a queue: held under `lease` until `lease_until`.
#[derive(Clone, Debug, PartialEq)]
pub struct Leased<T> {
    pub item: T,
    /// Proof of the lease: only its holder's writes take effect.
    pub lease: String,
    pub lease_until: Timestamp,
    /// Claims of the item so far, this one included.
    pub attempts: i64,
}

impl<T> Deref for Leased<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.item
    }
}

/// A durable queue of `T`s, whose failures are recorded as `E`.
#[async_trait]
pub trait LeasedQueue<T: Send + Sync, E: ?Sized + Sync = str>: Send + Sync {
    /// Leases up to `limit` items due at `now` until `lease_until`, oldest due first, counting
    /// an attempt on each.
    async fn claim(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Leased<T>>>;
    /// The attempt failed for now: the item is due again at `due_at`, with `error` as its last.
    /// False when the lease was lost (another holder has the item).
    async fn retry(&self, item: &Leased<T>, due_at: Timestamp, error: &E, at: Timestamp) -> Result<bool>;
    /// The item failed for good with `error`. False when the lease was lost.
    async fn give_up(&self, item: &Leased<T>, error: &E, at: Timestamp) -> Result<bool>;
    /// Items not done yet: due, waiting for a retry, or leased.
    async fn pending(&self) -> Result<i64>;
}
