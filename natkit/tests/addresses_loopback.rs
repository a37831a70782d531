//! `AddressQuery` on loopback: natkit's STUN server on 127.0.0.1 and [::1], the
//! router not asked. Each family forms its own consensus: an IPv6 server sees this
//! host's own IPv6 address and never votes on the IPv4 one, however many there are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use natkit::stun::client::{IpFamily, NoAddress};
use natkit::stun::server::{Server, ServerConfig, ServerStopHandle};
use natkit::{AddressQuery, Error};
use natkit_core::Outcome;

/// A server on 127.0.0.1 and one on [::1]; their addresses.
async fn servers() -> (
    SocketAddr,
    SocketAddr,
    ServerStopHandle,
    tokio::task::JoinHandle<()>,
) {
    let server = Server::bind_many([
        ServerConfig::new("127.0.0.1:0".parse().expect("addr")),
        ServerConfig::new("[::1]:0".parse().expect("addr")),
    ])
    .await
    .expect("bind");
    let addrs = server.local_addrs();
    let (v4, v6) = (addrs[0], addrs[1]);
    assert!(v4.is_ipv4() && v6.is_ipv6(), "{addrs:?}");
    let stop = server.stop_handle();
    let task = tokio::spawn(async move {
        server.run().await.expect("run");
    });
    (v4, v6, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_family_forms_its_own_consensus() {
    let (v4, v6, stop, task) = servers().await;
    // Two IPv6 servers to one IPv4: mixed in one vote, ::1 would win the IPv4 side.
    let query =
        AddressQuery::new()
            .router(false)
            .servers([v6.to_string(), v6.to_string(), v4.to_string()]);

    let a = query.run().await.expect("an IPv4 address");
    assert_eq!(a.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(a.evidence.len(), 1, "{:?}", a.evidence);
    assert_eq!(a.evidence[0].source, v4.to_string());
    assert_eq!(query.observe().await.len(), 1);

    let both = query.run_both().await;
    let four = both.ipv4.as_ref().expect("an IPv4 address");
    assert_eq!(four.ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(four.agreeing().count(), 1);
    assert_eq!(four.evidence.len(), 1, "{:?}", four.evidence);
    let six = both.ipv6.as_ref().expect("an IPv6 address");
    assert_eq!(six.ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(six.agreeing().count(), 2);
    assert!(
        six.evidence
            .iter()
            .all(|e| matches!(e.outcome, Outcome::SawEndpoint(sa) if sa.is_ipv6())),
        "{:?}",
        six.evidence
    );

    // Only IPv4 servers: IPv6 says there is none to ask, IPv4 is unchanged.
    let only4 = AddressQuery::new()
        .router(false)
        .servers([v4.to_string()])
        .run_both()
        .await;
    assert_eq!(
        only4.ipv4.expect("IPv4").ip,
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert!(
        matches!(
            only4.ipv6,
            Err(NoAddress::NoServer {
                family: IpFamily::V6
            })
        ),
        "{:?}",
        only4.ipv6
    );

    // Only an IPv6 server: no IPv4 address, and the evidence says why.
    let only6 = AddressQuery::new()
        .router(false)
        .servers([v6.to_string()])
        .run_both()
        .await;
    assert_eq!(
        only6.ipv6.expect("IPv6").ip,
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    );
    match only6.ipv4 {
        Err(Error::NoAddress { evidence }) => {
            assert_eq!(evidence.len(), 1, "{evidence:?}");
            assert!(
                matches!(evidence[0].outcome, Outcome::Failed { .. }),
                "{evidence:?}"
            );
        }
        other => panic!("no IPv4 address expected: {other:?}"),
    }
    stop.stop();
    task.await.expect("join");
}

#[tokio::test]
async fn nothing_to_ask_is_a_typed_error_for_both() {
    let both = AddressQuery::new()
        .router(false)
        .servers(Vec::<String>::new())
        .run_both()
        .await;
    assert!(
        matches!(both.ipv4, Err(Error::InvalidArgument { .. })),
        "{:?}",
        both.ipv4
    );
    assert!(both.ipv6.is_err());
}
