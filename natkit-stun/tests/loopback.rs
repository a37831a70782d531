//! natkit's client against natkit's server on loopback: UDP, TCP framing, and
//! multi-server discovery with a consensus.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natkit_core::{AddressDiscoverer, Mechanism, Outcome};
use natkit_stun::client::{
    BindingRequest, RtoPlan, StunDiscoverer, binding, binding_on, binding_tcp, read_frame,
};
use natkit_stun::server::{Server, ServerConfig, ServerCore, SocketMap};
use natkit_stun::{Class, Error, HEADER_LEN, MessageBuilder, TransactionId};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};

mod support;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

async fn plain_server(ip: &str) -> (SocketAddr, natkit_stun::server::ServerStopHandle) {
    let server = Server::bind(ServerConfig::new(sa(&format!("{ip}:0"))))
        .await
        .expect("bind");
    let addr = server.local_addrs()[0];
    let stop = server.stop_handle();
    tokio::spawn(server.run());
    (addr, stop)
}

#[tokio::test]
async fn udp_binding_and_change_request_against_our_server() {
    let cfg = ServerConfig::with_alternate(sa("127.0.0.1:0"), sa("127.0.0.2:0"));
    let server = Server::bind(cfg).await.expect("bind");
    let addrs = server.local_addrs();
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());

    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = socket.local_addr().expect("addr");
    let resp = binding_on(&socket, addrs[0], &BindingRequest::new(), RtoPlan::LAB)
        .await
        .expect("answer");
    assert_eq!(resp.mapped, Some(local));
    assert_eq!(resp.other_address, Some(addrs[3]));
    assert_eq!(resp.response_origin, Some(addrs[0]));
    assert!(resp.fingerprint && !resp.other_is_rfc3489);

    // CHANGE-REQUEST: the answer comes from another socket, which a plain
    // transaction (accepting only the destination) must drop.
    let err = binding_on(
        &socket,
        addrs[0],
        &BindingRequest::with_change(true, true),
        RtoPlan::LAB,
    )
    .await
    .expect_err("answer from the other address is not accepted");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");

    stop.stop();
    let counters = task.await.expect("join").expect("run");
    assert!(counters.answered_changed >= 1);
}

#[tokio::test]
async fn graceful_stop_returns_counters() {
    let (addr, stop) = plain_server("127.0.0.1").await;
    let resp = binding(addr, &BindingRequest::new(), RtoPlan::LAB)
        .await
        .expect("answer");
    assert_eq!(resp.mapped.map(|a| a.ip()), Some(addr.ip()));
    let server = Server::bind(ServerConfig::new(sa("127.0.0.1:0")))
        .await
        .expect("bind");
    let stop2 = server.stop_handle();
    let t = tokio::spawn(server.run());
    stop2.stop();
    let c = tokio::time::timeout(Duration::from_secs(2), t)
        .await
        .expect("stops promptly")
        .expect("join")
        .expect("run");
    assert_eq!(c.received, 0);
    stop.stop();
}

/// On tokio's paused clock (servers on the test's runtime, see `support`): the two
/// live servers answer at once, and the discovery ends when the dead server's
/// transaction gives up, at exactly its plan's give-up time.
#[tokio::test(start_paused = true)]
async fn discovery_forms_a_consensus_and_reports_the_dead_server() {
    let localhost = sa("127.0.0.1:0").ip();
    let a = support::single(localhost).await.addrs[0];
    let b = support::single(localhost).await.addrs[0];
    // A port nobody answers on.
    let dead = {
        let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        s.local_addr().expect("addr")
    };
    let d = StunDiscoverer::new([a.to_string(), dead.to_string(), b.to_string()])
        .with_plan(RtoPlan::LAB);
    assert_eq!(d.mechanism(), Mechanism::Stun);
    let started = tokio::time::Instant::now();
    let ext = d.discover().await.expect("consensus");
    assert_eq!(started.elapsed(), RtoPlan::LAB.give_up_after());
    assert_eq!(ext.ip, a.ip());
    assert_eq!(ext.agreeing().count(), 2);
    assert_eq!(ext.disagreeing().count(), 0);
    assert_eq!(ext.evidence.len(), 3);
    assert_eq!(ext.evidence[1].source, dead.to_string());
    assert_eq!(ext.evidence[1].outcome, Outcome::TimedOut);
    // Both live servers saw the same socket.
    let (Outcome::SawEndpoint(x), Outcome::SawEndpoint(y)) =
        (&ext.evidence[0].outcome, &ext.evidence[2].outcome)
    else {
        panic!("{:?}", ext.evidence)
    };
    assert_eq!(x, y);
    assert_eq!(ext.port, Some(x.port()));

    let none = StunDiscoverer::new([dead.to_string()]).with_plan(RtoPlan::LAB);
    assert!(matches!(
        none.discover_stun().await,
        Err(Error::NoAnswer { servers: 1 })
    ));
    assert!(none.discover().await.is_err());

    // A name that is not one is evidence of its own kind, with the reason alone.
    let bad = StunDiscoverer::new([a.to_string(), "not a host:x".into()]).with_plan(RtoPlan::LAB);
    let seen = bad.observe().await.expect("observe");
    assert!(matches!(seen[0].outcome, Outcome::SawEndpoint(_)));
    let Outcome::Failed { kind, detail } = &seen[1].outcome else {
        panic!("{seen:?}")
    };
    assert_eq!(
        *kind,
        natkit_core::DiscoveryFailure::Unresolved {
            reason: "not a host, host:port or address".into()
        }
    );
    assert_eq!(
        detail,
        "cannot resolve not a host:x: not a host, host:port or address"
    );
}

/// A one-connection STUN-over-TCP server on natkit's core that first sends an
/// unrelated response, then the answer, back to back in one write.
async fn tcp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, peer) = listener.accept().await.expect("accept");
        let cfg = ServerConfig::new(addr);
        let mut core = ServerCore::new(&cfg, SocketMap::single(addr, None)).expect("core");
        let mut buf = vec![0u8; HEADER_LEN + 65535];
        let n = read_frame(&mut stream, &mut buf).await.expect("request");
        let mut out = vec![0u8; 1500];
        let (_, _, len) = core
            .handle(Instant::now(), 0, peer, &buf[..n], &mut out)
            .expect("answer");
        let mut other = [0u8; 20];
        let m = MessageBuilder::new(
            &mut other,
            Class::SuccessResponse,
            natkit_stun::Method::BINDING,
            TransactionId::new([0xee; 12]),
        )
        .expect("fits")
        .finish();
        let mut both = other[..m].to_vec();
        both.extend_from_slice(&out[..len]);
        stream.write_all(&both).await.expect("write");
        // Keep the connection open until the client closes it.
        let _ = read_frame(&mut stream, &mut buf).await;
    });
    addr
}

#[tokio::test]
async fn tcp_binding_reads_framed_messages() {
    let addr = tcp_server().await;
    let resp = binding_tcp(addr, &BindingRequest::new(), Duration::from_secs(5))
        .await
        .expect("answer over TCP");
    assert_eq!(resp.mapped.map(|a| a.ip()), Some(addr.ip()));
    // Nobody listening: an I/O error, quickly.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let err = binding_tcp(closed, &BindingRequest::new(), Duration::from_secs(5))
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Io { op: "connect", .. }), "{err:?}");
}

mod classify_loopback {
    use super::*;
    use natkit_core::{Connectivity, FilteringBehaviour, LegacyNatType, MappingBehaviour};
    use natkit_stun::classify::{ClassifyConfig, LifetimeConfig, ServerFlavor, TestKind, classify};

    /// On tokio's paused clock, against the core served on the test's runtime (see
    /// `support`): with every request answered at once, no test waits for a timer.
    #[tokio::test(start_paused = true)]
    async fn no_nat_against_our_own_rfc5780_server_is_open() {
        let addrs = support::four(sa("127.0.0.1:0").ip(), sa("127.0.0.2:0").ip())
            .await
            .addrs;
        let mut config = ClassifyConfig::new([addrs[0].to_string()]);
        config.plan = RtoPlan::LAB;
        config.hairpinning = true;
        let c = classify(config).await.expect("classify");
        println!("classified loopback in {:?}: {:#?}", c.elapsed, c.behaviour);
        assert_eq!(c.behaviour.connectivity, Connectivity::NoNat, "{c:#?}");
        assert_eq!(c.behaviour.mapping, MappingBehaviour::EndpointIndependent);
        assert_eq!(
            c.behaviour.filtering,
            FilteringBehaviour::EndpointIndependent
        );
        assert_eq!(c.legacy, LegacyNatType::Open);
        assert_eq!(c.external, c.local);
        assert_eq!(c.behaviour.port_preservation, Some(true));
        assert_eq!(c.behaviour.hairpinning, None, "not tested without a NAT");
        assert_eq!(c.servers[0].flavor, ServerFlavor::Rfc5780);
        assert_eq!(c.servers[0].other, Some(addrs[3]));
        assert_eq!(c.behaviour_server, Some(addrs[0]));
        // Evidence names each test, server and address.
        for kind in [
            TestKind::MappingI,
            TestKind::MappingII,
            TestKind::MappingIII,
            TestKind::FilteringChangeIpPort,
        ] {
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e.test == kind && e.outcome.answered()),
                "{kind:?} in {:#?}",
                c.evidence
            );
        }
        assert_eq!(c.elapsed, Duration::ZERO);
        let json = serde_json::to_string(&c).expect("serialisable");
        assert!(json.contains("\"open\""), "{json}");
    }

    /// Binding lifetime discovery probes every idle time at once: on tokio's paused
    /// clock, against the core on the test's runtime (no NAT: every binding is alive),
    /// it adds exactly the longest idle time probed, not the sum of the idle times.
    #[tokio::test(start_paused = true)]
    async fn binding_lifetime_steps_run_at_once() {
        let addrs = support::four(sa("127.0.0.1:0").ip(), sa("127.0.0.2:0").ip())
            .await
            .addrs;
        let max = Duration::from_secs(6);
        let mut config = ClassifyConfig::new([addrs[0].to_string()]);
        config.lifetime = Some(LifetimeConfig { max, steps: 12 });
        let c = classify(config).await.expect("classify");
        let l = c
            .binding_lifetime
            .expect("measured against an RFC 5780 server");
        assert_eq!(l.steps.len(), 13, "{l:#?}");
        assert!(l.steps.iter().all(|p| p.alive == Some(true)), "{l:#?}");
        assert_eq!(
            (l.at_least, l.less_than, l.conclusive),
            (Some(max), None, true)
        );
        assert_eq!(c.elapsed, max);
    }

    #[tokio::test]
    async fn plain_servers_only_compare_mappings() {
        let (a, _sa) = plain_server("127.0.0.1").await;
        let (b, _sb) = plain_server("127.0.0.5").await;
        // A name that is not one is not asked, and says so typed and in the notes.
        let bad = "not a host:x";
        let mut config = ClassifyConfig::new([a.to_string(), bad.into(), b.to_string()]);
        config.plan = RtoPlan::LAB;
        let c = classify(config).await.expect("classify");
        assert_eq!(
            c.not_asked,
            [Error::Resolve {
                name: bad.into(),
                failure: natkit_stun::client::ResolveFailure::BadName,
            }]
        );
        let noted: Vec<&String> = c
            .notes
            .iter()
            .filter(|n| c.not_asked_by_note(n).is_some())
            .collect();
        assert_eq!(noted.len(), 1, "{:?}", c.notes);
        assert!(noted[0].contains(bad), "{noted:?}");
        assert!(c.servers.iter().all(|s| s.name != bad));
        assert_eq!(c.behaviour.connectivity, Connectivity::NoNat);
        assert_eq!(c.mapping_varies_by_destination, Some(false));
        assert_eq!(c.behaviour.mapping, MappingBehaviour::EndpointIndependent);
        assert_eq!(c.behaviour.filtering, FilteringBehaviour::Inconclusive);
        assert_eq!(c.legacy, LegacyNatType::Inconclusive);
        assert!(c.servers.iter().all(|s| s.flavor == ServerFlavor::Plain));
        assert!(!c.notes.is_empty());
    }

    /// Nothing answers: three rounds of test I, one after another, each given up
    /// at its plan's give-up time, and then the verdict at once. On tokio's paused
    /// clock, for the lab's plan and the default one (which `natkit nat-type` uses).
    #[tokio::test(start_paused = true)]
    async fn nothing_answering_is_udp_blocked_after_three_rounds_of_test_i() {
        let dead = {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            s.local_addr().expect("addr")
        };
        for plan in [RtoPlan::LAB, RtoPlan::FAST] {
            let mut config = ClassifyConfig::new([dead.to_string()]);
            config.plan = plan;
            let c = classify(config).await.expect("classify");
            assert_eq!(c.behaviour.connectivity, Connectivity::UdpBlocked);
            assert_eq!(c.legacy, LegacyNatType::UdpBlocked);
            let rounds = c
                .evidence
                .iter()
                .filter(|e| e.test == TestKind::MappingI && !e.outcome.answered())
                .count();
            assert_eq!((rounds, c.evidence.len()), (3, 3), "{:#?}", c.evidence);
            assert_eq!(c.elapsed, plan.give_up_after() * 3, "{plan:?}");
        }
        assert!(matches!(
            classify(ClassifyConfig::new(Vec::<String>::new())).await,
            Err(Error::InvalidConfig { .. })
        ));
    }
}
