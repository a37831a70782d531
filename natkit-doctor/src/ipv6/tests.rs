//! The IPv6 section's decisions, without sockets.

use std::net::Ipv6Addr;
use std::time::Duration;

use super::conclude::judge_firewall;
use super::host::{HostIpv6State, host_state, pinhole_address};
use super::report::{
    FirewallCheck, FirewallVerdict, Ipv6Reachability, Ipv6Report, PinholeAttempt, PinholeCheck,
    PinholeVerdict,
};
use super::signs::{Asked, NoSign, Sign, StunUntold, stun_sign, upnp_status_sign};
use super::{findings, is_ipv6_literal};
use crate::report::{Report, Severity};
use natkit_core::{HostIpv6, Ipv6AddressError, Ipv6Flags, Ipv6Kind, Protocol, StableReason};

fn addr(text: &str, flags: u8) -> HostIpv6 {
    let address: Ipv6Addr = text.parse().expect("address");
    let flags = Some(Ipv6Flags(flags));
    HostIpv6 {
        address,
        prefix_len: 64,
        interface: Some("eth0".into()),
        if_index: 2,
        kind: Ipv6Kind::of(address, flags),
        flags,
    }
}

const STATIC: &str = "2a0d:88:77:77::2";
const SLAAC: &str = "2a0d:88:77:77:a8c1:abff:fe11:2233";
const TEMP: &str = "2a0d:88:77:77:5d1e:9c2b:4f70:11a3";

fn lab_addrs() -> Vec<HostIpv6> {
    vec![
        addr("fe80::a8c1:abff:fe11:2233", Ipv6Flags::PERMANENT),
        addr(STATIC, Ipv6Flags::PERMANENT),
        addr(SLAAC, 0),
        addr(TEMP, Ipv6Flags::TEMPORARY),
    ]
}

fn report_with(host: HostIpv6State) -> Report {
    let mut r = Report::empty();
    r.ipv6 = Some(Ipv6Report::unavailable(host));
    r
}

fn codes(r: &Report) -> Vec<&'static str> {
    findings(r).iter().map(|f| f.code.as_str()).collect()
}

#[test]
fn no_global_address_is_no_ipv6_informational() {
    let only_link_local = vec![addr("fe80::1", Ipv6Flags::PERMANENT)];
    let host = host_state(Ok(only_link_local), None, None);
    assert!(!host.available);
    assert!(host.addresses.is_empty());
    let r = report_with(host);
    let f = findings(&r);
    assert_eq!(codes(&r), ["no_ipv6"]);
    assert_eq!(f[0].severity, Severity::Info);
    assert!(
        f[0].message.contains("no global IPv6 address"),
        "{}",
        f[0].message
    );
    let v6 = r.ipv6.as_ref().expect("section");
    assert_eq!(v6.firewall.verdict, FirewallVerdict::NotChecked);
    assert_eq!(v6.pinhole.verdict, PinholeVerdict::NotChecked);
    assert!(v6.reachability.not_checked.is_some());
}

#[test]
fn a_global_address_without_a_route_is_no_ipv6() {
    let host = host_state(Ok(lab_addrs()), None, None);
    assert!(!host.available);
    assert!(host.detail.contains("no IPv6 route"), "{}", host.detail);
    assert_eq!(host.addresses.len(), 3, "link-local is not listed");
    assert_eq!(codes(&report_with(host)), ["no_ipv6"]);
}

#[test]
fn listing_error_is_no_ipv6_with_the_cause() {
    let e = Ipv6AddressError::Io(std::io::Error::other("permission denied"));
    let host = host_state(Err(e), None, None);
    assert!(!host.available);
    assert!(host.detail.contains("permission denied"), "{}", host.detail);
}

#[test]
fn stable_and_temporary_are_listed_and_the_stable_one_chosen() {
    let addrs = lab_addrs();
    let src: Ipv6Addr = TEMP.parse().expect("addr");
    let chosen = natkit_core::choose_stable_ipv6(&addrs, "eth0", Some(src));
    let host = host_state(Ok(addrs), Some(src), Some(chosen));
    assert!(host.available);
    let kinds: Vec<(String, &str, bool)> = host
        .addresses
        .iter()
        .map(|a| (a.address.to_string(), a.kind, a.is_static))
        .collect();
    assert_eq!(
        kinds,
        [
            (STATIC.to_owned(), "global_stable", true),
            (SLAAC.to_owned(), "global_stable", false),
            (TEMP.to_owned(), "global_temporary", false),
        ]
    );
    let stable = host.stable.expect("a stable address");
    assert_eq!(stable.address.to_string(), STATIC);
    assert_eq!(stable.reason, StableReason::Static);
    let p = pinhole_address(&stable);
    assert_eq!(p.outbound_source, Some(src));
    assert_eq!(p.reason, "static");
}

fn available(addrs: Vec<HostIpv6>, firewall: FirewallCheck, pinhole: PinholeCheck) -> Report {
    let src = addrs.last().map(|a| a.address);
    let host = host_state(Ok(addrs.clone()), src, None);
    assert!(host.available, "{}", host.detail);
    let mut r = Report::empty();
    r.ipv6 = Some(Ipv6Report {
        available: true,
        detail: host.detail,
        addresses: host.addresses,
        pinhole_address: natkit_core::choose_stable_ipv6(&addrs, "eth0", src)
            .ok()
            .as_ref()
            .map(pinhole_address),
        firewall,
        pinhole,
        reachability: Ipv6Reachability::not_checked(None, "no server".into()),
    });
    r
}

#[test]
fn temporary_only_is_a_finding_with_the_addresses() {
    let addrs = vec![addr(TEMP, Ipv6Flags::TEMPORARY)];
    let fw = judge_firewall(Vec::new(), vec![NoSign::NoStunServer]);
    let r = available(addrs, fw, PinholeCheck::not_checked("no stable".into()));
    let f = findings(&r);
    assert_eq!(codes(&r), ["ipv6_temporary_address_only"]);
    assert!(f[0].message.contains(TEMP), "{}", f[0].message);
    assert_eq!(f[0].severity, Severity::Warning);
    // With a stable address beside it: silent.
    let fw = judge_firewall(Vec::new(), vec![NoSign::NoStunServer]);
    let r = available(lab_addrs(), fw, PinholeCheck::not_checked("x".into()));
    assert!(codes(&r).is_empty());
}

fn pinhole(verdict: PinholeVerdict, attempts: Vec<PinholeAttempt>) -> PinholeCheck {
    PinholeCheck {
        verdict,
        protocol: attempts
            .iter()
            .find(|a| a.outcome == "opened")
            .map(|a| a.protocol),
        pinhole: Some(format!("[{STATIC}]:41000").parse().expect("addr")),
        transport: Some(Protocol::Tcp),
        attempts,
        not_checked: None,
    }
}

fn tried(protocol: &'static str, outcome: &'static str, detail: Option<&str>) -> PinholeAttempt {
    PinholeAttempt {
        protocol,
        outcome,
        removed: (outcome == "opened").then_some(true),
        detail: detail.map(str::to_owned),
    }
}

#[test]
fn firewall_blocks_with_a_pinhole_protocol_names_the_natkit_command() {
    let fw = judge_firewall(
        vec![Sign::Blocks("UPnP: firewall enabled".into())],
        Vec::new(),
    );
    assert_eq!(fw.verdict, FirewallVerdict::BlocksInbound);
    let ph = pinhole(
        PinholeVerdict::Opened,
        vec![tried("upnp", "opened", None), tried("pcp", "opened", None)],
    );
    let mut r = available(lab_addrs(), fw, ph);
    let f = findings(&r);
    assert_eq!(codes(&r), ["ipv6_firewall_blocks"]);
    assert!(
        f[0].message.contains("UPnP: firewall enabled"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].fix.contains("through UPnP IGD")
            && f[0]
                .fix
                .contains("`natkit map --ipv6 --protocol tcp --port PORT`"),
        "{}",
        f[0].fix
    );
    assert!(f[0].fix.contains(STATIC), "{}", f[0].fix);
    // With ports checked, the command names them.
    r.ports = vec![crate::report::PortReport {
        port: 5900,
        protocol: Protocol::Tcp,
        purpose: None,
        forwarded_to: None,
        mappable: None,
        mapping: None,
        reachability: "not_checked".into(),
        reachability_detail: None,
        forwarded_during_check: false,
    }];
    let f = findings(&r);
    assert!(
        f[0].fix
            .contains("`natkit map --ipv6 --protocol tcp --port 5900`"),
        "{}",
        f[0].fix
    );
}

#[test]
fn firewall_blocks_without_a_pinhole_protocol_says_open_it_in_the_router() {
    let fw = judge_firewall(
        vec![Sign::Blocks(
            "STUN: filtering address_and_port_dependent".into(),
        )],
        Vec::new(),
    );
    let ph = pinhole(
        PinholeVerdict::NoProtocol,
        vec![
            tried("upnp", "absent", Some("no IGD")),
            tried("pcp", "absent", None),
        ],
    );
    let r = available(lab_addrs(), fw, ph);
    let f = findings(&r);
    assert_eq!(codes(&r), ["ipv6_firewall_blocks"]);
    assert!(
        f[0].fix.contains("router's firewall settings"),
        "{}",
        f[0].fix
    );
    assert!(!f[0].fix.contains("natkit map"), "{}", f[0].fix);
    // Refused: the router's reason is quoted.
    let fw = judge_firewall(vec![Sign::Blocks("x".into())], Vec::new());
    let ph = pinhole(
        PinholeVerdict::Refused,
        vec![tried("upnp", "refused", Some("606 Action not authorized"))],
    );
    let f = findings(&available(lab_addrs(), fw, ph));
    assert!(
        f[0].fix.contains("606 Action not authorized"),
        "{}",
        f[0].fix
    );
}

#[test]
fn firewall_verdicts_rest_on_evidence_only() {
    // A drop seen outweighs a router that says its firewall is off.
    let fw = judge_firewall(
        vec![
            Sign::Allows("UPnP: firewall disabled".into()),
            Sign::Blocks("dial-back: filtered".into()),
        ],
        Vec::new(),
    );
    assert_eq!(fw.verdict, FirewallVerdict::BlocksInbound);
    assert_eq!(fw.evidence.len(), 2);
    let open = judge_firewall(vec![Sign::Allows("a".into())], Vec::new());
    assert_eq!(open.verdict, FirewallVerdict::AllowsInbound);
    assert!(open.not_checked.is_none());
    let r = available(
        lab_addrs(),
        open,
        pinhole(PinholeVerdict::NoProtocol, Vec::new()),
    );
    assert!(codes(&r).is_empty());
    let none = judge_firewall(Vec::new(), vec![NoSign::NoIgd, NoSign::NoStunServer]);
    assert_eq!(none.verdict, FirewallVerdict::NotChecked);
    assert_eq!(
        none.not_checked.as_deref(),
        Some(
            "no UPnP IGD answered to ask about its IPv6 firewall; \
             no STUN server over IPv6 to test the firewall's filtering"
        )
    );
    assert_eq!(
        judge_firewall(Vec::new(), Vec::new()).verdict,
        FirewallVerdict::Unknown
    );
}

#[test]
fn a_check_without_an_answer_names_itself_and_its_bound() {
    let stun = NoSign::NoAnswer {
        asked: Asked::Stun,
        within: Duration::from_millis(4000),
    };
    assert_eq!(stun.to_string(), "STUN over IPv6: no answer within 4.0 s");
    let status = NoSign::NoAnswer {
        asked: Asked::FirewallStatus,
        within: Duration::from_millis(2500),
    };
    assert_eq!(
        status.to_string(),
        "UPnP IGD GetFirewallStatus: no answer within 2.5 s"
    );
}

#[test]
fn ipv6_literals_go_to_the_ipv6_section() {
    assert!(is_ipv6_literal("[2a0d:88:77:66::10]:3478"));
    assert!(is_ipv6_literal("2a0d:88:77:66::10"));
    assert!(!is_ipv6_literal("88.77.66.10:3478"));
    assert!(!is_ipv6_literal("stun.example.net:3478"));
}

#[test]
fn upnp_firewall_status_is_evidence_both_ways() {
    let on = upnp_status_sign(true, true);
    assert_eq!(
        on,
        Sign::Blocks(
            "the router's UPnP IGD says its IPv6 firewall is on (GetFirewallStatus: \
             FirewallEnabled 1, InboundPinholeAllowed 1)"
                .into()
        )
    );
    assert!(matches!(upnp_status_sign(false, false), Sign::Allows(e) if e.contains("is off")));
}

#[test]
fn stun_over_ipv6_without_nat_tells_the_firewall() {
    use natkit_core::{Connectivity, FilteringBehaviour, NatBehaviour};
    let server = Some("[2a0d:88:77:66::10]:4478".parse().expect("addr"));
    let mut b = NatBehaviour {
        connectivity: Connectivity::NoNat,
        filtering: FilteringBehaviour::AddressAndPortDependent,
        ..NatBehaviour::UNKNOWN
    };
    let blocks = stun_sign(&b, server).expect("a sign");
    assert!(
        matches!(&blocks, Sign::Blocks(e) if e.starts_with("STUN [2a0d:88:77:66::10]:4478: ")),
        "{blocks:?}"
    );
    b.filtering = FilteringBehaviour::EndpointIndependent;
    assert!(matches!(stun_sign(&b, server), Ok(Sign::Allows(_))));
    let untold = |b: &NatBehaviour, server| match stun_sign(b, server) {
        Err(NoSign::StunUntold { saw, .. }) => Some(saw),
        _ => None,
    };
    b.filtering = FilteringBehaviour::Inconclusive;
    assert_eq!(untold(&b, server), Some(StunUntold::FilteringInconclusive));
    // Behind a NAT66 the tests measure the translator: no firewall verdict.
    b.connectivity = Connectivity::Nat;
    b.filtering = FilteringBehaviour::AddressAndPortDependent;
    assert_eq!(untold(&b, server), Some(StunUntold::Translated));
    b.connectivity = Connectivity::UdpBlocked;
    assert_eq!(untold(&b, None), Some(StunUntold::NoAnswer));
    // The report's words name the server the behaviour rests on, if known.
    let why = stun_sign(&b, server).expect_err("no sign").to_string();
    assert_eq!(
        why,
        "STUN [2a0d:88:77:66::10]:4478: no STUN server answered over IPv6 (UDP)"
    );
    let why = stun_sign(&b, None).expect_err("no sign").to_string();
    assert_eq!(
        why,
        "STUN over IPv6: no STUN server answered over IPv6 (UDP)"
    );
}

#[test]
fn unique_local_only_is_no_ipv6_and_says_why() {
    let ula = vec![
        addr("fe80::1", Ipv6Flags::PERMANENT),
        addr("fd00:88:77:77::2", Ipv6Flags::PERMANENT),
    ];
    let src: Ipv6Addr = "fd00:88:77:77::2".parse().expect("addr");
    let host = host_state(Ok(ula), Some(src), None);
    assert!(!host.available);
    assert!(
        host.detail
            .contains("only unique local IPv6 addresses (fd00:88:77:77::2)"),
        "{}",
        host.detail
    );
    assert_eq!(codes(&report_with(host)), ["no_ipv6"]);
}
