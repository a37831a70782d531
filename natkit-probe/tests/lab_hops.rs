//! The hop trace in the NAT lab (root only; fails, never skips, without it).
//!
//! From the LAN host toward the lab's STUN server (stund on STUN1:3478), with
//! no mapping protocol on the router:
//! - behind the carrier-grade NAT (`--double-nat`): hop 1 is the home router
//!   (192.168.77.1), hop 2 the ISP NAT's inside address (100.64.0.1, shared),
//!   hop 3 the STUN server: double NAT, named carrier-grade;
//! - behind one NAT: the router, then the STUN server: single NAT;
//! - behind the carrier-grade NAT when it sends no ICMP time exceeded (as some
//!   ISP equipment does): unknown, never single NAT.
//!
//! Linux rate-limits the ICMP errors a router sends to one host (a burst of 6,
//! then one per second: `net.ipv4.icmp_ratelimit`, `icmp_ratemask` includes
//! time exceeded), so the runs are a second apart, as a user's would be.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use natkit_core::AddressScope;
use natkit_lab::{Lab, Node, require_root};
use natkit_probe::{
    Hop, HopAnswer, HopConclusion, HopConfig, HopsUndecided, RouterFacts, UpstreamSeen,
    check_upstream_nat,
};

const RUNS: usize = 6;
const STUN_PORT: u16 = 3478;

// ---- the helper run inside the LAN ----

#[test]
#[ignore = "helper: the hop trace in the LAN, run by the lab_hops tests"]
fn lan_hops() {
    let addrs = natkit_lab::helper_addrs("lan_hops")
        .expect("lab env")
        .expect("lan_hops runs only inside a lab, started by the lab_hops tests");
    let target = SocketAddr::new(IpAddr::V4(addrs.stun1), STUN_PORT);
    let facts = RouterFacts {
        gateway: Some(IpAddr::V4(addrs.rtr_lan)),
        wan: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for run in 0..RUNS {
        if run > 0 {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let started = Instant::now();
        let c = runtime.block_on(check_upstream_nat(target, HopConfig::default(), facts));
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("HOPS {ms:.2} {}", serde_json::to_string(&c).expect("json"));
    }
}

// ---- the tests ----

/// Runs the helper in the LAN; each run's conclusion and duration (ms).
fn trace(lab: &Lab) -> Vec<(HopConclusion, f64)> {
    let runs: Vec<(HopConclusion, f64)> = lab
        .helper_lines(Node::Lan, "lan_hops", "HOPS ")
        .iter()
        .map(|l| {
            let (ms, json) = l.split_once(' ').expect("ms and json");
            (
                serde_json::from_str(json).expect("conclusion json"),
                ms.parse().expect("ms"),
            )
        })
        .collect();
    assert_eq!(runs.len(), RUNS, "{runs:?}");
    runs
}

/// Prints the runs' durations, sorted, and returns the largest.
fn report(name: &str, runs: &[(HopConclusion, f64)]) -> f64 {
    let mut ms: Vec<f64> = runs.iter().map(|(_, ms)| *ms).collect();
    ms.sort_by(f64::total_cmp);
    println!("{name}: {} runs, ms sorted {ms:?}", ms.len());
    for h in runs[0].0.hops() {
        println!("  {h}");
    }
    println!("  => {}", runs[0].0);
    ms.last().copied().unwrap_or_default()
}

/// Each hop as (ttl, address, what answered).
fn path(hops: &[Hop]) -> Vec<(u8, Option<IpAddr>, &'static str)> {
    hops.iter()
        .map(|h| {
            let seen = match h.answer {
                HopAnswer::Router { .. } => "router",
                HopAnswer::Target { .. } => "target",
                HopAnswer::Unreachable { .. } => "unreachable",
                HopAnswer::Silent => "silent",
            };
            (h.ttl, h.address, seen)
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A hang guard, not a timing rule (the schedule's bound is proven on a
/// simulated clock): the trace never runs past its bound plus a loaded
/// machine's slack.
fn assert_bounded(worst_ms: f64) {
    let bound = HopConfig::default().bound().as_secs_f64() * 1000.0;
    assert!(worst_ms < bound + 2000.0, "a run took {worst_ms} ms");
}

#[test]
fn lab_hops_double_nat_without_mapping_protocol() {
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .stund(true)
        .build()
        .expect("lab");
    let a = *lab.addrs();
    assert_eq!(lab.miniupnpd_pid(), None, "no mapping protocol here");
    let runs = trace(&lab);
    let worst = report("double NAT", &runs);
    for (c, _) in &runs {
        let HopConclusion::DoubleNat { upstream, hops } = c else {
            panic!("expected double NAT, got {c}: {c:?}");
        };
        assert_eq!(upstream.address, ip("100.64.0.1"), "{c}");
        assert_eq!(Some(upstream.address), a.isp_lan.map(IpAddr::V4));
        assert_eq!(upstream.scope, AddressScope::Shared);
        assert!(upstream.carrier_grade, "{c}");
        assert_eq!(upstream.seen, UpstreamSeen::NextHop);
        assert!(c.to_string().contains("carrier-grade NAT"), "{c}");
        assert_eq!(
            path(hops),
            [
                (1, Some(IpAddr::V4(a.rtr_lan)), "router"),
                (2, Some(ip("100.64.0.1")), "router"),
                (3, Some(IpAddr::V4(a.stun1)), "target"),
            ],
            "{c:?}"
        );
    }
    assert_bounded(worst);
    lab.down().expect("lab down");
}

#[test]
fn lab_hops_single_nat_is_no_false_alarm() {
    require_root();
    let lab = Lab::builder().stund(true).build().expect("lab");
    let a = *lab.addrs();
    let runs = trace(&lab);
    let worst = report("single NAT", &runs);
    for (c, _) in &runs {
        let HopConclusion::SingleNat { hops } = c else {
            panic!("expected single NAT, got {c}: {c:?}");
        };
        assert_eq!(
            path(hops),
            [
                (1, Some(IpAddr::V4(a.rtr_lan)), "router"),
                (2, Some(IpAddr::V4(a.stun1)), "target"),
            ],
            "{c:?}"
        );
    }
    assert_bounded(worst);
    lab.down().expect("lab down");
}

#[test]
fn lab_hops_silent_carrier_nat_is_unknown() {
    require_root();
    let lab = Lab::builder()
        .double_nat(true)
        .stund(true)
        .build()
        .expect("lab");
    let a = *lab.addrs();
    // The ISP NAT sends no time exceeded (its own output, before it leaves).
    for rule in [
        "add table inet nksilent",
        "add chain inet nksilent out { type filter hook output priority 0; policy accept; }",
        "add rule inet nksilent out icmp type time-exceeded counter drop",
    ] {
        lab.exec_ok(Node::Isp, &["nft", rule]).expect("nft");
    }
    let runs = trace(&lab);
    let worst = report("silent carrier-grade NAT", &runs);
    for (c, _) in &runs {
        let HopConclusion::Unknown { why, hops } = c else {
            panic!("expected unknown, got {c}: {c:?}");
        };
        assert_eq!(*why, HopsUndecided::NextHopSilent, "{c}");
        assert_eq!(
            path(hops),
            [
                (1, Some(IpAddr::V4(a.rtr_lan)), "router"),
                (2, None, "silent"),
                (3, Some(IpAddr::V4(a.stun1)), "target"),
            ],
            "{c:?}"
        );
    }
    let dropped = lab
        .exec_ok(
            Node::Isp,
            &["nft", "list", "chain", "inet", "nksilent", "out"],
        )
        .expect("nft list");
    assert!(
        !dropped.contains("packets 0 "),
        "the ISP NAT never tried to send a time exceeded:\n{dropped}"
    );
    assert_bounded(worst);
    lab.down().expect("lab down");
}

#[test]
fn lab_hops_under_loss_are_right_or_unknown() {
    require_root();
    // 30 % of the packets entering or leaving the home router are dropped: a
    // datagram, or its time exceeded, may be lost on both tries.
    let lab = Lab::builder()
        .double_nat(true)
        .stund(true)
        .loss(30)
        .build()
        .expect("lab");
    let mut runs = trace(&lab);
    runs.extend(trace(&lab));
    let worst = report("double NAT, 30 % loss at the router", &runs);
    let mut decided = 0;
    for (c, _) in &runs {
        match c {
            HopConclusion::DoubleNat { upstream, .. } => {
                assert_eq!(upstream.address, ip("100.64.0.1"), "{c}");
                assert!(upstream.carrier_grade, "{c}");
                decided += 1;
            }
            HopConclusion::Unknown { .. } => {}
            other => panic!("a wrong answer under loss: {other}: {other:?}"),
        }
    }
    println!(
        "double NAT, 30 % loss: {decided}/{} double_nat, the rest unknown",
        runs.len()
    );
    assert_bounded(worst);
    lab.down().expect("lab down");
}
