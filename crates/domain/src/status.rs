//! Message statuses and the rules that fold Meta's status webhooks into a current status.
//!
//! Meta delivers statuses more than once and in any order (`read` before `delivered`, `sent`
//! before the send's own response). The current status is therefore a function of the *set* of
//! statuses seen, never of their arrival order: see [`current_status`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a message is in its life. Outbound: `scheduled`/`queued` → `sending` → `accepted`
/// (Meta returned a wamid) → `sent` → `delivered` → `read` (→ `played`), or `failed`/`canceled`.
/// Inbound messages are `received`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Scheduled,
    Queued,
    Sending,
    Accepted,
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
    Canceled,
    Received,
}

impl MessageStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Received => "received",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => Self::Scheduled,
            "queued" => Self::Queued,
            "sending" => Self::Sending,
            "accepted" => Self::Accepted,
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            "canceled" => Self::Canceled,
            "received" => Self::Received,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status Meta reports by webhook for a message it accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    pub const fn as_status(self) -> MessageStatus {
        match self {
            Self::Sent => MessageStatus::Sent,
            Self::Delivered => MessageStatus::Delivered,
            Self::Read => MessageStatus::Read,
            Self::Played => MessageStatus::Played,
            Self::Failed => MessageStatus::Failed,
        }
    }

    /// Rank of progress; `failed` has none (it is decided by [`current_status`]).
    const fn rank(self) -> Option<u8> {
        match self {
            Self::Sent => Some(1),
            Self::Delivered => Some(2),
            Self::Read => Some(3),
            Self::Played => Some(4),
            Self::Failed => None,
        }
    }

    /// Meta skips `delivered` when a message is read at once; `read` and `played` imply it.
    pub const fn implies_delivered(self) -> bool {
        matches!(self, Self::Read | Self::Played)
    }
}

/// The current status of a message Meta accepted, given every delivery status seen for it.
///
/// Later ranks never go back. `failed` wins over a message that has not passed `sent`; after
/// `delivered` it is only history.
pub fn current_status(seen: impl IntoIterator<Item = DeliveryStatus>) -> MessageStatus {
    let mut best: Option<DeliveryStatus> = None;
    let mut failed = false;
    for s in seen {
        match s.rank() {
            None => failed = true,
            Some(r) => {
                if best.and_then(DeliveryStatus::rank).is_none_or(|b| r > b) {
                    best = Some(s);
                }
            }
        }
    }
    let passed_sent = best.is_some_and(|b| b > DeliveryStatus::Sent);
    match best {
        _ if failed && !passed_sent => MessageStatus::Failed,
        Some(b) => b.as_status(),
        None => MessageStatus::Accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranks_and_failure() {
        assert_eq!(current_status([]), MessageStatus::Accepted);
        assert_eq!(current_status([Read, Sent, Delivered]), MessageStatus::Read);
        assert_eq!(current_status([Sent, Failed]), MessageStatus::Failed);
        assert_eq!(current_status([Failed, Sent]), MessageStatus::Failed);
        assert_eq!(current_status([Delivered, Failed]), MessageStatus::Delivered);
        assert_eq!(current_status([Played, Read]), MessageStatus::Played);
    }

    fn any_status() -> impl Strategy<Value = DeliveryStatus> {
        prop_oneof![Just(Sent), Just(Delivered), Just(Read), Just(Played), Just(Failed)]
    }

    proptest! {
        #[test]
        fn order_and_duplicates_do_not_matter(
            statuses in proptest::collection::vec(any_status(), 0..12),
            seed in any::<u64>(),
        ) {
            let mut shuffled = statuses.clone();
            // Deterministic shuffle driven by the seed, plus a duplicate of every other element.
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let dups: Vec<_> = shuffled.iter().copied().step_by(2).collect();
            shuffled.extend(dups);
            prop_assert_eq!(current_status(statuses), current_status(shuffled));
        }
    }
}
