//! STUN over IPv6 in the dual-stack lab (`natlab.sh up --ipv6`): no NAT, the router's
//! stateful firewall.
//!
//! natkit's `stun-server` runs dual-stack in the wan node (88.77.66.10/.11 and
//! STUN1_6/STUN2_6 = 2a0d:88:77:66::10/::11, ports 4478/4479), and coturn on the two
//! IPv6 addresses as the reference server. In the LAN:
//!
//! - the truth first, without STUN: the LAN host sends to an outside peer, and the
//!   peer answers from the same address and port, from another port and from another
//!   address; what gets through the router's `ct state established,related accept`
//!   is the filtering (Linux conntrack matches the whole 5-tuple, so only the first);
//! - natkit's classifier over IPv6, [`RUNS`] times against each server: no NAT (the
//!   mapped address is the local one, a LAN address of the /64), filtering the truth,
//!   the firewall named as such, never a NAT type;
//! - coturn's `turnutils_natdiscovery -m -f` over IPv6 against both servers must say
//!   the same filtering (it takes an IPv6 server address; it always words its answer
//!   "NAT with …", having no notion of "no NAT"). stund's `stun` client is IPv4-only
//!   (it rejects an IPv6 server address), and so is stund;
//! - `natkit nat-type -6`, JSON and text;
//! - IPv4 and IPv6 external addresses side by side from one server name with an A and
//!   an AAAA record (the lab's DNS).
//! - binding lifetime discovery over IPv6: how long the firewall keeps an idle
//!   outbound flow open, which is the router's conntrack UDP timeout (set to 3 s).
//!
//! On `--nat open --ipv6` (no IPv6 firewall) the probe lets every answer in and the
//! classifier says "open". A lab without `--ipv6` must say "no IPv6" at once (a route
//! lookup, no timeout), while IPv4 works. Needs root; fails (never skips) without it.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use natkit_core::{Connectivity, FilteringBehaviour, LegacyNatType};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, helper_addrs, require_root};
use natkit_stun::classify::{Classification, ClassifyConfig, Firewall, ServerFlavor, classify};
use natkit_stun::client::{IpFamily, NoAddress, RtoPlan, StunDiscoverer};
use serde_json::{Value, json};

/// natkit's server (both families) and coturn (IPv6) in the wan node.
const OUR_PORT: u16 = 4478;
const OUR_ALT_PORT: u16 = 4479;
const COTURN6_PORT: u16 = 5488;
const COTURN6_ALT_PORT: u16 = 5489;
/// Classifier runs per server.
const RUNS: usize = 10;
/// The name the lab's DNS gives an A (STUN1) and an AAAA (STUN1_6) record.
const DUAL_NAME: &str = "stun.natkit-lab.test";
/// The ports of the firewall probe's outside peer.
const PEER_PORT: u16 = 7001;
const PEER_OTHER_PORT: u16 = 7002;

const TARGETS_ENV: &str = "NATKIT_STUN6_TARGETS";
const PROBE_ENV: &str = "NATKIT_STUN6_PROBE_TO";
const MARK: &str = "NATKIT_V6 ";

// --- helpers that run inside the lab --------------------------------------------

#[test]
#[ignore = "helper: run inside the lab's LAN node by the IPv6 lab tests"]
fn lan_classify6_helper() {
    helper_addrs("lan_classify6_helper").expect("lab env");
    let targets = std::env::var(TARGETS_ENV).expect("targets");
    let rt = runtime();
    for _ in 0..RUNS {
        for target in targets.split(',') {
            let mut config = ClassifyConfig::new([target]);
            config.plan = RtoPlan::LAB;
            config.hairpinning = true;
            config.family = Some(IpFamily::V6);
            let c = rt.block_on(classify(config)).expect("classify");
            println!("{MARK}{}", serde_json::to_string(&c).expect("json"));
        }
    }
}

#[test]
#[ignore = "helper: run inside the lab's LAN node by the IPv6 lab tests"]
fn lan_both_helper() {
    helper_addrs("lan_both_helper").expect("lab env");
    let servers: Vec<String> = std::env::var(TARGETS_ENV)
        .expect("targets")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rt = runtime();
    let d = StunDiscoverer::new(servers).with_plan(RtoPlan::LAB);
    let both = rt.block_on(d.discover_both()).expect("valid config");
    let side = |r: &Result<natkit_core::ExternalAddress, NoAddress>| match r {
        Ok(a) => json!({ "ip": a.ip, "agreeing": a.agreeing().count() }),
        Err(NoAddress::NoRoute { error, .. }) => json!({ "no_route": error.to_string() }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let doc = json!({
        "v4": side(&both.ipv4),
        "v6": side(&both.ipv6),
        "elapsed_ms": both.elapsed.as_secs_f64() * 1000.0,
    });
    println!("{MARK}{doc}");
    // IPv6 alone: how long "no IPv6" (or the IPv6 answer) takes by itself.
    let v6_only: Vec<String> = d
        .servers()
        .iter()
        .filter(|s| s.starts_with('['))
        .cloned()
        .collect();
    if !v6_only.is_empty() {
        let t = Instant::now();
        let only = StunDiscoverer::new(v6_only).with_plan(RtoPlan::LAB);
        let r = rt.block_on(only.discover_both()).expect("valid config");
        let doc =
            json!({ "v6_alone": side(&r.ipv6), "v6_alone_ms": t.elapsed().as_secs_f64() * 1000.0 });
        println!("{MARK}{doc}");
    }
}

/// The LAN side of the firewall probe: one socket sends to the outside peer, then
/// reports every datagram that reaches it within a second, by source.
#[test]
#[ignore = "helper: run inside the lab's LAN node by the IPv6 lab tests"]
fn lan_probe_helper() {
    let a = helper_addrs("lan_probe_helper")
        .expect("lab env")
        .expect("in the lab");
    let v6 = a.v6.expect("a dual-stack lab");
    let sock = std::net::UdpSocket::bind(SocketAddr::new(IpAddr::V6(v6.lan), 0)).expect("bind");
    let peer = SocketAddr::new(IpAddr::V6(v6.peer), PEER_PORT);
    for _ in 0..3 {
        sock.send_to(b"out", peer).expect("send");
    }
    println!("{MARK}port {}", sock.local_addr().expect("addr").port());
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        println!("{MARK}got {from} {}", String::from_utf8_lossy(&buf[..n]));
    }
    println!("{MARK}done");
}

/// The outside side of the firewall probe: answers the LAN socket from the address
/// and port it sent to, from another port, and from another address.
#[test]
#[ignore = "helper: run inside the lab's wan node by the IPv6 lab tests"]
fn wan_probe_helper() {
    let a = helper_addrs("wan_probe_helper")
        .expect("lab env")
        .expect("in the lab");
    let v6 = a.v6.expect("a dual-stack lab");
    let to: SocketAddr = std::env::var(PROBE_ENV)
        .expect("target")
        .parse()
        .expect("an address");
    for (from, what) in [
        ((v6.peer, PEER_PORT), "same"),
        ((v6.peer, PEER_OTHER_PORT), "other_port"),
        ((v6.peer2, PEER_PORT), "other_ip"),
    ] {
        let s = std::net::UdpSocket::bind(SocketAddr::from(from)).expect("bind");
        for _ in 0..3 {
            s.send_to(what.as_bytes(), to).expect("send");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// --- the tests -------------------------------------------------------------------

fn dual_stack_lab() -> Lab {
    Lab::builder()
        .nat(NatKind::PortRestricted)
        .ipv6(true)
        .dns([(DUAL_NAME, std::net::Ipv4Addr::new(88, 77, 66, 10))])
        .dns_aaaa([(DUAL_NAME, "2a0d:88:77:66::10".parse().expect("ipv6"))])
        .build()
        .expect("lab up")
}

/// natkit's `stun-server`, dual-stack, in wan; no rate limit (one client
/// classifies back to back).
fn start_our_server(lab: &Lab) -> LabChild {
    let a = *lab.addrs();
    let mut cmd = lab.command(Node::Wan, natkit_lab::natkit_bin());
    cmd.arg("stun-server")
        .args(["--bind", &SocketAddr::from((a.stun1, OUR_PORT)).to_string()])
        .args([
            "--alternate",
            &SocketAddr::from((a.stun2, OUR_ALT_PORT)).to_string(),
        ]);
    if let Some(v6) = a.v6 {
        cmd.args([
            "--bind",
            &SocketAddr::from((v6.stun1, OUR_PORT)).to_string(),
        ])
        .args([
            "--alternate",
            &SocketAddr::from((v6.stun2, OUR_ALT_PORT)).to_string(),
        ]);
    }
    cmd.arg("--no-rate-limit")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit's stun-server");
    lab.wait_listening(Node::Wan, Proto::Udp, OUR_ALT_PORT, Duration::from_secs(10))
        .expect("natkit's stun-server listens");
    child
}

/// coturn as an RFC 5780 server on STUN1_6 and STUN2_6 (the lab's own coturn is
/// IPv4); its files in the lab's run directory.
fn start_coturn6(lab: &Lab) -> LabChild {
    let v6 = lab.addrs().v6.expect("dual-stack");
    let dir = lab.run_dir();
    let mut cmd = lab.command(Node::Wan, "/usr/bin/turnserver");
    cmd.args(["-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls"])
        .args(["-L", &v6.stun1.to_string(), "-L", &v6.stun2.to_string()])
        .args(["-p", &COTURN6_PORT.to_string()])
        .args(["--alt-listening-port", &COTURN6_ALT_PORT.to_string()])
        .arg("--pidfile")
        .arg(dir.join("coturn6.pid"))
        .arg("--db")
        .arg(dir.join("coturn6.db"))
        .args(["--log-file", "stdout", "--simple-log"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start coturn on IPv6");
    lab.wait_listening(
        Node::Wan,
        Proto::Udp,
        COTURN6_ALT_PORT,
        Duration::from_secs(10),
    )
    .expect("coturn listens on IPv6");
    child
}

fn v6(ip: std::net::Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

/// What the router's firewall lets back in to a LAN socket that sent to an outside
/// peer, measured without STUN: the filtering it implements.
fn firewall_truth(lab: &Lab) -> FilteringBehaviour {
    let mut cmd = lab
        .test_helper(Node::Lan, "lan_probe_helper")
        .expect("helper");
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut lan = LabChild::spawn(&mut cmd).expect("start the LAN probe");
    let stdout = lan.child_mut().stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .filter_map(|l| l.find(MARK).map(|at| l[at + MARK.len()..].to_owned()));
    let port: u16 = lines
        .next()
        .and_then(|l| l.strip_prefix("port ")?.parse().ok())
        .expect("the LAN probe's port");
    let lan_ip = lab.addrs().v6.expect("dual-stack").lan;
    let out = lab
        .test_helper(Node::Wan, "wan_probe_helper")
        .expect("helper")
        .env(PROBE_ENV, v6(lan_ip, port).to_string())
        .output()
        .expect("run the wan probe");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let got: Vec<String> = lines.take_while(|l| l != "done").collect();
    println!("firewall probe: {got:?}");
    let came = |what: &str| got.iter().any(|l| l.ends_with(what));
    assert!(came(" same"), "the peer's own answer must get in: {got:?}");
    if came(" other_ip") {
        FilteringBehaviour::EndpointIndependent
    } else if came(" other_port") {
        FilteringBehaviour::AddressDependent
    } else {
        FilteringBehaviour::AddressAndPortDependent
    }
}

/// What `turnutils_natdiscovery -m -f -L LOCAL` says against `server`: the
/// filtering, and whether it saw no NAT (its reflexive address is the local one; it
/// says so only when bound to a concrete address with `-L`).
fn coturn_verdict(
    lab: &Lab,
    local: IpAddr,
    server: SocketAddr,
) -> (FilteringBehaviour, bool, Duration) {
    let (port, ip, local) = (
        server.port().to_string(),
        server.ip().to_string(),
        local.to_string(),
    );
    let t = Instant::now();
    let out = lab
        .exec(
            Node::Lan,
            &[
                "turnutils_natdiscovery",
                "-m",
                "-f",
                "-L",
                &local,
                "-p",
                &port,
                &ip,
            ],
        )
        .expect("turnutils_natdiscovery");
    let took = t.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let f = if text.contains("Address and Port Dependent Filtering") {
        FilteringBehaviour::AddressAndPortDependent
    } else if text.contains("Address Dependent Filtering") {
        FilteringBehaviour::AddressDependent
    } else if text.contains("Endpoint Independent Filtering") {
        FilteringBehaviour::EndpointIndependent
    } else {
        panic!(
            "no filtering verdict from natdiscovery against {server}: {}",
            natkit_lab::dump_output(&out)
        )
    };
    assert!(
        text.contains("IPv6. UDP reflexive addr"),
        "natdiscovery did not run over IPv6: {text}"
    );
    (f, text.contains("No NAT!"), took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

#[test]
fn lab_ipv6_is_no_nat_and_the_firewall_is_measured() {
    require_root();
    let lab = dual_stack_lab();
    let _ours = start_our_server(&lab);
    let _coturn = start_coturn6(&lab);
    let a = *lab.addrs();
    let a6 = a.v6.expect("dual-stack");
    let lan_ips = [a6.lan, a6.lan_slaac, a6.lan_temp];

    let truth = firewall_truth(&lab);
    // Linux conntrack keys UDP on the 5-tuple: the firewall the lab's router (and any
    // Linux home router) runs is address-and-port-dependent.
    assert_eq!(truth, FilteringBehaviour::AddressAndPortDependent);

    // natkit's classifier, RUNS times against each server.
    let ours = v6(a6.stun1, OUR_PORT);
    let coturn = v6(a6.stun1, COTURN6_PORT);
    let results: Vec<Classification> =
        helper_json(&lab, "lan_classify6_helper", &format!("{ours},{coturn}"))
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("a classification"))
            .collect();
    assert_eq!(results.len(), 2 * RUNS);
    let mut times = [Vec::new(), Vec::new()];
    for (i, c) in results.iter().enumerate() {
        let server = ["natkit", "coturn"][i % 2];
        let what = format!("against {server}, run {}: {c:#?}", i / 2);
        assert_eq!(c.family, Some(IpFamily::V6), "{what}");
        assert_eq!(c.servers[0].flavor, ServerFlavor::Rfc5780, "{what}");
        assert_eq!(c.behaviour.connectivity, Connectivity::NoNat, "{what}");
        let external = c.external.expect("external address");
        assert_eq!(Some(external), c.local, "{what}");
        match external.ip() {
            IpAddr::V6(ip) => assert!(lan_ips.contains(&ip), "{what}"),
            IpAddr::V4(_) => panic!("{what}"),
        }
        assert_eq!(c.behaviour.filtering, truth, "{what}");
        assert_eq!(
            c.firewall,
            Some(Firewall::StatefulAddressAndPortDependent),
            "{what}"
        );
        assert_eq!(c.legacy, LegacyNatType::SymmetricUdpFirewall, "{what}");
        assert_eq!(c.mapping_name(), "none", "{what}");
        assert_eq!(c.behaviour.hairpinning, None, "no NAT, no hairpin: {what}");
        assert!(c.notes.is_empty(), "{what}");
        times[i % 2].push(c.elapsed);
    }
    let [our_times, coturn_times] = times;
    println!(
        "classifier over IPv6: {RUNS}× against natkit's server (median {:?}), {RUNS}× \
         against coturn (median {:?}): no NAT, {truth}, every run",
        median(our_times),
        median(coturn_times)
    );

    // The reference client, against both servers.
    for server in [coturn, ours] {
        let (f, no_nat, took) = coturn_verdict(&lab, IpAddr::V6(a6.lan), server);
        println!("turnutils_natdiscovery -m -f {server}: {f}, no NAT {no_nat}, in {took:?}");
        assert_eq!(f, truth, "coturn's client against {server}");
        assert!(no_nat, "coturn's client sees no NAT either");
    }
    // stund's client cannot ask over IPv6.
    let stun1 = a6.stun1.to_string();
    let out = lab
        .exec(Node::Lan, &["stun", stun1.as_str(), "-v"])
        .expect("stun");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Primary:"),
        "stund's client over IPv6? {text}"
    );

    // The binary: `nat-type -6`, JSON then text.
    let bin = natkit_lab::natkit_bin();
    let t = Instant::now();
    let out = lab
        .command(Node::Lan, &bin)
        .args(["nat-type", "-6", "--json", "--stun", &ours.to_string()])
        .output()
        .expect("nat-type");
    let took = t.elapsed();
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["family"], "ipv6", "{doc:#}");
    assert_eq!(
        doc["kind"], "stateful_address_and_port_dependent",
        "{doc:#}"
    );
    assert_eq!(
        doc["firewall"], "stateful_address_and_port_dependent",
        "{doc:#}"
    );
    assert_eq!(doc["connectivity"], "no_nat", "{doc:#}");
    println!("nat-type -6 --json in {took:?}");
    let out = lab
        .command(Node::Lan, &bin)
        .args([
            "nat-type",
            "-6",
            "--hairpinning",
            "--stun",
            &ours.to_string(),
        ])
        .output()
        .expect("nat-type");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hairpinning   not applicable (no NAT)"),
        "{text}"
    );
    assert!(!text.contains("port kept"), "{text}");
    assert!(
        text.contains("firewall      stateful_address_and_port_dependent (no NAT)"),
        "{text}"
    );
    assert!(text.contains("mapping       none"), "{text}");
    assert!(!text.contains("cone"), "{text}");

    // Both families side by side, from one name with an A and an AAAA record.
    let docs = helper_json(&lab, "lan_both_helper", &format!("{DUAL_NAME}:{OUR_PORT}"));
    let both = &docs[0];
    println!("both families: {both}");
    assert_eq!(both["v4"]["ip"], a.public.to_string(), "{both:#}");
    let seen6: std::net::Ipv6Addr = both["v6"]["ip"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an IPv6 address: {both:#}"));
    assert!(lan_ips.contains(&seen6), "{both:#}");

    // The same from `natkit external-ip -6`, STUN only.
    let doc = external_ip6(&lab, &[format!("{DUAL_NAME}:{OUR_PORT}")]);
    assert_eq!(doc["external_address"], a.public.to_string(), "{doc:#}");
    let cli6: std::net::Ipv6Addr = doc["ipv6"]["address"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an IPv6 address: {doc:#}"));
    assert!(lan_ips.contains(&cli6), "{doc:#}");
    assert_eq!(doc["ipv6"]["scope"], "global", "{doc:#}");
    // Binding lifetime over IPv6: how long the firewall keeps an idle outbound flow
    // open, i.e. the router's conntrack UDP timeout, set to 3 s here (as the IPv4 lab
    // test does for the NAT). Probed up to 6 s in 12 steps.
    lab.exec_ok(
        Node::Rtr,
        &["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=3"],
    )
    .expect("set the conntrack UDP timeout");
    let t = Instant::now();
    let out = lab
        .command(Node::Lan, &bin)
        .args(["nat-type", "-6", "--json", "--stun", &ours.to_string()])
        .args(["--lifetime", "6", "--lifetime-steps", "12"])
        .output()
        .expect("nat-type --lifetime");
    let took = t.elapsed();
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let l = &doc["binding_lifetime"];
    println!("IPv6 firewall flow lifetime in {took:?}: {l:#}");
    assert_eq!(l["conclusive"], true, "{l:#}");
    let at_least = l["at_least_s"].as_f64().expect("at_least_s");
    let less_than = l["less_than_s"].as_f64().expect("less_than_s");
    assert!((2.5..=3.0).contains(&at_least), "{l:#}");
    assert!((3.0..=3.5).contains(&less_than), "{l:#}");
}

/// `natkit external-ip -6 --no-router --json --stun SERVER…` in the LAN.
fn external_ip6(lab: &Lab, servers: &[String]) -> Value {
    let mut cmd = lab.command(Node::Lan, natkit_lab::natkit_bin());
    cmd.args(["external-ip", "-6", "--no-router", "--json"]);
    for s in servers {
        cmd.args(["--stun", s]);
    }
    let t = Instant::now();
    let out = cmd.output().expect("external-ip");
    println!("external-ip -6 --stun {servers:?} in {:?}", t.elapsed());
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Runs the LAN helper `helper` with `targets`; the JSON documents it printed.
fn helper_json(lab: &Lab, helper: &str, targets: &str) -> Vec<Value> {
    let out = lab
        .test_helper(Node::Lan, helper)
        .expect("helper")
        .env(TARGETS_ENV, targets)
        .output()
        .expect("run the helper in the LAN");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find(MARK).map(|at| l[at + MARK.len()..].to_owned()))
        .map(|j| serde_json::from_str(&j).expect("json"))
        .collect()
}

/// A lab without IPv6: IPv4 found, IPv6 "no route" from a route lookup, at once;
/// `nat-type -6` fails with that, not with a timeout.
#[test]
fn lab_without_ipv6_says_so_at_once() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .build()
        .expect("lab up");
    let _ours = start_our_server(&lab);
    let a = *lab.addrs();
    assert!(a.v6.is_none());
    let six = SocketAddr::from((
        "2a0d:88:77:66::10"
            .parse::<std::net::Ipv6Addr>()
            .expect("ip"),
        OUR_PORT,
    ));
    let four = SocketAddr::from((a.stun1, OUR_PORT));
    let docs = helper_json(&lab, "lan_both_helper", &format!("{four},{six}"));
    println!("no IPv6: {docs:?}");
    assert_eq!(docs[0]["v4"]["ip"], a.public.to_string(), "{docs:?}");
    assert!(docs[0]["v6"]["no_route"].is_string(), "{docs:?}");
    assert!(docs[1]["v6_alone"]["no_route"].is_string(), "{docs:?}");
    let doc = external_ip6(&lab, &[four.to_string(), six.to_string()]);
    assert_eq!(doc["external_address"], a.public.to_string(), "{doc:#}");
    assert!(doc["ipv6"]["address"].is_null(), "{doc:#}");
    assert!(
        doc["ipv6"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no IPv6")),
        "{doc:#}"
    );

    let t = Instant::now();
    let out = lab
        .command(Node::Lan, natkit_lab::natkit_bin())
        .args(["nat-type", "-6", "--stun", &six.to_string()])
        .output()
        .expect("nat-type");
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "nat-type -6 without IPv6: exit {:?} in {took:?}: {stderr}",
        out.status.code()
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert!(stderr.contains("no IPv6 address or route"), "{stderr}");
}

/// `--nat open --ipv6`: the router forwards IPv6 without a firewall, so an answer
/// from an address this host never sent to gets in, and over IPv6 (as over the
/// public IPv4 /24) the host is "open": no NAT, no filtering.
#[test]
fn lab_ipv6_without_a_firewall_is_open() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::Open)
        .ipv6(true)
        .build()
        .expect("lab up");
    let _ours = start_our_server(&lab);
    let a6 = lab.addrs().v6.expect("dual-stack");
    let truth = firewall_truth(&lab);
    assert_eq!(truth, FilteringBehaviour::EndpointIndependent);
    let ours = v6(a6.stun1, OUR_PORT);
    let docs = helper_json(&lab, "lan_classify6_helper", &ours.to_string());
    assert_eq!(docs.len(), RUNS);
    for doc in docs {
        let c: Classification = serde_json::from_value(doc).expect("a classification");
        let what = format!("{c:#?}");
        assert_eq!(c.behaviour.connectivity, Connectivity::NoNat, "{what}");
        assert_eq!(c.behaviour.filtering, truth, "{what}");
        assert_eq!(c.firewall, Some(Firewall::Open), "{what}");
        assert_eq!(c.legacy, LegacyNatType::Open, "{what}");
        assert_eq!(c.kind(), "open", "{what}");
    }
    println!("open over IPv6: {RUNS}× open (no NAT, {truth})");
}
