//! What the NAT type tests add to the report beyond the type: which STUN servers
//! were used and why others were not, a type that could not be tested (with the
//! fix: a server that can test filtering), and hairpinning.
//!
//! Hairpinning (RFC 5780 §4.6, "NAT loopback") runs in the default classification:
//! the classifier sends a request to this host's own public address and port and
//! waits for it to loop back, alongside its filtering tests, so it adds no wait of
//! its own. Only a definite "no" is a finding: behind a NAT whose mapping depends on
//! the destination (symmetric), the looped-back request arrives through a new
//! mapping that the filter may drop, so a miss cannot be told from filtering and the
//! classifier says inconclusive (`hairpinning: null`), which is no finding.

use natkit_stun::classify::{Classification, ServerCheck, ServerFlavor};
use serde::Serialize;

use crate::findings::FindingCode;
use crate::report::{Finding, NatReport, Report, Severity};

/// One STUN server the NAT type tests asked, and what it was good for.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NatServer {
    /// The server as it was given (`host:port`).
    pub name: String,
    /// The address asked.
    pub address: std::net::SocketAddr,
    /// `rfc5780` (OTHER-ADDRESS), `rfc3489` (CHANGED-ADDRESS), `plain` (address
    /// discovery only) or `unreachable`.
    pub flavor: &'static str,
    /// Whether it can test filtering: its alternate address differs in IP and port,
    /// and its answers came from where they said.
    pub usable_for_behaviour: bool,
    /// Why not, when not.
    pub problem: Option<String>,
}

fn flavor(f: ServerFlavor) -> &'static str {
    match f {
        ServerFlavor::Rfc5780 => "rfc5780",
        ServerFlavor::Rfc3489 => "rfc3489",
        ServerFlavor::Plain => "plain",
        ServerFlavor::Unreachable => "unreachable",
    }
}

fn server(s: &ServerCheck) -> NatServer {
    NatServer {
        name: s.name.clone(),
        address: s.server,
        flavor: flavor(s.flavor),
        usable_for_behaviour: s.usable_for_behaviour,
        problem: s.problem.as_ref().map(ToString::to_string),
    }
}

/// The servers the classification asked, and the name of the one its behaviour
/// tests ran against.
pub(crate) fn servers(c: &Classification) -> (Vec<NatServer>, Option<String>) {
    let list: Vec<NatServer> = c.servers.iter().map(server).collect();
    let used = c
        .behaviour_server
        .and_then(|b| list.iter().find(|s| s.address == b))
        .map(|s| s.name.clone());
    (list, used)
}

/// `nat_type_inconclusive` and `no_hairpinning`, from the NAT report.
pub(crate) fn findings(r: &Report) -> Vec<Finding> {
    let Some(nat) = &r.nat else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if nat.legacy_type == "inconclusive" {
        out.push(inconclusive(nat));
    }
    if nat.hairpinning == Some(false) {
        let public = r
            .stun_external_address
            .map(|a| format!(" ({a})"))
            .unwrap_or_default();
        out.push(finding(
            FindingCode::NoHairpinning,
            format!(
                "this host cannot reach itself at its public address{public}: the router \
                 does not loop traffic to its own public address back into the LAN \
                 (hairpinning, \"NAT loopback\"), so other devices on this network reach a \
                 service here only by its LAN address, not by its public address or name"
            ),
            "turn on NAT loopback (hairpinning, \"NAT reflection\") in the router's settings \
             if it has it; otherwise, inside the LAN, use this host's LAN address or its \
             .local name, or a local DNS entry for the public name that points here",
        ));
    }
    out
}

fn inconclusive(nat: &NatReport) -> Finding {
    let usable = nat.servers.iter().any(|s| s.usable_for_behaviour);
    let asked: Vec<String> = nat
        .servers
        .iter()
        .map(|s| match &s.problem {
            Some(p) => format!("{} ({}): {p}", s.name, s.flavor),
            None => format!("{} ({})", s.name, s.flavor),
        })
        .collect();
    let reason = if usable {
        format!("the tests did not conclude: {}", nat.notes.join("; "))
    } else if asked.is_empty() {
        "no STUN server that can test filtering answered".to_owned()
    } else {
        format!(
            "no STUN server that can test filtering answered (one needs a second IP \
             address and port, RFC 5780 OTHER-ADDRESS or RFC 3489 CHANGED-ADDRESS); \
             asked: {}",
            asked.join("; ")
        )
    };
    finding(
        FindingCode::NatTypeInconclusive,
        format!("the NAT type could not be tested: {reason}"),
        "run the doctor with --stun HOST:PORT naming a STUN server that supports RFC 5780 \
         (a second IP address and port), e.g. your own `natkit stun-server --alternate` on \
         a host with two public addresses",
    )
}

fn finding(code: FindingCode, message: String, fix: &str) -> Finding {
    Finding {
        code,
        severity: Severity::Warning,
        message,
        fix: fix.to_owned(),
        port: None,
        protocol: None,
        caused_by: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn nat(legacy: &'static str, hairpinning: Option<bool>) -> NatReport {
        NatReport {
            mapping: "endpoint_independent",
            filtering: "address_and_port_dependent",
            legacy_type: legacy,
            meaning: "m",
            port_preservation: Some(true),
            hairpinning,
            tested_with: None,
            tested_with_name: None,
            servers: vec![NatServer {
                name: "stun.l.google.com:19302".into(),
                address: "192.0.2.1:19302".parse().unwrap(),
                flavor: "plain",
                usable_for_behaviour: false,
                problem: Some("no alternate address".into()),
            }],
            rtt_ms: None,
            notes: vec![],
            not_resolved: vec![],
        }
    }

    fn codes(r: &Report) -> Vec<&'static str> {
        findings(r).iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn only_a_definite_no_is_a_hairpinning_finding() {
        let mut r = Report::empty();
        r.nat = Some(nat("port_restricted_cone", Some(false)));
        assert_eq!(codes(&r), ["no_hairpinning"]);
        r.nat = Some(nat("port_restricted_cone", Some(true)));
        assert!(codes(&r).is_empty());
        // Symmetric: the classifier cannot tell a miss from filtering.
        r.nat = Some(nat("symmetric", None));
        assert!(codes(&r).is_empty());
    }

    #[test]
    fn inconclusive_names_the_servers_and_the_fix() {
        let mut r = Report::empty();
        r.nat = Some(nat("inconclusive", None));
        let f = findings(&r);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, FindingCode::NatTypeInconclusive);
        assert!(
            f[0].message
                .contains("no STUN server that can test filtering")
        );
        assert!(f[0].message.contains("stun.l.google.com:19302 (plain)"));
        assert!(f[0].fix.contains("--stun") && f[0].fix.contains("RFC 5780"));
    }
}
