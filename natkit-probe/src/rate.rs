//! A packets-per-second cap: a token bucket driven by the caller's clock.

use std::time::{Duration, Instant};

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A rate cap: at most `per_second` probes on average, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RateLimit {
    /// Sustained probes (packets) per second (≥ 1).
    pub per_second: u32,
    /// How many may go back to back after a pause (≥ 1).
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` with a burst of a tenth of a second's worth (at least 1).
    pub fn per_second(per_second: u32) -> Self {
        RateLimit {
            per_second,
            burst: (per_second / 10).max(1),
        }
    }

    /// Whether both numbers are at least 1.
    pub fn is_valid(&self) -> bool {
        self.per_second >= 1 && self.burst >= 1
    }
}

/// A token bucket. Tokens are kept in billionths so that refills are exact
/// integer arithmetic: no drift however long the scan.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Billionths of a token.
    nano_tokens: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let limit = RateLimit {
            per_second: limit.per_second.max(1),
            burst: limit.burst.max(1),
        };
        TokenBucket {
            limit,
            nano_tokens: u128::from(limit.burst) * NANOS_PER_SEC,
            last: now,
        }
    }

    fn capacity(&self) -> u128 {
        u128::from(self.limit.burst) * NANOS_PER_SEC
    }

    fn refill(&mut self, now: Instant) {
        // A clock that goes backwards adds nothing.
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        if elapsed > 0 {
            let added = elapsed.saturating_mul(u128::from(self.limit.per_second));
            self.nano_tokens = self.nano_tokens.saturating_add(added).min(self.capacity());
            self.last = now;
        }
    }

    /// Takes one token at `now`, or says when the next one will be there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        self.refill(now);
        if self.nano_tokens >= NANOS_PER_SEC {
            self.nano_tokens -= NANOS_PER_SEC;
            return Ok(());
        }
        let missing = NANOS_PER_SEC - self.nano_tokens;
        let per_second = u128::from(self.limit.per_second);
        let wait_ns = missing.div_ceil(per_second);
        let wait = Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX));
        Err(self.last + wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 100,
                burst: 5,
            },
            t0,
        );
        for _ in 0..5 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let next = b.try_take(t0).unwrap_err();
        assert_eq!(next, t0 + Duration::from_millis(10));
        assert_eq!(b.try_take(next), Ok(()));
        assert!(b.try_take(next).is_err());
    }

    #[test]
    fn simulated_ten_seconds_never_exceed_the_cap() {
        let limit = RateLimit {
            per_second: 250,
            burst: 10,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(limit, t0);
        // A greedy caller: takes whenever allowed, otherwise sleeps exactly
        // until the bucket says, on a simulated clock.
        let mut now = t0;
        let mut taken: Vec<Instant> = Vec::new();
        let end = t0 + Duration::from_secs(10);
        while now < end {
            match b.try_take(now) {
                Ok(()) => taken.push(now),
                Err(at) => {
                    assert!(at > now);
                    now = at;
                }
            }
        }
        // Every window of one second holds at most rate + burst probes.
        for (i, &start) in taken.iter().enumerate() {
            let in_window = taken[i..]
                .iter()
                .take_while(|&&t| t < start + Duration::from_secs(1))
                .count();
            assert!(in_window <= 260, "{in_window} probes in one second");
        }
        // And the caller was not starved: the cap is reached, not undershot.
        assert_eq!(taken.len(), 10 + 250 * 10 - 1);
    }

    #[test]
    fn idle_time_refills_only_up_to_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            RateLimit {
                per_second: 1000,
                burst: 3,
            },
            t0,
        );
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(later).is_ok());
        }
        assert!(b.try_take(later).is_err());
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(5);
        let mut b = TokenBucket::new(RateLimit::per_second(1), t0);
        assert!(b.try_take(t0).is_ok());
        let earlier = t0 - Duration::from_secs(1);
        assert!(b.try_take(earlier).is_err());
    }

    #[test]
    fn per_second_picks_a_tenth_as_burst() {
        assert_eq!(RateLimit::per_second(1000).burst, 100);
        assert_eq!(RateLimit::per_second(5).burst, 1);
        assert!(
            !RateLimit {
                per_second: 0,
                burst: 1
            }
            .is_valid()
        );
    }
}
