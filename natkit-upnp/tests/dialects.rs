//! The UPnP dialects and quirks of real routers, each played by the in-repo
//! fake IGD on loopback (so every clone tests them; the real routers'
//! captures are played back in the lab by `lab_routers.rs`):
//! - WANPPPConnection:2 (Orange Livebox), the `urn:dslforum-org` namespace
//!   (Huawei HG531), several WAN connections (MikroTik CHR, DSL routers),
//!   URLBase, a control URL on another port (D-Link DIR-655), a description
//!   with no XML declaration or namespace, chunked HTTP (FRITZ!Box);
//! - an error that names what a description offered when it has no WAN
//!   connection service;
//! - the protocol in upper case; no permanent mapping left behind when its
//!   answer is lost; routers that drop finite leases, purge their table,
//!   or keep an entry listed that no longer forwards; an SSDP answer from
//!   an address that is not the gateway;
//! - how many M-SEARCH datagrams a discovery that finds nothing sends.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{
    FailureKind, KeeperConfig, KeeperEvent, LeaseKeeper, MappingRequest, PortMapper, Protocol,
};
use natkit_testkit::igd::{Behaviour, FakeIgd, FakeWan, Row, Step};
use natkit_upnp::{
    ConnectionStatus, DiscoveryConfig, Error, HttpConfig, Igd, LeaseOutcome, LocationRefusal,
    PortMappingRequest, UpnpMapper, UrnDomain, WanConnection, discover,
};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn request(port: u16, lease: u32) -> PortMappingRequest {
    PortMappingRequest {
        protocol: Protocol::Tcp,
        external_port: port,
        internal: SocketAddrV4::new(LO, port),
        lease_secs: lease,
        description: "dialect".into(),
    }
}

/// Discovers the fake, maps `port`, reads it back, deletes it; returns the
/// IGD. Every action must have gone to `path`.
async fn map_read_back_delete(fake: &FakeIgd, port: u16, path: &str) -> Igd {
    let igd = discover(&fake.config()).await.expect("discover");
    let grant = igd
        .add_port_mapping(&request(port, 3600))
        .await
        .expect("map");
    let back = grant.read_back.as_ref().expect("read back");
    assert_eq!(back.internal_client, "127.0.0.1");
    assert_eq!(back.internal_port, port);
    assert_eq!(fake.table().len(), 1);
    assert_eq!(
        igd.get_specific_entry(Protocol::Tcp, port)
            .await
            .expect("read back"),
        *back
    );
    igd.delete(Protocol::Tcp, port).await.expect("delete");
    assert!(fake.table().is_empty());
    let calls = fake.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|(p, _)| p == path),
        "actions went elsewhere than {path}: {calls:?}"
    );
    igd
}

/// A fake behaving as `b`, and the IGD natkit discovers in it.
async fn discovered(b: Behaviour) -> (FakeIgd, Igd) {
    let fake = FakeIgd::start(b).await;
    let igd = discover(&fake.config()).await.expect("discover");
    (fake, igd)
}

fn one_wan(service_type: &str, path: &str) -> Behaviour {
    Behaviour {
        igd2: false,
        wan: vec![FakeWan::new(service_type, path)],
        ..Behaviour::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wan_ppp_connection_2_is_driven() {
    // Sagemcom's Livebox: IGD:2 whose only WAN service is WANPPPConnection:2.
    let path = "/87895a19/upnp/control/WANIPConn1";
    let fake = FakeIgd::start(Behaviour {
        igd2: true,
        ..one_wan("urn:schemas-upnp-org:service:WANPPPConnection:2", path)
    })
    .await;
    let igd = map_read_back_delete(&fake, 4100, path).await;
    assert_eq!(
        igd.discovered_external_ip(),
        Some(Ipv4Addr::new(203, 0, 113, 7).into())
    );
    assert_eq!(igd.service().connection, WanConnection::Ppp);
    assert_eq!(igd.service().version, 2);
    assert_eq!(
        igd.service_type(),
        "urn:schemas-upnp-org:service:WANPPPConnection:2"
    );
    // Version 2 has AddAnyPortMapping.
    let any = igd.add_any_port_mapping(&request(4101, 600)).await.unwrap();
    assert_eq!(any.external_port, 4101);
    igd.delete(Protocol::Tcp, 4101).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dslforum_namespace_is_driven_in_its_own_namespace() {
    // Huawei HG531: the WAN service in the Broadband Forum's namespace. The
    // fake refuses (401) requests addressed to any other service type, as a
    // UPnP stack does, so a mapping proves the type was spoken as written.
    let path = "/ctrlt/WANPPPConnection_1";
    let fake = FakeIgd::start(one_wan("urn:dslforum-org:service:WANPPPConnection:1", path)).await;
    let igd = map_read_back_delete(&fake, 4200, path).await;
    assert_eq!(igd.service().domain, UrnDomain::DslForum);
    assert_eq!(
        igd.service_type(),
        "urn:dslforum-org:service:WANPPPConnection:1"
    );
    // IGD:1 has no AddAnyPortMapping; natkit does not send it.
    let err = igd
        .add_any_port_mapping(&request(4201, 600))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotSupported { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_wan_connections_map_through_the_connected_public_one() {
    let mut unconfigured = FakeWan::new("urn:schemas-upnp-org:service:WANIPConnection:1", "/a");
    unconfigured.status = "Unconfigured".into();
    unconfigured.external_ip = Ipv4Addr::UNSPECIFIED;
    let mut private = FakeWan::new("urn:schemas-upnp-org:service:WANIPConnection:1", "/b");
    private.external_ip = Ipv4Addr::new(10, 0, 0, 2);
    let mut public = FakeWan::new("urn:schemas-upnp-org:service:WANPPPConnection:1", "/c");
    public.external_ip = Ipv4Addr::new(6, 0, 0, 2);
    let (fake, igd) = discovered(Behaviour {
        igd2: false,
        wan: vec![unconfigured, private, public],
        ..Behaviour::default()
    })
    .await;
    assert_eq!(igd.control_url().path, "/c");
    // Asked with the status during discovery: no need to ask again.
    assert_eq!(
        igd.discovered_external_ip(),
        Some(Ipv4Addr::new(6, 0, 0, 2).into())
    );
    assert_eq!(igd.external_ip().await.unwrap(), Ipv4Addr::new(6, 0, 0, 2));
    // The others are reported with what they answered.
    let others: Vec<(String, Option<ConnectionStatus>)> = igd
        .other_connections()
        .iter()
        .map(|o| {
            (
                o.control.path.clone(),
                o.answer.as_ref().and_then(|p| p.status.clone()),
            )
        })
        .collect();
    assert_eq!(
        others,
        [
            ("/a".to_owned(), Some(ConnectionStatus::Unconfigured)),
            ("/b".to_owned(), Some(ConnectionStatus::Connected)),
        ]
    );
    let shown: Vec<String> = igd
        .other_connections()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "WANIPConnection:1 at /a (Unconfigured, 0.0.0.0)",
            "WANIPConnection:1 at /b (Connected, 10.0.0.2)"
        ]
    );
    fake.state.lock().unwrap().calls.clear();
    let grant = igd.add_port_mapping(&request(4300, 600)).await.unwrap();
    assert_eq!(grant.read_back.unwrap().internal_port, 4300);
    igd.delete(Protocol::Tcp, 4300).await.unwrap();
    assert!(
        fake.calls().iter().all(|(p, _)| p == "/c"),
        "{:?}",
        fake.calls()
    );

    // None connected: the preferred one's state is the error.
    let mut down = FakeWan::new("urn:schemas-upnp-org:service:WANIPConnection:1", "/x");
    down.status = "Disconnected".into();
    let mut never = FakeWan::new("urn:schemas-upnp-org:service:WANPPPConnection:1", "/y");
    never.status = "Unconfigured".into();
    let fake = FakeIgd::start(Behaviour {
        igd2: false,
        wan: vec![never, down],
        ..Behaviour::default()
    })
    .await;
    let err = discover(&fake.config()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotConnected {
                status: ConnectionStatus::Disconnected,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_base_other_port_bare_xml_and_chunked_http() {
    // A D-Link DIR-655 names absolute control URLs on other ports than its
    // description's; libtorrent's D-Link captures have no XML declaration
    // and no namespace; a FRITZ!Box answers in chunks.
    let mut wan = FakeWan::new("urn:schemas-upnp-org:service:WANIPConnection:1", "/wipconn");
    wan.second_port = true;
    let fake = FakeIgd::start(Behaviour {
        igd2: false,
        wan: vec![wan],
        url_base: Some("http://{http}".into()),
        bare_xml: true,
        chunked: true,
        ..Behaviour::default()
    })
    .await;
    let igd = map_read_back_delete(&fake, 4400, "/wipconn").await;
    assert_eq!(igd.control_url().addr.port(), fake.http2.port());
    assert_ne!(fake.http2.port(), fake.http.port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_base_on_another_host_is_not_followed() {
    // A stale or foreign URLBase: relative control URLs resolve against
    // the LOCATION instead, so requests still go to the gateway only.
    let fake = FakeIgd::start(Behaviour {
        url_base: Some("http://10.9.8.7:80".into()),
        ..Behaviour::default()
    })
    .await;
    let igd = map_read_back_delete(&fake, 4500, "/ctl/IPConn").await;
    assert_eq!(igd.control_url().ip(), LO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wan_service_names_what_was_offered() {
    let description = "<root><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType>\
        <friendlyName>Odd box</friendlyName><serviceList>\
        <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/l3f</controlURL></service>\
        <service><serviceType>urn:schemas-upnp-org:service:WANIPv6FirewallControl:1</serviceType><controlURL>/fw</controlURL></service>\
        <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType><controlURL></controlURL></service>\
        </serviceList></device></root>";
    let fake = FakeIgd::start(Behaviour {
        description_body: Some(description.into()),
        ..Behaviour::default()
    })
    .await;
    let err = discover(&fake.config()).await.unwrap_err();
    let Error::NoWanService {
        device, offered, ..
    } = &err
    else {
        panic!("expected NoWanService, got {err:?}")
    };
    assert_eq!(device, "Odd box");
    let types: Vec<&str> = offered.iter().map(|s| s.service_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "urn:schemas-upnp-org:service:Layer3Forwarding:1",
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
            "urn:schemas-upnp-org:service:WANIPConnection:1",
        ]
    );
    let text = err.to_string();
    assert!(text.contains("WANIPv6FirewallControl:1"), "{text}");
    assert!(
        text.contains("WANIPConnection:1 (no control URL)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_goes_in_upper_case() {
    // miniupnpd (and the fake) refuse `tcp` with 402 Invalid Args.
    let (fake, igd) = discovered(Behaviour::default()).await;
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let req = PortMappingRequest {
            protocol,
            ..request(4600, 600)
        };
        igd.add_port_mapping(&req).await.unwrap();
    }
    let protos: Vec<String> = fake.table().into_iter().map(|r| r.proto).collect();
    assert_eq!(protos, ["TCP", "UDP"]);
    igd.delete(Protocol::Tcp, 4600).await.unwrap();
    igd.delete(Protocol::Udp, 4600).await.unwrap();
    assert!(fake.table().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_add_the_router_carried_out_is_confirmed_by_read_back() {
    // The AddPortMapping is carried out but its answer never comes. The
    // mapping is on the router: natkit reads it back and, when it is
    // exactly ours, reports it granted, so the caller renews and deletes
    // it. A permanent one (after 725) would otherwise stay for good,
    // unknown to anyone.
    let no_hedge = HttpConfig {
        soap_timeout: Duration::from_millis(400),
        hedge_after: None,
        ..HttpConfig::default()
    };
    for (behaviour, script, leases, outcome) in [
        (
            Behaviour::default(),
            vec![Step::ProcessSilently],
            vec![3600],
            LeaseOutcome::AsRequested,
        ),
        (
            Behaviour::permanent_only(),
            vec![Step::Answer, Step::ProcessSilently],
            vec![3600, 0],
            LeaseOutcome::Permanent { requested: 3600 },
        ),
    ] {
        let fake = FakeIgd::start(behaviour).await;
        let config = DiscoveryConfig {
            http: no_hedge.clone(),
            ..fake.config()
        };
        let igd = discover(&config).await.unwrap();
        fake.arm(script);
        let grant = igd.add_port_mapping(&request(4700, 3600)).await.unwrap();
        assert_eq!(grant.lease, outcome);
        assert_eq!(fake.add_leases(), leases);
        let mut actions: Vec<String> = fake.conns().into_iter().map(|c| c.action).collect();
        assert_eq!(
            actions.pop().as_deref(),
            Some("GetSpecificPortMappingEntry")
        );
        assert!(actions.iter().all(|a| a == "AddPortMapping"), "{actions:?}");
        assert_eq!(fake.table().len(), 1);
        igd.delete(Protocol::Tcp, 4700).await.unwrap();
    }

    // Another host's entry on that port: not ours, the timeout stands, and
    // the entry is left alone.
    let fake = FakeIgd::start(Behaviour::permanent_only()).await;
    let igd = discover(&DiscoveryConfig {
        http: no_hedge,
        ..fake.config()
    })
    .await
    .unwrap();
    fake.arm(vec![Step::Answer, Step::Silent]);
    fake.insert(Row::new(4701, "TCP", "127.0.0.9", "someone else"));
    let err = igd
        .add_port_mapping(&request(4701, 3600))
        .await
        .unwrap_err();
    // The time limit, not a refusal.
    assert_eq!(err.failure_kind(), FailureKind::Timeout, "{err:?}");
    assert_eq!(fake.table().len(), 1);
    assert_eq!(fake.table()[0].client, "127.0.0.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_drops_finite_leases_gets_a_permanent_one() {
    let (fake, igd) = discovered(Behaviour {
        expire_nonzero_leases: true,
        ..Behaviour::default()
    })
    .await;
    let grant = igd.add_port_mapping(&request(4800, 3600)).await.unwrap();
    assert_eq!(fake.add_leases(), [3600, 0]);
    assert_eq!(grant.lease, LeaseOutcome::Permanent { requested: 3600 });
    assert_eq!(grant.lease_secs, 0);
    assert_eq!(fake.table().len(), 1);
    assert_eq!(fake.table()[0].lease, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keepers_renewal_puts_back_a_purged_entry() {
    // Some routers empty their table now and then (and after a WAN
    // reconnect). The keeper's renewal is AddPortMapping, which makes the
    // entry again whether or not the router still had it.
    let fake = FakeIgd::start(Behaviour::default()).await;
    let mapper = Arc::new(UpnpMapper::discover(&fake.config()).await.unwrap());
    let (keeper, mut events) = LeaseKeeper::new(mapper, KeeperConfig::default());
    let req = MappingRequest::new(Protocol::Udp, (LO, 4900).into())
        .with_external_port(Some(4900))
        .with_lifetime(Duration::from_secs(4));
    keeper.add(req).await.unwrap();
    assert_eq!(fake.table().len(), 1);
    fake.purge();
    assert!(fake.table().is_empty());
    // The renewal comes at half the 4 s lease.
    let renewed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(
                    KeeperEvent::Renewed { mapping, .. } | KeeperEvent::Remapped { mapping, .. },
                ) => {
                    return mapping;
                }
                Some(_) => {}
                None => panic!("keeper stopped"),
            }
        }
    })
    .await
    .expect("a renewal");
    assert_eq!(renewed.external.port(), 4900);
    assert_eq!(fake.table().len(), 1);
    assert_eq!(fake.table()[0].ext_port, 4900);
    let report = keeper.shutdown().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(fake.table().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_listed_but_not_forwarding_is_added_again_on_renewal() {
    // A router can keep an entry in its table after losing the forwarding
    // rule behind it (a firewall reload). No UPnP action can tell: the
    // read-back still lists it. What natkit can do is make every renewal an
    // AddPortMapping (never a read), which installs the rule again.
    let fake = FakeIgd::start(Behaviour::default()).await;
    let mapper = UpnpMapper::discover(&fake.config()).await.unwrap();
    let req = MappingRequest::new(Protocol::Tcp, (LO, 5000).into())
        .with_external_port(Some(5000))
        .with_lifetime(Duration::from_secs(600));
    let m = mapper.map(&req).await.unwrap();
    assert!(fake.forwards(5000, "TCP"));
    fake.break_forwarding();
    assert!(!fake.forwards(5000, "TCP"));
    // The read-back is no proof.
    let listed = mapper.igd().get_specific_entry(Protocol::Tcp, 5000).await;
    assert!(listed.is_ok());
    mapper.renew(&req, &m).await.unwrap();
    assert!(fake.forwards(5000, "TCP"));
    mapper.unmap(&m).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_from_another_address_counts_only_for_a_location_on_the_gateway() {
    // A failover pair (VRRP): the standby answers the search from its own
    // address. What natkit trusts is the LOCATION: on the gateway it is
    // fetched whoever sent the answer; anywhere else it is refused.
    let (_fake, igd) = discovered(Behaviour {
        ssdp_reply_from: Some(Ipv4Addr::new(127, 0, 0, 2)),
        ..Behaviour::default()
    })
    .await;
    assert_eq!(igd.location().ip(), LO);

    let standby = Ipv4Addr::new(127, 0, 0, 2);
    let fake = FakeIgd::start(Behaviour {
        ssdp_reply_from: Some(standby),
        location: Some(format!("http://{standby}:5000/rootDesc.xml")),
        ..Behaviour::default()
    })
    .await;
    let refused = match discover(&fake.config()).await {
        Err(Error::LocationRefused { reason, .. }) => reason,
        other => panic!("expected the standby's LOCATION refused, got {other:?}"),
    };
    assert_eq!(refused, LocationRefusal::NotGateway);
    // Nothing was fetched from it.
    assert!(fake.state.lock().unwrap().actions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_lan_gets_the_scheduled_searches_only() {
    // Unicast only (loopback): rounds at 0, 100 ms and 1.1 s hold 1, 3 and
    // 4 searches (see natkit_upnp::search); nothing more within 2 s.
    let fake = FakeIgd::start(Behaviour::no_igd()).await;
    let config = DiscoveryConfig {
        timeout: Duration::from_secs(2),
        ..fake.config()
    };
    let err = discover(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NoResponse {
                waited_ms: 2000,
                ..
            }
        ),
        "{err:?}"
    );
    let targets: Vec<String> = fake.searches().into_iter().map(|(_, st)| st).collect();
    assert_eq!(
        targets,
        [
            // round 0
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
            // round 1
            "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
            "urn:schemas-upnp-org:service:WANIPConnection:1",
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
            // round 2
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
            "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
            "urn:schemas-upnp-org:service:WANIPConnection:1",
            "urn:schemas-upnp-org:service:WANPPPConnection:1",
        ]
    );
}
