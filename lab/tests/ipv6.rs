//! The dual-stack lab (`natlab.sh up --ipv6`, `LabBuilder::ipv6(true)`), proven with
//! the reference tools: the LAN host's SLAAC stable and temporary addresses, IPv6 to
//! the outside, the router's stateful firewall dropping new inbound IPv6, and
//! miniupnpd's WANIPv6FirewallControl pinholes (`upnpc -6`) letting exactly the
//! allowed peer through until they are deleted or the router restarts. Without
//! `--ipv6` there is no IPv6 at all. Root only; fails, never skips, without it.

use std::net::Ipv6Addr;
use std::process::Output;
use std::time::Duration;

use natkit_lab::{Lab, LabAddrs6, LabChild, Link, NatKind, Node, Proto, require_root};

/// The TCP port of the LAN host's listener.
const PORT: u16 = 18080;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn v6(lab: &Lab) -> LabAddrs6 {
    lab.addrs().v6.expect("a dual-stack lab has IPv6 addresses")
}

/// `ip -6 -o addr show dev eth0 scope global` in `node`: (address, flags) pairs.
fn global_addrs(lab: &Lab, node: Node) -> Vec<(Ipv6Addr, String)> {
    let out = lab
        .exec_ok(
            node,
            &[
                "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
            ],
        )
        .expect("ip addr");
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "inet6").skip(1);
            let addr = words.next()?.split('/').next()?.parse().ok()?;
            Some((addr, words.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

/// An EUI-64 interface identifier (SLAAC's stable address): ff:fe in its middle.
fn is_eui64(a: Ipv6Addr) -> bool {
    let o = a.octets();
    o[11] == 0xff && o[12] == 0xfe
}

fn in_lan(v6: &LabAddrs6, a: Ipv6Addr) -> bool {
    a.segments()[..4] == v6.lan_net.segments()[..4]
}

/// A TCP listener on `addr`:PORT in the LAN host that answers "pong" and prints
/// what it received.
fn listen(lab: &Lab, addr: Ipv6Addr) -> LabChild {
    listen_on(lab, Node::Lan, addr, PORT)
}

fn listen_on(lab: &Lab, node: Node, addr: Ipv6Addr, port: u16) -> LabChild {
    let script = format!("echo pong | nc -6 -n -l -s {addr} -p {port}");
    let child = lab
        .spawn(node, &["sh", "-c", script.as_str()])
        .expect("spawn listener");
    lab.wait_listening(node, Proto::Tcp, port, Duration::from_secs(5))
        .expect("listener up");
    child
}

/// Connects from the wan node, bound to `src`, to `dst`:PORT, sends "ping" and
/// prints the answer; gives up after 2 s without a connection.
fn connect(lab: &Lab, src: Ipv6Addr, dst: Ipv6Addr) -> Output {
    connect_from(lab, Node::Wan, src, (dst, PORT))
}

fn connect_from(lab: &Lab, node: Node, src: Ipv6Addr, (dst, port): (Ipv6Addr, u16)) -> Output {
    let script = format!("echo ping | nc -6 -n -v -N -w 2 -s {src} {dst} {port}");
    lab.exec(node, &["sh", "-c", script.as_str()])
        .expect("run nc")
}

/// The connection attempt got no answer at all: dropped by the firewall, not
/// refused (nc says "timed out").
fn assert_dropped(out: &Output, what: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("timed out"),
        "{what}: expected a silent drop (connect timed out); nc said {}",
        natkit_lab::dump_output(out)
    );
}

/// Connects from the LAN host (unbound) to a listener on PEER_IP6 and returns the
/// source address the peer saw.
fn source_seen_by_peer(lab: &Lab) -> Ipv6Addr {
    const PEER_PORT: u16 = 18081;
    let peer = v6(lab).peer.to_string();
    let port = PEER_PORT.to_string();
    let listener = lab
        .spawn(
            Node::Wan,
            &["nc", "-6", "-n", "-v", "-l", "-s", &peer, "-p", &port],
        )
        .expect("peer listener");
    lab.wait_listening(Node::Wan, Proto::Tcp, PEER_PORT, Duration::from_secs(5))
        .expect("peer listening");
    let script = format!("echo hi | nc -6 -n -N -w 2 {peer} {port}");
    let out = lab
        .exec(Node::Lan, &["sh", "-c", script.as_str()])
        .expect("nc");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let seen = listener
        .wait_with_output_timeout(Duration::from_secs(5))
        .expect("peer listener output");
    // openbsd nc -v: "Connection received on ADDR PORT".
    let err = text(&seen.stderr);
    err.split("Connection received on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("the peer's nc said: {err}"))
}

/// One `ping -6` from `node` to `dst`, 2 s to answer.
fn ping6(lab: &Lab, node: Node, dst: Ipv6Addr) -> Output {
    lab.exec(
        node,
        &["ping", "-6", "-c", "1", "-W", "2", &dst.to_string()],
    )
    .expect("ping")
}

/// `upnpc -6` against the router's IPv6 description URL (no SSDP wait).
fn upnpc6(lab: &Lab, args: &[&str]) -> String {
    let url = format!("http://[{}]:2869/rootDesc.xml", v6(lab).rtr_lan);
    let mut argv = vec!["upnpc", "-6", "-u", url.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(Node::Lan, &argv).expect("upnpc");
    text(&out.stdout) + &text(&out.stderr)
}

fn pinhole_rules(lab: &Lab) -> String {
    lab.exec_ok(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "miniupnpd"],
    )
    .expect("nft list")
}

/// Adds a TCP pinhole for `internal`:PORT open to `remote` only; its UniqueID.
fn add_pinhole(lab: &Lab, remote: Ipv6Addr, internal: Ipv6Addr) -> String {
    let (remote, internal, port) = (remote.to_string(), internal.to_string(), PORT.to_string());
    let out = upnpc6(lab, &["-A", &remote, "0", &internal, &port, "TCP", "300"]);
    out.split("Pinhole ID = ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|id| id.parse::<u16>().is_ok())
        .unwrap_or_else(|| panic!("no pinhole ID in upnpc's output:\n{out}"))
        .to_owned()
}

#[test]
fn dual_stack_lab_firewall_drops_inbound_and_upnpc_pinholes_open_it() {
    require_root();
    let mut lab = Lab::builder()
        .ipv6(true)
        .miniupnpd(true)
        .lan2(true)
        .build()
        .expect("lab");
    let a = v6(&lab);
    assert_eq!(lab.get("IPV6"), Some("1"));
    assert_eq!(lab.get("LAN_NET6"), Some("2a0d:88:77:77::/64"));
    assert_eq!(a.lan, "2a0d:88:77:77::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(a.lan2, Some("2a0d:88:77:77::3".parse().unwrap()));
    assert_eq!(a.peer, "2a0d:88:77:66::20".parse::<Ipv6Addr>().unwrap());

    // (a) Stable and temporary SLAAC addresses next to the static one, on both LAN
    // hosts, all usable (no "tentative": DAD is off).
    for (node, stat, slaac, temp) in [
        (Node::Lan, a.lan, a.lan_slaac, a.lan_temp),
        (
            Node::Lan2,
            a.lan2.expect("lan2"),
            a.lan2_slaac.expect("lan2 slaac"),
            a.lan2_temp.expect("lan2 temp"),
        ),
    ] {
        let addrs = global_addrs(&lab, node);
        let flags = |x: Ipv6Addr| {
            addrs
                .iter()
                .find(|(addr, _)| *addr == x)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| panic!("{node:?} lacks {x}: {addrs:?}"))
        };
        assert!(!flags(stat).contains("temporary"), "{addrs:?}");
        assert!(flags(slaac).contains("mngtmpaddr"), "{addrs:?}");
        assert!(flags(temp).contains("temporary"), "{addrs:?}");
        assert!(
            addrs.iter().all(|(_, f)| !f.contains("tentative")),
            "{addrs:?}"
        );
        assert!(in_lan(&a, slaac) && in_lan(&a, temp), "{addrs:?}");
        assert!(is_eui64(slaac), "stable SLAAC {slaac} is not EUI-64");
        assert!(!is_eui64(temp), "temporary {temp} looks like EUI-64");
    }
    let ping = lab
        .exec(
            Node::Lan,
            &[
                "ping",
                "-6",
                "-c",
                "2",
                "-i",
                "0.2",
                "-W",
                "2",
                &a.peer.to_string(),
            ],
        )
        .expect("ping");
    assert!(
        ping.status.success() && text(&ping.stdout).contains(" 0% packet loss"),
        "LAN → PEER over IPv6: {}",
        natkit_lab::dump_output(&ping)
    );
    // No NAT on IPv6, and the temporary address is the source of outgoing
    // connections (use_tempaddr=2): the peer sees it.
    assert_eq!(source_seen_by_peer(&lab), a.lan_temp);

    // IPv4 is as without --ipv6, UPnP over IPv4 included: miniupnpd's HTTP socket is
    // dual-stack ([::]%br0:2869), not bound to the router's IPv6 address.
    let v4 = lab
        .exec(
            Node::Lan,
            &["upnpc", "-u", "http://192.168.77.1:2869/rootDesc.xml", "-s"],
        )
        .expect("upnpc -s");
    assert!(
        text(&v4.stdout).contains("ExternalIPAddress = 88.77.66.2"),
        "{}",
        natkit_lab::dump_output(&v4)
    );
    let fw = upnpc6(&lab, &["-S"]);
    assert!(fw.contains("Inbound Pinhole Allowed: Yes"), "{fw}");

    // (b) A listener on the stable address is not reachable from the internet: the
    // connection attempt is dropped (times out), not refused.
    let listener = listen(&lab, a.lan_slaac);
    assert_dropped(
        &connect(&lab, a.peer, a.lan_slaac),
        "PEER → LAN without a pinhole",
    );

    // (c) upnpc opens a pinhole. miniupnpd allows one only for the address the SOAP
    // request comes from (606 otherwise, miniupnp issue 731), and the LAN host's
    // requests come from its temporary address: a pinhole for the stable address is
    // refused.
    let refused = upnpc6(
        &lab,
        &[
            "-A",
            &a.peer.to_string(),
            "0",
            &a.lan_slaac.to_string(),
            &PORT.to_string(),
            "TCP",
            "300",
        ],
    );
    assert!(
        refused.contains("failed with code 606"),
        "AddPinhole from the temporary address for the stable one: {refused}"
    );
    // Routing the router's address with the stable one as preferred source makes
    // upnpc's requests come from it (natkit binds instead).
    lab.prefer_source6(Node::Lan, a.rtr_lan, a.lan_slaac)
        .expect("route with preferred source");
    let id = add_pinhole(&lab, a.peer, a.lan_slaac);
    let rules = pinhole_rules(&lab);
    assert!(
        rules.contains(&format!("th dport {PORT}")) && rules.contains("accept"),
        "{rules}"
    );
    let out = connect(&lab, a.peer, a.lan_slaac);
    assert!(
        out.status.success() && text(&out.stdout).contains("pong"),
        "PEER → LAN through the pinhole: {}",
        natkit_lab::dump_output(&out)
    );
    let got = listener
        .wait_with_output_timeout(Duration::from_secs(5))
        .expect("listener output");
    assert_eq!(text(&got.stdout).trim(), "ping");
    // The pinhole names its remote host: PEER2 is still dropped.
    let listener = listen(&lab, a.lan_slaac);
    assert_dropped(
        &connect(&lab, a.peer2, a.lan_slaac),
        "PEER2 → LAN through a pinhole for PEER only",
    );
    // Deleted, the pinhole is gone and PEER is dropped again.
    let deleted = upnpc6(&lab, &["-D", &id]);
    assert!(
        deleted.contains("UPNP_DeletePinhole() returned : 0"),
        "{deleted}"
    );
    assert!(
        !pinhole_rules(&lab).contains("th dport"),
        "{}",
        pinhole_rules(&lab)
    );
    assert_dropped(
        &connect(&lab, a.peer, a.lan_slaac),
        "PEER → LAN after DeletePinhole",
    );
    // miniupnpd 2.3.1 answers the delete of an unknown UniqueID with 402 Invalid
    // Args (IGD:2 says 704 NoSuchEntry).
    let again = upnpc6(&lab, &["-D", &id]);
    assert!(
        again.contains("UPNP_DeletePinhole() returned : 402"),
        "{again}"
    );

    // A router reboot forgets pinholes; the restarted miniupnpd serves IPv6 again.
    add_pinhole(&lab, a.peer, a.lan_slaac);
    assert!(pinhole_rules(&lab).contains("th dport"));
    lab.restart_miniupnpd().expect("restart miniupnpd");
    assert!(
        !pinhole_rules(&lab).contains("th dport"),
        "{}",
        pinhole_rules(&lab)
    );
    assert_dropped(
        &connect(&lab, a.peer, a.lan_slaac),
        "PEER → LAN after a router restart",
    );
    drop(listener);
    // Its UniqueIDs start over.
    assert_eq!(add_pinhole(&lab, a.peer, a.lan_slaac), "1");
    lab.down().expect("down");
}

#[test]
fn double_nat_routes_ipv6_through_the_isp_without_translation() {
    require_root();
    let lab = Lab::builder()
        .ipv6(true)
        .double_nat(true)
        .build()
        .expect("lab");
    let a = v6(&lab);
    assert_eq!(a.rtr_wan, "2a0d:88:77:65::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(a.isp_wan, Some("2a0d:88:77:66::2".parse().unwrap()));
    // The outside reaches the router's firewall (echo passes, TCP is dropped there).
    let ping = ping6(&lab, Node::Wan, a.lan);
    assert!(ping.status.success(), "{}", natkit_lab::dump_output(&ping));
    let listener = listen(&lab, a.lan);
    assert_dropped(
        &connect(&lab, a.peer, a.lan),
        "PEER → LAN behind double NAT",
    );
    drop(listener);
    // The ISP routes IPv6 untranslated: the peer sees the LAN host's own address.
    assert_eq!(source_seen_by_peer(&lab), a.lan_temp);
    // The uplink down and up again: the router's IPv6 default route comes back
    // (addresses survive a link down: keep_addr_on_down).
    lab.set_link(Link::RtrWan, false).expect("link down");
    assert!(!ping6(&lab, Node::Lan, a.peer).status.success());
    lab.set_link(Link::RtrWan, true).expect("link up");
    let ping = ping6(&lab, Node::Lan, a.peer);
    assert!(ping.status.success(), "{}", natkit_lab::dump_output(&ping));
    lab.down().expect("down");
}

#[test]
fn open_lab_has_no_ipv6_firewall_but_the_port_blocks_apply_to_ipv6() {
    require_root();
    const BLOCKED_IN: u16 = 18082;
    const BLOCKED_OUT: u16 = 18083;
    let lab = Lab::builder()
        .nat(NatKind::Open)
        .ipv6(true)
        .block_inbound(BLOCKED_IN, Proto::Tcp)
        .block_outbound(BLOCKED_OUT, Proto::Tcp)
        .build()
        .expect("lab");
    let a = v6(&lab);
    // No NAT and no firewall: an inbound connection reaches the LAN host.
    let listener = listen(&lab, a.lan_slaac);
    let out = connect(&lab, a.peer, a.lan_slaac);
    assert!(
        out.status.success() && text(&out.stdout).contains("pong"),
        "PEER → LAN on the open lab: {}",
        natkit_lab::dump_output(&out)
    );
    drop(listener);
    // The ISP's inbound block and the router's outbound block match IPv6 too.
    let listener = listen_on(&lab, Node::Lan, a.lan_slaac, BLOCKED_IN);
    assert_dropped(
        &connect_from(&lab, Node::Wan, a.peer, (a.lan_slaac, BLOCKED_IN)),
        "PEER → LAN to an inbound-blocked port",
    );
    drop(listener);
    let listener = listen_on(&lab, Node::Wan, a.peer, BLOCKED_OUT);
    assert_dropped(
        &connect_from(&lab, Node::Lan, a.lan_slaac, (a.peer, BLOCKED_OUT)),
        "LAN → PEER to an outbound-blocked port",
    );
    drop(listener);
    lab.down().expect("down");
}

#[test]
fn without_ipv6_the_lab_has_no_ipv6_at_all() {
    require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab");
    assert_eq!(lab.addrs().v6, None);
    assert_eq!(lab.get("IPV6"), Some("0"));
    assert_eq!(lab.get("LAN_IP6"), None);
    for node in [Node::Lan, Node::Rtr, Node::Wan] {
        let addrs = lab
            .exec_ok(node, &["ip", "-6", "addr"])
            .expect("ip -6 addr");
        assert!(addrs.trim().is_empty(), "{node:?} has IPv6: {addrs}");
        let off = lab
            .exec_ok(node, &["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"])
            .expect("sysctl");
        assert_eq!(off.trim(), "1", "{node:?}");
    }
    let conf = std::fs::read_to_string(lab.run_dir().join("miniupnpd.conf")).expect("conf");
    assert!(conf.contains("ipv6_disable=yes"), "{conf}");
    lab.down().expect("down");
}
