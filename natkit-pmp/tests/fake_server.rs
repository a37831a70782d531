//! The mappers against a fake NAT-PMP/PCP server on loopback, on tokio's
//! paused clock: the drivers, their timers and the fake's epoch all take
//! tokio's time, and a loopback datagram is delivered before `send_to`
//! returns, so time moves only when every task waits on a timer, and each
//! timing rule holds exactly.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use natkit_core::{FailureKind, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper, NatPmpResultCode};
use natkit_pmp::pcp::{PcpAvailability, PcpConfig, PcpMapper, PcpResultCode};
use natkit_pmp::{DETECT_WINDOW, Error, RetransmitPlan};
use natkit_testkit::pmp::{Behaviour, FakeServer, Held, LOCALHOST_V6, silent};
use rand::SeedableRng;
use tokio::time::Instant;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn natpmp(port: u16) -> NatPmpMapper {
    NatPmpMapper::new(
        Ipv4Addr::LOCALHOST,
        NatPmpConfig {
            server_port: port,
            retransmit: RetransmitPlan::fast(),
            ..NatPmpConfig::default()
        },
    )
}

fn pcp_at(ip: IpAddr, port: u16) -> PcpMapper {
    pcp_seeded(ip, port, 7)
}

/// A PCP mapper whose nonces come from `seed`: two seeds are two processes.
fn pcp_seeded(ip: IpAddr, port: u16, seed: u64) -> PcpMapper {
    PcpMapper::with_rng(
        ip,
        PcpConfig {
            server_port: port,
            retransmit: RetransmitPlan::fast(),
            natpmp: NatPmpConfig {
                retransmit: RetransmitPlan::fast(),
                ..NatPmpConfig::default()
            },
            ..PcpConfig::default()
        },
        rand::rngs::StdRng::seed_from_u64(seed),
    )
}

fn pcp(port: u16) -> PcpMapper {
    pcp_at(LOCAL, port)
}

fn request(protocol: Protocol, port: u16) -> MappingRequest {
    MappingRequest::new(protocol, SocketAddr::new(LOCAL, port))
        .with_lifetime(Duration::from_secs(600))
}

/// The crate's own error inside a core error.
fn inner(e: &natkit_core::Error) -> &Error {
    let natkit_core::Error::Mechanism { source, .. } = e else {
        panic!("not a mechanism error: {e}")
    };
    source
        .downcast_ref::<Error>()
        .expect("natkit_pmp::Error source")
}

// ---------------------------------------------------------------- NAT-PMP

#[tokio::test(start_paused = true)]
async fn natpmp_maps_renews_and_deletes_tcp_and_udp() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m: Box<dyn PortMapper> = Box::new(natpmp(fake.port()));
    assert_eq!(m.name(), "natpmp");
    assert_eq!(
        m.external_address().await.unwrap(),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77))
    );
    for (protocol, port, number) in [(Protocol::Tcp, 15_022, 6u8), (Protocol::Udp, 15_023, 17)] {
        let req = request(protocol, port);
        let before = Instant::now().into_std();
        let mapping = m.map(&req).await.unwrap();
        assert_eq!(
            mapping.external,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77)), port)
        );
        assert_eq!(mapping.internal, SocketAddr::new(LOCAL, port));
        assert_eq!(mapping.protocol, protocol);
        assert_eq!(mapping.lifetime, Duration::from_secs(600));
        assert_eq!(mapping.mechanism, Mechanism::NatPmp);
        assert!(mapping.obtained >= before);
        assert!(!mapping.port_substituted(&req));
        let epoch = mapping.epoch.expect("epoch reported");
        assert!((10_000..10_010).contains(&epoch.server_seconds));
        assert_eq!(
            fake.mappings().get(&(number, port)),
            Some(&Held {
                external_port: port,
                lifetime: 600,
                nonce: None
            })
        );

        let renewed = m.renew(&req, &mapping).await.unwrap();
        assert_eq!(renewed.external, mapping.external);
        assert!(epoch.is_continued_by(&renewed.epoch.unwrap()));

        m.unmap(&renewed).await.unwrap();
        assert_eq!(fake.mappings().get(&(number, port)), None);
        // The delete went out as RFC 6886 §3.4 says: lifetime 0, port 0.
        let (_, last) = fake.requests().pop().unwrap();
        assert_eq!(&last[6..12], &[0, 0, 0, 0, 0, 0]);
    }
}

#[tokio::test(start_paused = true)]
async fn natpmp_reports_a_substituted_port() {
    let fake = FakeServer::v4(Behaviour {
        substitute_port: Some(40_443),
        ..Behaviour::default()
    })
    .await;
    let m = natpmp(fake.port());
    let req = request(Protocol::Tcp, 443);
    let mapping = m.map(&req).await.unwrap();
    assert_eq!(mapping.external.port(), 40_443);
    assert_eq!(mapping.internal.port(), 443);
    assert!(mapping.port_substituted(&req));
    // A renewal asks for the port we hold, not the one first asked for.
    m.renew(&req, &mapping).await.unwrap();
    let (_, renew) = fake.requests().pop().unwrap();
    assert_eq!(u16::from_be_bytes([renew[6], renew[7]]), 40_443);
}

#[tokio::test(start_paused = true)]
async fn natpmp_drops_and_counts_answers_from_other_sources() {
    let fake = FakeServer::v4(Behaviour {
        spoof_first: true,
        ..Behaviour::default()
    })
    .await;
    let m = natpmp(fake.port());
    let mapping = m.map(&request(Protocol::Udp, 15_100)).await.unwrap();
    // The forged answers said 6666; the real one 15100.
    assert_eq!(mapping.external.port(), 15_100);
    let c = m.counters();
    // Two exchanges (address, map), each preceded by two forged answers:
    // one from the server's address on another port, one from 127.0.0.2.
    assert_eq!(c.dropped_wrong_source, 4);
    assert_eq!(c.answered, 2);
}

#[tokio::test(start_paused = true)]
async fn natpmp_result_codes_are_typed() {
    for (code, kind, retryable) in [
        (2u8, FailureKind::Refused, false),
        (3, FailureKind::NotConnected, true),
        (4, FailureKind::NoResources, true),
        (5, FailureKind::Unsupported, false),
    ] {
        let fake = FakeServer::v4(Behaviour {
            force_result: Some(code),
            ..Behaviour::default()
        })
        .await;
        let m = natpmp(fake.port());
        let e = m.map(&request(Protocol::Tcp, 15_200)).await.unwrap_err();
        assert_eq!(e.failure_kind(), Some(kind), "code {code}");
        let Error::NatPmpResult { code: got, .. } = inner(&e) else {
            panic!("{e}")
        };
        assert_eq!(got.as_u16(), u16::from(code));
        assert_eq!(got.is_retryable(), retryable);
        assert_eq!(*got, NatPmpResultCode::from_u16(u16::from(code)));
    }
}

#[tokio::test(start_paused = true)]
async fn natpmp_retransmits_until_answered() {
    let fake = FakeServer::v4(Behaviour {
        drop_first: 2,
        ..Behaviour::default()
    })
    .await;
    let m = natpmp(fake.port());
    let start = Instant::now();
    let a = m.public_address().await.unwrap();
    // Sends at 0, 250 and 750 ms; the third is answered at once.
    assert_eq!(start.elapsed(), Duration::from_millis(750));
    assert_eq!(a.address, Ipv4Addr::new(198, 51, 100, 77));
    let c = m.counters();
    assert_eq!((c.sent, c.retransmitted, c.answered), (3, 2, 1));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn natpmp_detect_says_unavailable_quickly() {
    let (_silent, port) = silent().await;
    let m = natpmp(port);
    assert!(!m.is_available().await);
    // The detection plan: RFC 6886's 250 ms doubling for 2 s, four sends, so
    // one lost datagram does not make the gateway look silent.
    let e = m.detect().await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout { sends: 4, elapsed, .. } if elapsed == DETECT_WINDOW),
        "{e}"
    );
    let core = m.map(&request(Protocol::Tcp, 15_300)).await.unwrap_err();
    assert_eq!(core.failure_kind(), Some(FailureKind::Timeout));
    assert!(core.is_retryable());
    // fast(): 4 sends.
    assert!(matches!(inner(&core), Error::Timeout { sends: 4, .. }));
}

/// Nothing listens on the port: the host's ICMP port unreachable ends the
/// exchange at the first send (RFC 6886 §3.1), for detection and for a
/// mapping, NAT-PMP and PCP alike, instead of running out the plan.
#[tokio::test(start_paused = true)]
async fn a_closed_port_is_port_unreachable_at_the_first_send() {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let n = natpmp(port);
    let e = n.detect().await.unwrap_err();
    assert!(matches!(e, Error::PortUnreachable { sends: 1, .. }), "{e}");
    let core = n.map(&request(Protocol::Tcp, 15_310)).await.unwrap_err();
    assert_eq!(core.failure_kind(), Some(FailureKind::Unavailable));
    assert!(matches!(
        inner(&core),
        Error::PortUnreachable { sends: 1, .. }
    ));
    let p = PcpMapper::new(
        LOCAL,
        PcpConfig {
            server_port: port,
            fallback_to_natpmp: false,
            ..PcpConfig::default()
        },
    );
    let e = p.detect().await.unwrap_err();
    assert!(matches!(e, Error::PortUnreachable { sends: 1, .. }), "{e}");
    // The default MAP plan would retransmit for 2 minutes.
    let core = p.map(&request(Protocol::Udp, 15_311)).await.unwrap_err();
    assert!(matches!(
        inner(&core),
        Error::PortUnreachable { sends: 1, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn natpmp_detects_a_gateway_reboot() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m = natpmp(fake.port());
    let req = request(Protocol::Udp, 15_400);
    let first = m.map(&req).await.unwrap();
    fake.reboot(3);
    let after = m.renew(&req, &first).await.unwrap();
    let (e0, e1) = (first.epoch.unwrap(), after.epoch.unwrap());
    assert!(!e0.is_continued_by(&e1), "{e0:?} -> {e1:?}");
    assert!(e1.server_seconds < 10);
    assert_eq!(m.counters().epoch_resets, 1);
}

#[tokio::test(start_paused = true)]
async fn natpmp_refuses_bad_requests_without_sending() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m = natpmp(fake.port());
    let zero = request(Protocol::Tcp, 15_500).with_lifetime(Duration::ZERO);
    let e = m.map(&zero).await.unwrap_err();
    assert!(matches!(inner(&e), Error::InvalidRequest { .. }));
    let port0 = request(Protocol::Tcp, 0);
    assert!(matches!(
        inner(&m.map(&port0).await.unwrap_err()),
        Error::InvalidRequest { .. }
    ));
    assert!(fake.requests().is_empty());
    // A mapping another mechanism made is not ours to delete.
    let mut foreign = m.map(&request(Protocol::Tcp, 15_501)).await.unwrap();
    foreign.mechanism = Mechanism::Upnp;
    assert!(matches!(
        inner(&m.unmap(&foreign).await.unwrap_err()),
        Error::ForeignMapping {
            made_by: Mechanism::Upnp
        }
    ));
}

// -------------------------------------------------------------------- PCP

#[tokio::test(start_paused = true)]
async fn pcp_maps_renews_and_deletes_tcp_and_udp() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m: Box<dyn PortMapper> = Box::new(pcp(fake.port()));
    assert_eq!(m.name(), "pcp");
    for (protocol, port, number) in [(Protocol::Tcp, 16_022, 6u8), (Protocol::Udp, 16_023, 17)] {
        let req = request(protocol, port);
        let mapping = m.map(&req).await.unwrap();
        assert_eq!(
            mapping.external,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77)), port)
        );
        assert_eq!(mapping.internal, SocketAddr::new(LOCAL, port));
        assert_eq!(mapping.mechanism, Mechanism::Pcp);
        assert_eq!(mapping.lifetime, Duration::from_secs(600));
        let held = fake.mappings()[&(number, port)];
        assert!(held.nonce.is_some());
        // The fake answers NOT_AUTHORIZED to another nonce: renewing and
        // deleting work only because the mapper reuses the creating nonce.
        let renewed = m.renew(&req, &mapping).await.unwrap();
        assert_eq!(renewed.external, mapping.external);
        assert_eq!(fake.mappings()[&(number, port)].nonce, held.nonce);
        assert!(
            mapping
                .epoch
                .unwrap()
                .is_continued_by(&renewed.epoch.unwrap())
        );
        m.unmap(&renewed).await.unwrap();
        assert!(!fake.mappings().contains_key(&(number, port)));
    }
}

/// A fresh MAP that the server carried out but whose every answer was
/// lost leaves a mapping nobody holds the nonce of: the mapper deletes it
/// before reporting the timeout. The address query does the same.
#[tokio::test(start_paused = true)]
async fn pcp_map_timed_out_with_answers_lost_is_deleted() {
    let fake = FakeServer::v4(Behaviour {
        lose_answers: 4,
        miniupnpd_delete: true,
        ..Behaviour::default()
    })
    .await;
    let m = PcpMapper::with_rng(
        LOCAL,
        PcpConfig {
            server_port: fake.port(),
            retransmit: RetransmitPlan::fast(),
            delete: RetransmitPlan::release_within(Duration::from_secs(2)),
            fallback_to_natpmp: false,
            ..PcpConfig::default()
        },
        rand::rngs::StdRng::seed_from_u64(7),
    );
    let e = m.map(&request(Protocol::Udp, 16_060)).await.unwrap_err();
    assert!(matches!(inner(&e), Error::Timeout { sends: 4, .. }), "{e}");
    assert!(fake.mappings().is_empty(), "{:?}", fake.mappings());

    fake.set(|b| b.lose_answers = 4);
    let e = m
        .public_address_with(RetransmitPlan::fast())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { sends: 4, .. }), "{e}");
    assert!(fake.mappings().is_empty(), "{:?}", fake.mappings());
}

/// miniupnpd answers a retransmitted delete NO_RESOURCES because the first
/// copy already removed the mapping: that is a completed delete. The same
/// answer to a first send proves nothing and stays an error.
#[tokio::test(start_paused = true)]
async fn pcp_delete_retransmission_answered_no_resources_is_done() {
    let fake = FakeServer::v4(Behaviour {
        miniupnpd_delete: true,
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    let mapping = m.map(&request(Protocol::Tcp, 16_040)).await.unwrap();
    assert!(fake.mappings().contains_key(&(6, 16_040)));
    // The first delete is carried out but its answer lost; the
    // retransmission finds nothing to delete.
    fake.set(|b| b.lose_answers = 1);
    m.unmap(&mapping).await.unwrap();
    assert!(!fake.mappings().contains_key(&(6, 16_040)));
    let deletes = fake
        .requests()
        .iter()
        .filter(|(_, r)| r.len() >= 12 && r[1] == 1 && r[4..8] == [0, 0, 0, 0])
        .count();
    assert_eq!(deletes, 2, "one delete and its retransmission");
    // Answered NO_RESOURCES on the first send: not proof of anything.
    let e = m.unmap(&mapping).await.unwrap_err();
    assert!(
        matches!(
            inner(&e),
            Error::PcpResult {
                code: PcpResultCode::NoResources,
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn pcp_mapping_token_carries_the_nonce_to_another_process() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let first = pcp(fake.port());
    let req = request(Protocol::Udp, 16_030);
    let mapping = first.map(&req).await.unwrap();
    let held = fake.mappings()[&(17, 16_030)];
    let token = mapping.token.expect("a PCP mapping carries its nonce");
    assert_eq!(Some(token.as_bytes()), held.nonce.as_ref().map(|n| &n[..]));
    // Through the journal: only the hex survives the restart.
    let mut restored = mapping.clone();
    restored.token = natkit_core::MappingToken::from_hex(&token.to_hex());
    // A second process (other nonces) without the token is refused, as
    // miniupnpd refuses a delete with another nonce ...
    let second = pcp_seeded(LOCAL, fake.port(), 99);
    let mut tokenless = restored.clone();
    tokenless.token = None;
    let e = second.unmap(&tokenless).await.unwrap_err();
    assert!(
        matches!(
            inner(&e),
            Error::PcpResult {
                code: PcpResultCode::NotAuthorized,
                ..
            }
        ),
        "{e}"
    );
    // ... and with the token it renews and deletes the mapping.
    let renewed = second.renew(&req, &restored).await.unwrap();
    assert_eq!(renewed.token, Some(token));
    assert_eq!(fake.mappings()[&(17, 16_030)].nonce, held.nonce);
    second.unmap(&renewed).await.unwrap();
    assert!(!fake.mappings().contains_key(&(17, 16_030)));
    // A token that is not a nonce is refused before anything is sent.
    let sent = fake.requests().len();
    let mut bad = mapping.clone();
    bad.token = natkit_core::MappingToken::new(&[1, 2, 3]);
    assert!(matches!(
        inner(&second.unmap(&bad).await.unwrap_err()),
        Error::InvalidRequest { .. }
    ));
    assert_eq!(fake.requests().len(), sent);
}

#[tokio::test(start_paused = true)]
async fn pcp_maps_over_ipv6() {
    let fake = FakeServer::start(LOCALHOST_V6, Behaviour::default()).await;
    let m = pcp_at(LOCALHOST_V6, fake.port());
    let req = MappingRequest::new(Protocol::Tcp, SocketAddr::new(LOCALHOST_V6, 16_100))
        .with_lifetime(Duration::from_secs(300));
    let mapping = m.map(&req).await.unwrap();
    assert_eq!(mapping.external, SocketAddr::new(LOCALHOST_V6, 16_100));
    assert_eq!(mapping.internal, SocketAddr::new(LOCALHOST_V6, 16_100));
    // The client address went out as plain IPv6, and the suggested
    // external address as `::` (no preference).
    let (_, sent) = fake.requests().pop().unwrap();
    assert_eq!(&sent[8..24], &std::net::Ipv6Addr::LOCALHOST.octets());
    assert_eq!(&sent[44..60], &[0u8; 16]);
    m.unmap(&mapping).await.unwrap();
    assert!(fake.mappings().is_empty());
    // An IPv4 internal address cannot be mapped through an IPv6 server.
    let v4 = request(Protocol::Tcp, 16_101);
    assert!(matches!(
        inner(&m.map(&v4).await.unwrap_err()),
        Error::AddressFamily { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn pcp_ignores_and_counts_a_wrong_nonce() {
    let fake = FakeServer::v4(Behaviour {
        wrong_nonce_first: true,
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    let mapping = m.map(&request(Protocol::Udp, 16_200)).await.unwrap();
    // The decoy said 7777; the real answer wins.
    assert_eq!(mapping.external.port(), 16_200);
    let c = m.counters();
    assert_eq!(c.dropped_wrong_nonce, 1);
    assert_eq!(c.answered, 1);
}

#[tokio::test(start_paused = true)]
async fn pcp_drops_and_counts_answers_from_other_sources() {
    let fake = FakeServer::v4(Behaviour {
        spoof_first: true,
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    let mapping = m.map(&request(Protocol::Tcp, 16_300)).await.unwrap();
    assert_eq!(mapping.external.port(), 16_300);
    assert_eq!(m.counters().dropped_wrong_source, 2);
}

#[tokio::test(start_paused = true)]
async fn pcp_reports_a_substituted_port() {
    let fake = FakeServer::v4(Behaviour {
        substitute_port: Some(50_000),
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    let req = request(Protocol::Tcp, 16_400);
    let mapping = m.map(&req).await.unwrap();
    assert_eq!(mapping.external.port(), 50_000);
    assert!(mapping.port_substituted(&req));
    // The renewal suggests the address and port we hold (§11.2.1).
    m.renew(&req, &mapping).await.unwrap();
    let (_, sent) = fake.requests().pop().unwrap();
    assert_eq!(u16::from_be_bytes([sent[42], sent[43]]), 50_000);
    assert_eq!(
        &sent[44..60],
        &Ipv4Addr::new(198, 51, 100, 77).to_ipv6_mapped().octets()
    );
}

#[tokio::test(start_paused = true)]
async fn pcp_result_codes_are_typed() {
    for (code, expected, kind, retryable) in [
        (
            8u8,
            PcpResultCode::NoResources,
            FailureKind::NoResources,
            true,
        ),
        (
            11,
            PcpResultCode::CannotProvideExternal,
            FailureKind::Conflict,
            false,
        ),
        (2, PcpResultCode::NotAuthorized, FailureKind::Refused, false),
        (
            7,
            PcpResultCode::NetworkFailure,
            FailureKind::NotConnected,
            true,
        ),
    ] {
        let fake = FakeServer::v4(Behaviour {
            force_result: Some(code),
            ..Behaviour::default()
        })
        .await;
        let m = pcp(fake.port());
        let e = m.map(&request(Protocol::Udp, 16_500)).await.unwrap_err();
        assert_eq!(e.failure_kind(), Some(kind));
        let Error::PcpResult {
            code: got,
            lifetime,
            ..
        } = inner(&e)
        else {
            panic!("{e}")
        };
        assert_eq!(*got, expected);
        assert_eq!(*lifetime, 30);
        assert_eq!(got.is_retryable(), retryable);
    }
}

#[tokio::test(start_paused = true)]
async fn pcp_falls_back_to_natpmp() {
    let fake = FakeServer::v4(Behaviour {
        pcp: false,
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    let req = request(Protocol::Tcp, 16_600);
    let mapping = m.map(&req).await.unwrap();
    // The result says it was made by NAT-PMP.
    assert_eq!(mapping.mechanism, Mechanism::NatPmp);
    assert!(m.uses_natpmp());
    assert_eq!(mapping.external.port(), 16_600);
    // The fake holds a NAT-PMP mapping (no nonce).
    assert_eq!(fake.mappings()[&(6, 16_600)].nonce, None);
    let requests = fake.requests();
    assert_eq!(requests[0].1[0], 2, "first a PCP request");
    assert_eq!(requests.last().unwrap().1[0], 0, "then NAT-PMP");
    let renewed = m.renew(&req, &mapping).await.unwrap();
    assert_eq!(renewed.mechanism, Mechanism::NatPmp);
    m.unmap(&renewed).await.unwrap();
    assert!(fake.mappings().is_empty());
    assert_eq!(
        m.external_address().await.unwrap(),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77))
    );
}

#[tokio::test(start_paused = true)]
async fn pcp_detect_finds_natpmp_only_and_fallback_can_be_off() {
    let fake = FakeServer::v4(Behaviour {
        pcp: false,
        ..Behaviour::default()
    })
    .await;
    let m = pcp(fake.port());
    assert!(matches!(
        m.detect().await.unwrap(),
        PcpAvailability::NatPmpOnly { epoch: Some(e) } if e.server_seconds >= 10_000
    ));
    assert!(m.uses_natpmp());

    let strict = PcpMapper::new(
        LOCAL,
        PcpConfig {
            server_port: fake.port(),
            retransmit: RetransmitPlan::fast(),
            fallback_to_natpmp: false,
            ..PcpConfig::default()
        },
    );
    assert!(!strict.is_available().await);
    let e = strict
        .map(&request(Protocol::Tcp, 16_700))
        .await
        .unwrap_err();
    assert!(matches!(
        inner(&e),
        Error::UnsupportedServerVersion { server_version: 0 }
    ));
    assert_eq!(e.failure_kind(), Some(FailureKind::Unavailable));
}

#[tokio::test(start_paused = true)]
async fn pcp_announce_reports_epoch_and_reset() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m = pcp(fake.port());
    assert!(m.is_available().await);
    let PcpAvailability::Pcp { epoch, epoch_reset } = m.announce().await.unwrap() else {
        panic!("not PCP")
    };
    assert!(!epoch_reset);
    assert!(epoch.server_seconds >= 10_000);
    fake.reboot(1);
    let PcpAvailability::Pcp { epoch_reset, .. } = m.announce().await.unwrap() else {
        panic!("not PCP")
    };
    assert!(epoch_reset);
    assert_eq!(m.counters().epoch_resets, 1);
}

#[tokio::test(start_paused = true)]
async fn pcp_detect_says_unavailable_quickly() {
    let (_silent, port) = silent().await;
    let m = pcp(port);
    assert!(!m.is_available().await);
    // ANNOUNCE on the detection plan: four sends within 2 s (with jitter).
    let e = m.detect().await.unwrap_err();
    assert!(
        matches!(e, Error::Timeout { sends: 4, elapsed, .. } if elapsed == DETECT_WINDOW),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn pcp_external_address_leaves_nothing_behind() {
    let fake = FakeServer::v4(Behaviour::default()).await;
    let m = pcp(fake.port());
    assert_eq!(
        m.external_address().await.unwrap(),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 77))
    );
    assert!(fake.mappings().is_empty());
    assert_eq!(fake.requests().len(), 2, "one MAP, one delete");
}
