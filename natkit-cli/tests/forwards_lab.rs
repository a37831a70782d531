//! `natkit forwards` in the NAT lab: the router's (miniupnpd's) table as the LAN
//! host and a second LAN host made it with upnpc, listed with purposes, exported,
//! and re-created on a router that lost it (miniupnpd restarted: "the new base
//! station").
//!
//! Needs root and the lab's packages; fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use natkit_lab::{Lab, LabChild, NatKind, Node, require_root};
use serde_json::Value;

fn natkit(lab: &Lab, args: &[&str]) -> Output {
    let mut cmd = lab.command(Node::Lan, env!("CARGO_BIN_EXE_natkit"));
    cmd.arg("forwards")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    LabChild::spawn(&mut cmd)
        .expect("start natkit forwards")
        .wait_with_output_timeout(Duration::from_secs(30))
        .expect("natkit forwards finishes")
}

fn json_ok(lab: &Lab, args: &[&str]) -> Value {
    let out = natkit(lab, args);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", natkit_lab::dump_output(&out)))
}

fn text_ok(lab: &Lab, args: &[&str]) -> String {
    let out = natkit(lab, args);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit status `code`; the stderr.
fn stderr_of_failure(out: &Output, code: i32) -> String {
    let dump = natkit_lab::dump_output(out);
    assert_eq!(out.status.code(), Some(code), "{dump}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn upnpc_add(lab: &Lab, node: Node, host: &str, port: &str, proto: &str, desc: &str) {
    lab.exec_ok(node, &["upnpc", "-e", desc, "-a", host, port, port, proto])
        .unwrap_or_else(|e| panic!("upnpc maps {port}/{proto} for {host}: {e}"));
}

fn entry<'a>(doc: &'a Value, port: u16, proto: &str) -> &'a Value {
    doc["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["external_port"] == port && e["protocol"] == proto)
        .unwrap_or_else(|| panic!("no {port}/{proto} in {doc:#}"))
}

/// A file of this test's own, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "natkit-forwards-{}-{name}.json",
            std::process::id()
        )))
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write the test file");
}

/// A port-restricted router, with miniupnpd (`upnp`), stund outside (`stund`) and
/// a second LAN host (`lan2`) as asked.
fn lab_up(upnp: bool, stund: bool, lan2: bool) -> Lab {
    require_root();
    let builder = Lab::builder().nat(NatKind::PortRestricted).miniupnpd(upnp);
    builder.stund(stund).lan2(lan2).build().expect("lab up")
}

#[test]
fn forwards_lists_exports_and_recreates_this_hosts_entries() {
    let mut lab = lab_up(true, false, true);
    let lan = lab.addrs().lan.to_string();
    let lan2 = lab.addrs().lan2.expect("lan2").to_string();
    upnpc_add(&lab, Node::Lan, &lan, "548", "TCP", "file server");
    upnpc_add(&lab, Node::Lan, &lan, "5900", "TCP", "screen");
    upnpc_add(&lab, Node::Lan2, &lan2, "3074", "UDP", "console");
    upnpc_add(&lab, Node::Lan2, &lan2, "40000", "TCP", "mystery");

    // The list: every entry, whose it is, and what the port is for.
    let doc = json_ok(&lab, &["--json"]);
    eprintln!("{doc:#}");
    assert_eq!(doc["local_address"], lan);
    assert_eq!(doc["entries"].as_array().expect("entries").len(), 4);
    let afp = entry(&doc, 548, "tcp");
    assert_eq!(afp["purpose"], "Apple Filing Protocol over TCP");
    assert_eq!(afp["this_host"], true);
    assert_eq!(afp["internal_host"], lan);
    assert_eq!(afp["description"], "file server");
    assert_eq!(
        entry(&doc, 5900, "tcp")["purpose"],
        "VNC / Apple Remote Desktop screen sharing"
    );
    let xbox = entry(&doc, 3074, "udp");
    assert_eq!(xbox["purpose"], "Xbox Live");
    assert_eq!(xbox["this_host"], false);
    assert_eq!(xbox["internal_host"], lan2);
    assert_eq!(entry(&doc, 40000, "tcp")["purpose"], Value::Null);
    let text = text_ok(&lab, &[]);
    eprintln!("{text}");
    let mine = text.find("To this host:").expect("this host's section");
    let others = text.find("To other hosts:").expect("the others' section");
    assert!(mine < others, "{text}");
    assert!(text[mine..others].contains("548/tcp"), "{text}");
    assert!(
        text[others..].contains(&format!("-> {lan2}:3074")),
        "{text}"
    );
    assert!(text[others..].contains("unknown"), "{text}");

    // Export, then a router that lost everything.
    let file = TempFile::new("export");
    let out = json_ok(&lab, &["export", file.path(), "--json"]);
    assert_eq!(out["entries"], 4);
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&file.0).expect("the export")).expect("JSON");
    assert_eq!(exported["format"], "natkit-forwards");
    assert_eq!(exported["exported_by"], lan);
    assert_eq!(entry(&exported, 548, "tcp")["internal_port"], 548);
    lab.restart_miniupnpd().expect("restart miniupnpd");
    assert!(lab.router_mappings().expect("upnpc -l").is_empty());

    // A dry run changes nothing.
    let dry = json_ok(&lab, &["import", file.path(), "--dry-run", "--json"]);
    eprintln!("{dry:#}");
    assert_eq!(entry(&dry, 548, "tcp")["result"], "would_create");
    assert_eq!(entry(&dry, 3074, "udp")["result"], "skipped");
    assert!(lab.router_mappings().expect("upnpc -l").is_empty());

    // The import re-creates this host's two and skips lan2's with the reason.
    let text = text_ok(&lab, &["import", file.path()]);
    eprintln!("{text}");
    assert_eq!(text.matches(": created: ").count(), 2, "{text}");
    assert_eq!(text.matches(": skipped: ").count(), 2, "{text}");
    assert!(
        text.contains(&format!("forwards to another host ({lan2})")),
        "{text}"
    );
    assert!(text.contains("606"), "{text}");
    let table = lab.router_mappings().expect("upnpc -l");
    eprintln!("{table:?}");
    assert_eq!(table.len(), 2, "{table:?}");
    for (port, desc) in [(548, "file server"), (5900, "screen")] {
        let m = table
            .iter()
            .find(|m| m.external_port == port)
            .unwrap_or_else(|| panic!("{port} not re-created: {table:?}"));
        assert_eq!(m.internal.to_string(), format!("{lan}:{port}"));
        // The user's own description, untagged: no natkit clean-up sweeps it.
        assert_eq!(m.description, desc);
    }
    // Importing again updates the same entries in place.
    let again = json_ok(&lab, &["import", file.path(), "--json"]);
    assert_eq!(entry(&again, 5900, "tcp")["result"], "created");
    assert_eq!(lab.router_mappings().expect("upnpc -l").len(), 2);

    // On a router where lan2 already holds 548/tcp, that entry fails and says who
    // holds it; the other is still made, and the exit status is 1.
    lab.restart_miniupnpd().expect("restart miniupnpd");
    upnpc_add(&lab, Node::Lan2, &lan2, "548", "TCP", "nas");
    let out = natkit(&lab, &["import", file.path()]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}", natkit_lab::dump_output(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let line = text
        .lines()
        .find(|l| l.contains("548/tcp"))
        .expect("the 548 line");
    assert!(
        line.contains(": failed: ") && line.contains(&format!("forwarded to {lan2}:548")),
        "{line}"
    );
    assert!(text.contains(": created: 5900/tcp"), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 of the 2 entries for this host could not be re-created"),
        "{stderr}"
    );
}

#[test]
fn bad_forwards_files_are_clear_errors() {
    let lab = lab_up(true, false, false);
    let file = TempFile::new("bad");
    let lan = lab.addrs().lan;
    let cases = [
        (
            "{\"format\": \"natkit-forwards\",",
            "not a natkit forwards file",
        ),
        ("[]", "not a natkit forwards file"),
        (
            &format!(
                "{{\"format\":\"natkit-forwards\",\"version\":1,\"exported_by\":\"{lan}\",\
                 \"entries\":[{{\"protocol\":\"tcp\",\"external_port\":99999,\
                 \"internal_host\":\"{lan}\",\"internal_port\":22}}]}}"
            ),
            "99999",
        ),
        (
            &format!(
                "{{\"format\":\"natkit-forwards\",\"version\":1,\"exported_by\":\"{lan}\",\
                 \"entries\":[{{\"protocol\":\"tcp\",\"external_port\":0,\
                 \"internal_host\":\"{lan}\",\"internal_port\":22}}]}}"
            ),
            "entry 0: external_port 0 is not a port",
        ),
    ];
    for (text, want) in cases {
        write(&file.0, text);
        let out = natkit(&lab, &["import", file.path()]);
        let stderr = stderr_of_failure(&out, 2);
        assert!(
            stderr.starts_with("error: ") && stderr.contains(want),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = natkit(&lab, &["import", "/nonexistent/forwards.json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert!(lab.router_mappings().expect("upnpc -l").is_empty());
}

/// The doctor's report lists the whole table: this host's forwards and lan2's, each
/// with its purpose, in the JSON (valid against the schema) and in the text.
#[test]
fn the_doctor_lists_the_routers_forwards_with_purposes() {
    let lab = lab_up(true, true, true);
    let lan = lab.addrs().lan.to_string();
    let lan2 = lab.addrs().lan2.expect("lan2").to_string();
    let stun = format!("{}:3478", lab.addrs().stun1);
    let doctor = |json: bool| {
        let mut cmd = lab.command(Node::Lan, env!("CARGO_BIN_EXE_natkit"));
        cmd.args(["doctor", "--stun", &stun])
            .args(json.then_some("--json"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = LabChild::spawn(&mut cmd)
            .expect("start the doctor")
            .wait_with_output_timeout(Duration::from_secs(60))
            .expect("the doctor finishes");
        assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let schema: Value =
        serde_json::from_str(include_str!("../../docs/doctor.schema.json")).expect("schema");
    let validator = jsonschema::draft202012::new(&schema).expect("a 2020-12 schema");
    let valid = |text: String| {
        let doc: Value = serde_json::from_str(text.trim()).expect("one JSON document");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "schema violations: {errors:#?}");
        doc
    };
    // An empty table is an empty list, and the section says so.
    let empty = valid(doctor(true));
    assert_eq!(empty["router_forwards"], Value::Array(Vec::new()));
    assert!(doctor(false).contains("Router forwards\n  none\n"));

    upnpc_add(&lab, Node::Lan, &lan, "5900", "TCP", "screen");
    upnpc_add(&lab, Node::Lan2, &lan2, "548", "TCP", "nas");
    let doc = valid(doctor(true));
    let rows = doc["router_forwards"].as_array().expect("router_forwards");
    eprintln!("{rows:#?}");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0]["external_port"], 5900);
    assert_eq!(rows[0]["this_host"], true);
    assert_eq!(
        rows[0]["purpose"],
        "VNC / Apple Remote Desktop screen sharing"
    );
    assert_eq!(rows[1]["external_port"], 548);
    assert_eq!(rows[1]["this_host"], false);
    assert_eq!(rows[1]["internal_host"], lan2);
    assert_eq!(rows[1]["purpose"], "Apple Filing Protocol over TCP");
    assert_eq!(rows[1]["description"], "nas");
    let text = doctor(false);
    eprintln!("{text}");
    let section = text.find("Router forwards").expect("the section");
    let section = &text[section..];
    assert!(section.contains("5900/tcp  -> this host:5900"), "{text}");
    assert!(section.contains(&format!("-> {lan2}:548")), "{text}");
    assert!(section.contains("Apple Filing Protocol over TCP"), "{text}");
}

/// A router without UPnP: listing fails with the reason, exit 1, and an import
/// does nothing; a dry run still shows the plan (it asks the router nothing).
#[test]
fn no_igd_is_a_clear_failure() {
    let lab = lab_up(false, false, false);
    let out = natkit(&lab, &[]);
    let stderr = stderr_of_failure(&out, 1);
    assert!(stderr.starts_with("error: no UPnP IGD"), "{stderr}");
    let file = TempFile::new("noigd");
    let lan = lab.addrs().lan;
    write(
        &file.0,
        &format!(
            "{{\"format\":\"natkit-forwards\",\"version\":1,\"exported_by\":\"{lan}\",\
             \"entries\":[{{\"protocol\":\"tcp\",\"external_port\":22,\
             \"internal_host\":\"{lan}\",\"internal_port\":22}}]}}"
        ),
    );
    let out = natkit(&lab, &["import", file.path()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    assert!(out.stdout.is_empty(), "{}", natkit_lab::dump_output(&out));
    let dry = json_ok(&lab, &["import", file.path(), "--dry-run", "--json"]);
    assert_eq!(entry(&dry, 22, "tcp")["result"], "would_create");
    assert_eq!(dry["local_address"], lan.to_string());
}
