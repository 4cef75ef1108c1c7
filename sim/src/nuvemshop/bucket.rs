//! Nuvemshop's leaky-bucket rate limit, per store and app.
//!
//! Each request pours one unit into the bucket; the bucket leaks at a fixed
//! rate; a request that would overflow it is refused with 429 and pours
//! nothing. The documented defaults are 40 requests of capacity leaking 2 per
//! second ([`RateLimit::standard`]); higher plans get ten times both
//! ([`RateLimit::premium`]). The level is fractional so that a bucket leaking
//! 2/s admits one request every 500 ms once full, as the real one does.

use std::time::Instant;

/// Size and leak rate of one bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests the bucket holds (`x-rate-limit-limit`).
    pub capacity: u32,
    /// Requests leaking out per second.
    pub leak_per_sec: f64,
}

impl RateLimit {
    /// 40 requests, leaking 2 per second (the documented default).
    pub fn standard() -> Self {
        Self {
            capacity: 40,
            leak_per_sec: 2.0,
        }
    }
    /// Ten times [`RateLimit::standard`]: 400 requests leaking 20/s.
    pub fn premium() -> Self {
        Self {
            capacity: 400,
            leak_per_sec: 20.0,
        }
    }
    /// A bucket that never leaks: exactly `capacity` requests pass, then every
    /// request gets 429 (deterministic 429s for tests, whatever the machine's speed).
    pub fn never_leaking(capacity: u32) -> Self {
        Self {
            capacity,
            leak_per_sec: 0.0,
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::standard()
    }
}

/// What the bucket said about one request; also the three headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketAnswer {
    /// The request may proceed.
    pub admitted: bool,
    /// `x-rate-limit-limit`.
    pub limit: u32,
    /// `x-rate-limit-remaining`: whole requests the bucket can still take.
    pub remaining: u32,
    /// `x-rate-limit-reset`: milliseconds until the bucket is empty.
    pub reset_ms: u64,
}

/// One store+app bucket.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    level: f64,
    last: Instant,
}

impl Bucket {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            level: 0.0,
            last: now,
        }
    }

    /// Leak what has left since the last request, then pour this one in if it fits.
    pub(crate) fn pour(&mut self, limit: RateLimit, now: Instant) -> BucketAnswer {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let leak = if limit.leak_per_sec.is_finite() && limit.leak_per_sec > 0.0 {
            limit.leak_per_sec
        } else {
            0.0
        };
        self.level = (self.level - elapsed * leak).max(0.0);
        let capacity = f64::from(limit.capacity);
        // The epsilon keeps float dust from refusing a request that fits exactly.
        let admitted = self.level + 1.0 <= capacity + 1e-9;
        if admitted {
            self.level += 1.0;
        }
        let remaining = (capacity - self.level).floor().max(0.0);
        let reset_ms = if leak > 0.0 {
            (self.level / leak * 1000.0).ceil()
        } else if self.level > 0.0 {
            // Never empties; say "a day" rather than infinity.
            86_400_000.0
        } else {
            0.0
        };
        BucketAnswer {
            admitted,
            limit: limit.capacity,
            // Both are bounded (capacity is a u32; reset capped above), so the casts cannot wrap.
            remaining: remaining as u32,
            reset_ms: reset_ms as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn forty_pass_then_429_then_one_per_half_second() {
        let start = Instant::now();
        let limit = RateLimit::standard();
        let mut bucket = Bucket::new(start);
        for i in 0..40 {
            let answer = bucket.pour(limit, start);
            assert!(answer.admitted, "request {i}");
            assert_eq!(answer.remaining, 39 - i);
        }
        let refused = bucket.pour(limit, start);
        assert!(!refused.admitted);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.reset_ms, 20_000);
        let later = bucket.pour(limit, start + Duration::from_millis(500));
        assert!(later.admitted);
        assert!(
            !bucket
                .pour(limit, start + Duration::from_millis(600))
                .admitted
        );
    }

    #[test]
    fn a_never_leaking_bucket_is_exact() {
        let start = Instant::now();
        let mut bucket = Bucket::new(start);
        let limit = RateLimit::never_leaking(3);
        let admitted: Vec<bool> = (0..5)
            .map(|i| bucket.pour(limit, start + Duration::from_secs(i)).admitted)
            .collect();
        assert_eq!(admitted, [true, true, true, false, false]);
    }
}
