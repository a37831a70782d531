//! The dial-back server and client on loopback: verdicts, every refusal,
//! the anti-amplification rule, rate limits under a flood.
// Test helpers outside #[test] functions may panic on setup failures too.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use natkit_core::Protocol;
use natkit_probe::RateLimit;
use natkit_probe::dialback::{
    CheckPort, ClientConfig, DialOutcome, DialPort, DialTimeouts, DialbackClient, DialbackCounters,
    DialbackError, DialbackServer, DialbackServerConfig, List, MAX_MESSAGE_LEN, Message, Nonce,
    PortPolicy, Reachability, ReachabilityReport, RefusalCode, ResponderSaw, TargetPolicy, Why,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LO6: IpAddr = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);

fn lab_config() -> DialbackServerConfig {
    let mut c = DialbackServerConfig::new(SocketAddr::new(LO, 0));
    c.limits.targets = TargetPolicy {
        allow_non_global: true,
        allow: vec![],
    };
    c.limits.per_source = RateLimit {
        per_second: 1000,
        burst: 1000,
    };
    c.timeouts = DialTimeouts {
        connect: Duration::from_millis(800),
        ack: Duration::from_millis(800),
        udp_tries: 2,
        udp_try: Duration::from_millis(300),
    };
    c
}

fn lab_config_at(ip: IpAddr) -> DialbackServerConfig {
    let mut c = lab_config();
    c.bind = SocketAddr::new(ip, 0);
    c
}

struct Running {
    addr: SocketAddr,
    stop: natkit_probe::dialback::StopHandle,
    task: tokio::task::JoinHandle<Result<DialbackCounters, DialbackError>>,
}

impl Running {
    async fn stop(self) -> DialbackCounters {
        self.stop.stop();
        self.task.await.unwrap().unwrap()
    }
}

async fn start(config: DialbackServerConfig) -> Running {
    let server = DialbackServer::bind(config).await.unwrap();
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());
    Running { addr, stop, task }
}

fn client_config(server: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new(server);
    c.retries = 0;
    c.probe_timeout = Duration::from_millis(800);
    c
}

fn client(server: SocketAddr) -> DialbackClient {
    DialbackClient::new(client_config(server))
}

async fn free_tcp_port(ip: IpAddr) -> u16 {
    let l = TcpListener::bind((ip, 0)).await.unwrap();
    l.local_addr().unwrap().port()
}

async fn free_udp_port(ip: IpAddr) -> u16 {
    let s = UdpSocket::bind((ip, 0)).await.unwrap();
    s.local_addr().unwrap().port()
}

#[tokio::test]
async fn verdicts_on_loopback() {
    let server = start(lab_config()).await;
    let free_tcp = free_tcp_port(LO).await;
    let free_udp = free_udp_port(LO).await;
    // A local service holding a TCP port: it greets, never echoes.
    let held = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).await.unwrap();
    let held_port = held.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = held.accept().await {
            let _ = s.write_all(b"220 hello\r\n").await;
        }
    });
    let report = client(server.addr)
        .check(&[
            CheckPort::new(free_tcp, Protocol::Tcp),
            CheckPort::new(free_udp, Protocol::Udp),
            CheckPort::new(held_port, Protocol::Tcp),
        ])
        .await
        .unwrap();
    assert!(!report.behind_nat, "{report:?}");
    assert_eq!(report.observed.ip(), LO);
    let tcp = report.get(free_tcp, Protocol::Tcp).unwrap();
    assert_eq!(tcp.verdict, Reachability::Reachable, "{tcp:?}");
    assert!(tcp.proven);
    assert_eq!(tcp.server_saw, DialOutcome::Verified);
    let udp = report.get(free_udp, Protocol::Udp).unwrap();
    assert_eq!(
        (udp.verdict, udp.proven, udp.server_saw),
        (Reachability::Reachable, true, DialOutcome::Verified),
        "{udp:?}"
    );
    let h = report.get(held_port, Protocol::Tcp).unwrap();
    assert_eq!(h.responder, ResponderSaw::HeldByLocalService);
    assert_eq!(
        (h.verdict, h.proven, h.why),
        (Reachability::Reachable, false, Why::HeldPortAnswered)
    );
    // Both protocols got a control port; nothing listens there, so on
    // loopback both are refused.
    assert_eq!(report.controls.len(), 2, "{report:?}");
    for c in &report.controls {
        assert_eq!(c.outcome, DialOutcome::Refused, "{c:?}");
    }
    let counters = server.stop().await;
    assert_eq!(counters.served, 1);
    assert_eq!(counters.dials, 5);
}

/// The server dials the address the control connection comes from
/// (127.0.0.1, or ::1 over IPv6) while our responders listen on 127.0.0.2
/// only: whatever answers there is another host as far as the nonce can
/// tell — the address the client listens on, or would claim, is never
/// dialled.
#[tokio::test]
async fn another_host_answering_is_wrong_host_never_reachable() {
    for lo in [LO, LO6] {
        another_host_answering_on(lo).await;
    }
}

async fn another_host_answering_on(lo: IpAddr) {
    let server = start(lab_config_at(lo)).await;
    let other = TcpListener::bind((lo, 0)).await.unwrap();
    let port = other.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Reads the probe and even writes it back: still no ack.
        while let Ok((mut s, _)) = other.accept().await {
            let mut b = [0u8; 64];
            if let Ok(n) = s.read(&mut b).await {
                let _ = s.write_all(&b[..n]).await;
            }
        }
    });
    let echo = UdpSocket::bind((lo, 0)).await.unwrap();
    let uport = echo.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = echo.recv_from(&mut b).await {
            let _ = echo.send_to(&b[..n], from).await;
        }
    });
    let mut c = ClientConfig::new(server.addr);
    c.responder_ip = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    c.probe_timeout = Duration::from_millis(800);
    let report = DialbackClient::new(c)
        .check(&[
            CheckPort::new(port, Protocol::Tcp),
            CheckPort::new(uport, Protocol::Udp),
        ])
        .await
        .unwrap();
    assert_eq!(report.observed.ip(), lo);
    for p in &report.ports {
        assert_eq!(p.verdict, Reachability::WrongHost, "{p:?}");
        assert_eq!(p.server_saw, DialOutcome::AnsweredByOther);
        assert_eq!(p.responder, ResponderSaw::Nothing);
        assert!(!p.proven);
    }
    server.stop().await;
}

async fn raw_exchange(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server closes")
        .unwrap_or(0);
    out
}

fn request(nonce: u8, ports: &[DialPort]) -> Vec<u8> {
    let m = Message::Request {
        nonce: Nonce([nonce; 16]),
        ports: List::from_slice(ports).unwrap(),
    };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = m.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn refusal(bytes: &[u8]) -> Option<RefusalCode> {
    match Message::parse(bytes) {
        Ok(Message::Refusal { reason, .. }) => Some(reason),
        _ => None,
    }
}

#[tokio::test]
async fn private_targets_are_refused_by_default() {
    let mut config = lab_config();
    config.limits.targets = TargetPolicy::default();
    let server = start(config).await;
    let port = free_tcp_port(LO).await;
    let answer = raw_exchange(server.addr, &request(1, &[DialPort::tcp(port)])).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::TargetNotAllowed));
    let err = client(server.addr)
        .check(&[CheckPort::new(port, Protocol::Tcp)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DialbackError::Refused {
                reason: RefusalCode::TargetNotAllowed,
                ..
            }
        ),
        "{err}"
    );
    let c = server.stop().await;
    assert_eq!(c.dials, 0, "nothing dialled");
    assert_eq!(c.refused(RefusalCode::TargetNotAllowed), 2);
}

#[tokio::test]
async fn ports_per_request_cap_and_port_policy() {
    let mut config = lab_config();
    config.limits.max_ports = 3;
    config.limits.ports = PortPolicy {
        only: Some("1024-65535/tcp".parse().unwrap()),
    };
    let server = start(config).await;
    let four: Vec<_> = (40001..=40004).map(DialPort::tcp).collect();
    let answer = raw_exchange(server.addr, &request(2, &four)).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::TooManyPorts));
    let answer = raw_exchange(server.addr, &request(3, &[DialPort::tcp(22)])).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::PortNotAllowed));
    let udp = DialPort {
        port: 40000,
        protocol: Protocol::Udp,
    };
    let answer = raw_exchange(server.addr, &request(4, &[udp])).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::PortNotAllowed));
    // The client splits a long list into requests that fit a lower cap.
    let mut c = ClientConfig::new(server.addr);
    c.ports_per_request = 3;
    let ports: Vec<_> = (0..5)
        .map(|i| CheckPort::new(41000 + i, Protocol::Tcp))
        .collect();
    let report = DialbackClient::new(c).check(&ports).await.unwrap();
    assert_eq!(report.ports.len(), 5);
    assert!(
        report
            .ports
            .iter()
            .all(|p| p.verdict == Reachability::Reachable)
    );
    let counters = server.stop().await;
    assert_eq!(counters.refused(RefusalCode::TooManyPorts), 1);
    assert_eq!(counters.refused(RefusalCode::PortNotAllowed), 2);
    // 5 ports in requests of 2 + a control: 3 requests, 8 dials.
    assert_eq!((counters.served, counters.dials), (3, 8));
}

#[tokio::test]
async fn busy_when_at_capacity() {
    let mut config = lab_config();
    config.limits.max_in_flight = 1;
    config.timeouts.udp_try = Duration::from_millis(700);
    let server = start(config).await;
    // A silent UDP port keeps the first request in flight for 1.4 s.
    let silent = UdpSocket::bind((LO, 0)).await.unwrap();
    let p = silent.local_addr().unwrap().port();
    let udp = DialPort {
        port: p,
        protocol: Protocol::Udp,
    };
    let addr = server.addr;
    let first = tokio::spawn(async move { raw_exchange(addr, &request(5, &[udp])).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = raw_exchange(server.addr, &request(6, &[udp])).await;
    assert_eq!(refusal(&second), Some(RefusalCode::Busy));
    let first = first.await.unwrap();
    assert!(matches!(Message::parse(&first), Ok(Message::Report { .. })));
    let c = server.stop().await;
    assert_eq!((c.served, c.refused(RefusalCode::Busy)), (1, 1));
}

#[tokio::test]
async fn per_source_rate_limit_holds_under_a_flood() {
    let mut config = lab_config();
    config.limits.per_source = RateLimit {
        per_second: 2,
        burst: 3,
    };
    let server = start(config).await;
    let port = free_tcp_port(LO).await;
    let start_at = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..60u8 {
        let addr = server.addr;
        flood.spawn(async move { raw_exchange(addr, &request(i, &[DialPort::tcp(port)])).await });
    }
    let (mut served, mut limited) = (0u64, 0u64);
    while let Some(a) = flood.join_next().await {
        match Message::parse(&a.unwrap()) {
            Ok(Message::Report { .. }) => served += 1,
            Ok(Message::Refusal {
                reason: RefusalCode::RateLimited,
                ..
            }) => limited += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let elapsed = start_at.elapsed().as_secs_f64();
    // The burst, plus what refilled while the flood lasted.
    let allowed = 3 + (elapsed * 2.0).ceil() as u64;
    assert!(
        served >= 3 && served <= allowed,
        "served {served} in {elapsed:.2}s"
    );
    assert_eq!(served + limited, 60);
    let c = server.stop().await;
    assert_eq!(c.dials, served, "a refused request dials nothing");
    assert_eq!(c.refused(RefusalCode::RateLimited), limited);
}

#[tokio::test]
async fn never_answers_more_than_it_received() {
    let mut config = lab_config();
    config.request_timeout = Duration::from_millis(300);
    let server = start(config).await;
    // Short garbage: closed without a byte.
    assert!(raw_exchange(server.addr, b"hello").await.is_empty());
    // Garbage with a bad header: the read stops after 8 bytes, and 8 < 28.
    assert!(raw_exchange(server.addr, &[0x55; 400]).await.is_empty());
    // A header claiming 65535 bytes: stopped at the header.
    let mut big = b"NKDB\x01\x01\xff\xff".to_vec();
    big.extend_from_slice(&[0; 100]);
    assert!(raw_exchange(server.addr, &big).await.is_empty());
    // A well-framed but invalid request (port 0) of 30 bytes gets a
    // 28-byte refusal naming its nonce.
    let mut bad = request(7, &[DialPort::tcp(80)]);
    bad[26] = 0;
    bad[27] = 0;
    let answer = raw_exchange(server.addr, &bad).await;
    assert_eq!(answer.len(), 28);
    assert!(answer.len() <= bad.len());
    assert_eq!(
        Message::parse(&answer),
        Ok(Message::Refusal {
            nonce: Nonce([7; 16]),
            reason: RefusalCode::BadRequest
        })
    );
    // A probe sent to the server is not a request.
    let probe = Message::Probe {
        nonce: Nonce([8; 16]),
        port: DialPort::tcp(80),
    };
    let mut b = [0u8; 64];
    let n = probe.emit(&mut b).unwrap();
    assert_eq!(
        refusal(&raw_exchange(server.addr, &b[..n]).await),
        Some(RefusalCode::BadRequest)
    );
    let c = server.stop().await;
    assert_eq!(c.closed_unanswered, 3);
    assert_eq!(c.refused(RefusalCode::BadRequest), 2);
    assert!(c.control_bytes_out <= c.control_bytes_in);
    assert_eq!(c.dials, 0);
}

/// A client that connects and says nothing is closed, unanswered, at
/// exactly the request timeout. On tokio's paused clock: the server is a
/// task of this runtime, and loopback TCP delivers the connection and the
/// close before the clock moves on to the next timer.
#[tokio::test(start_paused = true)]
async fn saying_nothing_is_closed_at_exactly_the_request_timeout() {
    for timeout in [Duration::from_millis(300), Duration::from_secs(5)] {
        let mut config = lab_config();
        config.request_timeout = timeout;
        let server = start(config).await;
        let t0 = tokio::time::Instant::now();
        assert!(raw_exchange(server.addr, b"").await.is_empty());
        assert_eq!(t0.elapsed(), timeout);
        let c = server.stop().await;
        assert_eq!(c.closed_unanswered, 1);
        assert_eq!((c.control_bytes_in, c.control_bytes_out), (0, 0));
        assert_eq!(c.dials, 0);
    }
}

#[tokio::test]
async fn connection_cap_closes_extra_connections_unanswered() {
    let mut config = lab_config();
    config.max_connections = 2;
    config.request_timeout = Duration::from_secs(3);
    let server = start(config).await;
    let _a = TcpStream::connect(server.addr).await.unwrap();
    let _b = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = raw_exchange(server.addr, &request(9, &[DialPort::tcp(80)])).await;
    assert!(answer.is_empty());
    let c = server.stop().await;
    assert_eq!(c.connections_dropped, 1);
}

#[tokio::test]
async fn client_rejects_bad_input_and_unreachable_servers() {
    let c = client(SocketAddr::new(LO, free_tcp_port(LO).await));
    assert!(matches!(
        c.check(&[]).await,
        Err(DialbackError::PortCount(0))
    ));
    assert!(matches!(
        c.check(&[CheckPort::new(0, Protocol::Tcp)]).await,
        Err(DialbackError::PortZero)
    ));
    let err = c
        .check(&[CheckPort::new(5000, Protocol::Tcp)])
        .await
        .unwrap_err();
    assert!(matches!(err, DialbackError::Connect { .. }), "{err}");
    assert!(err.is_retryable());
}

// ---- IPv6 ----

/// Checks a free TCP and a free UDP port of `ip` with `c`: the server
/// saw `ip`, and reached our responder on both.
async fn check_both_reachable(c: ClientConfig, ip: IpAddr) -> ReachabilityReport {
    let tcp = free_tcp_port(ip).await;
    let udp = free_udp_port(ip).await;
    let report = DialbackClient::new(c)
        .check(&[
            CheckPort::new(tcp, Protocol::Tcp),
            CheckPort::new(udp, Protocol::Udp),
        ])
        .await
        .unwrap();
    assert_eq!(report.observed.ip(), ip, "{report:?}");
    assert_eq!(report.local.ip(), ip);
    assert!(!report.behind_nat);
    for p in &report.ports {
        assert_eq!(
            (p.verdict, p.proven, p.server_saw, p.why),
            (
                Reachability::Reachable,
                true,
                DialOutcome::Verified,
                Why::NonceEchoed
            ),
            "{ip}: {p:?}"
        );
    }
    report
}

#[tokio::test]
async fn ipv6_verdicts_on_loopback() {
    let server = start(lab_config_at(LO6)).await;
    let report = check_both_reachable(client_config(server.addr), LO6).await;
    // Nothing listens on the control ports: a TCP reset, and an ICMPv6
    // port unreachable from ::1 itself (read from the error queue), both
    // refusals.
    assert_eq!(report.controls.len(), 2, "{report:?}");
    for c in &report.controls {
        assert_eq!(c.outcome, DialOutcome::Refused, "{c:?}");
    }
    let counters = server.stop().await;
    assert_eq!((counters.served, counters.dials), (1, 4));
}

/// `[::]` listens for both families whatever the system default; an IPv4
/// client arrives as `::ffff:127.0.0.1` and is reported and dialled as
/// 127.0.0.1. `source_ip` picks the address the server sees.
#[tokio::test]
async fn dual_stack_listener_serves_both_families() {
    let server = start(lab_config_at(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))).await;
    for lo in [LO, LO6] {
        let mut c = client_config(SocketAddr::new(lo, server.addr.port()));
        c.source_ip = Some(lo);
        check_both_reachable(c, lo).await;
    }
    let counters = server.stop().await;
    assert_eq!(counters.served, 2);
}

/// A request has no field for a target: one that carries a claimed
/// address after its ports (a global one, unlike the ::1 it comes from) is
/// malformed and refused, and nothing is dialled. By default ::1 itself is
/// refused as a target.
#[tokio::test]
async fn ipv6_claimed_targets_and_loopback_are_refused() {
    let server = start(lab_config_at(LO6)).await;
    let port = free_tcp_port(LO6).await;
    let mut claimed = request(3, &[DialPort::tcp(port)]);
    let target: std::net::Ipv6Addr = "2a0d:88:77:77::2".parse().unwrap();
    claimed.extend_from_slice(&target.octets());
    claimed.extend_from_slice(&port.to_be_bytes());
    let len = u16::try_from(claimed.len()).unwrap();
    claimed[6..8].copy_from_slice(&len.to_be_bytes());
    let answer = raw_exchange(server.addr, &claimed).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::BadRequest));
    let c = server.stop().await;
    assert_eq!(c.dials, 0, "nothing dialled");

    let mut config = lab_config_at(LO6);
    config.limits.targets = TargetPolicy::default();
    let server = start(config).await;
    let answer = raw_exchange(server.addr, &request(4, &[DialPort::tcp(port)])).await;
    assert_eq!(refusal(&answer), Some(RefusalCode::TargetNotAllowed));
    let c = server.stop().await;
    assert_eq!(c.dials, 0, "nothing dialled");
}
