//! Retransmission plans and the sans-IO timer that follows one.
//!
//! NAT-PMP (RFC 6886 §3.1): first wait 250 ms, doubling after each send, up
//! to 9 sends. PCP (RFC 6887 §8.1.1): `RT = (1 + RAND) * MIN(2 * RTprev,
//! MRT)` with IRT = 3 s, MRT = 1024 s, RAND uniform in ±0.1, MRC and MRD
//! unlimited. Both are one [`RetransmitPlan`]; [`Retransmitter`] turns a plan
//! into send times and a final give-up deadline, driven by the caller's clock.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The longest single wait a plan can produce (before jitter): one day.
/// Plans without a cap that double many times stop growing here.
pub const LONGEST_WAIT: Duration = Duration::from_secs(86_400);

/// When to retransmit a request and when to give up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetransmitPlan {
    /// The wait after the first send (PCP's IRT).
    pub initial: Duration,
    /// The longest wait between two sends (PCP's MRT); `None` for no cap
    /// other than [`LONGEST_WAIT`].
    pub max_interval: Option<Duration>,
    /// How many sends at most (PCP's MRC); `None` for no limit.
    pub max_sends: Option<u32>,
    /// How long the whole exchange may last (PCP's MRD); `None` for no limit.
    pub max_duration: Option<Duration>,
    /// Random jitter on every wait, as a fraction in `0.0..=0.5`
    /// (PCP: 0.1; NAT-PMP: none).
    pub jitter: f64,
}

impl RetransmitPlan {
    /// RFC 6886 §3.1: 250 ms, doubling, 9 sends (gives up after 127.75 s).
    pub fn natpmp() -> Self {
        RetransmitPlan {
            initial: Duration::from_millis(250),
            max_interval: None,
            max_sends: Some(9),
            max_duration: None,
            jitter: 0.0,
        }
    }

    /// RFC 6887 §8.1.1 exactly: IRT 3 s, MRT 1024 s, ±10 % jitter, no limit
    /// on sends or duration. A request on this plan retries until answered.
    pub fn pcp_rfc() -> Self {
        RetransmitPlan {
            initial: Duration::from_secs(3),
            max_interval: Some(Duration::from_secs(1024)),
            max_sends: None,
            max_duration: None,
            jitter: 0.1,
        }
    }

    /// The RFC 6887 schedule bounded to two minutes (MRD = 120 s), so a
    /// call ends; natkit's default for PCP requests (sends at about 0, 3,
    /// 9, 21, 45 and 93 s).
    pub fn pcp() -> Self {
        RetransmitPlan {
            max_duration: Some(Duration::from_secs(120)),
            ..Self::pcp_rfc()
        }
    }

    /// One send and a 250 ms wait: the availability probe that tells a
    /// caller quickly whether the router speaks the protocol at all.
    pub fn probe() -> Self {
        RetransmitPlan {
            initial: Duration::from_millis(250),
            max_interval: None,
            max_sends: Some(1),
            max_duration: None,
            jitter: 0.0,
        }
    }

    /// 250 ms doubling, 4 sends (gives up after 3.75 s): for labs and
    /// interactive tools that prefer a quick answer to patience.
    pub fn fast() -> Self {
        RetransmitPlan {
            initial: Duration::from_millis(250),
            max_interval: None,
            max_sends: Some(4),
            max_duration: None,
            jitter: 0.0,
        }
    }

    /// Checks that the plan sends at least once and waits a positive time.
    pub fn validate(&self) -> Result<()> {
        if self.initial.is_zero() {
            return Err(Error::InvalidPlan {
                reason: "initial wait is zero",
            });
        }
        if self.max_sends == Some(0) {
            return Err(Error::InvalidPlan {
                reason: "max_sends is zero",
            });
        }
        if self.max_interval.is_some_and(|m| m.is_zero()) {
            return Err(Error::InvalidPlan {
                reason: "max_interval is zero",
            });
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(Error::InvalidPlan {
                reason: "jitter outside 0.0..=0.5",
            });
        }
        Ok(())
    }

    /// Whether the plan ends on its own (a send or duration limit).
    pub fn is_bounded(&self) -> bool {
        self.max_sends.is_some() || self.max_duration.is_some()
    }
}

/// What the caller should do at a timer expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerAction {
    /// The deadline has not passed yet: keep waiting.
    Wait,
    /// Send the request again (this is send number `attempt`, from 1).
    Retransmit {
        /// The send's number; the first send is 1.
        attempt: u32,
    },
    /// The plan is used up: stop.
    GiveUp,
}

/// Follows a [`RetransmitPlan`] on the caller's clock.
#[derive(Debug, Clone)]
pub struct Retransmitter {
    plan: RetransmitPlan,
    started: Instant,
    sends: u32,
    interval: Duration,
    deadline: Instant,
    rng: u64,
}

impl Retransmitter {
    /// Starts the plan: the first send happens at `now`. `jitter_seed`
    /// drives the jitter (take it from the caller's RNG).
    pub fn start(plan: RetransmitPlan, now: Instant, jitter_seed: u64) -> Result<Self> {
        plan.validate()?;
        let mut r = Retransmitter {
            plan,
            started: now,
            sends: 1,
            interval: Duration::ZERO,
            deadline: now,
            rng: jitter_seed,
        };
        r.interval = r.jittered(plan.initial.min(LONGEST_WAIT));
        r.deadline = r.deadline_after(now);
        Ok(r)
    }

    /// The instant the caller must call [`on_timeout`](Self::on_timeout) at.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many sends have been made.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// When the first send happened.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Advances the timer to `now`.
    pub fn on_timeout(&mut self, now: Instant) -> TimerAction {
        if now < self.deadline {
            return TimerAction::Wait;
        }
        let out_of_sends = self.plan.max_sends.is_some_and(|m| self.sends >= m);
        let out_of_time = self
            .plan
            .max_duration
            .is_some_and(|d| now.saturating_duration_since(self.started) >= d);
        if out_of_sends || out_of_time {
            return TimerAction::GiveUp;
        }
        self.sends += 1;
        let doubled = self.interval.saturating_mul(2);
        let capped = match self.plan.max_interval {
            Some(max) => doubled.min(max),
            None => doubled,
        }
        .min(LONGEST_WAIT);
        self.interval = self.jittered(capped);
        self.deadline = self.deadline_after(now);
        TimerAction::Retransmit {
            attempt: self.sends,
        }
    }

    /// `now + interval`, no later than the end of the plan's duration.
    fn deadline_after(&self, now: Instant) -> Instant {
        // The interval is at most LONGEST_WAIT × 1.5, which no clock overflows.
        let deadline = now + self.interval;
        match self
            .plan
            .max_duration
            .and_then(|d| self.started.checked_add(d))
        {
            Some(end) => deadline.min(end),
            None => deadline,
        }
    }

    /// `base * (1 + RAND)`, RAND uniform in ±jitter.
    fn jittered(&mut self, base: Duration) -> Duration {
        if self.plan.jitter == 0.0 {
            return base;
        }
        let unit = self.next_unit();
        let rand = (unit * 2.0 - 1.0) * self.plan.jitter;
        base.mul_f64(1.0 + rand)
    }

    /// A uniform value in `[0, 1)` from a splitmix64 stream.
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a plan to its end on a simulated clock, answering nothing;
    /// returns the send times (ms after start) and the give-up time.
    fn run(plan: RetransmitPlan, seed: u64) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut r = Retransmitter::start(plan, t0, seed).unwrap();
        let mut sends = vec![Duration::ZERO];
        loop {
            let now = r.deadline();
            // A wake-up a little early must not count.
            if now > t0 {
                assert_eq!(
                    r.on_timeout(now - Duration::from_nanos(1)),
                    TimerAction::Wait
                );
            }
            match r.on_timeout(now) {
                TimerAction::Wait => panic!("deadline reached but told to wait"),
                TimerAction::Retransmit { attempt } => {
                    sends.push(now - t0);
                    assert_eq!(attempt as usize, sends.len());
                }
                TimerAction::GiveUp => return (sends, now - t0),
            }
            assert!(sends.len() < 10_000, "plan never ends");
        }
    }

    #[test]
    fn natpmp_schedule_is_rfc_6886() {
        let (sends, gave_up) = run(RetransmitPlan::natpmp(), 1);
        let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750]);
        assert_eq!(gave_up, Duration::from_millis(127_750));
    }

    #[test]
    fn probe_is_one_send_250ms() {
        let (sends, gave_up) = run(RetransmitPlan::probe(), 1);
        assert_eq!(sends, vec![Duration::ZERO]);
        assert_eq!(gave_up, Duration::from_millis(250));
    }

    #[test]
    fn pcp_schedule_jitter_cap_and_mrd() {
        let plan = RetransmitPlan {
            max_duration: Some(Duration::from_secs(5000)),
            ..RetransmitPlan::pcp_rfc()
        };
        let (sends, gave_up) = run(plan, 42);
        // First wait is IRT ± 10 %.
        let first = sends[1].as_secs_f64();
        assert!((2.7..=3.3).contains(&first), "first RT {first}");
        // Every wait is (1 ± 0.1) × min(2 × previous, MRT).
        for w in sends.windows(3) {
            let prev = (w[1] - w[0]).as_secs_f64();
            let this = (w[2] - w[1]).as_secs_f64();
            let base = (2.0 * prev).min(1024.0);
            assert!(
                this >= base * 0.9 - 1e-6 && this <= base * 1.1 + 1e-6,
                "{prev} -> {this}"
            );
        }
        // The cap bites: some wait is near MRT, none above MRT × 1.1.
        let waits: Vec<f64> = sends
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        assert!(waits.iter().any(|w| *w > 900.0));
        assert!(waits.iter().all(|w| *w <= 1024.0 * 1.1 + 1e-6));
        // MRD ends the exchange exactly.
        assert_eq!(gave_up, Duration::from_secs(5000));
        // Same seed, same schedule; another seed, another one.
        assert_eq!(run(plan, 42).0, sends);
        assert_ne!(run(plan, 43).0, sends);
    }

    #[test]
    fn bounded_pcp_default() {
        let (sends, gave_up) = run(RetransmitPlan::pcp(), 7);
        assert_eq!(gave_up, Duration::from_secs(120));
        assert!(sends.len() >= 5 && sends.len() <= 7, "{sends:?}");
        assert!(RetransmitPlan::pcp().is_bounded());
        assert!(!RetransmitPlan::pcp_rfc().is_bounded());
    }

    #[test]
    fn invalid_plans_are_typed_errors() {
        let now = Instant::now();
        for plan in [
            RetransmitPlan {
                initial: Duration::ZERO,
                ..RetransmitPlan::natpmp()
            },
            RetransmitPlan {
                max_sends: Some(0),
                ..RetransmitPlan::natpmp()
            },
            RetransmitPlan {
                jitter: 2.0,
                ..RetransmitPlan::natpmp()
            },
            RetransmitPlan {
                jitter: f64::NAN,
                ..RetransmitPlan::natpmp()
            },
        ] {
            assert!(matches!(
                Retransmitter::start(plan, now, 0),
                Err(Error::InvalidPlan { .. })
            ));
        }
    }
}
