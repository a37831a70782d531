//! PCP MAP for IPv6 (a firewall pinhole) against miniupnpd 2.3.1 in the
//! dual-stack NAT lab (needs root and the lab packages; see lab/README.md —
//! like every lab test this fails, never skips, without them).
//!
//! The helper `pcp6_side` runs in the LAN host with a TCP echo server on
//! `[::]:PORT` and a `PcpMapper` built as an application builds one: for
//! the router's IPv4 address, with no IPv6 server given, so the pinhole
//! server is found from the IPv6 routing table and the pinhole's address
//! is chosen among the host's (static, SLAAC stable and temporary ones).
//! It takes commands on stdin (`map`, `renew`, `delete`, `natpmp`); the
//! outer test plays the internet (the wan peer connects over IPv6),
//! reads the router's nftables rules and restarts miniupnpd.
//!
//! `keeper_remakes_a_pcp_pinhole_after_a_restart` holds a pinhole with
//! natkit-core's `LeaseKeeper` through a miniupnpd restart.
//!
//! miniupnpd's PCP IPv6 behaviour is documented in
//! `src/pcp/mapper/pinhole.rs`, and how the server is found in
//! `src/pcp/ipv6.rs`.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natkit_core::{
    KeeperConfig, KeeperEvent, LeaseKeeper, Mapping, MappingRequest, PortMapper, Protocol,
};
use natkit_lab::{ECHO_PREFIX, HelperSession, Lab, NatKind, Node, Proto};
use natkit_pmp::RetransmitPlan;
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};

/// The LAN host's TCP port behind the pinhole.
const PORT: u16 = 18_446;
/// The keeper test's lease (miniupnpd's minimum) and renewal period.
const KEEPER_LEASE: Duration = Duration::from_secs(120);
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How long miniupnpd runs before the keeper test restarts it, so that the
/// new epoch (near 0) is told from the old one under RFC 6887 §8.5's
/// tolerance (1 s backwards, 2 s of drift).
const EPOCH_AGE: Duration = Duration::from_secs(8);
const LINE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------- LAN helper

/// A TCP echo server on `[::]:PORT` that prints who reached it.
fn spawn_echo6() {
    let listener = TcpListener::bind((Ipv6Addr::UNSPECIFIED, PORT)).expect("bind [::]");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let from = s.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let mut request = Vec::new();
            let _ = s.read_to_end(&mut request);
            let mut answer = ECHO_PREFIX.as_bytes().to_vec();
            answer.extend_from_slice(&request);
            let _ = s.write_all(&answer);
            println!("ECHOED6 {from} {}", String::from_utf8_lossy(&request));
            let _ = std::io::stdout().flush();
        }
    });
}

/// A helper's start: the lab's addresses, a runtime (the keeper's tasks
/// run on it between commands) and the echo server.
fn helper_start(name: &str) -> (natkit_lab::LabAddrs, tokio::runtime::Runtime) {
    let (addrs, rt) = natkit_testkit::lab_helper(name);
    spawn_echo6();
    (addrs, rt)
}

/// A PCP mapper as an application builds one: for the router's IPv4
/// address, no IPv6 server given.
fn lan_mapper(router: std::net::Ipv4Addr) -> PcpMapper {
    PcpMapper::new(
        router,
        PcpConfig {
            retransmit: RetransmitPlan::fast(),
            fallback_to_natpmp: false,
            ..PcpConfig::default()
        },
    )
}

/// natkit-pmp's own error inside a core error.
fn pmp_error(e: &natkit_core::Error) -> Option<&natkit_pmp::Error> {
    match e {
        natkit_core::Error::Mechanism { source, .. } => source.downcast_ref(),
        _ => None,
    }
}

fn line(tag: &str, m: &Mapping, pcp: &PcpMapper) -> String {
    let chosen = pcp.pinhole_address();
    format!(
        "{tag} {} {} lifetime={} epoch={} server={} reason={} skipped_temporary={}",
        m.external,
        m.internal,
        m.lifetime.as_secs(),
        m.epoch.map_or(u32::MAX, |e| e.server_seconds),
        pcp.ipv6_server().map_or("none".into(), |s| s.to_string()),
        chosen.as_ref().map_or("none", |c| c.reason.as_str()),
        chosen.map_or(0, |c| c.skipped_temporary.len()),
    )
}

#[test]
#[ignore = "helper body: pcp_pinhole_through_miniupnpd runs it in the LAN"]
fn pcp6_side() {
    let (addrs, rt) = helper_start("pcp6_side");
    let new_mapper = || lan_mapper(addrs.rtr_lan);
    let mut pcp = new_mapper();
    // `::`: the mapper picks the host's stable address.
    let req = MappingRequest::new(
        Protocol::Tcp,
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)),
    )
    .with_lifetime(Duration::from_secs(600));
    let held: RefCell<Option<Mapping>> = RefCell::new(None);
    println!("READY");
    natkit_lab::serve_commands(|command| {
        let mut held = held.borrow_mut();
        let reply = match command {
            "map" => match rt.block_on(pcp.map(&req)) {
                Ok(m) => {
                    let l = line("MAPPED", &m, &pcp);
                    *held = Some(m);
                    l
                }
                Err(e) => format!("FAILED {}", natkit_core::error_line(&e)),
            },
            "renew" => {
                let before = held.clone().expect("a mapping to renew");
                match rt.block_on(pcp.renew(&req, &before)) {
                    Ok(m) => {
                        let continued = match (before.epoch, m.epoch) {
                            (Some(a), Some(b)) => a.is_continued_by(&b),
                            _ => false,
                        };
                        let l = format!("{} continued={continued}", line("RENEWED", &m, &pcp));
                        *held = Some(m);
                        l
                    }
                    Err(e) => format!("FAILED {}", natkit_core::error_line(&e)),
                }
            }
            "delete" => {
                let m = held.take().expect("a mapping to delete");
                match rt.block_on(pcp.unmap(&m)) {
                    Ok(()) => "DELETED".to_owned(),
                    Err(e) => match pmp_error(&e) {
                        Some(natkit_pmp::Error::PinholeShortened { lifetime }) => {
                            format!("SHORTENED {lifetime}")
                        }
                        _ => format!("FAILED {}", natkit_core::error_line(&e)),
                    },
                }
            }
            // A new process: it searches for the IPv6 server again.
            "fresh" => {
                pcp = new_mapper();
                held.take();
                "FRESH".to_owned()
            }
            "natpmp" => {
                let natpmp = NatPmpMapper::new(addrs.rtr_lan, NatPmpConfig::default());
                match rt.block_on(natpmp.map(&req)) {
                    Ok(m) => format!("NATPMP mapped {m}"),
                    Err(e) => format!(
                        "NATPMP {} {}",
                        e.failure_kind().map_or("none", |k| k.as_str()),
                        natkit_core::error_line(&e)
                    ),
                }
            }
            other => panic!("unknown command {other:?}"),
        };
        vec![reply]
    });
}

// ------------------------------------------------------------- outer test

/// A MAPPED/RENEWED line: external, internal and the `key=value` fields.
struct Reported {
    external: SocketAddr,
    internal: SocketAddr,
    text: String,
}

impl Reported {
    fn get(&self, key: &str) -> &str {
        self.text
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.text))
    }
}

fn ask(h: &mut HelperSession, command: &str, tag: &str) -> Reported {
    h.send(command).expect("send");
    let (text, _) = h.expect(tag, LINE).unwrap_or_else(|e| {
        panic!(
            "no {tag:?} after {command:?} ({e}); transcript:\n{}",
            h.transcript()
        )
    });
    let mut w = text.split_whitespace();
    let (Some(external), Some(internal)) = (w.next(), w.next()) else {
        panic!(
            "{command:?} answered {text:?}; transcript:\n{}",
            h.transcript()
        );
    };
    let parse = |s: &str| -> SocketAddr {
        s.parse().unwrap_or_else(|_| {
            panic!(
                "{command:?} answered {text:?}; transcript:\n{}",
                h.transcript()
            )
        })
    };
    Reported {
        external: parse(external),
        internal: parse(internal),
        text: text.clone(),
    }
}

/// The wan peer connects to `to` over IPv6 and exchanges `payload`; true
/// when the echo came back (and the helper saw the peer's address).
fn peer_reaches(lab: &Lab, h: &mut HelperSession, to: SocketAddr, payload: &str) -> bool {
    let answer = lab
        .exchange(Node::Wan, Proto::Tcp, to, payload)
        .expect("exchange");
    if answer.is_empty() {
        return false;
    }
    assert_eq!(answer, format!("{ECHO_PREFIX}{payload}"));
    let (seen, _) = h.expect("ECHOED6 ", LINE).expect("helper saw it");
    let peer = lab.addrs().v6.expect("v6").peer;
    let from: SocketAddr = seen
        .split_whitespace()
        .next()
        .unwrap_or("")
        .parse()
        .expect("from");
    assert_eq!(from.ip(), IpAddr::V6(peer), "{seen}");
    true
}

/// The router's pinhole rules for `internal`: miniupnpd 2.3.1 writes
/// them into `inet filter miniupnpd` as raw payload matches, e.g.
/// `iif "wan0" th dport 18446 @nh,192,128 0x2a0d…0002 @nh,48,8 0x6 accept`
/// (destination address, next header TCP). Its description (`pinhole-<uid>
/// ts-<expiry>: PCP MAP <nonce>`) is rule userdata that `nft` does not
/// print.
fn pinhole_rules(lab: &Lab, internal: SocketAddr) -> Vec<String> {
    let IpAddr::V6(ip) = internal.ip() else {
        panic!("not IPv6: {internal}")
    };
    let ruleset = lab.router_ruleset().expect("nft ruleset");
    let address = format!("@nh,192,128 0x{:032x}", u128::from(ip));
    let port = format!("dport {} ", internal.port());
    ruleset
        .lines()
        .filter(|l| l.contains(&address) && l.contains(&port) && l.contains("accept"))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The dual-stack lab, with or without miniupnpd (root only: fails
/// without it).
fn dual_stack_lab_with(miniupnpd: bool) -> Lab {
    Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(miniupnpd)
        .ipv6(true)
        .up()
}

fn dual_stack_lab() -> Lab {
    dual_stack_lab_with(true)
}

/// A router without PCP: both candidates (its link-local address from the
/// RA's default route, and the prefix's first address) answer ICMP port
/// unreachable, so the request ends at once with a typed error naming
/// what was tried, and nothing is left open.
#[test]
fn no_pcp_server_for_pinholes_is_a_typed_error() {
    let lab = dual_stack_lab_with(false);
    let a6 = lab.addrs().v6.expect("dual-stack lab");
    let mut h = lab
        .helper_session(Node::Lan, "pcp6_side", &[])
        .expect("helper");
    h.expect("READY", LINE).expect("helper ready");
    let asked = Instant::now();
    h.send("map").expect("send");
    let (failed, at) = h
        .expect("FAILED ", LINE)
        .unwrap_or_else(|e| panic!("{e}:\n{}", h.transcript()));
    eprintln!("no PCP for IPv6: {failed} after {:?}", at - asked);
    assert!(failed.starts_with("pcp: not available: "), "{failed}");
    assert!(
        failed.contains("no PCP server for IPv6 pinholes answered (2 address(es) tried)"),
        "{failed}"
    );
    let target = SocketAddr::from((a6.lan, PORT));
    assert!(!peer_reaches(&lab, &mut h, target, "no-pcp"));
    assert!(h.finish(Duration::from_secs(10)).expect("helper exit"));
}

#[test]
fn pcp_pinhole_through_miniupnpd() {
    let mut lab = dual_stack_lab();
    let a6 = lab.addrs().v6.expect("dual-stack lab");
    let mut h = lab
        .helper_session(Node::Lan, "pcp6_side", &[])
        .expect("helper");
    h.expect("READY", LINE).expect("helper ready");
    let target = SocketAddr::from((a6.lan, PORT));

    // The router's firewall drops new inbound IPv6.
    assert!(
        !peer_reaches(&lab, &mut h, target, "before"),
        "open before any pinhole"
    );

    // NAT-PMP has no IPv6: a typed error, nothing sent.
    h.send("natpmp").expect("send");
    let (natpmp, _) = h.expect("NATPMP ", LINE).expect("natpmp line");
    assert!(natpmp.starts_with("unsupported "), "{natpmp}");

    // The pinhole: found the server through the routing table (the RA's
    // link-local default router), chose the static stable address over
    // the temporary one the kernel prefers, external = internal.
    let m = ask(&mut h, "map", "MAPPED ");
    assert_eq!(m.internal, target, "{}", m.text);
    assert_eq!(m.external, m.internal, "{}", m.text);
    assert_eq!(m.get("reason"), "static");
    assert_ne!(m.get("skipped_temporary"), "0", "{}", m.text);
    assert!(m.get("server").starts_with("[fe80::"), "{}", m.text);
    assert_eq!(m.get("lifetime"), "600");
    let rules = pinhole_rules(&lab, target);
    assert_eq!(
        rules.len(),
        1,
        "{}",
        lab.router_ruleset().unwrap_or_default()
    );
    assert!(peer_reaches(&lab, &mut h, target, "pinhole-1"));

    // Delete (lifetime 0, the creating nonce): closed again.
    h.send("delete").expect("send");
    h.expect("DELETED", LINE)
        .unwrap_or_else(|e| panic!("{e}:\n{}", h.transcript()));
    assert!(pinhole_rules(&lab, target).is_empty());
    assert!(!peer_reaches(&lab, &mut h, target, "after-delete"));

    // A new pinhole, then a renewal within the same epoch (miniupnpd's
    // epoch counts seconds since it started; a restart shows only once the
    // old epoch has passed ~2 s, see tests/lab.rs).
    let m = ask(&mut h, "map", "MAPPED ");
    assert_eq!(m.internal, target);
    std::thread::sleep(Duration::from_secs(3));
    let r = ask(&mut h, "renew", "RENEWED ");
    assert_eq!(r.external, target, "{}", r.text);
    assert_eq!(r.get("continued"), "true", "{}", r.text);
    assert_eq!(pinhole_rules(&lab, target).len(), 1);
    assert!(peer_reaches(&lab, &mut h, target, "renewed"));

    // Router reboot: the pinhole is gone and the epoch starts again; the
    // renewal sees the reset and re-creates it.
    lab.restart_miniupnpd().expect("restart miniupnpd");
    assert!(pinhole_rules(&lab, target).is_empty());
    assert!(!peer_reaches(&lab, &mut h, target, "after-restart"));
    let r = ask(&mut h, "renew", "RENEWED ");
    assert_eq!(r.external, target, "{}", r.text);
    assert_eq!(
        r.get("continued"),
        "false",
        "epoch reset not seen: {}",
        r.text
    );
    assert!(peer_reaches(&lab, &mut h, target, "re-mapped"));

    h.send("delete").expect("send");
    h.expect("DELETED", LINE)
        .unwrap_or_else(|e| panic!("{e}:\n{}", h.transcript()));
    assert!(pinhole_rules(&lab, target).is_empty());
    assert!(!peer_reaches(&lab, &mut h, target, "after-last-delete"));

    // miniupnpd 2.3.1 forgets a pinhole's owner when it refreshes it, so
    // a delete after a renewal is refused (NOT_AUTHORIZED); natkit cuts
    // the lease to miniupnpd's min_lifetime (120 s) and says so. The
    // pinhole stays open until then.
    let _ = ask(&mut h, "map", "MAPPED ");
    let _ = ask(&mut h, "renew", "RENEWED ");
    h.send("delete").expect("send");
    let (shortened, _) = h
        .expect("SHORTENED ", LINE)
        .unwrap_or_else(|e| panic!("{e}:\n{}", h.transcript()));
    assert_eq!(shortened, "120");
    assert_eq!(pinhole_rules(&lab, target).len(), 1);
    assert!(peer_reaches(&lab, &mut h, target, "shortened"));

    // A miniupnpd bound to `ipv6_listening_ip` does not answer PCP at its
    // link-local address (ICMP port unreachable, as the rule below makes
    // this one do): a new mapper falls back to the first address of the
    // LAN prefix, where the router is.
    for rule in [
        "add table inet nk_pcp6",
        "add chain inet nk_pcp6 input { type filter hook input priority -10 ; }",
        "add rule inet nk_pcp6 input ip6 daddr fe80::/10 udp dport 5351 \
         reject with icmpv6 type port-unreachable",
    ] {
        lab.exec_ok(Node::Rtr, &["nft", rule]).expect("nft reject");
    }
    h.send("fresh").expect("send");
    h.expect("FRESH", LINE).expect("fresh mapper");
    let m = ask(&mut h, "map", "MAPPED ");
    assert_eq!(
        m.get("server"),
        SocketAddr::from((a6.rtr_lan, 5351)).to_string(),
        "{}",
        m.text
    );
    assert_eq!(m.internal, target);
    lab.exec_ok(Node::Rtr, &["nft", "delete table inet nk_pcp6"])
        .expect("nft delete");
    assert!(h.finish(Duration::from_secs(10)).expect("helper exit"));
}

// ------------------------------------------------------- the lease keeper

#[test]
#[ignore = "helper body: keeper_remakes_a_pcp_pinhole_after_a_restart runs it in the LAN"]
fn pcp6_keeper_side() {
    let (addrs, rt) = helper_start("pcp6_keeper_side");
    let pcp = lan_mapper(addrs.rtr_lan);
    let config = KeeperConfig {
        renew_fraction: RENEW_EVERY.as_secs_f64() / KEEPER_LEASE.as_secs_f64(),
        min_renew_interval: Duration::from_secs(1),
        retry_initial: Duration::from_millis(250),
        retry_max: Duration::from_secs(2),
        ..KeeperConfig::default()
    };
    let mut keeper = Some(rt.block_on(async {
        let (keeper, mut events) = LeaseKeeper::new(Arc::new(pcp), config);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let line = match &e {
                    KeeperEvent::Mapped { mapping, .. } => format!("mapped - {}", mapping.external),
                    KeeperEvent::Renewed { mapping, .. } => {
                        format!("renewed - {}", mapping.external)
                    }
                    KeeperEvent::Remapped {
                        mapping, reason, ..
                    } => format!("remapped {reason:?} {}", mapping.external),
                    other => format!("other {other:?}").replace('\n', " "),
                };
                println!("EVENT {line}");
                let _ = std::io::stdout().flush();
            }
        });
        let req = MappingRequest::new(
            Protocol::Tcp,
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT)),
        )
        .with_lifetime(KEEPER_LEASE);
        keeper.add(req).await.expect("keeper add");
        keeper
    }));
    natkit_lab::serve_commands(|command| match command {
        "shutdown" => {
            let report = rt.block_on(keeper.take().expect("running").shutdown());
            let failed: Vec<String> = report.failed.iter().map(|(_, e)| e.to_string()).collect();
            vec![format!(
                "SHUTDOWN released={} failed={}",
                report.released.len(),
                failed.join("; ").replace(' ', "_")
            )]
        }
        other => panic!("unknown command {other:?}"),
    });
}

/// The next `EVENT` line: kind, reason and the pinhole's address.
fn next_event(h: &mut HelperSession, timeout: Duration) -> (String, String, String, Instant) {
    let (text, at) = h
        .expect("EVENT ", timeout)
        .unwrap_or_else(|e| panic!("no keeper event ({e}); transcript:\n{}", h.transcript()));
    let mut w = text.splitn(3, ' ').map(str::to_owned);
    let mut next = || w.next().unwrap_or_default();
    (next(), next(), next(), at)
}

/// natkit-core's lease keeper holds a PCP pinhole through a router reboot
/// with no help from the application: the first renewal after
/// `restart_miniupnpd` sees the epoch reset and makes the pinhole again.
#[test]
fn keeper_remakes_a_pcp_pinhole_after_a_restart() {
    let mut lab = dual_stack_lab();
    let up = Instant::now();
    let a6 = lab.addrs().v6.expect("dual-stack lab");
    let target = SocketAddr::from((a6.lan, PORT));
    let mut h = lab
        .helper_session(Node::Lan, "pcp6_keeper_side", &[])
        .expect("helper");
    let (kind, _, at, _) = next_event(&mut h, LINE);
    assert_eq!(
        (kind.as_str(), at.as_str()),
        ("mapped", target.to_string().as_str())
    );
    assert!(peer_reaches(&lab, &mut h, target, "kept"));

    std::thread::sleep(EPOCH_AGE.saturating_sub(up.elapsed()));
    lab.restart_miniupnpd().expect("restart miniupnpd");
    let restarted = Instant::now();
    assert!(pinhole_rules(&lab, target).is_empty());
    let deadline = restarted + RENEW_EVERY * 3;
    let mut seen = Vec::new();
    let back = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not re-made after the restart; events: {seen:?}"
        );
        let e = next_event(&mut h, left);
        if e.0 == "remapped" {
            break e;
        }
        seen.push(e);
    };
    assert_eq!(back.1, "EpochReset", "{back:?}");
    assert_eq!(back.2, target.to_string());
    eprintln!("pinhole re-made {:?} after the restart", back.3 - restarted);
    assert_eq!(pinhole_rules(&lab, target).len(), 1);
    assert!(peer_reaches(&lab, &mut h, target, "re-made"));

    // Shutdown deletes it. The pinhole was re-made (with its owner) under
    // a second ago; had a renewal refreshed it since, miniupnpd 2.3.1 would
    // refuse the delete and natkit would cut the lease instead
    // (PinholeShortened, asserted in `pcp_pinhole_through_miniupnpd`).
    h.send("shutdown").expect("send");
    let (report, _) = h.expect("SHUTDOWN ", LINE).expect("shutdown report");
    eprintln!("keeper shutdown: {report}");
    assert!(
        report == "released=1 failed=" || report.contains("lease_was_cut_to_120_s"),
        "{report}"
    );
    assert!(h.finish(Duration::from_secs(10)).expect("helper exit"));
}
