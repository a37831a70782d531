//! natkit's IPv6 verdicts on the IPv6 networks the plain dual-stack lab leaves
//! out (`natlab.sh --ipv6-quirk`, lab/README.md "IPv6 quirks"). Each lab is
//! first proven to be what its name says with reference tools (`ping -6`,
//! `nc`, `upnpc`, `nft`, `ip -6`), then `natkit doctor --json`, `natkit
//! nat-type -6` and `natkit map --ipv6` run in it as a user runs them, and
//! their verdicts must be right or say they cannot tell:
//!
//! - the router's IPv6 firewall off: "allows inbound", STUN "open", no
//!   `ipv6_firewall_blocks` (although miniupnpd says its firewall is on);
//! - a firewall that rejects (TCP reset, ICMPv6 admin-prohibited): it blocks,
//!   the dial-back says refused by a firewall, the pinhole lets it through;
//! - only temporary addresses (the stable one deprecated):
//!   `ipv6_temporary_address_only`, no pinhole for the temporary address;
//! - a unique local prefix only, and link-local only: `no_ipv6`;
//! - a dead IPv6 uplink, and a router with no IPv6 upstream, while IPv4
//!   works: "IPv6 does not reach the internet", never "firewall blocks" nor
//!   "reachable";
//! - NAT66: STUN over IPv6 sees a NAT; the firewall verdict is unknown, no
//!   pinhole advice;
//! - miniupnpd with IPv6 off: `no_protocol`, each protocol's reason given.
//!
//! Root only; fails (never skips) without it. Each test runs its labs at once.

use std::net::{IpAddr, SocketAddr};
use std::process::{Output, Stdio};
use std::time::Duration;

#[allow(dead_code)] // print_runs is for the helper-based tests
mod support;

use natkit_lab::{Ipv6Quirk, Lab, LabChild, Node, Proto, all_at_once, require_root};
use serde_json::Value;

/// A quirky dual-stack lab with miniupnpd and natkit's STUN and dial-back
/// servers in its internet.
struct World {
    lab: Lab,
    _servers: Vec<LabChild>,
}

/// natkit's STUN server (both families) in wan.
const STUN_PORT: u16 = 4478;
const STUN_ALT_PORT: u16 = 4479;
/// natkit's dial-back server on PEER_IP6.
const DIALBACK_PORT: u16 = 7007;
/// The port the doctor checks from outside.
const CHECKED_PORT: u16 = 7100;

fn world(quirk: Ipv6Quirk) -> World {
    let lab = Lab::builder()
        .ipv6_quirk(quirk)
        .miniupnpd(true)
        .build()
        .unwrap_or_else(|e| panic!("lab {quirk}: {e}"));
    let a = *lab.addrs();
    let v6 = a.v6.expect("a dual-stack lab");
    let bin = natkit_lab::natkit_bin();
    let mut stun = lab.command(Node::Wan, &bin);
    stun.arg("stun-server");
    for (primary, alternate) in [
        (IpAddr::V4(a.stun1), IpAddr::V4(a.stun2)),
        (IpAddr::V6(v6.stun1), IpAddr::V6(v6.stun2)),
    ] {
        stun.args(["--bind", &SocketAddr::new(primary, STUN_PORT).to_string()])
            .args([
                "--alternate",
                &SocketAddr::new(alternate, STUN_ALT_PORT).to_string(),
            ]);
    }
    stun.arg("--no-rate-limit");
    let mut dialback = lab.command(Node::Wan, &bin);
    dialback.args([
        "dialback-server",
        "--bind",
        &SocketAddr::from((v6.peer, DIALBACK_PORT)).to_string(),
        "--rate",
        "50",
        "--burst",
        "50",
    ]);
    let servers = [stun, dialback]
        .into_iter()
        .map(|mut c| {
            c.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            LabChild::spawn(&mut c).expect("a server in wan")
        })
        .collect();
    for (proto, port) in [(Proto::Udp, STUN_ALT_PORT), (Proto::Tcp, DIALBACK_PORT)] {
        lab.wait_listening(Node::Wan, proto, port, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{quirk}: nothing on {port}/{proto:?} in wan: {e}"));
    }
    World {
        lab,
        _servers: servers,
    }
}

impl World {
    fn v6(&self) -> natkit_lab::LabAddrs6 {
        self.lab.addrs().v6.expect("a dual-stack lab")
    }

    fn stun6(&self) -> String {
        SocketAddr::from((self.v6().stun1, STUN_PORT)).to_string()
    }

    fn stun4(&self) -> String {
        SocketAddr::from((self.lab.addrs().stun1, STUN_PORT)).to_string()
    }

    /// `natkit ARGS` in the LAN: its output and the JSON it printed.
    fn natkit_json(&self, args: &[&str]) -> (Output, Value) {
        let out = self
            .lab
            .command(Node::Lan, natkit_lab::natkit_bin())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("natkit {args:?}: {e}"));
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "natkit {args:?}: JSON: {e}: {}",
                natkit_lab::dump_output(&out)
            )
        });
        (out, doc)
    }

    /// `natkit doctor --json` with both families' STUN servers and the IPv6
    /// dial-back server: the report, schema-checked.
    fn doctor(&self) -> Value {
        let ports = format!("{CHECKED_PORT}/tcp");
        let dialback = SocketAddr::from((self.v6().peer, DIALBACK_PORT)).to_string();
        let (_, report) = self.natkit_json(&[
            "doctor",
            "--json",
            "--timeout",
            "2",
            "--stun",
            &self.stun4(),
            "--stun",
            &self.stun6(),
            "--ports",
            &ports,
            "--dialback",
            &dialback,
        ]);
        support::assert_schema(&report);
        report
    }

    /// `natkit nat-type -6 --json` against natkit's server over IPv6.
    fn nat_type6(&self) -> (Output, Value) {
        self.natkit_json(&["nat-type", "-6", "--json", "--stun", &self.stun6()])
    }

    /// The IPv6 part of `natkit external-ip -6 --json` with both families'
    /// STUN servers.
    fn external_ip6(&self) -> Value {
        let (_, doc) = self.natkit_json(&[
            "external-ip",
            "-6",
            "--json",
            "--no-router",
            "--stun",
            &self.stun4(),
            "--stun",
            &self.stun6(),
        ]);
        doc["ipv6"].clone()
    }

    /// `natkit map --ipv6 --once` for a TCP port: its output (exit status and
    /// lines).
    fn map6(&self, port: u16) -> Output {
        self.lab
            .command(Node::Lan, natkit_lab::natkit_bin())
            .args(["map", "--ipv6", "--protocol", "tcp", "--once", "--json"])
            .args(["--port", &port.to_string()])
            .args([
                "--journal",
                &format!("{}/journal", self.lab.run_dir().display()),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run natkit map")
    }

    /// `ping -6` from `from` to `to`: whether one echo came back, and what
    /// ping printed.
    fn ping6(&self, from: Node, to: impl ToString) -> (bool, String) {
        let out = self
            .lab
            .exec(from, &["ping", "-6", "-c", "1", "-W", "1", &to.to_string()])
            .expect("ping -6");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn sh(&self, node: Node, argv: &[&str]) -> String {
        self.lab
            .exec_ok(node, argv)
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
    }

    /// The pinhole rules in miniupnpd's chain.
    fn pinhole_rules(&self) -> Vec<String> {
        self.sh(
            Node::Rtr,
            &["nft", "list", "chain", "inet", "filter", "miniupnpd"],
        )
        .lines()
        .filter(|l| l.contains("dport"))
        .map(str::to_owned)
        .collect()
    }

    /// A TCP connection from wan to `[LAN_IP6]:port` while `nc` listens
    /// there: nc's exit status and stderr.
    fn connect_in(&self, port: u16) -> (bool, String) {
        let lan = self.v6().lan;
        let _listener = self
            .lab
            .spawn(
                Node::Lan,
                &[
                    "nc",
                    "-6",
                    "-l",
                    "-s",
                    &lan.to_string(),
                    "-p",
                    &port.to_string(),
                ],
            )
            .expect("nc -l");
        self.lab
            .wait_listening(Node::Lan, Proto::Tcp, port, Duration::from_secs(5))
            .expect("nc listens");
        let out = self
            .lab
            .exec(
                Node::Wan,
                &[
                    "nc",
                    "-6",
                    "-v",
                    "-z",
                    "-w",
                    "2",
                    &lan.to_string(),
                    &port.to_string(),
                ],
            )
            .expect("nc -z");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The report's finding codes, in its order.
fn codes(report: &Value) -> Vec<&str> {
    let all = report["findings"].as_array().expect("findings");
    all.iter().filter_map(|f| f["code"].as_str()).collect()
}

/// The dial-back rows of the IPv6 section: (through a pinhole, verdict, detail).
fn rows(v6: &Value) -> Vec<(bool, String, String)> {
    v6["reachability"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["through_pinhole"].as_bool().expect("through_pinhole"),
                p["verdict"].as_str().expect("verdict").to_owned(),
                p["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// What must hold wherever IPv6 does not reach the internet from this host:
/// `no_ipv6`, no firewall advice, nothing called reachable.
fn assert_no_ipv6(report: &Value, why: &str) {
    let v6 = &report["ipv6"];
    assert_eq!(v6["available"], false, "{v6:#}");
    let detail = v6["detail"].as_str().expect("detail");
    assert!(detail.contains(why), "{detail}");
    let codes = codes(report);
    assert!(codes.contains(&"no_ipv6"), "{codes:?}");
    assert!(!codes.contains(&"ipv6_firewall_blocks"), "{codes:?}");
    assert_ne!(v6["firewall"]["verdict"], "blocks_inbound", "{v6:#}");
    assert_ne!(v6["firewall"]["verdict"], "allows_inbound", "{v6:#}");
    for (_, verdict, detail) in rows(v6) {
        assert_ne!(verdict, "reachable", "{detail}");
    }
}

#[test]
fn lab_ipv6_world_firewall_off_rejecting_and_miniupnpd_without_ipv6() {
    require_root();
    let jobs: Vec<(String, Box<dyn FnOnce() + Send>)> = vec![
        ("no-firewall".into(), Box::new(firewall_off)),
        ("reject".into(), Box::new(firewall_rejects)),
        ("miniupnpd-no-ipv6".into(), Box::new(miniupnpd_without_ipv6)),
    ];
    all_at_once(jobs.into_iter().map(|(n, j)| (n, move || j())).collect());
}

fn firewall_off() {
    let w = world(Ipv6Quirk::NoFirewall);
    // The topology: the forward chain accepts new inbound IPv6, a connection
    // from outside reaches a listener in the LAN.
    let forward = w.sh(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "forward"],
    );
    assert!(forward.contains("meta nfproto ipv6 accept"), "{forward}");
    let (connected, err) = w.connect_in(7201);
    assert!(connected, "nc from wan: {err}");

    let (_, doc) = w.nat_type6();
    assert_eq!(doc["connectivity"], "no_nat", "{doc:#}");
    assert_eq!(doc["filtering"], "endpoint_independent", "{doc:#}");
    assert_eq!(doc["kind"], "open", "{doc:#}");

    let r = w.doctor();
    let v6 = &r["ipv6"];
    assert_eq!(v6["available"], true, "{v6:#}");
    assert_eq!(v6["firewall"]["verdict"], "allows_inbound", "{v6:#}");
    let codes = codes(&r);
    assert!(!codes.contains(&"ipv6_firewall_blocks"), "{codes:?}");
    let rows = rows(v6);
    assert!(
        rows.iter()
            .any(|(through, v, _)| !through && v == "reachable"),
        "{rows:?}"
    );
}

fn firewall_rejects() {
    let w = world(Ipv6Quirk::Reject);
    let forward = w.sh(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "forward"],
    );
    assert!(
        forward.contains("reject with tcp reset")
            && forward.contains("reject with icmpv6 admin-prohibited"),
        "{forward}"
    );
    // Refused at once although nc listens in the LAN: the router resets it.
    let (connected, err) = w.connect_in(7202);
    assert!(!connected && err.contains("refused"), "nc from wan: {err}");

    let (_, doc) = w.nat_type6();
    assert_eq!(doc["connectivity"], "no_nat", "{doc:#}");
    assert_eq!(doc["filtering"], "address_and_port_dependent", "{doc:#}");
    let seen = w.external_ip6();
    assert_eq!(seen["own_address"], true, "{seen:#}");

    let before = w.pinhole_rules();
    let r = w.doctor();
    let v6 = &r["ipv6"];
    assert_eq!(v6["available"], true, "{v6:#}");
    assert_eq!(v6["firewall"]["verdict"], "blocks_inbound", "{v6:#}");
    // The reset is evidence of its own, beside STUN's filtering.
    let evidence = v6["firewall"]["evidence"].to_string();
    assert!(evidence.contains("a firewall rejects it"), "{evidence}");
    assert!(codes(&r).contains(&"ipv6_firewall_blocks"));
    assert_eq!(v6["pinhole"]["verdict"], "opened", "{v6:#}");
    let rows = rows(v6);
    // Without a pinhole the reset is the firewall's ("closed": refused by this
    // host or a firewall, and this host listened); through one, reachable.
    assert!(
        rows.iter()
            .any(|(through, v, d)| !through && v == "closed" && d.contains("firewall rejects")),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|(through, v, _)| *through && v == "reachable"),
        "{rows:?}"
    );
    assert_eq!(w.pinhole_rules(), before, "pinholes left on the router");
}

fn miniupnpd_without_ipv6() {
    let w = world(Ipv6Quirk::MiniupnpdNoIpv6);
    let conf = std::fs::read_to_string(w.lab.run_dir().join("miniupnpd.conf")).expect("conf");
    assert!(conf.contains("ipv6_disable=yes"), "{conf}");
    // IPv4 UPnP works; nothing of miniupnpd listens on IPv6.
    let status = w.sh(
        Node::Lan,
        &["upnpc", "-u", "http://192.168.77.1:2869/rootDesc.xml", "-s"],
    );
    assert!(
        status.contains("ExternalIPAddress = 88.77.66.2"),
        "{status}"
    );
    let sockets = w.sh(Node::Rtr, &["ss", "-Hlntu"]);
    assert!(
        !sockets
            .lines()
            .any(|l| l.contains("]:5351") || l.contains("]:2869") || l.contains("*:5351")),
        "{sockets}"
    );
    let map4 = w
        .lab
        .command(Node::Lan, natkit_lab::natkit_bin())
        .args([
            "map",
            "--protocol",
            "tcp",
            "--port",
            "7301",
            "--once",
            "--json",
        ])
        .args([
            "--journal",
            &format!("{}/journal4", w.lab.run_dir().display()),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("natkit map");
    assert!(map4.status.success(), "{}", natkit_lab::dump_output(&map4));

    let map6 = w.map6(7302);
    let text = String::from_utf8_lossy(&map6.stderr);
    assert_eq!(
        map6.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&map6)
    );
    assert!(
        text.contains("pcp:") && text.contains("upnp:"),
        "each protocol's reason: {text}"
    );

    let r = w.doctor();
    let p = &r["ipv6"]["pinhole"];
    // Neither protocol is there for IPv6: not a refusal by the router.
    assert_eq!(p["verdict"], "no_protocol", "{p:#}");
    let said = p["attempts"].to_string();
    assert!(
        said.contains("upnp") && said.contains("pcp"),
        "both protocols and why: {p:#}"
    );
    for a in p["attempts"].as_array().expect("attempts") {
        assert!(a["detail"].as_str().is_some_and(|d| !d.is_empty()), "{a:#}");
    }
    assert!(w.pinhole_rules().is_empty());
}

#[test]
fn lab_ipv6_world_addresses() {
    require_root();
    let jobs: Vec<(String, Box<dyn FnOnce() + Send>)> = vec![
        ("temporary-only".into(), Box::new(temporary_only)),
        ("ula-only".into(), Box::new(ula_only)),
        ("link-local-only".into(), Box::new(link_local_only)),
    ];
    all_at_once(jobs.into_iter().map(|(n, j)| (n, move || j())).collect());
}

fn temporary_only() {
    let w = world(Ipv6Quirk::TemporaryOnly);
    let addrs = w.sh(
        Node::Lan,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ],
    );
    let preferred: Vec<&str> = addrs
        .lines()
        .filter(|l| !l.contains("deprecated"))
        .collect();
    assert!(
        !preferred.is_empty() && preferred.iter().all(|l| l.contains("temporary")),
        "{addrs}"
    );
    assert!(addrs.contains("deprecated dynamic mngtmpaddr"), "{addrs}");
    let before = w.pinhole_rules();

    let r = w.doctor();
    let v6 = &r["ipv6"];
    assert!(
        codes(&r).contains(&"ipv6_temporary_address_only"),
        "{:?}",
        codes(&r)
    );
    assert_eq!(v6["pinhole_address"], Value::Null, "{v6:#}");
    assert_eq!(v6["pinhole"]["verdict"], "not_checked", "{v6:#}");
    let out = w.map6(7303);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert!(err.contains("no stable global IPv6 address"), "{err}");
    assert_eq!(w.pinhole_rules(), before, "a pinhole was opened");
}

fn ula_only() {
    let w = world(Ipv6Quirk::UlaOnly);
    let addrs = w.sh(
        Node::Lan,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ],
    );
    assert!(
        !addrs.is_empty() && addrs.lines().all(|l| l.contains(" fd00:88:77:77:")),
        "{addrs}"
    );
    let (answered, text) = w.ping6(Node::Lan, w.v6().peer);
    assert!(!answered, "{text}");

    let r = w.doctor();
    assert_no_ipv6(&r, "unique local");
}

fn link_local_only() {
    let w = world(Ipv6Quirk::LinkLocalOnly);
    let addrs = w.sh(
        Node::Lan,
        &["ip", "-6", "-o", "addr", "show", "dev", "eth0"],
    );
    assert!(addrs.lines().all(|l| l.contains(" fe80::")), "{addrs}");
    let routes = w.sh(Node::Lan, &["ip", "-6", "route", "show", "default"]);
    assert!(routes.trim().is_empty(), "{routes}");

    let r = w.doctor();
    assert_no_ipv6(&r, "no global IPv6 address");
}

#[test]
fn lab_ipv6_world_uplinks() {
    require_root();
    let jobs: Vec<(String, Box<dyn FnOnce() + Send>)> = vec![
        (
            "dead-uplink".into(),
            Box::new(|| no_internet(Ipv6Quirk::DeadUplink)),
        ),
        (
            "no-upstream".into(),
            Box::new(|| no_internet(Ipv6Quirk::NoUpstream)),
        ),
        ("nat66".into(), Box::new(nat66)),
    ];
    all_at_once(jobs.into_iter().map(|(n, j)| (n, move || j())).collect());
}

fn no_internet(quirk: Ipv6Quirk) {
    let w = world(quirk);
    // IPv4 reaches the internet, IPv6 does not, though the LAN host has a
    // global address and an IPv6 default route from the router.
    let (v4, text) = {
        let out = w
            .lab
            .exec(
                Node::Lan,
                &[
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    &w.lab.addrs().peer.to_string(),
                ],
            )
            .expect("ping");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(v4, "{text}");
    let (v6, text) = w.ping6(Node::Lan, w.v6().peer);
    assert!(!v6, "{text}");
    if quirk == Ipv6Quirk::NoUpstream {
        assert!(text.contains("No route"), "{text}");
        let routes = w.sh(Node::Rtr, &["ip", "-6", "route", "show", "default"]);
        assert!(routes.trim().is_empty(), "{routes}");
    }
    let routes = w.sh(Node::Lan, &["ip", "-6", "route", "show", "default"]);
    assert!(routes.contains("proto ra"), "{routes}");

    let (out, doc) = w.nat_type6();
    assert!(!out.status.success(), "{doc:#}");
    assert_eq!(doc["connectivity"], "udp_blocked", "{doc:#}");

    let r = w.doctor();
    assert_no_ipv6(&r, "does not reach the internet");
}

fn nat66() {
    let w = world(Ipv6Quirk::Nat66);
    let v6 = w.v6();
    let ruleset = w.sh(Node::Rtr, &["nft", "list", "table", "ip6", "nat66"]);
    assert!(ruleset.contains("masquerade"), "{ruleset}");
    // Out works (translated), in does not (the internet has no route to the LAN).
    let (out_ok, text) = w.ping6(Node::Lan, v6.peer);
    assert!(out_ok, "{text}");
    let (in_ok, text) = w.ping6(Node::Wan, v6.lan);
    assert!(!in_ok, "{text}");

    let (out, doc) = w.nat_type6();
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    assert_eq!(doc["connectivity"], "nat", "{doc:#}");
    let external: SocketAddr = doc["external_address"]
        .as_str()
        .expect("external")
        .parse()
        .expect("address");
    assert_eq!(external.ip(), IpAddr::V6(v6.rtr_wan), "{doc:#}");
    assert_ne!(doc["external_address"], doc["local_address"], "{doc:#}");
    let seen = w.external_ip6();
    assert_eq!(seen["address"], v6.rtr_wan.to_string(), "{seen:#}");
    assert_eq!(seen["own_address"], false, "{seen:#}");

    let r = w.doctor();
    let s = &r["ipv6"];
    let codes = codes(&r);
    assert!(
        !codes.contains(&"ipv6_firewall_blocks"),
        "pinhole advice under NAT66: {codes:?}"
    );
    assert_eq!(s["firewall"]["verdict"], "unknown", "{s:#}");
    let why = s["firewall"]["not_checked"].as_str().expect("why");
    assert!(why.contains("NAT"), "{why}");
    assert!(
        s["detail"].as_str().expect("detail").contains("NAT66"),
        "{s:#}"
    );
    for (_, verdict, detail) in rows(s) {
        assert_ne!(verdict, "reachable", "{detail}");
    }
}
