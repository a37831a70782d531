//! natkit's server and client over IPv6 on loopback: the batched (recvmmsg/sendmmsg)
//! socket threads with IPv6 sockets, a dual-stack server (an IPv4 RFC 5780 pair and an
//! IPv6 socket served at once), and an IPv4 client reaching a socket bound to `[::]`,
//! which must be told its IPv4 address, not a v4-mapped IPv6 one. Loopback has one
//! IPv6 address (::1), so the two-address IPv6 server runs in the lab (tests/lab_ipv6.rs).

use std::net::SocketAddr;

use natkit_core::Outcome;
use natkit_stun::client::{
    BindingRequest, IpFamily, NoAddress, RtoPlan, StunDiscoverer, binding_on,
};
use natkit_stun::server::{Server, ServerConfig};
use tokio::net::UdpSocket;

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

#[tokio::test]
async fn a_dual_stack_server_answers_each_family_in_its_own() {
    let v4 = ServerConfig::with_alternate(sa("127.0.0.1:0"), sa("127.0.0.2:0"));
    let v6 = ServerConfig::new(sa("[::1]:0"));
    let server = Server::bind_many([v4, v6]).await.expect("bind");
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 5, "{addrs:?}");
    assert_eq!(server.socket_maps().len(), 2);
    let (v4_primary, v4_other, v6_addr) = (addrs[0], addrs[3], addrs[4]);
    assert!(v6_addr.is_ipv6());
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());

    let s4 = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let r4 = binding_on(&s4, v4_primary, &BindingRequest::new(), RtoPlan::LAB)
        .await
        .expect("IPv4 answer");
    assert_eq!(r4.mapped, Some(s4.local_addr().expect("addr")));
    assert_eq!(r4.other_address, Some(v4_other));

    let s6 = UdpSocket::bind("[::1]:0").await.expect("bind");
    // Many requests back to back, so that the IPv6 socket's thread takes them in
    // batches (recvmmsg) and answers in batches (sendmmsg).
    for _ in 0..50 {
        let r6 = binding_on(&s6, v6_addr, &BindingRequest::new(), RtoPlan::LAB)
            .await
            .expect("IPv6 answer");
        assert_eq!(r6.mapped, Some(s6.local_addr().expect("addr")));
        assert_eq!(r6.other_address, None, "the IPv6 side has no alternate");
    }
    let discovered = StunDiscoverer::new([v4_primary.to_string(), v6_addr.to_string()])
        .with_plan(RtoPlan::LAB)
        .observe()
        .await
        .expect("observe");
    let seen: Vec<Option<SocketAddr>> = discovered
        .iter()
        .map(|e| match e.outcome {
            Outcome::SawEndpoint(a) => Some(a),
            _ => None,
        })
        .collect();
    assert!(seen[0].is_some_and(|a| a.is_ipv4()), "{discovered:?}");
    assert!(seen[1].is_some_and(|a| a.is_ipv6()), "{discovered:?}");

    stop.stop();
    let counters = task.await.expect("join").expect("run");
    assert!(counters.answered >= 53, "{counters:?}");
}

#[tokio::test]
async fn an_ipv4_client_of_an_ipv6_wildcard_socket_is_told_its_ipv4_address() {
    // Linux's default (net.ipv6.bindv6only = 0): `[::]` also receives IPv4, as
    // ::ffff:a.b.c.d. Skipped nowhere: if the host sets bindv6only, the bind below
    // still succeeds and the IPv4 request times out, which fails the test loudly.
    let server = Server::bind(ServerConfig::new(sa("[::]:0")))
        .await
        .expect("bind");
    let port = server.local_addrs()[0].port();
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());
    let s4 = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let r = binding_on(
        &s4,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &BindingRequest::new(),
        RtoPlan::LAB,
    )
    .await
    .expect("an answer to the IPv4 client");
    assert_eq!(r.mapped, Some(s4.local_addr().expect("addr")));
    let s6 = UdpSocket::bind("[::1]:0").await.expect("bind");
    let r = binding_on(
        &s6,
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        &BindingRequest::new(),
        RtoPlan::LAB,
    )
    .await
    .expect("an answer to the IPv6 client");
    assert_eq!(r.mapped, Some(s6.local_addr().expect("addr")));
    stop.stop();
    let counters = task.await.expect("join").expect("run");
    assert_eq!(counters.answered, 2);
}

#[tokio::test]
async fn ipv4_and_ipv6_addresses_are_found_side_by_side() {
    let server = Server::bind_many([
        ServerConfig::new(sa("127.0.0.1:0")),
        ServerConfig::new(sa("[::1]:0")),
    ])
    .await
    .expect("bind");
    let addrs = server.local_addrs();
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());
    let dead6 = {
        let s = UdpSocket::bind("[::1]:0").await.expect("bind");
        s.local_addr().expect("addr")
    };
    let d = StunDiscoverer::new([
        addrs[0].to_string(),
        addrs[1].to_string(),
        dead6.to_string(),
    ])
    .with_plan(RtoPlan::LAB);
    let both = d.discover_both().await.expect("valid config");
    let v4 = both.ipv4.as_ref().expect("an IPv4 address");
    let v6 = both.ipv6.as_ref().expect("an IPv6 address");
    assert_eq!(v4.ip, std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(v6.ip, std::net::Ipv6Addr::LOCALHOST);
    assert_eq!(
        v4.evidence.len(),
        1,
        "only the IPv4 server is asked for IPv4"
    );
    assert_eq!(v6.evidence.len(), 2);
    assert_eq!(v6.evidence[1].outcome, Outcome::TimedOut);
    // Side by side: the dead IPv6 server's wait (LAB plan: 0.55 s) is the whole wait.
    println!("both families in {:?}", both.elapsed);

    // Only IPv4 servers: IPv6 says so without asking anyone.
    let only4 = StunDiscoverer::new([addrs[0].to_string()])
        .with_plan(RtoPlan::LAB)
        .discover_both()
        .await
        .expect("valid config");
    assert!(only4.ipv4.is_ok());
    assert!(matches!(
        only4.ipv6,
        Err(NoAddress::NoServer {
            family: IpFamily::V6
        })
    ));
    stop.stop();
    task.await.expect("join").expect("run");
}

// Multi-threaded: the client below blocks on std sockets while the server's task
// starts its threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_ipv6_is_answered_in_full() {
    // Sent all at once, the requests queue on the server's IPv6 socket and its thread
    // takes them in batches (recvmmsg, up to 32 a call) and answers in batches
    // (sendmmsg): every one must come back, to the right IPv6 source.
    const N: u64 = 256;
    let mut cfg = ServerConfig::new(sa("[::1]:0"));
    cfg.rate_limit = natkit_stun::server::RateLimit::unlimited();
    let server = Server::bind(cfg).await.expect("bind");
    let addr = server.local_addrs()[0];
    let stop = server.stop_handle();
    let task = tokio::spawn(server.run());
    let client = std::net::UdpSocket::bind("[::1]:0").expect("bind");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    let me = client.local_addr().expect("addr");
    let mut buf = [0u8; 64];
    for n in 0..N {
        let mut id = [6u8; 12];
        id[4..].copy_from_slice(&n.to_be_bytes());
        let len = natkit_stun::MessageBuilder::new(
            &mut buf,
            natkit_stun::Class::Request,
            natkit_stun::Method::BINDING,
            natkit_stun::TransactionId::new(id),
        )
        .expect("fits")
        .finish_with_fingerprint()
        .expect("fits");
        client.send_to(&buf[..len], addr).expect("send");
    }
    let mut seen = std::collections::HashSet::new();
    let mut answer = [0u8; 256];
    while seen.len() < usize::try_from(N).expect("small") {
        let Ok((len, from)) = client.recv_from(&mut answer) else {
            break;
        };
        assert_eq!(from, addr);
        let m = natkit_stun::Message::new_checked(&answer[..len]).expect("a STUN answer");
        assert_eq!(m.xor_mapped_address(), Ok(Some(me)));
        seen.insert(m.transaction_id());
    }
    stop.stop();
    let counters = task.await.expect("join").expect("run");
    assert_eq!(seen.len(), 256, "{counters:?}");
    assert_eq!(counters.answered, N, "{counters:?}");
}
