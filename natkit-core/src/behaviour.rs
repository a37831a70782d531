//! NAT behaviour in RFC 4787 terms, and the legacy RFC 3489 names derived
//! from it.
//!
//! natkit describes a NAT by two independent axes, each measured
//! (RFC 5780 §4.3 and §4.4): how it *maps* (does the external port depend on
//! where the packets go?) and how it *filters* (whose packets does it let
//! back in?). The classic names — full cone, restricted cone,
//! port-restricted cone, symmetric — are a lossy summary and are only ever
//! derived from the axes ([`NatBehaviour::legacy_type`]), never the reverse.

use std::fmt;

/// How the NAT chooses the external address and port for a flow
/// (RFC 4787 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum MappingBehaviour {
    /// The same external endpoint for every destination
    /// ("endpoint-independent mapping"; the only kind that lets peers
    /// reach each other without relaying).
    EndpointIndependent,
    /// A new external endpoint per destination address.
    AddressDependent,
    /// A new external endpoint per destination address and port.
    AddressAndPortDependent,
    /// The tests could not tell (no answer, or conflicting answers).
    Inconclusive,
}

/// Whose packets the NAT lets in to a mapping (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FilteringBehaviour {
    /// Anyone, once the mapping exists.
    EndpointIndependent,
    /// Only addresses the host has sent to.
    AddressDependent,
    /// Only address-and-port pairs the host has sent to.
    AddressAndPortDependent,
    /// The tests could not tell.
    Inconclusive,
}

macro_rules! axis_names {
    ($t:ty) => {
        impl $t {
            /// The snake_case machine name, e.g. `endpoint_independent`.
            pub fn as_str(self) -> &'static str {
                match self {
                    Self::EndpointIndependent => "endpoint_independent",
                    Self::AddressDependent => "address_dependent",
                    Self::AddressAndPortDependent => "address_and_port_dependent",
                    Self::Inconclusive => "inconclusive",
                }
            }

            /// Every value, for exhaustive checks.
            pub const ALL: [Self; 4] = [
                Self::EndpointIndependent,
                Self::AddressDependent,
                Self::AddressAndPortDependent,
                Self::Inconclusive,
            ];
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
axis_names!(MappingBehaviour);
axis_names!(FilteringBehaviour);

/// Whether UDP reached the test server at all, and whether a NAT was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Connectivity {
    /// No answer from any server: UDP is blocked (or no server is up).
    UdpBlocked,
    /// The server saw this host's own address: no NAT in the way.
    NoNat,
    /// The server saw another address: a NAT (or several) is in the way.
    Nat,
    /// Not determined.
    Inconclusive,
}

/// The legacy RFC 3489 NAT type names, derived from the RFC 4787 axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LegacyNatType {
    /// No NAT and no filtering: the host is on the open internet.
    Open,
    /// No NAT, but a firewall filters inbound traffic to destinations the
    /// host has sent to (RFC 3489 "symmetric UDP firewall").
    SymmetricUdpFirewall,
    /// Endpoint-independent mapping and filtering.
    FullCone,
    /// Endpoint-independent mapping, address-dependent filtering.
    RestrictedCone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestrictedCone,
    /// Mapping depends on the destination.
    Symmetric,
    /// UDP does not get through at all.
    UdpBlocked,
    /// Not enough evidence to name it.
    Inconclusive,
}

impl LegacyNatType {
    /// The snake_case machine name, e.g. `port_restricted_cone`.
    pub fn as_str(self) -> &'static str {
        match self {
            LegacyNatType::Open => "open",
            LegacyNatType::SymmetricUdpFirewall => "symmetric_udp_firewall",
            LegacyNatType::FullCone => "full_cone",
            LegacyNatType::RestrictedCone => "restricted_cone",
            LegacyNatType::PortRestrictedCone => "port_restricted_cone",
            LegacyNatType::Symmetric => "symmetric",
            LegacyNatType::UdpBlocked => "udp_blocked",
            LegacyNatType::Inconclusive => "inconclusive",
        }
    }

    /// What this type means for applications, in plain words.
    pub fn meaning(self) -> &'static str {
        match self {
            LegacyNatType::Open => {
                "no NAT and no filtering: anyone on the internet can reach this host's UDP ports"
            }
            LegacyNatType::SymmetricUdpFirewall => {
                "no NAT, but a firewall only lets in answers from hosts this host has contacted; \
                 servers on this host need the firewall opened"
            }
            LegacyNatType::FullCone => {
                "once a port is used outbound, anyone can reach it: peer-to-peer and \
                 incoming calls work without relaying"
            }
            LegacyNatType::RestrictedCone => {
                "only hosts this host has sent to can answer; peer-to-peer works with \
                 hole punching, unsolicited inbound traffic is dropped"
            }
            LegacyNatType::PortRestrictedCone => {
                "only the exact address and port this host sent to can answer; peers behind \
                 their own NAT can't reach you without relaying, and apps that need full cone \
                 will fail"
            }
            LegacyNatType::Symmetric => {
                "every destination gets a different external port; peer-to-peer connections \
                 need a relay (TURN), and port predictions fail"
            }
            LegacyNatType::UdpBlocked => {
                "UDP does not get out (or no answer comes back): voice, video and VPNs over UDP \
                 will fail"
            }
            LegacyNatType::Inconclusive => "the tests could not tell what kind of NAT this is",
        }
    }
}

impl fmt::Display for LegacyNatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A NAT's measured behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NatBehaviour {
    /// Whether UDP got through and whether a NAT was seen.
    pub connectivity: Connectivity,
    /// The mapping axis.
    pub mapping: MappingBehaviour,
    /// The filtering axis.
    pub filtering: FilteringBehaviour,
    /// Whether the NAT loops back traffic sent to its own external address
    /// (RFC 5780 §4.6); `None` when not tested.
    pub hairpinning: Option<bool>,
    /// Whether the external port equals the local port; `None` when not
    /// observed.
    pub port_preservation: Option<bool>,
}

impl NatBehaviour {
    /// A behaviour with nothing known.
    pub const UNKNOWN: NatBehaviour = NatBehaviour {
        connectivity: Connectivity::Inconclusive,
        mapping: MappingBehaviour::Inconclusive,
        filtering: FilteringBehaviour::Inconclusive,
        hairpinning: None,
        port_preservation: None,
    };

    /// The legacy RFC 3489 name, derived from the two axes.
    ///
    /// - UDP blocked → `udp_blocked`; connectivity unknown → `inconclusive`.
    /// - No NAT: filtering endpoint-independent → `open`; address or
    ///   address-and-port dependent → `symmetric_udp_firewall`.
    /// - A NAT: mapping dependent on the destination → `symmetric` (whatever
    ///   the filtering); endpoint-independent mapping → full cone,
    ///   restricted cone or port-restricted cone by the filtering.
    /// - Any axis the name needs that is inconclusive → `inconclusive`.
    pub fn legacy_type(&self) -> LegacyNatType {
        use FilteringBehaviour as F;
        use MappingBehaviour as M;
        match self.connectivity {
            Connectivity::UdpBlocked => LegacyNatType::UdpBlocked,
            Connectivity::Inconclusive => LegacyNatType::Inconclusive,
            Connectivity::NoNat => match self.filtering {
                F::EndpointIndependent => LegacyNatType::Open,
                F::AddressDependent | F::AddressAndPortDependent => {
                    LegacyNatType::SymmetricUdpFirewall
                }
                F::Inconclusive => LegacyNatType::Inconclusive,
            },
            Connectivity::Nat => match (self.mapping, self.filtering) {
                (M::AddressDependent | M::AddressAndPortDependent, _) => LegacyNatType::Symmetric,
                (M::EndpointIndependent, F::EndpointIndependent) => LegacyNatType::FullCone,
                (M::EndpointIndependent, F::AddressDependent) => LegacyNatType::RestrictedCone,
                (M::EndpointIndependent, F::AddressAndPortDependent) => {
                    LegacyNatType::PortRestrictedCone
                }
                (M::EndpointIndependent, F::Inconclusive) | (M::Inconclusive, _) => {
                    LegacyNatType::Inconclusive
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nat(m: MappingBehaviour, f: FilteringBehaviour) -> NatBehaviour {
        NatBehaviour {
            connectivity: Connectivity::Nat,
            mapping: m,
            filtering: f,
            ..NatBehaviour::UNKNOWN
        }
    }

    #[test]
    fn classic_types() {
        use FilteringBehaviour as F;
        use MappingBehaviour as M;
        let ei = M::EndpointIndependent;
        assert_eq!(
            nat(ei, F::EndpointIndependent).legacy_type(),
            LegacyNatType::FullCone
        );
        assert_eq!(
            nat(ei, F::AddressDependent).legacy_type(),
            LegacyNatType::RestrictedCone
        );
        assert_eq!(
            nat(ei, F::AddressAndPortDependent).legacy_type(),
            LegacyNatType::PortRestrictedCone
        );
        assert_eq!(
            nat(M::AddressAndPortDependent, F::AddressAndPortDependent).legacy_type(),
            LegacyNatType::Symmetric
        );
        assert_eq!(
            nat(ei, F::Inconclusive).legacy_type(),
            LegacyNatType::Inconclusive
        );
        let open = NatBehaviour {
            connectivity: Connectivity::NoNat,
            filtering: F::EndpointIndependent,
            ..NatBehaviour::UNKNOWN
        };
        assert_eq!(open.legacy_type(), LegacyNatType::Open);
        assert_eq!(
            LegacyNatType::PortRestrictedCone.as_str(),
            "port_restricted_cone"
        );
        assert_eq!(
            M::AddressAndPortDependent.to_string(),
            "address_and_port_dependent"
        );
    }

    fn any_mapping() -> impl Strategy<Value = MappingBehaviour> {
        prop::sample::select(MappingBehaviour::ALL.to_vec())
    }
    fn any_filtering() -> impl Strategy<Value = FilteringBehaviour> {
        prop::sample::select(FilteringBehaviour::ALL.to_vec())
    }
    fn any_connectivity() -> impl Strategy<Value = Connectivity> {
        prop::sample::select(vec![
            Connectivity::UdpBlocked,
            Connectivity::NoNat,
            Connectivity::Nat,
            Connectivity::Inconclusive,
        ])
    }

    proptest! {
        /// The derivation is total and agrees with the definitions: each
        /// legacy name implies the axis values that define it.
        #[test]
        fn legacy_name_implies_its_axes(
            c in any_connectivity(), m in any_mapping(), f in any_filtering(),
            h in any::<Option<bool>>(), p in any::<Option<bool>>(),
        ) {
            use FilteringBehaviour as F;
            use MappingBehaviour as M;
            let b = NatBehaviour { connectivity: c, mapping: m, filtering: f,
                                   hairpinning: h, port_preservation: p };
            let t = b.legacy_type();
            match t {
                LegacyNatType::UdpBlocked => prop_assert_eq!(c, Connectivity::UdpBlocked),
                LegacyNatType::Open => {
                    prop_assert_eq!(c, Connectivity::NoNat);
                    prop_assert_eq!(f, F::EndpointIndependent);
                }
                LegacyNatType::SymmetricUdpFirewall => {
                    prop_assert_eq!(c, Connectivity::NoNat);
                    prop_assert!(matches!(f, F::AddressDependent | F::AddressAndPortDependent));
                }
                LegacyNatType::FullCone => prop_assert_eq!((c, m, f),
                    (Connectivity::Nat, M::EndpointIndependent, F::EndpointIndependent)),
                LegacyNatType::RestrictedCone => prop_assert_eq!((c, m, f),
                    (Connectivity::Nat, M::EndpointIndependent, F::AddressDependent)),
                LegacyNatType::PortRestrictedCone => prop_assert_eq!((c, m, f),
                    (Connectivity::Nat, M::EndpointIndependent, F::AddressAndPortDependent)),
                LegacyNatType::Symmetric => {
                    prop_assert_eq!(c, Connectivity::Nat);
                    prop_assert!(matches!(m, M::AddressDependent | M::AddressAndPortDependent));
                }
                LegacyNatType::Inconclusive => {
                    // Inconclusive only when an axis the name needs is unknown.
                    let needed_unknown = c == Connectivity::Inconclusive
                        || (c == Connectivity::NoNat && f == F::Inconclusive)
                        || (c == Connectivity::Nat && (m == M::Inconclusive
                            || (m == M::EndpointIndependent && f == F::Inconclusive)));
                    prop_assert!(needed_unknown);
                }
            }
            // Hairpinning and port preservation never change the name.
            let plain = NatBehaviour { hairpinning: None, port_preservation: None, ..b };
            prop_assert_eq!(plain.legacy_type(), t);
        }

        /// Learning more never turns a definite answer into another definite
        /// answer: replacing an inconclusive axis by a value either keeps the
        /// name or refines `inconclusive` into something definite.
        #[test]
        fn refining_an_axis_is_monotonic(
            c in any_connectivity(), m in any_mapping(), f in any_filtering(),
            m2 in any_mapping(), f2 in any_filtering(),
        ) {
            let b = NatBehaviour { connectivity: c, mapping: m, filtering: f,
                                   ..NatBehaviour::UNKNOWN };
            let refined = NatBehaviour {
                mapping: if m == MappingBehaviour::Inconclusive { m2 } else { m },
                filtering: if f == FilteringBehaviour::Inconclusive { f2 } else { f },
                ..b
            };
            let before = b.legacy_type();
            if before != LegacyNatType::Inconclusive {
                prop_assert_eq!(refined.legacy_type(), before);
            }
        }
    }
}
