//! The doctor's bandwidth check in the NAT lab: `natkit dialback-server
//! --bandwidth` in the wan namespace, `natkit doctor --dialback` in the LAN
//! host, and a router that forwards at most 200 kbit/s each way (`natlab.sh up
//! --rate-limit-kbps 200`), or no limit.
//!
//! - Limited: both ways measure under 300 kbit/s (and above 0): a
//!   `low_bandwidth` finding with the figures.
//! - Unlimited (the same router otherwise): both ways far above 300 kbit/s,
//!   no finding.
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

fn lab(kbps: u32) -> Lab {
    require_root();
    Lab::builder()
        .nat(NatKind::PortRestricted)
        .stund(true)
        .rate_limit_kbps(kbps)
        .build()
        .expect("lab up")
}

fn server(lab: &Lab) -> LabChild {
    let bind = format!("{}:{DIALBACK_PORT}", lab.addrs().peer);
    let mut cmd = lab.command(Node::Wan, natkit());
    cmd.args(["dialback-server", "--bind", &bind, "--bandwidth"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit dialback-server");
    for port in [DIALBACK_PORT, DIALBACK_PORT + 1] {
        lab.wait_listening(Node::Wan, Proto::Tcp, port, Duration::from_secs(10))
            .expect("the dial-back server and its bandwidth port listen");
    }
    child
}

/// The doctor's `bandwidth` part, with the down and up figures.
fn measure(lab: &Lab) -> (Value, u64, u64) {
    let a = lab.addrs();
    let args = [
        format!("--stun={}:3478", a.stun1),
        "--ports=40000/tcp".to_owned(),
        format!("--dialback={}:{DIALBACK_PORT}", a.peer),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (doc, _, took) = json(lab, &args);
    let b = &doc["bandwidth"];
    eprintln!("doctor took {took:?}; bandwidth: {b}");
    assert_eq!(b["server"], format!("{}:{}", a.peer, DIALBACK_PORT + 1));
    let kbps = |way: &str| {
        b[way]["kbps"]
            .as_u64()
            .unwrap_or_else(|| panic!("{way} not measured: {b:#}"))
    };
    let (down, up) = (kbps("down"), kbps("up"));
    (doc, down, up)
}

#[test]
fn a_200_kbps_uplink_measures_under_300_and_is_a_finding() {
    let lab = lab(200);
    let _server = server(&lab);
    let (doc, down, up) = measure(&lab);
    for (way, k) in [("down", down), ("up", up)] {
        assert!(
            k > 0 && k < 300,
            "{way} {k} kbit/s through a 200 kbit/s limit"
        );
    }
    let found: Vec<&Value> = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "low_bandwidth")
        .collect();
    assert_eq!(found.len(), 1, "{doc:#}");
    let message = found[0]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("down {down} kbit/s"))
            && message.contains(&format!("up {up} kbit/s")),
        "{message}"
    );
}

#[test]
fn without_a_limit_both_ways_are_fast_and_nothing_is_said() {
    let lab = lab(0);
    let _server = server(&lab);
    let (doc, down, up) = measure(&lab);
    for (way, k) in [("down", down), ("up", up)] {
        assert!(k > 1000, "{way} {k} kbit/s without a limit");
    }
    assert!(!codes(&doc).iter().any(|c| c == "low_bandwidth"), "{doc:#}");
}
