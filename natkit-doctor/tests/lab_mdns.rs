//! The doctor's duplicate local hostname check in the NAT lab (root only;
//! fails, never skips, without it).
//!
//! The lab's two LAN hosts share the machine's UTS namespace (`ip netns exec`
//! keeps the host name), so both are "the same computer name", as two Macs
//! with one Local Hostname would be. A small mDNS responder in the second LAN
//! host (192.168.77.3), written here independently of the doctor's codec,
//! answers A queries for one name with its own address, by unicast to the
//! query's source port (RFC 6762 §6.7, legacy unicast).
//! - It claims `<hostname>.local`: a `duplicate_hostname` finding naming
//!   192.168.77.3.
//! - It claims another name: it is there and answers, but not for this host's
//!   name: no finding, no claim.
//! - It claims `<hostname>.local` but answers only to the group (224.0.0.251:5353,
//!   id 0, no question, as RFC 6762 §6 has responders answer a query from port
//!   5353, and as some do for every query): the doctor hears it on its group
//!   listener, a `duplicate_hostname` finding heard `via` multicast.
//! - With `--dialback` and 5353/udp among the ports, the reachability check
//!   listens on 5353/udp itself: the group listener stays off
//!   (`group_listener: false`) and 5353/udp is reachable from outside.
//!
//! Every report is validated against `docs/doctor.schema.json`.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use natkit_lab::{Lab, LabChild, Node, Proto, require_root};
use serde_json::Value;

const MARK: &str = "NATKIT_MDNS ";
/// The name the lan2 responder claims (without `.local`).
const CLAIM_ENV: &str = "NATKIT_MDNS_CLAIM";
/// `multicast`: the responder answers only to the group.
const MODE_ENV: &str = "NATKIT_MDNS_MODE";
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);

/// The machine's host name as mDNS announces it: the first label, lower case.
fn host_label() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    raw.trim()
        .split('.')
        .next()
        .expect("a label")
        .to_ascii_lowercase()
}

/// The question's name (uncompressed, as a query carries it), lower case, and
/// the offset just past the question's type and class; `None` if malformed.
fn question(m: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*m.get(at)?);
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(m.get(at + 1..at + 1 + len)?).to_ascii_lowercase());
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*m.get(at + 1)?, *m.get(at + 2)?]);
    m.get(at + 4)?;
    Some((labels.join("."), qtype, at + 5))
}

#[test]
#[ignore = "helper: an mDNS responder in lan2, run by the lab_mdns tests"]
fn lan2_mdns_responder() {
    let addrs = natkit_lab::helper_addrs("lan2_mdns_responder")
        .expect("lab env")
        .expect("lan2_mdns_responder runs only inside a lab, started by the lab_mdns tests");
    let me = addrs.lan2.expect("the lab has lan2");
    let claim = format!(
        "{}.local",
        std::env::var(CLAIM_ENV).expect("the name to claim")
    );
    let to_group = std::env::var(MODE_ENV).is_ok_and(|m| m == "multicast");
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353)).expect("bind 5353");
    sock.join_multicast_v4(&GROUP, &me)
        .expect("join 224.0.0.251");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    println!("{MARK}ready {me} {claim}");
    let end = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 1500];
    while Instant::now() < end {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let m = &buf[..n];
        // Queries only (QR clear), for the claimed name, type A.
        if n < 12 || m[2] & 0x80 != 0 {
            continue;
        }
        let Some((name, qtype, end_q)) = question(m) else {
            continue;
        };
        println!("{MARK}query {name} type {qtype} from {from}");
        if name != claim || qtype != 1 {
            continue;
        }
        let r = if to_group {
            // Id 0, no question, one answer with the name spelled out, the
            // cache-flush bit set (RFC 6762 §6, §10.2), to the group.
            let mut r = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
            for label in claim.split('.') {
                r.push(u8::try_from(label.len()).expect("a label"));
                r.extend_from_slice(label.as_bytes());
            }
            r.extend_from_slice(&[0, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4]);
            r
        } else {
            // The id and the question echoed (legacy unicast), one answer: a
            // pointer to the question's name, type A, class IN, TTL 10.
            let mut r = m[..2].to_vec();
            r.extend_from_slice(&[0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
            r.extend_from_slice(&m[12..end_q]);
            r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 10, 0, 4]);
            r
        };
        let mut r = r;
        r.extend_from_slice(&me.octets());
        let to = if to_group {
            std::net::SocketAddr::from((GROUP, 5353))
        } else {
            from
        };
        sock.send_to(&r, to).expect("answer");
        println!("{MARK}answered {from} to {to}");
    }
}

#[test]
#[ignore = "helper: the doctor in the LAN, run by the lab_mdns tests"]
fn lan_doctor_mdns() {
    let addrs = natkit_lab::helper_addrs("lan_doctor_mdns")
        .expect("lab env")
        .expect("lan_doctor_mdns runs only inside a lab, started by the lab_mdns tests");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config =
        natkit_doctor::Config::default().with_stun_servers([format!("{}:3478", addrs.stun1)]);
    let started = Instant::now();
    let report = rt.block_on(natkit_doctor::diagnose(config));
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let text = natkit_doctor::render::text(&report, natkit_doctor::render::Style::PLAIN);
    for line in text.lines() {
        println!("{MARK}text {line}");
    }
    println!(
        "{MARK}json {}",
        serde_json::json!({ "ms": ms, "report": natkit_doctor::render::json(&report) })
    );
    rt.shutdown_background();
}

/// Builds a lab with lan2, starts the responder claiming `claim`, runs the
/// doctor in the LAN; the report (schema-checked), its text and the
/// responder's output.
fn doctor(claim: &str, mode: &str) -> (Value, String, String) {
    let lab = Lab::builder().lan2(true).stund(true).build().expect("lab");
    let mut cmd = lab
        .test_helper(Node::Lan2, "lan2_mdns_responder")
        .expect("helper");
    cmd.env(CLAIM_ENV, claim)
        .env(MODE_ENV, mode)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut responder = LabChild::spawn(&mut cmd).expect("responder");
    lab.wait_listening(Node::Lan2, Proto::Udp, 5353, Duration::from_secs(10))
        .expect("the responder listens");
    let mut json = Vec::new();
    let mut text = String::new();
    for line in lab.helper_lines(Node::Lan, "lan_doctor_mdns", MARK) {
        match (line.strip_prefix("text "), line.strip_prefix("json ")) {
            (Some(t), _) => {
                println!("{t}");
                text.push_str(t);
                text.push('\n');
            }
            (None, Some(doc)) => json.push(doc.to_owned()),
            (None, None) => panic!("unexpected helper line {line:?}"),
        }
    }
    responder.kill().expect("kill the responder");
    let out = responder
        .wait_with_output_timeout(Duration::from_secs(5))
        .expect("responder output");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("responder: {said}");
    let [line] = json.as_slice() else {
        panic!("expected one report: {json:?}");
    };
    let v: Value = serde_json::from_str(line).expect("json");
    let report = v["report"].clone();
    let schema: Value = serde_json::from_str(natkit_doctor::SCHEMA).expect("schema json");
    if let Err(e) = jsonschema::validate(&schema, &report) {
        panic!(
            "report fails the schema: {e} at {}\n{report:#}",
            e.instance_path()
        );
    }
    println!("doctor: {:.0} ms", v["ms"].as_f64().expect("ms"));
    lab.down().expect("lab down");
    (report, text, said)
}

fn finding<'a>(report: &'a Value, code: &str) -> Option<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
}

#[test]
fn lab_doctor_finds_another_host_claiming_this_name() {
    require_root();
    let label = host_label();
    let (report, text, said) = doctor(&label, "unicast");
    let name = format!("{label}.local");
    assert!(
        text.contains(&format!("{name}: also answered by 192.168.77.3")),
        "{text}"
    );
    assert!(said.contains(&format!("query {name} type 1")), "{said}");
    assert!(said.contains("answered 192.168.77.2:"), "{said}");
    let l = &report["local_name"];
    assert_eq!(l["checked"], true, "{l:#}");
    assert_eq!(l["group_listener"], true, "{l:#}");
    assert_eq!(l["name"], name.as_str(), "{l:#}");
    assert_eq!(
        l["claims"],
        serde_json::json!([{
            "from": "192.168.77.3",
            "addresses": ["192.168.77.3"],
            "via": ["unicast"]
        }]),
        "{l:#}"
    );
    let f = finding(&report, "duplicate_hostname").expect("duplicate_hostname finding");
    let message = f["message"].as_str().expect("message");
    assert!(message.contains("192.168.77.3"), "{message}");
    assert!(message.contains(&name), "{message}");
}

#[test]
fn lab_doctor_silent_when_no_other_host_claims_this_name() {
    require_root();
    let label = host_label();
    let other = format!("not-{label}");
    let (report, text, said) = doctor(&other, "unicast");
    assert!(
        text.contains(&format!("{label}.local: no other device answers for it")),
        "{text}"
    );
    // The responder heard the doctor's queries: the path works, the name differs.
    assert!(
        said.contains(&format!("query {label}.local type 1")),
        "{said}"
    );
    assert!(!said.contains("answered"), "{said}");
    let l = &report["local_name"];
    assert_eq!(l["checked"], true, "{l:#}");
    assert_eq!(l["claims"], serde_json::json!([]), "{l:#}");
    assert!(
        finding(&report, "duplicate_hostname").is_none(),
        "{report:#}"
    );
}

#[test]
fn lab_doctor_hears_a_claim_sent_only_to_the_group() {
    require_root();
    let label = host_label();
    let (report, text, said) = doctor(&label, "multicast");
    let name = format!("{label}.local");
    assert!(
        text.contains(&format!("{name}: also answered by 192.168.77.3")),
        "{text}"
    );
    // The answers went to the group, never to the doctor's query port.
    assert!(said.contains("to 224.0.0.251:5353"), "{said}");
    let l = &report["local_name"];
    assert_eq!(l["group_listener"], true, "{l:#}");
    assert_eq!(
        l["claims"],
        serde_json::json!([{
            "from": "192.168.77.3",
            "addresses": ["192.168.77.3"],
            "via": ["multicast"]
        }]),
        "{l:#}"
    );
    assert!(
        finding(&report, "duplicate_hostname").is_some(),
        "{report:#}"
    );
}

/// The group listener must not take the reachability check's datagrams: with
/// 5353/udp checked from outside, it stays off and 5353/udp is reachable
/// through the doctor's UPnP trial mapping.
#[test]
fn lab_doctor_leaves_5353_to_the_dialback_check() {
    require_root();
    let lab = Lab::builder()
        .miniupnpd(true)
        .stund(true)
        .build()
        .expect("lab");
    let a = *lab.addrs();
    let bind = format!("{}:7007", a.peer);
    let mut server = lab.command(Node::Wan, natkit_lab::natkit_bin());
    server
        .args(["dialback-server", "--bind", &bind, "--allow-private"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _server = LabChild::spawn(&mut server).expect("dial-back server");
    lab.wait_listening(Node::Wan, Proto::Tcp, 7007, Duration::from_secs(10))
        .expect("the dial-back server listens");
    let out = lab
        .command(Node::Lan, natkit_lab::natkit_bin())
        .args(["doctor", "--json", "--ports", "5353/udp"])
        .arg(format!("--stun={}:3478", a.stun1))
        .arg(format!("--dialback={bind}"))
        .output()
        .expect("natkit doctor");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", natkit_lab::dump_output(&out)));
    let schema: Value = serde_json::from_str(natkit_doctor::SCHEMA).expect("schema json");
    if let Err(e) = jsonschema::validate(&schema, &report) {
        panic!("report fails the schema: {e} at {}", e.instance_path());
    }
    let l = &report["local_name"];
    assert_eq!(l["checked"], true, "{l:#}");
    assert_eq!(l["group_listener"], false, "{l:#}");
    let port = &report["ports"][0];
    assert_eq!(port["port"], 5353, "{port:#}");
    assert_eq!(port["reachability"], "reachable", "{port:#}");
    lab.down().expect("lab down");
}
