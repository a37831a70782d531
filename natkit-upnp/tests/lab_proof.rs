//! The lab proof of the UPnP mapper against miniupnpd (root only; fails, never
//! skips, without it), the same steps as natkit-pmp's NAT-PMP and PCP proof
//! (`natkit_lab::prove_lifecycle`): a TCP and a UDP mapping for echo servers on
//! the LAN host, found by real discovery, carry a real exchange with the wan
//! peer; renewal keeps the external port and refreshes the lease in
//! miniupnpd's own listing; delete leaves no entry and no nft rule of ours.
//! (`tests/lab.rs` covers conflicts, lease clamping and cleanup.)

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{Mapping, MappingRequest, PortMapper, Protocol};
use natkit_lab::{
    Lab, MappedLine, Node, PROOF_TCP_PORT, PROOF_UDP_PORT, Proto, prove_lifecycle, serve_commands,
    spawn_echo,
};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};

/// Asked lifetime (miniupnpd grants it as asked, up to 604800 s).
const LIFETIME: Duration = Duration::from_secs(600);

fn line(m: &Mapping) -> MappedLine {
    MappedLine {
        proto: match m.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
        },
        external: m.external,
        internal: m.internal,
        lifetime_secs: m.lifetime.as_secs(),
    }
}

#[test]
#[ignore = "helper process body; upnp_lab_proof runs it in the LAN"]
fn proof_lan_side() {
    let Some(a) = natkit_lab::helper_addrs("proof_lan_side").expect("lab env") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    spawn_echo(PROOF_TCP_PORT, PROOF_UDP_PORT).expect("echo servers");
    // The real defaults: gateway lookup, unicast and multicast SSDP.
    let m = rt
        .block_on(UpnpMapper::discover(&DiscoveryConfig::default()))
        .expect("discover");
    let reqs = [
        (Protocol::Tcp, PROOF_TCP_PORT),
        (Protocol::Udp, PROOF_UDP_PORT),
    ]
    .map(|(p, port)| {
        MappingRequest::new(p, SocketAddr::from((a.lan, port))).with_lifetime(LIFETIME)
    });
    let mut held: Vec<Mapping> = reqs
        .iter()
        .map(|r| rt.block_on(m.map(r)).expect("map"))
        .collect();
    for h in &held {
        println!("MAPPED {}", line(h));
    }
    serve_commands(|cmd| match cmd {
        "renew" => reqs
            .iter()
            .zip(held.iter_mut())
            .map(|(r, h)| {
                *h = rt.block_on(m.renew(r, h)).expect("renew");
                format!("RENEWED {}", line(h))
            })
            .collect(),
        "delete" => {
            for h in &held {
                rt.block_on(m.unmap(h)).expect("unmap");
            }
            vec!["DELETED".to_owned()]
        }
        other => panic!("unknown command {other:?}"),
    });
}

#[test]
fn upnp_lab_proof() {
    natkit_lab::require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let mut helper = lab
        .helper_session(Node::Lan, "proof_lan_side", &[])
        .expect("helper");
    let report = prove_lifecycle(&lab, &mut helper, Duration::from_secs(4));
    println!("upnp: {report:?}");
    for m in &report.mapped {
        // Both ports were free: granted as asked. The lease reported is
        // what the router reads back (the remaining one: a second may be gone).
        assert_eq!(m.external.port(), m.internal.port(), "{m}");
        assert!(
            (LIFETIME.as_secs() - 2..=LIFETIME.as_secs()).contains(&m.lifetime_secs),
            "{m}"
        );
    }
    assert!(
        helper.finish(Duration::from_secs(10)).expect("helper exit"),
        "helper failed"
    );
}
