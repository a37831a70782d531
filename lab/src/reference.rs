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

use std::fmt;
use std::net::SocketAddrV4;
use std::time::Duration;

use crate::builder::LabBuilder;
use crate::example::dump_output;
use crate::lab::Lab;
use crate::spec::{NatKind, Node};

/// coturn's primary port in the lab (`COTURN_PORT1`); its alternate is one more.
pub const COTURN_PORT: u16 = 5478;

/// How long one reference client may take (natdiscovery waits 3 s per unanswered
/// test, stund's client about 1.5 s in all).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

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
}

// ---------------------------------------------------------------------------------
// stund's client

/// What stund's client `stun STUN1 -v` concluded (stun-client 0.97).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StundVerdict {
    /// The "Primary:" line, e.g. `Independent Mapping, Port Dependent Filter,
    /// preserves ports, no hairpin`.
    pub primary: String,
    /// The first MappedAddress (test I, to STUN1:3478).
    pub mapped: SocketAddrV4,
    /// The exit code. Observed: bits 0x0E are the type (0x00 open, 0x02 independent
    /// filter, 0x04 address dependent filter, 0x06 port dependent filter, 0x08
    /// dependent mapping, 0x0C blocked), 0x01 "preserves ports", 0x10 "no hairpin".
    pub code: i32,
}

impl StundVerdict {
    /// Parses the client's stdout+stderr and exit code; `None` without a "Primary:"
    /// line or a MappedAddress.
    pub fn parse(output: &str, code: i32) -> Option<StundVerdict> {
        let primary = output
            .lines()
            .find_map(|l| l.strip_prefix("Primary: "))?
            .trim()
            .to_owned();
        let mapped = output
            .lines()
            .find_map(|l| l.trim().strip_prefix("MappedAddress = "))?
            .trim()
            .parse()
            .ok()?;
        Some(StundVerdict {
            primary,
            mapped,
            code,
        })
    }

    /// The "Primary:" line's parts, e.g. `["Independent Mapping", "Port Dependent
    /// Filter", "preserves ports", "no hairpin"]`.
    pub fn parts(&self) -> Vec<&str> {
        self.primary.split(", ").map(str::trim).collect()
    }

    /// The exit code's type bits (see [`code`](Self::code)).
    pub fn type_bits(&self) -> i32 {
        self.code & 0x0e
    }

    /// Whether it saw a NAT ("Open" means none).
    pub fn nat(&self) -> bool {
        !self.parts().contains(&"Open")
    }

    /// Whether the mapping is endpoint independent; `None` without a NAT. The client
    /// tells only independent from dependent (address or address-and-port).
    pub fn mapping_independent(&self) -> Option<bool> {
        self.says(&[("Independent Mapping", true), ("Dependent Mapping", false)])
    }

    /// The value of the first of `words` that the "Primary:" line holds.
    fn says<T: Copy>(&self, words: &[(&str, T)]) -> Option<T> {
        let parts = self.parts();
        words
            .iter()
            .find(|(w, _)| parts.contains(w))
            .map(|&(_, t)| t)
    }

    /// The filtering, which the client reports only for an independent mapping.
    pub fn filtering(&self) -> Option<NatFiltering> {
        self.says(&[
            ("Independent Filter", NatFiltering::EndpointIndependent),
            ("Address Dependent Filter", NatFiltering::AddressDependent),
            (
                "Port Dependent Filter",
                NatFiltering::AddressAndPortDependent,
            ),
        ])
    }

    /// "preserves ports" or "random port"; `None` when not said (open).
    pub fn preserves_ports(&self) -> Option<bool> {
        self.says(&[("preserves ports", true), ("random port", false)])
    }

    /// "will hairpin" or "no hairpin"; `None` when not said (open).
    pub fn hairpinning(&self) -> Option<bool> {
        self.says(&[("will hairpin", true), ("no hairpin", false)])
    }
}

impl Lab {
    /// Runs stund's client in `node` against the lab's stund (`stun STUN1 -v`).
    ///
    /// # Panics
    /// When it cannot run or prints no verdict, with its output.
    pub fn stund_client(&self, node: Node) -> StundVerdict {
        let server = self.addrs().stun1.to_string();
        let out = self
            .exec_timeout(node, &["stun", server.as_str(), "-v"], CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("running stun in {node:?}: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let code = out.status.code().unwrap_or(-1);
        StundVerdict::parse(&text, code)
            .unwrap_or_else(|| panic!("no verdict from stun: {}", dump_output(&out)))
    }
}

// ---------------------------------------------------------------------------------
// coturn's natdiscovery

/// What `turnutils_natdiscovery -m` (mapping) concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingReport {
    /// `false` when it said "No NAT!" (reflexive address = local address).
    pub nat: bool,
    /// The mapping behaviour.
    pub mapping: NatMapping,
    /// Whether the first test's reflexive port was its local port.
    pub preserves_ports: bool,
}

/// The verdict line between two `====` lines, e.g. "NAT with Endpoint Independent
/// Mapping!" (natdiscovery prints "No NAT!" first and still runs its tests).
fn natdiscovery_lines(output: &str) -> impl Iterator<Item = &str> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("NAT with ") || l.starts_with("No NAT!"))
}

/// The last `ip:port` after `label` in the first line holding it.
fn first_port_after(output: &str, label: &str) -> Option<u16> {
    let line = output.lines().find(|l| l.contains(label))?;
    let addr = line.rsplit(' ').next()?.trim();
    addr.parse::<SocketAddrV4>().ok().map(|a| a.port())
}

impl MappingReport {
    /// Parses `natdiscovery -m` output; `None` without a verdict.
    pub fn parse(output: &str) -> Option<MappingReport> {
        let mut nat = true;
        let mut mapping = None;
        for line in natdiscovery_lines(output) {
            if line.starts_with("No NAT!") {
                nat = false;
            } else if line.contains("Address and Port Dependent Mapping") {
                mapping = Some(NatMapping::AddressAndPortDependent);
            } else if line.contains("Address Dependent Mapping") {
                mapping = Some(NatMapping::AddressDependent);
            } else if line.contains("Endpoint Independent Mapping") {
                mapping = Some(NatMapping::EndpointIndependent);
            }
        }
        let reflexive = first_port_after(output, "UDP reflexive addr")?;
        let local = first_port_after(output, "Local addr")?;
        Some(MappingReport {
            nat,
            mapping: mapping?,
            preserves_ports: reflexive == local,
        })
    }
}

/// Parses `natdiscovery -f` output; `None` without a verdict.
pub fn parse_natdiscovery_filtering(output: &str) -> Option<NatFiltering> {
    natdiscovery_lines(output).find_map(|line| {
        if line.contains("Address and Port Dependent Filtering") {
            Some(NatFiltering::AddressAndPortDependent)
        } else if line.contains("Address Dependent Filtering") {
            Some(NatFiltering::AddressDependent)
        } else if line.contains("Endpoint Independent Filtering") {
            Some(NatFiltering::EndpointIndependent)
        } else {
            None
        }
    })
}

/// Parses `natdiscovery -H` output: it prints no verdict, only "Received a request
/// (maybe a successful hairpinning)" when its request to its own mapped address came
/// back, or a receive timeout for each of its two sockets when not. `None` when the
/// first test (the mapped address) got no answer.
pub fn parse_natdiscovery_hairpinning(output: &str) -> Option<bool> {
    if !output.contains("UDP reflexive addr") {
        return None;
    }
    if output.contains("Received a request") {
        return Some(true);
    }
    (output.matches("STUN receive timeout").count() >= 2).then_some(false)
}

/// What coturn's natdiscovery said, one call per test (`-f`, `-m`, `-H`), each on
/// fresh NAT state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatDiscoveryVerdict {
    /// `-f`.
    pub filtering: NatFiltering,
    /// `-m`.
    pub mapping: MappingReport,
    /// `-H`.
    pub hairpinning: bool,
}

impl NatDiscoveryVerdict {
    /// As a profile (hairpinning `None` without a NAT).
    pub fn profile(&self) -> NatProfile {
        NatProfile {
            nat: self.mapping.nat,
            mapping: self.mapping.mapping,
            filtering: self.filtering,
            preserves_ports: self.mapping.preserves_ports,
            hairpinning: self.mapping.nat.then_some(self.hairpinning),
        }
    }
}

impl Lab {
    /// Runs `turnutils_natdiscovery FLAG -L LAN_IP -p 5478 STUN1` in the LAN against
    /// the lab's coturn and returns its output. `-L`: without it natdiscovery binds
    /// the wildcard address and compares the reflexive address with 0.0.0.0, so it
    /// never sees "no NAT".
    ///
    /// # Panics
    /// When it cannot run.
    pub fn natdiscovery(&self, flag: &str) -> String {
        let lan = self.addrs().lan.to_string();
        let port = self
            .get("COTURN_PORT1")
            .map_or_else(|| COTURN_PORT.to_string(), str::to_owned);
        let server = self.addrs().stun1.to_string();
        let argv = [
            "turnutils_natdiscovery",
            flag,
            "-L",
            lan.as_str(),
            "-p",
            port.as_str(),
            server.as_str(),
        ];
        let out = self
            .exec_timeout(Node::Lan, &argv, CLIENT_TIMEOUT)
            .unwrap_or_else(|e| panic!("running natdiscovery {flag}: {e}"));
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// natdiscovery's `-f`, `-m` and `-H`, each alone and on fresh NAT state.
    ///
    /// # Panics
    /// When the lab cannot reset its NAT or a run prints no verdict.
    pub fn natdiscovery_verdict(&self) -> NatDiscoveryVerdict {
        let run = |flag: &str| {
            self.reset_nat().expect("reset the NAT");
            self.natdiscovery(flag)
        };
        let f = run("-f");
        let filtering = parse_natdiscovery_filtering(&f)
            .unwrap_or_else(|| panic!("no filtering verdict from natdiscovery -f:\n{f}"));
        let m = run("-m");
        let mapping = MappingReport::parse(&m)
            .unwrap_or_else(|| panic!("no mapping verdict from natdiscovery -m:\n{m}"));
        let h = run("-H");
        let hairpinning = parse_natdiscovery_hairpinning(&h)
            .unwrap_or_else(|| panic!("no hairpinning result from natdiscovery -H:\n{h}"));
        NatDiscoveryVerdict {
            filtering,
            mapping,
            hairpinning,
        }
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
    fn parses_stund_verdicts() {
        let out = "STUN client version 0.97\n  MappedAddress = 88.77.66.2:40001\n\
                   Primary: Independent Mapping, Address Dependent Filter, random port, will hairpin\t\n\
                   Return value is 0x000014\n";
        let v = StundVerdict::parse(out, 0x14).expect("parses");
        assert_eq!(v.mapped, "88.77.66.2:40001".parse().unwrap());
        assert!(v.nat());
        assert_eq!(v.mapping_independent(), Some(true));
        assert_eq!(v.filtering(), Some(NatFiltering::AddressDependent));
        assert_eq!(v.preserves_ports(), Some(false));
        assert_eq!(v.hairpinning(), Some(true));
        assert_eq!(v.type_bits(), 0x04);

        let sym = StundVerdict::parse(
            "MappedAddress = 88.77.66.2:1\nPrimary: Dependent Mapping, random port, no hairpin\n",
            0x18,
        )
        .expect("parses");
        assert_eq!(sym.mapping_independent(), Some(false));
        assert_eq!(sym.filtering(), None);
        assert_eq!(sym.hairpinning(), Some(false));

        let open = StundVerdict::parse("MappedAddress = 88.77.67.2:1\nPrimary: Open\n", 1)
            .expect("parses");
        assert!(!open.nat());
        assert_eq!(open.mapping_independent(), None);
        assert_eq!(open.preserves_ports(), None);
        assert!(StundVerdict::parse("Primary: Open\n", 1).is_none());
    }

    const MAPPING_ADM: &str = "
-= Mapping Behavior Discovery =-

========================================
RFC 5780 response 1
0: : IPv4. Response origin: : 88.77.66.10:5478
0: : IPv4. Other addr: : 88.77.66.11:5479
0: : IPv4. UDP reflexive addr: 88.77.66.2:10164
0: : IPv4. Local addr: : 192.168.77.2:39916

========================================
RFC 5780 response 2
0: : IPv4. UDP reflexive addr: 88.77.66.2:11346
0: : IPv4. Local addr: : 192.168.77.2:39916

========================================
RFC 5780 response 3
0: : IPv4. UDP reflexive addr: 88.77.66.2:11346
0: : IPv4. Local addr: : 192.168.77.2:39916

========================================
NAT with Address Dependent Mapping!
========================================
";

    #[test]
    fn parses_natdiscovery_mapping() {
        let m = MappingReport::parse(MAPPING_ADM).expect("parses");
        assert_eq!(
            m,
            MappingReport {
                nat: true,
                mapping: NatMapping::AddressDependent,
                preserves_ports: false
            }
        );
        let open = "0: : IPv4. UDP reflexive addr: 88.77.67.2:5000\n\
                    0: : IPv4. Local addr: : 88.77.67.2:5000\n\
                    ====\nNo NAT! (Endpoint Independent Mapping)\n====\n\
                    ====\nNAT with Endpoint Independent Mapping!\n====\n";
        let m = MappingReport::parse(open).expect("parses");
        assert!(!m.nat && m.preserves_ports);
        assert_eq!(m.mapping, NatMapping::EndpointIndependent);
        let apdm = MAPPING_ADM.replace("Address Dependent", "Address and Port Dependent");
        assert_eq!(
            MappingReport::parse(&apdm).map(|m| m.mapping),
            Some(NatMapping::AddressAndPortDependent)
        );
        assert!(MappingReport::parse("STUN receive timeout..\n").is_none());
    }

    #[test]
    fn parses_natdiscovery_filtering_and_hairpinning() {
        for (line, want) in [
            (
                "NAT with Endpoint Independent Filtering!",
                NatFiltering::EndpointIndependent,
            ),
            (
                "NAT with Address Dependent Filtering!",
                NatFiltering::AddressDependent,
            ),
            (
                "NAT with Address and Port Dependent Filtering!",
                NatFiltering::AddressAndPortDependent,
            ),
        ] {
            let out = format!("STUN receive timeout..\n====\n{line}\n====\n");
            assert_eq!(parse_natdiscovery_filtering(&out), Some(want), "{line}");
        }
        assert_eq!(
            parse_natdiscovery_filtering("STUN receive timeout..\n"),
            None
        );

        let first = "0: : IPv4. UDP reflexive addr: 88.77.66.2:38237\n";
        let yes = format!("{first}Received a request (maybe a successful hairpinning)\n");
        let no = format!("{first}STUN receive timeout..\nSTUN receive timeout..\n");
        assert_eq!(parse_natdiscovery_hairpinning(&yes), Some(true));
        assert_eq!(parse_natdiscovery_hairpinning(&no), Some(false));
        assert_eq!(
            parse_natdiscovery_hairpinning("STUN receive timeout..\n"),
            None
        );
    }

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
