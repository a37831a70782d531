//! TCP verdicts with ICMP evidence in the NAT lab (root only; fails, never
//! skips, without it).
//!
//! The LAN host sweeps ports of an outside peer while the router rejects
//! two of them on the way: one with an ICMP *port unreachable* — which the
//! kernel turns into the same `ECONNREFUSED` as a reset — and one with
//! *communication administratively prohibited*. Every other port answers
//! with the peer's own reset, one with a listener. The engine reuses the
//! socket of a reset try for the next one, so this also proves that no
//! evidence crosses from one try to another: exactly the two rejected
//! ports are `filtered`, naming the router, and every reset is `closed`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_lab::{Lab, NatKind, Node, Proto, require_root};
use natkit_probe::{
    IcmpKind, PortOrder, PortState, PortVerdict, ProbeConfig, ProbePlan, Prober, Reason,
};

const FIRST: u16 = 6000;
const LAST: u16 = 6199;
/// The router answers with ICMP port unreachable (type 3 code 3).
const PORT_UNREACHABLE: u16 = 6010;
/// The router answers with ICMP admin prohibited (type 3 code 13).
const PROHIBITED: u16 = 6050;
/// A listener on the peer.
const OPEN: u16 = 6020;

// ---- the helper run inside the lab ----

#[test]
#[ignore = "helper: the engine in the LAN sweeping the peer, run by lab_tcp_icmp_evidence"]
fn lan_engine_tcp() {
    let Some(addrs) = natkit_lab::helper_addrs("lan_engine_tcp").expect("lab env") else {
        return;
    };
    let spec = format!("{FIRST}-{LAST}/tcp").parse().expect("spec");
    let plan = ProbePlan::from_spec(&[IpAddr::V4(addrs.peer)], &spec).expect("plan");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // In plan order (resets between the rejected ports), then shuffled.
    for order in [PortOrder::AsGiven, PortOrder::Shuffled { seed: 7 }] {
        let config = ProbeConfig {
            order,
            ..ProbeConfig::default()
        };
        let summary = runtime
            .block_on(async { Prober::new(config)?.run(plan.clone()).await })
            .expect("probe");
        for v in &summary.verdicts {
            println!("{}", serde_json::to_string(v).expect("json"));
        }
    }
}

// ---- the test ----

fn nft(lab: &Lab, rules: &str) {
    lab.exec_ok(Node::Rtr, &["nft", rules]).expect("nft");
}

#[test]
fn lab_tcp_icmp_evidence() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .build()
        .expect("lab");
    let addrs = *lab.addrs();
    nft(&lab, "add table inet nkprobe");
    nft(
        &lab,
        "add chain inet nkprobe forward_filter { type filter hook forward priority -10; policy accept; }",
    );
    for (port, icmp) in [
        (PORT_UNREACHABLE, "port-unreachable"),
        (PROHIBITED, "admin-prohibited"),
    ] {
        nft(
            &lab,
            &format!(
                "add rule inet nkprobe forward_filter ip daddr {} tcp dport {port} \
                 reject with icmp type {icmp}",
                addrs.peer
            ),
        );
    }
    let p = OPEN.to_string();
    let _listener = lab
        .spawn(Node::Wan, &["nc", "-n", "-k", "-l", "-p", &p])
        .expect("spawn nc");
    lab.wait_listening(Node::Wan, Proto::Tcp, OPEN, Duration::from_secs(5))
        .expect("nc listening");

    let out = lab
        .test_helper(Node::Lan, "lan_engine_tcp")
        .expect("helper")
        .output()
        .expect("run engine");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "engine failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<PortVerdict> = stdout
        .lines()
        .filter_map(|l| l.find('{').map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).expect("verdict json"))
        .collect();
    let ports = usize::from(LAST - FIRST + 1);
    assert_eq!(
        verdicts.len(),
        2 * ports,
        "two runs of every port:\n{stdout}"
    );

    let router = IpAddr::V4(addrs.rtr_lan);
    for run in verdicts.chunks(ports) {
        let by_port: BTreeMap<u16, &PortVerdict> =
            run.iter().map(|v| (v.probe.addr.port(), v)).collect();
        assert_eq!(by_port.len(), ports);
        for (&port, v) in &by_port {
            assert_eq!(v.probe.addr, SocketAddr::new(IpAddr::V4(addrs.peer), port));
            assert_eq!(v.probe.protocol, Protocol::Tcp);
            match port {
                PORT_UNREACHABLE | PROHIBITED => {
                    let code = if port == PROHIBITED { 13 } else { 3 };
                    assert_eq!(v.state, PortState::Filtered, "{v}");
                    match v.reason {
                        Reason::Icmp {
                            report,
                            from_target,
                            ..
                        } => {
                            assert_eq!(report.kind, IcmpKind::v4(3, code), "{v}");
                            assert_eq!(report.offender, Some(router), "{v}");
                            assert!(!from_target, "{v}");
                        }
                        other => panic!("port {port}: expected ICMP evidence, got {other:?}"),
                    }
                }
                OPEN => {
                    assert_eq!(v.state, PortState::Open, "{v}");
                    assert!(matches!(v.reason, Reason::Connected { .. }), "{v}");
                }
                _ => {
                    assert_eq!(v.state, PortState::Closed, "{v}");
                    assert!(matches!(v.reason, Reason::Reset { .. }), "{v}");
                }
            }
        }
    }
    lab.down().expect("lab down");
}
