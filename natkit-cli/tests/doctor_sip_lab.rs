//! The doctor's SIP ALG check in the NAT lab: `natkit dialback-server --sip-echo`
//! in the wan namespace, `natkit doctor --dialback` in the LAN host, and the
//! router with the kernel's own SIP ALG (nf_conntrack_sip + nf_nat_sip, `natlab.sh
//! up --sip-alg`) on and off.
//!
//! - ALG on: the OPTIONS comes back with Via rewritten from the LAN host's
//!   address to the router's public one, over UDP and TCP: a `sip_alg` finding
//!   naming the header and both values.
//! - ALG off (the same router otherwise): everything comes back byte for byte,
//!   `not_seen`, no finding.
//! - A router that drops SIP (an nft rule added in the test: UDP and TCP to 5060
//!   dropped on forward) while the control echo passes: `drops`, a `sip_alg`
//!   finding naming the silent leg.
//!
//! Every `--json` document is validated against `docs/doctor.schema.json`. Needs
//! root and the lab's packages; fails (never skips) without them.

mod doctor_support;

use std::process::Stdio;
use std::time::Duration;

use doctor_support::{codes, json, natkit};

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use serde_json::Value;

const DIALBACK_PORT: u16 = 7007;
const SIP_PORT: u16 = 5060;

/// The lab: a port-restricted NAT, stund for the NAT type, the SIP ALG on or off.
fn lab(sip_alg: bool) -> Lab {
    require_root();
    Lab::builder()
        .nat(NatKind::PortRestricted)
        .stund(true)
        .sip_alg(sip_alg)
        .build()
        .expect("lab up")
}

/// `natkit dialback-server --sip-echo` on PEER in wan, waited for on every port.
fn server(lab: &Lab) -> LabChild {
    let bind = format!("{}:{DIALBACK_PORT}", lab.addrs().peer);
    let mut cmd = lab.command(Node::Wan, natkit());
    cmd.args(["dialback-server", "--bind", &bind, "--sip-echo"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit dialback-server");
    for (proto, port) in [
        (Proto::Tcp, DIALBACK_PORT),
        (Proto::Udp, DIALBACK_PORT),
        (Proto::Udp, SIP_PORT),
        (Proto::Tcp, SIP_PORT),
    ] {
        lab.wait_listening(Node::Wan, proto, port, Duration::from_secs(10))
            .expect("the dial-back server and its SIP echo listen");
    }
    child
}

/// `natkit doctor --json --dialback PEER:7007` in the LAN host.
fn doctor(lab: &Lab) -> Value {
    let a = lab.addrs();
    let stun = format!("{}:3478", a.stun1);
    let dialback = format!("{}:{DIALBACK_PORT}", a.peer);
    let (doc, _, took) = json(
        lab,
        &[
            "--stun",
            &stun,
            "--ports",
            "40000/tcp",
            "--dialback",
            &dialback,
        ],
    );
    eprintln!("doctor took {took:?}");
    doc
}

fn leg<'a>(doc: &'a Value, transport: &str, role: &str) -> &'a Value {
    doc["sip_alg"]["legs"]
        .as_array()
        .expect("legs")
        .iter()
        .find(|l| l["transport"] == transport && l["role"] == role)
        .unwrap_or_else(|| panic!("no {transport} {role} leg in {doc:#}"))
}

fn sip_findings(doc: &Value) -> Vec<&Value> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["code"] == "sip_alg")
        .collect()
}

#[test]
fn kernel_sip_alg_rewrites_via_and_is_a_finding() {
    let lab = lab(true);
    let _server = server(&lab);
    let doc = doctor(&lab);
    let a = *lab.addrs();
    let sip = &doc["sip_alg"];
    assert_eq!(sip["verdict"], "rewrites", "{sip:#}");
    assert_eq!(sip["server"], format!("{}:{SIP_PORT}", a.peer));
    assert_eq!(leg(&doc, "udp", "control")["outcome"], "intact", "{sip:#}");
    for transport in ["udp", "tcp"] {
        let l = leg(&doc, transport, "sip");
        assert_eq!(l["outcome"], "changed", "{l:#}");
        let local = l["local"].as_str().expect("local");
        assert!(local.starts_with(&format!("{}:", a.lan)), "{local}");
        let port = local.rsplit(':').next().expect("port");
        let via = l["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .find(|c| c["part"] == "Via")
            .unwrap_or_else(|| panic!("Via not among the changes: {l:#}"));
        // The private address went out; the router's public one came back.
        let sent = via["sent"].as_str().expect("sent");
        let received = via["received"].as_str().expect("received");
        assert!(sent.contains(&format!("{}:{port}", a.lan)), "{sent}");
        assert!(received.contains(&a.public.to_string()), "{received}");
        assert!(!received.contains(&a.lan.to_string()), "{received}");
    }
    let found = sip_findings(&doc);
    assert_eq!(found.len(), 1, "{doc:#}");
    let message = found[0]["message"].as_str().expect("message");
    assert!(message.contains("Via"), "{message}");
    assert!(message.contains(&a.lan.to_string()), "{message}");
    assert!(message.contains(&a.public.to_string()), "{message}");
    assert_eq!(found[0]["port"], SIP_PORT);
    assert!(found[0]["fix"].as_str().expect("fix").contains("SIP ALG"));
}

#[test]
fn without_the_alg_sip_comes_back_intact_and_nothing_is_said() {
    let lab = lab(false);
    let _server = server(&lab);
    let doc = doctor(&lab);
    let sip = &doc["sip_alg"];
    assert_eq!(sip["verdict"], "not_seen", "{sip:#}");
    for l in sip["legs"].as_array().expect("legs") {
        assert_eq!(l["outcome"], "intact", "{l:#}");
        assert_eq!(l["changes"].as_array().map(Vec::len), Some(0));
    }
    assert!(!codes(&doc).iter().any(|c| c == "sip_alg"), "{doc:#}");
}

/// "SIP dropping": the router drops forwarded SIP (UDP and TCP to 5060) while
/// the rest of UDP, the control echo on 7007 included, passes.
#[test]
fn a_router_that_drops_sip_is_a_finding() {
    let lab = lab(false);
    let ruleset = "table inet sip_drop {
        chain forward {
            type filter hook forward priority filter - 10; policy accept;
            udp dport 5060 counter drop
            tcp dport 5060 counter drop
        }
    }";
    lab.exec_ok(Node::Rtr, &["nft", ruleset])
        .expect("the router drops SIP");
    let _server = server(&lab);
    let doc = doctor(&lab);
    let sip = &doc["sip_alg"];
    assert_eq!(sip["verdict"], "drops", "{sip:#}");
    assert_eq!(leg(&doc, "udp", "control")["outcome"], "intact", "{sip:#}");
    assert_eq!(leg(&doc, "udp", "sip")["outcome"], "silent", "{sip:#}");
    // TCP's SYN is dropped too: no handshake, which alone would prove nothing.
    assert_eq!(
        leg(&doc, "tcp", "sip")["outcome"],
        "no_handshake",
        "{sip:#}"
    );
    let found = sip_findings(&doc);
    assert_eq!(found.len(), 1, "{doc:#}");
    let message = found[0]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("{}:5060/udp (silent)", lab.addrs().peer)),
        "{message}"
    );
    assert!(message.contains("came back unchanged"), "{message}");
}
