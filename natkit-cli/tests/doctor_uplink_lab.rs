//! `natkit doctor` on a network with a default route but no internet, run the way a
//! user runs it (no flags, the default STUN servers), in the NAT lab.
//!
//! - The router keeps its uplink but everything beyond it is dropped (an ISP
//!   outage): the router still speaks UPnP and NAT-PMP and thinks it is connected.
//!   `no_internet` leads the report and the exit status is 1.
//! - The router's uplink is down and it speaks no mapping protocol: `no_internet`
//!   leads, before `no_port_mapping_protocol`.
//! - Only the DNS is dead (`--dns-silent`) while a STUN server given by address
//!   answers: `dns_failure`, not `no_internet`.
//! - The lab's internet and DNS work: neither finding, exit 0.
//!
//! Every `--json` document is validated against `docs/doctor.schema.json`. The text
//! runs check the log and report lines on pipes: no ANSI escapes, and no
//! "uncategorized" error; on a pseudo-terminal (`script`), colour only without
//! `NO_COLOR`.
//!
//! Needs root and the lab's packages; fails (never skips) without them.

mod doctor_support;

use std::process::Output;
use std::time::Duration;

use doctor_support::{codes, doctor, json, natkit};

use natkit_lab::{Lab, Link, Node, require_root};
use natkit_stun::DEFAULT_SERVERS;
use serde_json::Value;

/// The third default name (an RFC 5780 one) resolves to the lab's stund.
fn lab_with_dns() -> natkit_lab::LabBuilder {
    let (host, _) = DEFAULT_SERVERS[2].name.rsplit_once(':').expect("host:port");
    Lab::builder()
        .stund(true)
        .dns([(host, std::net::Ipv4Addr::new(88, 77, 66, 10))])
}

/// The text report on pipes: printed for the record, no escape anywhere, error
/// lines in words.
fn text_on_pipes(lab: &Lab, args: &[&str]) -> Output {
    let (out, took) = doctor(lab, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "$ natkit doctor {}  ({took:.1?})\n{stdout}{stderr}",
        args.join(" ")
    );
    assert!(
        !out.stdout.contains(&0x1b),
        "ESC on a piped stdout: {stdout:?}"
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "ESC on a piped stderr: {stderr:?}"
    );
    assert!(
        !stderr.contains("uncategorized") && !stdout.contains("uncategorized"),
        "an error without its cause in words:\n{stdout}{stderr}"
    );
    out
}

fn assert_no_internet_leads(doc: &Value, out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(out)
    );
    assert_eq!(
        doc["internet"]["verdict"], "no_internet",
        "{:#}",
        doc["internet"]
    );
    let codes = codes(doc);
    assert_eq!(
        codes.first().map(String::as_str),
        Some("no_internet"),
        "{codes:?}"
    );
    assert!(!codes.contains(&"dns_failure".to_owned()), "{codes:?}");
    // What the dead uplink explains is marked as following from it.
    for f in doc["findings"].as_array().expect("findings") {
        if matches!(
            f["code"].as_str(),
            Some("udp_blocked" | "igd_not_connected" | "mapping_protocol_failing")
        ) {
            assert_eq!(f["caused_by"], "no_internet", "{f:#}");
        }
    }
}

#[test]
fn lab_doctor_dead_upstream_behind_upnp_router_is_no_internet() {
    require_root();
    let lab = lab_with_dns().miniupnpd(true).build().expect("lab");
    // Everything that reaches the internet dies there: the router's own link
    // stays up, so its UPnP IGD still says "Connected".
    lab.exec_ok(
        Node::Wan,
        &[
            "nft",
            "add table inet outage; add chain inet outage pre { type filter hook \
             prerouting priority -300; policy drop; }",
        ],
    )
    .expect("nft");
    let (doc, out, took) = json(&lab, &[]);
    println!(
        "dead upstream, UPnP router: {took:.1?}, findings {:?}",
        codes(&doc)
    );
    assert_no_internet_leads(&doc, &out);
    assert_eq!(doc["mapping_protocols"]["upnp"]["status"], "available");
    let text = text_on_pipes(&lab, &[]);
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(!stdout.contains("Findings: none"), "{stdout}");
    assert!(stdout.contains("✗ no_internet: "), "{stdout}");
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_dead_uplink_without_mapping_protocol_is_no_internet_first() {
    require_root();
    let lab = lab_with_dns().build().expect("lab");
    lab.set_link(Link::RtrWan, false).expect("link down");
    let (doc, out, took) = json(&lab, &[]);
    println!(
        "dead uplink, no mapping protocol: {took:.1?}, findings {:?}",
        codes(&doc)
    );
    assert_no_internet_leads(&doc, &out);
    let codes = codes(&doc);
    // The router's missing protocols are still reported, but not as the first thing
    // to fix.
    assert!(
        codes.contains(&"no_port_mapping_protocol".to_owned()),
        "{codes:?}"
    );
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_dead_dns_with_answering_stun_is_dns_failure() {
    let lab = Lab::builder().stund(true).dns_silent().up();
    let by_ip = format!("{}:3478", lab.addrs().stun1);
    let args = ["--stun", DEFAULT_SERVERS[2].name, "--stun", by_ip.as_str()];
    let (doc, out, took) = json(&lab, &args);
    println!(
        "silent DNS, STUN by address: {took:.1?}, findings {:?}",
        codes(&doc)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert_eq!(
        doc["internet"]["verdict"], "dns_failure",
        "{:#}",
        doc["internet"]
    );
    let codes = codes(&doc);
    assert_eq!(
        codes.first().map(String::as_str),
        Some("dns_failure"),
        "{codes:?}"
    );
    assert!(!codes.contains(&"no_internet".to_owned()), "{codes:?}");
    assert!(doc["stun_external_address"].is_string(), "{doc:#}");
    let out = text_on_pipes(&lab, &args);
    // The name that did not resolve is grouped by its typed reason, not quoted
    // as an error line.
    let host = DEFAULT_SERVERS[2]
        .name
        .rsplit_once(':')
        .map_or(DEFAULT_SERVERS[2].name, |(h, _)| h);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("not resolved (") && l.trim_end().ends_with(host)),
        "{stdout}"
    );
    assert!(!stdout.contains("cannot resolve"), "{stdout}");
    assert!(
        stdout.contains("not asked: 1 server(s) whose names did not resolve (above)"),
        "{stdout}"
    );
    lab.down().expect("lab down");
}

#[test]
fn lab_doctor_working_internet_has_no_uplink_finding() {
    require_root();
    let lab = lab_with_dns().miniupnpd(true).build().expect("lab");
    let (doc, out, took) = json(&lab, &[]);
    println!("working internet: {took:.1?}, findings {:?}", codes(&doc));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert_eq!(
        doc["internet"]["verdict"], "working",
        "{:#}",
        doc["internet"]
    );
    let codes = codes(&doc);
    for code in ["no_internet", "dns_failure", "udp_blocked"] {
        assert!(!codes.contains(&code.to_owned()), "{codes:?}");
    }
    text_on_pipes(&lab, &[]);
    // On a terminal the report has colour, with NO_COLOR none. `script` gives the
    // doctor a pseudo-terminal for stdout; stderr goes to a file (no spinner).
    let bin = natkit().display().to_string();
    for (no_color, want_esc) in [(false, true), (true, false)] {
        let env = if no_color { "NO_COLOR=1 " } else { "" };
        let cmd = format!("{env}{bin} doctor 2>/dev/null");
        let out = lab
            .exec_timeout(
                Node::Lan,
                &["script", "-qec", cmd.as_str(), "/dev/null"],
                Duration::from_secs(60),
            )
            .expect("script");
        assert_eq!(
            out.stdout.contains(&0x1b),
            want_esc,
            "NO_COLOR={no_color}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    lab.down().expect("lab down");
}
