//! [`PortMapConfig`]: which mechanisms, in which order, within which time.

use std::time::Duration;

use natkit_core::{Gateway, Mechanism};
use natkit_pmp::RetransmitPlan;
use natkit_pmp::natpmp::NatPmpConfig;
use natkit_pmp::pcp::PcpConfig;
use natkit_upnp::DiscoveryConfig;

/// The default preference: PCP, then NAT-PMP, then UPnP IGD.
///
/// PCP first: it checks nonces and carries the richest epoch; NAT-PMP is
/// its predecessor on the same port; UPnP last because its discovery is the
/// slowest and its leases the least reliable.
pub const DEFAULT_ORDER: [Mechanism; 3] = [Mechanism::Pcp, Mechanism::NatPmp, Mechanism::Upnp];

/// The combinator's NAT-PMP and PCP availability probe: a request every
/// 200 ms for 850 ms, so one lost datagram (or a router slow to answer
/// under load, seen in the lab at load 17 on 2 cores) does not hide a
/// mechanism, and the probe still ends within the 900 ms deadline.
pub const PROBE_PLAN: RetransmitPlan = RetransmitPlan {
    initial: Duration::from_millis(200),
    max_interval: Some(Duration::from_millis(200)),
    max_sends: None,
    max_duration: Some(Duration::from_millis(850)),
    jitter: 0.0,
};

/// How an [`AutoMapper`](crate::AutoMapper) probes and maps.
#[derive(Debug, Clone)]
pub struct PortMapConfig {
    /// The gateway to talk to and this host's address towards it; `None`
    /// looks it up ([`natkit_core::default_gateway`]) when the mapper is made.
    pub gateway: Option<Gateway>,
    /// The mechanisms to use, best first. Mechanisms not listed are neither
    /// probed nor used (`[Upnp]` means UPnP only). Duplicates and
    /// [`Mechanism::Stun`] are ignored.
    pub order: Vec<Mechanism>,
    /// The most time a probe of all mechanisms takes; whatever has not
    /// answered by then is reported as timed out. Default 900 ms, so that
    /// "no port mapping protocol" is known within a second.
    pub probe_deadline: Duration,
    /// UPnP discovery. The default waits 750 ms for an IGD (within
    /// [`probe_deadline`](Self::probe_deadline)); its `gateway` is set from
    /// this config's.
    pub upnp: DiscoveryConfig,
    /// NAT-PMP settings (the availability probe is [`PROBE_PLAN`]).
    pub natpmp: NatPmpConfig,
    /// PCP settings. The combinator turns PCP's own NAT-PMP fallback off:
    /// NAT-PMP is probed and used as a mechanism of its own.
    pub pcp: PcpConfig,
}

impl Default for PortMapConfig {
    fn default() -> Self {
        PortMapConfig {
            gateway: None,
            order: DEFAULT_ORDER.to_vec(),
            probe_deadline: Duration::from_millis(900),
            upnp: DiscoveryConfig {
                timeout: Duration::from_millis(750),
                ..DiscoveryConfig::default()
            },
            natpmp: NatPmpConfig {
                probe: PROBE_PLAN,
                ..NatPmpConfig::default()
            },
            pcp: PcpConfig {
                probe: PROBE_PLAN,
                ..PcpConfig::default()
            },
        }
    }
}

impl PortMapConfig {
    /// Sets the order of preference (see [`order`](Self::order)).
    pub fn with_order(mut self, order: impl IntoIterator<Item = Mechanism>) -> Self {
        self.order = order.into_iter().collect();
        self
    }

    /// Only `mechanism`.
    pub fn only(self, mechanism: Mechanism) -> Self {
        self.with_order([mechanism])
    }

    /// The order with duplicates and non-mapping mechanisms removed.
    pub fn effective_order(&self) -> Vec<Mechanism> {
        let mut out: Vec<Mechanism> = Vec::new();
        for m in &self.order {
            if matches!(m, Mechanism::Pcp | Mechanism::NatPmp | Mechanism::Upnp) && !out.contains(m)
            {
                out.push(*m);
            }
        }
        out
    }
}

/// Parses a mechanism name as the command line gives it: `pcp`, `natpmp`
/// (or `nat-pmp`), `upnp`.
pub fn parse_mechanism(name: &str) -> Option<Mechanism> {
    match name.trim().to_ascii_lowercase().as_str() {
        "pcp" => Some(Mechanism::Pcp),
        "natpmp" | "nat-pmp" | "nat_pmp" => Some(Mechanism::NatPmp),
        "upnp" | "igd" => Some(Mechanism::Upnp),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_cleaned() {
        let c = PortMapConfig::default().with_order([
            Mechanism::Upnp,
            Mechanism::Stun,
            Mechanism::Upnp,
            Mechanism::Pcp,
        ]);
        assert_eq!(c.effective_order(), [Mechanism::Upnp, Mechanism::Pcp]);
        assert_eq!(
            PortMapConfig::default().effective_order(),
            DEFAULT_ORDER.to_vec()
        );
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_mechanism("NAT-PMP"), Some(Mechanism::NatPmp));
        assert_eq!(parse_mechanism("pcp"), Some(Mechanism::Pcp));
        assert_eq!(parse_mechanism("upnp"), Some(Mechanism::Upnp));
        assert_eq!(parse_mechanism("stun"), None);
    }

    #[test]
    fn probe_fits_in_a_second() {
        let c = PortMapConfig::default();
        assert!(c.upnp.timeout < c.probe_deadline);
        assert!(c.probe_deadline < Duration::from_secs(1));
        assert!(PROBE_PLAN.max_duration.unwrap() < c.probe_deadline);
        assert!(PROBE_PLAN.validate().is_ok());
    }
}
