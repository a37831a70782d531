//! Which mechanisms an IPv6 pinhole request goes to.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6};

use natkit_core::{FailureKind, Gateway, Mechanism, PortMapper, Protocol};

use super::*;
use crate::DEFAULT_ORDER;
use crate::error::Error;

fn config(order: Vec<Mechanism>) -> PortMapConfig {
    PortMapConfig {
        // Loopback: nothing in these tests may leave the host.
        gateway: Some(Gateway {
            interface: "lo".into(),
            address: Ipv4Addr::LOCALHOST,
            local_address: Ipv4Addr::LOCALHOST,
            prefix_len: 8,
            address_v6: None,
            local_v6: Vec::new(),
        }),
        ..PortMapConfig::default()
    }
    .with_order(order)
}

fn pinhole() -> MappingRequest {
    let addr: SocketAddrV6 = "[2a0d:88:77:77::2]:8080".parse().unwrap();
    MappingRequest::pinhole(Protocol::Tcp, addr)
}

#[test]
fn pinholes_go_to_pcp_and_upnp_in_the_configured_order() {
    let v4 = MappingRequest::new(Protocol::Tcp, SocketAddr::from(([192, 168, 77, 2], 8080)));
    let auto = AutoMapper::new(config(DEFAULT_ORDER.to_vec()));
    assert_eq!(
        auto.order_for(&pinhole()),
        [Mechanism::Pcp, Mechanism::Upnp]
    );
    assert_eq!(auto.order_for(&v4), DEFAULT_ORDER);
    let auto = AutoMapper::new(config(vec![
        Mechanism::Upnp,
        Mechanism::NatPmp,
        Mechanism::Pcp,
    ]));
    assert_eq!(
        auto.order_for(&pinhole()),
        [Mechanism::Upnp, Mechanism::Pcp]
    );
}

/// With only NAT-PMP there is nothing to ask: the typed error says why,
/// at once, and nothing is sent (no detection is started).
#[tokio::test]
async fn natpmp_alone_refuses_a_pinhole_and_says_why() {
    let auto = AutoMapper::new(config(vec![Mechanism::NatPmp]));
    let err = auto.map(&pinhole()).await.unwrap_err();
    assert_eq!(err.failure_kind(), Some(FailureKind::Unsupported));
    let natkit_core::Error::Mechanism { source, .. } = &err else {
        panic!("{err:?}")
    };
    match source.downcast_ref::<Error>() {
        Some(Error::AllFailed { attempts }) => {
            let [(Mechanism::NatPmp, e)] = &attempts[..] else {
                panic!("{attempts:?}")
            };
            assert_eq!(e.kind, FailureKind::Unsupported);
            assert_eq!(e.message, PINHOLE_SKIP_NATPMP);
            assert!(
                matches!(
                    e.downcast::<natkit_pmp::Error>(),
                    Some(natkit_pmp::Error::NatPmpNoIpv6 { .. })
                ),
                "{e:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        lock(&auto.inner.detection).is_none(),
        "nothing was detected"
    );
}
