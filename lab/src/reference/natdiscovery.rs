//! coturn's `turnutils_natdiscovery` (coturn 4.6.1) against the lab's coturn.

use std::net::SocketAddrV4;

use super::{CLIENT_TIMEOUT, COTURN_PORT, NatFiltering, NatMapping, NatProfile};
use crate::lab::Lab;
use crate::spec::Node;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
