//! When work that failed is tried again: exponential backoff, capped and jittered, within a
//! number of attempts and a deadline. The caller passes the time and a random draw, so a
//! schedule is a function of its inputs.

use std::time::Duration;

use crate::time::Timestamp;

/// How delays grow with the attempts made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// `base · 2^(attempt-1)`: `base` after the first failure, doubling after each next one.
    Doubling,
    /// `base · 4^attempt`: Meta's advice after a 131056, "retry after 4^X seconds".
    PairRate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    /// No delay is longer.
    pub max: Duration,
    pub growth: Growth,
    /// Delays are scaled by a random factor in [0.5, 1], so the retries of a burst of failures
    /// do not all come back at once.
    pub jitter: bool,
    /// Attempts in all, the first included: after the last one fails, give up.
    pub max_attempts: u32,
    /// No retry this long after the first attempt (or after the work was accepted, whichever
    /// time the caller counts from); `None`: attempts alone limit it.
    pub deadline: Option<Duration>,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(Timestamp),
    GiveUp(GiveUp),
}

/// Why a policy gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The deadline passed (whatever the attempts).
    Deadline,
    /// The last attempt allowed failed.
    Attempts,
}

impl RetryPolicy {
    /// Jittered delays of `base · 2^(attempt-1)`, at most `max`, for `max_attempts` attempts.
    pub fn exponential(base: Duration, max: Duration, max_attempts: u32) -> Self {
        Self { base, max, growth: Growth::Doubling, jitter: true, max_attempts, deadline: None }
    }

    pub fn with_deadline(self, deadline: Duration) -> Self {
        Self { deadline: Some(deadline), ..self }
    }

    /// The same attempts, deadline and cap, with Meta's delays after a 131056: `base · 4^attempt`,
    /// not jittered (Meta names the wait).
    pub fn pair_rate(self, base: Duration) -> Self {
        Self { base, growth: Growth::PairRate, jitter: false, ..self }
    }

    /// The wait after `attempt` attempts (the failed one included) have failed. `random` is a
    /// uniform draw over all of `u32`; it scales the delay when the policy jitters.
    pub fn delay(&self, attempt: u32, random: u32) -> Duration {
        let base = millis(self.base);
        let grown = match self.growth {
            Growth::Doubling => base.saturating_mul(1u64 << attempt.saturating_sub(1).min(30)),
            Growth::PairRate => base.saturating_mul(4u64.saturating_pow(attempt.min(15))),
        };
        let ms = grown.min(millis(self.max));
        if !self.jitter {
            return Duration::from_millis(ms);
        }
        let factor = 0.5 + 0.5 * (f64::from(random) / f64::from(u32::MAX));
        Duration::from_millis((ms as f64 * factor) as u64)
    }

    /// After `attempt` attempts have failed, the last at `now`, of work first tried (or
    /// accepted) at `first_attempt_at`: when to try again, or to give up.
    pub fn after(&self, attempt: u32, first_attempt_at: Timestamp, now: Timestamp, random: u32) -> Retry {
        if self.deadline.is_some_and(|d| now >= first_attempt_at.plus(d)) {
            return Retry::GiveUp(GiveUp::Deadline);
        }
        if attempt >= self.max_attempts {
            return Retry::GiveUp(GiveUp::Attempts);
        }
        Retry::At(now.plus(self.delay(attempt, random)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    /// A draw that gives the whole delay, and one that gives half.
    const WHOLE: u32 = u32::MAX;
    const HALF: u32 = 0;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_750_000_000_000 + ms)
    }

    #[test]
    fn delays_double_from_the_base_and_are_capped() {
        let p = RetryPolicy::exponential(MS(1_000), MS(300_000), 10);
        let whole: Vec<_> = (1..=10).map(|a| p.delay(a, WHOLE).as_millis()).collect();
        assert_eq!(whole, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000]);
        assert_eq!(p.delay(1, HALF), MS(500));
        assert_eq!(p.delay(9, HALF), MS(128_000));
        assert_eq!(p.delay(10, HALF), MS(150_000), "jitter applies to the capped delay");
        assert_eq!(p.delay(0, WHOLE), MS(1_000), "no attempt made counts as the first");
        assert_eq!(p.delay(u32::MAX, WHOLE), MS(300_000));
    }

    #[test]
    fn jitter_stays_between_half_and_whole() {
        let p = RetryPolicy::exponential(MS(100), MS(10_000), 40);
        for attempt in 1..40u32 {
            let full = (100u64 << (attempt - 1).min(30)).min(10_000);
            for random in [0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
                let d = p.delay(attempt, random).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {attempt}, draw {random}: {d} ms vs {full} ms");
            }
        }
    }

    #[test]
    fn the_pair_rate_waits_four_to_the_attempt_without_jitter() {
        let p = RetryPolicy::exponential(MS(1_000), MS(600_000), 10).with_deadline(MS(60_000)).pair_rate(MS(1_000));
        assert_eq!(p.delay(1, HALF), MS(4_000));
        assert_eq!(p.delay(2, HALF), MS(16_000));
        assert_eq!(p.delay(3, WHOLE), MS(64_000));
        assert_eq!(p.delay(30, HALF), MS(600_000), "capped");
        assert_eq!((p.max_attempts, p.deadline), (10, Some(MS(60_000))), "the same attempts and deadline");
    }

    #[test]
    fn attempts_run_out_at_the_maximum() {
        let p = RetryPolicy::exponential(MS(200), MS(60_000), 3);
        assert_eq!(p.after(1, t(0), t(10), WHOLE), Retry::At(t(210)));
        assert_eq!(p.after(2, t(0), t(10), WHOLE), Retry::At(t(410)));
        assert_eq!(p.after(3, t(0), t(10), WHOLE), Retry::GiveUp(GiveUp::Attempts));
        assert_eq!(p.after(4, t(0), t(10), WHOLE), Retry::GiveUp(GiveUp::Attempts));
        let none = RetryPolicy::exponential(MS(200), MS(60_000), 0);
        assert_eq!(none.after(1, t(0), t(0), WHOLE), Retry::GiveUp(GiveUp::Attempts));
    }

    #[test]
    fn the_deadline_counts_from_the_first_attempt() {
        let day = Duration::from_secs(24 * 60 * 60);
        let p = RetryPolicy::exponential(MS(1_000), MS(300_000), 10).with_deadline(day);
        let day_ms = day.as_millis() as i64;
        assert_eq!(p.after(2, t(0), t(day_ms - 1), WHOLE), Retry::At(t(day_ms - 1 + 2_000)));
        assert_eq!(p.after(2, t(0), t(day_ms), WHOLE), Retry::GiveUp(GiveUp::Deadline), "at exactly the deadline");
        assert_eq!(p.after(10, t(0), t(day_ms), WHOLE), Retry::GiveUp(GiveUp::Deadline), "the deadline is named first");
        let without = RetryPolicy::exponential(MS(1_000), MS(300_000), 10);
        assert_eq!(without.after(2, t(0), t(10 * day_ms), WHOLE), Retry::At(t(10 * day_ms + 2_000)));
    }
}
