//! Token buckets: Meta's per-number throughput and per-user pair rate.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(capacity: f64) -> Self {
        Self { tokens: capacity, last: Instant::now() }
    }

    /// Takes one token if there is one, refilling `per_token` apart up to `capacity`.
    pub fn take(&mut self, capacity: f64, per_token: Duration) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() / per_token.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + refill).min(capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    /// Whether the bucket has refilled to `capacity` by now, and so is as good as a new one.
    pub fn is_full(&self, capacity: f64, per_token: Duration) -> bool {
        let refill = self.last.elapsed().as_secs_f64() / per_token.as_secs_f64().max(1e-9);
        self.tokens + refill >= capacity
    }

    /// Returns a token taken for a request that was refused after all.
    pub fn give_back(&mut self, capacity: f64) {
        self.tokens = (self.tokens + 1.0).min(capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut b = Bucket::full(3.0);
        let slow = Duration::from_secs(3600);
        assert!(b.take(3.0, slow) && b.take(3.0, slow) && b.take(3.0, slow));
        assert!(!b.take(3.0, slow), "the burst is spent");
        let mut fast = Bucket::full(1.0);
        assert!(fast.take(1.0, Duration::from_nanos(1)));
        std::thread::yield_now();
        assert!(fast.take(1.0, Duration::from_nanos(1)), "refilled at once at a huge rate");
    }
}
