//! `natkit probe --dialback` in the NAT lab: `natkit dialback-server` runs in
//! the wan namespace, miniupnpd maps ports on the router, and `natkit probe`
//! runs in the LAN host and asks the server to check its ports from outside. Also the one-line errors: server unreachable,
//! refusals (too many ports, target not allowed), a --target that is not
//! this host's public address, bad arguments.
//!
//! Needs root and the lab's packages; fails (never skips) without them. Cargo
//! builds the `natkit` binary for this crate's tests.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use serde_json::Value;

/// The dial-back server's control port (bound to every wan address).
const SERVER_PORT: u16 = 7007;
/// A second server that dials at most one port per request.
const ONE_PORT_SERVER: u16 = 7008;
/// Nothing listens here in wan.
const NO_SERVER: u16 = 7009;
/// Mapped to the LAN host over UPnP; the probe's responder listens.
const MAPPED: u16 = 40180;
/// Not mapped: the router's own stack resets it.
const UNMAPPED: u16 = 40182;
/// UDP, mapped to the LAN host.
const UDP_MAPPED: u16 = 40190;

/// `natkit SUBCOMMAND` as the first two words of a command line.
fn natkit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_natkit"))
}

/// Runs the built probe in `node` with `args`.
fn probe(lab: &Lab, node: Node, args: &[&str]) -> Output {
    let mut cmd = lab.command(node, natkit());
    cmd.arg("probe")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = LabChild::spawn(&mut cmd)
        .expect("start probe")
        .wait_with_output_timeout(Duration::from_secs(60))
        .expect("probe finishes");
    eprintln!(
        "$ probe {}\n{}",
        args.join(" "),
        natkit_lab::dump_output(&out)
    );
    out
}

/// A failed run: exit `code`, nothing on stdout, one `error: …` line
/// containing `needle` on stderr.
fn assert_fails(out: &Output, code: i32, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        natkit_lab::dump_output(out)
    );
    assert!(out.stdout.is_empty(), "{}", natkit_lab::dump_output(out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", natkit_lab::dump_output(out));
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "wanted {needle:?}: {}",
        natkit_lab::dump_output(out)
    );
}

/// Starts the built dial-back server in wan with `args` and waits for it.
fn server(lab: &Lab, port: u16, args: &[&str]) -> LabChild {
    let bind = format!("0.0.0.0:{port}");
    let mut cmd = lab.command(Node::Wan, natkit());
    cmd.args(["dialback-server", "--bind", bind.as_str()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start dialback_server");
    lab.wait_listening(Node::Wan, Proto::Tcp, port, Duration::from_secs(10))
        .expect("dialback_server listening");
    child
}

fn map(lab: &Lab, port: u16, proto: &str) {
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    let lan = lab.addrs().lan.to_string();
    let p = port.to_string();
    let argv = ["upnpc", "-u", &url, "-a", &lan, &p, &p, proto];
    let out = lab.exec(Node::Lan, &argv).expect("run upnpc");
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("is redirected to internal"),
        "upnpc {argv:?}: {}",
        natkit_lab::dump_output(&out)
    );
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn probe_dialback_in_the_lab() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    map(&lab, MAPPED, "TCP");
    map(&lab, UDP_MAPPED, "UDP");
    // The lab's public address (88.77.66.2) is global: the server's
    // production target policy dials it; only the rate is raised, for the
    // several checks below.
    let _server = server(&lab, SERVER_PORT, &["--rate", "20", "--burst", "20"]);
    let _one_port = server(&lab, ONE_PORT_SERVER, &["--max-ports", "1"]);
    let dialback = format!("{}:{SERVER_PORT}", a.peer);
    let ports = format!("{MAPPED},{UNMAPPED},{UDP_MAPPED}/udp");

    // --json: one line per port, then the summary.
    let out = probe(
        &lab,
        Node::Lan,
        &["--dialback", &dialback, "--ports", &ports, "--json"],
    );
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4, "{}", natkit_lab::dump_output(&out));
    for l in &lines[..3] {
        for field in ["port", "protocol", "state", "reason", "proven", "why"] {
            assert!(!l[field].is_null(), "no {field} in {l}");
        }
        assert!(!l["reason"].as_str().expect("reason").is_empty(), "{l}");
    }
    let row = |port: u16, proto: &str| {
        lines[..3]
            .iter()
            .find(|l| l["port"] == port && l["protocol"] == proto)
            .unwrap_or_else(|| panic!("no {port}/{proto}"))
    };
    let mapped = row(MAPPED, "tcp");
    assert_eq!(mapped["state"], "reachable", "{mapped}");
    assert_eq!(mapped["proven"], true, "{mapped}");
    assert_eq!(mapped["why"], "nonce_echoed", "{mapped}");
    let unmapped = row(UNMAPPED, "tcp");
    assert_eq!(unmapped["state"], "not_forwarded", "{unmapped}");
    assert_eq!(unmapped["proven"], false, "{unmapped}");
    let udp = row(UDP_MAPPED, "udp");
    assert_eq!(udp["state"], "reachable", "{udp}");
    assert_eq!(udp["proven"], true, "{udp}");
    let summary = &lines[3]["summary"];
    assert_eq!(summary["public_address"], a.public.to_string(), "{summary}");
    assert_eq!(summary["behind_nat"], true, "{summary}");
    assert_eq!(summary["dialback"], dialback, "{summary}");
    assert_eq!(
        (
            &summary["reachable"],
            &summary["not_forwarded"],
            &summary["ports"]
        ),
        (&Value::from(2), &Value::from(1), &Value::from(3)),
        "{summary}"
    );

    // The human table, with --target naming the public address.
    let public = a.public.to_string();
    let two = format!("{MAPPED},{UNMAPPED}");
    let out = probe(
        &lab,
        Node::Lan,
        &[
            "--dialback",
            &dialback,
            "--ports",
            &two,
            "--target",
            &public,
        ],
    );
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let table_row = |port: u16| {
        text.lines()
            .find(|l| l.starts_with(&format!("{port}/tcp ")))
            .unwrap_or_else(|| panic!("no row for {port}/tcp:\n{text}"))
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        table_row(MAPPED),
        [format!("{MAPPED}/tcp").as_str(), "reachable", "yes"]
    );
    assert_eq!(
        table_row(UNMAPPED),
        [format!("{UNMAPPED}/tcp").as_str(), "not_forwarded", "no"]
    );
    assert!(
        text.starts_with(&format!("dial-back check by {dialback} of {public} ")),
        "{text}"
    );
    assert!(text.contains("behind a NAT"), "{text}");

    // A --target that is not the address the server sees.
    let lan = a.lan.to_string();
    let args = [
        "--dialback",
        &dialback,
        "--ports",
        "40180",
        "--target",
        &lan,
    ];
    let out = probe(&lab, Node::Lan, &args);
    assert_fails(&out, 2, &format!("saw this host as {public}"));

    // Refusals, named.
    let one_port = format!("{}:{ONE_PORT_SERVER}", a.peer);
    let out = probe(
        &lab,
        Node::Lan,
        &["--dialback", &one_port, "--ports", "40180"],
    );
    assert_fails(&out, 1, "refused the check: too_many_ports");
    // From wan's own loopback the server sees 127.0.0.1, which it does not dial.
    let local = format!("127.0.0.1:{SERVER_PORT}");
    let out = probe(&lab, Node::Wan, &["--dialback", &local, "--ports", "40180"]);
    assert_fails(&out, 1, "refused the check: target_not_allowed");

    // No server there; bad arguments.
    let nowhere = format!("{}:{NO_SERVER}", a.peer);
    let out = probe(
        &lab,
        Node::Lan,
        &["--dialback", &nowhere, "--ports", "40180"],
    );
    assert_fails(&out, 1, "cannot reach the dial-back server");
    let out = probe(&lab, Node::Lan, &["--dialback", "nowhere", "--ports", "1"]);
    assert_fails(&out, 2, "give HOST:PORT");
    let out = probe(
        &lab,
        Node::Lan,
        &["--dialback", &dialback, "--ports", "1", "--rate", "5"],
    );
    assert_fails(&out, 2, "cannot be used with");

    lab.down().expect("lab down");
}
