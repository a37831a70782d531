//! natkit-core's `LeaseKeeper` over each real mapper (UPnP, NAT-PMP, PCP)
//! against miniupnpd in the NAT lab, through a router reboot
//! (`restart_miniupnpd`: new epoch, every mapping forgotten), without the
//! application doing anything (root only; fails, never skips, without it).
//!
//! The helper `keeper_lan_side` runs in the LAN: echo servers, a keeper with
//! a short renewal period ([`RENEW_EVERY`]), one TCP and one UDP mapping, and
//! every keeper event printed as an `EVENT` line. The outer test restarts
//! miniupnpd, waits for the keeper to put the mappings back, times it, and has
//! the wan peer exchange bytes through them again.
//!
//! What the keeper can tell differs by mechanism:
//! - NAT-PMP and PCP answers carry the epoch: the first renewal after the
//!   restart sees it reset (RFC 6887 §8.5), reports `Remapped(EpochReset)` and
//!   re-makes the other mapping at once.
//! - UPnP has no epoch, and miniupnpd answers AddPortMapping for a forgotten
//!   entry exactly as for a live one, so the renewal silently re-creates it:
//!   the event is a plain `Renewed`. The mapping is back within one renewal
//!   period all the same, which is what this test holds it to.

mod lab_mappers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natkit_core::{KeeperConfig, KeeperEvent, LeaseKeeper, MappingRequest, Protocol};
use natkit_lab::{
    HelperSession, Lab, MappedLine, Node, PROOF_TCP_PORT, PROOF_UDP_PORT, assert_reaches,
    router_row, serve_commands, spawn_echo,
};

use lab_mappers::{line, mapper};

/// The lease asked for. miniupnpd grants NAT-PMP and PCP at least 120 s.
const LIFETIME: Duration = Duration::from_secs(120);
/// How often the keeper renews: `renew_fraction` of the 120 s lease.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// miniupnpd must have run this long before the restart so that its new
/// epoch (near 0) is told from the old one under the §8.5 tolerance
/// (1 s backwards, 2 s of drift).
const EPOCH_AGE: Duration = Duration::from_secs(8);

fn event_line(e: &KeeperEvent) -> String {
    let word = |s: &dyn std::fmt::Display| s.to_string().replace(' ', "_");
    let (kind, reason, id, mapping) = match e {
        KeeperEvent::Mapped { id, mapping } => ("mapped", "-".into(), Some(id), Some(mapping)),
        KeeperEvent::Renewed { id, mapping } => ("renewed", "-".into(), Some(id), Some(mapping)),
        KeeperEvent::Remapped {
            id,
            mapping,
            reason,
        } => ("remapped", format!("{reason:?}"), Some(id), Some(mapping)),
        KeeperEvent::ExternalAddressChanged { id, new, .. } => {
            ("address", new.to_string(), Some(id), None)
        }
        KeeperEvent::RenewFailed { id, error, .. } => ("renew_failed", word(error), Some(id), None),
        KeeperEvent::Lost { id, error, .. } => ("lost", word(error), Some(id), None),
        KeeperEvent::Released { id } => ("released", "-".into(), Some(id), None),
        KeeperEvent::ReleaseFailed { id, error } => ("release_failed", word(error), Some(id), None),
        other => ("other", word(&format!("{other:?}")), None, None),
    };
    let id = id.map_or_else(|| "-".to_owned(), ToString::to_string);
    let mapping = mapping.map_or_else(|| "-".to_owned(), |m| line(m).to_string());
    format!("EVENT {kind} {reason} {id} {mapping}")
}

#[test]
#[ignore = "helper process body; keeper_*_through_restart run it in the LAN"]
fn keeper_lan_side() {
    let (a, rt) = natkit_testkit::lab_helper("keeper_lan_side");
    let mech = std::env::var("MECH").expect("MECH");
    spawn_echo(PROOF_TCP_PORT, PROOF_UDP_PORT).expect("echo servers");
    let config = KeeperConfig {
        renew_fraction: RENEW_EVERY.as_secs_f64() / LIFETIME.as_secs_f64(),
        min_renew_interval: Duration::from_secs(1),
        retry_initial: Duration::from_millis(250),
        retry_max: Duration::from_secs(2),
        ..KeeperConfig::default()
    };
    let mut keeper = Some(rt.block_on(async {
        let (keeper, mut events) = LeaseKeeper::new(mapper(&mech, a.rtr_lan).await, config);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                println!("{}", event_line(&e));
            }
        });
        for (p, port) in [
            (Protocol::Tcp, PROOF_TCP_PORT),
            (Protocol::Udp, PROOF_UDP_PORT),
        ] {
            let req =
                MappingRequest::new(p, SocketAddr::from((a.lan, port))).with_lifetime(LIFETIME);
            keeper.add(req).await.expect("keeper add");
        }
        keeper
    }));
    serve_commands(|cmd| match cmd {
        "shutdown" => {
            let report = rt.block_on(keeper.take().expect("running").shutdown());
            vec![format!(
                "SHUTDOWN released={} failed={}",
                report.released.len(),
                report.failed.len()
            )]
        }
        other => panic!("unknown command {other:?}"),
    });
}

/// One parsed `EVENT` line and when it arrived.
#[derive(Debug)]
struct Event {
    kind: String,
    reason: String,
    id: String,
    mapping: Option<MappedLine>,
    at: Instant,
}

fn next_event(h: &mut HelperSession, timeout: Duration) -> Event {
    let (text, at) = h.expect("EVENT ", timeout).expect("keeper event");
    let mut w = text.splitn(4, ' ');
    let mut field = || w.next().unwrap_or_default().to_owned();
    let (kind, reason, id, rest) = (field(), field(), field(), field());
    Event {
        kind,
        reason,
        id,
        mapping: MappedLine::parse(&rest),
        at,
    }
}

fn keeper_through_restart(mech: &str) {
    natkit_lab::require_root();
    let mut lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let lab_up = Instant::now();
    let mut h = lab
        .helper_session(Node::Lan, "keeper_lan_side", &[("MECH", mech)])
        .expect("helper");
    let mapped: Vec<Event> = (0..2)
        .map(|_| next_event(&mut h, Duration::from_secs(30)))
        .collect();
    let mut current = Vec::new();
    for e in &mapped {
        assert_eq!(e.kind, "mapped", "{e:?}");
        let m = e.mapping.expect("mapping");
        router_row(&lab, &m);
        assert_reaches(&lab, &mut h, &m, "before-restart");
        current.push((e.id.clone(), m));
    }

    // Let the epoch grow old enough, and a renewal or two pass.
    std::thread::sleep(EPOCH_AGE.saturating_sub(lab_up.elapsed()));
    let restarted = Instant::now();
    lab.restart_miniupnpd().expect("restart miniupnpd");
    let restart_done = Instant::now();
    let rows = lab.router_mappings().expect("listing");
    assert!(
        rows.iter().all(|r| *r.internal.ip() != lab.addrs().lan),
        "the restart kept mappings: {rows:?}"
    );

    // Without the app doing anything, both mappings come back.
    let mut back = Vec::new();
    let mut seen = Vec::new();
    let deadline = restart_done + RENEW_EVERY * 3;
    while back.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not re-mapped within {:?} of the restart; events: {seen:#?}",
            RENEW_EVERY * 3
        );
        let e = next_event(&mut h, left);
        let is_back = match mech {
            // No epoch in UPnP: the first renewal after the restart puts the
            // entry back and reports it as renewed (see the module docs).
            "upnp" => e.kind == "renewed" && e.at > restart_done,
            _ => e.kind == "remapped" && e.reason == "EpochReset",
        };
        if is_back && !back.iter().any(|b: &Event| b.id == e.id) {
            back.push(e);
        } else {
            seen.push(e);
        }
    }
    for e in &back {
        let m = e.mapping.expect("mapping");
        let before = current
            .iter()
            .find(|(id, _)| *id == e.id)
            .expect("known id");
        assert_eq!(m.internal, before.1.internal);
        // A renewal already in flight when another mapping's answer showed
        // the reset lands with the new epoch and re-creates the entry, but
        // the keeper reports it as `renewed` and re-maps once more later.
        let first_grant = seen
            .iter()
            .chain(std::iter::once(e))
            .filter(|s| s.id == e.id && s.at > restart_done && s.mapping.is_some())
            .map(|s| s.at)
            .min()
            .unwrap_or(e.at);
        println!(
            "{mech}: {} {} reported back {:?} after the restart returned (first grant after \
             it: {:?}; the restart itself took {:?}); other events: {:?}",
            e.id,
            m,
            e.at - restart_done,
            first_grant - restart_done,
            restart_done - restarted,
            seen.iter().map(|s| &s.kind).collect::<Vec<_>>()
        );
        router_row(&lab, &m);
        assert_reaches(&lab, &mut h, &m, "after-restart");
    }

    h.send("shutdown").expect("send shutdown");
    let (report, _) = h
        .expect("SHUTDOWN", Duration::from_secs(15))
        .expect("shutdown");
    assert_eq!(report, "released=2 failed=0");
    let rows = lab.router_mappings().expect("listing");
    assert!(
        rows.iter().all(|r| *r.internal.ip() != lab.addrs().lan),
        "left after shutdown: {rows:?}"
    );
    assert!(h.finish(Duration::from_secs(10)).expect("helper exit"));
}

#[test]
fn keeper_pcp_through_restart() {
    keeper_through_restart("pcp");
}

#[test]
fn keeper_natpmp_through_restart() {
    keeper_through_restart("natpmp");
}

#[test]
fn keeper_upnp_through_restart() {
    keeper_through_restart("upnp");
}
