//! Message statuses and the rules that fold Meta's status webhooks into a current status.
//!
//! Meta delivers statuses more than once and in any order (`read` before `delivered`, `sent`
//! before the send's own response). The current status is therefore a function of the *set* of
//! statuses seen, never of their arrival order: see [`current_status`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

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

    /// Where the status sits in a message's history: the order an outbound message moves in
    /// (`scheduled` … `accepted`, then Meta's `sent` … `played`), with the ends (`failed`,
    /// `canceled`) and `received` last. Histories sort by it before time: Meta's timestamps are
    /// whole seconds and wagate's milliseconds, so time alone can put `sent` before `accepted`.
    pub const fn history_order(self) -> u8 {
        match self {
            Self::Scheduled => 0,
            Self::Queued => 1,
            Self::Sending => 2,
            Self::Accepted => 3,
            Self::Sent => 4,
            Self::Delivered => 5,
            Self::Read => 6,
            Self::Played => 7,
            Self::Failed | Self::Canceled | Self::Received => 8,
        }
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

/// One status Meta reported for a message: for a group message, `delivered`, `read` and
/// `played` come once per participant (`recipient_participant_id`), `sent` and `failed` once.
/// `data` is what came with it (error, conversation, pricing), opaque here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<D> {
    pub status: DeliveryStatus,
    pub participant: Option<String>,
    pub occurred_at: Timestamp,
    pub data: D,
}

/// An entry of a message's delivery history. `implied` entries are the `delivered` Meta skipped
/// before a `read` or `played`; they carry no data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry<D> {
    pub status: DeliveryStatus,
    pub participant: Option<String>,
    pub occurred_at: Timestamp,
    pub implied: bool,
    pub data: Option<D>,
}

/// A message's delivery history and current status, folded from every report seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded<D> {
    pub current: MessageStatus,
    /// In order of progress, then time, then participant.
    pub history: Vec<HistoryEntry<D>>,
}

impl<D> Folded<D> {
    /// The report that made the message `failed`, when it is.
    pub fn failure(&self) -> Option<&D> {
        if self.current != MessageStatus::Failed {
            return None;
        }
        self.history.iter().find(|e| e.status == DeliveryStatus::Failed).and_then(|e| e.data.as_ref())
    }
}

/// Folds a message's reports into its history and current status. The result depends on the
/// set of reports only, never on their order or repetition: of several reports of one status
/// (for one participant) the earliest is kept, ties broken by `data`, so Meta's duplicates and
/// retries, in any order, give the same history. Group messages take the furthest status any
/// participant reached.
pub fn fold<D: Ord + Clone>(reports: impl IntoIterator<Item = Report<D>>) -> Folded<D> {
    use std::collections::BTreeMap;
    let mut kept: BTreeMap<(DeliveryStatus, Option<String>), (Timestamp, D)> = BTreeMap::new();
    for r in reports {
        let key = (r.status, r.participant);
        let candidate = (r.occurred_at, r.data);
        match kept.get(&key) {
            Some(existing) if *existing <= candidate => {}
            _ => {
                kept.insert(key, candidate);
            }
        }
    }
    let current = current_status(kept.keys().map(|(s, _)| *s));
    // Per participant, a `read` or `played` without a `delivered` implies one, at the earliest.
    let mut implied: BTreeMap<Option<String>, Timestamp> = BTreeMap::new();
    for ((status, participant), (at, _)) in &kept {
        if status.implies_delivered() && !kept.contains_key(&(DeliveryStatus::Delivered, participant.clone())) {
            let earliest = implied.entry(participant.clone()).or_insert(*at);
            *earliest = (*earliest).min(*at);
        }
    }
    let mut history: Vec<HistoryEntry<D>> = kept
        .into_iter()
        .map(|((status, participant), (occurred_at, data))| HistoryEntry {
            status,
            participant,
            occurred_at,
            implied: false,
            data: Some(data),
        })
        .chain(implied.into_iter().map(|(participant, occurred_at)| HistoryEntry {
            status: DeliveryStatus::Delivered,
            participant,
            occurred_at,
            implied: true,
            data: None,
        }))
        .collect();
    history.sort_by(|a, b| {
        let order = |e: &HistoryEntry<D>| e.status.as_status().history_order();
        (order(a), a.occurred_at, &a.participant).cmp(&(order(b), b.occurred_at, &b.participant))
    });
    Folded { current, history }
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

    #[test]
    fn histories_follow_a_message_through_its_life() {
        use MessageStatus as M;
        let life = [M::Scheduled, M::Queued, M::Sending, M::Accepted, M::Sent, M::Delivered, M::Read, M::Played];
        for pair in life.windows(2) {
            assert!(pair[0].history_order() < pair[1].history_order(), "{} before {}", pair[0], pair[1]);
        }
        for end in [M::Failed, M::Canceled, M::Received] {
            assert!(life.iter().all(|s| s.history_order() < end.history_order()), "{end} last");
        }
        // Meta's statuses keep the order of their progress, `failed` after it.
        let meta = [Sent, Delivered, Read, Played, Failed];
        for pair in meta.windows(2) {
            assert!(pair[0].as_status().history_order() < pair[1].as_status().history_order());
        }
    }

    fn any_status() -> impl Strategy<Value = DeliveryStatus> {
        prop_oneof![Just(Sent), Just(Delivered), Just(Read), Just(Played), Just(Failed)]
    }

    fn report(status: DeliveryStatus, participant: Option<&str>, at_s: i64, data: u8) -> Report<u8> {
        Report {
            status,
            participant: participant.map(str::to_owned),
            occurred_at: Timestamp::from_unix_seconds(at_s),
            data,
        }
    }

    #[test]
    fn a_read_without_delivered_implies_it_per_participant() {
        let folded = fold([
            report(Sent, None, 10, 0),
            report(Read, Some("a"), 30, 0),
            report(Delivered, Some("b"), 20, 0),
            report(Played, Some("a"), 25, 0),
        ]);
        assert_eq!(folded.current, MessageStatus::Played);
        let implied: Vec<_> = folded.history.iter().filter(|e| e.implied).collect();
        assert_eq!(implied.len(), 1);
        assert_eq!(implied[0].participant.as_deref(), Some("a"));
        assert_eq!(implied[0].occurred_at, Timestamp::from_unix_seconds(25), "the earliest of read and played");
        let order: Vec<_> = folded.history.iter().map(|e| (e.status, e.participant.as_deref())).collect();
        assert_eq!(
            order,
            [(Sent, None), (Delivered, Some("b")), (Delivered, Some("a")), (Read, Some("a")), (Played, Some("a"))]
        );
    }

    #[test]
    fn the_earliest_of_duplicates_is_kept_and_failure_names_its_report() {
        let folded = fold([report(Failed, None, 9, 2), report(Sent, None, 5, 0), report(Failed, None, 7, 1)]);
        assert_eq!(folded.current, MessageStatus::Failed);
        assert_eq!(folded.failure(), Some(&1));
        assert_eq!(folded.history.len(), 2);
        let late = fold([report(Delivered, None, 5, 0), report(Failed, None, 7, 1)]);
        assert_eq!(late.current, MessageStatus::Delivered);
        assert_eq!(late.failure(), None, "a failure after delivery is history only");
        assert_eq!(late.history.last().map(|e| e.status), Some(Failed));
    }

    fn any_report() -> impl Strategy<Value = Report<u8>> {
        let participant = prop_oneof![Just(None), Just(Some("15550001")), Just(Some("15550002"))];
        (any_status(), participant, 0i64..6, 0u8..3)
            .prop_map(|(status, participant, at_s, data)| report(status, participant, 1_700_000_000 + at_s, data))
    }

    proptest! {
        #[test]
        fn order_and_duplicates_do_not_matter(
            statuses in proptest::collection::vec(any_status(), 0..12),
            seed in any::<u64>(),
        ) {
            let mut shuffled = statuses.clone();
            shuffle(&mut shuffled, seed);
            let dups: Vec<_> = shuffled.iter().copied().step_by(2).collect();
            shuffled.extend(dups);
            prop_assert_eq!(current_status(statuses), current_status(shuffled));
        }

        /// Any permutation of a message's reports, with any of them repeated, folds into the
        /// same current status and the same history.
        #[test]
        fn a_history_is_a_function_of_the_set_of_reports(
            reports in proptest::collection::vec(any_report(), 0..16),
            repeats in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
            seed in any::<u64>(),
        ) {
            let expected = fold(reports.clone());
            let mut arrived = reports.clone();
            if !reports.is_empty() {
                arrived.extend(repeats.iter().map(|i| reports[i.index(reports.len())].clone()));
            }
            shuffle(&mut arrived, seed);
            let folded = fold(arrived);
            prop_assert_eq!(&folded, &expected);

            // And the history says what the reports said: one entry per status and participant,
            // the earliest report's time, a `delivered` implied exactly where one was skipped.
            let keys: std::collections::BTreeSet<_> =
                folded.history.iter().map(|e| (e.status, e.participant.clone())).collect();
            prop_assert_eq!(keys.len(), folded.history.len());
            for e in &folded.history {
                let same = reports.iter().filter(|r| r.participant == e.participant);
                if e.implied {
                    let read = same.filter(|r| r.status.implies_delivered()).map(|r| r.occurred_at).min();
                    prop_assert_eq!(Some(e.occurred_at), read);
                    prop_assert!(!reports.iter().any(|r| r.participant == e.participant && r.status == Delivered));
                } else {
                    let earliest = same.filter(|r| r.status == e.status).map(|r| r.occurred_at).min();
                    prop_assert_eq!(Some(e.occurred_at), earliest);
                }
            }
            prop_assert_eq!(folded.current, current_status(reports.iter().map(|r| r.status)));
        }
    }

    /// A deterministic shuffle driven by `seed`.
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut s = seed;
        for i in (1..items.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            items.swap(i, (s >> 33) as usize % (i + 1));
        }
    }
}
