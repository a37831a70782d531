//! Interop with STUN software no one here wrote, on loopback (all of 127/8 is loopback
//! on Linux): coturn's `turnutils_stunclient` and stund's `stun` client against natkit's
//! server (127.0.0.1 primary, 127.0.0.2 alternate), and natkit's client against the
//! stund daemon (127.0.0.3 / 127.0.0.4).
//!
//! These tests fail, never skip, when the programs are missing (Debian packages coturn,
//! stun-client, stun-server).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use natkit_stun::client::{BindingRequest, RtoPlan, binding};
use natkit_stun::server::{Server, ServerConfig, ServerCounters, ServerStopHandle};
use tokio::net::UdpSocket;

mod support;

const TURNUTILS: &str = "/usr/bin/turnutils_stunclient";
const STUND_CLIENT: &str = "/usr/bin/stun";
const STUND: &str = "/usr/sbin/stund";

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// Starts natkit's four-socket server on random ports.
async fn start() -> (
    Vec<SocketAddr>,
    ServerStopHandle,
    tokio::task::JoinHandle<ServerCounters>,
) {
    let cfg = ServerConfig::with_alternate(sa("127.0.0.1:0"), sa("127.0.0.2:0"));
    let server = Server::bind(cfg).await.expect("bind");
    let addrs = server.local_addrs();
    let stop = server.stop_handle();
    let task = tokio::spawn(async move { server.run().await.expect("server run") });
    (addrs, stop, task)
}

fn require(program: &str) {
    assert!(
        std::path::Path::new(program).exists(),
        "{program} is not installed (Debian: coturn, stun-client, stun-server)"
    );
}

/// Runs a client program to completion, failing the test if it is missing or hangs.
async fn run(program: &str, args: &[String]) -> String {
    require(program);
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} hung"))
    .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ {program} {}\n{text}", args.join(" "));
    text
}

/// The addresses printed after `label` on each line that has it.
fn addrs_after(text: &str, label: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.split_once(label))
        .filter_map(|(_, rest)| rest.trim().trim_start_matches(':').trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turnutils_stunclient_gets_its_own_address_and_rfc5780_attributes() {
    // natkit's core on this runtime's tasks: it records each request's source, so
    // the test knows the client's real ports.
    let server = support::four(sa("127.0.0.1:0").ip(), sa("127.0.0.2:0").ip()).await;
    let addrs = &server.addrs;
    let text = run(
        TURNUTILS,
        &["-p".into(), addrs[0].port().to_string(), "127.0.0.1".into()],
    )
    .await;
    // The client has exited: every request it sent was received.
    let seen: BTreeSet<SocketAddr> = server.seen.lock().expect("seen").iter().copied().collect();
    let reflexive = addrs_after(&text, "UDP reflexive addr:");
    assert!(reflexive.len() >= 2, "no reflexive addresses in:\n{text}");
    for r in &reflexive {
        assert!(
            seen.contains(r),
            "client was told {r}, but its requests came from {seen:?}"
        );
        assert_eq!(r.ip(), addrs[0].ip());
    }
    // Responses 1 (plain) and 2 (change IP and port) went to the same client socket.
    assert_eq!(reflexive[0], reflexive[1]);
    let others = addrs_after(&text, "Other addr: :");
    assert!(
        !others.is_empty() && others.iter().all(|o| *o == addrs[3]),
        "{others:?}"
    );
    let origins = addrs_after(&text, "Response origin: :");
    assert_eq!(origins.first(), Some(&addrs[0]));
    assert!(
        origins.contains(&addrs[3]),
        "the change-request answer came from the other address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stund_client_sees_its_ports_and_classifies_loopback_as_open() {
    let (addrs, stop, task) = start().await;
    let text = run(STUND_CLIENT, &[addrs[0].to_string(), "-v".into()]).await;
    stop.stop();
    let counters = task.await.expect("server task");
    println!("{counters:?}");
    assert!(text.contains("Primary: Open"), "{text}");
    let opened: BTreeSet<u16> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Opened port "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    let mapped = addrs_after(&text, "MappedAddress =");
    assert!(!mapped.is_empty(), "{text}");
    for m in &mapped {
        assert_eq!(m.ip(), addrs[0].ip());
        assert!(
            opened.contains(&m.port()),
            "{m} is not one of the client's ports {opened:?}"
        );
    }
    let changed = addrs_after(&text, "ChangedAddress =");
    assert!(changed.contains(&addrs[3]), "{changed:?}");
    assert!(counters.answered_changed >= 2, "{counters:?}");
    assert_eq!(counters.dropped(), 0, "{counters:?}");
}

/// A free UDP port pair on `ip` (best effort: bound, then released).
async fn free_ports(ip: &str) -> (u16, u16) {
    let a = UdpSocket::bind((ip, 0)).await.expect("bind");
    let b = UdpSocket::bind((ip, 0)).await.expect("bind");
    (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    )
}

/// stund on 127.0.0.3 / 127.0.0.4, killed on drop.
pub struct Stund {
    _child: tokio::process::Child,
    /// Primary address.
    pub primary: SocketAddr,
}

/// Starts stund and waits until it answers.
pub async fn start_stund() -> Stund {
    require(STUND);
    let (p, o) = free_ports("127.0.0.3").await;
    let child = tokio::process::Command::new(STUND)
        .args(["-h", "127.0.0.3", "-a", "127.0.0.4"])
        .args(["-p", &p.to_string(), "-o", &o.to_string()])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn stund");
    let primary = SocketAddr::from(([127, 0, 0, 3], p));
    for _ in 0..50 {
        if binding(primary, &BindingRequest::new(), RtoPlan::LAB)
            .await
            .is_ok()
        {
            return Stund {
                _child: child,
                primary,
            };
        }
    }
    panic!("stund did not come up on {primary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natkit_client_reads_stund_answers() {
    let stund = start_stund().await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = socket.local_addr().expect("addr");
    for req in [
        BindingRequest::new(),
        BindingRequest {
            rfc3489: true,
            ..BindingRequest::new()
        },
    ] {
        let resp = natkit_stun::client::binding_on(&socket, stund.primary, &req, RtoPlan::LAB)
            .await
            .expect("stund answers");
        assert_eq!(resp.mapped, Some(local), "{resp:?}");
        let other = resp.other_address.expect("stund sends CHANGED-ADDRESS");
        assert!(resp.other_is_rfc3489);
        assert_eq!(
            other.ip(),
            "127.0.0.4".parse::<std::net::IpAddr>().expect("ip")
        );
        assert_ne!(other.port(), stund.primary.port());
        assert_eq!(resp.response_origin, Some(stund.primary));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natkit_classifier_against_stund_agrees_with_stunds_client() {
    use natkit_core::{Connectivity, LegacyNatType};
    use natkit_stun::classify::{ClassifyConfig, ServerFlavor, classify};
    let stund = start_stund().await;
    let mut config = ClassifyConfig::new([stund.primary.to_string()]);
    config.plan = RtoPlan::LAB;
    let c = classify(config).await.expect("classify");
    println!(
        "classified against stund in {:?}: {:?} {:?}",
        c.elapsed, c.legacy, c.notes
    );
    assert_eq!(c.servers[0].flavor, ServerFlavor::Rfc3489, "{c:#?}");
    assert_eq!(c.behaviour.connectivity, Connectivity::NoNat);
    assert_eq!(c.legacy, LegacyNatType::Open, "{c:#?}");
    // stund's own client says the same about this path.
    let text = run(STUND_CLIENT, &[stund.primary.to_string()]).await;
    assert!(text.contains("Open"), "{text}");
}
