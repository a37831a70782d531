//! A simulated NAT, firewall and RFC 5780 server that answer the test plan's probes:
//! the plan's tests run against every NAT kind, packet loss and misbehaving servers
//! without a socket.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour as F, LegacyNatType, MappingBehaviour as M};
use rand::{RngExt, SeedableRng};

use super::config::ClassifyConfig;
use super::evidence::{Classification, TestOutcome};
use super::plan::{Probe, ProbeResult, TestPlan};

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
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
    rng: rand::rngs::StdRng,
    mappings: HashMap<(SocketAddr, Option<IpAddr>, Option<u16>), SocketAddr>,
    contacted: HashMap<SocketAddr, HashSet<SocketAddr>>,
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
            rng: rand::rngs::StdRng::seed_from_u64(0),
            mappings: HashMap::new(),
            contacted: HashMap::new(),
            next_port: 40_000,
        }
    }

    pub(crate) fn seed(mut self, seed: u64) -> Sim {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
        self
    }

    fn local(&self, group: u32) -> SocketAddr {
        let ip = if self.nat.is_some() { LAN } else { PUBLIC };
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
        self.next_port += 1;
        let e = SocketAddr::new(PUBLIC.parse().expect("ip"), self.next_port);
        self.mappings.insert(key, e);
        e
    }

    fn passes_filter(&self, ext: SocketAddr, src: SocketAddr) -> bool {
        let seen = self.contacted.get(&ext);
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
        SERVER.iter().map(|s| sa(s)).collect()
    }

    fn answer(&mut self, group: u32, p: &Probe) -> TestOutcome {
        let local = self.local(group);
        let ext = self.map(local, p.destination);
        self.contacted.entry(ext).or_default().insert(p.destination);
        let servers = if self.plain.is_empty() {
            self.servers()
        } else {
            self.plain.clone()
        };
        let mut wrong_sources = Vec::new();
        for _ in 0..p.plan.max_sends {
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
                    return answered(ext, p.destination, None, None, false);
                }
                continue;
            }
            let Some(i) = servers.iter().position(|s| *s == p.destination) else {
                continue;
            };
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
            return answered(ext, src, other, origin, self.rfc3489);
        }
        TestOutcome::NoAnswer { wrong_sources }
    }

    /// Runs the plan to the end and returns its conclusion.
    pub(crate) fn run(&mut self, config: ClassifyConfig) -> Classification {
        let servers: Vec<(String, SocketAddr)> = if self.plain.is_empty() {
            vec![(SERVER[0].to_owned(), sa(SERVER[0]))]
        } else {
            self.plain.iter().map(|s| (s.to_string(), *s)).collect()
        };
        let mut plan = TestPlan::new(config, servers).expect("plan");
        let mut waves = 0;
        while !plan.is_done() {
            let wave = plan.poll_probes();
            if wave.is_empty() {
                break;
            }
            waves += 1;
            assert!(waves < 20, "the plan does not end");
            // Every request of a wave leaves before any answer comes back.
            for p in &wave {
                let local = self.local(p.group);
                let ext = self.map(local, p.destination);
                self.contacted.entry(ext).or_default().insert(p.destination);
            }
            for p in wave {
                let outcome = self.answer(p.group, &p);
                let local = Some(self.local(p.group));
                plan.handle_result(ProbeResult {
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
                    assert_eq!(b.hairpinning, Some(hairpin), "{what}");
                }
            }
            assert!(c.external.is_some());
            assert!(c.notes.is_empty(), "{what}");
        }
    }
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
    let mut conclusive = 0;
    let mut runs = 0;
    for (nat, filtering, legacy) in kinds() {
        for seed in 0..60 {
            let mut sim = Sim::new(nat, filtering).seed(seed);
            sim.loss = 0.2;
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
    // The test is not vacuous: most runs still conclude.
    assert!(
        conclusive * 10 >= runs * 7,
        "{conclusive} of {runs} conclusive"
    );
}

#[test]
fn total_loss_is_udp_blocked_after_two_tries() {
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::EndpointIndependent);
    sim.loss = 1.0;
    let c = sim.run(config());
    assert_eq!(c.behaviour.connectivity, Connectivity::UdpBlocked);
    assert_eq!(c.legacy, LegacyNatType::UdpBlocked);
    assert_eq!(c.evidence.len(), 2, "test I twice, on two sockets");
    assert_ne!(c.evidence[0].local, c.evidence[1].local);
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
    assert!(c.servers[0].problem.is_some());
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
    let wave = plan.poll_probes();
    assert_eq!(wave.len(), 1);
    let wave_one_group = wave[0].group;
    let mut sim = Sim::new(Some(M::EndpointIndependent), F::AddressAndPortDependent);
    let outcome = match sim.answer(wave[0].group, &wave[0]) {
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
            rtt: Some(Duration::from_millis(80)),
            elapsed: Duration::from_millis(80),
        },
        o => panic!("{o:?}"),
    };
    plan.handle_result(ProbeResult {
        id: wave[0].id,
        local: Some(sim.local(wave[0].group)),
        outcome,
    });
    let wave = plan.poll_probes();
    let change: Vec<_> = wave.iter().filter(|p| p.request.change.is_some()).collect();
    assert_eq!(
        change.len(),
        2 * super::decide::CONFIRMATIONS,
        "rounds run at once"
    );
    for p in change {
        assert_eq!(p.plan.rto, Duration::from_millis(160));
        assert_eq!(p.plan.max_sends, 3);
        assert_eq!(p.plan.give_up_after(), Duration::from_millis(800));
    }
    // Groups: mapping tests (and hairpinning) on the first socket, each filtering
    // round on a fresh one.
    let groups: HashSet<u32> = wave.iter().map(|p| p.group).collect();
    assert_eq!(groups.len(), 1 + super::decide::CONFIRMATIONS);
    assert!(
        wave.iter()
            .filter(|p| matches!(
                p.test,
                super::TestKind::MappingII | super::TestKind::Hairpin
            ))
            .all(|p| p.group == wave_one_group)
    );
}
