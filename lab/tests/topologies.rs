//! Acceptance tests of the NAT lab: its daemons, links and options do what they say,
//! measured with the reference clients (stund's `stun`, miniupnpc's `upnpc`,
//! `natpmpc`, `nc`, `ping`) against the real daemons. That each NAT kind is what its
//! name says is `reference_truth.rs`. They need root and fail (never skip) without it.

#[allow(dead_code)]
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    delivered, echo, epoch, natpmpc, nft_counter, ping, running, send, text, upnpc, wan_to,
};
use natkit_lab::{Daemon, Lab, Link, Node, Proto, require_root};

// ---------------------------------------------------------------------------------
// miniupnpd: UPnP IGD and NAT-PMP mappings really forward, and really go away

#[test]
fn upnp_mappings_reach_the_lan_host_and_are_removed() {
    require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let a = *lab.addrs();
    let lan = a.lan.to_string();
    let peer = (Node::Wan, a.peer);

    // Nothing forwarded yet: the router itself answers (RST), nothing arrives.
    assert_eq!(
        delivered(
            &lab,
            (Node::Lan, 8080),
            peer,
            wan_to(&lab, 40080),
            Proto::Tcp,
            "x"
        ),
        None
    );

    // With SSDP discovery, as a user runs it.
    let out = lab
        .exec(
            Node::Lan,
            &["upnpc", "-a", lan.as_str(), "8080", "40080", "TCP"],
        )
        .expect("upnpc");
    let out = text(&out.stdout);
    assert!(
        out.contains(&format!("ExternalIPAddress = {}", a.public)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "external {}:40080 TCP is redirected to internal {lan}:8080",
            a.public
        )),
        "{out}"
    );
    let payload = format!("tcp-through-upnp-{}", lab.id());
    let got = delivered(
        &lab,
        (Node::Lan, 8080),
        peer,
        wan_to(&lab, 40080),
        Proto::Tcp,
        &payload,
    );
    assert_eq!(got.as_deref(), Some(payload.as_str()));

    // UDP too.
    let out = upnpc(&lab, &["-a", lan.as_str(), "9001", "41001", "UDP"]);
    assert!(out.contains("UDP is redirected to internal"), "{out}");
    let payload = format!("udp-through-upnp-{}", lab.id());
    let got = delivered(
        &lab,
        (Node::Lan, 9001),
        peer,
        wan_to(&lab, 41001),
        Proto::Udp,
        &payload,
    );
    assert_eq!(got.as_deref(), Some(payload.as_str()));

    let list = upnpc(&lab, &["-l"]);
    assert!(list.contains(&format!("TCP 40080->{lan}:8080")), "{list}");
    assert!(list.contains(&format!("UDP 41001->{lan}:9001")), "{list}");

    for (port, proto) in [("40080", "TCP"), ("41001", "UDP")] {
        let out = upnpc(&lab, &["-d", port, proto]);
        assert!(
            out.contains("UPNP_DeletePortMapping() returned : 0"),
            "{out}"
        );
    }
    let list = upnpc(&lab, &["-l"]);
    assert!(
        !list.contains("40080->") && !list.contains("41001->"),
        "{list}"
    );
    assert_eq!(
        delivered(
            &lab,
            (Node::Lan, 8080),
            peer,
            wan_to(&lab, 40080),
            Proto::Tcp,
            "x"
        ),
        None
    );
}

#[test]
fn natpmp_mappings_reach_the_lan_host_and_are_removed() {
    require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let a = *lab.addrs();
    let peer = (Node::Wan, a.peer);

    let out = natpmpc(&lab, Node::Lan, &[]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    assert!(
        text(&out.stdout).contains(&format!("Public IP address : {}", a.public)),
        "{}",
        natkit_lab::dump_output(&out)
    );

    // natpmpc -a <public port> <private port> <protocol> [lifetime]
    for (public, private, proto, p) in [
        (40081, 8081, "tcp", Proto::Tcp),
        (41002, 9002, "udp", Proto::Udp),
    ] {
        let (pub_s, priv_s) = (public.to_string(), private.to_string());
        let out = natpmpc(&lab, Node::Lan, &["-a", &pub_s, &priv_s, proto, "120"]);
        let want = format!(
            "Mapped public port {public} protocol {} to local port {private} liftime 120",
            proto.to_uppercase()
        );
        assert!(
            out.status.success() && text(&out.stdout).contains(&want),
            "{}",
            natkit_lab::dump_output(&out)
        );
        let payload = format!("{proto}-through-natpmp-{}", lab.id());
        let got = delivered(
            &lab,
            (Node::Lan, private),
            peer,
            wan_to(&lab, public),
            p,
            &payload,
        );
        assert_eq!(got.as_deref(), Some(payload.as_str()), "{proto}");
    }
    // NAT-PMP mappings are UPnP mappings in miniupnpd: the IGD lists them.
    let list = upnpc(&lab, &["-l"]);
    assert!(
        list.contains(&format!("TCP 40081->{}:8081", a.lan)),
        "{list}"
    );

    // Lifetime 0 deletes.
    let out = natpmpc(&lab, Node::Lan, &["-a", "40081", "8081", "tcp", "0"]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let list = upnpc(&lab, &["-l"]);
    assert!(!list.contains("40081->"), "{list}");
    assert!(
        list.contains("41002->"),
        "only the TCP mapping was deleted: {list}"
    );
    assert_eq!(
        delivered(
            &lab,
            (Node::Lan, 8081),
            peer,
            wan_to(&lab, 40081),
            Proto::Tcp,
            "x"
        ),
        None
    );
}

// ---------------------------------------------------------------------------------
// double NAT

#[test]
fn double_nat_stun_sees_the_isp_address() {
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .stund(true)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    let cgn = Ipv4Addr::new(100, 64, 0, 0);
    let in_shared_space = |ip: Ipv4Addr| u32::from(ip) & 0xffc0_0000 == u32::from(cgn);
    assert!(
        in_shared_space(a.rtr_wan),
        "router WAN {} not in 100.64.0.0/10",
        a.rtr_wan
    );
    let wan_if = lab
        .exec_ok(
            Node::Rtr,
            &["ip", "-4", "-o", "addr", "show", "dev", "wan0"],
        )
        .expect("ip addr");
    assert!(
        wan_if.contains(&format!("inet {}/10", a.rtr_wan)),
        "{wan_if}"
    );
    let isp_wan = a.isp_wan.expect("double NAT has an ISP WAN address");
    assert_eq!(a.public, isp_wan);

    let r = lab.stund_client(Node::Lan);
    assert_eq!(*r.mapped.ip(), isp_wan, "{r:?}");
    assert_ne!(*r.mapped.ip(), a.rtr_wan, "{r:?}");
    // Two port-restricted NATs in a row are still port-restricted.
    assert_eq!(
        r.parts()[..2],
        ["Independent Mapping", "Port Dependent Filter"],
        "{r:?}"
    );
}

#[test]
fn double_nat_miniupnpd_will_not_forward_from_a_cgn_address() {
    // miniupnpd 2.3.1 with a reserved address (100.64.0.2) on its ext interface:
    // GetExternalIPAddress is empty (so upnpc's discovery calls the IGD "not
    // connected"), AddPortMapping fails with 501, NAT-PMP answers "network failure".
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .miniupnpd(true)
        .build()
        .expect("lab up");
    let out = lab.exec(Node::Lan, &["upnpc", "-s"]).expect("upnpc");
    let out = text(&out.stdout);
    assert!(out.contains("Found a (not connected?) IGD"), "{out}");
    let lan = lab.addrs().lan.to_string();
    let out = upnpc(&lab, &["-a", lan.as_str(), "8080", "40080", "TCP"]);
    assert!(out.contains("ExternalIPAddress = \n"), "{out}");
    assert!(
        out.contains("failed with code 501 (Action Failed)"),
        "{out}"
    );
    let out = natpmpc(&lab, Node::Lan, &[]);
    assert!(!out.status.success(), "{}", natkit_lab::dump_output(&out));
    assert!(
        natkit_lab::dump_output(&out).contains("failed : network failure"),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let log = lab.daemon_log(Daemon::Miniupnpd).expect("log");
    assert!(
        log.contains("Reserved / private IP address 100.64.0.2 on ext interface wan0"),
        "{log}"
    );
}

#[test]
fn double_nat_mappings_with_ext_ip_reach_only_the_isp() {
    require_root();
    let isp_wan = Ipv4Addr::new(88, 77, 66, 2);
    let lab = Lab::builder()
        .double_nat(true)
        .miniupnpd_ext_ip(isp_wan)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    assert_eq!(a.isp_wan, Some(isp_wan));
    let lan = a.lan.to_string();
    let out = upnpc(&lab, &["-a", lan.as_str(), "8082", "40082", "TCP"]);
    assert!(
        out.contains(&format!("external {isp_wan}:40082 TCP is redirected")),
        "{out}"
    );

    // From the internet the mapping does not exist (the ISP NAT answers).
    let from_wan = delivered(
        &lab,
        (Node::Lan, 8082),
        (Node::Wan, a.peer),
        SocketAddrV4::new(isp_wan, 40082),
        Proto::Tcp,
        "x",
    );
    assert_eq!(from_wan, None);
    // From the ISP's network it does.
    let isp_lan = a.isp_lan.expect("isp lan address");
    let payload = format!("from-the-isp-{}", lab.id());
    let from_isp = delivered(
        &lab,
        (Node::Lan, 8082),
        (Node::Isp, isp_lan),
        SocketAddrV4::new(a.rtr_wan, 40082),
        Proto::Tcp,
        &payload,
    );
    assert_eq!(from_isp.as_deref(), Some(payload.as_str()));
}

// ---------------------------------------------------------------------------------
// lan2, loss, inbound blocks

#[test]
fn lan2_is_a_second_host_behind_the_same_nat() {
    require_root();
    let lab = Lab::builder()
        .lan2(true)
        .stund(true)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    let lan2 = a.lan2.expect("lan2 address");
    assert_eq!(lan2, Ipv4Addr::new(192, 168, 77, 3));
    let addr = lab
        .exec_ok(
            Node::Lan2,
            &["ip", "-4", "-o", "addr", "show", "dev", "eth0"],
        )
        .expect("ip");
    assert!(addr.contains(&format!("inet {lan2}/24")), "{addr}");
    assert!(
        ping(&lab, Node::Lan2, a.lan),
        "lan2 reaches lan across the bridge"
    );
    assert!(ping(&lab, Node::Lan, lan2), "lan reaches lan2");
    assert!(ping(&lab, Node::Lan2, a.rtr_lan), "lan2 reaches the router");
    let r = lab.stund_client(Node::Lan2);
    assert_eq!(*r.mapped.ip(), a.public, "{r:?}");
    assert_eq!(
        r.parts()[..2],
        ["Independent Mapping", "Port Dependent Filter"],
        "{r:?}"
    );
}

#[test]
fn loss_drops_about_the_requested_share() {
    require_root();
    let lab = Lab::builder().loss(30).build().expect("lab up");
    let (sent, received) = echo(&lab, Node::Lan, lab.addrs().peer, 400);
    assert_eq!(sent, 400);
    // Request and reply each cross the router once: delivered (1 - 0.3)^2 = 49 %.
    // 400 pings: sd 2.5 %; the bounds are > 5 sd away.
    let share = f64::from(received) / f64::from(sent);
    let line = format!("{received} of {sent} echo replies");
    assert!(
        (0.36..=0.62).contains(&share),
        "delivered {share:.2} with 30 % loss: {line}"
    );
    let dropped = nft_counter(&lab, Node::Rtr, &["chain", "inet", "loss", "ingress_loss"]);
    // Every lost echo was dropped by the rule (ARP and the like may add a few drops).
    assert!(
        dropped >= u64::from(sent - received),
        "nft dropped {dropped}: {line}"
    );
}

#[test]
fn block_inbound_drops_only_that_port() {
    require_root();
    let lab = Lab::builder()
        .miniupnpd(true)
        .block_inbound(443, Proto::Tcp)
        .build()
        .expect("lab up");
    let peer = (Node::Wan, lab.addrs().peer);
    for (public, private) in [("443", "8443"), ("8444", "8444")] {
        let out = natpmpc(&lab, Node::Lan, &["-a", public, private, "tcp", "120"]);
        assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    }
    let payload = format!("not-blocked-{}", lab.id());
    let ok = delivered(
        &lab,
        (Node::Lan, 8444),
        peer,
        wan_to(&lab, 8444),
        Proto::Tcp,
        &payload,
    );
    assert_eq!(ok.as_deref(), Some(payload.as_str()));
    let blocked = delivered(
        &lab,
        (Node::Lan, 8443),
        peer,
        wan_to(&lab, 443),
        Proto::Tcp,
        "x",
    );
    assert_eq!(blocked, None);
    let dropped = nft_counter(&lab, Node::Rtr, &["table", "netdev", "upstream"]);
    assert!(dropped > 0, "the block rule dropped nothing");
    // Only inbound is blocked: the LAN host still reaches port 443 outside.
    let payload = format!("outbound-443-{}", lab.id());
    let lan = lab.addrs().lan;
    let out = delivered(
        &lab,
        (Node::Wan, 443),
        (Node::Lan, lan),
        SocketAddrV4::new(lab.addrs().peer, 443),
        Proto::Tcp,
        &payload,
    );
    assert_eq!(out.as_deref(), Some(payload.as_str()));
}

#[test]
fn block_inbound_with_double_nat_sits_at_the_isp() {
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .block_inbound(443, Proto::Tcp)
        .build()
        .expect("lab up");
    let isp_wan = lab.addrs().isp_wan.expect("isp");
    let rules = lab
        .exec_ok(Node::Rtr, &["nft", "list", "ruleset"])
        .expect("nft");
    assert!(
        !rules.contains("upstream"),
        "the block belongs to the ISP, not the router: {rules}"
    );
    // Nothing listens on the ISP box: an open port answers RST at once, the blocked
    // one does not answer at all.
    let t = Instant::now();
    let out = send(
        &lab,
        Node::Wan,
        lab.addrs().peer,
        SocketAddrV4::new(isp_wan, 444),
        Proto::Tcp,
        "x",
    );
    assert!(
        !out.status.success() && t.elapsed() < Duration::from_millis(1500),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let t = Instant::now();
    let out = send(
        &lab,
        Node::Wan,
        lab.addrs().peer,
        SocketAddrV4::new(isp_wan, 443),
        Proto::Tcp,
        "x",
    );
    assert!(
        !out.status.success() && t.elapsed() >= Duration::from_millis(1900),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let dropped = nft_counter(&lab, Node::Isp, &["table", "netdev", "upstream"]);
    assert!(dropped > 0, "the ISP's block rule dropped nothing");
}

// ---------------------------------------------------------------------------------
// router reboot and disappearance

#[test]
fn restart_miniupnpd_is_a_router_reboot() {
    require_root();
    let mut lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let old = lab.miniupnpd_pid().expect("miniupnpd pid");
    assert!(running(old));
    let out = natpmpc(&lab, Node::Lan, &["-a", "40090", "8090", "tcp", "120"]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    thread::sleep(Duration::from_secs(2));
    let before = epoch(&natpmpc(&lab, Node::Lan, &[]));
    assert!(before >= 2, "epoch {before}");

    let new = lab.restart_miniupnpd().expect("restart");
    assert_ne!(new, old);
    assert_eq!(lab.miniupnpd_pid(), Some(new));
    assert!(!running(old), "old miniupnpd {old} still runs");
    assert!(running(new));
    let after = epoch(&natpmpc(&lab, Node::Lan, &[]));
    assert!(after < before, "epoch {before} -> {after}");
    let list = upnpc(&lab, &["-l"]);
    assert!(
        !list.contains("40090->"),
        "mapping survived the reboot: {list}"
    );
    let chain = lab.exec_ok(
        Node::Rtr,
        &[
            "nft",
            "list",
            "chain",
            "inet",
            "nat",
            "prerouting_miniupnpd",
        ],
    );
    assert!(
        !chain.expect("nft").contains("dnat"),
        "stale DNAT after reboot"
    );
}

#[test]
fn link_down_makes_the_router_disappear() {
    require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let a = *lab.addrs();
    assert!(ping(&lab, Node::Lan, a.rtr_lan));
    assert!(ping(&lab, Node::Lan, a.peer));

    lab.set_link(Link::RtrLan, false).expect("rtr-lan down");
    assert!(
        !ping(&lab, Node::Lan, a.rtr_lan),
        "router still answers on the LAN"
    );
    lab.set_link(Link::RtrLan, true).expect("rtr-lan up");
    assert!(ping(&lab, Node::Lan, a.rtr_lan));
    let out = natpmpc(&lab, Node::Lan, &[]);
    assert!(
        out.status.success(),
        "miniupnpd after the LAN came back: {}",
        natkit_lab::dump_output(&out)
    );

    lab.set_link(Link::RtrWan, false).expect("rtr-wan down");
    assert!(ping(&lab, Node::Lan, a.rtr_lan));
    assert!(!ping(&lab, Node::Lan, a.peer), "the internet still answers");
    // miniupnpd notices: without its WAN link the IGD is "not connected" and
    // NAT-PMP answers "network failure".
    let out = text(&lab.exec(Node::Lan, &["upnpc", "-s"]).expect("upnpc").stdout);
    assert!(out.contains("Found a (not connected?) IGD"), "{out}");
    let out = natpmpc(&lab, Node::Lan, &[]);
    assert!(
        natkit_lab::dump_output(&out).contains("failed : network failure"),
        "{}",
        natkit_lab::dump_output(&out)
    );
    lab.set_link(Link::RtrWan, true).expect("rtr-wan up");
    assert!(ping(&lab, Node::Lan, a.peer), "default route restored");
    let out = text(&lab.exec(Node::Lan, &["upnpc", "-s"]).expect("upnpc").stdout);
    assert!(out.contains("Found valid IGD"), "{out}");
}
