//! What each topology is by its name, and what the reference clients say it is:
//! stund's client `stun` (RFC 3489, against the lab's stund) and coturn's
//! `turnutils_natdiscovery` (RFC 5780, against the lab's coturn).
//!
//! Each reference run starts from fresh NAT state ([`Lab::reset_nat`]): a per-host
//! filter remembers every address the host sent to, so one run's traffic would open
//! the filter the next run measures. natdiscovery runs `-f`, `-m` and `-H` as three
//! separate calls for the same reason: in one call its mapping tests send to the
//! server's second address, which opens a per-host filter before `-f` looks at it.
//!
//! This module is test support: output that does not parse panics with the evidence.

mod natdiscovery;
mod stund;

use std::fmt;
use std::time::Duration;

use crate::builder::LabBuilder;
use crate::lab::Lab;
use crate::spec::{NatKind, Node};

pub use natdiscovery::{
    MappingReport, NatDiscoveryVerdict, parse_natdiscovery_filtering,
    parse_natdiscovery_hairpinning,
};
pub use stund::StundVerdict;

/// coturn's primary port in the lab (`COTURN_PORT1`); its alternate is one more.
pub const COTURN_PORT: u16 = 5478;

/// How long one reference client may take (natdiscovery waits 3 s per unanswered
/// test, stund's client about 1.5 s in all).
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// RFC 4787 mapping behaviour, from the most open to the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatMapping {
    /// The same external endpoint for every destination.
    EndpointIndependent,
    /// One external endpoint per destination address.
    AddressDependent,
    /// One external endpoint per destination address and port.
    AddressAndPortDependent,
}

/// RFC 4787 filtering behaviour, from the most open to the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NatFiltering {
    /// Anyone may send to a mapping.
    EndpointIndependent,
    /// Only addresses the host sent to.
    AddressDependent,
    /// Only address-and-port pairs the host sent to.
    AddressAndPortDependent,
}

/// A NAT's behaviour on the axes the reference clients measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatProfile {
    /// Whether there is a NAT at all (the mapped address is not the host's own).
    pub nat: bool,
    /// The mapping behaviour.
    pub mapping: NatMapping,
    /// The filtering behaviour.
    pub filtering: NatFiltering,
    /// Whether a flow's external port is its internal port.
    pub preserves_ports: bool,
    /// Whether the NAT hairpins; `None` without a NAT (a host sending to its own
    /// address reaches itself whatever the router does).
    pub hairpinning: Option<bool>,
}

impl fmt::Display for NatProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.nat {
            return f.write_str("no NAT");
        }
        write!(
            f,
            "{:?} mapping, {:?} filtering, ports {}",
            self.mapping,
            self.filtering,
            if self.preserves_ports {
                "preserved"
            } else {
                "not preserved"
            }
        )?;
        match self.hairpinning {
            Some(true) => f.write_str(", hairpinning"),
            Some(false) => f.write_str(", no hairpinning"),
            None => Ok(()),
        }
    }
}

impl LabBuilder {
    /// What this topology is by its name: how `natlab.sh` builds its NAT. A double
    /// NAT is two NATs in a row, the outer one port-restricted.
    pub fn expected_profile(&self) -> NatProfile {
        use NatFiltering as F;
        use NatMapping as M;
        let (mapping, filtering) = match self.nat {
            NatKind::FullCone | NatKind::Open => (M::EndpointIndependent, F::EndpointIndependent),
            NatKind::RestrictedCone | NatKind::RestrictedConePerHost => {
                (M::EndpointIndependent, F::AddressDependent)
            }
            NatKind::PortRestricted
            | NatKind::PortRestrictedPerHost
            | NatKind::PortRestrictedNoPreserve => {
                (M::EndpointIndependent, F::AddressAndPortDependent)
            }
            NatKind::AddressDependentMapping => (M::AddressDependent, F::AddressAndPortDependent),
            NatKind::Symmetric => (M::AddressAndPortDependent, F::AddressAndPortDependent),
        };
        let nat = self.nat != NatKind::Open;
        // Two NATs in a row behave as the stricter on each axis; the CGN is
        // port-restricted.
        let (mapping, filtering) = if self.double_nat {
            (
                mapping.max(M::EndpointIndependent),
                filtering.max(F::AddressAndPortDependent),
            )
        } else {
            (mapping, filtering)
        };
        NatProfile {
            nat,
            mapping,
            filtering,
            preserves_ports: self.nat.preserves_ports(),
            hairpinning: nat.then_some(self.hairpin),
        }
    }
}

/// Every topology the lab offers, each with stund and coturn: every [`NatKind`], the
/// double NAT (port-restricted behind the port-restricted CGN), and hairpinning on
/// for port-restricted and full cone (every kind's default is off).
pub fn every_topology() -> Vec<LabBuilder> {
    let base = |kind| LabBuilder::new().nat(kind).stund(true).coturn(true);
    let mut all: Vec<LabBuilder> = NatKind::ALL.into_iter().map(base).collect();
    all.push(base(NatKind::PortRestricted).double_nat(true));
    all.push(base(NatKind::PortRestricted).hairpin(true));
    all.push(base(NatKind::FullCone).hairpin(true));
    all
}

impl LabBuilder {
    /// A short name of the topology for messages: the NAT kind, then `+double-nat`,
    /// `+hairpin`, `+lossN` where they apply.
    pub fn topology_name(&self) -> String {
        let mut name = self.nat.as_arg().to_owned();
        if self.double_nat {
            name.push_str("+double-nat");
        }
        if self.hairpin {
            name.push_str("+hairpin");
        }
        if self.loss > 0 {
            name.push_str(&format!("+loss{}", self.loss));
        }
        name
    }
}

impl Lab {
    /// What this lab's topology is by its name ([`LabBuilder::expected_profile`]).
    pub fn expected_profile(&self) -> NatProfile {
        self.spec().expected_profile()
    }

    /// Both reference clients, each run on fresh NAT state: stund's client, then
    /// natdiscovery's three tests. Needs a lab built with `stund(true)` and
    /// `coturn(true)`.
    ///
    /// # Panics
    /// As [`stund_client`](Self::stund_client) and
    /// [`natdiscovery_verdict`](Self::natdiscovery_verdict).
    pub fn reference_verdicts(&self) -> ReferenceVerdicts {
        self.reset_nat().expect("reset the NAT");
        let stund = self.stund_client(Node::Lan);
        let natdiscovery = self.natdiscovery_verdict();
        ReferenceVerdicts {
            stund,
            natdiscovery,
        }
    }
}

/// Both reference clients' verdicts on one lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceVerdicts {
    /// stund's client.
    pub stund: StundVerdict,
    /// coturn's natdiscovery.
    pub natdiscovery: NatDiscoveryVerdict,
}

impl ReferenceVerdicts {
    /// The profile: natdiscovery's, which measures every axis (stund's client cannot
    /// tell address- from address-and-port-dependent mapping, and reports no
    /// filtering for a dependent mapping).
    pub fn profile(&self) -> NatProfile {
        self.natdiscovery.profile()
    }

    /// The axes on which stund's client contradicts natdiscovery (where it says
    /// anything): `nat`, `mapping`, `filtering`, `ports`, `hairpinning`.
    pub fn disagreements(&self) -> Vec<&'static str> {
        let p = self.profile();
        let s = &self.stund;
        let mut out = Vec::new();
        if s.nat() != p.nat {
            out.push("nat");
        }
        if p.nat {
            if s.mapping_independent() != Some(p.mapping == NatMapping::EndpointIndependent) {
                out.push("mapping");
            }
            if s.filtering().is_some_and(|f| f != p.filtering) {
                out.push("filtering");
            }
            if s.preserves_ports() != Some(p.preserves_ports) {
                out.push("ports");
            }
            if s.hairpinning() != p.hairpinning {
                out.push("hairpinning");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_profile_by_its_name() {
        let p = LabBuilder::new()
            .nat(NatKind::RestrictedConePerHost)
            .expected_profile();
        assert_eq!(
            (p.mapping, p.filtering, p.preserves_ports, p.hairpinning),
            (
                NatMapping::EndpointIndependent,
                NatFiltering::AddressDependent,
                true,
                Some(false)
            )
        );
        let hp = LabBuilder::new().hairpin(true).expected_profile();
        assert_eq!(hp.hairpinning, Some(true));
        let adm = LabBuilder::new()
            .nat(NatKind::AddressDependentMapping)
            .expected_profile();
        assert_eq!(adm.mapping, NatMapping::AddressDependent);
        assert!(!adm.preserves_ports);
        let open = LabBuilder::new().nat(NatKind::Open).expected_profile();
        assert!(!open.nat && open.hairpinning.is_none());
        // Full cone behind the port-restricted CGN is port-restricted.
        let dbl = LabBuilder::new()
            .nat(NatKind::FullCone)
            .double_nat(true)
            .expected_profile();
        assert_eq!(dbl.filtering, NatFiltering::AddressAndPortDependent);
    }
}
