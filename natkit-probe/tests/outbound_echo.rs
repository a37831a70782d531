//! The outbound echo and check over loopback: answered ports, a port the echo
//! does not serve (refused, no block claimed), and the echo's byte accounting
//! (never more out than in; replies and junk get nothing).

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_probe::outbound::{
    OutboundCheckConfig, OutboundEcho, OutboundEchoConfig, OutboundOutcome, OutboundVerdict,
    check_outbound, reply, request,
};
use tokio::net::{TcpListener, UdpSocket};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Two free ports (one TCP, one UDP), found by binding and releasing.
async fn free_ports() -> (u16, u16) {
    let t = TcpListener::bind((LO, 0)).await.unwrap();
    let u = UdpSocket::bind((LO, 0)).await.unwrap();
    (
        t.local_addr().unwrap().port(),
        u.local_addr().unwrap().port(),
    )
}

#[tokio::test]
async fn served_ports_answer_unserved_ones_are_refused_not_blocked() {
    let (tcp, udp) = free_ports().await;
    let mut config = OutboundEchoConfig::new(LO, vec![(tcp, Protocol::Tcp), (udp, Protocol::Udp)]);
    config.targets.allow_non_global = true;
    let echo = OutboundEcho::bind(config).await.expect("bind");
    let stop = echo.stop_handle();
    let run = tokio::spawn(echo.run());

    // A control listener standing in for the dial-back server's port.
    let control = TcpListener::bind((LO, 0)).await.unwrap();
    let control_port = control.local_addr().unwrap().port();
    let (unserved_tcp, unserved_udp) = free_ports().await;
    let mut check = OutboundCheckConfig::for_dialback(
        SocketAddr::new(LO, control_port),
        vec![
            (tcp, Protocol::Tcp),
            (udp, Protocol::Udp),
            (unserved_tcp, Protocol::Tcp),
            (unserved_udp, Protocol::Udp),
        ],
    );
    check.timeout = Duration::from_secs(2);
    let c = check_outbound(&check).await;
    let outcomes: Vec<(u16, bool, OutboundOutcome)> = c
        .legs
        .iter()
        .map(|l| (l.port, l.control, l.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (control_port, true, OutboundOutcome::Answered),
            (tcp, false, OutboundOutcome::Answered),
            (udp, false, OutboundOutcome::Answered),
            (unserved_tcp, false, OutboundOutcome::Refused),
            (unserved_udp, false, OutboundOutcome::Refused),
        ]
    );
    assert_eq!(c.verdict, OutboundVerdict::NotServed);
    assert!(c.legs[1].rtt_ms.is_some() && c.legs[3].rtt_ms.is_none());

    // Junk and replies get nothing; a request gets exactly its length back.
    let s = UdpSocket::bind((LO, 0)).await.unwrap();
    s.connect((LO, udp)).await.unwrap();
    s.send(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    s.send(&reply(*b"0123456789a")).await.unwrap();
    s.send(&request(*b"0123456789b")).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    assert_eq!(&buf[..n], reply(*b"0123456789b"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), s.recv(&mut buf))
            .await
            .is_err(),
        "only one answer"
    );

    stop.stop();
    let counters = run.await.unwrap();
    assert!(counters.bytes_out <= counters.bytes_in, "{counters:?}");
    assert_eq!(counters.answered, 3, "{counters:?}");
    assert_eq!(counters.not_answered, 2, "{counters:?}");
}

#[tokio::test]
async fn rate_limited_per_source_and_bad_configs_refused() {
    let (_, udp) = free_ports().await;
    let mut config = OutboundEchoConfig::new(LO, vec![(udp, Protocol::Udp)]);
    config.targets.allow_non_global = true;
    let burst = config.per_source.burst;
    let echo = OutboundEcho::bind(config).await.expect("bind");
    let stop = echo.stop_handle();
    let run = tokio::spawn(echo.run());
    let s = UdpSocket::bind((LO, 0)).await.unwrap();
    s.connect((LO, udp)).await.unwrap();
    for i in 0..(burst * 3) {
        s.send(&request([u8::try_from(i % 250).unwrap(); 11]))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.stop();
    let c = run.await.unwrap();
    assert!(
        c.answered >= u64::from(burst) && c.answered < u64::from(burst) * 2,
        "{c:?}"
    );
    assert!(c.rate_limited > 0, "{c:?}");

    for ports in [
        vec![],
        vec![(0, Protocol::Tcp)],
        vec![(1, Protocol::Udp); 65],
    ] {
        assert!(
            OutboundEcho::bind(OutboundEchoConfig::new(LO, ports))
                .await
                .is_err()
        );
    }
}
