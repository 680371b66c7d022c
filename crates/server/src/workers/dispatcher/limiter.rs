//! The limits Meta sets on a business number, kept on wagate's side so sends are never refused
//! for them: its throughput (messages per second, with a small burst), slowed for a while when
//! Meta says 130429 or 131056 anyway; and the pair rate per recipient (Meta: bursts of 45, then
//! one every 6 s).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Clone, Debug)]
pub struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(capacity: f64, rate: f64, now: Instant) -> Self {
        Self { tokens: capacity, capacity, rate, last: now }
    }

    fn refill(&mut self, now: Instant) {
        // An instant older than the last one seen adds nothing; moving `last` back to it would
        // count the time between twice.
        if now > self.last {
            let elapsed = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.last = now;
        }
    }

    /// Whole tokens available now.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);
        self.tokens.max(0.0).floor() as u32
    }

    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Spends everything: Meta said the limit was hit.
    pub fn drain(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
    }

    /// How long until the next whole token.
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// Changes the rate and capacity, keeping the tokens earned so far.
    pub fn reshape(&mut self, capacity: f64, rate: f64, now: Instant) {
        self.refill(now);
        self.capacity = capacity;
        self.rate = rate;
        self.tokens = self.tokens.min(capacity);
    }
}

/// A number's throughput limit: `messages_per_second` with a burst of `burst` of a second's
/// worth, halved on each 130429 or 131056 from Meta and recovering by 10% a second after.
pub struct Throughput {
    bucket: Bucket,
    configured: f64,
    burst: f64,
    /// The fraction of the configured rate in force, and when it was last cut.
    factor: f64,
    cut_at: Option<Instant>,
}

const FLOOR: f64 = 0.05;

impl Throughput {
    /// Starts empty: the number's previous holder (another instance, or this process before a
    /// restart) may have just spent the burst.
    pub fn new(messages_per_second: u32, burst: f64, now: Instant) -> Self {
        let rate = f64::from(messages_per_second.max(1));
        let capacity = (rate * burst).max(1.0);
        let mut bucket = Bucket::new(capacity, rate, now);
        bucket.tokens = 0.0;
        Self { bucket, configured: rate, burst, factor: 1.0, cut_at: None }
    }

    /// The rate in force, after any slowdown.
    pub fn rate(&mut self, now: Instant) -> f64 {
        if let Some(at) = self.cut_at {
            let recovered = self.factor * 1.1f64.powf(now.saturating_duration_since(at).as_secs_f64());
            if recovered >= 1.0 {
                self.factor = 1.0;
                self.cut_at = None;
            }
        }
        self.configured * self.current_factor(now)
    }

    fn current_factor(&self, now: Instant) -> f64 {
        match self.cut_at {
            Some(at) => (self.factor * 1.1f64.powf(now.saturating_duration_since(at).as_secs_f64())).min(1.0),
            None => 1.0,
        }
    }

    /// Applies a new configured rate (the API or Meta's level changed it).
    pub fn configure(&mut self, messages_per_second: u32, now: Instant) {
        let rate = f64::from(messages_per_second.max(1));
        if rate != self.configured {
            self.configured = rate;
            self.apply(now);
        }
    }

    fn apply(&mut self, now: Instant) {
        let rate = self.rate(now);
        self.bucket.reshape((rate * self.burst).max(1.0), rate, now);
    }

    /// Meta refused for throughput: halve the rate for now, and spend the burst.
    pub fn slow_down(&mut self, now: Instant) {
        self.factor = (self.current_factor(now) / 2.0).max(FLOOR);
        self.cut_at = Some(now);
        self.apply(now);
        self.bucket.drain(now);
    }

    pub fn available(&mut self, now: Instant) -> u32 {
        if self.cut_at.is_some() {
            self.apply(now);
        }
        self.bucket.available(now)
    }

    pub fn take(&mut self, now: Instant) -> bool {
        self.bucket.take(now)
    }

    pub fn wait(&mut self, now: Instant) -> Duration {
        self.bucket.wait(now)
    }
}

/// The pair rate: a bucket per recipient, forgotten once full again (a full bucket is what a
/// new one is).
pub struct PairRate {
    buckets: HashMap<String, Bucket>,
    capacity: f64,
    rate: f64,
}

impl PairRate {
    pub fn new(capacity: u32, refill: Duration) -> Self {
        Self {
            buckets: HashMap::new(),
            capacity: f64::from(capacity.max(1)),
            rate: 1.0 / refill.as_secs_f64().max(1e-3),
        }
    }

    pub fn take(&mut self, recipient: &str, now: Instant) -> bool {
        let (capacity, rate) = (self.capacity, self.rate);
        self.buckets.entry(recipient.to_owned()).or_insert_with(|| Bucket::new(capacity, rate, now)).take(now)
    }

    /// Meta said 131056 for this recipient: nothing more to them until the bucket refills.
    pub fn drain(&mut self, recipient: &str, now: Instant) {
        let (capacity, rate) = (self.capacity, self.rate);
        self.buckets.entry(recipient.to_owned()).or_insert_with(|| Bucket::new(capacity, rate, now)).drain(now);
    }

    /// How long until `recipient` may be sent to again.
    pub fn wait(&mut self, recipient: &str, now: Instant) -> Duration {
        self.buckets.get_mut(recipient).map_or(Duration::ZERO, |b| b.wait(now))
    }

    /// Drops the buckets that have refilled, so the map holds only recent recipients.
    pub fn forget_full(&mut self, now: Instant) {
        let capacity = self.capacity;
        self.buckets.retain(|_, b| b.available(now) < capacity as u32);
    }
}

/// A number's limits, shared by its worker, which decides how much to claim, and its sends,
/// which take their tokens as they leave: a send held up after it was claimed (a busy runtime,
/// a slow start) then still leaves at the limit's pace, instead of bunched with later ones.
pub struct Limits {
    pub throughput: Throughput,
    pub pairs: PairRate,
    /// Sends claimed that have not taken their tokens yet.
    promised: u32,
}

impl Limits {
    pub fn new(throughput: Throughput, pairs: PairRate) -> Self {
        Self { throughput, pairs, promised: 0 }
    }

    /// Throughput tokens not promised to sends about to leave.
    pub fn unpromised(&mut self, now: Instant) -> u32 {
        self.throughput.available(now).saturating_sub(self.promised)
    }

    /// A claimed send will take a token when it leaves.
    pub fn promise(&mut self) {
        self.promised += 1;
    }

    /// Takes a leaving send's tokens, or says how long until there is one.
    fn try_leave(&mut self, recipient: &str, now: Instant) -> Result<(), Duration> {
        if self.throughput.take(now) {
            self.pairs.take(recipient, now);
            self.promised = self.promised.saturating_sub(1);
            Ok(())
        } else {
            Err(self.throughput.wait(now).max(Duration::from_millis(1)))
        }
    }
}

/// Waits for a send's throughput token and takes it with its pair-rate token.
pub async fn leave(limits: &Mutex<Limits>, recipient: &str) {
    loop {
        let taken = limits.lock().expect("limits lock").try_leave(recipient, Instant::now());
        match taken {
            Ok(()) => return,
            Err(wait) => tokio::time::sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_bursts_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3.0, 10.0, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert_eq!(b.wait(t0), Duration::from_millis(100));
        assert_eq!(b.available(t0 + Duration::from_millis(250)), 2);
        assert_eq!(b.available(t0 + Duration::from_secs(10)), 3, "never above capacity");
    }

    #[test]
    fn an_older_instant_adds_no_tokens() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1.0, 1.0, t0);
        let later = t0 + Duration::from_millis(900);
        assert!(b.take(later));
        assert_eq!(b.available(t0), 0, "seen late, an earlier instant changes nothing");
        assert_eq!(b.available(later + Duration::from_millis(500)), 0, "half a token since the take");
        assert_eq!(b.available(later + Duration::from_secs(1)), 1);
    }

    #[test]
    fn throughput_halves_on_refusal_and_recovers() {
        let t0 = Instant::now();
        let mut t = Throughput::new(50, 0.1, t0);
        assert_eq!(t.available(t0), 0, "starts empty");
        let t0 = t0 + Duration::from_secs(1);
        assert_eq!(t.available(t0), 5, "a tenth of a second's burst");
        t.slow_down(t0);
        assert_eq!(t.rate(t0), 25.0);
        assert_eq!(t.available(t0), 0, "the burst is spent");
        t.slow_down(t0);
        assert_eq!(t.rate(t0), 12.5);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(t.rate(later), 50.0, "recovered");
        t.configure(80, later);
        assert_eq!(t.rate(later), 80.0);
        assert_eq!(Throughput::new(1, 0.1, t0).available(later), 1, "at least one");
    }

    #[test]
    fn promised_tokens_are_not_offered_again() {
        let t0 = Instant::now();
        let mut l = Limits::new(Throughput::new(10, 0.3, t0), PairRate::new(1, Duration::from_secs(6)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.unpromised(t1), 3);
        l.promise();
        l.promise();
        assert_eq!(l.unpromised(t1), 1);
        assert_eq!(l.try_leave("a", t1), Ok(()));
        assert_eq!(l.unpromised(t1), 1, "one taken, one still promised");
        assert_eq!(l.try_leave("b", t1), Ok(()));
        assert_eq!(l.try_leave("c", t1), Ok(()));
        assert_eq!(l.try_leave("d", t1), Err(Duration::from_millis(100)), "the bucket is empty");
        assert_eq!(l.pairs.wait("a", t1), Duration::from_secs(6), "the pair token went with it");
    }

    #[test]
    fn the_pair_rate_is_per_recipient() {
        let t0 = Instant::now();
        let mut p = PairRate::new(2, Duration::from_secs(6));
        assert!(p.take("a", t0) && p.take("a", t0));
        assert!(!p.take("a", t0));
        assert!(p.take("b", t0), "another recipient is not held up");
        assert_eq!(p.wait("a", t0), Duration::from_secs(6));
        p.drain("b", t0);
        assert!(!p.take("b", t0));
        assert!(p.take("a", t0 + Duration::from_secs(6)));
        p.forget_full(t0 + Duration::from_secs(60));
        assert!(p.buckets.is_empty());
    }
}
