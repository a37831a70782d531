//! What the classification means where there is no NAT: on IPv6, where the host's
//! own address is what the internet sees and the router's stateful firewall does all
//! the filtering, and on a public IPv4 host.
//!
//! The RFC 5780 filtering tests measure a firewall as well as a NAT's filter: the
//! answers that come from the server's other address (change IP and port) or other
//! port get in only if the firewall lets in packets from addresses, or ports, this
//! host never sent to. A conntrack firewall (Linux's `ct state established,related
//! accept`, what home routers run for IPv6 and RFC 6092 recommends) matches the whole
//! 5-tuple: an answer from another port is a new flow and is dropped, so it is
//! address-and-port-dependent. The mapping axis does not apply: nothing is translated.

use std::fmt;

use natkit_core::{Connectivity, FilteringBehaviour, NatBehaviour};

/// How the firewall in front of a host without NAT filters inbound UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Firewall {
    /// No filtering seen: answers from an address and port this host never sent to
    /// got in (endpoint-independent filtering), so anyone can reach the ports it
    /// uses.
    Open,
    /// A stateful firewall that lets in packets from addresses this host has sent to,
    /// from any port (address-dependent filtering).
    StatefulAddressDependent,
    /// A stateful firewall that lets in only packets from the exact address and port
    /// this host has sent to (address-and-port-dependent filtering): the usual
    /// connection-tracking firewall of a home router's IPv6.
    StatefulAddressAndPortDependent,
    /// The filtering tests could not tell.
    Inconclusive,
}

impl Firewall {
    /// The firewall a host without NAT has, from its measured behaviour; `None` if
    /// there is a NAT (or no answer at all, or not known whether there is one).
    pub fn of(b: &NatBehaviour) -> Option<Firewall> {
        if b.connectivity != Connectivity::NoNat {
            return None;
        }
        Some(match b.filtering {
            FilteringBehaviour::EndpointIndependent => Firewall::Open,
            FilteringBehaviour::AddressDependent => Firewall::StatefulAddressDependent,
            FilteringBehaviour::AddressAndPortDependent => {
                Firewall::StatefulAddressAndPortDependent
            }
            FilteringBehaviour::Inconclusive => Firewall::Inconclusive,
        })
    }

    /// The snake_case machine name, e.g. `stateful_address_and_port_dependent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Firewall::Open => "open",
            Firewall::StatefulAddressDependent => "stateful_address_dependent",
            Firewall::StatefulAddressAndPortDependent => "stateful_address_and_port_dependent",
            Firewall::Inconclusive => "inconclusive",
        }
    }

    /// What this means for applications, in plain words.
    pub fn meaning(self) -> &'static str {
        match self {
            Firewall::Open => {
                "no NAT and no filtering seen: anyone can reach the UDP ports this host uses"
            }
            Firewall::StatefulAddressDependent => {
                "no NAT; a stateful firewall lets in only hosts this host has sent to (from \
                 any of their ports); servers on this host need a pinhole"
            }
            Firewall::StatefulAddressAndPortDependent => {
                "no NAT; a stateful firewall lets in only the exact address and port this \
                 host has sent to; servers on this host need a pinhole, peers connect by \
                 both sending first"
            }
            Firewall::Inconclusive => "no NAT; the tests could not tell how the firewall filters",
        }
    }
}

impl fmt::Display for Firewall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::MappingBehaviour;

    #[test]
    fn only_a_host_without_nat_has_a_firewall_verdict() {
        let mut b = NatBehaviour {
            connectivity: Connectivity::NoNat,
            mapping: MappingBehaviour::EndpointIndependent,
            filtering: FilteringBehaviour::AddressAndPortDependent,
            ..NatBehaviour::UNKNOWN
        };
        assert_eq!(
            Firewall::of(&b),
            Some(Firewall::StatefulAddressAndPortDependent)
        );
        b.filtering = FilteringBehaviour::EndpointIndependent;
        assert_eq!(Firewall::of(&b), Some(Firewall::Open));
        b.filtering = FilteringBehaviour::AddressDependent;
        assert_eq!(Firewall::of(&b), Some(Firewall::StatefulAddressDependent));
        b.filtering = FilteringBehaviour::Inconclusive;
        assert_eq!(Firewall::of(&b), Some(Firewall::Inconclusive));
        for c in [
            Connectivity::Nat,
            Connectivity::UdpBlocked,
            Connectivity::Inconclusive,
        ] {
            b.connectivity = c;
            assert_eq!(Firewall::of(&b), None);
        }
        assert!(!Firewall::Open.meaning().contains("cone"));
    }
}
