//! From observations to findings: each with a stable code, what was seen,
//! and a fix in plain words. Pure functions of the [`Report`].

use serde::Serialize;

use crate::report::{Finding, PortReport, Report, Severity, Status};

/// What a finding is about: its stable machine code.
///
/// Each serializes (and [`as_str`](FindingCode::as_str) prints) as the snake_case
/// code the JSON schema lists, e.g. `double_nat`; codes are never renamed, new
/// ones may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingCode {
    /// This host has no default route.
    NoNetwork,
    /// Names do not resolve and nothing outside the LAN answers: a dead uplink.
    NoInternet,
    /// Names do not resolve, although addresses outside the LAN answer.
    DnsFailure,
    /// The router answers none of UPnP IGD, NAT-PMP and PCP.
    NoPortMappingProtocol,
    /// The router's UPnP IGD says its WAN connection is not up.
    IgdNotConnected,
    /// A mapping protocol answers, but refuses to map.
    MappingProtocolFailing,
    /// A second NAT sits between the router and the internet.
    DoubleNat,
    /// A port of the service is forwarded to another LAN host.
    PortForwardedElsewhere,
    /// A port of the service could not be mapped on the router.
    PortNotMappable,
    /// A port forwarded here is dropped upstream (the dial-back found it filtered).
    PortBlockedUpstream,
    /// The NAT is symmetric.
    SymmetricNat,
    /// The NAT is port-restricted cone.
    PortRestrictedNat,
    /// No STUN server answered over UDP.
    UdpBlocked,
    /// A trial mapping could not be deleted.
    MappingLeftBehind,
    /// This host cannot reach itself at its public address (no hairpinning).
    NoHairpinning,
    /// No STUN server that can test filtering answered: the NAT type is unknown.
    NatTypeInconclusive,
    /// Something on the path (a SIP ALG) rewrites or drops SIP.
    SipAlg,
    /// A firewall on the way out blocks some of the ports.
    OutboundBlocked,
    /// Under 300 kbit/s one way or both.
    LowBandwidth,
    /// Another device on the LAN answers mDNS for this host's `.local` name.
    DuplicateHostname,
    /// This host has no usable global IPv6 address or route (informational).
    NoIpv6,
    /// The router's firewall drops new inbound IPv6 connections.
    Ipv6FirewallBlocks,
    /// This host's only global IPv6 addresses are temporary (privacy) ones.
    Ipv6TemporaryAddressOnly,
}

impl FindingCode {
    /// Every code, in the order the JSON schema lists them.
    pub const ALL: [FindingCode; 23] = [
        FindingCode::NoNetwork,
        FindingCode::NoInternet,
        FindingCode::DnsFailure,
        FindingCode::NoPortMappingProtocol,
        FindingCode::IgdNotConnected,
        FindingCode::MappingProtocolFailing,
        FindingCode::DoubleNat,
        FindingCode::PortForwardedElsewhere,
        FindingCode::PortNotMappable,
        FindingCode::PortBlockedUpstream,
        FindingCode::SymmetricNat,
        FindingCode::PortRestrictedNat,
        FindingCode::UdpBlocked,
        FindingCode::MappingLeftBehind,
        FindingCode::NoHairpinning,
        FindingCode::NatTypeInconclusive,
        FindingCode::SipAlg,
        FindingCode::OutboundBlocked,
        FindingCode::LowBandwidth,
        FindingCode::DuplicateHostname,
        FindingCode::NoIpv6,
        FindingCode::Ipv6FirewallBlocks,
        FindingCode::Ipv6TemporaryAddressOnly,
    ];

    /// The stable snake_case code, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::NoNetwork => "no_network",
            FindingCode::NoInternet => "no_internet",
            FindingCode::DnsFailure => "dns_failure",
            FindingCode::NoPortMappingProtocol => "no_port_mapping_protocol",
            FindingCode::IgdNotConnected => "igd_not_connected",
            FindingCode::MappingProtocolFailing => "mapping_protocol_failing",
            FindingCode::DoubleNat => "double_nat",
            FindingCode::PortForwardedElsewhere => "port_forwarded_elsewhere",
            FindingCode::PortNotMappable => "port_not_mappable",
            FindingCode::PortBlockedUpstream => "port_blocked_upstream",
            FindingCode::SymmetricNat => "symmetric_nat",
            FindingCode::PortRestrictedNat => "port_restricted_nat",
            FindingCode::UdpBlocked => "udp_blocked",
            FindingCode::MappingLeftBehind => "mapping_left_behind",
            FindingCode::NoHairpinning => "no_hairpinning",
            FindingCode::NatTypeInconclusive => "nat_type_inconclusive",
            FindingCode::SipAlg => "sip_alg",
            FindingCode::OutboundBlocked => "outbound_blocked",
            FindingCode::LowBandwidth => "low_bandwidth",
            FindingCode::DuplicateHostname => "duplicate_hostname",
            FindingCode::NoIpv6 => "no_ipv6",
            FindingCode::Ipv6FirewallBlocks => "ipv6_firewall_blocks",
            FindingCode::Ipv6TemporaryAddressOnly => "ipv6_temporary_address_only",
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) fn finding(
    code: FindingCode,
    severity: Severity,
    message: String,
    fix: &str,
) -> Finding {
    Finding {
        code,
        severity,
        message,
        fix: fix.to_owned(),
        port: None,
        protocol: None,
        caused_by: None,
    }
}

fn port_finding(code: FindingCode, p: &PortReport, message: String, fix: String) -> Finding {
    Finding {
        code,
        severity: Severity::Problem,
        message,
        fix,
        port: Some(p.port),
        protocol: Some(p.protocol),
        caused_by: None,
    }
}

/// The finding for a host without a default route.
pub(crate) fn no_network(why: &str) -> Finding {
    finding(
        FindingCode::NoNetwork,
        Severity::Problem,
        format!("this host is not connected to a network: it has no default route ({why})"),
        "connect to a network (Wi-Fi or cable) and check that it gave this host an address \
         (DHCP); then run the doctor again",
    )
}

/// Derives the findings from everything observed (except `no_network`,
/// which ends the run before any of this is known).
pub(crate) fn derive(r: &Report, left_behind: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    let uplink = crate::uplink::finding(r);
    let mp = &r.mapping_protocols;
    let checked = mp
        .named()
        .iter()
        .all(|(_, s)| s.status != Status::NotChecked);
    if checked && !mp.any_present() {
        // Behind a second NAT, a forward on this router alone reaches only that NAT.
        let fix = if r.double_nat {
            "first the second NAT (see double_nat): a mapping or forward on this router \
             alone reaches only that NAT; then enable UPnP or NAT-PMP here, or forward the \
             ports by hand on both"
        } else {
            "enable UPnP (\"Universal Plug and Play\") or NAT-PMP in the router's settings, \
             or forward the ports the service needs to this host by hand"
        };
        out.push(finding(
            FindingCode::NoPortMappingProtocol,
            Severity::Problem,
            "the router answers none of UPnP IGD, NAT-PMP and PCP: programs on this host \
             cannot open ports on it"
                .into(),
            fix,
        ));
    }
    if mp.upnp.status == Status::NotConnected {
        out.push(finding(
            FindingCode::IgdNotConnected,
            Severity::Problem,
            format!(
                "the router's UPnP IGD says its internet connection is not up, so UPnP \
                 mappings on it go nowhere ({})",
                mp.upnp.detail.as_deref().unwrap_or("no details")
            ),
            "if the internet works from this host, the router's WAN address is not public \
             (see double_nat); otherwise check the router's internet connection",
        ));
    }
    let failing: Vec<String> = mp
        .named()
        .iter()
        .filter(|(_, s)| s.status == Status::Failing)
        .map(|(name, s)| format!("{name}: {}", s.detail.as_deref().unwrap_or("no details")))
        .collect();
    if !failing.is_empty() {
        out.push(finding(
            FindingCode::MappingProtocolFailing,
            Severity::Warning,
            format!(
                "the router answers but refuses to map: {}",
                failing.join("; ")
            ),
            "a router that reports a network failure or no resources has no public WAN \
             address (see double_nat) or no internet connection; otherwise restart it",
        ));
    }
    if r.double_nat {
        out.push(finding(
            FindingCode::DoubleNat,
            Severity::Problem,
            format!(
                "there is a second NAT between the router and the internet: {}; ports opened \
                 on the router reach only that NAT, never the internet",
                r.double_nat_evidence.join("; ")
            ),
            "put the upstream box (the ISP's modem/router) in bridge or modem-only mode, or \
             forward the ports on it as well (to this router's WAN address); behind \
             carrier-grade NAT (100.64.0.0/10) ask the ISP for a public address; or use a \
             relay (a TURN server, a VPN with a public address), which needs no open port",
        ));
    }
    for p in &r.ports {
        port_findings(p, r, &mut out);
    }
    if let Some(nat) = &r.nat {
        match nat.legacy_type {
            "symmetric" => out.push(finding(
                FindingCode::SymmetricNat,
                Severity::Problem,
                format!(
                    "the NAT is symmetric (mapping {}, filtering {}): {}",
                    nat.mapping, nat.filtering, nat.meaning
                ),
                "map the ports the service needs (UPnP, NAT-PMP or a forward by hand), use a \
                 relay (TURN) for peer-to-peer, or switch the router to endpoint-independent \
                 (\"full cone\") NAT if it offers that",
            )),
            "port_restricted_cone" => out.push(finding(
                FindingCode::PortRestrictedNat,
                Severity::Warning,
                format!(
                    "the NAT is port-restricted cone (mapping {}, filtering {}): {}",
                    nat.mapping, nat.filtering, nat.meaning
                ),
                "map the ports the service needs (UPnP, NAT-PMP or a forward by hand); for \
                 peer-to-peer apps, a router option for endpoint-independent filtering (\"full \
                 cone\") helps",
            )),
            "udp_blocked" => out.push(finding(
                FindingCode::UdpBlocked,
                Severity::Problem,
                format!(
                    "no STUN server answered over UDP ({}): {}",
                    r.stun_servers
                        .iter()
                        .map(|s| format!("{} {}", s.server, s.outcome.as_str()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    nat.meaning
                ),
                "allow outgoing UDP in this host's and the router's firewall; if it is \
                 allowed, check that the STUN servers given with --stun are up",
            )),
            _ => {}
        }
    }
    out.extend(crate::nat_checks::findings(r));
    out.extend(crate::sip::findings(r));
    out.extend(crate::outbound::findings(r));
    out.extend(crate::bandwidth::findings(r));
    out.extend(crate::mdns::findings(r));
    out.extend(crate::ipv6::findings(r));
    if !left_behind.is_empty() {
        out.push(finding(
            FindingCode::MappingLeftBehind,
            Severity::Problem,
            format!(
                "trial mappings could not be deleted: {} (they expire within two minutes)",
                left_behind.join("; ")
            ),
            "delete them in the router's port forwarding page, or wait two minutes",
        ));
    }
    match uplink {
        Some(first) => crate::uplink::lead(first, out),
        None => out,
    }
}

fn port_findings(p: &PortReport, r: &Report, out: &mut Vec<Finding>) {
    let name = format!("{}/{}", p.port, p.protocol);
    let purpose = p.purpose.map(|s| format!(" ({s})")).unwrap_or_default();
    if let Some(f) = p.forwarded_to.as_ref().filter(|f| !f.this_host) {
        out.push(port_finding(
            FindingCode::PortForwardedElsewhere,
            p,
            format!(
                "{name}{purpose} is already forwarded to another host, {}:{} ({:?}): \
                 connections to it never reach this host",
                f.host, f.port, f.description
            ),
            format!(
                "remove or move the forward of {name} to {} on the router (or stop the \
                 program on {} that asked for it), or use another port for this host",
                f.host, f.host
            ),
        ));
    } else if p.mappable == Some(false) && !r.double_nat {
        let why = p
            .mapping
            .as_ref()
            .and_then(|m| m.error.clone())
            .unwrap_or_else(|| "refused".into());
        out.push(port_finding(
            FindingCode::PortNotMappable,
            p,
            format!("{name}{purpose} could not be mapped on the router: {why}"),
            format!("forward {name} to this host by hand in the router's settings"),
        ));
    }
    // Forwarded to this host while the dial-back server dialled, yet
    // silence (or an ICMP unreachable from a router): dropped upstream.
    // Behind a double NAT the second NAT explains it (double_nat).
    if p.reachability == "filtered" && p.forwarded_during_check && !r.double_nat {
        out.push(port_finding(
            FindingCode::PortBlockedUpstream,
            p,
            format!(
                "{name}{purpose} is forwarded to this host on the router, but a dial-back \
                 from outside does not get through: {}",
                p.reachability_detail.as_deref().unwrap_or("no answer")
            ),
            format!(
                "the ISP (or an upstream firewall) blocks inbound {name}: ask the ISP to \
                 unblock it, or run the service on another port"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Forward, NatReport};
    use natkit_core::Protocol;

    fn port(port: u16, forwarded: Option<&str>, mappable: Option<bool>) -> PortReport {
        PortReport {
            port,
            protocol: Protocol::Tcp,
            purpose: None,
            forwarded_to: forwarded.map(|h| Forward {
                host: h.into(),
                port,
                description: "upnpc".into(),
                this_host: h == "192.168.77.2",
            }),
            mappable,
            mapping: None,
            reachability: "not_checked".into(),
            reachability_detail: None,
            forwarded_during_check: false,
        }
    }

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code.as_str()).collect()
    }

    /// The schema's list of codes is the doctor's.
    #[test]
    fn schema_lists_every_code() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/doctor.schema.json")).expect("schema");
        let listed: Vec<&str> = schema["$defs"]["finding"]["properties"]["code"]["enum"]
            .as_array()
            .expect("code enum")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let ours: Vec<&str> = FindingCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        // Serde writes the same code as as_str.
        for code in FindingCode::ALL {
            assert_eq!(serde_json::to_value(code).expect("json"), code.as_str());
        }
    }

    #[test]
    fn router_without_protocols() {
        let mut r = Report::empty();
        r.mapping_protocols.upnp.status = Status::Absent;
        r.mapping_protocols.natpmp.status = Status::Absent;
        r.mapping_protocols.pcp.status = Status::Absent;
        assert_eq!(codes(&derive(&r, &[])), ["no_port_mapping_protocol"]);
        // Not checked is not "absent".
        r.mapping_protocols.pcp.status = Status::NotChecked;
        assert!(derive(&r, &[]).is_empty());
    }

    #[test]
    fn forward_elsewhere_names_the_host_and_ours_is_fine() {
        let mut r = Report::empty();
        r.ports = vec![
            port(443, Some("192.168.77.3"), Some(false)),
            port(22, Some("192.168.77.2"), None),
            port(80, None, Some(false)),
        ];
        let f = derive(&r, &[]);
        assert_eq!(codes(&f), ["port_forwarded_elsewhere", "port_not_mappable"]);
        assert!(f[0].message.contains("192.168.77.3"));
        assert!(f[0].fix.contains("192.168.77.3"));
        assert_eq!(f[0].port, Some(443));
    }

    #[test]
    fn nat_types_and_double_nat() {
        let mut r = Report::empty();
        r.double_nat = true;
        r.double_nat_evidence = vec!["x".into()];
        r.nat = Some(NatReport {
            mapping: "address_and_port_dependent",
            filtering: "address_and_port_dependent",
            legacy_type: "symmetric",
            meaning: "m",
            port_preservation: None,
            hairpinning: None,
            tested_with: None,
            tested_with_name: None,
            servers: vec![],
            rtt_ms: None,
            notes: vec![],
            not_resolved: vec![],
        });
        // Behind a double NAT, unmappable ports are explained by it.
        r.ports = vec![port(80, None, Some(false))];
        assert_eq!(codes(&derive(&r, &[])), ["double_nat", "symmetric_nat"]);
        let f = derive(&r, &["UPnP 80/tcp".into()]);
        assert_eq!(codes(&f).last(), Some(&"mapping_left_behind"));
        for f in &f {
            assert!(FindingCode::ALL.contains(&f.code));
        }
    }
}
