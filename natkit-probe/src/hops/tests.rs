use std::time::Instant;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const MS: Duration = Duration::from_millis(1);

fn r(ttl: u8, a: &str) -> Hop {
    Hop::router(ttl, ip(a), MS)
}

fn t(ttl: u8, a: &str) -> Hop {
    Hop::target(ttl, ip(a), MS)
}

const STUN: &str = "88.77.66.10";

fn judge(hops: &[Hop], router: RouterFacts) -> HopConclusion {
    conclude_hops(ip(STUN), hops.to_vec(), router)
}

fn none() -> RouterFacts {
    RouterFacts::default()
}

fn upstream(c: &HopConclusion) -> UpstreamNat {
    *c.upstream()
        .unwrap_or_else(|| panic!("not double NAT: {c:?}"))
}

#[test]
fn single_nat_home_line() {
    // Home router, then the ISP's public gateway.
    let hops = [
        r(1, "192.168.1.1"),
        r(2, "62.155.240.1"),
        r(3, "62.154.5.2"),
    ];
    assert_eq!(
        judge(&hops, none()),
        HopConclusion::SingleNat {
            hops: hops.to_vec()
        }
    );
    // The lab: the STUN server is the router's next hop.
    let lab = [r(1, "192.168.77.1"), t(2, STUN)];
    assert!(matches!(
        judge(&lab, none()),
        HopConclusion::SingleNat { .. }
    ));
}

#[test]
fn private_core_routers_after_a_public_hop_are_not_a_nat() {
    // ISPs number core routers from RFC 1918 and 100.64/10.
    let hops = [
        r(1, "192.168.1.1"),
        r(2, "80.81.82.1"),
        r(3, "10.20.30.1"),
        r(4, "100.70.0.1"),
        r(5, "172.16.9.9"),
        r(6, "80.81.200.1"),
    ];
    assert!(matches!(
        judge(&hops, none()),
        HopConclusion::SingleNat { .. }
    ));
}

#[test]
fn shared_next_hop_is_carrier_grade_nat() {
    // The lab's --double-nat: home router, then the ISP NAT's inside address.
    let hops = [r(1, "192.168.77.1"), r(2, "100.64.0.1"), t(3, STUN)];
    let c = judge(&hops, none());
    let up = upstream(&c);
    assert_eq!(up.address, ip("100.64.0.1"));
    assert_eq!(up.scope, AddressScope::Shared);
    assert!(up.carrier_grade);
    assert_eq!(up.seen, UpstreamSeen::NextHop);
    assert_eq!(c.hops(), &hops);
    assert!(c.to_string().contains("carrier-grade NAT"), "{c}");
}

#[test]
fn private_next_hop_is_another_nat() {
    // A mesh or second router behind the ISP's box.
    let hops = [r(1, "192.168.1.1"), r(2, "192.168.0.1"), r(3, "84.1.2.3")];
    let up = upstream(&judge(&hops, none()));
    assert_eq!(up.scope, AddressScope::Private);
    assert!(!up.carrier_grade);
    // Corroborated by a private WAN address the router reported.
    let facts = RouterFacts {
        wan: Some(ip("192.168.0.23")),
        ..none()
    };
    assert_eq!(
        upstream(&judge(&hops, facts)).seen,
        UpstreamSeen::NextHopAndRouterWan
    );
}

#[test]
fn a_public_wan_address_overrides_a_private_next_hop() {
    // Some ISPs number the customer link privately; the router's public WAN
    // address says there is no second NAT.
    let hops = [r(1, "192.168.1.1"), r(2, "10.53.0.1"), r(3, "84.1.2.3")];
    let facts = RouterFacts {
        wan: Some(ip("84.1.9.9")),
        ..none()
    };
    assert!(matches!(
        judge(&hops, facts),
        HopConclusion::SingleNat { .. }
    ));
}

#[test]
fn a_reserved_wan_address_is_double_nat_even_with_silent_hops() {
    let hops = [r(1, "192.168.77.1"), Hop::silent(2), Hop::silent(3)];
    let facts = RouterFacts {
        wan: Some(ip("100.64.0.2")),
        ..none()
    };
    let up = upstream(&judge(&hops, facts));
    assert_eq!(up.seen, UpstreamSeen::RouterWan);
    assert!(up.carrier_grade);
    assert_eq!(up.address, ip("100.64.0.2"));
    // And a public next hop does not clear it.
    let hops = [r(1, "192.168.77.1"), r(2, "84.1.2.3")];
    assert_eq!(upstream(&judge(&hops, facts)).seen, UpstreamSeen::RouterWan);
}

#[test]
fn silence_is_not_single_nat() {
    // A silent CGN at TTL 2 followed by the public target must not pass for
    // "one NAT".
    let hops = [r(1, "192.168.77.1"), Hop::silent(2), t(3, STUN)];
    assert_eq!(
        judge(&hops, none()),
        HopConclusion::Unknown {
            why: HopsUndecided::NextHopSilent,
            hops: hops.to_vec()
        }
    );
    // Every hop silent, no gateway.
    let silent: Vec<Hop> = (1..=6).map(Hop::silent).collect();
    assert!(matches!(
        judge(&silent, none()),
        HopConclusion::Unknown {
            why: HopsUndecided::FirstHopSilent,
            ..
        }
    ));
    // A public WAN address from the router still answers.
    let facts = RouterFacts {
        wan: Some(ip("84.1.9.9")),
        ..none()
    };
    assert!(matches!(
        judge(&silent, facts),
        HopConclusion::SingleNat { .. }
    ));
}

#[test]
fn the_gateway_stands_in_for_a_silent_router() {
    let hops = [Hop::silent(1), r(2, "100.64.12.1"), r(3, "84.1.2.3")];
    assert!(matches!(
        judge(&hops, none()),
        HopConclusion::Unknown {
            why: HopsUndecided::FirstHopSilent,
            ..
        }
    ));
    let facts = RouterFacts {
        gateway: Some(ip("192.168.1.1")),
        ..none()
    };
    assert!(upstream(&judge(&hops, facts)).carrier_grade);
}

#[test]
fn a_router_answering_twice_is_skipped() {
    let hops = [r(1, "192.168.1.1"), r(2, "192.168.1.1"), r(3, "100.64.0.1")];
    assert_eq!(upstream(&judge(&hops, none())).address, ip("100.64.0.1"));
}

#[test]
fn a_dead_uplink_is_undecided() {
    let unreach = Hop::new(
        2,
        Some(ip("192.168.1.1")),
        HopAnswer::Unreachable {
            icmp: IcmpKind::v4(3, 0),
            rtt: MS,
        },
    );
    let hops = [r(1, "192.168.1.1"), unreach];
    assert!(matches!(
        judge(&hops, none()),
        HopConclusion::Unknown {
            why: HopsUndecided::NothingBeyondRouter,
            ..
        }
    ));
    // Only one hop traced.
    assert!(matches!(
        judge(&[r(1, "192.168.1.1")], none()),
        HopConclusion::Unknown {
            why: HopsUndecided::NothingBeyondRouter,
            ..
        }
    ));
}

#[test]
fn a_public_first_hop_or_private_target_is_undecided() {
    let hops = [r(1, "84.1.2.1"), r(2, "10.0.0.1")];
    assert!(matches!(
        judge(&hops, none()),
        HopConclusion::Unknown {
            why: HopsUndecided::FirstHopPublic { .. },
            ..
        }
    ));
    let c = conclude_hops(ip("10.1.1.1"), vec![r(1, "192.168.1.1")], none());
    assert!(matches!(
        c,
        HopConclusion::Unknown {
            why: HopsUndecided::TargetNotPublic { .. },
            ..
        }
    ));
}

#[test]
fn icmp_errors_become_replies() {
    let target = ip(STUN);
    let rep = |kind, from: &str| IcmpReport {
        kind,
        offender: Some(ip(from)),
        errno: 113,
    };
    assert_eq!(
        HopReply::from_icmp(&rep(IcmpKind::v4(11, 0), "100.64.0.1"), target),
        Some(HopReply::TimeExceeded {
            from: Some(ip("100.64.0.1"))
        })
    );
    assert_eq!(
        HopReply::from_icmp(&rep(IcmpKind::v6(3, 0), "::ffff:10.0.0.1"), target),
        Some(HopReply::TimeExceeded {
            from: Some(ip("10.0.0.1"))
        })
    );
    assert_eq!(
        HopReply::from_icmp(&rep(IcmpKind::v4(3, 3), STUN), target),
        Some(HopReply::Reached)
    );
    assert!(matches!(
        HopReply::from_icmp(&rep(IcmpKind::v4(3, 3), "10.0.0.1"), target),
        Some(HopReply::Unreachable { .. })
    ));
    assert!(matches!(
        HopReply::from_icmp(&rep(IcmpKind::v4(3, 1), "192.168.1.1"), target),
        Some(HopReply::Unreachable { .. })
    ));
    assert_eq!(
        HopReply::from_icmp(&rep(IcmpKind::v4(3, 4), "10.0.0.1"), target),
        None
    );
    assert_eq!(
        HopReply::from_icmp(&rep(IcmpKind::v4(12, 0), "10.0.0.1"), target),
        None
    );
}

fn cfg() -> HopConfig {
    HopConfig {
        max_hops: 4,
        try_timeout: Duration::from_millis(500),
        tries: 2,
        payload: PayloadKind::Stun,
    }
}

fn drain(s: &mut HopSchedule, now: Instant) -> Vec<HopTry> {
    let mut out = Vec::new();
    while let HopStep::Send(t) = s.poll(now) {
        out.push(t);
    }
    out
}

#[test]
fn every_ttl_goes_out_at_once_and_silent_ones_once_more() {
    let t0 = Instant::now();
    let mut s = HopSchedule::new(cfg(), ip(STUN), t0);
    let first = drain(&mut s, t0);
    assert_eq!(
        first,
        (1..=4)
            .map(|ttl| HopTry { ttl, attempt: 0 })
            .collect::<Vec<_>>()
    );
    assert_eq!(s.poll(t0), HopStep::WaitUntil(t0 + 500 * MS));
    let at = t0 + 3 * MS;
    s.on_reply(
        HopTry { ttl: 1, attempt: 0 },
        HopReply::TimeExceeded {
            from: Some(ip("192.168.77.1")),
        },
        at,
    );
    // Before the timeout nothing more goes out.
    assert!(drain(&mut s, t0 + 499 * MS).is_empty());
    let second = drain(&mut s, t0 + 500 * MS);
    assert_eq!(
        second,
        (2..=4)
            .map(|ttl| HopTry { ttl, attempt: 1 })
            .collect::<Vec<_>>()
    );
    // No third try: the wait runs to the end.
    assert_eq!(s.poll(t0 + 600 * MS), HopStep::WaitUntil(t0 + 1000 * MS));
    assert_eq!(s.poll(t0 + 1000 * MS), HopStep::Done);
    let hops = s.hops();
    assert_eq!(hops.len(), 4);
    assert_eq!(hops[0], r(1, "192.168.77.1").with_rtt(3 * MS));
    assert!(hops[1..].iter().all(|h| h.answer == HopAnswer::Silent));
    assert_eq!(s.deadline(), t0 + cfg().bound());
}

#[test]
fn the_target_ends_the_trace_early_and_trims_the_hops() {
    let t0 = Instant::now();
    let mut s = HopSchedule::new(cfg(), ip(STUN), t0);
    drain(&mut s, t0);
    let te = |a: &str| HopReply::TimeExceeded { from: Some(ip(a)) };
    s.on_reply(
        HopTry { ttl: 3, attempt: 0 },
        HopReply::Reached,
        t0 + 2 * MS,
    );
    s.on_reply(
        HopTry { ttl: 4, attempt: 0 },
        HopReply::Reached,
        t0 + 2 * MS,
    );
    s.on_reply(
        HopTry { ttl: 1, attempt: 0 },
        te("192.168.77.1"),
        t0 + 3 * MS,
    );
    assert!(!s.is_done(t0 + 3 * MS));
    s.on_reply(HopTry { ttl: 2, attempt: 0 }, te("100.64.0.1"), t0 + 4 * MS);
    assert_eq!(s.poll(t0 + 4 * MS), HopStep::Done);
    let hops = s.hops();
    assert_eq!(
        hops,
        [
            r(1, "192.168.77.1").with_rtt(3 * MS),
            r(2, "100.64.0.1").with_rtt(4 * MS),
            t(3, STUN).with_rtt(2 * MS),
        ]
    );
}

#[test]
fn a_retry_answer_is_timed_from_the_retry_and_duplicates_are_ignored() {
    let t0 = Instant::now();
    let mut s = HopSchedule::new(
        HopConfig {
            max_hops: 1,
            ..cfg()
        },
        ip(STUN),
        t0,
    );
    drain(&mut s, t0);
    let retry_at = t0 + 500 * MS;
    assert_eq!(drain(&mut s, retry_at), [HopTry { ttl: 1, attempt: 1 }]);
    let te = HopReply::TimeExceeded {
        from: Some(ip("192.168.1.1")),
    };
    s.on_reply(HopTry { ttl: 1, attempt: 1 }, te, retry_at + 7 * MS);
    // A late answer to the first try changes nothing; nor does a try never sent.
    s.on_reply(
        HopTry { ttl: 1, attempt: 0 },
        HopReply::Reached,
        retry_at + 8 * MS,
    );
    s.on_reply(HopTry { ttl: 1, attempt: 3 }, HopReply::Reached, retry_at);
    s.on_reply(HopTry { ttl: 9, attempt: 0 }, HopReply::Reached, retry_at);
    assert_eq!(s.poll(retry_at + 8 * MS), HopStep::Done);
    assert_eq!(s.hops(), [r(1, "192.168.1.1").with_rtt(7 * MS)]);
}

#[test]
fn out_of_range_settings_are_clamped_and_bounded() {
    let t0 = Instant::now();
    let c = HopConfig {
        max_hops: 0,
        tries: 0,
        ..cfg()
    };
    let mut s = HopSchedule::new(c, ip(STUN), t0);
    assert_eq!(s.config().max_hops, 1);
    assert_eq!(s.config().tries, 1);
    assert_eq!(drain(&mut s, t0).len(), 1);
    assert_eq!(s.poll(t0 + 500 * MS), HopStep::Done);
    let c = HopConfig {
        max_hops: 200,
        tries: 9,
        ..cfg()
    };
    let s = HopSchedule::new(c, ip(STUN), t0);
    assert_eq!(s.config().max_hops, 32);
    assert_eq!(s.deadline(), t0 + 2000 * MS);
}

#[test]
fn hops_read_well() {
    assert_eq!(
        r(2, "100.64.0.1")
            .with_rtt(Duration::from_micros(412))
            .to_string(),
        " 2  100.64.0.1 (shared)  0.4 ms"
    );
    assert_eq!(Hop::silent(3).to_string(), " 3  *  no answer");
    assert_eq!(
        t(3, STUN).to_string(),
        " 3  88.77.66.10 (global)  1.0 ms  target"
    );
}

#[cfg(feature = "serde")]
#[test]
fn conclusions_serialize_with_their_evidence() {
    let hops = [r(1, "192.168.77.1"), r(2, "100.64.0.1"), t(3, STUN)];
    let c = judge(&hops, none());
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["nat"], "double_nat");
    assert_eq!(v["upstream"]["carrier_grade"], true);
    assert_eq!(v["upstream"]["seen"], "next_hop");
    assert_eq!(v["hops"][1]["address"], "100.64.0.1");
    assert_eq!(v["hops"][1]["scope"], "shared");
    assert_eq!(v["hops"][1]["answer"]["seen"], "router");
    assert_eq!(v["hops"][1]["answer"]["rtt_us"], 1000);
    let back: HopConclusion = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    let n = serde_json::to_value(HopConclusion::NotChecked {
        why: HopsNotChecked::Platform,
    })
    .unwrap();
    assert_eq!(n["nat"], "not_checked");
    assert_eq!(n["why"]["reason"], "platform");
}

impl Hop {
    fn with_rtt(mut self, d: Duration) -> Hop {
        match &mut self.answer {
            HopAnswer::Router { rtt }
            | HopAnswer::Target { rtt }
            | HopAnswer::Unreachable { rtt, .. } => *rtt = d,
            HopAnswer::Silent => {}
        }
        self
    }
}
