//! A simulated NAT, firewall and RFC 5780 server that answer the test plan's probes:
//! the plan's tests run against every NAT kind, packet loss and misbehaving servers
//! without a socket.
//!
//! The NAT is more varied than the lab's: its filter is kept per mapping or per
//! internal host ([`FilterKey`]), it preserves ports or not, and the requests of a wave
//! go out and are answered in any interleaving ([`Schedule`]), so that no verdict
//! depends on the order of the tests or on how coarsely a NAT keeps its state.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour as F, LegacyNatType, MappingBehaviour as M};
use rand::{RngExt, SeedableRng};

use super::config::ClassifyConfig;
use super::evidence::{Classification, TestOutcome};
use super::plan::{TestPlan, TestRequest, TestResult};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// What a NAT keys its filter state on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FilterKey {
    /// Each mapping admits only what it has sent to.
    PerMapping,
    /// Every mapping of the host admits what any socket of the host has sent to (RFC
    /// 3489: "if the internal host had previously sent a packet to IP address X").
    PerHost,
}

/// How the requests of one wave are interleaved with the answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// Every request of the wave leaves before any answer comes back.
    AllSendsFirst,
    /// A random interleaving: some requests leave first, the rest one by one, each
    /// answered before the next leaves, in a random order.
    Shuffled,
}

/// The world a plan is run in.
#[derive(Debug)]
pub(crate) struct Sim {
    /// `None`: no NAT (the host's address is public).
    pub nat: Option<M>,
    /// Filtering by the NAT, or by a firewall when there is no NAT.
    pub filtering: F,
    pub hairpin: bool,
    /// Probability that any one packet is lost.
    pub loss: f64,
    pub honours_change: bool,
    pub rfc3489: bool,
    /// Whether the server lies in RESPONSE-ORIGIN.
    pub bad_origin: bool,
    /// The server's four addresses: PA:PP, PA:AP, AA:PP, AA:AP; `None` for a plain
    /// server list (see `plain`).
    pub plain: Vec<SocketAddr>,
    /// A server rate limit: (tokens now, tokens added per wave); each request the
    /// server receives takes one, and without one it is dropped.
    pub rate_limit: Option<(u32, u32)>,
    pub filter_key: FilterKey,
    /// The NAT gives a mapping the local port when no other mapping holds it.
    pub preserve_ports: bool,
    pub schedule: Schedule,
    /// The servers the plan is given (default: the primary address).
    pub given: Vec<SocketAddr>,
    /// IPv6: the servers and this host have IPv6 addresses (see [`Sim::ipv6`]).
    pub v6: bool,
    rng: rand::rngs::StdRng,
    mappings: HashMap<(SocketAddr, Option<IpAddr>, Option<u16>), SocketAddr>,
    contacted: HashMap<SocketAddr, HashSet<SocketAddr>>,
    host_contacted: HashSet<SocketAddr>,
    next_port: u16,
}

pub(crate) const SERVER: [&str; 4] = [
    "192.0.2.1:3478",
    "192.0.2.1:3479",
    "192.0.2.2:3478",
    "192.0.2.2:3479",
];
const PUBLIC: &str = "198.51.100.1";
const LAN: &str = "10.0.0.2";
/// The lab's IPv6 STUN addresses (STUN1_6, STUN2_6) and LAN host.
pub(crate) const SERVER6: [&str; 4] = [
    "[2a0d:88:77:66::10]:3478",
    "[2a0d:88:77:66::10]:3479",
    "[2a0d:88:77:66::11]:3478",
    "[2a0d:88:77:66::11]:3479",
];
const HOST6: &str = "2a0d:88:77:77::2";

impl Sim {
    pub(crate) fn new(nat: Option<M>, filtering: F) -> Sim {
        Sim {
            nat,
            filtering,
            hairpin: false,
            loss: 0.0,
            honours_change: true,
            rfc3489: false,
            bad_origin: false,
            plain: Vec::new(),
            rate_limit: None,
            filter_key: FilterKey::PerMapping,
            preserve_ports: false,
            schedule: Schedule::AllSendsFirst,
            given: vec![sa(SERVER[0])],
            v6: false,
            rng: rand::rngs::StdRng::seed_from_u64(0),
            mappings: HashMap::new(),
            contacted: HashMap::new(),
            host_contacted: HashSet::new(),
            next_port: 40_000,
        }
    }

    /// An IPv6 host: its own global address, no NAT, behind a firewall that filters
    /// as `filtering` says (a home router's conntrack firewall:
    /// address-and-port-dependent).
    pub(crate) fn ipv6(filtering: F) -> Sim {
        Sim {
            v6: true,
            given: vec![sa(SERVER6[0])],
            ..Sim::new(None, filtering)
        }
    }

    pub(crate) fn seed(mut self, seed: u64) -> Sim {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
        self
    }

    fn local(&self, group: u32) -> SocketAddr {
        let ip = match (self.v6, self.nat.is_some()) {
            (true, _) => HOST6,
            (false, true) => LAN,
            (false, false) => PUBLIC,
        };
        SocketAddr::new(
            ip.parse().expect("ip"),
            20_000 + u16::try_from(group).unwrap_or(0),
        )
    }

    /// The external endpoint for a packet from `local` to `dst` (creating it).
    fn map(&mut self, local: SocketAddr, dst: SocketAddr) -> SocketAddr {
        let Some(m) = self.nat else {
            return local;
        };
        let key = match m {
            M::EndpointIndependent | M::Inconclusive => (local, None, None),
            M::AddressDependent => (local, Some(dst.ip()), None),
            M::AddressAndPortDependent => (local, Some(dst.ip()), Some(dst.port())),
        };
        if let Some(e) = self.mappings.get(&key) {
            return *e;
        }
        let public: IpAddr = PUBLIC.parse().expect("ip");
        let kept = SocketAddr::new(public, local.port());
        let e = if self.preserve_ports && !self.mappings.values().any(|e| *e == kept) {
            kept
        } else {
            self.next_port += 1;
            SocketAddr::new(public, self.next_port)
        };
        self.mappings.insert(key, e);
        e
    }

    /// A request from `local` to `dst` leaves: the mapping and the filter state.
    fn send(&mut self, local: SocketAddr, dst: SocketAddr) -> SocketAddr {
        let ext = self.map(local, dst);
        self.contacted.entry(ext).or_default().insert(dst);
        self.host_contacted.insert(dst);
        ext
    }

    fn passes_filter(&self, ext: SocketAddr, src: SocketAddr) -> bool {
        let seen = match self.filter_key {
            FilterKey::PerMapping => self.contacted.get(&ext),
            FilterKey::PerHost => Some(&self.host_contacted),
        };
        match self.filtering {
            F::EndpointIndependent | F::Inconclusive => true,
            F::AddressDependent => seen.is_some_and(|s| s.iter().any(|a| a.ip() == src.ip())),
            F::AddressAndPortDependent => seen.is_some_and(|s| s.contains(&src)),
        }
    }

    fn lost(&mut self) -> bool {
        self.loss > 0.0 && self.rng.random_bool(self.loss)
    }

    fn servers(&self) -> Vec<SocketAddr> {
        let servers = if self.v6 { SERVER6 } else { SERVER };
        servers.iter().map(|s| sa(s)).collect()
    }

    fn answer(&mut self, group: u32, p: &TestRequest) -> TestOutcome {
        let local = self.local(group);
        let ext = self.send(local, p.destination);
        let servers = if self.plain.is_empty() {
            self.servers()
        } else {
            self.plain.clone()
        };
        let mut wrong_sources = Vec::new();
        let offsets: Vec<Duration> = p.plan.send_offsets().collect();
        for (send, &offset) in offsets.iter().enumerate() {
            let at = |o: TestOutcome| o.at_send(send, offset);
            if self.lost() {
                continue;
            }
            if p.hairpin {
                let own = self
                    .mappings
                    .iter()
                    .any(|((l, _, _), e)| *l == local && *e == p.destination)
                    || (self.nat.is_none() && p.destination == local);
                if own && (self.nat.is_none() || self.hairpin) && !self.lost() {
                    return at(answered(ext, p.destination, None, None, false));
                }
                continue;
            }
            let Some(i) = servers.iter().position(|s| *s == p.destination) else {
                continue;
            };
            if let Some((tokens, _)) = &mut self.rate_limit {
                if *tokens == 0 {
                    continue;
                }
                *tokens -= 1;
            }
            let change = p.request.change.unwrap_or_default();
            let j = if self.honours_change && self.plain.is_empty() {
                i ^ (usize::from(change.change_ip) << 1) ^ usize::from(change.change_port)
            } else {
                i
            };
            let src = servers[j];
            if !self.passes_filter(ext, src) || self.lost() {
                continue;
            }
            if !p.accept.contains(&src) {
                if !wrong_sources.contains(&src) {
                    wrong_sources.push(src);
                }
                continue;
            }
            let other = self.plain.is_empty().then(|| servers[i ^ 3]);
            let origin = if self.bad_origin {
                sa("10.9.9.9:3478")
            } else {
                src
            };
            let origin = (self.plain.is_empty()).then_some(origin);
            return at(answered(ext, src, other, origin, self.rfc3489));
        }
        TestOutcome::NoAnswer { wrong_sources }
    }

    /// The answer to `p`, arriving `rtt` after its first send.
    fn answer_after(&mut self, p: &TestRequest, rtt: Duration) -> TestOutcome {
        match self.answer(p.group, p) {
            TestOutcome::Answered {
                mapped,
                from,
                other,
                origin,
                rfc3489,
                ..
            } => TestOutcome::Answered {
                mapped,
                from,
                other,
                origin,
                rfc3489,
                rtt: Some(rtt),
                elapsed: rtt,
            },
            o => panic!("{o:?}"),
        }
    }

    /// Runs the plan to the end and returns its conclusion.
    pub(crate) fn run(&mut self, mut config: ClassifyConfig) -> Classification {
        let servers: Vec<(String, SocketAddr)> = if self.plain.is_empty() {
            self.given.iter().map(|s| (s.to_string(), *s)).collect()
        } else {
            self.plain.iter().map(|s| (s.to_string(), *s)).collect()
        };
        config.servers = servers.iter().map(|(n, _)| n.clone()).collect();
        let mut plan = TestPlan::new(config, servers).expect("plan");
        let mut waves = 0;
        while !plan.is_done() {
            let wave = plan.poll_requests();
            if wave.is_empty() {
                break;
            }
            waves += 1;
            assert!(waves < 20, "the plan does not end");
            if let Some((tokens, refill)) = &mut self.rate_limit {
                *tokens += *refill;
            }
            let mut order: Vec<usize> = (0..wave.len()).collect();
            match self.schedule {
                Schedule::AllSendsFirst => {
                    for p in &wave {
                        let local = self.local(p.group);
                        self.send(local, p.destination);
                    }
                }
                Schedule::Shuffled => {
                    for i in (1..order.len()).rev() {
                        let j = self.rng.random_range(0..=i);
                        order.swap(i, j);
                    }
                    for p in &wave {
                        if self.rng.random_bool(0.5) {
                            let local = self.local(p.group);
                            self.send(local, p.destination);
                        }
                    }
                }
            }
            for i in order {
                let p = &wave[i];
                let outcome = self.answer(p.group, p);
                let local = Some(self.local(p.group));
                plan.handle_result(TestResult {
                    id: p.id,
                    local,
                    outcome,
                });
            }
        }
        plan.classification()
    }
}

fn answered(
    mapped: SocketAddr,
    from: SocketAddr,
    other: Option<SocketAddr>,
    origin: Option<SocketAddr>,
    rfc3489: bool,
) -> TestOutcome {
    TestOutcome::Answered {
        mapped: Some(mapped),
        from,
        other,
        rfc3489,
        origin,
        rtt: Some(Duration::from_millis(10)),
        elapsed: Duration::from_millis(10),
    }
}

impl TestOutcome {
    /// The answer as it arrives for send number `send` (made `offset` after the
    /// first): the simulated round trip is 10 ms, and the RTT is known only for an
    /// answer to the first send (Karn).
    fn at_send(self, send: usize, offset: Duration) -> TestOutcome {
        match self {
            TestOutcome::Answered {
                mapped,
                from,
                other,
                rfc3489,
                origin,
                rtt,
                elapsed,
            } => TestOutcome::Answered {
                mapped,
                from,
                other,
                rfc3489,
                origin,
                rtt: rtt.filter(|_| send == 0).map(|r| r + offset),
                elapsed: elapsed + offset,
            },
            o => o,
        }
    }
}

fn config() -> ClassifyConfig {
    let mut c = ClassifyConfig::new([SERVER[0]]);
    c.hairpinning = true;
    c
}

/// Every NAT kind and what the plan must conclude.
fn kinds() -> Vec<(Option<M>, F, LegacyNatType)> {
    use LegacyNatType as L;
    vec![
        (None, F::EndpointIndependent, L::Open),
        (None, F::AddressAndPortDependent, L::SymmetricUdpFirewall),
        (None, F::AddressDependent, L::SymmetricUdpFirewall),
        (
            Some(M::EndpointIndependent),
            F::EndpointIndependent,
            L::FullCone,
        ),
        (
            Some(M::EndpointIndependent),
            F::AddressDependent,
            L::RestrictedCone,
        ),
        (
            Some(M::EndpointIndependent),
            F::AddressAndPortDependent,
            L::PortRestrictedCone,
        ),
        (Some(M::AddressDependent), F::AddressDependent, L::Symmetric),
        (
            Some(M::AddressAndPortDependent),
            F::AddressAndPortDependent,
            L::Symmetric,
        ),
        (
            Some(M::AddressAndPortDependent),
            F::EndpointIndependent,
            L::Symmetric,
        ),
    ]
}

#[test]
fn every_nat_kind_is_classified_exactly() {
    for (nat, filtering, legacy) in kinds() {
        for hairpin in [false, true] {
            let mut sim = Sim::new(nat, filtering);
            sim.hairpin = hairpin;
            let c = sim.run(config());
            let b = c.behaviour;
            let what = format!("{nat:?}/{filtering:?} hairpin {hairpin}: {c:#?}");
            assert_eq!(c.legacy, legacy, "{what}");
            assert_eq!(b.filtering, filtering, "{what}");
            match nat {
                None => assert_eq!(b.connectivity, Connectivity::NoNat, "{what}"),
                Some(m) => {
                    assert_eq!(b.connectivity, Connectivity::Nat, "{what}");
                    assert_eq!(b.mapping, m, "{what}");
                    // A miss says "no hairpinning" only where the looped-back request
                    // would pass the filter.
                    let miss_counts =
                        m == M::EndpointIndependent || filtering == F::EndpointIndependent;
                    let want = (hairpin || miss_counts).then_some(hairpin);
                    assert_eq!(b.hairpinning, want, "{what}");
                }
            }
            assert!(c.external.is_some());
            let unexplained: Vec<_> = c
                .notes
                .iter()
                .filter(|n| !n.starts_with("hairpinning"))
                .collect();
            assert!(unexplained.is_empty(), "{what}");
        }
    }
}

#[test]
fn an_ipv6_host_has_no_nat_and_its_firewall_is_measured() {
    use super::Firewall as W;
    for (filtering, firewall, legacy) in [
        (
            F::AddressAndPortDependent,
            W::StatefulAddressAndPortDependent,
            LegacyNatType::SymmetricUdpFirewall,
        ),
        (
            F::AddressDependent,
            W::StatefulAddressDependent,
            LegacyNatType::SymmetricUdpFirewall,
        ),
        (F::EndpointIndependent, W::Open, LegacyNatType::Open),
    ] {
        for (key, schedule) in [
            (FilterKey::PerMapping, Schedule::AllSendsFirst),
            (FilterKey::PerHost, Schedule::Shuffled),
        ] {
            let mut sim = Sim::ipv6(filtering).seed(7);
            sim.filter_key = key;
            sim.schedule = schedule;
            let c = sim.run(config());
            let what = format!("{filtering:?} {key:?} {schedule:?}: {c:#?}");
            assert_eq!(c.family, Some(crate::client::IpFamily::V6), "{what}");
            assert_eq!(c.behaviour.connectivity, Connectivity::NoNat, "{what}");
            assert_eq!(c.external, c.local, "{what}");
            assert!(c.external.is_some_and(|a| a.is_ipv6()), "{what}");
            assert_eq!(c.behaviour.filtering, filtering, "{what}");
            assert_eq!(c.firewall, Some(firewall), "{what}");
            assert_eq!(c.legacy, legacy, "{what}");
            assert_eq!(c.mapping_name(), "none", "{what}");
            assert_eq!(c.kind(), firewall.as_str(), "{what}");
            // No hairpinning question without a NAT, and nothing unexplained.
            assert_eq!(c.behaviour.hairpinning, None, "{what}");
            assert!(c.notes.is_empty(), "{what}");
            assert!(c.evidence.iter().all(|e| e.server.is_ipv6()), "{what}");
        }
    }
    // Behind an IPv4 NAT the old words stay.
    let c = Sim::new(Some(M::EndpointIndependent), F::AddressAndPortDependent).run(config());
    assert_eq!((c.firewall, c.kind()), (None, "port_restricted_cone"));
    assert_eq!(c.mapping_name(), "endpoint_independent");
    assert_eq!(c.family, Some(crate::client::IpFamily::V4));
}

#[test]
fn ipv6_under_loss_is_right_or_inconclusive() {
    let mut conclusive = 0;
    for seed in 0..200 {
        let mut sim = Sim::ipv6(F::AddressAndPortDependent).seed(seed);
        sim.loss = 0.3;
        let c = sim.run(config());
        let what = format!("seed {seed}: {:?} {:?}", c.behaviour, c.notes);
        assert_eq!(c.behaviour.connectivity, Connectivity::NoNat, "{what}");
        assert!(
            matches!(
                c.firewall,
                Some(
                    super::Firewall::StatefulAddressAndPortDependent
                        | super::Firewall::Inconclusive
                )
            ),
            "{what}"
        );
        conclusive +=
            usize::from(c.firewall == Some(super::Firewall::StatefulAddressAndPortDependent));
    }
    println!("IPv6, loss 0.3: {conclusive} of 200 conclusive");
    assert!(conclusive >= 160, "{conclusive} of 200");
}

#[test]
fn rfc3489_servers_are_used_the_same_way() {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressDependent);
    sim.rfc3489 = true;
    let c = sim.run(config());
    assert_eq!(c.legacy, LegacyNatType::RestrictedCone);
    assert_eq!(c.servers[0].flavor, super::ServerFlavor::Rfc3489);
}

#[test]
fn packet_loss_gives_inconclusive_never_a_wrong_answer() {
    // 20 % and 30 % per packet (a round trip loses 36 % and 51 %).
    for (loss, min_conclusive) in [(0.2, 0.9), (0.3, 0.8)] {
        loss_run(loss, min_conclusive);
    }
}

fn loss_run(loss: f64, min_conclusive: f64) {
    let mut conclusive = 0;
    let mut runs = 0;
    for (nat, filtering, legacy) in kinds() {
        for seed in 0..200 {
            let mut sim = Sim::new(nat, filtering).seed(seed);
            sim.loss = loss;
            sim.hairpin = seed % 2 == 0;
            let c = sim.run(config());
            let b = c.behaviour;
            let what = format!("{nat:?}/{filtering:?} seed {seed}: {:?} {:?}", b, c.notes);
            runs += 1;
            let truth_conn = if nat.is_some() {
                Connectivity::Nat
            } else {
                Connectivity::NoNat
            };
            assert_eq!(b.connectivity, truth_conn, "{what}");
            assert!(
                b.filtering == filtering || b.filtering == F::Inconclusive,
                "{what}"
            );
            if let Some(m) = nat {
                assert!(b.mapping == m || b.mapping == M::Inconclusive, "{what}");
                assert!(
                    b.hairpinning.is_none() || b.hairpinning == Some(sim.hairpin),
                    "{what}"
                );
            }
            assert!(
                c.legacy == legacy || c.legacy == LegacyNatType::Inconclusive,
                "{what}"
            );
            if c.legacy == legacy {
                conclusive += 1;
            }
        }
    }
    // The test is not vacuous: many runs still conclude.
    println!("loss {loss}: {conclusive} of {runs} conclusive");
    assert!(
        f64::from(conclusive) >= f64::from(runs) * min_conclusive,
        "loss {loss}: {conclusive} of {runs} conclusive"
    );
}

#[test]
fn total_loss_is_udp_blocked_after_three_tries() {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::EndpointIndependent);
    sim.loss = 1.0;
    let c = sim.run(config());
    assert_eq!(c.behaviour.connectivity, Connectivity::UdpBlocked);
    assert_eq!(c.legacy, LegacyNatType::UdpBlocked);
    assert_eq!(c.evidence.len(), 3, "test I three times, on three sockets");
    assert_ne!(c.evidence[0].local, c.evidence[1].local);
    assert_ne!(c.evidence[1].local, c.evidence[2].local);
}

#[test]
fn a_server_ignoring_change_request_never_yields_a_filtering_answer() {
    for (nat, filtering, _) in kinds() {
        let mut sim = Sim::new(nat, filtering);
        sim.honours_change = false;
        let c = sim.run(config());
        assert_eq!(
            c.behaviour.filtering,
            F::Inconclusive,
            "{nat:?}/{filtering:?}"
        );
        assert!(
            c.notes.iter().any(|n| n.contains("wrong address")),
            "{:?}",
            c.notes
        );
    }
}

#[test]
fn a_server_with_a_lying_response_origin_is_not_used() {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressDependent);
    sim.bad_origin = true;
    let c = sim.run(config());
    assert!(!c.servers[0].usable_for_behaviour);
    assert!(
        matches!(
            c.servers[0].problem,
            Some(crate::classify::ServerProblem::OriginMismatch { origin, from })
                if origin != from && from == c.servers[0].server
        ),
        "{:?}",
        c.servers[0]
    );
    assert_eq!(c.behaviour.filtering, F::Inconclusive);
    assert_eq!(c.legacy, LegacyNatType::Inconclusive);
}

#[test]
fn plain_servers_compare_mappings_and_leave_filtering_inconclusive() {
    let plain = vec![sa("192.0.2.50:3478"), sa("203.0.113.9:19302")];
    for (nat, varies) in [
        (M::EndpointIndependent, false),
        (M::AddressDependent, true),
        (M::AddressAndPortDependent, true),
    ] {
        let mut sim = Sim::new(Some(nat), F::AddressAndPortDependent);
        sim.plain = plain.clone();
        let mut cfg = config();
        cfg.servers = plain.iter().map(ToString::to_string).collect();
        let c = sim.run(cfg);
        assert_eq!(c.mapping_varies_by_destination, Some(varies), "{nat:?}");
        assert_eq!(c.behaviour.filtering, F::Inconclusive);
        let want = if varies {
            M::Inconclusive
        } else {
            M::EndpointIndependent
        };
        assert_eq!(c.behaviour.mapping, want);
        assert!(
            c.servers
                .iter()
                .all(|s| s.flavor == super::ServerFlavor::Plain)
        );
        assert!(!c.notes.is_empty());
    }
}

#[test]
fn the_no_answer_wait_follows_the_measured_rtt() {
    let mut plan = TestPlan::new(config(), vec![(SERVER[0].into(), sa(SERVER[0]))]).expect("plan");
    let wave = plan.poll_requests();
    assert_eq!(wave.len(), 1);
    let wave_one_group = wave[0].group;
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressAndPortDependent);
    let outcome = sim.answer_after(&wave[0], Duration::from_millis(80));
    plan.handle_result(TestResult {
        id: wave[0].id,
        local: Some(sim.local(wave[0].group)),
        outcome,
    });
    let wave = plan.poll_requests();
    let change: Vec<_> = wave.iter().filter(|p| p.request.change.is_some()).collect();
    let rounds = super::plan::CONFIRMATIONS + 1;
    assert_eq!(change.len(), 2 * rounds, "rounds run at once");
    // RFC 6298 from one sample: 3 × 80 ms; 4 sends wait 9 × RTO.
    for p in change {
        assert_eq!(p.plan.rto, Duration::from_millis(240));
        assert_eq!(p.plan.max_sends, 4);
        assert_eq!(p.plan.give_up_after(), Duration::from_millis(2160));
    }
    // The controls run on the same schedule as the tests they vouch for.
    for p in wave
        .iter()
        .filter(|p| p.test == super::TestKind::FilteringControl)
    {
        assert_eq!(p.plan.rto, Duration::from_millis(240));
    }
    // Groups: mapping tests (and hairpinning) on the first socket, each filtering
    // round on a fresh one.
    let groups: HashSet<u32> = wave.iter().map(|p| p.group).collect();
    assert_eq!(groups.len(), 1 + rounds);
    assert!(
        wave.iter()
            .filter(|p| matches!(
                p.test,
                super::TestKind::MappingII | super::TestKind::Hairpin
            ))
            .all(|p| p.group == wave_one_group)
    );
}

#[test]
fn the_no_answer_rto_is_bounded_by_the_floor_and_the_ceiling() {
    use super::plan::no_answer_plan;
    let c = config();
    let us = Duration::from_micros;
    // A lab round trip of 200 µs: the floor (timer and scheduling granularity).
    assert_eq!(no_answer_plan(&c, Some(us(200))).rto, c.no_answer_floor);
    assert_eq!(
        no_answer_plan(&c, Some(us(200))).give_up_after(),
        c.no_answer_floor * 9
    );
    assert_eq!(
        no_answer_plan(&c, Some(Duration::from_millis(30))).rto,
        Duration::from_millis(90)
    );
    assert_eq!(
        no_answer_plan(&c, Some(Duration::from_secs(2))).rto,
        super::NO_ANSWER_RTO_CEILING
    );
    // No sample: the configured plan's RTO.
    assert_eq!(no_answer_plan(&c, None).rto, c.plan.rto);
}

/// Drives a plan by hand: test I answered after `rtt`, then every behaviour wave
/// answered by `answer(probe)`.
fn drive(rtt: Duration, mut answer: impl FnMut(&TestRequest) -> TestOutcome) -> Classification {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressDependent);
    let mut plan = TestPlan::new(config(), vec![(SERVER[0].into(), sa(SERVER[0]))]).expect("plan");
    let first = plan.poll_requests();
    let outcome = sim.answer_after(&first[0], rtt);
    plan.handle_result(TestResult {
        id: first[0].id,
        local: Some(sim.local(first[0].group)),
        outcome,
    });
    for _ in 0..20 {
        let wave = plan.poll_requests();
        if wave.is_empty() {
            break;
        }
        for p in wave {
            let outcome = answer(&p);
            plan.handle_result(TestResult {
                id: p.id,
                local: Some(sim.local(p.group)),
                outcome,
            });
        }
    }
    assert!(plan.is_done());
    plan.classification()
}

#[test]
fn a_late_control_does_not_vouch_for_absences() {
    // A restricted cone whose change-port answers come too late (a stalled path):
    // the controls come late too, so the absences must not make it "port-restricted".
    let ext = sa("198.51.100.1:40001");
    for control_delay_ms in [50, 5_000] {
        let c = drive(Duration::from_micros(300), |p| {
            use super::TestKind as K;
            let late = Duration::from_millis(control_delay_ms);
            match p.test {
                K::FilteringChangeIpPort | K::FilteringChangePort => TestOutcome::NoAnswer {
                    wrong_sources: vec![],
                },
                K::Hairpin => TestOutcome::NoAnswer {
                    wrong_sources: vec![],
                },
                K::FilteringControl => {
                    answered(ext, p.destination, None, None, false).at_send(0, late)
                }
                _ => answered(ext, p.destination, None, None, false),
            }
        });
        // 50 ms is past half of the 90 ms wait (floor 10 ms × 9).
        assert_eq!(c.behaviour.filtering, F::Inconclusive, "{c:#?}");
        assert!(
            c.notes.iter().any(|n| n.contains("too late")),
            "{:?}",
            c.notes
        );
    }
    // A prompt control makes the same absences count.
    let c = drive(Duration::from_micros(300), |p| {
        use super::TestKind as K;
        match p.test {
            K::FilteringChangeIpPort | K::FilteringChangePort | K::Hairpin => {
                TestOutcome::NoAnswer {
                    wrong_sources: vec![],
                }
            }
            _ => answered(ext, p.destination, None, None, false),
        }
    });
    assert_eq!(c.behaviour.filtering, F::AddressAndPortDependent, "{c:#?}");
}

#[test]
fn a_rate_limiting_server_never_makes_a_restricted_cone_port_restricted() {
    // The server drops whatever exceeds its token bucket: answers missing for a
    // reason that is not the NAT's. The tests of a round go out before its control,
    // so a control answered at its first send means their first sends got through.
    let mut outcomes = HashMap::new();
    for tokens in 0..60 {
        for refill in [0, 2, 5, 10] {
            let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressDependent);
            sim.rate_limit = Some((tokens, refill));
            let c = sim.run(config());
            assert!(
                matches!(
                    c.legacy,
                    LegacyNatType::RestrictedCone
                        | LegacyNatType::Inconclusive
                        | LegacyNatType::UdpBlocked
                ),
                "tokens {tokens}, refill {refill}: {c:#?}"
            );
            *outcomes.entry(c.legacy).or_insert(0) += 1;
        }
    }
    assert!(
        outcomes
            .get(&LegacyNatType::RestrictedCone)
            .is_some_and(|&n| n > 100)
    );
}

/// The server lists a plan may be given, as real users give them.
fn server_lists() -> Vec<(&'static str, Vec<SocketAddr>)> {
    let dead = sa("203.0.113.77:3478");
    vec![
        ("one RFC 5780 server", vec![sa(SERVER[0])]),
        // Both addresses of one server (as with stund's two IPs): the second is the
        // first one's alternate IP.
        (
            "both addresses of one server",
            vec![sa(SERVER[0]), sa(SERVER[2])],
        ),
        ("a dead server first", vec![dead, sa(SERVER[0])]),
        (
            "the alternate address first",
            vec![sa(SERVER[2]), sa(SERVER[0])],
        ),
    ]
}

#[test]
fn a_filter_kept_per_host_is_never_taken_for_full_cone() {
    // RFC 3489's restricted cone ("only if the internal host had previously sent a
    // packet to IP address X") and its port-restricted sibling, with the filter kept
    // per host: no request of the plan may open the filter its filtering tests measure,
    // whatever the server list and however the requests of a wave interleave.
    for (filtering, legacy) in [
        (F::AddressDependent, LegacyNatType::RestrictedCone),
        (
            F::AddressAndPortDependent,
            LegacyNatType::PortRestrictedCone,
        ),
    ] {
        for (list, given) in server_lists() {
            for schedule in [Schedule::AllSendsFirst, Schedule::Shuffled] {
                for seed in 0..20 {
                    let mut sim = Sim::new(Some(M::EndpointIndependent), filtering).seed(seed);
                    sim.filter_key = FilterKey::PerHost;
                    sim.schedule = schedule;
                    sim.given = given.clone();
                    sim.preserve_ports = seed % 2 == 0;
                    let c = sim.run(config());
                    assert_eq!(
                        c.legacy, legacy,
                        "{filtering:?} per host, {list}, {schedule:?}, seed {seed}: {:?} {:?}",
                        c.behaviour, c.notes
                    );
                }
            }
        }
    }
}

#[test]
fn filtering_is_tested_before_anything_goes_to_the_alternate_address() {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressDependent);
    sim.given = vec![sa(SERVER[0]), sa(SERVER[2])];
    let c = sim.run(config());
    let alternate: IpAddr = sa(SERVER[2]).ip();
    let first_to_alternate = c
        .evidence
        .iter()
        .position(|e| e.server.ip() == alternate)
        .expect("the mapping tests go to the alternate address");
    let last_filtering = c
        .evidence
        .iter()
        .rposition(|e| e.test == super::TestKind::FilteringChangeIpPort)
        .expect("filtering tests");
    assert!(last_filtering < first_to_alternate, "{:#?}", c.evidence);
    // Every server is still asked, and checked.
    assert_eq!(c.servers.len(), 2, "{:?}", c.servers);
    assert!(c.servers.iter().all(|s| s.usable_for_behaviour));
}

#[test]
fn an_alternate_address_already_sent_to_makes_filtering_inconclusive_not_open() {
    // A dead server first makes the plan ask every server at once, and the list holds
    // both addresses of the one that answers: the alternate is sent to before the
    // filtering tests can run. A per-host filter then lets the alternate in; the
    // answer must not be "full cone".
    let given = vec![sa("203.0.113.77:3478"), sa(SERVER[2]), sa(SERVER[0])];
    for (filtering, key) in [
        (F::AddressDependent, FilterKey::PerHost),
        (F::EndpointIndependent, FilterKey::PerMapping),
    ] {
        let mut sim = Sim::new(Some(M::EndpointIndependent), filtering);
        sim.filter_key = key;
        sim.given = given.clone();
        let c = sim.run(config());
        assert_eq!(
            c.behaviour.filtering,
            F::Inconclusive,
            "{filtering:?}: {:?}",
            c.notes
        );
        assert!(
            c.notes.iter().any(|n| n.contains("per host")),
            "the reason is given: {:?}",
            c.notes
        );
    }
}

mod props {
    use super::*;
    use natkit_core::NatBehaviour;
    use proptest::prelude::*;

    fn mapping() -> impl Strategy<Value = Option<M>> {
        prop_oneof![
            Just(None),
            Just(Some(M::EndpointIndependent)),
            Just(Some(M::AddressDependent)),
            Just(Some(M::AddressAndPortDependent)),
        ]
    }

    fn filtering() -> impl Strategy<Value = F> {
        prop_oneof![
            Just(F::EndpointIndependent),
            Just(F::AddressDependent),
            Just(F::AddressAndPortDependent),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Random NATs (mapping, filtering, filter kept per mapping or per host, ports
        /// kept or not, hairpinning), random loss, random interleavings of each wave's
        /// requests and answers, and the server lists users give: every axis is right
        /// or inconclusive, and without loss the type is found whenever the server
        /// list allows it.
        #[test]
        fn the_verdict_is_right_or_inconclusive(
            nat in mapping(),
            filtering in filtering(),
            per_host in any::<bool>(),
            preserve_ports in any::<bool>(),
            hairpin in any::<bool>(),
            lossy in any::<bool>(),
            loss in 0.0..0.25f64,
            shuffled in any::<bool>(),
            list in 0..4usize,
            seed in any::<u64>(),
            v6 in any::<bool>(),
        ) {
            let loss = if lossy { loss } else { 0.0 };
            // No NAT may be an IPv6 host (its own server addresses, one server).
            let v6 = v6 && nat.is_none();
            let (name, given) = server_lists().swap_remove(list);
            let (name, given) = if v6 { ("IPv6", vec![sa(SERVER6[0])]) } else { (name, given) };
            let mut sim = if v6 { Sim::ipv6(filtering) } else { Sim::new(nat, filtering) }.seed(seed);
            sim.filter_key = if per_host { FilterKey::PerHost } else { FilterKey::PerMapping };
            sim.preserve_ports = preserve_ports;
            sim.hairpin = hairpin;
            sim.loss = loss;
            sim.schedule = if shuffled { Schedule::Shuffled } else { Schedule::AllSendsFirst };
            sim.given = given;
            let c = sim.run(config());
            let b = c.behaviour;
            let truth = NatBehaviour {
                connectivity: if nat.is_some() { Connectivity::Nat } else { Connectivity::NoNat },
                mapping: nat.unwrap_or(M::EndpointIndependent),
                filtering,
                hairpinning: None,
                port_preservation: None,
            };
            let what = format!("{name}, loss {loss:.2}: {b:?} {:?} {:?}", c.legacy, c.notes);
            prop_assert_eq!(b.connectivity, truth.connectivity, "{}", what);
            let family = if v6 { crate::client::IpFamily::V6 } else { crate::client::IpFamily::V4 };
            prop_assert_eq!(c.family, Some(family), "{}", what);
            prop_assert_eq!(c.firewall, crate::classify::Firewall::of(&b), "{}", what);
            prop_assert!(b.filtering == filtering || b.filtering == F::Inconclusive, "{}", what);
            if let Some(m) = nat {
                prop_assert!(b.mapping == m || b.mapping == M::Inconclusive, "{}", what);
                prop_assert!(b.hairpinning.is_none() || b.hairpinning == Some(hairpin), "{}", what);
                if let Some(kept) = b.port_preservation {
                    prop_assert_eq!(kept, preserve_ports, "{}", what);
                }
            }
            prop_assert!(
                c.legacy == truth.legacy_type() || c.legacy == LegacyNatType::Inconclusive,
                "{}", what
            );
            if loss == 0.0 {
                prop_assert_eq!(c.legacy, truth.legacy_type(), "{}", what);
            }
        }
    }
}
