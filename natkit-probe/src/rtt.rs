//! Round-trip time estimation and retransmission timeouts (RFC 6298).
//!
//! One estimator per target host: every answer (connect, reset, reply, ICMP
//! error) is a sample. Each try is a fresh socket, so a sample always belongs
//! to exactly one transmission and Karn's ambiguity does not arise.

use std::time::Duration;

/// Bounds for the retransmission timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttConfig {
    /// The timeout before the first sample (RFC 6298 §2.1 says 1 s).
    pub initial_rto: Duration,
    /// The smallest timeout. RFC 6298 asks 1 s for TCP data; a scanner
    /// (like nmap's `--min-rtt-timeout`) can go far lower.
    pub min_rto: Duration,
    /// The largest timeout, also the cap on a backed-off retry.
    pub max_rto: Duration,
    /// The clock granularity `G` of RFC 6298 §2.
    pub granularity: Duration,
}

impl Default for RttConfig {
    fn default() -> Self {
        RttConfig {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(3),
            granularity: Duration::from_millis(1),
        }
    }
}

impl RttConfig {
    /// Whether the bounds are consistent: `0 < min ≤ initial ≤ max`.
    pub fn is_valid(&self) -> bool {
        !self.min_rto.is_zero()
            && self.min_rto <= self.initial_rto
            && self.initial_rto <= self.max_rto
    }
}

/// SRTT and RTTVAR of RFC 6298 for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttEstimator {
    config: RttConfig,
    srtt: Option<Duration>,
    rttvar: Duration,
    samples: u64,
}

impl RttEstimator {
    /// An estimator with no samples yet.
    pub fn new(config: RttConfig) -> Self {
        RttEstimator {
            config,
            srtt: None,
            rttvar: Duration::ZERO,
            samples: 0,
        }
    }

    /// Folds in one measured round trip (RFC 6298 §2.2–2.3, α = 1/8, β = 1/4).
    pub fn sample(&mut self, rtt: Duration) {
        self.samples = self.samples.saturating_add(1);
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                self.rttvar = (self.rttvar * 3 + srtt.abs_diff(rtt)) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round-trip time, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip time variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// How many samples have been folded in.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The retransmission timeout: `SRTT + max(G, 4·RTTVAR)`, or the initial
    /// timeout before any sample, clamped to `[min_rto, max_rto]`.
    pub fn rto(&self) -> Duration {
        let raw = match self.srtt {
            None => self.config.initial_rto,
            Some(srtt) => {
                srtt.saturating_add(self.config.granularity.max(self.rttvar.saturating_mul(4)))
            }
        };
        raw.clamp(self.config.min_rto, self.config.max_rto)
    }

    /// How long try number `attempt` (1-based) waits: the RTO doubled for
    /// each earlier silent try (RFC 6298 §5.5), capped at `max_rto`.
    pub fn timeout_for(&self, attempt: u8) -> Duration {
        let doublings = u32::from(attempt.saturating_sub(1)).min(31);
        self.rto()
            .saturating_mul(1u32 << doublings)
            .min(self.config.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wide() -> RttConfig {
        RttConfig {
            initial_rto: ms(1000),
            min_rto: ms(1),
            max_rto: ms(60_000),
            granularity: ms(1),
        }
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = RttEstimator::new(wide());
        assert_eq!(e.rto(), ms(1000));
        e.sample(ms(100));
        assert_eq!(e.srtt(), Some(ms(100)));
        assert_eq!(e.rttvar(), ms(50));
        // RTO = 100 + 4·50
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn later_samples_follow_rfc_6298_gains() {
        let mut e = RttEstimator::new(wide());
        e.sample(ms(100));
        e.sample(ms(200));
        // RTTVAR = 3/4·50 + 1/4·|100 − 200| = 62.5; SRTT = 7/8·100 + 1/8·200 = 112.5
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.rto(), Duration::from_micros(112_500 + 4 * 62_500));
        assert_eq!(e.samples(), 2);
    }

    #[test]
    fn steady_samples_converge_to_srtt_plus_granularity() {
        let mut e = RttEstimator::new(wide());
        for _ in 0..200 {
            e.sample(ms(20));
        }
        assert_eq!(e.srtt(), Some(ms(20)));
        // RTTVAR decays towards zero; G takes over as the floor.
        assert!(e.rttvar() < Duration::from_micros(250));
        assert_eq!(e.rto(), ms(21));
    }

    #[test]
    fn rto_is_clamped() {
        let mut e = RttEstimator::new(RttConfig {
            min_rto: ms(100),
            ..wide()
        });
        e.sample(Duration::from_micros(40));
        assert_eq!(e.rto(), ms(100));
        let mut e = RttEstimator::new(RttConfig {
            max_rto: ms(500),
            ..wide()
        });
        e.sample(ms(400));
        assert_eq!(e.rto(), ms(500));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let mut e = RttEstimator::new(RttConfig {
            max_rto: ms(1000),
            ..wide()
        });
        e.sample(ms(50));
        let rto = e.rto();
        assert_eq!(rto, ms(150));
        assert_eq!(e.timeout_for(1), rto);
        assert_eq!(e.timeout_for(2), rto * 2);
        assert_eq!(e.timeout_for(3), rto * 4);
        assert_eq!(e.timeout_for(4), ms(1000));
        assert_eq!(e.timeout_for(255), ms(1000));
        assert_eq!(e.timeout_for(0), rto);
    }

    #[test]
    fn config_validity() {
        assert!(RttConfig::default().is_valid());
        assert!(
            !RttConfig {
                min_rto: Duration::ZERO,
                ..RttConfig::default()
            }
            .is_valid()
        );
        assert!(
            !RttConfig {
                initial_rto: ms(10),
                ..RttConfig::default()
            }
            .is_valid()
        );
        assert!(
            !RttConfig {
                max_rto: ms(500),
                ..RttConfig::default()
            }
            .is_valid()
        );
    }
}
