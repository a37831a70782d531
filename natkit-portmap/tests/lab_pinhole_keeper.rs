//! IPv6 pinholes kept and cleaned up by `natkit map --ipv6` in the dual-stack lab
//! (miniupnpd serving UPnP `WANIPv6FirewallControl` and PCP for IPv6, the router's
//! `inet` firewall dropping new inbound IPv6):
//!
//! - the pinhole is for the LAN host's stable (static) address, not the temporary
//!   one its outbound traffic uses, and the run says so;
//! - the keeper re-opens a UPnP pinhole after a router restart
//!   (`restart-miniupnpd`), and the outside peer connects again;
//! - a run killed with SIGKILL leaves its PCP and UPnP pinholes in the router's
//!   firewall and in its journal; the next run deletes both, and the peer is
//!   dropped again.
//!
//! The peer's check is a TCP handshake from PEER_IP6 (`nc -z`): through a pinhole
//! it completes; without one the router drops the SYN and nc times out.
//! Root only; fails, never skips, without it.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto};
use serde_json::Value;

mod natkit_map;
use natkit_map::Running;
/// The kept pinhole's port (UPnP, re-opened after the restart).
const KEPT: u16 = 18100;
/// The killed runs' ports (PCP, UPnP) and the next run's own.
const KILLED_PCP: u16 = 18101;
const KILLED_UPNP: u16 = 18102;
const NEXT: u16 = 18103;

/// A fresh journal directory for this test.
fn journal_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natkit-pinhole-lab-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// miniupnpd's pinhole rules: its chain in the router's `inet filter` table.
fn pinhole_rules(lab: &Lab) -> String {
    lab.exec_ok(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "miniupnpd"],
    )
    .expect("nft list chain")
}

fn has_rule(lab: &Lab, port: u16) -> bool {
    pinhole_rules(lab).contains(&format!("th dport {port} "))
}

/// A listener on `addr`:`port` in the LAN host that stays (accepts again and again).
fn listen(lab: &Lab, addr: Ipv6Addr, port: u16) -> LabChild {
    let (addr, p) = (addr.to_string(), port.to_string());
    let child = lab
        .spawn(
            Node::Lan,
            &[
                "nc",
                "-6",
                "-n",
                "-k",
                "-l",
                "-s",
                addr.as_str(),
                "-p",
                p.as_str(),
            ],
        )
        .expect("spawn listener");
    lab.wait_listening(Node::Lan, Proto::Tcp, port, Duration::from_secs(5))
        .expect("listener up");
    child
}

/// Whether PEER_IP6 completes a TCP handshake with `addr`:`port` within 2 s.
fn peer_connects(lab: &Lab, addr: Ipv6Addr, port: u16) -> bool {
    let (peer, addr, port) = (
        lab.addrs6().expect("ipv6 lab").peer.to_string(),
        addr.to_string(),
        port.to_string(),
    );
    let out = lab
        .exec(
            Node::Wan,
            &["nc", "-6", "-n", "-z", "-w", "2", "-s", &peer, &addr, &port],
        )
        .expect("nc -z");
    out.status.success()
}

/// `--ipv6 --json --mechanism M --protocol tcp --port P --journal DIR` plus
/// `extra`.
fn args<'a>(
    mechanism: &'a str,
    port: &'a str,
    journal: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut v = vec![
        "--ipv6",
        "--json",
        "--mechanism",
        mechanism,
        "--protocol",
        "tcp",
        "--port",
        port,
        "--journal",
        journal,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn pinholes_survive_a_router_restart_and_a_killed_runs_are_removed() {
    let mut lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .up();
    let a = lab.addrs6().expect("ipv6 lab");
    let dir = journal_dir();
    let journal = dir.to_str().expect("utf-8 path");

    // (a) A kept UPnP pinhole with a 10 s lease (renewed every 5 s).
    let _kept_listener = listen(&lab, a.lan, KEPT);
    assert!(
        !peer_connects(&lab, a.lan, KEPT),
        "the firewall must drop the peer before any pinhole"
    );
    let kept_port = KEPT.to_string();
    let kept = Running::start(
        &lab,
        &args("upnp", &kept_port, journal, &["--lifetime", "10"]),
    );
    // The stable address, not the temporary one outbound traffic uses.
    let choice = kept.event("ipv6_address");
    assert_eq!(choice["choice"]["address"], a.lan.to_string(), "{choice}");
    assert_eq!(choice["choice"]["reason"], "static", "{choice}");
    assert_eq!(choice["choice"]["interface"], "eth0", "{choice}");
    assert_eq!(
        choice["choice"]["kernel_source"],
        a.lan_temp.to_string(),
        "{choice}"
    );
    let mapped = kept.event("mapped");
    assert_eq!(mapped["pinhole"], true, "{mapped}");
    assert_eq!(mapped["mechanism"], "upnp", "{mapped}");
    let internal = SocketAddr::from((a.lan, KEPT)).to_string();
    assert_eq!(mapped["internal"], internal, "{mapped}");
    assert_eq!(mapped["external"], internal, "{mapped}");
    assert!(has_rule(&lab, KEPT), "{}", pinhole_rules(&lab));
    assert!(peer_connects(&lab, a.lan, KEPT), "through the pinhole");

    // The router restarts and forgets the pinhole: the peer is dropped until the
    // keeper's next renewal (miniupnpd answers UpdatePinhole for the lost ID with
    // 402) opens it again.
    lab.restart_miniupnpd().expect("restart miniupnpd");
    let restarted = Instant::now();
    assert!(!has_rule(&lab, KEPT), "{}", pinhole_rules(&lab));
    assert!(
        !peer_connects(&lab, a.lan, KEPT),
        "the restarted router must drop the peer"
    );
    kept.drain();
    while !has_rule(&lab, KEPT) {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "the pinhole was not re-opened: {}",
            pinhole_rules(&lab)
        );
        kept.event("renewed");
    }
    println!(
        "pinhole re-opened {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    assert!(
        peer_connects(&lab, a.lan, KEPT),
        "through the re-opened pinhole"
    );
    kept.signal("TERM");
    let deleted = kept.event("deleted");
    assert_eq!(deleted["released"], 1, "{deleted}");
    assert!(kept.wait().success());
    assert!(!has_rule(&lab, KEPT), "{}", pinhole_rules(&lab));
    assert!(!peer_connects(&lab, a.lan, KEPT), "after the deletion");

    // (b) Runs killed with SIGKILL leave their pinholes, in the firewall and in the
    // journal.
    let _pcp_listener = listen(&lab, a.lan, KILLED_PCP);
    for (mechanism, port) in [("pcp", KILLED_PCP), ("upnp", KILLED_UPNP)] {
        let p = port.to_string();
        let run = Running::start(&lab, &args(mechanism, &p, journal, &[]));
        let mapped = run.event("mapped");
        assert_eq!(mapped["mechanism"], mechanism, "{mapped}");
        assert_eq!(mapped["pinhole"], true, "{mapped}");
        run.signal("KILL");
        assert!(!run.wait().success());
        assert!(has_rule(&lab, port), "{}", pinhole_rules(&lab));
    }
    assert!(
        peer_connects(&lab, a.lan, KILLED_PCP),
        "a killed run's pinhole stays open"
    );
    let journaled = std::fs::read_dir(&dir).expect("journal dir").count();
    assert_eq!(journaled, 2, "one journal file per killed run");

    // The next run (any mechanism) removes both, then makes and deletes its own.
    let next = NEXT.to_string();
    let out = lab
        .command(Node::Lan, natkit_lab::natkit_bin())
        .arg("map")
        .args(args("auto", &next, journal, &["--once"]))
        .output()
        .expect("natkit map runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let cleanup: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "cleanup")
        .expect("a cleanup line");
    let report = &cleanup["report"];
    let mut removed: Vec<(String, String)> = report["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(|e| {
            (
                e["mechanism"].as_str().unwrap_or_default().to_owned(),
                e["internal"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    removed.sort();
    let hole = |port| SocketAddr::from((a.lan, port)).to_string();
    assert_eq!(
        removed,
        [
            ("pcp".to_owned(), hole(KILLED_PCP)),
            ("upnp".to_owned(), hole(KILLED_UPNP)),
        ],
        "{cleanup}"
    );
    assert_eq!(
        report["failed"].as_array().map(Vec::len),
        Some(0),
        "{cleanup}"
    );
    let rules = pinhole_rules(&lab);
    assert!(
        !rules.contains("th dport"),
        "every pinhole is gone: {rules}"
    );
    assert!(
        !peer_connects(&lab, a.lan, KILLED_PCP),
        "dropped again after the cleanup"
    );
    let left: Vec<_> = std::fs::read_dir(&dir).expect("journal dir").collect();
    assert!(left.is_empty(), "journal files left: {left:?}");
    std::fs::remove_dir_all(&dir).expect("remove journal dir");
    lab.down().expect("down");
}
