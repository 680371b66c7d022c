//! Each API key's request rate (`[api] rate_limit_per_second`), in this instance's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wagate_domain::id::ApiKeyId;

use crate::config::ApiSettings;
use crate::workers::dispatcher::limiter::Bucket;

/// Each key's request rate (`[api] rate_limit_per_second`): a token bucket per key, in this
/// instance's memory. Only keys in use have a bucket, so the map stays as small as they are.
pub struct KeyRates {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyRates {
    /// None when no rate is set: requests then pay nothing for the limit.
    pub fn new(settings: &ApiSettings) -> Option<Self> {
        if settings.rate_limit_per_second == 0 {
            return None;
        }
        let per_second = f64::from(settings.rate_limit_per_second);
        let capacity = match settings.rate_limit_burst {
            0 => per_second,
            burst => f64::from(burst),
        };
        Some(Self { capacity, per_second, buckets: Mutex::default() })
    }

    /// Spends one of `key`'s requests, or says how long until it has one.
    pub fn take(&self, key: &ApiKeyId) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let take = |bucket: &mut Bucket| match bucket.take(now) {
            true => Ok(()),
            false => Err(bucket.wait(now)),
        };
        if let Some(bucket) = buckets.get_mut(key.as_str()) {
            return take(bucket);
        }
        let mut bucket = Bucket::new(self.capacity, self.per_second, now);
        let taken = take(&mut bucket);
        buckets.insert(key.as_str().to_owned(), bucket);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_for_its_rate() {
        let settings = ApiSettings { rate_limit_per_second: 1, rate_limit_burst: 3 };
        let rates = KeyRates::new(&settings).expect("a rate is set");
        let (key, other) = (ApiKeyId::generate(), ApiKeyId::generate());
        for _ in 0..3 {
            rates.take(&key).expect("within the burst");
        }
        match rates.take(&key) {
            Err(wait) => assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}"),
            Ok(()) => panic!("expected a rate limit"),
        }
        rates.take(&other).expect("each key has its own bucket");
        assert!(KeyRates::new(&ApiSettings::default()).is_none(), "off by default");
    }
}
