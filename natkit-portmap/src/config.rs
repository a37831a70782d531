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

/// The detection deadline of [`PortMapConfig::only`] for NAT-PMP and PCP.
pub const ONLY_DETECT_DEADLINE: Duration = Duration::from_secs(3);

/// The detection deadline of [`PortMapConfig::only`] for UPnP: the 2 s search, then
/// the description fetch and the first status and address request, which under
/// loss need their own time limits (3 s each, hedged) after the search has
/// found the gateway. With no IGD the search still ends at 2 s.
pub const ONLY_UPNP_DETECT_DEADLINE: Duration = Duration::from_millis(6500);

/// The combinator's NAT-PMP and PCP detection: RFC 6886's
/// schedule (sends at 0, 250 and 750 ms) for 850 ms, so one lost datagram
/// (or a router slow to answer under load, seen in the lab at load 17 on 2
/// cores) does not hide a mechanism, and detection still ends within the
/// 900 ms deadline. [`AutoMapper`](crate::AutoMapper) cuts it at
/// [`PortMapConfig::detect_deadline`] whatever the deadline is; a longer
/// deadline needs a longer plan to use it
/// ([`PortMapConfig::only`] sets both).
pub const DETECT_PLAN: RetransmitPlan = RetransmitPlan::detect_within(Duration::from_millis(850));

/// How an [`AutoMapper`](crate::AutoMapper) detects and maps.
#[derive(Debug, Clone)]
pub struct PortMapConfig {
    /// The gateway to talk to and this host's address towards it; `None`
    /// looks it up ([`natkit_core::default_gateway`]) when the mapper is made.
    pub gateway: Option<Gateway>,
    /// The mechanisms to use, best first. Mechanisms not listed are neither
    /// asked nor used (`[Upnp]` means UPnP only). Duplicates and
    /// [`Mechanism::Stun`] are ignored.
    pub order: Vec<Mechanism>,
    /// The time a detection window lasts; whatever has not answered by then is
    /// reported as timed out, except that NAT-PMP and PCP try a second
    /// window when nothing answered the first (or the other of the two did).
    /// Default 900 ms, so that "no port mapping protocol" is known within a
    /// second from a router that refuses the ports, and within two from one
    /// that drops them.
    pub detect_deadline: Duration,
    /// UPnP discovery. The default waits 750 ms for an IGD (within
    /// [`detect_deadline`](Self::detect_deadline)); its `gateway` is set from
    /// this config's.
    pub upnp: DiscoveryConfig,
    /// NAT-PMP settings (the detection is [`DETECT_PLAN`]).
    pub natpmp: NatPmpConfig,
    /// PCP settings. The combinator turns PCP's own NAT-PMP fallback off:
    /// NAT-PMP is detected and used as a mechanism of its own.
    pub pcp: PcpConfig,
    /// When no mechanism is available, still map through NAT-PMP and PCP
    /// if their detection got no answer at all (a timeout, not a refusal), in
    /// the order, on their full request plans. Off by default, so that
    /// "no port mapping protocol" comes within the detection deadline; on in
    /// [`only`](Self::only), where nothing else could answer instead and a
    /// detection window lost to packet loss must not end the run.
    pub map_unanswered: bool,
}

impl Default for PortMapConfig {
    fn default() -> Self {
        PortMapConfig {
            gateway: None,
            order: DEFAULT_ORDER.to_vec(),
            detect_deadline: Duration::from_millis(900),
            upnp: DiscoveryConfig {
                timeout: Duration::from_millis(750),
                ..DiscoveryConfig::default()
            },
            natpmp: NatPmpConfig {
                detect: DETECT_PLAN,
                ..NatPmpConfig::default()
            },
            pcp: PcpConfig {
                detect: DETECT_PLAN.with_jitter(natkit_pmp::PCP_RAND),
                ..PcpConfig::default()
            },
            map_unanswered: false,
        }
    }
}

impl PortMapConfig {
    /// Sets the order of preference (see [`order`](Self::order)).
    pub fn with_order(mut self, order: impl IntoIterator<Item = Mechanism>) -> Self {
        self.order = order.into_iter().collect();
        self
    }

    /// Only `mechanism`: nothing else could answer instead, so its detection
    /// gets [`ONLY_DETECT_DEADLINE`] (NAT-PMP and PCP: four sends on RFC
    /// 6886's schedule) or [`ONLY_UPNP_DETECT_DEADLINE`] (upnpc's 2 s discovery
    /// wait, then the description and first requests) and, for NAT-PMP
    /// and PCP, no answer in that window still leads to a mapping attempt
    /// on the full request plan ([`map_unanswered`](Self::map_unanswered)).
    pub fn only(mut self, mechanism: Mechanism) -> Self {
        self.detect_deadline = if mechanism == Mechanism::Upnp {
            ONLY_UPNP_DETECT_DEADLINE
        } else {
            ONLY_DETECT_DEADLINE
        };
        let window = ONLY_DETECT_DEADLINE - Duration::from_millis(100);
        self.natpmp.detect = RetransmitPlan::detect_within(window);
        self.pcp.detect = RetransmitPlan::detect_within(window).with_jitter(natkit_pmp::PCP_RAND);
        self.upnp.timeout = Duration::from_secs(2);
        self.map_unanswered = true;
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
    fn one_mechanism_gets_a_longer_detection_and_maps_unanswered() {
        let c = PortMapConfig::default().only(Mechanism::Pcp);
        assert_eq!(c.effective_order(), [Mechanism::Pcp]);
        assert!(c.map_unanswered);
        assert!(!PortMapConfig::default().map_unanswered);
        for plan in [c.pcp.detect, c.natpmp.detect] {
            let window = plan.max_duration.unwrap();
            assert!(window < c.detect_deadline);
            assert_eq!(plan.initial, Duration::from_millis(250));
            assert_eq!(plan.max_interval, None, "RFC 6886 doubling");
        }
        assert!(c.upnp.timeout < c.detect_deadline);
    }

    #[test]
    fn detection_fits_in_a_second() {
        let c = PortMapConfig::default();
        assert!(c.upnp.timeout < c.detect_deadline);
        assert!(c.detect_deadline < Duration::from_secs(1));
        assert!(DETECT_PLAN.max_duration.unwrap() < c.detect_deadline);
        assert!(DETECT_PLAN.validate().is_ok());
    }
}
