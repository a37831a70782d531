//! natkit-upnp against a fake IGD on loopback: discovery, mapping, listing,
//! deleting, lease fallbacks, conflicts, cleanup, and the limits on what a
//! misbehaving device can make natkit do.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use natkit_core::{FailureKind, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_testkit::igd::{Behaviour, FakeIgd, Row};
use natkit_upnp::{
    ConnectionStatus, DiscoveryConfig, Error, HttpError, LeaseOutcome, LocationRefusal,
    PortMappingRequest, UpnpErrorCode, UpnpMapper, WanServiceKind, discover,
};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn request(port: u16, lease: u32, description: &str) -> PortMappingRequest {
    PortMappingRequest {
        protocol: Protocol::Tcp,
        external_port: port,
        internal: SocketAddrV4::new(LO, port),
        lease_secs: lease,
        description: description.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_map_list_delete() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let igd = discover(&fake.config()).await.unwrap();
    assert_eq!(igd.service(), WanServiceKind::WAN_IP2);
    assert_eq!(igd.server(), Some("FakeOS/1 UPnP/1.1 FakeIGD/1.0"));
    assert_eq!(igd.display_name(), "Fake router");
    assert_eq!(igd.local_ip(), LO);
    assert_eq!(igd.control_url().path, "/ctl/IPConn");
    let status = igd.status().await.unwrap();
    assert_eq!(status.status, ConnectionStatus::Connected);
    assert_eq!(status.uptime_secs, Some(4242));
    assert_eq!(
        igd.external_ip().await.unwrap(),
        Ipv4Addr::new(203, 0, 113, 7)
    );

    let grant = igd
        .add_port_mapping(&request(5900, 3600, "screen sharing"))
        .await
        .unwrap();
    assert_eq!(grant.external_port, 5900);
    assert_eq!(grant.lease, LeaseOutcome::AsRequested);
    assert_eq!(grant.lease_secs, 3600);
    assert_eq!(grant.description, "natkit 127.0.0.1 screen sharing");
    let back = grant.read_back.as_ref().expect("read back");
    assert_eq!(back.internal_client, "127.0.0.1");
    assert_eq!(back.internal_port, 5900);
    assert_eq!(back.description, grant.description);

    // The router's table holds exactly what natkit sent.
    assert_eq!(
        fake.table(),
        [Row {
            lease: 3600,
            ..Row::new(5900, "TCP", "127.0.0.1", "natkit 127.0.0.1 screen sharing")
        }]
    );
    let listed = igd.list_entries().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], *back);
    assert_eq!(
        igd.get_specific_entry(Protocol::Tcp, 5900).await.unwrap(),
        *back
    );

    igd.delete(Protocol::Tcp, 5900).await.unwrap();
    assert!(fake.table().is_empty());
    assert!(igd.list_entries().await.unwrap().is_empty());
    let again = igd.delete(Protocol::Tcp, 5900).await.unwrap_err();
    assert_eq!(again.upnp_code(), Some(UpnpErrorCode::NoSuchEntryInArray));
    let missing = igd
        .get_specific_entry(Protocol::Udp, 5900)
        .await
        .unwrap_err();
    assert_eq!(missing.upnp_code(), Some(UpnpErrorCode::NoSuchEntryInArray));
    // What the lease keeper acts on: the router holds no such mapping.
    for e in [again, missing] {
        let core: natkit_core::Error = e.into();
        assert_eq!(core.failure_kind(), Some(FailureKind::NoSuchMapping));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_only_router_gets_lease_zero() {
    let fake = FakeIgd::start(Behaviour::permanent_only()).await;
    let igd = discover(&fake.config()).await.unwrap();
    let grant = igd
        .add_port_mapping(&request(4500, 3600, ""))
        .await
        .unwrap();
    assert_eq!(grant.lease, LeaseOutcome::Permanent { requested: 3600 });
    assert_eq!(grant.lease_secs, 0);
    assert_eq!(fake.add_leases(), [3600, 0]);
    assert_eq!(fake.table()[0].lease, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_args_steps_down_to_a_lease_the_router_takes() {
    let fake = FakeIgd::start(Behaviour {
        max_lease: Some(86_400),
        ..Behaviour::default()
    })
    .await;
    let igd = discover(&fake.config()).await.unwrap();
    let grant = igd
        .add_port_mapping(&request(22, 1_000_000, "ssh"))
        .await
        .unwrap();
    assert_eq!(fake.add_leases(), [1_000_000, 604_800, 86_400]);
    assert_eq!(
        grant.lease,
        LeaseOutcome::Shortened {
            requested: 1_000_000,
            accepted: 86_400
        }
    );
    assert_eq!(grant.lease_secs, 86_400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_718_names_the_holder() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let holder = Row {
        int_port: 8443,
        ..Row::new(443, "TCP", "192.168.77.3", "upnpc 443 & more")
    };
    fake.insert(holder);
    let igd = discover(&fake.config()).await.unwrap();
    let err = igd
        .add_port_mapping(&request(443, 3600, "web"))
        .await
        .unwrap_err();
    let Error::Conflict {
        protocol,
        external_port,
        holder: Some(holder),
    } = &err
    else {
        panic!("expected a conflict naming the holder, got {err:?}");
    };
    assert_eq!((*protocol, *external_port), (Protocol::Tcp, 443));
    assert_eq!(holder.internal_client, "192.168.77.3");
    assert_eq!(holder.internal_port, 8443);
    assert_eq!(holder.description, "upnpc 443 & more");
    assert_eq!(
        err.to_string(),
        "443/tcp is already mapped to 192.168.77.3:8443 (\"upnpc 443 & more\")"
    );

    // Through the PortMapper trait it is a core Conflict carrying the same error.
    let mapper = UpnpMapper::new(igd);
    let req = MappingRequest::new(Protocol::Tcp, SocketAddr::from((LO, 443)));
    let core = mapper.map(&req).await.unwrap_err();
    assert_eq!(core.failure_kind(), Some(FailureKind::Conflict));
    assert!(!core.is_retryable());
    let natkit_core::Error::Mechanism {
        mechanism, source, ..
    } = &core
    else {
        panic!("not a mechanism error: {core:?}")
    };
    assert_eq!(*mechanism, Mechanism::Upnp);
    assert!(matches!(
        source.downcast_ref::<Error>(),
        Some(Error::Conflict { holder: Some(h), .. }) if h.internal_client == "192.168.77.3"
    ));
    // Nothing of ours was left in the table.
    assert_eq!(fake.table().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_removes_only_this_hosts_natkit_entries() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let ours_tcp = Row::new(5000, "TCP", "127.0.0.1", "natkit 127.0.0.1 old run");
    let ours_udp = Row::new(5001, "UDP", "127.0.0.1", "natkit 127.0.0.1");
    let others = [
        // Another natkit host on the LAN.
        Row::new(6000, "TCP", "192.168.77.3", "natkit 192.168.77.3 theirs"),
        // Not natkit, same host.
        Row::new(6001, "TCP", "127.0.0.1", "Skype"),
        // Tagged by this host but forwarding to another: not ours to touch.
        Row::new(6002, "UDP", "192.168.77.4", "natkit 127.0.0.1 for a friend"),
        // A look-alike tag.
        Row::new(6003, "TCP", "127.0.0.1", "natkitten 127.0.0.1"),
    ];
    fake.insert(ours_tcp.clone());
    for r in &others {
        fake.insert(r.clone());
    }
    fake.insert(ours_udp.clone());
    let igd = discover(&fake.config()).await.unwrap();
    let report = igd.cleanup(LO).await.unwrap();
    let removed: Vec<(u16, Protocol)> = report
        .removed
        .iter()
        .map(|e| (e.external_port, e.protocol))
        .collect();
    assert_eq!(removed, [(5000, Protocol::Tcp), (5001, Protocol::Udp)]);
    assert!(report.failed.is_empty());
    assert_eq!(report.others, others.len());
    assert_eq!(fake.table(), others);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapper_maps_renews_and_unmaps() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let mapper = UpnpMapper::discover(&fake.config()).await.unwrap();
    assert_eq!(mapper.mechanism(), Mechanism::Upnp);
    assert_eq!(mapper.name(), "upnp");
    assert_eq!(
        mapper.external_address().await.unwrap(),
        Ipv4Addr::new(203, 0, 113, 7)
    );
    // Unspecified internal address: the host as the IGD sees it.
    let req = MappingRequest::new(
        Protocol::Udp,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 4500)),
    )
    .with_lifetime(Duration::from_secs(1200))
    .with_description("ipsec");
    let m = mapper.map(&req).await.unwrap();
    assert_eq!(m.external, SocketAddr::from(([203, 0, 113, 7], 4500)));
    assert_eq!(m.internal, SocketAddr::from((LO, 4500)));
    assert_eq!(m.lifetime, Duration::from_secs(1200));
    assert_eq!(m.epoch, None);
    assert_eq!(m.mechanism, Mechanism::Upnp);
    assert!(!m.port_substituted(&req));
    assert_eq!(fake.table()[0].desc, "natkit 127.0.0.1 ipsec");

    let renewed = mapper.renew(&req, &m).await.unwrap();
    assert_eq!(renewed.external, m.external);
    assert_eq!(fake.table().len(), 1);
    assert_eq!(fake.add_leases(), [1200, 1200]);

    mapper.unmap(&renewed).await.unwrap();
    assert!(fake.table().is_empty());
    // Already gone counts as done.
    mapper.unmap(&renewed).await.unwrap();
}

/// The mapper stamps grants from tokio's clock, the one the lease keeper
/// compares them with: on a paused runtime, a grant made after an hour of
/// simulated time is an hour younger than one made at the start.
#[tokio::test(start_paused = true)]
async fn mapper_stamps_grants_from_tokios_clock() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let mapper = UpnpMapper::discover(&fake.config()).await.unwrap();
    let req = MappingRequest::new(Protocol::Udp, SocketAddr::from((LO, 4600)))
        .with_lifetime(Duration::from_secs(1200));
    let first = mapper.map(&req).await.unwrap();
    tokio::time::advance(Duration::from_secs(3600)).await;
    let before = tokio::time::Instant::now().into_std();
    let renewed = mapper.renew(&req, &first).await.unwrap();
    let after = tokio::time::Instant::now().into_std();
    assert!(
        (before..=after).contains(&renewed.obtained),
        "{:?} not in {before:?}..={after:?}",
        renewed.obtained
    );
    assert!(renewed.obtained - first.obtained >= Duration::from_secs(3600));
    mapper.unmap(&renewed).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_any_port_takes_another_port_on_igd2_only() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    fake.insert(Row::new(8080, "TCP", "192.168.77.3", "someone"));
    let igd = discover(&fake.config()).await.unwrap();
    let grant = igd
        .add_any_port_mapping(&request(8080, 600, "web"))
        .await
        .unwrap();
    assert_ne!(grant.external_port, 8080);
    assert_eq!(
        grant.read_back.as_ref().map(|e| e.internal_client.as_str()),
        Some("127.0.0.1")
    );
    // The mapper with no wanted port uses it on IGD:2.
    let mapper = UpnpMapper::new(igd);
    let req =
        MappingRequest::new(Protocol::Tcp, SocketAddr::from((LO, 8080))).with_external_port(None);
    let m = mapper.map(&req).await.unwrap();
    assert_ne!(m.external.port(), 8080);

    let v1 = FakeIgd::start(Behaviour {
        igd2: false,
        ..Behaviour::default()
    })
    .await;
    let igd1 = discover(&v1.config()).await.unwrap();
    assert_eq!(igd1.service(), WanServiceKind::WAN_IP1);
    let err = igd1
        .add_any_port_mapping(&request(8080, 600, "web"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::NotSupported {
            action: "AddAnyPortMapping",
            service: WanServiceKind::WAN_IP1
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconnected_igd_is_reported_not_used() {
    let fake = FakeIgd::start(Behaviour {
        status: "Disconnected".into(),
        ..Behaviour::default()
    })
    .await;
    let err = discover(&fake.config()).await.unwrap_err();
    match &err {
        Error::NotConnected {
            location,
            device,
            status,
        } => {
            assert_eq!(*location, format!("http://{}/rootDesc.xml", fake.http));
            assert_eq!(device, "Fake router");
            assert_eq!(*status, ConnectionStatus::Disconnected);
        }
        other => panic!("expected NotConnected, got {other:?}"),
    }
    assert_eq!(err.failure_kind(), FailureKind::NotConnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_igd_is_chosen_over_an_unconnected_one() {
    let good = FakeIgd::start(Behaviour::default()).await;
    let bad = FakeIgd::start(Behaviour {
        status: "Unconfigured".into(),
        extra_locations: vec![format!("http://{}/rootDesc.xml", good.http)],
        ..Behaviour::default()
    })
    .await;
    let igd = discover(&bad.config()).await.unwrap();
    assert_eq!(
        igd.location().addr,
        match good.http {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => unreachable!(),
        }
    );
}

/// On the paused clock: the search window is kept exactly.
#[tokio::test(start_paused = true)]
async fn nothing_answering_returns_within_the_timeout() {
    let fake = FakeIgd::start(Behaviour::no_igd()).await;
    for timeout in [
        Duration::from_millis(300),
        DiscoveryConfig::default().timeout,
    ] {
        let config = DiscoveryConfig {
            timeout,
            ..fake.config()
        };
        let start = tokio::time::Instant::now();
        let err = discover(&config).await.unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::NoResponse { .. }), "{err:?}");
        assert_eq!(took, timeout);
        assert_eq!(err.failure_kind(), FailureKind::Unavailable);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_description_is_refused() {
    for no_content_length in [false, true] {
        let fake = FakeIgd::start(Behaviour {
            description_size: Some(100 * 1024),
            no_content_length,
            ..Behaviour::default()
        })
        .await;
        let err = discover(&fake.config()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Http {
                    source: HttpError::BodyTooLarge { limit: 65536 },
                    ..
                }
            ),
            "{err:?}"
        );
        // A bigger limit lets the same description through.
        let mut config = fake.config();
        config.http.max_description = 128 * 1024;
        discover(&config).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_soap_answer_is_refused() {
    let big = FakeIgd::start(Behaviour {
        soap_size: Some(natkit_upnp::MAX_SOAP_RESPONSE),
        ..Behaviour::default()
    })
    .await;
    let igd_big = natkit_upnp::Igd::connect(
        &format!("http://{}/rootDesc.xml", big.http),
        &Default::default(),
    )
    .await
    .unwrap();
    for err in [
        igd_big.status().await.unwrap_err(),
        igd_big.external_ip().await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                Error::Http {
                    source: HttpError::BodyTooLarge { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

/// On the paused clock (the fake trickles on tokio timers too).
#[tokio::test(start_paused = true)]
async fn trickling_description_times_out_within_its_bound() {
    let fake = FakeIgd::start(Behaviour {
        trickle: Some(Duration::from_millis(50)),
        ..Behaviour::default()
    })
    .await;
    let mut config = fake.config();
    config.timeout = Duration::from_millis(200);
    config.http.description_timeout = Duration::from_millis(500);
    let start = tokio::time::Instant::now();
    let err = discover(&config).await.unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(
            err,
            Error::Http {
                source: HttpError::Timeout { ms: 500 },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.failure_kind(), FailureKind::Timeout);
    // The description fetch starts at once (the fake answers the first search)
    // and is cut at its own limit.
    assert_eq!(took, Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locations_off_the_gateway_are_refused() {
    let cases = [
        (
            "http://10.9.8.7:5000/rootDesc.xml",
            LocationRefusal::OutsideSubnet,
        ),
        (
            "http://127.0.0.2:5000/rootDesc.xml",
            LocationRefusal::NotGateway,
        ),
    ];
    for (location, reason) in cases {
        let fake = FakeIgd::start(Behaviour {
            location: Some(location.into()),
            ..Behaviour::default()
        })
        .await;
        let err = discover(&fake.config()).await.unwrap_err();
        match &err {
            Error::LocationRefused {
                location: l,
                reason: r,
                gateway,
            } => {
                assert_eq!(l, location);
                assert_eq!(*r, reason);
                assert_eq!(*gateway, LO);
            }
            other => panic!("expected LocationRefused for {location}, got {other:?}"),
        }
    }

    // Loopback itself needs the opt-in.
    let fake = FakeIgd::start(Behaviour::default()).await;
    let config = DiscoveryConfig {
        allow_loopback: false,
        ..fake.config()
    };
    let err = discover(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::LocationRefused {
                reason: LocationRefusal::Loopback,
                ..
            }
        ),
        "{err:?}"
    );
    // Nothing was fetched from the refused location.
    assert!(fake.state.lock().unwrap().actions.is_empty());
    // With the opt-in, the same fake is used (and fetched from).
    discover(&fake.config()).await.unwrap();
    assert_eq!(
        fake.state
            .lock()
            .unwrap()
            .actions
            .first()
            .map(String::as_str),
        Some("GET")
    );
}
