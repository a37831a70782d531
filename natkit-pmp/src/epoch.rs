//! Tracking a server's epoch across answers (RFC 6886 §3.6, RFC 6887 §8.5).

use std::time::Instant;

use natkit_core::GatewayEpoch;

/// What one answer's epoch says about the server's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochObservation {
    /// The first answer seen from this server.
    First(GatewayEpoch),
    /// A plausible successor of the previous answer: state is intact.
    Continued(GatewayEpoch),
    /// The server lost its state (rebooted, or its daemon restarted):
    /// every mapping made before `previous` must be made again.
    Reset {
        /// The epoch before the reset.
        previous: GatewayEpoch,
        /// The epoch now.
        current: GatewayEpoch,
    },
}

impl EpochObservation {
    /// The epoch now in force.
    pub fn current(&self) -> GatewayEpoch {
        match self {
            EpochObservation::First(e) | EpochObservation::Continued(e) => *e,
            EpochObservation::Reset { current, .. } => *current,
        }
    }

    /// Whether this observation is a reset.
    pub fn is_reset(&self) -> bool {
        matches!(self, EpochObservation::Reset { .. })
    }
}

/// Keeps the previous server and client times of one server and checks
/// every new answer against them by the RFC 6887 §8.5 rule
/// ([`GatewayEpoch::is_continued_by`]).
///
/// The rule tolerates the server clock going back by one second and about
/// 2 s of drift, so a restart that happens within ~2 s of the previous
/// answer's epoch value (e.g. a daemon that restarts right after starting,
/// epoch 1 → 0) is indistinguishable from continuity. Seen with miniupnpd
/// in the NAT lab; real routers report epochs of hours or days.
#[derive(Debug, Clone, Default)]
pub struct EpochTracker {
    last: Option<GatewayEpoch>,
    resets: u64,
}

impl EpochTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`observe`](Self::observe), plus what both mappers do on a reset:
    /// count it in `counters` and log a warning naming `protocol` and
    /// `server` (the gateway lost its mappings).
    pub(crate) fn observe_reporting(
        &mut self,
        server_seconds: u32,
        now: Instant,
        counters: &mut crate::counters::Counters,
        protocol: &str,
        server: &dyn std::fmt::Display,
    ) -> EpochObservation {
        let observation = self.observe(server_seconds, now);
        if let EpochObservation::Reset { previous, current } = observation {
            counters.epoch_resets += 1;
            tracing::warn!(
                server = %server,
                previous = previous.server_seconds,
                current = current.server_seconds,
                "{protocol} gateway epoch reset: its mappings were lost"
            );
        }
        observation
    }

    /// Records the epoch `server_seconds` of an answer received at `now`.
    pub fn observe(&mut self, server_seconds: u32, now: Instant) -> EpochObservation {
        let current = GatewayEpoch {
            server_seconds,
            observed_at: now,
        };
        let obs = match self.last {
            None => EpochObservation::First(current),
            Some(previous) if previous.is_continued_by(&current) => {
                EpochObservation::Continued(current)
            }
            Some(previous) => {
                self.resets += 1;
                EpochObservation::Reset { previous, current }
            }
        };
        // Answers can arrive out of order; never step the reference back in
        // client time.
        if self.last.is_none_or(|l| l.observed_at <= now) {
            self.last = Some(current);
        }
        obs
    }

    /// The last epoch seen.
    pub fn last(&self) -> Option<GatewayEpoch> {
        self.last
    }

    /// How many resets were seen.
    pub fn resets(&self) -> u64 {
        self.resets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn continued_then_reset_on_simulated_clock() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut tr = EpochTracker::new();
        assert!(matches!(
            tr.observe(5000, at(0)),
            EpochObservation::First(_)
        ));
        assert!(matches!(
            tr.observe(5060, at(60)),
            EpochObservation::Continued(_)
        ));
        // Two hours later the router's clock moved as ours did.
        assert!(matches!(
            tr.observe(5060 + 7200, at(60 + 7200)),
            EpochObservation::Continued(_)
        ));
        // The router rebooted: its epoch restarted 40 s ago.
        let obs = tr.observe(40, at(60 + 7200 + 600));
        let EpochObservation::Reset { previous, current } = obs else {
            panic!("reset not detected: {obs:?}")
        };
        assert_eq!(previous.server_seconds, 5060 + 7200);
        assert_eq!(current.server_seconds, 40);
        assert_eq!(tr.resets(), 1);
        // After the reset, the new epoch is the reference.
        assert!(matches!(
            tr.observe(100, at(60 + 7200 + 660)),
            EpochObservation::Continued(_)
        ));
        assert_eq!(tr.last().map(|e| e.server_seconds), Some(100));
    }

    #[test]
    fn restart_to_same_value_is_a_reset() {
        // miniupnpd restarted and happened to report the same seconds.
        let t0 = Instant::now();
        let mut tr = EpochTracker::new();
        tr.observe(10, t0);
        assert!(tr.observe(10, t0 + Duration::from_secs(600)).is_reset());
    }
}
