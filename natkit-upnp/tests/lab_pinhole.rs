//! IPv6 pinholes through miniupnpd's `WANIPv6FirewallControl` in the
//! dual-stack lab (root only; fails, never skips, without it).
//!
//! The helper `pinhole_lan_side` runs in the LAN: TCP and UDP echo servers
//! on `[::]`, and `UpnpMapper` (found by real discovery) opening pinholes
//! for `[::]:PORT`, which natkit turns into the host's stable address. The
//! outer test has the wan peer (`PEER_IP6`) connect before, through, after a
//! renewal, after a miniupnpd restart (the renewals re-create both
//! pinholes, the UDP one first so that it takes the TCP one's old ID) and
//! after the delete; and checks that the same request from the host's
//! temporary address is refused with 606.
//!
//! miniupnpd 2.3.1, as seen here:
//! - the pinhole's ID is 1 for the first one after a (re)start;
//! - AddPinhole for a pinhole that exists returns its ID and keeps one rule
//!   (natkit's renewal is AddPinhole, then UpdatePinhole for the lease);
//! - `restart_miniupnpd` flushes its rules and counts IDs from 1 again; the
//!   next renewal re-creates the pinhole;
//! - its nftables backend writes the pinhole as one rule in `inet filter
//!   miniupnpd` (`iif "wan0" th dport P @nh,192,128 0x<addr> @nh,48,8 0x6
//!   accept`) with no counter, so CheckPinholeWorking answers 709
//!   NoTrafficReceived and GetPinholePackets 0 even after traffic went
//!   through;
//! - GetOutboundPinholeTimeout is 501 (not implemented);
//! - the router is reached at its link-local address from the IPv6 default
//!   route (learnt from the router advertisements), on the IPv4 HTTP port.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, UdpSocket};
use std::time::Duration;

use natkit_core::{FailureKind, Mapping, MappingRequest, PortMapper, Protocol};
use natkit_lab::{ECHO_PREFIX, HelperSession, Lab, Node, Proto, serve_commands};
use natkit_upnp::{DiscoveryConfig, PinholeId, PinholeRequest, UpnpMapper};

/// The listener's port (miniupnpd refuses pinholes below 1024).
const PORT: u16 = 42_424;
const LINE: Duration = Duration::from_secs(20);

fn token_of(m: &Mapping) -> u16 {
    PinholeId::from_token(m.token.as_ref().expect("token"))
        .expect("pinhole ID")
        .0
}

fn mapping_line(tag: &str, m: &Mapping) -> String {
    format!(
        "{tag} {} {} {} {}",
        m.external,
        m.internal,
        m.lifetime.as_secs(),
        token_of(m)
    )
}

/// A TCP echo server on `[::]:PORT` and a UDP one on `[udp_on]:PORT`,
/// reporting each exchange as `ECHOED <from> <text>`.
fn spawn_echo6(udp_on: Ipv6Addr) {
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, PORT)).expect("bind echo");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let from = s.peer_addr().ok();
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            let text = String::from_utf8_lossy(&got).into_owned();
            let _ = s.write_all(format!("{ECHO_PREFIX}{text}").as_bytes());
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "ECHOED {} {text}",
                from.map_or("?".into(), |f| f.to_string())
            );
            let _ = out.flush();
        }
    });
    // Bound to the pinhole's address: from `[::]` the answer would leave
    // from the temporary address (the kernel's preferred source with
    // use_tempaddr=2), and the peer's connected socket would drop it.
    let udp = UdpSocket::bind((udp_on, PORT)).expect("bind UDP echo");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = udp.send_to(format!("{ECHO_PREFIX}{text}").as_bytes(), from);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "ECHOED {from} {text}");
            let _ = out.flush();
        }
    });
}

#[test]
#[ignore = "helper process body; upnp_pinhole_in_the_dual_stack_lab runs it in the LAN"]
fn pinhole_lan_side() {
    let Some(a) = natkit_lab::helper_addrs("pinhole_lan_side").expect("lab env") else {
        return;
    };
    let v6 = a.v6.expect("a dual-stack lab");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    spawn_echo6(v6.lan);
    let mapper = rt
        .block_on(UpnpMapper::discover(&DiscoveryConfig::default()))
        .expect("discover");
    let req = MappingRequest::new(
        Protocol::Tcp,
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), PORT),
    )
    .with_lifetime(Duration::from_secs(120));
    let udp_req = MappingRequest {
        protocol: Protocol::Udp,
        ..req.clone()
    };
    println!("READY");
    let mut held: Option<Mapping> = None;
    let mut held_udp: Option<Mapping> = None;
    serve_commands(|cmd| match cmd {
        "map" => {
            let m = rt.block_on(mapper.map(&req)).expect("map");
            let line = mapping_line("MAPPED", &m);
            held = Some(m);
            vec![line]
        }
        "renew" => {
            let current = held.take().expect("mapped");
            let m = rt.block_on(mapper.renew(&req, &current)).expect("renew");
            let line = mapping_line("RENEWED", &m);
            held = Some(m);
            vec![line]
        }
        "status" => {
            let m = held.as_ref().expect("mapped");
            let IpAddr::V6(local) = m.internal.ip() else {
                panic!("not IPv6")
            };
            let fw = mapper.igd().firewall(local).expect("firewall");
            let id = PinholeId(token_of(m));
            let status = rt.block_on(fw.status()).expect("status");
            let working = rt.block_on(fw.check_pinhole_working(id)).expect("check");
            let packets = rt.block_on(fw.pinhole_packets(id)).expect("packets");
            let outbound = rt
                .block_on(fw.outbound_timeout(
                    Protocol::Tcp,
                    SocketAddrV6::new(local, PORT, 0, 0),
                    None,
                ))
                .map_or_else(
                    |e| format!("error:{}", e.firewall_code().map_or(0, |c| c.code())),
                    |d| d.as_secs().to_string(),
                );
            // UpdatePinhole for the ID (what the renewal does after AddPinhole),
            // and for an ID miniupnpd does not hold.
            let code = |r: natkit_upnp::Result<()>| {
                r.map_or_else(
                    |e| format!("error:{}", e.firewall_code().map_or(0, |c| c.code())),
                    |()| "ok".to_owned(),
                )
            };
            let update = code(rt.block_on(fw.update_pinhole(id, 120)));
            let update_unknown = code(rt.block_on(fw.update_pinhole(PinholeId(999), 120)));
            vec![format!(
                "STATUS enabled={} allowed={} working={working} packets={packets} outbound={outbound} update={update} update_unknown={update_unknown} router={}",
                status.enabled,
                status.inbound_pinhole_allowed,
                fw.router()
            )]
        }
        "foreign" => {
            // The stable address's pinhole, asked from the temporary one.
            let fw = mapper.igd().firewall(v6.lan_temp).expect("firewall");
            let e = rt
                .block_on(fw.add_pinhole(&PinholeRequest::new(
                    Protocol::Tcp,
                    SocketAddrV6::new(v6.lan, PORT + 1, 0, 0),
                    60,
                )))
                .expect_err("606");
            let core: natkit_core::Error = e.into();
            let natkit_core::Error::Mechanism { source, .. } = &core else {
                panic!("{core}")
            };
            let code = source
                .downcast_ref::<natkit_upnp::Error>()
                .and_then(natkit_upnp::Error::firewall_code)
                .map_or(0, |c| c.code());
            vec![format!(
                "FOREIGN {code} {}",
                core.failure_kind().map_or("-", FailureKind::as_str)
            )]
        }
        "readd" => {
            let m = held.as_ref().expect("mapped");
            let IpAddr::V6(local) = m.internal.ip() else {
                panic!("not IPv6")
            };
            let fw = mapper.igd().firewall(local).expect("firewall");
            let id = rt
                .block_on(fw.add_pinhole(&PinholeRequest::new(
                    Protocol::Tcp,
                    SocketAddrV6::new(local, PORT, 0, 0),
                    120,
                )))
                .expect("re-add");
            vec![format!("READDED {}", id.0)]
        }
        "renew_both" => {
            let u = held_udp.take().expect("UDP mapped");
            let u = rt.block_on(mapper.renew(&udp_req, &u)).expect("renew UDP");
            let t = held.take().expect("mapped");
            let t = rt.block_on(mapper.renew(&req, &t)).expect("renew");
            let lines = vec![mapping_line("RENEWED_UDP", &u), mapping_line("RENEWED", &t)];
            (held_udp, held) = (Some(u), Some(t));
            lines
        }
        "udp_short" => {
            // A renewal with a 3 s lease: AddPinhole finds the pinhole (and
            // miniupnpd 2.3.1 gives it a far expiry), UpdatePinhole sets 3 s.
            let short = MappingRequest {
                lifetime: Duration::from_secs(3),
                ..udp_req.clone()
            };
            let u = held_udp.take().expect("UDP mapped");
            let u = rt.block_on(mapper.renew(&short, &u)).expect("renew UDP");
            let line = mapping_line("RENEWED_UDP", &u);
            held_udp = Some(u);
            vec![line]
        }
        "udp" => {
            let m = rt.block_on(mapper.map(&udp_req)).expect("map UDP");
            let line = mapping_line("MAPPED_UDP", &m);
            held_udp = Some(m);
            vec![line]
        }
        "delete" => {
            rt.block_on(mapper.unmap(held.as_ref().expect("mapped")))
                .expect("unmap");
            if let Some(u) = held_udp.take() {
                rt.block_on(mapper.unmap(&u)).expect("unmap UDP");
            }
            vec!["DELETED".to_owned()]
        }
        other => panic!("unknown command {other:?}"),
    });
}

struct Line {
    external: SocketAddr,
    internal: SocketAddr,
    lifetime: u64,
    id: u16,
}

fn expect_line(helper: &mut HelperSession, tag: &str) -> Line {
    let (text, _) = helper.expect(tag, LINE).expect("helper line");
    let w: Vec<&str> = text.split_whitespace().collect();
    let [ext, int, life, id] = w.as_slice() else {
        panic!("bad {tag} line {text:?}")
    };
    Line {
        external: ext.parse().expect("external"),
        internal: int.parse().expect("internal"),
        lifetime: life.parse().expect("lifetime"),
        id: id.parse().expect("id"),
    }
}

/// The wan peer sends `what` to `to`; returns the answer (empty: refused,
/// dropped or timed out).
fn from_peer(lab: &Lab, proto: Proto, to: SocketAddr, what: &str) -> String {
    lab.exchange(Node::Wan, proto, to, what).expect("exchange")
}

fn assert_through(lab: &Lab, helper: &mut HelperSession, proto: Proto, to: SocketAddr, what: &str) {
    let payload = format!("{what}-{}", lab.id());
    assert_eq!(
        from_peer(lab, proto, to, &payload),
        format!("{ECHO_PREFIX}{payload}"),
        "the peer's {what} connection through the pinhole"
    );
    let (seen, _) = helper.expect("ECHOED ", LINE).expect("echo seen");
    let (from, text) = seen.split_once(' ').expect("from and text");
    let from: SocketAddr = from.parse().expect("from");
    let v6 = lab.addrs().v6.expect("v6");
    assert_eq!(from.ip(), IpAddr::V6(v6.peer), "{seen}");
    assert_eq!(text, payload);
}

fn assert_blocked(lab: &Lab, proto: Proto, to: SocketAddr, what: &str) {
    let answer = from_peer(lab, proto, to, what);
    assert!(
        answer.is_empty(),
        "{what}: the peer got through: {answer:?}"
    );
}

/// The accept rules in miniupnpd's chain of the router's `inet filter`
/// table (its pinholes; its IPv4 forwards go to the `ip` tables).
fn pinhole_rules(lab: &Lab) -> Vec<String> {
    let ruleset = lab.router_ruleset().expect("ruleset");
    let mut in_table = false;
    let mut in_chain = false;
    let mut rules = Vec::new();
    for line in ruleset.lines().map(str::trim) {
        if line.starts_with("table ") {
            in_table = line == "table inet filter {";
        } else if line.starts_with("chain ") {
            in_chain = in_table && line == "chain miniupnpd {";
        } else if in_chain && line.contains("accept") {
            rules.push(line.to_owned());
        }
    }
    rules
}

#[test]
fn upnp_pinhole_in_the_dual_stack_lab() {
    natkit_lab::require_root();
    let mut lab = Lab::builder()
        .miniupnpd(true)
        .ipv6(true)
        .build()
        .expect("lab up");
    let v6 = lab.addrs().v6.expect("v6 addresses");
    let target = SocketAddr::new(IpAddr::V6(v6.lan), PORT);
    let mut helper = lab
        .helper_session(Node::Lan, "pinhole_lan_side", &[])
        .expect("helper");
    helper.expect("READY", LINE).expect("helper ready");

    // The firewall drops the peer until a pinhole is open.
    assert_blocked(&lab, Proto::Tcp, target, "before");

    helper.send("map").expect("send");
    let m = expect_line(&mut helper, "MAPPED ");
    // `::` became the stable address, never the temporary one.
    assert_eq!(m.internal, target, "pinhole for {}", m.internal);
    assert_ne!(m.internal.ip(), IpAddr::V6(v6.lan_temp));
    assert_eq!(m.external, m.internal);
    assert_eq!(m.lifetime, 120);
    let rules = pinhole_rules(&lab);
    println!("miniupnpd's pinhole rule: {rules:?}");
    assert_eq!(rules.len(), 1, "{}", lab.router_ruleset().expect("ruleset"));
    assert_through(&lab, &mut helper, Proto::Tcp, target, "first");

    helper.send("status").expect("send");
    let (status, _) = helper.expect("STATUS ", LINE).expect("status");
    println!("miniupnpd: {status}");
    // miniupnpd's nftables backend writes pinhole rules without a counter
    // (`iif "wan0" th dport P @nh,192,128 0x<addr> @nh,48,8 0x6 accept`), so
    // it never sees traffic through them: CheckPinholeWorking stays 709 and
    // GetPinholePackets 0 although the peer just got through.
    // GetOutboundPinholeTimeout is a stub (501). UpdatePinhole works, and
    // for an ID it does not hold answers 402, not 704.
    assert!(
        status.starts_with(
            "enabled=true allowed=true working=false packets=0 outbound=error:501 \
             update=ok update_unknown=error:402 "
        ),
        "{status}"
    );

    helper.send("readd").expect("send");
    let (readd, _) = helper.expect("READDED ", LINE).expect("readd");
    assert_eq!(
        readd,
        m.id.to_string(),
        "AddPinhole again for the same flow"
    );
    assert_eq!(pinhole_rules(&lab).len(), 1);

    // A UDP pinhole for the same port is a second rule (next header 17) and
    // lets the peer's datagrams in; the TCP one is unchanged.
    assert_blocked(&lab, Proto::Udp, target, "udp-before");
    helper.send("udp").expect("send");
    let u = expect_line(&mut helper, "MAPPED_UDP ");
    assert_eq!((u.internal, u.external), (target, target));
    assert_ne!(u.id, m.id);
    let rules = pinhole_rules(&lab);
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert!(
        rules.iter().any(|r| r.contains("@nh,48,8 0x11")),
        "{rules:?}"
    );
    assert_through(&lab, &mut helper, Proto::Udp, target, "udp");

    // From the temporary address, the stable address's pinhole is refused.
    helper.send("foreign").expect("send");
    let (foreign, _) = helper.expect("FOREIGN ", LINE).expect("foreign");
    assert_eq!(foreign, "606 refused");

    // Renewal keeps the pinhole and its ID.
    helper.send("renew").expect("send");
    let r = expect_line(&mut helper, "RENEWED ");
    assert_eq!((r.id, r.internal), (m.id, m.internal));
    assert_through(&lab, &mut helper, Proto::Tcp, target, "renewed");

    // A router restart forgets both and counts IDs from 1 again. The UDP
    // pinhole is renewed first and gets ID 1, the TCP one's old ID: renewal
    // by flow gives the TCP one its own pinhole back (ID 2), where an
    // UpdatePinhole of ID 1 would have renewed the UDP one.
    lab.restart_miniupnpd().expect("restart");
    assert!(pinhole_rules(&lab).is_empty());
    assert_blocked(&lab, Proto::Tcp, target, "after-restart");
    helper.send("renew_both").expect("send");
    let udp_again = expect_line(&mut helper, "RENEWED_UDP ");
    let again = expect_line(&mut helper, "RENEWED ");
    assert_eq!((udp_again.id, again.id), (m.id, m.id + 1));
    assert_eq!(again.internal, target);
    assert_eq!(pinhole_rules(&lab).len(), 2);
    assert_through(&lab, &mut helper, Proto::Tcp, target, "re-created");
    assert_through(&lab, &mut helper, Proto::Udp, target, "udp-re-created");

    // Renewed with a 3 s lease, the UDP pinhole expires on it: without the
    // UpdatePinhole after AddPinhole, miniupnpd 2.3.1 would keep it for
    // decades (seen by hand: a pinhole added twice with a 3 s lease was
    // still there 6 s later).
    helper.send("udp_short").expect("send");
    let short = expect_line(&mut helper, "RENEWED_UDP ");
    assert_eq!((short.id, short.lifetime), (udp_again.id, 3));
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while pinhole_rules(&lab).len() > 1 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(500));
    }
    let rules = pinhole_rules(&lab);
    assert_eq!(
        rules.len(),
        1,
        "the 3 s UDP pinhole did not expire: {rules:?}"
    );
    assert!(rules[0].contains("@nh,48,8 0x6"), "{rules:?}");
    assert_blocked(&lab, Proto::Udp, target, "udp-expired");

    // The delete: TCP by its ID; the expired UDP one's ID is unknown to
    // miniupnpd (402), which counts as done.
    helper.send("delete").expect("send");
    helper.expect("DELETED", LINE).expect("deleted");
    assert!(pinhole_rules(&lab).is_empty());
    assert_blocked(&lab, Proto::Tcp, target, "after-delete");
    assert_blocked(&lab, Proto::Udp, target, "udp-after-delete");
    assert!(
        helper.finish(Duration::from_secs(10)).expect("exit"),
        "helper failed"
    );
}
