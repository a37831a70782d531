//! The schedule's rules on a simulated clock: plain `Instant` arithmetic,
//! no sockets, no runtime. The test plays the router by answering each
//! operation the schedule starts.

use super::*;
use crate::{GatewayEpoch, Protocol};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};

/// A schedule, the operations it has started and not yet seen answered,
/// and what it emitted.
struct Sim {
    s: Schedule,
    t0: Instant,
    started: Vec<(MappingId, Op)>,
    events: Vec<KeeperEvent>,
    added: Vec<MappingId>,
    /// Callers answered with an error, and its kind.
    given_up: Vec<(MappingId, Option<FailureKind>)>,
    deleted: Vec<Mapping>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            s: Schedule::new(KeeperConfig::default()),
            t0: Instant::now(),
            started: Vec::new(),
            events: Vec::new(),
            added: Vec::new(),
            given_up: Vec::new(),
            deleted: Vec::new(),
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn run(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Start { id, op } => self.started.push((id, op)),
                Action::Added { id, .. } => self.added.push(id),
                Action::GiveUp { id, error } => self.given_up.push((id, error.failure_kind())),
                Action::Delete(m) => self.deleted.push(m),
                Action::Emit(e) => self.events.push(e),
            }
        }
    }

    fn add(&mut self, request: MappingRequest) -> MappingId {
        let (id, actions) = self.s.add(request);
        self.run(actions);
        id
    }

    /// Takes the operation started for `id`.
    fn take_op(&mut self, id: MappingId) -> Op {
        let i = self
            .started
            .iter()
            .position(|(i, _)| *i == id)
            .unwrap_or_else(|| panic!("no operation started for {id}: {:?}", self.started));
        self.started.remove(i).1
    }

    /// Answers `id`'s operation at `secs` with a grant the router makes.
    fn grant(&mut self, id: MappingId, secs: u64, router: &Router) -> Op {
        let op = self.take_op(id);
        let request = match &op {
            Op::Map(r) | Op::Renew(r, _) => r.clone(),
        };
        let now = self.at(secs);
        let actions = self.s.granted(id, router.grant(&request, now), now);
        self.run(actions);
        op
    }

    fn fail(&mut self, id: MappingId, secs: u64, kind: FailureKind) -> Op {
        let op = self.take_op(id);
        let now = self.at(secs);
        let error = Error::mechanism(Mechanism::NatPmp, kind, format!("{kind:?}"));
        let actions = self.s.failed(id, error, now);
        self.run(actions);
        op
    }

    fn tick(&mut self, secs: u64) {
        let actions = self.s.tick(self.at(secs));
        self.run(actions);
    }

    fn remaps(&mut self) -> Vec<(MappingId, RemapReason)> {
        let mut out: Vec<_> = std::mem::take(&mut self.events)
            .into_iter()
            .filter_map(|e| match e {
                KeeperEvent::Remapped { id, reason, .. } => Some((id, reason)),
                _ => None,
            })
            .collect();
        out.sort_by_key(|r| r.0);
        out
    }
}

/// What the router answers: its lease, external address, and the epochs
/// of its IPv4 and IPv6 servers (boot times), or none (UPnP).
struct Router {
    lifetime: Duration,
    external: Ipv4Addr,
    booted: Option<Instant>,
    v6_booted: Option<Instant>,
}

impl Router {
    fn new(sim: &Sim, lifetime_s: u64) -> Router {
        Router {
            lifetime: Duration::from_secs(lifetime_s),
            external: Ipv4Addr::new(198, 51, 100, 1),
            booted: Some(sim.t0 - Duration::from_secs(1000)),
            v6_booted: None,
        }
    }

    fn grant(&self, request: &MappingRequest, now: Instant) -> Mapping {
        let (mapping, booted) = if request.is_pinhole() {
            let m = Mapping::pinhole(
                Mechanism::Pcp,
                request.protocol,
                request.internal,
                self.lifetime,
                now,
            );
            (m, self.v6_booted.or(self.booted))
        } else {
            let m = Mapping::new(
                Mechanism::Pcp,
                request.protocol,
                SocketAddr::new(self.external.into(), request.internal.port()),
                request.internal,
                self.lifetime,
                now,
            );
            (m, self.booted)
        };
        mapping.with_epoch(booted.map(|b| GatewayEpoch {
            server_seconds: (now - b).as_secs() as u32,
            observed_at: now,
        }))
    }
}

fn request(port: u16, lifetime_s: u64) -> MappingRequest {
    MappingRequest::new(
        Protocol::Udp,
        SocketAddr::new(Ipv4Addr::new(192, 168, 77, 2).into(), port),
    )
    .with_lifetime(Duration::from_secs(lifetime_s))
}

fn pinhole(port: u16, lifetime_s: u64) -> MappingRequest {
    let addr: SocketAddrV6 = format!("[2a0d:88:77:77::2]:{port}").parse().unwrap();
    MappingRequest::pinhole(Protocol::Tcp, addr).with_lifetime(Duration::from_secs(lifetime_s))
}

#[test]
fn renews_at_half_the_granted_lifetime_never_below_the_floor() {
    let mut sim = Sim::new();
    let router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    assert!(matches!(sim.grant(a, 0, &router), Op::Map(_)));
    assert_eq!(sim.added, [a]);
    assert!(matches!(sim.events[..], [KeeperEvent::Mapped { id, .. }] if id == a));
    assert_eq!(sim.s.next_deadline(), Some(sim.at(60)));
    sim.tick(59);
    assert!(sim.started.is_empty());
    sim.tick(60);
    assert!(matches!(sim.grant(a, 60, &router), Op::Renew(..)));
    assert!(matches!(sim.events[1], KeeperEvent::Renewed { id, .. } if id == a));
    assert_eq!(sim.s.next_deadline(), Some(sim.at(120)));

    // A 3 s lease is renewed after the 2 s floor, not after 1.5 s.
    let short = Router::new(&sim, 3);
    let b = sim.add(request(5001, 3));
    sim.grant(b, 100, &short);
    assert_eq!(sim.s.next_deadline(), Some(sim.at(102)));
}

#[test]
fn permanent_grants_are_refreshed_at_half_the_requested_lifetime() {
    let mut sim = Sim::new();
    let router = Router::new(&sim, 0); // "only permanent leases"
    let a = sim.add(request(5000, 600));
    sim.grant(a, 0, &router);
    assert_eq!(sim.s.next_deadline(), Some(sim.at(300)));
    sim.tick(300);
    sim.grant(a, 300, &router);
    assert_eq!(sim.s.next_deadline(), Some(sim.at(600)));
    // Permanent asked and granted: nothing to renew.
    let mut sim = Sim::new();
    let b = sim.add(request(5001, 0));
    sim.grant(b, 0, &router);
    assert_eq!(sim.s.next_deadline(), None);
}

#[test]
fn retries_back_off_the_lease_runs_out_and_the_mapping_comes_back() {
    let mut sim = Sim::new();
    let router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    sim.grant(a, 0, &router);
    sim.events.clear();
    // Renewal at 60 s, then retries 1, 2, 4, 8, 16 s apart.
    let mut t = 60;
    let mut attempts = Vec::new();
    while t < 120 {
        sim.tick(t);
        attempts.push(t);
        assert!(matches!(
            sim.fail(a, t, FailureKind::Timeout),
            Op::Renew(..)
        ));
        t = sim
            .s
            .next_deadline()
            .unwrap()
            .duration_since(sim.t0)
            .as_secs();
    }
    assert_eq!(attempts, [60, 61, 63, 67, 75, 91]);
    // Each says why, as the mapper's typed error.
    assert!(sim.events.iter().all(|e| matches!(e,
        KeeperEvent::RenewFailed { error, .. } if error.failure_kind() == Some(FailureKind::Timeout)
    )));
    assert_eq!(sim.events.len(), 6);
    sim.events.clear();
    // The retry at 123 s is past the lease: lost, next try in 64 s.
    sim.tick(123);
    sim.fail(a, 123, FailureKind::Timeout);
    assert!(matches!(
        &sim.events[..],
        [KeeperEvent::Lost { id, retry_in, error }] if *id == a
            && *retry_in == Duration::from_secs(64)
            && error.failure_kind() == Some(FailureKind::Timeout)
    ));
    assert_eq!(sim.s.current(a), None);
    sim.events.clear();
    // The router answers again: a fresh map, reported as recovered.
    sim.tick(187);
    assert!(matches!(sim.grant(a, 187, &router), Op::Map(_)));
    assert_eq!(sim.remaps(), [(a, RemapReason::Recovered)]);
    assert!(sim.s.current(a).is_some());
}

#[test]
fn backoff_doubles_up_to_the_maximum() {
    let s = Schedule::new(KeeperConfig::default());
    let waits: Vec<u64> = (1..=11).map(|n| s.backoff(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(s.backoff(u32::MAX), Duration::from_secs(300));
}

#[test]
fn an_epoch_reset_remaps_every_mapping_at_once() {
    let mut sim = Sim::new();
    let mut router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    sim.grant(a, 0, &router);
    let b = sim.add(request(6000, 7200));
    sim.grant(b, 30, &router);
    router.booted = Some(sim.at(50)); // reboot
    sim.tick(60);
    sim.grant(a, 60, &router);
    // b is renewed at once instead of at 90 s, as part of the re-map.
    assert!(matches!(sim.grant(b, 60, &router), Op::Renew(..)));
    assert_eq!(
        sim.remaps(),
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
    // Acted on once: next come the regular renewals.
    assert_eq!(sim.s.next_deadline(), Some(sim.at(120)));
}

/// Both renewals in flight when the first answer reveals a reboot: the
/// second was answered under the new epoch, so it is the re-map and not
/// repeated.
#[test]
fn a_renewal_in_flight_during_a_reset_counts_as_the_remap() {
    let mut sim = Sim::new();
    let mut router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    let b = sim.add(request(6000, 7200));
    sim.grant(a, 0, &router);
    sim.grant(b, 0, &router);
    router.booted = Some(sim.at(50));
    sim.tick(60);
    assert_eq!(sim.started.len(), 2);
    sim.grant(a, 61, &router);
    assert_eq!(sim.started.len(), 1, "b is in flight: not started again");
    sim.grant(b, 61, &router);
    assert_eq!(
        sim.remaps(),
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
    assert!(sim.started.is_empty());
    assert_eq!(sim.s.next_deadline(), Some(sim.at(121)));
}

#[test]
fn a_new_external_address_is_reported_and_remaps_the_others() {
    let mut sim = Sim::new();
    let mut router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    sim.grant(a, 0, &router);
    let b = sim.add(request(6000, 7200));
    sim.grant(b, 20, &router);
    sim.events.clear();
    router.external = Ipv4Addr::new(198, 51, 100, 99);
    sim.tick(60);
    sim.grant(a, 60, &router);
    assert!(sim.events.iter().any(|e| matches!(e,
        KeeperEvent::ExternalAddressChanged { id, new, .. }
            if *id == a && *new == IpAddr::from(router.external))));
    sim.grant(b, 60, &router);
    assert_eq!(
        sim.remaps(),
        [
            (a, RemapReason::ExternalAddressChanged),
            (b, RemapReason::ExternalAddressChanged)
        ]
    );
}

/// A pinhole's "external" address is the host's own, and the IPv6 server
/// keeps its own epoch: neither is a change of the router's state.
#[test]
fn pinholes_follow_their_own_epoch_and_address() {
    let mut sim = Sim::new();
    let mut router = Router::new(&sim, 120);
    router.v6_booted = Some(sim.t0 - Duration::from_secs(50_000));
    let a = sim.add(request(5000, 7200));
    let b = sim.add(pinhole(6000, 7200));
    sim.grant(a, 0, &router);
    sim.grant(b, 0, &router);
    for t in [60, 120, 180] {
        sim.tick(t);
        sim.grant(a, t, &router);
        sim.grant(b, t, &router);
    }
    assert!(
        sim.events
            .iter()
            .skip(2)
            .all(|e| matches!(e, KeeperEvent::Renewed { .. })),
        "{:?}",
        sim.events
    );
    assert_eq!(sim.events.len(), 8);
    sim.events.clear();
    // A reboot seen on the pinhole's server re-makes the NAT mapping too.
    router.booted = Some(sim.at(200));
    router.v6_booted = router.booted;
    sim.tick(240);
    sim.grant(b, 240, &router);
    sim.grant(a, 240, &router);
    assert_eq!(
        sim.remaps(),
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
}

/// UPnP has no epoch: a renewal answered "no such mapping" shows the
/// router forgot. That mapping is made afresh at once and every other one
/// is renewed at once; nothing is reported lost.
#[test]
fn a_forgotten_mapping_is_made_again_and_the_others_checked_at_once() {
    let mut sim = Sim::new();
    let mut router = Router::new(&sim, 120);
    router.booted = None;
    let a = sim.add(pinhole(7000, 7200));
    sim.grant(a, 0, &router);
    let b = sim.add(pinhole(7001, 7200));
    let c = sim.add(pinhole(7002, 7200));
    sim.grant(b, 20, &router);
    sim.grant(c, 20, &router);
    sim.events.clear();
    sim.tick(60);
    assert!(matches!(
        sim.fail(a, 60, FailureKind::NoSuchMapping),
        Op::Renew(..)
    ));
    // b forgotten too: answered 704 within the sweep, made again at once
    // without starting another sweep.
    assert!(matches!(
        sim.fail(b, 60, FailureKind::NoSuchMapping),
        Op::Renew(..)
    ));
    assert!(matches!(sim.grant(c, 60, &router), Op::Renew(..)));
    assert!(matches!(sim.grant(a, 60, &router), Op::Map(_)));
    assert!(matches!(sim.grant(b, 60, &router), Op::Map(_)));
    assert!(sim.started.is_empty(), "{:?}", sim.started);
    assert!(
        !sim.events.iter().any(|e| matches!(
            e,
            KeeperEvent::Lost { .. } | KeeperEvent::RenewFailed { .. }
        )),
        "{:?}",
        sim.events
    );
    assert_eq!(
        sim.remaps(),
        [
            (a, RemapReason::Forgotten),
            (b, RemapReason::Forgotten),
            (c, RemapReason::Forgotten)
        ]
    );
    assert_eq!(sim.s.next_deadline(), Some(sim.at(120)));
}

#[test]
fn a_failed_first_attempt_keeps_nothing() {
    let mut sim = Sim::new();
    let a = sim.add(request(5000, 7200));
    sim.fail(a, 0, FailureKind::Timeout);
    assert_eq!(sim.given_up, [(a, Some(FailureKind::Timeout))]);
    assert!(sim.events.is_empty());
    assert_eq!(sim.s.next_deadline(), None);
    assert!(sim.s.drain().is_empty());
}

#[test]
fn a_grant_landing_after_removal_is_deleted() {
    let mut sim = Sim::new();
    let router = Router::new(&sim, 120);
    let a = sim.add(request(5000, 7200));
    sim.grant(a, 0, &router);
    sim.tick(60);
    // Removed while its renewal is in flight: the driver deletes the
    // mapping it knew, and the grant that lands later is deleted too.
    let held = sim.s.remove(a).expect("known");
    assert_eq!(held.map(|m| m.obtained), Some(sim.at(0)));
    assert_eq!(sim.s.remove(a), None);
    sim.grant(a, 61, &router);
    assert_eq!(sim.deleted.len(), 1);
    assert_eq!(sim.deleted[0].obtained, sim.at(61));
    assert_eq!(sim.s.next_deadline(), None);
}
