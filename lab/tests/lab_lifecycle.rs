//! The lab's own promises: labs in parallel do not collide, teardown on drop, on
//! panic and on `down` leaves nothing behind, the preflight passes, and a test's own
//! Rust code runs inside a namespace. Needs root; fails (never skips) without it.

#[allow(dead_code)]
mod common;

use std::net::SocketAddrV4;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use common::{listen, running, text};
use natkit_lab::{Lab, NatKind, Node, Proto, require_root};

#[test]
fn labs_in_parallel_do_not_collide() {
    require_root();
    let kinds = [NatKind::Symmetric, NatKind::FullCone];
    let verdicts: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = kinds
            .iter()
            .map(|&kind| {
                s.spawn(move || {
                    let lab = Lab::builder()
                        .nat(kind)
                        .stund(true)
                        .build()
                        .expect("lab up");
                    lab.stund_client(Node::Lan).primary
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("lab thread"))
            .collect()
    });
    assert!(
        verdicts[0].starts_with("Dependent Mapping,"),
        "{}",
        verdicts[0]
    );
    assert!(
        verdicts[1].starts_with("Independent Mapping, Independent Filter,"),
        "{}",
        verdicts[1]
    );
}

struct Traces {
    namespaces: Vec<String>,
    pids: Vec<u32>,
    run_dir: std::path::PathBuf,
}

fn traces(lab: &Lab) -> Traces {
    Traces {
        namespaces: [Node::Lan, Node::Lan2, Node::Rtr, Node::Isp, Node::Wan]
            .into_iter()
            .filter(|&n| lab.has(n))
            .map(|n| lab.ns(n))
            .collect(),
        pids: [lab.miniupnpd_pid(), lab.stund_pid()]
            .into_iter()
            .flatten()
            .collect(),
        run_dir: lab.run_dir(),
    }
}

fn assert_gone(t: &Traces) {
    for ns in &t.namespaces {
        assert!(
            !Path::new("/run/netns").join(ns).exists(),
            "namespace {ns} left behind"
        );
    }
    for &pid in &t.pids {
        assert!(!running(pid), "daemon {pid} left running");
    }
    assert!(!t.run_dir.exists(), "{} left behind", t.run_dir.display());
}

#[test]
fn drop_tears_everything_down() {
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .lan2(true)
        .miniupnpd(true)
        .stund(true)
        .build();
    let lab = lab.expect("lab up");
    let t = traces(&lab);
    assert_eq!(t.namespaces.len(), 5);
    assert_eq!(t.pids.len(), 2);
    assert!(t.pids.iter().all(|&p| running(p)));
    // A process a test started and forgot (a plain Child does not kill on drop):
    // down must end it too, or the namespace could not go away.
    let mut stray = lab
        .command(Node::Wan, "sleep")
        .arg("300")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    drop(lab);
    assert_gone(&t);
    let status = stray.wait().expect("reap stray");
    assert!(!status.success(), "stray process was not killed: {status}");
}

#[test]
fn a_panicking_test_still_tears_down() {
    require_root();
    let mut seen = None;
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::builder()
            .miniupnpd(true)
            .stund(true)
            .build()
            .expect("lab up");
        seen = Some(traces(&lab));
        panic!("deliberate panic with lab {} up", lab.id());
    }));
    assert!(result.is_err());
    assert_gone(&seen.expect("lab was built"));
}

#[test]
fn explicit_down_reports_and_is_idempotent() {
    require_root();
    let lab = Lab::builder().build().expect("lab up");
    let t = traces(&lab);
    let id = lab.id().to_owned();
    lab.down().expect("down");
    assert_gone(&t);
    // down of a lab that no longer exists still succeeds
    let out = std::process::Command::new("bash")
        .arg(natkit_lab::script_path())
        .args(["down", "--id", &id])
        .output()
        .expect("natlab.sh down");
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
}

#[test]
fn preflight_passes_here() {
    // This suite runs as root with the lab packages; anything else is a failure.
    require_root();
    for tool in natkit_lab::REQUIRED_TOOLS {
        assert!(natkit_lab::tool_path(tool).is_some(), "{tool}");
    }
}

// ---------------------------------------------------------------------------------
// running Rust code inside a namespace (what tests in the other crates do)

/// Not a test on its own: the body of a helper process that
/// `rust_code_runs_inside_the_lan` starts inside the LAN namespace by running this
/// test binary again ([`Lab::test_helper`]). It sends one datagram to the wan peer's
/// port 5000 and prints the socket's local address.
#[test]
#[ignore = "helper process body; rust_code_runs_inside_the_lan runs it in a namespace"]
fn helper_in_namespace() {
    let Some(addrs) = natkit_lab::helper_addrs("helper_in_namespace").expect("lab env") else {
        return;
    };
    let payload = std::env::var("PAYLOAD").expect("PAYLOAD");
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    socket.connect((addrs.peer, 5000)).expect("connect");
    socket.send(payload.as_bytes()).expect("send");
    println!("HELPER-LOCAL {}", socket.local_addr().expect("local addr"));
}

#[test]
fn rust_code_runs_inside_the_lan() {
    require_root();
    let lab = Lab::builder().build().expect("lab up");
    let a = *lab.addrs();
    let listener = listen(&lab, Node::Wan, Proto::Udp, 5000);
    let payload = format!("from-rust-in-the-lan-{}", lab.id());
    let out = lab
        .test_helper(Node::Lan, "helper_in_namespace")
        .expect("helper command")
        .env("PAYLOAD", &payload)
        .output()
        .expect("run helper");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    // The socket lives in the LAN namespace: its address exists nowhere else.
    let local = stdout
        .lines()
        // (with --nocapture it may share a line with the harness's "test … ")
        .find_map(|l| l.split_once("HELPER-LOCAL ").map(|(_, addr)| addr))
        .unwrap_or_else(|| {
            panic!(
                "helper printed no address: {}",
                natkit_lab::dump_output(&out)
            )
        });
    let local: SocketAddrV4 = local.trim().parse().expect("helper address");
    assert_eq!(*local.ip(), a.lan);
    let got = listener
        .wait_with_output_timeout(Duration::from_secs(4))
        .expect("datagram");
    assert_eq!(text(&got.stdout), payload);
}
