//! Meta's customer-service window: a customer's message opens it for 24 hours; while it is open
//! the business may send any message, after it only templates (Meta fails anything else with
//! 131047). Messaging limits count over the same 24 hours, moving.

use std::time::Duration;

use crate::time::Timestamp;

/// How long a customer's message keeps the window open.
pub const WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// When the window opened by a customer's message at `last_inbound` closes.
pub fn closes_at(last_inbound: Timestamp) -> Timestamp {
    last_inbound.plus(WINDOW)
}

/// Whether a message at `at` is inside the window opened by the customer's latest message
/// (none: the customer never wrote). Open for less than [`WINDOW`]: at exactly 24 hours it has
/// closed.
pub fn is_open(last_inbound: Option<Timestamp>, at: Timestamp) -> bool {
    last_inbound.is_some_and(|t| at < closes_at(t))
}

/// Whether wagate has seen a number's webhooks (since `webhooks_since`) for at least a window,
/// and so would know of every customer message that keeps a window open at `now`. Before that a
/// customer may have written before wagate listened.
pub fn knows_windows(webhooks_since: Option<Timestamp>, now: Timestamp) -> bool {
    webhooks_since.is_some_and(|since| now >= since.plus(WINDOW))
}

/// The start (inclusive) of the moving 24 hours over which Meta counts the unique users a
/// business reached outside their windows against its messaging tier.
pub fn messaging_limit_since(now: Timestamp) -> Timestamp {
    now.minus(WINDOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 60 * 60 * 1000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_750_000_000_000 + ms)
    }

    #[test]
    fn the_window_closes_at_exactly_24_hours() {
        let wrote = at(0);
        assert!(is_open(Some(wrote), wrote));
        assert!(is_open(Some(wrote), at(24 * HOUR_MS - 1)));
        assert!(!is_open(Some(wrote), at(24 * HOUR_MS)), "closed at exactly 24 h");
        assert!(!is_open(Some(wrote), at(25 * HOUR_MS)));
        assert!(!is_open(None, wrote), "a customer who never wrote opened no window");
        assert_eq!(closes_at(wrote), at(24 * HOUR_MS));
    }

    #[test]
    fn a_message_stamped_before_the_customers_is_inside() {
        // Meta's clock and ours differ: a customer's message may carry a later time than a send.
        assert!(is_open(Some(at(HOUR_MS)), at(0)));
    }

    #[test]
    fn windows_are_known_after_a_window_of_webhooks() {
        let since = at(0);
        assert!(!knows_windows(None, at(48 * HOUR_MS)));
        assert!(!knows_windows(Some(since), at(24 * HOUR_MS - 1)));
        assert!(knows_windows(Some(since), at(24 * HOUR_MS)), "known at exactly 24 h");
        assert!(knows_windows(Some(since), at(30 * HOUR_MS)));
    }

    #[test]
    fn the_messaging_limit_counts_the_last_24_hours() {
        assert_eq!(messaging_limit_since(at(24 * HOUR_MS)), at(0));
    }
}
