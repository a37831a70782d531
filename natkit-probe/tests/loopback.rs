//! The engine against real sockets, on loopback only (127.0.0.1 and ::1).
// Test helpers outside #[test] functions may panic on setup failures too.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_probe::{
    IcmpKind, PayloadKind, PortOrder, PortProbe, PortState, PortVerdict, ProbeConfig, ProbeEvent,
    ProbePlan, Prober, Reason, RttConfig, Summary, UdpPayloads,
};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

/// Short timeouts: loopback answers in microseconds. Nothing below asserts
/// on time, so a loaded machine only makes the tests slower.
fn config() -> ProbeConfig {
    ProbeConfig {
        tries: 3,
        rtt: RttConfig {
            initial_rto: Duration::from_millis(300),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(1),
            granularity: Duration::from_millis(1),
        },
        order: PortOrder::Shuffled { seed: 11 },
        ..ProbeConfig::default()
    }
}

/// A TCP socket bound but not listening: the kernel answers a SYN to its
/// port with a reset, and while it is held nobody else can take the port.
fn closed_tcp_port(ip: IpAddr) -> (Socket, u16) {
    let s = Socket::new(
        Domain::for_address(SocketAddr::new(ip, 0)),
        Type::STREAM,
        None,
    )
    .unwrap();
    s.bind(&SocketAddr::new(ip, 0).into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

/// A listener whose accept queue is full (backlog 0, one connection never
/// accepted): the kernel silently drops further SYNs, as a filtering
/// firewall would.
fn full_listener(ip: IpAddr) -> (Socket, std::net::TcpStream, u16) {
    let (s, port) = closed_tcp_port(ip);
    s.listen(0).unwrap();
    let filler = std::net::TcpStream::connect((ip, port)).unwrap();
    (s, filler, port)
}

/// A UDP port nothing is bound to: bound once to find it free, released.
fn free_udp_port(ip: IpAddr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn probe(ip: IpAddr, port: u16, protocol: Protocol) -> PortProbe {
    PortProbe {
        addr: SocketAddr::new(ip, port),
        protocol,
    }
}

async fn run(config: ProbeConfig, probes: Vec<PortProbe>) -> Summary {
    let plan = ProbePlan::from_probes(probes.clone()).unwrap();
    let summary = Prober::new(config).unwrap().run(plan).await.unwrap();
    assert_eq!(summary.verdicts.len(), probes.len());
    assert_eq!(summary.stats.counts.total(), probes.len());
    summary
}

fn verdict(s: &Summary, p: PortProbe) -> PortVerdict {
    *s.get(p.addr, p.protocol).unwrap()
}

/// Echoes every datagram back.
async fn echo_responder(ip: IpAddr) -> u16 {
    let sock = UdpSocket::bind((ip, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let _ = sock.send_to(&buf[..n], from).await;
        }
    });
    port
}

/// Answers STUN Binding requests only; anything else is dropped.
async fn stun_responder(ip: IpAddr) -> u16 {
    let sock = UdpSocket::bind((ip, 0)).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let is_binding = n >= 20 && buf[..2] == [0, 1] && buf[4..8] == [0x21, 0x12, 0xA4, 0x42];
            if is_binding {
                let mut answer = buf[..20].to_vec();
                answer[..2].copy_from_slice(&[0x01, 0x01]);
                let _ = sock.send_to(&answer, from).await;
            }
        }
    });
    port
}

async fn tcp_open_and_closed(ip: IpAddr) {
    let listeners: Vec<TcpListener> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(TcpListener::bind((ip, 0)).await.unwrap());
        }
        v
    };
    let open: Vec<PortProbe> = listeners
        .iter()
        .map(|l| probe(ip, l.local_addr().unwrap().port(), Protocol::Tcp))
        .collect();
    let held: Vec<(Socket, u16)> = (0..3).map(|_| closed_tcp_port(ip)).collect();
    let closed: Vec<PortProbe> = held
        .iter()
        .map(|(_, port)| probe(ip, *port, Protocol::Tcp))
        .collect();
    let all: Vec<PortProbe> = open.iter().chain(&closed).copied().collect();
    let s = run(config(), all).await;
    for p in &open {
        let v = verdict(&s, *p);
        assert_eq!(v.state, PortState::Open, "{v}");
        assert!(matches!(v.reason, Reason::Connected { .. }), "{v}");
        assert_eq!(v.tries, 1);
        assert_eq!(v.payload, None);
    }
    for p in &closed {
        let v = verdict(&s, *p);
        assert_eq!(v.state, PortState::Closed, "{v}");
        assert!(matches!(v.reason, Reason::Reset { .. }), "{v}");
    }
    assert_eq!(s.stats.counts.open, 3);
    assert_eq!(s.stats.counts.closed, 3);
}

#[tokio::test]
async fn tcp_open_and_closed_ipv4() {
    tcp_open_and_closed(V4).await;
}

#[tokio::test]
async fn tcp_open_and_closed_ipv6() {
    tcp_open_and_closed(V6).await;
}

async fn tcp_silence_is_filtered(ip: IpAddr) {
    let (_listener, _filler, port) = full_listener(ip);
    let p = probe(ip, port, Protocol::Tcp);
    let s = run(
        ProbeConfig {
            tries: 2,
            ..config()
        },
        vec![p],
    )
    .await;
    let v = verdict(&s, p);
    assert_eq!(v.state, PortState::Filtered, "{v}");
    let Reason::Silence { tries, waited } = v.reason else {
        panic!("expected silence: {v}");
    };
    assert_eq!(tries, 2);
    // The second try waited twice the first: initial RTO, then doubled.
    assert_eq!(waited, Duration::from_millis(300 + 600));
}

#[tokio::test]
async fn tcp_silence_is_filtered_ipv4() {
    tcp_silence_is_filtered(V4).await;
}

#[tokio::test]
async fn tcp_silence_is_filtered_ipv6() {
    tcp_silence_is_filtered(V6).await;
}

async fn udp_states(ip: IpAddr) {
    let echo = probe(ip, echo_responder(ip).await, Protocol::Udp);
    let closed = probe(ip, free_udp_port(ip), Protocol::Udp);
    // Bound, never read: the kernel queues datagrams and sends no ICMP.
    let silent_sock = UdpSocket::bind((ip, 0)).await.unwrap();
    let silent = probe(ip, silent_sock.local_addr().unwrap().port(), Protocol::Udp);
    let cfg = ProbeConfig {
        tries: 2,
        ..config()
    };
    let s = run(cfg, vec![echo, closed, silent]).await;

    let v = verdict(&s, echo);
    assert_eq!(v.state, PortState::Open, "{v}");
    assert!(matches!(v.reason, Reason::Reply { bytes: 0, .. }), "{v}");
    assert_eq!(v.payload, Some(PayloadKind::Empty));

    let v = verdict(&s, closed);
    assert_eq!(v.state, PortState::Closed, "{v}");
    let Reason::Icmp {
        report,
        from_target,
        ..
    } = v.reason
    else {
        panic!("expected ICMP evidence: {v}");
    };
    assert!(from_target, "{v}");
    assert_eq!(report.offender, Some(ip));
    let expected = match ip {
        IpAddr::V4(_) => IcmpKind::v4(3, 3),
        IpAddr::V6(_) => IcmpKind::v6(1, 4),
    };
    assert_eq!(report.kind, expected);

    let v = verdict(&s, silent);
    assert_eq!(v.state, PortState::OpenFiltered, "{v}");
    assert!(matches!(v.reason, Reason::Silence { tries: 2, .. }), "{v}");
    assert_eq!(v.tries, 2);
    drop(silent_sock);
}

#[tokio::test]
async fn udp_open_closed_and_silent_ipv4() {
    udp_states(V4).await;
}

#[tokio::test]
async fn udp_open_closed_and_silent_ipv6() {
    udp_states(V6).await;
}

#[tokio::test]
async fn udp_payload_makes_a_picky_service_answer() {
    let port = stun_responder(V4).await;
    let p = probe(V4, port, Protocol::Udp);
    let with = ProbeConfig {
        payload_ports: vec![(port, PayloadKind::Stun)],
        ..config()
    };
    let s = run(with, vec![p]).await;
    let v = verdict(&s, p);
    assert_eq!(v.state, PortState::Open, "{v}");
    assert!(matches!(v.reason, Reason::Reply { bytes: 20, .. }), "{v}");
    assert_eq!(v.payload, Some(PayloadKind::Stun));

    // The same service ignores an empty datagram.
    let without = ProbeConfig {
        tries: 1,
        udp_payloads: UdpPayloads::Empty,
        ..config()
    };
    let s = run(without, vec![p]).await;
    let v = verdict(&s, p);
    assert_eq!(v.state, PortState::OpenFiltered, "{v}");
    assert_eq!(v.payload, Some(PayloadKind::Empty));
}

#[tokio::test]
async fn events_stream_as_they_come_and_finish_last() {
    let listener = TcpListener::bind((V4, 0)).await.unwrap();
    let open = probe(V4, listener.local_addr().unwrap().port(), Protocol::Tcp);
    // More verdicts than travel in one batch.
    let held: Vec<(Socket, u16)> = (0..600).map(|_| closed_tcp_port(V4)).collect();
    let mut want: Vec<PortProbe> = held
        .iter()
        .map(|(_, port)| probe(V4, *port, Protocol::Tcp))
        .collect();
    want.push(open);
    let plan = ProbePlan::from_probes(want.iter().copied()).unwrap();
    let mut stream = Prober::new(config()).unwrap().start(plan).unwrap();
    let mut seen = Vec::new();
    let mut finished = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            ProbeEvent::Verdict(v) => {
                assert!(finished.is_none(), "a verdict after the finish");
                let expected = if v.probe == open {
                    PortState::Open
                } else {
                    PortState::Closed
                };
                assert_eq!(v.state, expected, "{v}");
                seen.push(v.probe);
            }
            ProbeEvent::Finished(stats) => finished = Some(stats),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(stream.next().await.is_none(), "nothing after the end");
    seen.sort();
    want.sort();
    assert_eq!(seen, want);
    let stats = finished.unwrap();
    assert_eq!(stats.probes, 601);
    assert_eq!(stats.counts.open, 1);
    assert_eq!(stats.counts.closed, 600);
    assert_eq!(stats.attempts, 601);
}

#[tokio::test]
async fn a_dropped_stream_stops_the_run() {
    let silent_sock = UdpSocket::bind((V4, 0)).await.unwrap();
    let port = silent_sock.local_addr().unwrap().port();
    let plan = ProbePlan::from_probes([probe(V4, port, Protocol::Udp)]).unwrap();
    let stream = Prober::new(ProbeConfig {
        tries: 16,
        ..config()
    })
    .unwrap()
    .start(plan)
    .unwrap();
    drop(stream);
    // Nothing to assert beyond "no panic, no hang": the driver was aborted.
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn profile_plan_covers_both_protocols() {
    // The ichat profile has TCP and UDP ports; on loopback each gets a
    // verdict (whatever this host runs on those ports), and nothing else.
    let profile = natkit_core::ServiceProfile::by_name("ichat").unwrap();
    let plan = ProbePlan::from_profile(&[V4], profile).unwrap();
    let want = plan.len();
    let s = Prober::new(ProbeConfig {
        tries: 1,
        ..config()
    })
    .unwrap()
    .run(plan)
    .await
    .unwrap();
    assert_eq!(s.verdicts.len(), want);
    for v in &s.verdicts {
        assert!(
            profile
                .purpose_of(v.probe.addr.port(), v.probe.protocol)
                .is_some()
        );
        assert_eq!(v.payload.is_some(), v.probe.protocol == Protocol::Udp);
    }
    let sip = s.get(SocketAddr::new(V4, 5060), Protocol::Udp).unwrap();
    assert_eq!(sip.payload, Some(PayloadKind::Sip));
}

#[test]
fn start_outside_a_runtime_is_a_typed_error() {
    let plan = ProbePlan::from_probes([probe(V4, 1, Protocol::Tcp)]).unwrap();
    let err = Prober::new(config()).unwrap().start(plan).unwrap_err();
    assert!(matches!(err, natkit_probe::Error::NoRuntime));
}
