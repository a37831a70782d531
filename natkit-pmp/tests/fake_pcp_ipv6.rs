//! IPv6 pinholes through `PcpMapper` against the fake PCP server on `::1`,
//! with the mapper built as for a router's IPv4 address (the common case)
//! and the IPv6 server given in `PcpConfig::ipv6_server`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use natkit_core::{FailureKind, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpAvailability, PcpConfig, PcpMapper};
use natkit_pmp::{Error, RetransmitPlan};
use natkit_testkit::pmp::{Behaviour, FakeServer};
use rand::SeedableRng;

const HOST: Ipv6Addr = Ipv6Addr::LOCALHOST;

/// A PCP mapper for the IPv4 fake `v4_port` whose pinholes go to the IPv6
/// fake `v6`; nonces from `seed` (two seeds are two processes).
fn mapper(v4_port: u16, v6: &FakeServer, seed: u64) -> PcpMapper {
    PcpMapper::with_rng(
        Ipv4Addr::LOCALHOST,
        PcpConfig {
            server_port: v4_port,
            retransmit: RetransmitPlan::fast(),
            natpmp: NatPmpConfig {
                retransmit: RetransmitPlan::fast(),
                ..NatPmpConfig::default()
            },
            ipv6_server: Some(SocketAddrV6::new(HOST, v6.port(), 0, 0)),
            // Loopback has no stable global address to choose for `::`.
            ipv6_local_address: Some(HOST),
            ..PcpConfig::default()
        },
        rand::rngs::StdRng::seed_from_u64(seed),
    )
}

fn pinhole(port: u16) -> MappingRequest {
    MappingRequest::new(Protocol::Tcp, SocketAddr::from((HOST, port)))
        .with_lifetime(Duration::from_secs(600))
}

fn inner(e: &natkit_core::Error) -> &Error {
    let natkit_core::Error::Mechanism { source, .. } = e else {
        panic!("not a mechanism error: {e}")
    };
    source.downcast_ref::<Error>().expect("natkit_pmp::Error")
}

#[tokio::test]
async fn an_ipv4_mapper_opens_renews_and_deletes_pinholes_at_the_ipv6_server() {
    let v4 = FakeServer::v4(Behaviour::default()).await;
    let v6 = FakeServer::start(IpAddr::V6(HOST), Behaviour::default()).await;
    let m = mapper(v4.port(), &v6, 1);
    let req = pinhole(16_500);
    assert!(req.is_pinhole());
    let hole = m.map(&req).await.unwrap();
    assert!(hole.is_pinhole());
    assert_eq!(hole.internal, SocketAddr::from((HOST, 16_500)));
    assert_eq!(hole.external, hole.internal);
    assert_eq!(hole.mechanism, Mechanism::Pcp);
    assert_eq!(hole.lifetime, Duration::from_secs(600));
    assert!(hole.epoch.is_some());
    let nonce = hole.token.expect("the nonce").as_bytes().to_vec();
    assert_eq!(nonce.len(), 12);
    assert_eq!(m.ipv6_server(), Some(SocketAddr::from((HOST, v6.port()))));
    // Only the IPv6 server heard of it; the request is RFC 6887's IPv6
    // form: plain client address, no address preference, internal port.
    assert!(v4.requests().is_empty());
    let (from, sent) = v6.requests().pop().unwrap();
    assert_eq!(from.ip(), IpAddr::V6(HOST));
    assert_eq!(&sent[8..24], &HOST.octets());
    assert_eq!(&sent[24..36], &nonce[..]);
    assert_eq!(u16::from_be_bytes([sent[40], sent[41]]), 16_500);
    assert_eq!(u16::from_be_bytes([sent[42], sent[43]]), 16_500);
    assert_eq!(&sent[44..60], &[0u8; 16]);

    // Renewal: the owning nonce again, the same pinhole.
    let renewed = m.renew(&req, &hole).await.unwrap();
    assert_eq!(renewed.external, hole.external);
    assert_eq!(renewed.token, hole.token);
    let (_, sent) = v6.requests().pop().unwrap();
    assert_eq!(&sent[24..36], &nonce[..]);

    // Another process (a later run reading the crash journal) deletes it
    // with the token alone.
    let later = mapper(v4.port(), &v6, 2);
    later.unmap(&renewed).await.unwrap();
    assert!(v6.mappings().is_empty());
    let (_, sent) = v6.requests().pop().unwrap();
    assert_eq!(&sent[4..8], &[0, 0, 0, 0], "a delete is lifetime 0");
    assert!(v4.requests().is_empty());
}

#[tokio::test]
async fn a_pinhole_survives_lost_datagrams_and_sees_a_router_restart() {
    let v4 = FakeServer::v4(Behaviour::default()).await;
    let v6 = FakeServer::start(
        IpAddr::V6(HOST),
        Behaviour {
            drop_first: 2,
            ..Behaviour::default()
        },
    )
    .await;
    let m = mapper(v4.port(), &v6, 3);
    let req = pinhole(16_501);
    let hole = m.map(&req).await.unwrap();
    // The RFC 6887 schedule retransmitted as for IPv4.
    assert_eq!(v6.requests().len(), 3);
    let c = m.counters();
    assert_eq!((c.sent, c.retransmitted, c.answered), (3, 2, 1));

    // The router restarts: its epoch starts again and the pinhole is gone.
    // The renewal re-creates it and reports the new epoch.
    v6.reboot(5);
    assert!(v6.mappings().is_empty());
    let renewed = m.renew(&req, &hole).await.unwrap();
    let (before, after) = (hole.epoch.unwrap(), renewed.epoch.unwrap());
    assert!(!before.is_continued_by(&after), "{before:?} -> {after:?}");
    assert_eq!(v6.mappings().len(), 1);
}

#[tokio::test]
async fn a_delete_with_another_nonce_is_refused() {
    let v4 = FakeServer::v4(Behaviour::default()).await;
    let v6 = FakeServer::start(IpAddr::V6(HOST), Behaviour::default()).await;
    let ours = mapper(v4.port(), &v6, 4);
    let hole = ours.map(&pinhole(16_502)).await.unwrap();
    let mut forged = hole.clone();
    forged.token = natkit_core::MappingToken::new(&[9; 12]);
    let other = mapper(v4.port(), &v6, 5);
    let e = other.unmap(&forged).await.unwrap_err();
    assert_eq!(e.failure_kind(), Some(FailureKind::Refused));
    assert_eq!(v6.mappings().len(), 1, "the owner's pinhole stays");
    ours.unmap(&hole).await.unwrap();
    assert!(v6.mappings().is_empty());
}

#[tokio::test]
async fn natpmp_has_no_ipv6() {
    let v4 = FakeServer::v4(Behaviour {
        pcp: false,
        ..Behaviour::default()
    })
    .await;
    let natpmp = NatPmpMapper::new(
        Ipv4Addr::LOCALHOST,
        NatPmpConfig {
            server_port: v4.port(),
            retransmit: RetransmitPlan::fast(),
            ..NatPmpConfig::default()
        },
    );
    for internal in [HOST, Ipv6Addr::UNSPECIFIED] {
        let req = MappingRequest::new(Protocol::Udp, SocketAddr::from((internal, 16_503)));
        let e = natpmp.map(&req).await.unwrap_err();
        assert_eq!(e.failure_kind(), Some(FailureKind::Unsupported));
        assert!(
            matches!(inner(&e), Error::NatPmpNoIpv6 { internal: i } if *i == internal),
            "{e}"
        );
    }
    assert!(v4.requests().is_empty(), "nothing is sent");

    // A PCP mapper whose IPv4 router speaks only NAT-PMP still opens
    // pinholes through the IPv6 PCP server.
    let v6 = FakeServer::start(IpAddr::V6(HOST), Behaviour::default()).await;
    let m = mapper(v4.port(), &v6, 6);
    assert!(matches!(
        m.detect().await.unwrap(),
        PcpAvailability::NatPmpOnly { .. }
    ));
    assert!(m.uses_natpmp());
    let hole = m.map(&pinhole(16_504)).await.unwrap();
    assert_eq!(hole.mechanism, Mechanism::Pcp);
    assert!(hole.is_pinhole());
    m.unmap(&hole).await.unwrap();
    assert!(v6.mappings().is_empty());
}

#[tokio::test]
async fn detect_ipv6_asks_the_server_without_opening_anything() {
    let v4 = FakeServer::v4(Behaviour::default()).await;
    let v6 = FakeServer::start(IpAddr::V6(HOST), Behaviour::default()).await;
    let m = mapper(v4.port(), &v6, 7);
    assert_eq!(
        m.detect_ipv6().await.unwrap(),
        SocketAddr::from((HOST, v6.port()))
    );
    // One ANNOUNCE (opcode 0) from the host's address, no mapping.
    let asked = v6.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].1[1], 0);
    assert_eq!(&asked[0].1[8..24], &HOST.octets());
    assert!(v6.mappings().is_empty());
    assert!(v4.requests().is_empty());

    // Nothing listens on the IPv6 server's port: the ICMP port
    // unreachable ends detection at once.
    let closed = std::net::UdpSocket::bind((HOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = PcpMapper::new(
        Ipv4Addr::LOCALHOST,
        PcpConfig {
            server_port: v4.port(),
            ipv6_server: Some(SocketAddrV6::new(HOST, closed, 0, 0)),
            ipv6_local_address: Some(HOST),
            ..PcpConfig::default()
        },
    );
    assert!(matches!(
        nobody.detect_ipv6().await.unwrap_err(),
        Error::PortUnreachable { sends: 1, .. }
    ));
}
