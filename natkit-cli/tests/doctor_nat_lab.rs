//! What `natkit doctor` (no flags, the default STUN servers) says about the NAT
//! type in the NAT lab, the lab DNS pointing default names at lab servers:
//!
//! - hairpinning is tested in the default run: `no_hairpinning` on a router that
//!   does not loop back, nothing with `--hairpin`, nothing behind a symmetric NAT
//!   (where the classifier cannot tell and says so);
//! - the report names the server the type was tested with;
//! - when only a plain server (no second address) answers, the type is
//!   `inconclusive` with a `nat_type_inconclusive` finding naming the servers and
//!   the fix (`--stun` a server that supports RFC 5780).
//!
//! Every document is validated against `docs/doctor.schema.json`; each run's wall
//! time is printed (the default run stays under 3 s). Needs root; fails, never
//! skips, without the lab.

mod doctor_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use doctor_support::{codes, doctor, json, natkit};

use natkit_lab::{Lab, LabBuilder, NatKind, Node, Proto, require_root};
use natkit_stun::DEFAULT_SERVERS;
use serde_json::Value;

const LAB_STUN1: Ipv4Addr = Ipv4Addr::new(88, 77, 66, 10);

fn host(name: &str) -> &str {
    name.rsplit_once(':').expect("host:port").0
}

/// The third default name (RFC 5780) resolves to the lab's stund.
fn lab(nat: NatKind) -> LabBuilder {
    Lab::builder()
        .nat(nat)
        .stund(true)
        .dns([(host(DEFAULT_SERVERS[2].name), LAB_STUN1)])
}

/// `natkit doctor --json` in the LAN host: the validated document, with its
/// text report printed for the record.
fn report(lab: &Lab, what: &str) -> Value {
    let (doc, _, took) = json(lab, &[]);
    let (text, _) = doctor(lab, &[]);
    println!(
        "--- {what}: {took:.1?} (report elapsed_ms {})\n{}",
        doc["elapsed_ms"],
        String::from_utf8_lossy(&text.stdout)
    );
    doc
}

/// The default run finishes within 3 s in the lab.
fn assert_quick(doc: &Value) {
    let ms = doc["elapsed_ms"].as_u64().expect("elapsed_ms");
    assert!(ms < 3000, "the default run took {ms} ms");
}

#[test]
fn lab_doctor_finds_no_hairpinning_and_names_the_server() {
    require_root();
    let lab = lab(NatKind::PortRestricted).build().expect("lab");
    let doc = report(&lab, "port-restricted, no hairpinning");
    let nat = &doc["nat"];
    assert_eq!(nat["legacy_type"], "port_restricted_cone", "{nat:#}");
    assert_eq!(nat["hairpinning"], false, "{nat:#}");
    assert_eq!(nat["tested_with"], format!("{LAB_STUN1}:3478"), "{nat:#}");
    assert_eq!(nat["tested_with_name"], DEFAULT_SERVERS[2].name, "{nat:#}");
    let used = nat["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|s| s["name"] == DEFAULT_SERVERS[2].name)
        .expect("the server used is listed");
    assert_eq!(used["usable_for_behaviour"], true, "{used:#}");
    assert!(
        codes(&doc).contains(&"no_hairpinning".to_owned()),
        "{:?}",
        codes(&doc)
    );
    assert_quick(&doc);
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_is_silent_when_the_router_hairpins() {
    require_root();
    let lab = lab(NatKind::PortRestricted)
        .hairpin(true)
        .build()
        .expect("lab");
    let doc = report(&lab, "port-restricted --hairpin");
    assert_eq!(doc["nat"]["hairpinning"], true, "{:#}", doc["nat"]);
    assert!(!codes(&doc).contains(&"no_hairpinning".to_owned()));
    assert_quick(&doc);
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_says_nothing_of_hairpinning_behind_a_symmetric_nat() {
    require_root();
    let lab = lab(NatKind::Symmetric).build().expect("lab");
    let doc = report(&lab, "symmetric");
    assert_eq!(doc["nat"]["legacy_type"], "symmetric", "{:#}", doc["nat"]);
    assert_eq!(doc["nat"]["hairpinning"], Value::Null, "{:#}", doc["nat"]);
    let codes = codes(&doc);
    assert!(!codes.contains(&"no_hairpinning".to_owned()), "{codes:?}");
    assert!(codes.contains(&"symmetric_nat".to_owned()), "{codes:?}");
    assert_quick(&doc);
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_inconclusive_with_only_a_plain_server_names_the_fix() {
    require_root();
    // Only Google's default name resolves, to a plain natkit STUN server (one
    // address) on its port: nothing can test filtering.
    let google = DEFAULT_SERVERS
        .iter()
        .find(|s| !s.rfc5780)
        .expect("a plain default");
    let port = google.name.rsplit_once(':').expect("host:port").1;
    let lab = Lab::builder()
        .dns([(host(google.name), LAB_STUN1)])
        .build()
        .expect("lab");
    let bind = format!("{LAB_STUN1}:{port}");
    let bin = natkit().display().to_string();
    let mut server = lab
        .spawn(
            Node::Wan,
            &[bin.as_str(), "stun-server", "--bind", bind.as_str()],
        )
        .expect("stun-server");
    let port: u16 = port.parse().expect("port");
    lab.wait_listening(Node::Wan, Proto::Udp, port, Duration::from_secs(10))
        .expect("stun-server listens");
    let doc = report(&lab, "only a plain STUN server");
    assert_eq!(
        doc["nat"]["legacy_type"], "inconclusive",
        "{:#}",
        doc["nat"]
    );
    let finding = doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == "nat_type_inconclusive")
        .unwrap_or_else(|| panic!("no nat_type_inconclusive: {:?}", codes(&doc)));
    let message = finding["message"].as_str().expect("message");
    assert!(
        message.contains("no STUN server that can test filtering"),
        "{message}"
    );
    assert!(message.contains(google.name), "{message}");
    let fix = finding["fix"].as_str().expect("fix");
    assert!(fix.contains("--stun") && fix.contains("RFC 5780"), "{fix}");
    assert!(!codes(&doc).contains(&"no_internet".to_owned()));
    server.kill().expect("stop stun-server");
    lab.down().expect("lab down");
}
