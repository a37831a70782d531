//! IPv6 pinholes in the keeper, next to IPv4 mappings, on the paused clock.

use super::*;
use std::net::SocketAddrV6;

fn pinhole(port: u16, lifetime_s: u64) -> MappingRequest {
    let addr: SocketAddrV6 = format!("[2a0d:88:77:77::2]:{port}").parse().unwrap();
    MappingRequest::pinhole(Protocol::Tcp, addr).with_lifetime(Duration::from_secs(lifetime_s))
}

fn remaps(events: &[KeeperEvent]) -> Vec<(MappingId, RemapReason)> {
    let mut out: Vec<(MappingId, RemapReason)> = events
        .iter()
        .filter_map(|e| match e {
            KeeperEvent::Remapped { id, reason, .. } => Some((*id, *reason)),
            _ => None,
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

/// A pinhole's "external" address is the host's own and the IPv6 PCP
/// server keeps its own epoch: renewing both kinds side by side is no
/// address change and no reset. A reboot is still acted on, once.
#[tokio::test(start_paused = true)]
async fn pinholes_and_nat_mappings_renew_side_by_side() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    router.with(|s| s.v6_booted = Some(t0 - Duration::from_secs(50_000)));
    let (keeper, mut events) = keeper(&router);
    let (a, m4) = keeper.add(request(5000, 7200)).await.unwrap();
    let (b, m6) = keeper.add(pinhole(6000, 7200)).await.unwrap();
    assert!(!m4.is_pinhole());
    assert!(m6.is_pinhole());
    assert_eq!(m6.external, m6.internal);
    drain(&mut events);
    advance_to(t0, 181).await;
    assert_eq!(
        router.calls("renew"),
        [60, 60, 120, 120, 180, 180].map(Duration::from_secs)
    );
    let evs = drain(&mut events);
    assert_eq!(evs.len(), 6, "{evs:?}");
    assert!(
        evs.iter().all(|e| matches!(e, KeeperEvent::Renewed { .. })),
        "{evs:?}"
    );

    router.reboot();
    advance_to(t0, 241).await;
    assert_eq!(router.calls("renew").len(), 8);
    assert_eq!(
        remaps(&drain(&mut events)),
        [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
    );
    assert_eq!(router.with(|s| s.table.len()), 2);
    // Acted on once: the next renewals are the regular ones.
    advance_to(t0, 301).await;
    assert_eq!(router.calls("renew").len(), 10);
    assert!(
        drain(&mut events)
            .iter()
            .all(|e| matches!(e, KeeperEvent::Renewed { .. }))
    );
    let report = keeper.shutdown().await;
    assert_eq!(report.released, [a, b]);
    assert!(router.with(|s| s.table.is_empty()));
}

/// A UPnP router that restarted has no epoch to show it: the renewal of
/// a pinhole it forgot is answered 704 (`NoSuchMapping`). The keeper makes
/// that pinhole again at once, renews the others at once (and makes again
/// those it forgot too), and reports neither as lost.
#[tokio::test(start_paused = true)]
async fn forgotten_pinholes_are_made_again_at_once() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    router.with(|s| {
        s.no_epoch = true;
        s.strict_renew = true;
    });
    let (keeper, mut events) = keeper(&router);
    let (a, _) = keeper.add(pinhole(7000, 7200)).await.unwrap();
    advance_to(t0, 20).await;
    let (b, _) = keeper.add(pinhole(7001, 7200)).await.unwrap();
    drain(&mut events);
    advance_to(t0, 50).await;
    router.reboot();
    advance_to(t0, 61).await;
    // a's renewal at 60 s meets 704; b is checked at once (not at 80 s).
    assert_eq!(router.calls("renew"), [60, 60].map(Duration::from_secs));
    assert_eq!(
        router.calls("map"),
        [0, 20, 60, 60].map(Duration::from_secs)
    );
    let evs = drain(&mut events);
    assert_eq!(
        remaps(&evs),
        [(a, RemapReason::Forgotten), (b, RemapReason::Forgotten)],
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(
            e,
            KeeperEvent::Lost { .. } | KeeperEvent::RenewFailed { .. }
        )),
        "{evs:?}"
    );
    assert_eq!(router.with(|s| s.table.len()), 2);
    assert!(keeper.current(a).await.unwrap().is_some());
    // Then the regular schedule: half the lifetime after the new grants.
    advance_to(t0, 121).await;
    assert_eq!(router.calls("renew").len(), 4);
    keeper.shutdown().await;
    assert!(router.with(|s| s.table.is_empty()));
}
