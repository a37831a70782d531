//! What the dial-back lab tests share (`mod dialback_lab;` in each): the
//! helper bodies that run natkit's server and client inside the lab, and
//! the calls that start them and read the client's report.
//!
//! The helpers are `#[test]`s of each test binary that includes this
//! module, named `dialback_lab::…`; `Lab::test_helper` re-runs the binary
//! with that exact name inside a lab node.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_lab::{Lab, LabChild, Node, Proto};
use natkit_probe::dialback::{
    CheckPort, ClientConfig, DialbackClient, DialbackServer, DialbackServerConfig,
};

/// The server's control port.
pub(crate) const SERVER_PORT: u16 = 7007;

const SERVER_HELPER: &str = "dialback_lab::wan_dialback_server";
const CHECK_HELPER: &str = "dialback_lab::lan_dialback_check";

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn env_addr(name: &str) -> SocketAddr {
    std::env::var(name)
        .expect(name)
        .parse()
        .expect("an address")
}

fn env_ip(name: &str) -> Option<IpAddr> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("an IP address"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

// ---- helpers run inside the lab ----

#[test]
#[ignore = "helper: the dial-back server in wan, run by the dial-back lab tests"]
fn wan_dialback_server() {
    natkit_lab::helper_addrs(SERVER_HELPER).expect("lab env");
    let bind = env_addr("DIALBACK_BIND");
    runtime().block_on(async {
        // The production defaults: global targets only (the lab's public
        // 88.77.66.2 and its 2a0d:88:77::/48 are), 1 request/s per source.
        let server = DialbackServer::bind(DialbackServerConfig::new(bind))
            .await
            .expect("bind");
        println!("ready {}", server.local_addr());
        server.run().await.expect("run");
    });
}

/// One `CHECK` item: `PORT/PROTO`, or `PORT/PROTO/mapped` for a port the
/// caller says is forwarded here.
fn check_port(item: &str) -> CheckPort {
    let mut f = item.split('/');
    let port: u16 = f.next().and_then(|p| p.parse().ok()).expect("a port");
    let protocol = match f.next() {
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        other => panic!("{item}: protocol {other:?}"),
    };
    match f.next() {
        Some("mapped") => CheckPort::mapped(port, port, protocol),
        None => CheckPort::new(port, protocol),
        Some(other) => panic!("{item}: {other:?}"),
    }
}

#[test]
#[ignore = "helper: the dial-back check from the LAN host, run by the dial-back lab tests"]
fn lan_dialback_check() {
    natkit_lab::helper_addrs(CHECK_HELPER).expect("lab env");
    let mut config = ClientConfig::new(env_addr("DIALBACK_SERVER"));
    config.source_ip = env_ip("SOURCE_IP");
    config.responder_ip = env_ip("RESPONDER_IP");
    let ports: Vec<CheckPort> = std::env::var("CHECK")
        .expect("CHECK")
        .split(',')
        .map(check_port)
        .collect();
    let report = runtime()
        .block_on(DialbackClient::new(config).check(&ports))
        .expect("check");
    let mut head = serde_json::to_value(&report).expect("json");
    let rows = head
        .as_object_mut()
        .and_then(|o| o.remove("ports"))
        .expect("ports");
    println!("{head}");
    for row in rows.as_array().expect("array") {
        println!("{row}");
    }
}

// ---- driving them ----

/// Starts the dial-back server in wan on `bind` (killed on drop).
pub(crate) fn serve(lab: &Lab, bind: SocketAddr) -> LabChild {
    let mut server = lab.test_helper(Node::Wan, SERVER_HELPER).expect("helper");
    server
        .env("DIALBACK_BIND", bind.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let server = LabChild::spawn(&mut server).expect("spawn server");
    lab.wait_listening(Node::Wan, Proto::Tcp, bind.port(), Duration::from_secs(10))
        .expect("server listening");
    server
}

/// How the LAN host's check runs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Check<'a> {
    /// The ports, `PORT/PROTO[/mapped]` each.
    pub(crate) ports: &'a [String],
    /// The control connection's source ([`ClientConfig::source_ip`]).
    pub(crate) source: Option<IpAddr>,
    /// Where the responders listen ([`ClientConfig::responder_ip`]).
    pub(crate) responder: Option<IpAddr>,
}

/// Runs the LAN host's check against `server` and returns the report's
/// JSON lines: the head, then one per port.
pub(crate) fn check(lab: &Lab, server: SocketAddr, c: Check<'_>) -> Vec<serde_json::Value> {
    let mut cmd = lab.test_helper(Node::Lan, CHECK_HELPER).expect("helper");
    cmd.env("DIALBACK_SERVER", server.to_string())
        .env("CHECK", c.ports.join(","));
    for (key, ip) in [("SOURCE_IP", c.source), ("RESPONDER_IP", c.responder)] {
        if let Some(ip) = ip {
            cmd.env(key, ip.to_string());
        }
    }
    let out = cmd.output().expect("run check");
    assert!(
        out.status.success(),
        "check: {}",
        natkit_lab::dump_output(&out)
    );
    let stdout = text(&out.stdout);
    println!("{stdout}");
    // The harness prints "test NAME ... " before the helper's first line.
    stdout
        .lines()
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// (state, proven, why) of `port`/`proto` in a report's lines.
pub(crate) fn row(lines: &[serde_json::Value], port: u16, proto: &str) -> (String, bool, String) {
    let row = lines[1..]
        .iter()
        .find(|r| r["external"] == port && r["protocol"] == proto)
        .unwrap_or_else(|| panic!("no row for {port}/{proto}"));
    (
        row["state"].as_str().expect("state").to_owned(),
        row["proven"].as_bool().expect("proven"),
        row["why"].as_str().expect("why").to_owned(),
    )
}
