//! Engine settings: a plain struct with defaults.

use std::time::Duration;

use crate::error::ConfigError;
use crate::order::PortOrder;
use crate::payload::{PayloadKind, UdpPayloads};
use crate::rate::RateLimit;
use crate::rtt::RttConfig;

/// The most tries per port.
pub const MAX_TRIES: u8 = 16;

/// How a probe run behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// Probes sent to a silent port before giving up on it (1..=16). A
    /// retry waits twice as long as the try before it.
    pub tries: u8,
    /// Retransmission timeout bounds; the timeout itself follows each
    /// target's measured RTT.
    pub rtt: RttConfig,
    /// The most probes in flight. The engine also keeps within the
    /// process's descriptor budget (see [`fd_headroom`](Self::fd_headroom))
    /// and lowers the limit while the system is out of sockets.
    pub max_concurrency: usize,
    /// Descriptors left for the rest of the program when sizing concurrency
    /// from `RLIMIT_NOFILE`.
    pub fd_headroom: usize,
    /// Ignore the descriptor budget and start at `max_concurrency` (the
    /// back-off on `EMFILE` still applies).
    pub ignore_fd_limit: bool,
    /// An optional packets-per-second cap (each try is one packet).
    pub rate: Option<RateLimit>,
    /// The order ports are probed in.
    pub order: PortOrder,
    /// The seed for probe transaction ids, SPIs and nonces.
    pub seed: u64,
    /// What UDP probes carry.
    pub udp_payloads: UdpPayloads,
    /// Extra port → payload assignments, consulted before `udp_payloads`
    /// (e.g. a STUN Binding request for a STUN server on port 19302).
    pub payload_ports: Vec<(u16, PayloadKind)>,
    /// Ask the kernel for ICMP details on TCP probes too (`IP_RECVERR`):
    /// which router refused a connection. Costs one system call per probe.
    pub tcp_icmp_details: bool,
    /// How long to keep retrying when no socket can be had and nothing of
    /// the probe's is in flight, before failing with
    /// [`Error::ResourcesExhausted`](crate::Error::ResourcesExhausted).
    pub give_up_after: Duration,
    /// Events buffered for a slow reader before the engine waits for it.
    pub event_buffer: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            tries: 2,
            rtt: RttConfig::default(),
            max_concurrency: 2048,
            fd_headroom: 128,
            ignore_fd_limit: false,
            rate: None,
            order: PortOrder::default(),
            seed: 0,
            udp_payloads: UdpPayloads::default(),
            payload_ports: Vec::new(),
            tcp_icmp_details: true,
            give_up_after: Duration::from_secs(30),
            event_buffer: 1024,
        }
    }
}

impl ProbeConfig {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tries == 0 || self.tries > MAX_TRIES {
            return Err(ConfigError::Tries(self.tries));
        }
        if !self.rtt.is_valid() {
            return Err(ConfigError::RttBounds);
        }
        if self.rate.is_some_and(|r| !r.is_valid()) {
            return Err(ConfigError::Rate);
        }
        if self.max_concurrency == 0 {
            return Err(ConfigError::Concurrency);
        }
        if self.give_up_after.is_zero() {
            return Err(ConfigError::GiveUp);
        }
        Ok(())
    }

    /// The payload UDP probes of `port` carry.
    pub fn payload_for(&self, port: u16) -> PayloadKind {
        self.payload_ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or_else(|| self.udp_payloads.kind_for(port), |(_, k)| *k)
    }

    /// The in-flight ceiling: `max_concurrency`, within the descriptor
    /// budget unless told to ignore it.
    pub fn concurrency_ceiling(&self) -> usize {
        let budget = if self.ignore_fd_limit {
            None
        } else {
            crate::fdlimit::descriptor_budget(self.fd_headroom)
        };
        budget.map_or(self.max_concurrency, |b| b.min(self.max_concurrency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ProbeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_values_are_named() {
        let bad = |f: fn(&mut ProbeConfig)| {
            let mut c = ProbeConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.tries = 0), ConfigError::Tries(0));
        assert_eq!(bad(|c| c.tries = 17), ConfigError::Tries(17));
        assert_eq!(
            bad(|c| c.rtt.min_rto = Duration::ZERO),
            ConfigError::RttBounds
        );
        assert_eq!(
            bad(|c| c.rate = Some(RateLimit {
                per_second: 0,
                burst: 1
            })),
            ConfigError::Rate
        );
        assert_eq!(bad(|c| c.max_concurrency = 0), ConfigError::Concurrency);
        assert_eq!(
            bad(|c| c.give_up_after = Duration::ZERO),
            ConfigError::GiveUp
        );
    }

    #[test]
    fn extra_payload_ports_come_first() {
        let c = ProbeConfig {
            payload_ports: vec![(19302, PayloadKind::Stun), (53, PayloadKind::Empty)],
            ..ProbeConfig::default()
        };
        assert_eq!(c.payload_for(19302), PayloadKind::Stun);
        assert_eq!(c.payload_for(53), PayloadKind::Empty);
        assert_eq!(c.payload_for(5060), PayloadKind::Sip);
        let c = ProbeConfig {
            udp_payloads: UdpPayloads::Empty,
            payload_ports: vec![(19302, PayloadKind::Stun)],
            ..ProbeConfig::default()
        };
        assert_eq!(c.payload_for(19302), PayloadKind::Stun);
        assert_eq!(c.payload_for(5060), PayloadKind::Empty);
    }

    #[test]
    fn ceiling_respects_the_descriptor_budget() {
        let c = ProbeConfig {
            max_concurrency: usize::MAX,
            ..ProbeConfig::default()
        };
        let ceiling = c.concurrency_ceiling();
        if let Some((soft, _)) = crate::fdlimit::nofile_limits() {
            assert!((ceiling as u64) < soft.max(2));
        }
        let c = ProbeConfig {
            max_concurrency: 5,
            ignore_fd_limit: true,
            ..ProbeConfig::default()
        };
        assert_eq!(c.concurrency_ceiling(), 5);
    }
}
