//! The keeper on a paused tokio clock against a fake router.

use super::*;
use crate::{FailureKind, GatewayEpoch, Mechanism, Protocol};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use tokio::time::Instant;

mod panics;
mod pinholes;

/// A router with a mapping table, an epoch clock that restarts on
/// reboot, and switchable failure modes.
struct FakeRouter {
    state: Mutex<RouterState>,
}

struct RouterState {
    booted: Instant,
    external: Ipv4Addr,
    lifetime: Duration,
    down: bool,
    hang_on_delete: bool,
    /// How long a renewal takes before the router answers.
    renew_delay: Duration,
    /// (protocol, internal port) → external port
    table: BTreeMap<(Protocol, u16), u16>,
    calls: Vec<(&'static str, u16, Duration)>,
    started: Instant,
    /// IPv6 pinholes' own server clock (a separate PCP server), if any.
    v6_booted: Option<Instant>,
    /// No epochs at all (UPnP).
    no_epoch: bool,
    /// A renewal of an entry the router does not hold fails with
    /// `NoSuchMapping` (UPnP `UpdatePinhole` after a restart: 704).
    strict_renew: bool,
    /// The call (`map`, `renew`, `unmap`) that panics, as a bug in a
    /// mapper would.
    panic_on: Option<&'static str>,
}

impl FakeRouter {
    fn new(lifetime: Duration) -> Arc<FakeRouter> {
        let now = Instant::now();
        Arc::new(FakeRouter {
            state: Mutex::new(RouterState {
                booted: now - Duration::from_secs(1000),
                external: Ipv4Addr::new(198, 51, 100, 1),
                lifetime,
                down: false,
                hang_on_delete: false,
                renew_delay: Duration::ZERO,
                table: BTreeMap::new(),
                calls: Vec::new(),
                started: now,
                v6_booted: None,
                no_epoch: false,
                strict_renew: false,
                panic_on: None,
            }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut RouterState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Panics if `call` is to (outside the lock, which stays usable).
    fn bug(&self, call: &str) {
        if self.with(|s| s.panic_on == Some(call)) {
            panic!("a bug in the mapper's {call}");
        }
    }

    fn reboot(&self) {
        self.with(|s| {
            s.booted = Instant::now();
            s.v6_booted = s.v6_booted.map(|_| s.booted);
            s.table.clear();
        });
    }

    fn calls(&self, kind: &str) -> Vec<Duration> {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|c| c.0 == kind)
                .map(|c| c.2)
                .collect()
        })
    }

    fn grant(&self, kind: &'static str, request: &MappingRequest) -> Result<Mapping> {
        self.with(|s| {
            let now = Instant::now();
            s.calls
                .push((kind, request.internal.port(), now - s.started));
            if s.down {
                return Err(Error::mechanism(
                    Mechanism::NatPmp,
                    FailureKind::Timeout,
                    "no answer",
                ));
            }
            let key = (request.protocol, request.internal.port());
            if kind == "renew" && s.strict_renew && !s.table.contains_key(&key) {
                return Err(Error::mechanism(
                    Mechanism::Upnp,
                    FailureKind::NoSuchMapping,
                    "704 NoSuchEntry",
                ));
            }
            let ext = request.external_port.unwrap_or(request.internal.port());
            s.table.insert(key, ext);
            let (mapping, booted) = if request.is_pinhole() {
                let m = Mapping::pinhole(
                    Mechanism::Pcp,
                    request.protocol,
                    request.internal,
                    s.lifetime,
                    now.into_std(),
                );
                (m, s.v6_booted.unwrap_or(s.booted))
            } else {
                let m = Mapping::new(
                    Mechanism::NatPmp,
                    request.protocol,
                    SocketAddr::new(s.external.into(), ext),
                    request.internal,
                    s.lifetime,
                    now.into_std(),
                );
                (m, s.booted)
            };
            let epoch = (!s.no_epoch).then(|| GatewayEpoch {
                server_seconds: (now - booted).as_secs() as u32,
                observed_at: now.into_std(),
            });
            Ok(mapping.with_epoch(epoch))
        })
    }
}

#[async_trait::async_trait]
impl PortMapper for FakeRouter {
    fn mechanism(&self) -> Mechanism {
        Mechanism::NatPmp
    }
    async fn external_address(&self) -> Result<IpAddr> {
        Ok(self.with(|s| s.external.into()))
    }
    async fn map(&self, request: &MappingRequest) -> Result<Mapping> {
        self.bug("map");
        self.grant("map", request)
    }
    async fn renew(&self, request: &MappingRequest, _current: &Mapping) -> Result<Mapping> {
        let delay = self.with(|s| s.renew_delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.bug("renew");
        self.grant("renew", request)
    }
    async fn unmap(&self, mapping: &Mapping) -> Result<()> {
        self.bug("unmap");
        let hang = self.with(|s| {
            let started = s.started;
            s.calls
                .push(("unmap", mapping.internal.port(), Instant::now() - started));
            s.hang_on_delete
        });
        if hang {
            std::future::pending::<()>().await;
        }
        self.with(|s| s.table.remove(&(mapping.protocol, mapping.internal.port())));
        Ok(())
    }
}

fn request(port: u16, lifetime_s: u64) -> MappingRequest {
    MappingRequest::new(
        Protocol::Udp,
        SocketAddr::new(Ipv4Addr::new(192, 168, 77, 2).into(), port),
    )
    .with_lifetime(Duration::from_secs(lifetime_s))
}

fn keeper(router: &Arc<FakeRouter>) -> (LeaseKeeper, KeeperEvents) {
    LeaseKeeper::new(
        Arc::clone(router) as Arc<dyn PortMapper>,
        KeeperConfig::default(),
    )
}

fn drain(rx: &mut KeeperEvents) -> Vec<KeeperEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

async fn advance_to(start: Instant, secs: u64) {
    tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
    // Let the keeper task run what became due.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn renews_at_half_the_granted_lifetime() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (id, m) = keeper.add(request(5000, 7200)).await.unwrap();
    assert_eq!(m.external.port(), 5000);
    assert!(matches!(drain(&mut events)[..], [KeeperEvent::Mapped { id: i, .. }] if i == id));
    advance_to(t0, 59).await;
    assert!(router.calls("renew").is_empty());
    advance_to(t0, 61).await;
    assert_eq!(router.calls("renew"), [Duration::from_secs(60)]);
    assert!(matches!(
        drain(&mut events)[..],
        [KeeperEvent::Renewed { .. }]
    ));
    advance_to(t0, 181).await;
    assert_eq!(
        router.calls("renew"),
        [60, 120, 180].map(Duration::from_secs)
    );
    let report = keeper.shutdown().await;
    assert_eq!(report.released, [id]);
    assert!(router.with(|s| s.table.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn epoch_reset_remaps_every_mapping_at_once() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
    advance_to(t0, 30).await;
    let (b, _) = keeper.add(request(6000, 7200)).await.unwrap();
    drain(&mut events);
    advance_to(t0, 50).await;
    router.reboot(); // the router forgets both mappings
    assert!(router.with(|s| s.table.is_empty()));
    advance_to(t0, 61).await;
    // a's renewal at 60 s sees the new epoch; b is re-made at once
    // instead of at its own renewal time (90 s).
    assert_eq!(router.calls("renew"), [60, 60].map(Duration::from_secs));
    assert_eq!(router.with(|s| s.table.len()), 2);
    let evs = drain(&mut events);
    let reasons: Vec<(MappingId, RemapReason)> = evs
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Remapped { id, reason, .. } => Some((*id, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
    keeper.shutdown().await;
}

/// Two renewals in flight when the first reveals a reboot: the second
/// was answered under the new epoch, so it is reported as the re-map
/// and not repeated at the next renewal.
#[tokio::test(start_paused = true)]
async fn renewal_in_flight_during_reset_counts_as_the_remap() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
    let (b, _) = keeper.add(request(6000, 7200)).await.unwrap();
    drain(&mut events);
    router.with(|s| s.renew_delay = Duration::from_secs(1));
    advance_to(t0, 50).await;
    router.reboot();
    // Both renewals start at 60 s and are answered at 61 s.
    advance_to(t0, 62).await;
    let mut reasons: Vec<(MappingId, RemapReason)> = drain(&mut events)
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Remapped { id, reason, .. } => Some((*id, *reason)),
            _ => None,
        })
        .collect();
    reasons.sort_by_key(|r| r.0);
    assert_eq!(
        reasons,
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
    assert_eq!(router.with(|s| s.table.len()), 2);
    // No redundant re-map: the next calls are the regular renewals at
    // half the lifetime after the grants (61 + 60 s).
    // (The fake router logs a renewal when it answers: at 61 s.)
    advance_to(t0, 119).await;
    assert_eq!(router.calls("renew"), [61, 61].map(Duration::from_secs));
    assert!(drain(&mut events).is_empty());
    keeper.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn backs_off_reports_loss_and_recovers() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (id, _) = keeper.add(request(5000, 7200)).await.unwrap();
    drain(&mut events);
    router.with(|s| s.down = true);
    advance_to(t0, 119).await;
    // Renewal at 60 s, then retries 1, 2, 4, 8, 16 s apart.
    assert_eq!(
        router.calls("renew"),
        [60, 61, 63, 67, 75, 91].map(Duration::from_secs)
    );
    let evs = drain(&mut events);
    assert_eq!(evs.len(), 6);
    assert!(
        evs.iter()
            .all(|e| matches!(e, KeeperEvent::RenewFailed { .. }))
    );
    // The next retry (91 + 32 = 123 s) is past the lease: lost.
    advance_to(t0, 124).await;
    assert!(matches!(
        drain(&mut events)[..],
        [KeeperEvent::Lost { id: i, retry_in, .. }] if i == id && retry_in == Duration::from_secs(64)
    ));
    assert_eq!(keeper.current(id).await.unwrap(), None);
    // The router comes back; the next attempt (187 s) re-makes the
    // mapping with a fresh map request.
    router.with(|s| s.down = false);
    advance_to(t0, 188).await;
    assert_eq!(router.calls("map"), [0, 187].map(Duration::from_secs));
    assert!(matches!(
        drain(&mut events)[..],
        [KeeperEvent::Remapped {
            reason: RemapReason::Recovered,
            ..
        }]
    ));
    assert!(keeper.current(id).await.unwrap().is_some());
    keeper.shutdown().await;
    assert!(router.with(|s| s.table.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn external_address_change_is_reported_and_remaps_others() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
    advance_to(t0, 20).await;
    keeper.add(request(6000, 7200)).await.unwrap();
    drain(&mut events);
    router.with(|s| s.external = Ipv4Addr::new(198, 51, 100, 99));
    advance_to(t0, 61).await;
    let evs = drain(&mut events);
    assert!(evs.iter().any(|e| matches!(e,
        KeeperEvent::ExternalAddressChanged { id, new, .. }
            if *id == a && *new == IpAddr::from(Ipv4Addr::new(198, 51, 100, 99)))));
    assert_eq!(router.calls("renew"), [60, 60].map(Duration::from_secs));
    keeper.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn permanent_grants_are_refreshed_on_our_schedule() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::ZERO); // "only permanent leases"
    let (keeper, _events) = keeper(&router);
    keeper.add(request(5000, 600)).await.unwrap();
    advance_to(t0, 601).await;
    assert_eq!(router.calls("renew"), [300, 600].map(Duration::from_secs));
    keeper.shutdown().await;
    assert!(router.with(|s| s.table.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn first_failure_is_returned_and_nothing_kept() {
    let router = FakeRouter::new(Duration::from_secs(120));
    router.with(|s| s.down = true);
    let (keeper, mut events) = keeper(&router);
    let err = keeper.add(request(5000, 7200)).await.unwrap_err();
    assert_eq!(err.failure_kind(), Some(FailureKind::Timeout));
    assert!(drain(&mut events).is_empty());
    let report = keeper.shutdown().await;
    assert!(
        report.released.is_empty() && report.all_released(),
        "{report:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_bounded_when_the_router_hangs() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    for port in [5000, 5001, 5002] {
        keeper.add(request(port, 7200)).await.unwrap();
    }
    drain(&mut events);
    router.with(|s| s.hang_on_delete = true);
    let report = keeper.shutdown().await;
    assert_eq!(
        Instant::now() - t0,
        KeeperConfig::default().shutdown_timeout
    );
    assert!(report.released.is_empty());
    assert_eq!(report.failed.len(), 3);
    let (_, e) = &report.failed[0];
    assert_eq!(e.failure_kind(), Some(FailureKind::Timeout));
    assert!(e.to_string().contains("shutdown timeout"), "{e}");
    // Each listener is told the very error the report holds.
    let told = drain(&mut events);
    assert_eq!(told.len(), 3);
    for (id, e) in &report.failed {
        assert!(
            told.iter().any(|t| matches!(t,
                KeeperEvent::ReleaseFailed { id: i, error } if i == id && Arc::ptr_eq(error, e)
            )),
            "{told:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn remove_deletes_one_and_drop_deletes_the_rest() {
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
    keeper.add(request(5001, 7200)).await.unwrap();
    keeper.add(request(5002, 7200)).await.unwrap();
    keeper.remove(a).await.unwrap();
    assert_eq!(router.with(|s| s.table.len()), 2);
    assert!(matches!(
        keeper.remove(a).await.err().as_deref(),
        Some(Error::KeeperClosed)
    ));
    drop(keeper);
    // The task notices every handle is gone and cleans up by itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(router.with(|s| s.table.is_empty()));
    let released = drain(&mut events)
        .iter()
        .filter(|e| matches!(e, KeeperEvent::Released { .. }))
        .count();
    assert_eq!(released, 3);
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_never_reads_costs_a_bounded_queue_and_is_told() {
    let t0 = Instant::now();
    // Renewals every 2 s (the floor) for an hour: about 1800 events.
    let router = FakeRouter::new(Duration::from_secs(4));
    let (keeper, mut idle) = keeper(&router);
    let mut late = keeper.subscribe();
    let (id, _) = keeper.add(request(5000, 4)).await.unwrap();
    advance_to(t0, 3600).await;
    let events = drain(&mut idle);
    assert!(events.len() <= EVENT_CAPACITY + 1, "{}", events.len());
    match events.first() {
        Some(KeeperEvent::Lagged { missed }) => assert!(*missed > 1000, "{missed}"),
        other => panic!("the first event read tells what was missed: {other:?}"),
    }
    assert!(matches!(
        events.last(),
        Some(KeeperEvent::Renewed { id: i, .. }) if *i == id
    ));
    // A second listener sees the same stream, from when it subscribed.
    assert!(matches!(late.try_recv(), Ok(KeeperEvent::Lagged { .. })));
    keeper.shutdown().await;
    let rest = drain(&mut late);
    assert!(
        rest.iter()
            .any(|e| matches!(e, KeeperEvent::Released { id: i } if *i == id)),
        "{rest:?}"
    );
    assert!(matches!(late.try_recv(), Err(TryRecvError::Closed)));
}
