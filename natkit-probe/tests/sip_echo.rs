//! The SIP echo and the ALG check over loopback: an unaltered path reads
//! `not_seen`; the echo's limits hold (bytes out ≤ bytes in, OPTIONS only,
//! per-source rate, bounded TCP reads).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use natkit_probe::RateLimit;
use natkit_probe::sip::{
    LegOutcome, LegRole, SipAlgVerdict, SipCheckConfig, SipEcho, SipEchoConfig, SipEchoCounters,
    SipTransport, SipWhy, check_sip_alg, options_request,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An echo on loopback (any free ports), answering loopback sources.
async fn echo(
    per_source: RateLimit,
) -> (
    SocketAddr,
    SocketAddr,
    natkit_probe::dialback::StopHandle,
    tokio::task::JoinHandle<SipEchoCounters>,
) {
    let mut config = SipEchoConfig::new(LO, Some(SocketAddr::new(LO, 0)));
    config.sip = SocketAddr::new(LO, 0);
    config.targets.allow_non_global = true;
    config.per_source = per_source;
    config.read_timeout = Duration::from_millis(500);
    let server = SipEcho::bind(config).await.expect("bind");
    let sip = server.sip_addr();
    let control = server.control_addr().expect("control");
    let stop = server.stop_handle();
    (sip, control, stop, tokio::spawn(server.run()))
}

fn generous() -> RateLimit {
    RateLimit {
        per_second: 1000,
        burst: 1000,
    }
}

#[tokio::test]
async fn an_unaltered_path_reads_not_seen() {
    let (sip, control, stop, run) = echo(generous()).await;
    let mut config = SipCheckConfig::for_dialback(control);
    config.sip_port = sip.port();
    let check = check_sip_alg(&config).await;
    assert_eq!(check.verdict, SipAlgVerdict::NotSeen, "{check:?}");
    assert_eq!(check.why, SipWhy::AllIntact);
    let roles: Vec<_> = check.legs.iter().map(|l| (l.role, l.transport)).collect();
    assert_eq!(
        roles,
        [
            (LegRole::Control, SipTransport::Udp),
            (LegRole::Sip, SipTransport::Udp),
            (LegRole::Sip, SipTransport::Tcp)
        ]
    );
    assert!(check.legs.iter().all(|l| l.outcome == LegOutcome::Intact));
    stop.stop();
    let c = run.await.expect("join");
    assert_eq!(c.echoed, 3, "{c:?}");
    assert_eq!(c.bytes_in, c.bytes_out, "{c:?}");
}

#[tokio::test]
async fn no_echo_server_is_inconclusive_not_a_finding() {
    // Nothing listens on either port: UDP gets port unreachable, TCP a reset.
    let free = UdpSocket::bind((LO, 0)).await.expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let mut config = SipCheckConfig::for_dialback(SocketAddr::new(LO, port));
    config.sip_port = port;
    let check = check_sip_alg(&config).await;
    assert_eq!(check.verdict, SipAlgVerdict::Inconclusive, "{check:?}");
    assert_eq!(check.why, SipWhy::NoControlEcho);
}

#[tokio::test]
async fn only_options_requests_come_back_and_never_more_bytes() {
    let (sip, _control, stop, run) = echo(generous()).await;
    let client = UdpSocket::bind((LO, 0)).await.expect("bind");
    client.connect(sip).await.expect("connect");
    let local = client.local_addr().expect("addr");
    let good = options_request(SipTransport::Udp, local, sip, "t1");
    let mut invite = good.clone();
    invite.splice(..7, b"INVITE ".iter().copied());
    let mut long = good.clone();
    long.resize(5000, b'x');
    for junk in [&b"x"[..], b"SIP/2.0 200 OK\r\n\r\n", &invite, &long] {
        client.send(junk).await.expect("send");
    }
    client.send(&good).await.expect("send");
    let mut buf = [0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf))
        .await
        .expect("an echo")
        .expect("recv");
    assert_eq!(&buf[..n], &good[..], "only the OPTIONS, byte for byte");
    let more = tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await;
    assert!(more.is_err(), "nothing else comes back");

    // TCP: one request echoed, pipelined bytes after it not; then closed.
    let mut s = TcpStream::connect(sip).await.expect("connect");
    let local = s.local_addr().expect("addr");
    let req = options_request(SipTransport::Tcp, local, sip, "t2");
    let mut sent = req.clone();
    sent.extend_from_slice(&req);
    s.write_all(&sent).await.expect("write");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .expect("read");
    assert_eq!(got, req);

    // TCP garbage and an endless header are closed without a byte.
    for junk in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), {
        let mut v = b"OPTIONS sip:a SIP/2.0\r\n".to_vec();
        v.resize(6000, b'a');
        v
    }] {
        let mut s = TcpStream::connect(sip).await.expect("connect");
        let _ = s.write_all(&junk).await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut got)).await;
        assert!(got.is_empty());
    }
    stop.stop();
    let c = run.await.expect("join");
    assert_eq!(c.echoed, 2, "{c:?}");
    assert!(c.bytes_out <= c.bytes_in, "{c:?}");
    assert_eq!(c.not_echoed, 4 + 2, "{c:?}");
}

#[tokio::test]
async fn a_flood_from_one_source_gets_its_burst() {
    let (sip, _control, stop, run) = echo(RateLimit {
        per_second: 1,
        burst: 3,
    })
    .await;
    let client = UdpSocket::bind((LO, 0)).await.expect("bind");
    client.connect(sip).await.expect("connect");
    let local = client.local_addr().expect("addr");
    let good = options_request(SipTransport::Udp, local, sip, "flood");
    for _ in 0..50 {
        client.send(&good).await.expect("send");
    }
    let mut buf = [0u8; 8192];
    let mut echoes = 0;
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await
    {
        echoes += 1;
    }
    stop.stop();
    let c = run.await.expect("join");
    // The burst, plus at most the one token refilled while the flood ran.
    assert!((3..=4).contains(&echoes), "{echoes} echoes, {c:?}");
    assert_eq!(c.echoed, echoes);
    assert_eq!(c.rate_limited, c.datagrams - c.echoed, "{c:?}");
}
