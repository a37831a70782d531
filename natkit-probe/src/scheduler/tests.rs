use super::*;
use crate::icmp::IcmpKind;
use crate::order::PortOrder;
use crate::rate::RateLimit;
use std::net::{Ipv4Addr, SocketAddr};

const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn probes(n: u16, protocol: Protocol) -> Vec<PortProbe> {
    (1..=n)
        .map(|p| PortProbe {
            addr: SocketAddr::new(HOST, p),
            protocol,
        })
        .collect()
}

fn config() -> ProbeConfig {
    ProbeConfig {
        order: PortOrder::AsGiven,
        ..ProbeConfig::default()
    }
}

#[test]
fn a_seed_orders_a_plan_as_it_orders_its_probes() {
    let t0 = Instant::now();
    let targets = [HOST, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)];
    let spec: natkit_core::PortSpec = "1-300/tcp,53".parse().unwrap();
    let plan = ProbePlan::from_spec(&targets, &spec).unwrap();
    let order = PortOrder::Shuffled { seed: 99 };
    // The order a shuffle of the whole probe list gives…
    let mut want: Vec<PortProbe> = plan.iter().collect();
    order.apply(&mut want);
    // …is the order the scheduler starts them in.
    let cfg = ProbeConfig {
        order,
        ..ProbeConfig::default()
    };
    let mut s = Scheduler::for_plan(cfg, plan, usize::MAX, t0);
    let got: Vec<PortProbe> = (0..want.len())
        .map(|_| expect_launch(&mut s, t0).probe)
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.poll(t0), Action::WaitForOutcome);
}

fn expect_launch(s: &mut Scheduler, now: Instant) -> Launch {
    match s.poll(now) {
        Action::Launch(l) => l,
        other => panic!("expected a launch, got {other:?}"),
    }
}

fn verdicts(s: &mut Scheduler, now: Instant) -> Vec<PortVerdict> {
    let mut out = Vec::new();
    while let Some(e) = s.poll_event(now) {
        if let ProbeEvent::Verdict(v) = e {
            out.push(v);
        }
    }
    out
}

#[test]
fn answers_become_verdicts_with_their_evidence() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(3, Protocol::Tcp), 10, t0);
    let a = expect_launch(&mut s, t0);
    let b = expect_launch(&mut s, t0);
    let c = expect_launch(&mut s, t0);
    assert_eq!(s.poll(t0), Action::WaitForOutcome);
    let rtt = Duration::from_millis(5);
    s.on_outcome(a.id, AttemptOutcome::Connected { rtt }, t0)
        .unwrap();
    s.on_outcome(b.id, AttemptOutcome::Reset { rtt }, t0)
        .unwrap();
    let report = IcmpReport {
        kind: IcmpKind::v4(3, 13),
        offender: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
        errno: 113,
    };
    s.on_outcome(c.id, AttemptOutcome::Icmp { report, rtt }, t0)
        .unwrap();
    let v = verdicts(&mut s, t0);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].state, PortState::Open);
    assert_eq!(v[0].reason, Reason::Connected { rtt });
    assert_eq!(v[1].state, PortState::Closed);
    assert_eq!(v[2].state, PortState::Filtered);
    assert!(matches!(
        v[2].reason,
        Reason::Icmp {
            from_target: false,
            ..
        }
    ));
    assert_eq!(s.poll(t0), Action::Done);
    assert_eq!(s.rtt_of(HOST).unwrap().samples(), 3);
}

#[test]
fn silence_is_retried_with_doubled_timeout_then_concluded() {
    let t0 = Instant::now();
    let cfg = ProbeConfig {
        tries: 3,
        ..config()
    };
    let mut s = Scheduler::new(cfg, probes(1, Protocol::Udp), 10, t0);
    let mut now = t0;
    let mut timeouts = Vec::new();
    for attempt in 1..=3 {
        let l = expect_launch(&mut s, now);
        assert_eq!(l.attempt, attempt);
        assert_eq!(l.payload, Some(PayloadKind::Empty));
        timeouts.push(l.timeout);
        now += l.timeout;
        s.on_outcome(l.id, AttemptOutcome::Silence, now).unwrap();
    }
    let initial = RttConfig::default().initial_rto;
    let max = RttConfig::default().max_rto;
    assert_eq!(
        timeouts,
        [initial, (initial * 2).min(max), (initial * 4).min(max)]
    );
    let v = verdicts(&mut s, now);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].state, PortState::OpenFiltered);
    assert_eq!(
        v[0].reason,
        Reason::Silence {
            tries: 3,
            waited: timeouts.iter().sum()
        }
    );
    assert_eq!(v[0].tries, 3);
    assert_eq!(s.poll(now), Action::Done);
}

#[test]
fn tcp_silence_is_filtered() {
    let t0 = Instant::now();
    let cfg = ProbeConfig {
        tries: 1,
        ..config()
    };
    let mut s = Scheduler::new(cfg, probes(1, Protocol::Tcp), 10, t0);
    let l = expect_launch(&mut s, t0);
    s.on_outcome(l.id, AttemptOutcome::Silence, t0).unwrap();
    assert_eq!(verdicts(&mut s, t0)[0].state, PortState::Filtered);
}

#[test]
fn rtt_samples_shorten_later_timeouts() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(2, Protocol::Tcp), 1, t0);
    let a = expect_launch(&mut s, t0);
    assert_eq!(a.timeout, RttConfig::default().initial_rto);
    let rtt = Duration::from_millis(40);
    s.on_outcome(a.id, AttemptOutcome::Reset { rtt }, t0)
        .unwrap();
    let b = expect_launch(&mut s, t0);
    // 40 ms + 4 × 20 ms
    assert_eq!(b.timeout, Duration::from_millis(120));
}

#[test]
fn seeded_order_is_deterministic() {
    let order = |seed: u64| {
        let t0 = Instant::now();
        let cfg = ProbeConfig {
            order: PortOrder::Shuffled { seed },
            ..ProbeConfig::default()
        };
        let mut s = Scheduler::new(cfg, probes(500, Protocol::Tcp), 1000, t0);
        let mut ports = Vec::new();
        while let Action::Launch(l) = s.poll(t0) {
            ports.push((l.probe.addr.port(), l.nonce));
        }
        ports
    };
    let a = order(99);
    assert_eq!(a.len(), 500);
    assert_eq!(a, order(99));
    assert_ne!(a, order(100));
    let in_order: Vec<u16> = (1..=500).collect();
    assert_ne!(a.iter().map(|x| x.0).collect::<Vec<_>>(), in_order);
}

#[test]
fn concurrency_limit_holds() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(10, Protocol::Tcp), 3, t0);
    let launched: Vec<Launch> = (0..3).map(|_| expect_launch(&mut s, t0)).collect();
    assert_eq!(s.poll(t0), Action::WaitForOutcome);
    s.on_outcome(launched[0].id, AttemptOutcome::Silence, t0)
        .unwrap();
    // The retry of the silent port comes before untouched ports.
    let next = expect_launch(&mut s, t0);
    assert_eq!(next.probe, launched[0].probe);
    assert_eq!(next.attempt, 2);
}

#[test]
fn exhaustion_backs_off_and_retries_without_losing_probes() {
    let t0 = Instant::now();
    let n = 40;
    let mut s = Scheduler::new(config(), probes(n, Protocol::Tcp), 16, t0);
    let first: Vec<Launch> = (0..16).map(|_| expect_launch(&mut s, t0)).collect();
    // The last eight could not get a socket.
    for l in &first[8..] {
        s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 24 }, t0)
            .unwrap();
    }
    let backoffs: Vec<Backoff> = std::iter::from_fn(|| s.poll_event(t0))
        .filter_map(|e| match e {
            ProbeEvent::Backoff(b) => Some(b),
            _ => None,
        })
        .collect();
    // One cut for the whole burst, to half of what was running when the
    // first failure came in.
    assert_eq!(
        backoffs,
        [Backoff {
            limit: 15 / 2,
            in_flight: 15,
            errno: 24
        }]
    );
    assert_eq!(s.concurrency_limit(), 7);
    assert_eq!(s.poll(t0), Action::WaitForOutcome);
    // Drive everything to the end on a simulated clock; every port gets
    // exactly one verdict and nothing is lost.
    let mut now = t0;
    let mut flying: VecDeque<Launch> = first[..8].iter().copied().collect();
    let mut done = Vec::new();
    loop {
        while let Some(e) = s.poll_event(now) {
            if let ProbeEvent::Verdict(v) = e {
                done.push(v);
            }
        }
        match s.poll(now) {
            Action::Launch(l) => {
                assert!(s.in_flight() <= s.concurrency_limit());
                flying.push_back(l);
            }
            Action::WaitForOutcome => {
                let l = flying.pop_front().unwrap();
                now += Duration::from_millis(1);
                let rtt = Duration::from_millis(1);
                s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, now)
                    .unwrap();
            }
            Action::WaitUntil(t) => now = t,
            Action::Done => break,
        }
    }
    assert_eq!(done.len(), usize::from(n));
    let mut ports: Vec<u16> = done.iter().map(|v| v.probe.addr.port()).collect();
    ports.sort_unstable();
    assert_eq!(ports, (1..=n).collect::<Vec<_>>());
    assert!(done.iter().all(|v| v.tries == 1));
    assert_eq!(s.stats(now).attempts, u64::from(n));
    assert_eq!(s.stats(now).backoffs, 1);
}

#[test]
fn exhaustion_with_nothing_in_flight_pauses_then_gives_up() {
    let t0 = Instant::now();
    let cfg = ProbeConfig {
        give_up_after: Duration::from_secs(5),
        ..config()
    };
    let mut s = Scheduler::new(cfg, probes(1, Protocol::Tcp), 4, t0);
    let mut now = t0;
    let mut pauses = Vec::new();
    let err = loop {
        let l = match s.poll(now) {
            Action::Launch(l) => l,
            Action::WaitUntil(t) => {
                pauses.push(t - now);
                now = t;
                continue;
            }
            other => panic!("unexpected {other:?}"),
        };
        if let Err(e) = s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 23 }, now) {
            break e;
        }
    };
    assert!(
        matches!(err, Error::ResourcesExhausted { errno: 23, waited } if waited >= Duration::from_secs(5))
    );
    assert_eq!(pauses[0], FIRST_IDLE_PAUSE);
    assert_eq!(pauses[1], FIRST_IDLE_PAUSE * 2);
    assert!(pauses.iter().all(|&p| p <= MAX_IDLE_PAUSE));
    assert_eq!(*pauses.last().unwrap(), MAX_IDLE_PAUSE);
}

#[test]
fn exhaustion_recovers_when_sockets_come_back() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
    let l = expect_launch(&mut s, t0);
    s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 24 }, t0)
        .unwrap();
    let Action::WaitUntil(t) = s.poll(t0) else {
        panic!("expected a pause");
    };
    let l = expect_launch(&mut s, t);
    assert_eq!(l.attempt, 1, "an exhausted try does not count");
    let rtt = Duration::from_micros(50);
    s.on_outcome(l.id, AttemptOutcome::Connected { rtt }, t)
        .unwrap();
    assert_eq!(verdicts(&mut s, t).len(), 1);
    assert_eq!(s.poll(t), Action::Done);
}

#[test]
fn self_connection_is_retried_uncounted() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
    let l = expect_launch(&mut s, t0);
    s.on_outcome(l.id, AttemptOutcome::SelfConnected, t0)
        .unwrap();
    let l = expect_launch(&mut s, t0);
    assert_eq!(l.attempt, 1);
    let rtt = Duration::from_micros(30);
    s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, t0)
        .unwrap();
    let v = verdicts(&mut s, t0);
    assert_eq!((v[0].state, v[0].tries), (PortState::Closed, 1));
}

#[test]
fn rate_cap_holds_on_a_simulated_clock() {
    let t0 = Instant::now();
    let cfg = ProbeConfig {
        rate: Some(RateLimit {
            per_second: 200,
            burst: 5,
        }),
        ..config()
    };
    let mut s = Scheduler::new(cfg, probes(1000, Protocol::Tcp), 1000, t0);
    let mut now = t0;
    let mut launches = Vec::new();
    loop {
        match s.poll(now) {
            Action::Launch(l) => {
                launches.push(now);
                // Answer at once: only the rate cap holds things back.
                let rtt = Duration::from_micros(10);
                s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, now)
                    .unwrap();
            }
            Action::WaitUntil(t) => {
                assert!(t > now);
                now = t;
            }
            Action::WaitForOutcome => panic!("nothing is in flight"),
            Action::Done => break,
        }
    }
    assert_eq!(launches.len(), 1000);
    for (i, &start) in launches.iter().enumerate() {
        let n = launches[i..]
            .iter()
            .take_while(|&&t| t < start + Duration::from_secs(1))
            .count();
        assert!(n <= 205, "{n} launches within a second");
    }
    // 1000 probes at 200/s after a burst of 5: (1000 − 5) / 200 s.
    assert_eq!(now - t0, Duration::from_millis(4975));
}

#[test]
fn finished_comes_once_after_the_last_verdict() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
    assert!(s.poll_event(t0).is_none());
    let l = expect_launch(&mut s, t0);
    let rtt = Duration::from_micros(30);
    s.on_outcome(l.id, AttemptOutcome::Connected { rtt }, t0)
        .unwrap();
    assert!(matches!(s.poll_event(t0), Some(ProbeEvent::Verdict(_))));
    let Some(ProbeEvent::Finished(stats)) = s.poll_event(t0) else {
        panic!("expected the finish");
    };
    assert_eq!(stats.counts.open, 1);
    assert_eq!(stats.probes, 1);
    assert!(s.poll_event(t0).is_none());
    // An unknown id is ignored.
    s.on_outcome(l.id, AttemptOutcome::Silence, t0).unwrap();
}
