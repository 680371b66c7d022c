//! Background workers. Each runs until the shared cancellation token fires, then finishes what
//! it holds; anything it cannot finish stays leased and is claimed again after restart.

pub mod campaigns;
pub mod dispatcher;
pub mod events;
pub mod inbound;
pub mod janitor;
pub mod jobs;
pub mod media;
pub mod templates;

use wagate_domain::retry::{Retry, RetryPolicy};
use wagate_domain::time::Timestamp;

/// What `policy` says after `attempts` (as stored) of work first tried at `first_attempt_at`
/// have failed, the last one at `now`.
pub fn retry(policy: &RetryPolicy, attempts: i64, first_attempt_at: Timestamp, now: Timestamp) -> Retry {
    let attempts = attempts.clamp(0, u32::MAX.into()) as u32;
    // Without the system's randomness, no jitter: the whole delay.
    let random = getrandom::u32().unwrap_or(u32::MAX);
    policy.after(attempts, first_attempt_at, now, random)
}
