//! The SIP ALG check under loss in the NAT lab (root only; fails, never skips,
//! without it): the SIP echo in the wan namespace, the check run again and again
//! from the LAN host through a router that drops 30 % of the packets, with the
//! kernel's SIP ALG off and on. Without the ALG the check must never claim one
//! (`rewrites` or `drops`); with it, never miss it (`not_seen`). The distribution
//! of verdicts is printed for docs/RELIABILITY.md.
//!
//! natkit's code runs in the lab namespaces as helper processes (this test binary
//! re-run by `Lab::test_helper`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use natkit_probe::sip::{SipCheckConfig, SipEcho, SipEchoConfig, check_sip_alg};

const CONTROL_PORT: u16 = 7007;
const RUNS: usize = 20;
const MARK: &str = "sip-check: ";

#[test]
#[ignore = "helper: the SIP echo in wan, run by the lab_sip tests"]
fn wan_sip_echo() {
    let a = natkit_lab::helper_addrs("wan_sip_echo")
        .expect("lab env")
        .expect("wan_sip_echo runs only inside a lab, started by the lab_sip tests");
    let peer = IpAddr::V4(a.peer);
    // The production limits: 20 checks back to back from one source under loss
    // stay within them.
    let config = SipEchoConfig::new(peer, Some(SocketAddr::new(peer, CONTROL_PORT)));
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let echo = SipEcho::bind(config).await.expect("bind the SIP echo");
            println!("ready {}", echo.sip_addr());
            let _ = echo.run().await;
        });
}

#[test]
#[ignore = "helper: the SIP ALG check in the LAN, run by the lab_sip tests"]
fn lan_sip_checks() {
    let a = natkit_lab::helper_addrs("lan_sip_checks")
        .expect("lab env")
        .expect("lan_sip_checks runs only inside a lab, started by the lab_sip tests");
    let config = SipCheckConfig::for_dialback(SocketAddr::new(IpAddr::V4(a.peer), CONTROL_PORT));
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            for _ in 0..RUNS {
                let c = check_sip_alg(&config).await;
                let outcomes: Vec<&str> = c.legs.iter().map(|l| l.outcome.as_str()).collect();
                println!("{MARK}{:?} {:?} {}", c.verdict, c.why, outcomes.join(","));
            }
        });
}

/// Runs the checks through a router dropping 30 % with the ALG on or off; the
/// verdicts and their counts.
fn verdicts_under_loss(sip_alg: bool) -> BTreeMap<String, usize> {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .loss(30)
        .sip_alg(sip_alg)
        .build()
        .expect("lab up");
    let mut cmd = lab
        .test_helper(Node::Wan, "wan_sip_echo")
        .expect("helper command");
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let _echo = LabChild::spawn(&mut cmd).expect("start the SIP echo");
    for (proto, port) in [
        (Proto::Udp, 5060),
        (Proto::Tcp, 5060),
        (Proto::Udp, CONTROL_PORT),
    ] {
        lab.wait_listening(Node::Wan, proto, port, Duration::from_secs(10))
            .expect("the SIP echo listens");
    }
    let lines = lab.helper_lines(Node::Lan, "lan_sip_checks", MARK);
    assert_eq!(lines.len(), RUNS, "{lines:#?}");
    let mut counts = BTreeMap::new();
    for l in &lines {
        *counts.entry(l.clone()).or_insert(0) += 1;
    }
    eprintln!(
        "SIP ALG {}, 30 % loss, {RUNS} checks:",
        if sip_alg { "on" } else { "off" }
    );
    for (line, n) in &counts {
        eprintln!("  {n:3} × {line}");
    }
    counts
}

fn verdict_count(counts: &BTreeMap<String, usize>, verdict: &str) -> usize {
    counts
        .iter()
        .filter(|(l, _)| l.split(' ').next() == Some(verdict))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn no_alg_under_loss_is_never_claimed() {
    let counts = verdicts_under_loss(false);
    assert_eq!(verdict_count(&counts, "Rewrites"), 0, "{counts:#?}");
    assert_eq!(verdict_count(&counts, "Drops"), 0, "{counts:#?}");
    // The rest is `inconclusive` (TCP without an answer in 2 s: each SYN round
    // trip is lost 51 % of the time, two tries fit, so about a quarter of the
    // checks); measured 12 to 15 of 20 decide. A quarter deciding is far below
    // that (p < 0.001 at 0.65 per check), yet proves the check is not silenced.
    assert!(verdict_count(&counts, "NotSeen") >= RUNS / 4, "{counts:#?}");
}

#[test]
fn the_kernel_alg_under_loss_is_never_missed() {
    let counts = verdicts_under_loss(true);
    assert_eq!(verdict_count(&counts, "NotSeen"), 0, "{counts:#?}");
    assert!(
        verdict_count(&counts, "Rewrites") >= RUNS / 2,
        "{counts:#?}"
    );
}
