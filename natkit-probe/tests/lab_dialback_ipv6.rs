//! Outside-in reachability over IPv6 in the dual-stack lab (root only;
//! fails, never skips, without it). No NAT on IPv6: the router routes the
//! LAN /64 and its stateful firewall drops new inbound connections except
//! through miniupnpd's pinholes. natkit's dial-back server listens
//! dual-stack (`[::]:7007`) in wan and dials the LAN host's stable address
//! 2a0d:88:77:77::2, which the check's control connection comes from; the
//! router adds the cases a real one may have: a port it rejects with ICMPv6
//! admin prohibited or port unreachable, and an IPv6 port forward (DNAT)
//! to lan2. Then the probe engine from wan, the same ports, as the
//! yardstick: its verdicts name the ICMPv6 errors and who sent them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use dialback_lab::{Check, SERVER_PORT, row, runtime, serve};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use natkit_probe::{IcmpKind, PortState, PortVerdict, ProbePlan, Prober, Reason};

mod dialback_lab;

/// No pinhole: the firewall drops it, `filtered`.
const DROPPED: u16 = 41080;
/// A pinhole (upnpc -6 -A), our responder listens: `reachable`.
const PINHOLE: u16 = 41081;
/// Forwarded by the router to lan2 (DNAT66), where `nc` listens:
/// `wrong_host`.
const TO_LAN2: u16 = 41082;
/// Rejected by the router with ICMPv6 administratively prohibited.
const PROHIBITED: u16 = 41083;
/// Rejected by the router with ICMPv6 port unreachable: from the router,
/// not the target, so `filtered` rather than `closed`.
const REJECTED: u16 = 41084;
/// A pinhole with nothing listening behind it (engine): `closed`.
const PINHOLE_CLOSED: u16 = 41085;
/// UDP, a pinhole: `reachable`.
const UDP_PINHOLE: u16 = 41090;
/// UDP, no pinhole: `filtered`.
const UDP_DROPPED: u16 = 41091;
/// UDP, rejected by the router (nftables' plain `reject`: ICMPv6 port
/// unreachable from the router).
const UDP_REJECTED: u16 = 41092;
/// IPv4 through the same dual-stack server: not mapped, the router resets.
const V4_UNMAPPED: u16 = 41100;

// ---- the helper run inside the lab ----

#[test]
#[ignore = "helper: the engine probing the LAN host's IPv6 address from wan, run by lab_dialback_ipv6"]
fn wan_engine_v6() {
    let addrs = natkit_lab::helper_addrs("wan_engine_v6")
        .expect("lab env")
        .expect("in the lab");
    let target = IpAddr::V6(addrs.v6.expect("ipv6 lab").lan);
    let spec = format!(
        "{DROPPED},{PINHOLE},{PROHIBITED},{REJECTED},{PINHOLE_CLOSED}/tcp,\
         {UDP_PINHOLE},{UDP_DROPPED},{UDP_REJECTED}/udp"
    )
    .parse()
    .expect("spec");
    let plan = ProbePlan::from_spec(&[target], &spec).expect("plan");
    let summary = runtime()
        .block_on(async { Prober::new(Default::default())?.run(plan).await })
        .expect("probe");
    for v in &summary.verdicts {
        println!("{}", serde_json::to_string(v).expect("json"));
    }
}

// ---- the test ----

fn nft(lab: &Lab, rule: &str) {
    lab.exec_ok(Node::Rtr, &["nft", rule]).expect("nft");
}

/// A pinhole through miniupnpd for the LAN host's stable address, open to
/// the server's address (the peer) only. miniupnpd takes AddPinhole only
/// from the pinhole's own address (606 otherwise), so the caller routes
/// the router's address with that source first.
fn pinhole(lab: &Lab, port: u16, proto: &str) {
    let a = lab.addrs6().expect("ipv6 lab");
    let url = format!("http://[{}]:2869/rootDesc.xml", a.rtr_lan);
    let (peer, lan, p) = (a.peer.to_string(), a.lan.to_string(), port.to_string());
    let argv = [
        "upnpc", "-6", "-u", &url, "-A", &peer, "0", &lan, &p, proto, "120",
    ];
    let out = lab.exec(Node::Lan, &argv).expect("upnpc");
    let said = dialback_lab::text(&out.stdout) + &dialback_lab::text(&out.stderr);
    assert!(
        said.contains("Pinhole ID = "),
        "upnpc -6 -A {port}/{proto}: {said}"
    );
}

fn listen6(lab: &Lab, node: Node, port: u16) -> LabChild {
    let p = port.to_string();
    let child = lab
        .spawn(node, &["nc", "-6", "-n", "-k", "-l", "-p", &p])
        .expect("spawn nc");
    lab.wait_listening(node, Proto::Tcp, port, Duration::from_secs(5))
        .expect("nc listening");
    child
}

/// The router's extras: rejects with ICMPv6 errors, and an IPv6 port
/// forward of TO_LAN2 to lan2 (a DNAT that the forward chain lets pass as
/// it lets IPv4 port forwards).
fn router_rules(lab: &Lab) {
    let a = lab.addrs6().expect("ipv6 lab");
    let (lan, lan2) = (a.lan, a.lan2.expect("lan2"));
    nft(lab, "add table inet nkdb");
    nft(
        lab,
        "add chain inet nkdb forward_filter { type filter hook forward priority filter - 10; policy accept; }",
    );
    for (l4, port, how) in [
        (
            "tcp",
            PROHIBITED,
            "reject with icmpv6 type admin-prohibited",
        ),
        ("tcp", REJECTED, "reject with icmpv6 type port-unreachable"),
        ("udp", UDP_REJECTED, "reject"),
    ] {
        nft(
            lab,
            &format!("add rule inet nkdb forward_filter ip6 daddr {lan} {l4} dport {port} {how}"),
        );
    }
    nft(
        lab,
        "add chain inet nkdb prerouting_nat { type nat hook prerouting priority dstnat - 10; policy accept; }",
    );
    nft(
        lab,
        &format!(
            "add rule inet nkdb prerouting_nat ip6 daddr {lan} tcp dport {TO_LAN2} dnat ip6 to {lan2}"
        ),
    );
    nft(
        lab,
        "insert rule inet filter forward meta nfproto ipv6 ct status dnat accept",
    );
}

fn item(port: u16, proto: &str) -> String {
    format!("{port}/{proto}")
}

#[test]
fn lab_dialback_ipv6() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .ipv6(true)
        .miniupnpd(true)
        .lan2(true)
        .build()
        .expect("lab");
    let a = lab.addrs6().expect("ipv6 lab");
    let stable = IpAddr::V6(a.lan);
    // upnpc's requests to the router must come from the stable address.
    lab.prefer_source6(Node::Lan, a.rtr_lan, a.lan)
        .expect("route with the stable source");
    for (port, proto) in [
        (PINHOLE, "TCP"),
        (PINHOLE_CLOSED, "TCP"),
        (UDP_PINHOLE, "UDP"),
    ] {
        pinhole(&lab, port, proto);
    }
    router_rules(&lab);
    let _lan2_service = listen6(&lab, Node::Lan2, TO_LAN2);

    let server_addr = SocketAddr::new(IpAddr::V6(a.peer), SERVER_PORT);
    let _server = serve(
        &lab,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), SERVER_PORT),
    );

    // (a) From the stable address, responders on every address.
    let ports = [
        item(DROPPED, "tcp"),
        item(PINHOLE, "tcp"),
        item(TO_LAN2, "tcp"),
        item(PROHIBITED, "tcp"),
        item(REJECTED, "tcp"),
        item(UDP_PINHOLE, "udp"),
        item(UDP_DROPPED, "udp"),
        item(UDP_REJECTED, "udp"),
    ];
    let check = Check {
        ports: &ports,
        source: Some(stable),
        responder: None,
    };
    let lines = dialback_lab::check(&lab, server_addr, check);
    let head = &lines[0];
    let observed: SocketAddr = head["observed"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("observed");
    assert_eq!(observed.ip(), stable, "{head}");
    assert_eq!(head["behind_nat"], false, "{head}");
    // The unforwarded control ports are dropped like any port without a
    // pinhole.
    for c in head["controls"].as_array().expect("controls") {
        assert_eq!(c["outcome"], "silence", "{c}");
    }
    let expect = [
        (DROPPED, "tcp", "filtered", false, "silent_no_nat"),
        (PINHOLE, "tcp", "reachable", true, "nonce_echoed"),
        (TO_LAN2, "tcp", "wrong_host", false, "other_host_answered"),
        (PROHIBITED, "tcp", "filtered", false, "icmp_unreachable"),
        (REJECTED, "tcp", "filtered", false, "icmp_unreachable"),
        (UDP_PINHOLE, "udp", "reachable", true, "nonce_echoed"),
        (UDP_DROPPED, "udp", "filtered", false, "silent_no_nat"),
        (UDP_REJECTED, "udp", "filtered", false, "icmp_unreachable"),
    ];
    for (port, proto, state, proven, why) in expect {
        assert_eq!(
            row(&lines, port, proto),
            (state.to_owned(), proven, why.to_owned()),
            "{port}/{proto}"
        );
    }

    // (b) The same pinholes with nothing listening at the stable address
    // (the responders listen on the SLAAC one): the reset and the ICMPv6
    // port unreachable come back through the pinhole, from the target.
    let ports = [item(PINHOLE, "tcp"), item(UDP_PINHOLE, "udp")];
    let check = Check {
        ports: &ports,
        source: Some(stable),
        responder: Some(IpAddr::V6(a.lan_slaac)),
    };
    let lines = dialback_lab::check(&lab, server_addr, check);
    for (port, proto) in [(PINHOLE, "tcp"), (UDP_PINHOLE, "udp")] {
        assert_eq!(
            row(&lines, port, proto),
            ("closed".to_owned(), false, "refused_no_nat".to_owned()),
            "{port}/{proto}"
        );
    }

    // (c) Without a source the system picks the temporary address: the
    // server dials that one, for which there is no pinhole.
    let ports = [item(PINHOLE, "tcp")];
    let check = Check {
        ports: &ports,
        ..Check::default()
    };
    let lines = dialback_lab::check(&lab, server_addr, check);
    assert_eq!(
        lines[0]["observed"]
            .as_str()
            .and_then(|s| s.parse::<SocketAddr>().ok())
            .map(|o| o.ip()),
        Some(IpAddr::V6(a.lan_temp)),
        "{}",
        lines[0]
    );
    assert_eq!(row(&lines, PINHOLE, "tcp").0, "filtered");

    // (d) IPv4 through the same [::] listener: the client arrives mapped,
    // is reported and dialled as 88.77.66.2, behind the NAT.
    let ports = [item(V4_UNMAPPED, "tcp")];
    let check = Check {
        ports: &ports,
        ..Check::default()
    };
    let v4_server = SocketAddr::new(IpAddr::V4(lab.addrs().peer), SERVER_PORT);
    let lines = dialback_lab::check(&lab, v4_server, check);
    assert_eq!(
        lines[0]["observed"]
            .as_str()
            .map(|s| s.starts_with(&format!("{}:", lab.addrs().public))),
        Some(true),
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["behind_nat"], true);
    assert_eq!(
        row(&lines, V4_UNMAPPED, "tcp"),
        (
            "not_forwarded".to_owned(),
            false,
            "refused_unforwarded".to_owned()
        )
    );

    // The yardstick: the engine from wan, with a listener where the
    // responder was.
    let _listener = listen6(&lab, Node::Lan, PINHOLE);
    let verdicts: BTreeMap<(u16, bool), PortVerdict> = lab
        .helper_lines(Node::Wan, "wan_engine_v6", "{")
        .iter()
        .map(|l| {
            let v: PortVerdict = serde_json::from_str(&format!("{{{l}")).expect("verdict json");
            let tcp = v.probe.protocol == natkit_core::Protocol::Tcp;
            ((v.probe.addr.port(), tcp), v)
        })
        .collect();
    println!("{verdicts:#?}");
    let router = Some(IpAddr::V6(a.rtr_wan));
    let icmp = |port: u16, tcp: bool, kind: IcmpKind, from: Option<IpAddr>, state| {
        let v = &verdicts[&(port, tcp)];
        assert_eq!(v.state, state, "{v}");
        assert!(
            matches!(v.reason, Reason::Icmp { report, .. }
                if report.kind == kind && report.offender == from),
            "{v}"
        );
    };
    icmp(
        PROHIBITED,
        true,
        IcmpKind::v6(1, 1),
        router,
        PortState::Filtered,
    );
    icmp(
        REJECTED,
        true,
        IcmpKind::v6(1, 4),
        router,
        PortState::Filtered,
    );
    icmp(
        UDP_REJECTED,
        false,
        IcmpKind::v6(1, 4),
        router,
        PortState::Filtered,
    );
    icmp(
        UDP_PINHOLE,
        false,
        IcmpKind::v6(1, 4),
        Some(stable),
        PortState::Closed,
    );
    let state = |port: u16, tcp: bool| verdicts[&(port, tcp)].state;
    assert_eq!(state(DROPPED, true), PortState::Filtered);
    assert_eq!(state(PINHOLE, true), PortState::Open);
    assert_eq!(state(PINHOLE_CLOSED, true), PortState::Closed);
    assert_eq!(state(UDP_DROPPED, false), PortState::OpenFiltered);
    lab.down().expect("lab down");
}
