//! Outside-in reachability in the NAT lab (root only; fails, never skips,
//! without it): natkit's dial-back server in the wan namespace, miniupnpd
//! mappings on the router, the check run from the LAN host, and nmap from
//! outside as the yardstick. Plus the engine's UDP verdicts against the
//! same router from outside.
//!
//! natkit's code runs in the lab namespaces as helper processes (this test
//! binary re-run by `Lab::test_helper`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use dialback_lab::{Check, SERVER_PORT, row, runtime, serve, text};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use natkit_probe::dialback::Reachability;
use natkit_probe::{PortState, ProbeConfig, ProbePlan, Prober};

mod dialback_lab;

/// Mapped to the LAN host, our responder listens: `reachable`.
const MAPPED: u16 = 40080;
/// Mapped to the LAN host, but the ISP drops inbound 443: `filtered`.
const HTTPS: u16 = 443;
/// Mapped to lan2 (192.168.77.3), where `nc -l` listens: `wrong_host`.
const TO_LAN2: u16 = 40081;
/// Not mapped: the router's own stack resets it: `not_forwarded`.
const UNMAPPED: u16 = 40082;
/// Mapped to the LAN host, where a local service (`nc -l`) holds it:
/// `reachable`, unproven.
const HELD: u16 = 40083;
/// UDP, mapped to the LAN host: `reachable`.
const UDP_MAPPED: u16 = 40090;
/// UDP, not mapped: the router answers port unreachable.
const UDP_UNMAPPED: u16 = 40091;
/// UDP, mapped to a UDP echo service in the LAN (engine test).
const UDP_ECHO: u16 = 40092;
/// UDP, dropped by the ISP (engine test).
const UDP_BLOCKED: u16 = 40102;

// ---- helpers run inside the lab ----

#[test]
#[ignore = "helper: a UDP echo service in the LAN, run by lab_engine_udp"]
fn lan_udp_echo() {
    if natkit_lab::helper_addrs("lan_udp_echo")
        .expect("lab env")
        .is_none()
    {
        return;
    }
    let socket = std::net::UdpSocket::bind(("0.0.0.0", UDP_ECHO)).expect("bind");
    println!("ready");
    let mut buf = [0u8; 2048];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

#[test]
#[ignore = "helper: the engine probing the router from outside, run by lab_engine_udp"]
fn wan_engine_udp() {
    let Some(addrs) = natkit_lab::helper_addrs("wan_engine_udp").expect("lab env") else {
        return;
    };
    let spec = format!("{UDP_UNMAPPED},{UDP_ECHO},{UDP_BLOCKED}/udp")
        .parse()
        .expect("spec");
    let plan = ProbePlan::from_spec(&[IpAddr::V4(addrs.public)], &spec).expect("plan");
    let summary = runtime()
        .block_on(async {
            let config = ProbeConfig {
                tries: 3,
                ..ProbeConfig::default()
            };
            Prober::new(config)?.run(plan).await
        })
        .expect("probe");
    for v in &summary.verdicts {
        println!("{}", serde_json::to_string(v).expect("json"));
    }
}

// ---- the tests ----

fn upnpc(lab: &Lab, node: Node, args: &[&str]) {
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    let mut argv = vec!["upnpc", "-u", url.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(node, &argv).expect("run upnpc");
    assert!(
        out.status.success() && text(&out.stdout).contains("is redirected to internal"),
        "upnpc {args:?}: {}",
        natkit_lab::dump_output(&out)
    );
}

fn map(lab: &Lab, node: Node, ip: &str, port: u16, proto: &str) {
    let p = port.to_string();
    upnpc(lab, node, &["-a", ip, &p, &p, proto]);
}

fn listen_tcp(lab: &Lab, node: Node, port: u16) -> LabChild {
    let p = port.to_string();
    let child = lab
        .spawn(node, &["nc", "-n", "-k", "-l", "-p", &p])
        .expect("spawn nc");
    lab.wait_listening(node, Proto::Tcp, port, Duration::from_secs(5))
        .expect("nc listening");
    child
}

fn lab_with_mappings(extra_blocks: &[(u16, Proto)]) -> Lab {
    require_root();
    let mut b = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .lan2(true)
        .block_inbound(HTTPS, Proto::Tcp);
    for &(port, proto) in extra_blocks {
        b = b.block_inbound(port, proto);
    }
    b.build().expect("lab")
}

/// `nmap -sT -Pn` from wan: port → state.
fn nmap(lab: &Lab, ports: &[u16]) -> BTreeMap<u16, String> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let list = list.join(",");
    let target = lab.addrs().public.to_string();
    let out = lab
        .exec_timeout(
            Node::Wan,
            &["nmap", "-sT", "-Pn", "-n", "-p", &list, "-oG", "-", &target],
            Duration::from_secs(60),
        )
        .expect("run nmap");
    assert!(
        out.status.success(),
        "nmap: {}",
        natkit_lab::dump_output(&out)
    );
    let stdout = text(&out.stdout);
    // "Host: 88.77.66.2 ()	Ports: 443/filtered/tcp//https///, 40080/open/tcp//..."
    let ports_field = stdout
        .lines()
        .find_map(|l| l.split_once("Ports: ").map(|(_, p)| p.to_owned()))
        .unwrap_or_else(|| panic!("no Ports line in nmap output:\n{stdout}"));
    ports_field
        .split(", ")
        .filter_map(|item| {
            let mut f = item.split('/');
            let port = f.next()?.trim().parse().ok()?;
            let state = f.next()?.to_owned();
            Some((port, state))
        })
        .collect()
}

/// What nmap's connect scan says for a port with each verdict, for a
/// router that resets unforwarded ports (as the lab's does).
fn nmap_state_for(v: Reachability) -> &'static str {
    match v {
        Reachability::Reachable | Reachability::WrongHost => "open",
        Reachability::Closed | Reachability::NotForwarded => "closed",
        Reachability::Filtered => "filtered",
    }
}

/// Starts the dial-back server in wan on PEER_IP, runs the LAN host's
/// check of `ports` and returns the server (killed on drop) and the
/// report's JSON lines: the head, then one per port.
fn serve_and_check(lab: &Lab, ports: &[String]) -> (LabChild, Vec<serde_json::Value>) {
    let server_addr = SocketAddr::new(IpAddr::V4(lab.addrs().peer), SERVER_PORT);
    let server = serve(lab, server_addr);
    let check = Check {
        ports,
        ..Check::default()
    };
    (server, dialback_lab::check(lab, server_addr, check))
}

#[test]
fn lab_dialback_double_nat() {
    require_root();
    // miniupnpd maps again once told the ISP's public address; the mappings
    // reach only the carrier-grade NAT, which resets everything it does not
    // forward itself.
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .double_nat(true)
        .miniupnpd_ext_ip(std::net::Ipv4Addr::new(88, 77, 66, 2))
        .build()
        .expect("lab");
    let lan = lab.addrs().lan.to_string();
    map(&lab, Node::Lan, &lan, MAPPED, "TCP");
    map(&lab, Node::Lan, &lan, UDP_MAPPED, "UDP");
    // Mapped on the home router; the second one says so (as a doctor that
    // just made the mapping would).
    let ports = [format!("{MAPPED}/tcp"), format!("{UDP_MAPPED}/udp/mapped")];
    let (server, lines) = serve_and_check(&lab, &ports);
    assert_eq!(lines[0]["behind_nat"], true);
    assert_eq!(
        row(&lines, MAPPED, "tcp"),
        (
            "not_forwarded".to_owned(),
            false,
            "refused_unforwarded".to_owned()
        )
    );
    // Told the port is mapped, the check says the path refuses it anyway.
    assert_eq!(
        row(&lines, UDP_MAPPED, "udp"),
        (
            "closed".to_owned(),
            false,
            "refused_despite_forward".to_owned()
        )
    );
    drop(server);
    lab.down().expect("lab down");
}

#[test]
fn lab_dialback() {
    let lab = lab_with_mappings(&[]);
    let a = *lab.addrs();
    let lan = a.lan.to_string();
    let lan2 = a.lan2.expect("lan2").to_string();
    map(&lab, Node::Lan, &lan, MAPPED, "TCP");
    map(&lab, Node::Lan, &lan, HTTPS, "TCP");
    map(&lab, Node::Lan, &lan, HELD, "TCP");
    map(&lab, Node::Lan, &lan, UDP_MAPPED, "UDP");
    // miniupnpd lets a host map ports to itself: lan2 maps its own.
    map(&lab, Node::Lan2, &lan2, TO_LAN2, "TCP");
    let _lan2_service = listen_tcp(&lab, Node::Lan2, TO_LAN2);
    let held_service = listen_tcp(&lab, Node::Lan, HELD);

    let ports = [
        format!("{MAPPED}/tcp"),
        format!("{HTTPS}/tcp"),
        format!("{TO_LAN2}/tcp"),
        format!("{UNMAPPED}/tcp"),
        format!("{HELD}/tcp"),
        format!("{UDP_MAPPED}/udp"),
        format!("{UDP_UNMAPPED}/udp"),
    ];
    let (server, lines) = serve_and_check(&lab, &ports);
    let head = &lines[0];
    assert_eq!(
        head["observed"]
            .as_str()
            .map(|s| s.starts_with("88.77.66.2:")),
        Some(true)
    );
    assert_eq!(head["behind_nat"], true);
    // The router resets the unforwarded control port: that is what makes
    // the silent 443 "filtered" rather than "not forwarded".
    let controls = head["controls"].as_array().expect("controls");
    assert_eq!(controls.len(), 2, "{head}");
    for c in controls {
        assert_eq!(c["outcome"], "refused", "{c}");
    }
    let verdict = |port: u16, proto: &str| row(&lines, port, proto);
    let expect = [
        (MAPPED, "tcp", Reachability::Reachable, true),
        (HTTPS, "tcp", Reachability::Filtered, false),
        (TO_LAN2, "tcp", Reachability::WrongHost, false),
        (UNMAPPED, "tcp", Reachability::NotForwarded, false),
        (HELD, "tcp", Reachability::Reachable, false),
        (UDP_MAPPED, "udp", Reachability::Reachable, true),
        (UDP_UNMAPPED, "udp", Reachability::NotForwarded, false),
    ];
    for (port, proto, want, proven) in expect {
        let (state, got_proven, why) = verdict(port, proto);
        assert_eq!(
            (state.as_str(), got_proven),
            (want.as_str(), proven),
            "{port}/{proto} ({why})"
        );
    }
    assert_eq!(verdict(HTTPS, "tcp").2, "silent_control_refused");
    assert_eq!(verdict(HELD, "tcp").2, "held_port_answered");
    drop(server);
    drop(held_service);

    // The yardstick: nmap's connect scan from outside, with a listener on
    // every port that had one during the check (our responder is gone, so
    // nc stands in for it on the mapped ports).
    let _l1 = listen_tcp(&lab, Node::Lan, MAPPED);
    let _l2 = listen_tcp(&lab, Node::Lan, HELD);
    let tcp_ports = [MAPPED, HTTPS, TO_LAN2, UNMAPPED, HELD];
    let scan = nmap(&lab, &tcp_ports);
    println!("nmap: {scan:?}");
    for (port, proto, want, _) in expect {
        if proto != "tcp" {
            continue;
        }
        assert_eq!(
            scan.get(&port).map(String::as_str),
            Some(nmap_state_for(want)),
            "{port}/tcp: natkit says {want}, nmap {:?}",
            scan.get(&port)
        );
    }
    lab.down().expect("lab down");
}

#[test]
fn lab_engine_udp() {
    let lab = lab_with_mappings(&[(UDP_BLOCKED, Proto::Udp)]);
    let lan = lab.addrs().lan.to_string();
    map(&lab, Node::Lan, &lan, UDP_ECHO, "UDP");
    let mut echo = lab.test_helper(Node::Lan, "lan_udp_echo").expect("helper");
    echo.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let _echo = LabChild::spawn(&mut echo).expect("spawn echo");
    lab.wait_listening(Node::Lan, Proto::Udp, UDP_ECHO, Duration::from_secs(10))
        .expect("echo up");
    let out = lab
        .test_helper(Node::Wan, "wan_engine_udp")
        .expect("helper")
        .output()
        .expect("run engine");
    assert!(
        out.status.success(),
        "engine: {}",
        natkit_lab::dump_output(&out)
    );
    let stdout = text(&out.stdout);
    println!("{stdout}");
    let states: BTreeMap<u16, PortState> = stdout
        .lines()
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .map(|l| {
            let v: natkit_probe::PortVerdict = serde_json::from_str(l).expect("verdict json");
            (v.probe.addr.port(), v.state)
        })
        .collect();
    assert_eq!(
        states.get(&UDP_UNMAPPED),
        Some(&PortState::Closed),
        "closed port on the target (the router's own port unreachable)"
    );
    assert_eq!(
        states.get(&UDP_ECHO),
        Some(&PortState::Open),
        "echo service"
    );
    assert_eq!(
        states.get(&UDP_BLOCKED),
        Some(&PortState::OpenFiltered),
        "dropped upstream"
    );
    lab.down().expect("lab down");
}
