//! The doctor in the NAT lab: `natkit doctor` (the binary `cargo install
//! --path natkit-cli` installs) runs inside the lab's LAN namespace against real
//! miniupnpd and stund, and must diagnose each topology correctly. Every `--json` document is validated against
//! `docs/doctor.schema.json`, and afterwards the router must hold no mapping
//! of ours.
//!
//! Needs root and the lab's packages; fails (never skips) without them. Cargo
//! builds the `natkit` binary for this crate's tests.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use serde_json::Value;

/// The dial-back server's control port in the wan namespace.
const DIALBACK_PORT: u16 = 7007;

fn natkit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_natkit"))
}

fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(include_str!("../../docs/doctor.schema.json")).expect("schema");
        jsonschema::draft202012::new(&schema).expect("the schema is a valid 2020-12 schema")
    })
}

/// Parses the doctor's stdout as one JSON document and validates it.
fn valid_json(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            natkit_lab::dump_output(out)
        )
    });
    let errors: Vec<String> = validator()
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}\n{doc:#}");
    doc
}

fn stun_args(lab: &Lab) -> Vec<String> {
    let a = lab.addrs();
    vec![
        "--stun".into(),
        format!("{}:3478", a.stun1),
        "--stun".into(),
        format!("{}:3478", a.stun2),
    ]
}

/// Runs the doctor in the LAN host with `args` (plus the lab's STUN servers).
fn doctor(lab: &Lab, args: &[&str]) -> Output {
    let mut cmd = lab.command(Node::Lan, natkit());
    cmd.arg("doctor")
        .args(stun_args(lab))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = LabChild::spawn(&mut cmd)
        .expect("start the doctor")
        .wait_with_output_timeout(Duration::from_secs(60))
        .expect("the doctor finishes");
    eprintln!("doctor {args:?} took {:?}", started.elapsed());
    out
}

fn doctor_json(lab: &Lab, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = doctor(lab, &all);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    valid_json(&out)
}

fn codes(doc: &Value) -> Vec<String> {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

fn finding<'a>(doc: &'a Value, code: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} finding in {doc:#}"))
}

fn port<'a>(doc: &'a Value, number: u16, protocol: &str) -> &'a Value {
    doc["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["port"] == number && p["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {number}/{protocol} in {doc:#}"))
}

/// The router holds nothing for the LAN host and nothing tagged natkit.
fn assert_router_clean(lab: &Lab) {
    let lan = lab.addrs().lan;
    let ours: Vec<_> = lab
        .router_mappings()
        .expect("upnpc -l")
        .into_iter()
        .filter(|m| *m.internal.ip() == lan || m.description.contains("natkit"))
        .collect();
    assert!(ours.is_empty(), "mappings left on the router: {ours:?}");
}

/// A router of `nat` kind running miniupnpd, stund outside.
fn with_upnp(nat: NatKind) -> natkit_lab::LabBuilder {
    Lab::builder().nat(nat).miniupnpd(true).stund(true)
}

fn lab(builder: natkit_lab::LabBuilder) -> Lab {
    require_root();
    builder.build().expect("lab up")
}

#[test]
fn port_restricted_router_with_upnp_natpmp_pcp() {
    let lab = lab(with_upnp(NatKind::PortRestricted));
    let a = *lab.addrs();
    let doc = doctor_json(&lab, &["--profile", "back-to-my-mac"]);
    assert_eq!(doc["gateway"], a.rtr_lan.to_string());
    assert_eq!(doc["local_address"], a.lan.to_string());
    assert_eq!(doc["local_address_scope"], "private");
    for p in ["upnp", "natpmp", "pcp"] {
        assert_eq!(
            doc["mapping_protocols"][p]["status"], "available",
            "{p}: {doc:#}"
        );
        assert_eq!(
            doc["mapping_protocols"][p]["external_address"],
            a.rtr_wan.to_string()
        );
    }
    assert_eq!(doc["router_external_address"], a.rtr_wan.to_string());
    let stun_ext = doc["stun_external_address"]
        .as_str()
        .expect("STUN answered");
    assert!(
        stun_ext.starts_with(&format!("{}:", a.public)),
        "{stun_ext}"
    );
    assert_eq!(doc["double_nat"], false);
    assert_eq!(doc["nat"]["mapping"], "endpoint_independent");
    assert_eq!(doc["nat"]["filtering"], "address_and_port_dependent");
    assert_eq!(doc["nat"]["legacy_type"], "port_restricted_cone");
    assert_eq!(doc["profile"], "back-to-my-mac");
    let ports = doc["ports"].as_array().expect("ports");
    assert_eq!(ports.len(), 4, "443/tcp 4500/udp 5353/udp 5354/tcp");
    for p in ports {
        assert_eq!(p["forwarded_to"], Value::Null, "{p}");
        assert_eq!(p["mappable"], true, "{p}");
        assert_eq!(p["mapping"]["mechanism"], "upnp", "{p}");
        assert_eq!(p["mapping"]["external_port"], p["port"], "{p}");
        assert_eq!(p["mapping"]["removed"], true, "{p}");
        assert_eq!(p["reachability"], "not_checked");
    }
    // The lab's router does not hairpin (only with --hairpin).
    // The lab has no IPv6 (no_ipv6 is informational).
    assert_eq!(
        codes(&doc),
        ["port_restricted_nat", "no_hairpinning", "no_ipv6"]
    );
    assert_router_clean(&lab);

    // The human report draws the path and says the same.
    let out = doctor(&lab, &["--profile", "back-to-my-mac"]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "[this host]   192.168.77.2",
        "[router]      192.168.77.1",
        "UPnP IGD: yes · NAT-PMP: yes · PCP: yes",
        "external address 88.77.66.2 (public address)",
        "[internet]    STUN servers see this host as 88.77.66.2:",
        "NAT type        port_restricted_cone",
        "port_restricted_nat:",
        "fix:",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("[second NAT]"), "{text}");
    // Piped stderr: no progress bar drawn; piped stdout: no colour.
    assert!(out.stderr.is_empty(), "{}", natkit_lab::dump_output(&out));
    assert!(!text.contains('\x1b'), "{text:?}");
    assert_router_clean(&lab);

    // On a terminal (script(1) gives it one) the report has colour, and
    // NO_COLOR takes it away again.
    let on_tty = |no_color: Option<&str>| {
        let line = format!(
            "{} doctor --ports 5900/tcp {}",
            natkit().display(),
            stun_args(&lab).join(" ")
        );
        let mut cmd = lab.command(Node::Lan, "script");
        cmd.args(["-qec", line.as_str(), "/dev/null"])
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = LabChild::spawn(&mut cmd)
            .expect("start script")
            .wait_with_output_timeout(Duration::from_secs(60))
            .expect("the doctor finishes");
        assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tty = on_tty(None);
    assert!(tty.contains("\x1b[1mFindings\x1b[0m"), "{tty:?}");
    // An empty NO_COLOR does not count (no-color.org).
    assert!(on_tty(Some("")).contains("\x1b[1mFindings\x1b[0m"));
    let no_color = on_tty(Some("1"));
    assert!(no_color.contains("Findings"), "{no_color:?}");
    assert!(!no_color.contains("\x1b[1m"), "{no_color:?}");
    assert!(!no_color.contains("\x1b[31m"), "{no_color:?}");
    assert_router_clean(&lab);
}

#[test]
fn router_without_mapping_protocols() {
    let lab = lab(Lab::builder().nat(NatKind::PortRestricted).stund(true));
    let doc = doctor_json(&lab, &["--ports", "443/tcp,4500/udp"]);
    for p in ["upnp", "natpmp", "pcp"] {
        assert_eq!(
            doc["mapping_protocols"][p]["status"], "absent",
            "{p}: {doc:#}"
        );
    }
    assert_eq!(doc["router_external_address"], Value::Null);
    assert_eq!(doc["double_nat"], false);
    for p in doc["ports"].as_array().expect("ports") {
        assert_eq!(p["mappable"], Value::Null, "nothing to map with: {p}");
        assert_eq!(p["forwarded_to"], Value::Null);
    }
    assert_eq!(
        codes(&doc),
        [
            "no_port_mapping_protocol",
            "port_restricted_nat",
            "no_hairpinning",
            "no_ipv6"
        ]
    );
    assert!(
        finding(&doc, "no_port_mapping_protocol")["fix"]
            .as_str()
            .expect("fix")
            .contains("enable UPnP")
    );
}

#[test]
fn double_nat_behind_carrier_grade_nat() {
    let lab = lab(Lab::builder()
        .nat(NatKind::PortRestricted)
        .double_nat(true)
        .miniupnpd(true)
        .stund(true));
    let a = *lab.addrs();
    let doc = doctor_json(&lab, &["--ports", "443/tcp"]);
    // miniupnpd with a 100.64/10 WAN address: "not connected", NAT-PMP
    // "network failure" (see lab/README.md).
    assert_eq!(
        doc["mapping_protocols"]["upnp"]["status"], "not_connected",
        "{doc:#}"
    );
    assert_eq!(
        doc["mapping_protocols"]["natpmp"]["status"], "failing",
        "{doc:#}"
    );
    let stun_ext = doc["stun_external_address"]
        .as_str()
        .expect("STUN answered");
    assert!(
        stun_ext.starts_with(&format!("{}:", a.public)),
        "{stun_ext}"
    );
    assert_eq!(doc["double_nat"], true, "{doc:#}");
    let evidence = doc["double_nat_evidence"].as_array().expect("evidence");
    assert!(!evidence.is_empty());
    let codes = codes(&doc);
    for want in ["igd_not_connected", "double_nat"] {
        assert!(codes.iter().any(|c| c == want), "{want} missing: {codes:?}");
    }
    assert!(
        finding(&doc, "double_nat")["fix"]
            .as_str()
            .expect("fix")
            .contains("bridge")
    );
    // Nothing could be mapped, and the double NAT explains it: no
    // port_not_mappable on top.
    assert!(!codes.iter().any(|c| c == "port_not_mappable"), "{codes:?}");
    assert_router_clean(&lab);

    let out = doctor(&lab, &["--ports", "443/tcp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[second NAT]"), "{text}");
}

#[test]
fn port_443_forwarded_to_another_lan_host() {
    let lab = lab(with_upnp(NatKind::PortRestricted).lan2(true));
    let lan2 = lab.addrs().lan2.expect("lan2");
    let lan2_s = lan2.to_string();
    lab.exec_ok(
        Node::Lan2,
        &["upnpc", "-a", lan2_s.as_str(), "443", "443", "TCP"],
    )
    .expect("lan2 maps 443/tcp");
    let doc = doctor_json(&lab, &["--profile", "back-to-my-mac"]);
    let p443 = port(&doc, 443, "tcp");
    assert_eq!(p443["forwarded_to"]["host"], lan2_s);
    assert_eq!(p443["forwarded_to"]["port"], 443);
    assert_eq!(p443["forwarded_to"]["this_host"], false);
    assert_eq!(p443["mappable"], false);
    // The combinator falls back to another external port (UPnP 718, then
    // AddAnyPortMapping): mapped, but not on 443, so not what the service
    // needs.
    assert_ne!(p443["mapping"]["external_port"], 443, "{p443:#}");
    assert!(
        p443["mapping"]["error"]
            .as_str()
            .expect("the substitution")
            .contains("instead of 443"),
        "{p443:#}"
    );
    assert_eq!(p443["mapping"]["removed"], true);
    // The other ports are free and mappable.
    assert_eq!(port(&doc, 4500, "udp")["mappable"], true);
    let f = finding(&doc, "port_forwarded_elsewhere");
    assert_eq!(f["port"], 443);
    assert_eq!(f["protocol"], "tcp");
    assert!(f["message"].as_str().expect("message").contains(&lan2_s));
    assert!(f["fix"].as_str().expect("fix").contains(&lan2_s));
    assert_eq!(
        codes(&doc),
        [
            "port_forwarded_elsewhere",
            "port_restricted_nat",
            "no_hairpinning",
            "no_ipv6"
        ]
    );
    // lan2's forward is untouched; nothing of ours is left.
    let table = lab.router_mappings().expect("upnpc -l");
    assert!(
        table
            .iter()
            .any(|m| m.external_port == 443 && *m.internal.ip() == lan2),
        "{table:?}"
    );
    assert_router_clean(&lab);
}

#[test]
fn symmetric_nat() {
    let lab = lab(with_upnp(NatKind::Symmetric));
    let doc = doctor_json(&lab, &["--ports", "5060/udp"]);
    assert_eq!(doc["nat"]["legacy_type"], "symmetric", "{doc:#}");
    assert_ne!(doc["nat"]["mapping"], "endpoint_independent");
    assert_ne!(doc["nat"]["mapping"], "inconclusive");
    assert_eq!(port(&doc, 5060, "udp")["mappable"], true);
    assert_eq!(codes(&doc), ["symmetric_nat", "no_ipv6"]);
    assert!(
        finding(&doc, "symmetric_nat")["fix"]
            .as_str()
            .expect("fix")
            .contains("relay")
    );
    assert_router_clean(&lab);
}

/// Starts natkit's dial-back server in the wan namespace (this test binary
/// re-run as a helper) and waits until it listens.
fn dialback_server(lab: &Lab) -> LabChild {
    let mut cmd = lab
        .test_helper(Node::Wan, "dialback_server_helper")
        .expect("helper command");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start the dial-back server");
    lab.wait_listening(
        Node::Wan,
        Proto::Tcp,
        DIALBACK_PORT,
        Duration::from_secs(10),
    )
    .expect("dial-back server listening");
    child
}

#[test]
#[ignore = "helper process body; the dial-back tests run it in the wan namespace"]
fn dialback_server_helper() {
    let Some(a) = natkit_lab::helper_addrs("dialback_server_helper").expect("lab env") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let config = natkit_probe::dialback::DialbackServerConfig::new(std::net::SocketAddr::new(
            a.peer.into(),
            DIALBACK_PORT,
        ));
        let server = natkit_probe::dialback::DialbackServer::bind(config)
            .await
            .expect("bind the dial-back server");
        server.run().await.expect("dial-back server");
    });
}

#[test]
fn inbound_443_blocked_upstream_with_dialback() {
    let lab = lab(with_upnp(NatKind::PortRestricted)
        .block_inbound(443, Proto::Tcp)
        .lan2(true));
    // 8080/tcp is forwarded to lan2, which listens on nothing there.
    let lan2 = lab.addrs().lan2.expect("lan2").to_string();
    lab.exec_ok(
        Node::Lan2,
        &["upnpc", "-a", lan2.as_str(), "8080", "8080", "TCP"],
    )
    .expect("lan2 maps 8080/tcp");
    let _server = dialback_server(&lab);
    let dialback = format!("{}:{DIALBACK_PORT}", lab.addrs().peer);
    let doc = doctor_json(
        &lab,
        &[
            "--ports",
            "443/tcp,8443/tcp,8080/tcp",
            "--dialback",
            dialback.as_str(),
        ],
    );
    let p443 = port(&doc, 443, "tcp");
    assert_eq!(p443["mappable"], true, "{doc:#}");
    assert_eq!(p443["forwarded_during_check"], true);
    assert_eq!(p443["reachability"], "filtered", "{doc:#}");
    let p8443 = port(&doc, 8443, "tcp");
    assert_eq!(p8443["reachability"], "reachable", "{doc:#}");
    // The trial mapping of 8080 moved to another port: 8080 itself was
    // dialled as it is, and does not reach this host.
    let p8080 = port(&doc, 8080, "tcp");
    assert_eq!(p8080["forwarded_to"]["host"], lan2);
    assert_eq!(p8080["forwarded_during_check"], false);
    assert_ne!(p8080["reachability"], "reachable", "{p8080:#}");
    let f = finding(&doc, "port_blocked_upstream");
    assert_eq!(f["port"], 443);
    assert!(f["fix"].as_str().expect("fix").contains("ISP"));
    assert_eq!(
        codes(&doc),
        [
            "port_blocked_upstream",
            "port_forwarded_elsewhere",
            "port_restricted_nat",
            "no_hairpinning",
            "no_ipv6"
        ]
    );
    assert_router_clean(&lab);
}

#[test]
fn ctrl_c_while_mappings_are_held_deletes_them() {
    let lab = lab(with_upnp(NatKind::PortRestricted));
    // A "dial-back server" that accepts and never answers: the doctor holds
    // its trial mappings while it waits.
    let _silent = lab
        .spawn(Node::Wan, &["nc", "-l", "-k", "-p", "7008"])
        .expect("silent server");
    lab.wait_listening(Node::Wan, Proto::Tcp, 7008, Duration::from_secs(5))
        .expect("listening");
    let dialback = format!("{}:7008", lab.addrs().peer);
    let mut cmd = lab.command(Node::Lan, natkit());
    cmd.arg("doctor")
        .args(stun_args(&lab))
        .args([
            "--ports",
            "5900/tcp,5353/udp",
            "--dialback",
            dialback.as_str(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = LabChild::spawn(&mut cmd).expect("start the doctor");
    let lan = lab.addrs().lan;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = lab
            .router_mappings()
            .expect("upnpc -l")
            .into_iter()
            .filter(|m| *m.internal.ip() == lan)
            .count();
        if held == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the doctor never held its 2 mappings"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGINT, as Ctrl-C sends it (to `ip netns exec`, which execs natkit).
    let status = Command::new("kill")
        .args(["-INT", &child.pid().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child
        .wait_with_output_timeout(Duration::from_secs(20))
        .expect("the doctor exits after Ctrl-C");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("every trial mapping was deleted"),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert_router_clean(&lab);
}

#[test]
fn no_network_says_so_and_fails() {
    require_root();
    // A fresh network namespace: only a loopback interface, no route.
    let out = Command::new("unshare")
        .arg("--net")
        .arg(natkit())
        .args(["doctor", "--json", "--stun", "192.0.2.1:3478"])
        .output()
        .expect("unshare --net doctor");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let doc = valid_json(&out);
    assert_eq!(doc["gateway"], Value::Null);
    assert_eq!(doc["local_address"], Value::Null);
    assert_eq!(codes(&doc), ["no_network"]);
    let human = Command::new("unshare")
        .arg("--net")
        .arg(natkit())
        .arg("doctor")
        .output()
        .expect("unshare --net doctor");
    assert_eq!(human.status.code(), Some(1));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("not connected to a network"),
        "{}",
        natkit_lab::dump_output(&human)
    );
    assert!(
        text.contains("fix: connect to a network"),
        "{}",
        natkit_lab::dump_output(&human)
    );
}
