//! Background workers. Each runs until the shared cancellation token fires, then finishes what
//! it holds; anything it cannot finish stays leased and is claimed again after restart.

pub mod dispatcher;
pub mod inbound;
pub mod media;

use std::time::Duration;

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped at `max`, then scaled by a
/// random factor in [0.5, 1] so retries of a burst do not arrive together.
pub fn backoff(attempt: i64, base_ms: u64, max_ms: u64) -> Duration {
    let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let ms = base_ms.saturating_mul(1u64 << exp).min(max_ms);
    let jitter = getrandom::u32().unwrap_or(u32::MAX) as f64 / u32::MAX as f64;
    Duration::from_millis((ms as f64 * (0.5 + 0.5 * jitter)) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..40 {
            let d = super::backoff(attempt, 100, 10_000).as_millis() as u64;
            let full = (100u64 << (attempt - 1).min(30)).min(10_000);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d}ms vs {full}ms");
        }
    }
}
