//! A mechanism's detection that panics (a bug of this host's) is that
//! mechanism's [`FailureKind::Local`] failure in the report, with the
//! [`JoinError`] kept: never a mechanism missing from the report, never a
//! mapping that finds no mechanism when a worse one answered.
//!
//! On tokio's paused clock, against the fake NAT-PMP server on loopback
//! (natkit's drivers and the fake take tokio's time; loopback delivers a
//! datagram, or its ICMP error, before `send_to` returns).

use std::net::{Ipv4Addr, SocketAddr};

use natkit_core::{FailureKind, PortMapper, Protocol, error_line};
use natkit_testkit::loopback_gateway;
use natkit_testkit::pmp::{Behaviour, FakeServer};
use tokio::task::JoinError;

use super::*;
use crate::RouterVerdict;
use crate::report::MechanismError;

const EXTERNAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 77);

/// A NAT-PMP-only server that loses the first `lost` NAT-PMP requests.
async fn natpmp_losing(lost: usize) -> FakeServer {
    FakeServer::v4(Behaviour {
        pcp: false,
        external_ip: EXTERNAL,
        drop_first: lost,
        drop_version: Some(0),
        ..Behaviour::default()
    })
    .await
}

/// PCP, then NAT-PMP against `fake` (NAT-PMP only), with PCP's detection
/// panicking before it sends anything.
fn mapper(fake: &FakeServer) -> AutoMapper {
    let mut config = PortMapConfig {
        gateway: Some(loopback_gateway()),
        ..PortMapConfig::default()
    }
    .with_order(vec![Mechanism::Pcp, Mechanism::NatPmp]);
    config.natpmp.server_port = fake.port();
    let mut auto = AutoMapper::new(config);
    Arc::get_mut(&mut auto.inner)
        .expect("not shared yet")
        .detect_panics = Some(Mechanism::Pcp);
    auto
}

fn panicked(e: &MechanismError) -> bool {
    e.kind == FailureKind::Local
        && e.error.as_deref().is_some_and(|e| {
            e.failure_kind() == Some(FailureKind::Local)
                && e.downcast_source::<JoinError>()
                    .is_some_and(JoinError::is_panic)
        })
}

#[tokio::test(start_paused = true)]
async fn a_detection_that_panics_is_a_local_failure_and_the_next_mechanism_maps() {
    let fake = natpmp_losing(0).await;
    let auto = mapper(&fake);
    let t0 = Instant::now();
    // The best mechanism's detection panicked: the mapping waits for it no
    // longer than for a failure (not at all), and goes to the next that
    // answered.
    let request = MappingRequest::new(
        Protocol::Udp,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40_123)),
    );
    let mapping = auto.map(&request).await.expect("mapped through NAT-PMP");
    assert_eq!(mapping.mechanism, Mechanism::NatPmp);
    assert_eq!(mapping.external.ip(), IpAddr::V4(EXTERNAL));
    assert_eq!(t0.elapsed(), Duration::ZERO);

    let report = auto.last_detection().await;
    assert_eq!(
        report.verdict,
        RouterVerdict::Usable(Mechanism::NatPmp),
        "{report:?}"
    );
    // Every mechanism is in the report, the one that panicked too.
    let mechanisms: Vec<Mechanism> = report.mechanisms.iter().map(|r| r.mechanism).collect();
    assert_eq!(mechanisms, [Mechanism::Pcp, Mechanism::NatPmp]);
    let pcp = report.get(Mechanism::Pcp).expect("PCP reported");
    assert!(!pcp.available && !pcp.responded, "{pcp:?}");
    let error = pcp.error.as_ref().expect("why PCP is not available");
    assert!(panicked(error), "{error:?}");
    assert!(
        error.message.contains("a bug in pcp's detection"),
        "the line names the panic: {error}"
    );
    assert_eq!(
        error.message,
        error_line(error.error.as_deref().expect("typed")),
        "the line is the typed error's"
    );
    auto.unmap(&mapping).await.expect("deleted");
    assert!(fake.mappings().is_empty());
}

/// NAT-PMP's first window lost entirely while PCP's detection panicked: the
/// panic counts as PCP's silent first window, so NAT-PMP (which waits for
/// every first window before deciding) gets its second window at once and
/// finds the router, rather than waiting out its limit for PCP and
/// reporting no answer.
#[tokio::test(start_paused = true)]
async fn a_detection_that_panics_ends_its_first_window_for_its_sibling() {
    // DETECT_PLAN sends 3 times in the first window; the 4th is answered.
    let fake = natpmp_losing(3).await;
    let report = mapper(&fake).detect().await;
    assert_eq!(
        report.verdict,
        RouterVerdict::Usable(Mechanism::NatPmp),
        "{report:?}"
    );
    let pcp = report.get(Mechanism::Pcp).expect("PCP reported");
    assert!(panicked(pcp.error.as_ref().expect("why")), "{pcp:?}");
    assert_eq!(fake.requests().len(), 4, "NAT-PMP's 3 lost sends, then 1");
}
