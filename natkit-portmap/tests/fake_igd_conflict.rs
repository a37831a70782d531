//! The combinator against the fake IGD on loopback: when every
//! mechanism fails, the error still carries each one's typed error, so a
//! UPnP 718 names the LAN host that holds the port.

use std::net::SocketAddr;

use natkit_core::{FailureKind, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_portmap::{AutoMapper, Error, PortMapConfig};
use natkit_testkit::igd::{Behaviour, FakeIgd, Row};
use natkit_testkit::loopback_gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_failed_keeps_the_upnp_718_holder() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    fake.insert(Row {
        int_port: 8443,
        ..Row::new(443, "TCP", "192.168.77.3", "another host's server")
    });
    let auto = AutoMapper::new(PortMapConfig {
        gateway: Some(loopback_gateway()),
        order: vec![Mechanism::Upnp],
        upnp: fake.config(),
        ..PortMapConfig::default()
    });
    let request = MappingRequest::new(Protocol::Tcp, SocketAddr::from(([127, 0, 0, 1], 443)));
    let err = auto.map(&request).await.unwrap_err();
    assert_eq!(err.failure_kind(), Some(FailureKind::Conflict), "{err:?}");

    let mechanism = match &err {
        natkit_core::Error::Mechanism { mechanism, .. } => Some(*mechanism),
        _ => None,
    };
    assert_eq!(mechanism, Some(Mechanism::Upnp), "{err:?}");
    let Some(Error::AllFailed { attempts }) = err.downcast_source::<Error>() else {
        panic!("not every mechanism failed: {err:?}")
    };
    let [(Mechanism::Upnp, upnp)] = &attempts[..] else {
        panic!("{attempts:?}")
    };
    assert_eq!(upnp.kind, FailureKind::Conflict);
    let Some(natkit_upnp::Error::Conflict {
        protocol,
        external_port,
        holder: Some(holder),
    }) = upnp.downcast::<natkit_upnp::Error>()
    else {
        panic!("the UPnP attempt lost its typed error: {upnp:?}")
    };
    assert_eq!((*protocol, *external_port), (Protocol::Tcp, 443));
    assert_eq!(holder.internal_client, "192.168.77.3");
    assert_eq!(holder.internal_port, 8443);
    assert_eq!(holder.description, "another host's server");
    // The line says the same, for those who only read it.
    assert!(
        err.to_string()
            .contains("already mapped to 192.168.77.3:8443"),
        "{err}"
    );
    // The other host's entry is untouched and nothing of ours was added.
    assert_eq!(fake.table().len(), 1);
    assert_eq!(fake.table()[0].client, "192.168.77.3");
}
