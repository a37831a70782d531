//! The doctor's double-NAT check without the router's help, in the NAT lab
//! (root only; fails, never skips, without it).
//!
//! The doctor runs as a user runs it: its default configuration, no STUN server
//! named. The lab's DNS maps one RFC 5780 default name (the third) to the lab's
//! stund and answers NXDOMAIN for the rest; the home router speaks none of UPnP,
//! NAT-PMP or PCP.
//! - Behind the lab's carrier-grade NAT (100.64.0.0/10): a `double_nat`
//!   finding, the carrier-grade NAT named, the hops as evidence, the fix naming
//!   what works (bridge mode, a public address, a relay).
//! - Behind one NAT: no `double_nat`, the hops say single NAT.
//!
//! Every report is validated against `docs/doctor.schema.json`.

use std::net::Ipv4Addr;

mod support;

use natkit_lab::{Lab, Node, require_root};
use natkit_stun::DEFAULT_SERVERS;
use serde_json::Value;

/// The helper's lines: the text report's, then the JSON document's.
const MARK: &str = "NATKIT_DOCTOR ";
const TEXT: &str = "text ";
const JSON: &str = "json ";
/// natlab.sh's STUN1 (stund); the DNS entry is written before the lab exists.
const LAB_STUN1: Ipv4Addr = Ipv4Addr::new(88, 77, 66, 10);

#[test]
#[ignore = "helper: the doctor with its defaults in the LAN, run by the lab_hops tests"]
fn lan_doctor_defaults() {
    natkit_lab::helper_addrs("lan_doctor_defaults")
        .expect("lab env")
        .expect("lan_doctor_defaults runs only inside a lab, started by the lab_hops tests");
    support::print_runs(&natkit_doctor::Config::default(), MARK, 1);
}

/// Builds the lab with the third default name resolving to stund, runs the
/// doctor in the LAN; the report (schema-checked) and the run's ms.
fn doctor(double_nat: bool) -> (Value, f64) {
    let entry = DEFAULT_SERVERS[2];
    assert!(entry.rfc5780, "{entry:?}");
    let (host, port) = entry.name.rsplit_once(':').expect("host:port");
    assert_eq!(port, "3478", "the lab's stund listens on 3478");
    let lab = Lab::builder()
        .double_nat(double_nat)
        .stund(true)
        .dns([(host, LAB_STUN1)])
        .build()
        .expect("lab");
    assert_eq!(lab.addrs().stun1, LAB_STUN1);
    assert_eq!(
        lab.miniupnpd_pid(),
        None,
        "no mapping protocol on the router"
    );
    let mut json = Vec::new();
    for line in lab.helper_lines(Node::Lan, "lan_doctor_defaults", MARK) {
        match (line.strip_prefix(TEXT), line.strip_prefix(JSON)) {
            (Some(text), _) => println!("{text}"),
            (None, Some(doc)) => json.push(doc.to_owned()),
            (None, None) => panic!("unexpected helper line {line:?}"),
        }
    }
    let [line] = json.as_slice() else {
        panic!("expected one report: {json:?}");
    };
    let v: Value = serde_json::from_str(line).expect("json");
    let report = v["report"].clone();
    support::assert_schema(&report);
    lab.down().expect("lab down");
    (report, v["ms"].as_f64().expect("ms"))
}

fn codes(report: &Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code"))
        .collect()
}

#[test]
fn lab_doctor_defaults_find_carrier_grade_nat_without_mapping_protocol() {
    require_root();
    let (report, ms) = doctor(true);
    println!("doctor, defaults, double NAT, no mapping protocol: {ms:.0} ms");
    let hops = &report["hops"];
    assert_eq!(hops["verdict"], "double_nat", "{hops:#}");
    assert_eq!(hops["upstream"], "100.64.0.1", "{hops:#}");
    assert_eq!(hops["carrier_grade"], true, "{hops:#}");
    assert_eq!(hops["target"], LAB_STUN1.to_string(), "{hops:#}");
    let path: Vec<&str> = hops["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .map(|h| h["address"].as_str().expect("address"))
        .collect();
    assert_eq!(path, ["192.168.77.1", "100.64.0.1", "88.77.66.10"]);
    assert_eq!(report["double_nat"], true, "{report:#}");
    let evidence = report["double_nat_evidence"].to_string();
    assert!(evidence.contains("carrier-grade NAT"), "{evidence}");
    assert!(evidence.contains("100.64.0.1"), "{evidence}");
    let codes = codes(&report);
    assert!(codes.contains(&"double_nat"), "{codes:?}");
    let finding = support::finding(&report, "double_nat").expect("double_nat finding");
    let fix = finding["fix"].as_str().expect("fix");
    for works in ["bridge", "public address", "relay"] {
        assert!(fix.contains(works), "the fix does not name {works}: {fix}");
    }
    // Forwarding by hand on this router cannot work behind the second NAT: the
    // router's missing protocols are not the fix.
    let no_protocol = support::finding(&report, "no_port_mapping_protocol")
        .expect("no_port_mapping_protocol finding");
    let fix = no_protocol["fix"].as_str().expect("fix");
    assert!(fix.contains("see double_nat"), "{fix}");
    // The NAT type still comes from the one default name that resolves.
    assert_eq!(
        report["nat"]["legacy_type"], "port_restricted_cone",
        "{:#}",
        report["nat"]
    );
}

#[test]
fn lab_doctor_defaults_no_double_nat_behind_one_nat() {
    require_root();
    let (report, ms) = doctor(false);
    println!("doctor, defaults, single NAT, no mapping protocol: {ms:.0} ms");
    let hops = &report["hops"];
    assert_eq!(hops["verdict"], "single_nat", "{hops:#}");
    assert_eq!(hops["upstream"], Value::Null);
    assert_eq!(report["double_nat"], false, "{report:#}");
    assert!(!codes(&report).contains(&"double_nat"));
    assert_eq!(
        report["nat"]["legacy_type"], "port_restricted_cone",
        "{:#}",
        report["nat"]
    );
}
