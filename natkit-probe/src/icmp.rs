//! ICMP errors a probe can draw, and what each one says about a port.
//!
//! The kernel hands these over through the socket error queue
//! (`IP_RECVERR`/`IPV6_RECVERR`); this module is the sans-IO half: it names
//! the type/code pair and turns it, together with who sent it, into a port
//! state. Following nmap's rules, with one refinement: a *port unreachable*
//! means "closed" only when the target itself sent it; from any other host
//! (a router or firewall on the way rejecting on the target's behalf) it
//! means "filtered".

use std::fmt;
use std::net::IpAddr;

use crate::port_verdict::PortState;

/// Which ICMP an error came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum IcmpVersion {
    /// ICMP for IPv4 (RFC 792).
    V4,
    /// ICMPv6 (RFC 4443).
    V6,
}

/// An ICMP error type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IcmpKind {
    /// ICMP or ICMPv6.
    pub version: IcmpVersion,
    /// The ICMP type (3 = destination unreachable for IPv4, 1 for IPv6).
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub icmp_type: u8,
    /// The ICMP code.
    #[cfg_attr(feature = "serde", serde(rename = "code"))]
    pub icmp_code: u8,
}

/// What an ICMP error means for the probed port, before asking who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meaning {
    /// Port unreachable: nothing listens (if the target says so).
    PortUnreachable,
    /// Any other unreachable, or the probe died on the way: filtered.
    Blocked,
    /// Says nothing about the port (packet too big, parameter problem …).
    Inconclusive,
}

impl IcmpKind {
    /// An ICMPv4 type/code.
    pub const fn v4(icmp_type: u8, icmp_code: u8) -> Self {
        IcmpKind {
            version: IcmpVersion::V4,
            icmp_type,
            icmp_code,
        }
    }

    /// An ICMPv6 type/code.
    pub const fn v6(icmp_type: u8, icmp_code: u8) -> Self {
        IcmpKind {
            version: IcmpVersion::V6,
            icmp_type,
            icmp_code,
        }
    }

    fn meaning(self) -> Meaning {
        match (self.version, self.icmp_type, self.icmp_code) {
            (IcmpVersion::V4, 3, 3) | (IcmpVersion::V6, 1, 4) => Meaning::PortUnreachable,
            // Fragmentation needed: the probe was too big, not refused.
            (IcmpVersion::V4, 3, 4) => Meaning::Inconclusive,
            (IcmpVersion::V4, 3, 0..=15) | (IcmpVersion::V6, 1, 0..=6) => Meaning::Blocked,
            // Time exceeded: the probe never reached the target.
            (IcmpVersion::V4, 11, _) | (IcmpVersion::V6, 3, _) => Meaning::Blocked,
            _ => Meaning::Inconclusive,
        }
    }

    /// Whether this is a *port unreachable*.
    pub fn is_port_unreachable(self) -> bool {
        self.meaning() == Meaning::PortUnreachable
    }

    /// A short English name of the type/code, e.g. `port unreachable`.
    pub fn describe(self) -> &'static str {
        match (self.version, self.icmp_type, self.icmp_code) {
            (IcmpVersion::V4, 3, 0) => "network unreachable",
            (IcmpVersion::V4, 3, 1) => "host unreachable",
            (IcmpVersion::V4, 3, 2) => "protocol unreachable",
            (IcmpVersion::V4, 3, 3) | (IcmpVersion::V6, 1, 4) => "port unreachable",
            (IcmpVersion::V4, 3, 4) => "fragmentation needed",
            (IcmpVersion::V4, 3, 5) => "source route failed",
            (IcmpVersion::V4, 3, 6) => "destination network unknown",
            (IcmpVersion::V4, 3, 7) => "destination host unknown",
            (IcmpVersion::V4, 3, 8) => "source host isolated",
            (IcmpVersion::V4, 3, 9) => "network administratively prohibited",
            (IcmpVersion::V4, 3, 10) => "host administratively prohibited",
            (IcmpVersion::V4, 3, 11) => "network unreachable for type of service",
            (IcmpVersion::V4, 3, 12) => "host unreachable for type of service",
            (IcmpVersion::V4, 3, 13) => "communication administratively prohibited",
            (IcmpVersion::V4, 3, 14) => "host precedence violation",
            (IcmpVersion::V4, 3, 15) => "precedence cutoff in effect",
            (IcmpVersion::V4, 3, _) => "destination unreachable",
            (IcmpVersion::V4, 11, _) | (IcmpVersion::V6, 3, _) => "time exceeded",
            (IcmpVersion::V4, 12, _) | (IcmpVersion::V6, 4, _) => "parameter problem",
            (IcmpVersion::V4, 4, _) => "source quench",
            (IcmpVersion::V6, 1, 0) => "no route to destination",
            (IcmpVersion::V6, 1, 1) => "communication administratively prohibited",
            (IcmpVersion::V6, 1, 2) => "beyond scope of source address",
            (IcmpVersion::V6, 1, 3) => "address unreachable",
            (IcmpVersion::V6, 1, 5) => "source address failed ingress/egress policy",
            (IcmpVersion::V6, 1, 6) => "reject route to destination",
            (IcmpVersion::V6, 1, _) => "destination unreachable",
            (IcmpVersion::V6, 2, _) => "packet too big",
            _ => "unknown ICMP error",
        }
    }
}

impl fmt::Display for IcmpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.version {
            IcmpVersion::V4 => "ICMP",
            IcmpVersion::V6 => "ICMPv6",
        };
        write!(
            f,
            "{v} type {} code {} ({})",
            self.icmp_type,
            self.icmp_code,
            self.describe()
        )
    }
}

/// An ICMP error received for a probe: what it was, who sent it, and the
/// errno the kernel made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IcmpReport {
    /// The ICMP type and code.
    pub kind: IcmpKind,
    /// The host that sent the ICMP error, when the kernel reported it.
    pub offender: Option<IpAddr>,
    /// The errno the kernel mapped the error to (e.g. `ECONNREFUSED`).
    pub errno: i32,
}

/// What an ICMP report concludes about a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpConclusion {
    /// The port state it implies.
    pub state: PortState,
    /// Whether the target itself sent the error.
    pub from_target: bool,
}

impl IcmpReport {
    /// Whether `target` sent this error (an IPv4-mapped offender counts as
    /// its IPv4 address).
    pub fn is_from(&self, target: IpAddr) -> bool {
        self.offender
            .is_some_and(|o| o.to_canonical() == target.to_canonical())
    }

    /// The port state this error implies for a probe of `target`, or `None`
    /// when it says nothing about the port (the probe keeps waiting).
    pub fn conclude(&self, target: IpAddr) -> Option<IcmpConclusion> {
        let from_target = self.is_from(target);
        let state = match self.kind.meaning() {
            Meaning::PortUnreachable if from_target => PortState::Closed,
            Meaning::PortUnreachable | Meaning::Blocked => PortState::Filtered,
            Meaning::Inconclusive => return None,
        };
        Some(IcmpConclusion { state, from_target })
    }
}

impl fmt::Display for IcmpReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offender {
            Some(o) => write!(f, "{} from {o}", self.kind),
            None => write!(f, "{} from an unknown sender", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const TARGET: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const ROUTER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));

    fn report(kind: IcmpKind, offender: Option<IpAddr>) -> IcmpReport {
        IcmpReport {
            kind,
            offender,
            errno: 111,
        }
    }

    #[test]
    fn port_unreachable_from_the_target_is_closed() {
        let c = report(IcmpKind::v4(3, 3), Some(TARGET))
            .conclude(TARGET)
            .unwrap();
        assert_eq!(c.state, PortState::Closed);
        assert!(c.from_target);
    }

    #[test]
    fn port_unreachable_from_a_router_is_filtered() {
        let c = report(IcmpKind::v4(3, 3), Some(ROUTER))
            .conclude(TARGET)
            .unwrap();
        assert_eq!(c.state, PortState::Filtered);
        assert!(!c.from_target);
        // An unknown sender is not the target either.
        let c = report(IcmpKind::v4(3, 3), None).conclude(TARGET).unwrap();
        assert_eq!(c.state, PortState::Filtered);
    }

    #[test]
    fn other_unreachables_and_time_exceeded_are_filtered() {
        for code in [0, 1, 2, 9, 10, 13] {
            let c = report(IcmpKind::v4(3, code), Some(TARGET))
                .conclude(TARGET)
                .unwrap();
            assert_eq!(c.state, PortState::Filtered, "code {code}");
        }
        let c = report(IcmpKind::v4(11, 0), Some(ROUTER))
            .conclude(TARGET)
            .unwrap();
        assert_eq!(c.state, PortState::Filtered);
    }

    #[test]
    fn inconclusive_errors_say_nothing() {
        assert_eq!(
            report(IcmpKind::v4(3, 4), Some(ROUTER)).conclude(TARGET),
            None
        );
        assert_eq!(
            report(IcmpKind::v4(12, 0), Some(ROUTER)).conclude(TARGET),
            None
        );
        assert_eq!(
            report(IcmpKind::v6(2, 0), Some(ROUTER)).conclude(TARGET),
            None
        );
    }

    #[test]
    fn icmpv6_codes() {
        let t6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
        let r6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let c = report(IcmpKind::v6(1, 4), Some(t6)).conclude(t6).unwrap();
        assert_eq!(c.state, PortState::Closed);
        let c = report(IcmpKind::v6(1, 4), Some(r6)).conclude(t6).unwrap();
        assert_eq!(c.state, PortState::Filtered);
        let c = report(IcmpKind::v6(1, 1), Some(r6)).conclude(t6).unwrap();
        assert_eq!(c.state, PortState::Filtered);
        // ICMPv6 type 3 code 4 is not a port unreachable.
        assert!(!IcmpKind::v6(3, 4).is_port_unreachable());
        assert!(!IcmpKind::v4(1, 4).is_port_unreachable());
    }

    /// Each ICMPv6 error concludes what its IPv4 counterpart does, from
    /// the target and from a router alike: the verdicts do not depend on
    /// the family.
    #[test]
    fn icmpv6_errors_conclude_like_their_ipv4_counterparts() {
        let t6 = IpAddr::V6(Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x77, 0, 0, 0, 2));
        let r6 = IpAddr::V6(Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x66, 0, 0, 0, 2));
        let pairs = [
            // no route to destination / network unreachable
            (IcmpKind::v6(1, 0), IcmpKind::v4(3, 0)),
            // communication administratively prohibited, both families
            (IcmpKind::v6(1, 1), IcmpKind::v4(3, 13)),
            // beyond scope of source / host unreachable
            (IcmpKind::v6(1, 2), IcmpKind::v4(3, 1)),
            // address unreachable / host unreachable
            (IcmpKind::v6(1, 3), IcmpKind::v4(3, 1)),
            (IcmpKind::v6(1, 4), IcmpKind::v4(3, 3)),
            // source address failed policy, reject route / admin prohibited
            (IcmpKind::v6(1, 5), IcmpKind::v4(3, 13)),
            (IcmpKind::v6(1, 6), IcmpKind::v4(3, 13)),
            // packet too big / fragmentation needed
            (IcmpKind::v6(2, 0), IcmpKind::v4(3, 4)),
            (IcmpKind::v6(3, 0), IcmpKind::v4(11, 0)),
            (IcmpKind::v6(4, 0), IcmpKind::v4(12, 0)),
        ];
        for (v6, v4) in pairs {
            for (from6, from4) in [(t6, TARGET), (r6, ROUTER)] {
                let got6 = report(v6, Some(from6)).conclude(t6);
                let got4 = report(v4, Some(from4)).conclude(TARGET);
                assert_eq!(got6, got4, "{v6} from {from6} vs {v4} from {from4}");
            }
            assert_eq!(v6.is_port_unreachable(), v4.is_port_unreachable(), "{v6}");
        }
    }

    #[test]
    fn mapped_offender_matches_ipv4_target() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
        assert!(report(IcmpKind::v4(3, 3), Some(mapped)).is_from(TARGET));
    }

    #[test]
    fn display_names_type_code_and_sender() {
        let r = report(IcmpKind::v4(3, 13), Some(ROUTER));
        assert_eq!(
            r.to_string(),
            "ICMP type 3 code 13 (communication administratively prohibited) from 198.51.100.1"
        );
        let r = report(IcmpKind::v6(1, 4), None);
        assert_eq!(
            r.to_string(),
            "ICMPv6 type 1 code 4 (port unreachable) from an unknown sender"
        );
    }
}
