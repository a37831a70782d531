//! The doctor's outbound check in the NAT lab: `natkit dialback-server
//! --outbound-ports` in the wan namespace on the back-to-my-mac ports,
//! `natkit doctor --profile back-to-my-mac --dialback` in the LAN host, and a
//! router that drops outbound 443/tcp and 4500/udp (`natlab.sh up
//! --block-outbound`), or not.
//!
//! - Blocked: 443/tcp and 4500/udp silent, 5353/udp, 5354/tcp and the
//!   dial-back port answer: an `outbound_blocked` finding naming the two.
//! - Not blocked (the same router otherwise): every port answers, no finding.
//! - Both again through a router that drops 20 % of packets each way (a
//!   round trip loses 36 %), three runs each: loss alone is never called
//!   blocked, and the blocked ports are still found.
//!
//! Every `--json` document is validated against `docs/doctor.schema.json`.
//! Needs root and the lab's packages; fails (never skips) without them.

mod doctor_support;

use std::process::Stdio;
use std::time::Duration;

use doctor_support::{codes, json, natkit};

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use serde_json::Value;

const DIALBACK_PORT: u16 = 7007;
const PORTS: [(u16, Proto); 4] = [
    (443, Proto::Tcp),
    (4500, Proto::Udp),
    (5353, Proto::Udp),
    (5354, Proto::Tcp),
];

fn lab(block: bool) -> Lab {
    lab_with_loss(block, 0)
}

fn lab_with_loss(block: bool, loss: u8) -> Lab {
    require_root();
    let mut b = Lab::builder()
        .nat(NatKind::PortRestricted)
        .stund(true)
        .loss(loss);
    if block {
        b = b
            .block_outbound(443, Proto::Tcp)
            .block_outbound(4500, Proto::Udp);
    }
    b.build().expect("lab up")
}

/// `natkit dialback-server --outbound-ports …` on PEER in wan, waited for on
/// every port.
fn server(lab: &Lab) -> LabChild {
    let bind = format!("{}:{DIALBACK_PORT}", lab.addrs().peer);
    let spec: Vec<String> = PORTS
        .iter()
        .map(|(p, proto)| format!("{p}/{proto}"))
        .collect();
    let mut cmd = lab.command(Node::Wan, natkit());
    cmd.args([
        "dialback-server",
        "--bind",
        &bind,
        "--allow-private",
        "--outbound-ports",
        &spec.join(","),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit dialback-server");
    for (port, proto) in PORTS.into_iter().chain([(DIALBACK_PORT, Proto::Tcp)]) {
        lab.wait_listening(Node::Wan, proto, port, Duration::from_secs(10))
            .expect("the dial-back server and its outbound echo listen");
    }
    child
}

/// `natkit doctor --json --profile back-to-my-mac --dialback PEER:7007`, its
/// outbound part printed for the log.
fn doctor(lab: &Lab) -> Value {
    let a = lab.addrs();
    let args = [
        format!("--stun={}:3478", a.stun1),
        "--profile=back-to-my-mac".to_owned(),
        format!("--dialback={}:{DIALBACK_PORT}", a.peer),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (doc, _, took) = json(lab, &args);
    eprintln!("doctor took {took:?}; outbound: {:#}", doc["outbound"]);
    doc
}

fn outcome(doc: &Value, port: u16, protocol: &str) -> String {
    doc["outbound"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == port && p["protocol"] == protocol && p["control"] == false)
        .unwrap_or_else(|| panic!("no {port}/{protocol} in {doc:#}"))["outcome"]
        .as_str()
        .expect("outcome")
        .to_owned()
}

#[test]
fn egress_firewall_blocks_443_tcp_and_4500_udp_and_is_a_finding() {
    let lab = lab(true);
    let _server = server(&lab);
    let doc = doctor(&lab);
    let o = &doc["outbound"];
    assert_eq!(o["verdict"], "blocked", "{o:#}");
    assert_eq!(o["server"], lab.addrs().peer.to_string());
    let control = &o["ports"][0];
    assert_eq!(control["control"], true, "{o:#}");
    assert_eq!(control["port"], DIALBACK_PORT);
    assert_eq!(control["outcome"], "answered", "{o:#}");
    assert_eq!(outcome(&doc, 443, "tcp"), "silent");
    assert_eq!(outcome(&doc, 4500, "udp"), "silent");
    assert_eq!(outcome(&doc, 5353, "udp"), "answered");
    assert_eq!(outcome(&doc, 5354, "tcp"), "answered");
    let found: Vec<&Value> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "outbound_blocked")
        .collect();
    assert_eq!(found.len(), 1, "{doc:#}");
    let message = found[0]["message"].as_str().expect("message");
    assert!(
        message.starts_with("outbound connections to 443/tcp, 4500/udp are blocked"),
        "{message}"
    );
    assert!(
        message.contains("7007/tcp, 5353/udp, 5354/tcp answered"),
        "{message}"
    );
    assert_eq!(found[0]["port"], 443);
}

#[test]
fn without_an_egress_firewall_every_port_answers_and_nothing_is_said() {
    let lab = lab(false);
    let _server = server(&lab);
    let doc = doctor(&lab);
    let o = &doc["outbound"];
    assert_eq!(o["verdict"], "open", "{o:#}");
    let ports = o["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), PORTS.len() + 1, "{o:#}");
    for p in ports {
        assert_eq!(p["outcome"], "answered", "{p:#}");
        assert!(p["rtt_ms"].as_u64().is_some(), "{p:#}");
    }
    assert!(
        !codes(&doc).iter().any(|c| c == "outbound_blocked"),
        "{doc:#}"
    );
}

/// 20 % loss each way: three runs on each router. Open ports answer (the
/// check sends UDP again every 200 ms and hedges TCP connects), so nothing is
/// called blocked; the blocked router's two ports stay silent and are named.
#[test]
fn loss_alone_is_never_called_blocked_and_blocking_is_still_found() {
    let runs = 3;
    let open = lab_with_loss(false, 20);
    let server_open = server(&open);
    for run in 0..runs {
        let doc = doctor(&open);
        let o = &doc["outbound"];
        assert_ne!(o["verdict"], "blocked", "run {run}: {o:#}");
        assert!(
            !codes(&doc).iter().any(|c| c == "outbound_blocked"),
            "run {run}: {doc:#}"
        );
        let answered = o["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .filter(|p| p["outcome"] == "answered")
            .count();
        eprintln!("run {run} at 20 % loss, open: {answered} of 5 answered");
    }
    drop(server_open);
    open.down().expect("lab down");

    let blocked = lab_with_loss(true, 20);
    let _server = server(&blocked);
    let mut found = 0;
    for run in 0..runs {
        let doc = doctor(&blocked);
        let o = &doc["outbound"];
        // The control can be lost too: then the check says inconclusive, never
        // "open".
        assert_ne!(o["verdict"], "open", "run {run}: {o:#}");
        assert_eq!(outcome(&doc, 443, "tcp"), "silent", "run {run}");
        assert_eq!(outcome(&doc, 4500, "udp"), "silent", "run {run}");
        if o["verdict"] == "blocked" {
            found += 1;
            assert!(
                codes(&doc).iter().any(|c| c == "outbound_blocked"),
                "run {run}: {doc:#}"
            );
        }
    }
    eprintln!("blocked at 20 % loss: found in {found} of {runs} runs");
    assert_eq!(
        found, runs,
        "the control answered in every run at 20 % loss"
    );
}
