//! Retransmission plans (RFC 8489 §6.2.1).

use std::time::Duration;

use crate::Error;

/// When a STUN request over UDP is (re)sent and when the client gives up.
///
/// RFC 8489 §6.2.1: the first retransmission after RTO, each later one after twice the
/// previous wait, `Rc` sends in all, and after the last send a final wait of `Rm` × RTO.
/// With the defaults (RTO 500 ms, Rc 7, Rm 16) requests go out at 0, 0.5, 1.5, 3.5, 7.5,
/// 15.5 and 31.5 s and the transaction fails at 39.5 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RtoPlan {
    /// The initial retransmission timeout (RTO).
    pub rto: Duration,
    /// How many times the request is sent, the first included (`Rc`); at least 1.
    pub max_sends: u32,
    /// The wait after the last send, as a multiple of [`rto`](Self::rto) (`Rm`).
    pub final_wait_factor: u32,
}

impl Default for RtoPlan {
    fn default() -> Self {
        Self::RFC8489
    }
}

impl RtoPlan {
    /// RFC 8489 §6.2.1: RTO 500 ms, Rc = 7, Rm = 16 (gives up after 39.5 s).
    pub const RFC8489: RtoPlan = RtoPlan {
        rto: Duration::from_millis(500),
        max_sends: 7,
        final_wait_factor: 16,
    };

    /// For probing many servers at once, where a slow or dead server should not hold up
    /// the others: RTO 100 ms, Rc = 4, Rm = 8 (sends at 0, 0.1, 0.3, 0.7 s; gives up
    /// at 1.5 s).
    pub const FAST: RtoPlan = RtoPlan {
        rto: Duration::from_millis(100),
        max_sends: 4,
        final_wait_factor: 8,
    };

    /// For a lab or loopback, where round trips take well under a millisecond:
    /// RTO 50 ms, Rc = 4, Rm = 4 (gives up after 0.55 s).
    pub const LAB: RtoPlan = RtoPlan {
        rto: Duration::from_millis(50),
        max_sends: 4,
        final_wait_factor: 4,
    };

    /// One send and a wait of `timeout` for the answer: for reliable transports (TCP),
    /// where STUN does not retransmit (RFC 8489 §6.2.2, Ti = 39.5 s).
    pub const fn reliable(timeout: Duration) -> RtoPlan {
        RtoPlan {
            rto: timeout,
            max_sends: 1,
            final_wait_factor: 1,
        }
    }

    /// Checks that the plan sends at least once, waits a non-zero time and that its
    /// schedule fits in a `Duration`.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.max_sends == 0 {
            return invalid("a retransmit plan must send at least once");
        }
        if self.max_sends > 32 {
            return invalid("a retransmit plan sends at most 32 times");
        }
        if self.rto.is_zero() {
            return invalid("the retransmission timeout must be positive");
        }
        if self.final_wait_factor == 0 {
            return invalid("the final wait factor must be positive");
        }
        if self.try_give_up_after().is_none() {
            return invalid("the retransmit schedule overflows");
        }
        Ok(())
    }

    /// The wait after send number `n` (0-based) before the next event: RTO × 2ⁿ before
    /// a retransmission, Rm × RTO after the last send. `None` past the last send or on
    /// overflow.
    pub fn wait_after_send(&self, n: u32) -> Option<Duration> {
        if n + 1 < self.max_sends {
            self.rto.checked_mul(1u32.checked_shl(n)?)
        } else if n + 1 == self.max_sends {
            self.rto.checked_mul(self.final_wait_factor)
        } else {
            None
        }
    }

    /// Offsets of every send from the first (the first is zero).
    pub fn send_offsets(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut at = Some(Duration::ZERO);
        (0..self.max_sends).map_while(move |n| {
            let now = at?;
            at = if n + 1 < self.max_sends {
                self.wait_after_send(n).and_then(|w| now.checked_add(w))
            } else {
                None
            };
            Some(now)
        })
    }

    fn try_give_up_after(&self) -> Option<Duration> {
        let mut total = Duration::ZERO;
        for n in 0..self.max_sends {
            total = total.checked_add(self.wait_after_send(n)?)?;
        }
        Some(total)
    }

    /// How long after the first send the transaction fails if nothing acceptable came
    /// (saturating for plans that [`validate`](Self::validate) rejects).
    pub fn give_up_after(&self) -> Duration {
        self.try_give_up_after().unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rfc8489_schedule() {
        let p = RtoPlan::RFC8489;
        let sends: Vec<_> = p.send_offsets().collect();
        assert_eq!(
            sends,
            [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec()
        );
        assert_eq!(p.give_up_after(), ms(39_500));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn fast_and_reliable() {
        let f = RtoPlan::FAST;
        assert_eq!(
            f.send_offsets().collect::<Vec<_>>(),
            [0, 100, 300, 700].map(ms).to_vec()
        );
        assert_eq!(f.give_up_after(), ms(1500));
        let r = RtoPlan::reliable(ms(39_500));
        assert_eq!(r.send_offsets().count(), 1);
        assert_eq!(r.give_up_after(), ms(39_500));
    }

    #[test]
    fn bad_plans_are_rejected() {
        let mut p = RtoPlan::RFC8489;
        p.max_sends = 0;
        assert!(p.validate().is_err());
        p = RtoPlan::RFC8489;
        p.rto = Duration::ZERO;
        assert!(p.validate().is_err());
        p = RtoPlan::RFC8489;
        p.rto = Duration::MAX / 2;
        assert!(p.validate().is_err());
        assert_eq!(p.give_up_after(), Duration::MAX);
        p = RtoPlan::RFC8489;
        p.final_wait_factor = 0;
        assert!(p.validate().is_err());
    }
}
