//! The combinator against a fake NAT-PMP-only router on loopback that
//! reports a shared (100.64.0.0/10) external address: the double NAT a
//! carrier-grade NAT makes. miniupnpd cannot play this router (it refuses
//! to map with a reserved WAN address, see lab/README.md), so the
//! "confirmed" double-NAT path is proven here and the lab proves the
//! "suspected" one.
//!
//! On tokio's paused clock (natkit's drivers and the fake take tokio's time;
//! loopback delivers a datagram, or its ICMP error, before `send_to` returns).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{
    AddressScope, FailureKind, KeeperConfig, LeaseKeeper, MappingRequest, Mechanism, PortMapper,
    Protocol,
};
use natkit_pmp::RetransmitPlan;
use natkit_portmap::{
    AutoMapper, PortMapConfig, RouterVerdict, UpstreamNat, mapping_upstream_note,
};
use natkit_testkit::loopback_gateway;
use natkit_testkit::pmp::{Behaviour, FakeServer};
use tokio::net::UdpSocket;

const CGN: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

/// A NAT-PMP server (RFC 6886) that answers PCP with "unsupported version".
async fn fake_router() -> (u16, FakeServer) {
    fake_router_losing(0, None).await
}

/// [`fake_router`] whose first `lost` requests (of protocol `version`
/// only: 0 NAT-PMP, 2 PCP; `None`: of both) get no answer, as if lost.
async fn fake_router_losing(lost: usize, version: Option<u8>) -> (u16, FakeServer) {
    let fake = FakeServer::v4(Behaviour {
        pcp: false,
        external_ip: CGN,
        epoch: 5000,
        drop_first: lost,
        drop_version: version,
        ..Behaviour::default()
    })
    .await;
    (fake.port(), fake)
}

fn config(port: u16) -> PortMapConfig {
    let mut c = PortMapConfig {
        gateway: Some(loopback_gateway()),
        ..PortMapConfig::default()
    };
    c.natpmp.server_port = port;
    c.natpmp.retransmit = RetransmitPlan::fast();
    c.pcp.server_port = port;
    c.pcp.retransmit = RetransmitPlan::fast();
    // Nothing listens here: SSDP gets no answer.
    c.upnp.ssdp_port = port.wrapping_add(1).max(1);
    c.upnp.multicast = false;
    c
}

#[tokio::test(start_paused = true)]
async fn a_shared_external_address_is_reported_as_double_nat() {
    let (port, router) = fake_router().await;
    let mapper = AutoMapper::new(config(port));
    let report = mapper.detect().await;
    assert_eq!(
        report.verdict,
        RouterVerdict::Usable(Mechanism::NatPmp),
        "{report:?}"
    );
    let pcp = report.get(Mechanism::Pcp).unwrap();
    assert!(!pcp.available);
    assert!(
        pcp.error.as_ref().unwrap().message.contains("only NAT-PMP"),
        "{pcp:?}"
    );
    let natpmp = report.get(Mechanism::NatPmp).unwrap();
    assert_eq!(natpmp.external_address, Some(CGN.into()));
    assert_eq!(natpmp.address_scope, Some(AddressScope::Shared));
    assert_eq!(natpmp.epoch, Some(5000));
    let Some(UpstreamNat::Confirmed { external, note, .. }) = report.upstream_nat() else {
        panic!("no double NAT in {report:?}")
    };
    assert_eq!(external, std::net::IpAddr::from(CGN));
    assert!(
        note.contains("100.64.0.2") && note.contains("another NAT is upstream"),
        "{note}"
    );
    assert!(report.get(Mechanism::Upnp).is_some_and(|u| !u.responded));

    // The mapping itself says so too, and the keeper runs on the combinator.
    let (keeper, _events) = LeaseKeeper::new(
        Arc::new(mapper.clone()) as Arc<dyn PortMapper>,
        KeeperConfig::default(),
    );
    let request = MappingRequest::new(
        Protocol::Udp,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40_123)),
    )
    .with_lifetime(Duration::from_secs(600));
    let (_, mapping) = keeper.add(request).await.unwrap();
    assert_eq!(mapping.mechanism, Mechanism::NatPmp);
    assert_eq!(mapping.external, SocketAddr::from((CGN, 40_123)));
    let note = mapping_upstream_note(&mapping).unwrap();
    assert!(
        note.starts_with("the router's external address is 100.64.0.2")
            && note.ends_with("another NAT is upstream; this mapping does not reach the internet"),
        "{note}"
    );
    let shutdown = keeper.shutdown().await;
    assert_eq!(shutdown.released.len(), 1, "{shutdown:?}");
    drop(router);
}

/// On the simulated clock: the kernel queues a closed loopback port's ICMP
/// port unreachable before `send_to` returns, so NAT-PMP and PCP end at their
/// first send at simulated time zero, and detection lasts as long as UPnP's
/// search window, under a second. (The lab measures the real time:
/// tests/lab.rs, `NO_PROTOCOL_MS`.)
#[tokio::test(start_paused = true)]
async fn nothing_listening_is_no_port_mapping_protocol_within_a_second() {
    let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = config(port);
    let (search_window, deadline) = (config.upnp.timeout, config.detect_deadline);
    let mapper = AutoMapper::new(config);
    let started = tokio::time::Instant::now();
    let report = mapper.detect().await;
    let took = started.elapsed();
    assert_eq!(report.verdict, RouterVerdict::NoProtocol, "{report:?}");
    for mechanism in [Mechanism::Pcp, Mechanism::NatPmp] {
        let m = report.get(mechanism).unwrap();
        let e = m.error.as_ref().unwrap();
        assert_eq!(e.kind, FailureKind::Unavailable, "{m:?}");
        assert!(
            e.message.contains("port unreachable (ICMP) after 1 sends"),
            "{m:?}"
        );
        assert_eq!(m.elapsed, Duration::ZERO, "{m:?}");
    }
    assert_eq!(
        took, search_window,
        "UPnP's search window, then the verdict"
    );
    // The verdict came from the answers, not from the detection deadline.
    assert!(took < deadline, "{took:?} vs the deadline {deadline:?}");
    let e = mapper
        .map(&MappingRequest::new(
            Protocol::Tcp,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 40_124)),
        ))
        .await
        .unwrap_err();
    let text = natkit_core::error_line(&e);
    assert!(
        text.contains("no port mapping protocol on 127.0.0.1"),
        "{text}"
    );
    for name in ["pcp:", "natpmp:", "upnp:"] {
        assert!(text.contains(name), "{name} missing in {text}");
    }
}

/// `map_port --mechanism natpmp` under loss: every datagram of the detection
/// window is lost (`only`'s window holds four sends on RFC 6886's
/// schedule), yet the gateway is not declared absent: the mapping is made
/// on the full request plan. Without `map_unanswered` a second window is
/// tried (nothing answered the first), and only when that is lost too is
/// it "no port mapping protocol".
#[tokio::test(start_paused = true)]
async fn a_detection_window_lost_to_loss_does_not_end_a_named_mechanism() {
    let request = MappingRequest::new(
        Protocol::Udp,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40_125)),
    )
    .with_lifetime(Duration::from_secs(600));

    let (port, router) = fake_router_losing(4, None).await;
    let mapper = AutoMapper::new(config(port).only(Mechanism::NatPmp));
    let mapping = mapper
        .map(&request)
        .await
        .expect("mapped after the detection window");
    assert_eq!(mapping.mechanism, Mechanism::NatPmp);
    assert_eq!(mapping.external, SocketAddr::from((CGN, 40_125)));
    let natpmp = mapper.last_detection().await;
    let natpmp = natpmp.get(Mechanism::NatPmp).unwrap();
    assert!(!natpmp.responded, "{natpmp:?}");
    let detect_error = natpmp.error.as_ref().unwrap();
    assert_eq!(detect_error.kind, FailureKind::Timeout);
    assert!(
        detect_error.message.contains("after 4 sends"),
        "{detect_error:?}"
    );
    mapper.unmap(&mapping).await.unwrap();
    drop(router);

    let (port, router) = fake_router_losing(8, None).await;
    let mut c = config(port).only(Mechanism::NatPmp);
    c.map_unanswered = false;
    let e = AutoMapper::new(c).map(&request).await.unwrap_err();
    let text = natkit_core::error_line(&e);
    assert!(text.contains("no port mapping protocol"), "{text}");
    assert!(text.contains("in two windows"), "{text}");
    drop(router);
}

/// Auto mode: every NAT-PMP and PCP datagram of the first window lost (3
/// sends each) and no UPnP: nothing answered, so NAT-PMP and PCP try a
/// second window before the verdict, and the router is found.
#[tokio::test(start_paused = true)]
async fn a_first_window_lost_entirely_is_tried_again() {
    let (port, router) = fake_router_losing(6, None).await;
    let report = AutoMapper::new(config(port)).detect().await;
    assert_eq!(
        report.verdict,
        RouterVerdict::Usable(Mechanism::NatPmp),
        "{report:?}"
    );
    let pcp = report.get(Mechanism::Pcp).unwrap();
    assert!(
        pcp.error.as_ref().unwrap().message.contains("only NAT-PMP"),
        "{pcp:?}"
    );
    drop(router);
}

/// NAT-PMP and PCP share the server's port, and a server of either answers
/// the other's version: when NAT-PMP answers and PCP's whole window is
/// lost, PCP gets a second window instead of being reported absent.
#[tokio::test(start_paused = true)]
async fn a_silent_pcp_gets_a_second_window_when_natpmp_answered() {
    // DETECT_PLAN sends 3 times in its window; the 4th PCP request (in the
    // second window) gets this server's answer: "only NAT-PMP".
    let (port, router) = fake_router_losing(3, Some(2)).await;
    let report = AutoMapper::new(config(port)).detect().await;
    assert_eq!(report.verdict, RouterVerdict::Usable(Mechanism::NatPmp));
    let pcp = report.get(Mechanism::Pcp).unwrap();
    let e = pcp.error.as_ref().unwrap();
    assert!(e.message.contains("only NAT-PMP"), "{pcp:?}");
    assert!(!e.message.contains("lost"), "{pcp:?}");
    drop(router);

    // Both windows lost: still "no answer", saying why that is not "absent".
    let (port, router) = fake_router_losing(6, Some(2)).await;
    let report = AutoMapper::new(config(port)).detect().await;
    let pcp = report.get(Mechanism::Pcp).unwrap();
    let e = pcp.error.as_ref().unwrap();
    assert_eq!(e.kind, FailureKind::Timeout, "{pcp:?}");
    assert!(e.message.contains("most likely lost"), "{pcp:?}");
    drop(router);
}
