//! The lab's DNS (`natlab.sh --dns`, `--dns-host`, `--dns-silent`): names resolve
//! only as the test maps them, nothing is forwarded, and `down` leaves no daemon and
//! no resolver file behind. Root only; fails, never skips, without it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use natkit_lab::{Daemon, Lab, Node, require_root};

/// `getent ahostsv4 NAME` in `node`: the addresses, or `None` when it fails.
fn lookup(lab: &Lab, node: Node, name: &str) -> Option<Vec<String>> {
    let out = lab
        .exec_timeout(node, &["getent", "ahostsv4", name], Duration::from_secs(20))
        .expect("getent");
    out.status.success().then(|| {
        let mut addrs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        addrs.dedup();
        addrs
    })
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn dns_maps_only_the_given_names_and_down_cleans_up() {
    require_root();
    let lab = Lab::builder()
        .lan2(true)
        .dns([
            ("stun.example.net", Ipv4Addr::new(88, 77, 66, 10)),
            ("peer.example.org", Ipv4Addr::new(88, 77, 66, 20)),
        ])
        .build()
        .expect("lab");
    assert_eq!(lab.get("DNS"), Some("up"));
    assert_eq!(lab.get("DNS_IP"), Some("88.77.66.53"));
    for node in [Node::Lan, Node::Lan2] {
        assert_eq!(
            lookup(&lab, node, "stun.example.net"),
            Some(vec!["88.77.66.10".to_owned()])
        );
        assert_eq!(
            lookup(&lab, node, "peer.example.org"),
            Some(vec!["88.77.66.20".to_owned()])
        );
        // Not mapped: NXDOMAIN, not forwarded anywhere.
        assert_eq!(lookup(&lab, node, "example.com"), None);
    }
    let log = std::fs::read_to_string(lab.run_dir().join("dnsmasq.log")).expect("log");
    assert!(log.contains("example.com is NXDOMAIN"), "{log}");
    assert!(!log.contains("forwarded"), "{log}");
    let pid = lab.daemon_pid(Daemon::Dnsmasq).expect("dnsmasq pid");
    assert!(alive(pid));
    let ns_dirs =
        [lab.ns(Node::Lan), lab.ns(Node::Lan2)].map(|ns| Path::new("/etc/netns").join(ns));
    for d in &ns_dirs {
        let resolv = std::fs::read_to_string(d.join("resolv.conf")).expect("resolv.conf");
        assert_eq!(resolv.trim(), "nameserver 88.77.66.53");
    }
    lab.down().expect("down");
    assert!(!alive(pid), "dnsmasq {pid} survived down");
    for d in &ns_dirs {
        assert!(!d.exists(), "{} survived down", d.display());
    }
}

#[test]
fn silent_dns_drops_every_query() {
    require_root();
    let lab = Lab::builder().dns_silent().build().expect("lab");
    assert_eq!(lab.get("DNS"), Some("silent"));
    assert_eq!(lab.daemon_pid(Daemon::Dnsmasq), None);
    // glibc waits 5 s × 2 for a server that never answers.
    assert_eq!(lookup(&lab, Node::Lan, "stun.example.net"), None);
    let counted = lab
        .exec_ok(Node::Wan, &["nft", "list", "table", "inet", "dns_silent"])
        .expect("nft");
    assert!(!counted.contains("packets 0 "), "{counted}");
    lab.down().expect("down");
}
