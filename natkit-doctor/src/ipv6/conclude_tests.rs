//! The section's conclusion on the IPv6 networks the dual-stack lab left out
//! (`natlab.sh --ipv6-quirk`): a firewall that is off though the router says
//! it is on, a dead uplink, NAT66.

use std::net::SocketAddr;

use super::conclude::{Conclusion, StunPath, conclude};
use super::report::FirewallVerdict;
use super::signs::{NoSign, Sign};

const HOST: &str = "outbound IPv6 leaves from 2a0d:88:77:77::2 on eth0";

/// The conclusion where the router's UPnP IGD says its firewall is on.
fn router_says_on(observed: Vec<Sign>, path: StunPath, dial: Option<bool>) -> Conclusion {
    let claim = Sign::Blocks("the router's UPnP IGD says its IPv6 firewall is on".into());
    conclude(HOST.into(), observed, Some(claim), Vec::new(), path, dial)
}

#[test]
fn what_a_packet_met_outweighs_what_the_router_says() {
    let stun = Sign::Allows("STUN: filtering endpoint_independent".into());
    let c = router_says_on(vec![stun], StunPath::Direct, None);
    assert!(c.available);
    assert_eq!(c.firewall.verdict, FirewallVerdict::AllowsInbound);
    // The router's word stays in the evidence.
    assert_eq!(c.firewall.evidence.len(), 2);
    let dial = Sign::Blocks("dial-back: filtered".into());
    let c = router_says_on(vec![dial], StunPath::Direct, Some(true));
    assert_eq!(c.firewall.verdict, FirewallVerdict::BlocksInbound);
}

#[test]
fn the_router_decides_only_when_nothing_was_observed() {
    let c = router_says_on(Vec::new(), StunPath::Unknown, None);
    assert_eq!(c.firewall.verdict, FirewallVerdict::BlocksInbound);
    let why = vec![NoSign::NoStunServer];
    let c = conclude(HOST.into(), Vec::new(), None, why, StunPath::Unknown, None);
    assert_eq!(c.firewall.verdict, FirewallVerdict::NotChecked);
}

#[test]
fn silence_over_ipv6_is_no_internet_not_a_firewall() {
    for dial in [None, Some(false)] {
        let c = router_says_on(Vec::new(), StunPath::Silent, dial);
        assert!(!c.available);
        assert!(c.detail.starts_with(HOST), "{}", c.detail);
        let says = c.detail.contains("IPv6 does not reach the internet");
        assert!(says, "{}", c.detail);
        assert_eq!(c.firewall.verdict, FirewallVerdict::Unknown);
        assert!(c.firewall.not_checked.is_some());
    }
    // A dial-back that connected proves IPv6 gets out: only UDP is silent.
    let c = router_says_on(Vec::new(), StunPath::Silent, Some(true));
    assert!(c.available);
    assert_eq!(c.firewall.verdict, FirewallVerdict::BlocksInbound);
}

#[test]
fn a_nat_on_ipv6_leaves_the_firewall_unknown() {
    let seen: SocketAddr = "[2a0d:88:77:66::2]:40000".parse().expect("addr");
    let dial = Sign::Blocks("dial-back: filtered".into());
    let c = router_says_on(vec![dial], StunPath::Translated(Some(seen)), Some(true));
    assert!(c.available);
    let says = c.detail.contains("NAT66") && c.detail.contains("2a0d:88:77:66::2");
    assert!(says, "{}", c.detail);
    assert_eq!(c.firewall.verdict, FirewallVerdict::Unknown);
    let why = c.firewall.not_checked.expect("why");
    assert!(why.contains("pinhole"), "{why}");
}

#[test]
fn a_refusal_while_this_host_listened_is_a_rejecting_firewall() {
    use natkit_core::Protocol;
    use natkit_probe::dialback::{
        CheckPort, DialOutcome, PortReachability, Reachability, ResponderSaw, Why,
    };
    let dialled = |responder, why| PortReachability {
        port: CheckPort::new(7100, Protocol::Tcp),
        verdict: Reachability::Closed,
        proven: false,
        why,
        server_saw: DialOutcome::Refused,
        rtt: std::time::Duration::ZERO,
        responder,
    };
    let sign = super::checks::dialback_sign(
        7100,
        Protocol::Tcp,
        &dialled(ResponderSaw::Nothing, Why::RefusedNoNat),
    );
    assert!(
        matches!(&sign, Some(Sign::Blocks(e)) if e.contains("a firewall rejects it")),
        "{sign:?}"
    );
    // Nobody listened here (a port this host could not bind): the refusal
    // may be this host's own.
    let held = dialled(ResponderSaw::CannotBind { errno: 13 }, Why::RefusedNoNat);
    assert_eq!(
        super::checks::dialback_sign(7100, Protocol::Tcp, &held),
        None
    );
}
