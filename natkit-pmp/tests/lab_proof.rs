//! The lab proof of NAT-PMP and PCP against miniupnpd (root only; fails, never
//! skips, without it): for each, a TCP and a UDP mapping for echo servers on the
//! LAN host carry a real exchange with the wan peer, renewal keeps the external
//! port and refreshes the lease in miniupnpd's own listing, and delete leaves
//! no entry and no nft rule of ours on the router. The steps are
//! `natkit_lab::prove_lifecycle`; the mapper runs in the LAN as the helper
//! `proof_lan_side`. (`tests/lab.rs` covers substitution and the epoch reset.)

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use natkit_core::{Mapping, MappingRequest, PortMapper, Protocol};
use natkit_lab::{
    Lab, MappedLine, Node, PROOF_TCP_PORT, PROOF_UDP_PORT, Proto, prove_lifecycle, serve_commands,
    spawn_echo,
};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};

/// Asked lifetime. miniupnpd grants at least its `min_lifetime` (120 s) to PCP.
const LIFETIME: Duration = Duration::from_secs(600);

fn mapper(mech: &str, gateway: Ipv4Addr) -> Box<dyn PortMapper> {
    match mech {
        "natpmp" => Box::new(NatPmpMapper::new(gateway, NatPmpConfig::default())),
        "pcp" => Box::new(PcpMapper::new(
            gateway,
            PcpConfig {
                fallback_to_natpmp: false,
                ..PcpConfig::default()
            },
        )),
        other => panic!("unknown mechanism {other}"),
    }
}

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
#[ignore = "helper process body; natpmp_/pcp_lab_proof run it in the LAN"]
fn proof_lan_side() {
    let Some(a) = natkit_lab::helper_addrs("proof_lan_side").expect("lab env") else {
        return;
    };
    let mech = std::env::var("MECH").expect("MECH");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    spawn_echo(PROOF_TCP_PORT, PROOF_UDP_PORT).expect("echo servers");
    let m = mapper(&mech, a.rtr_lan);
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

fn lab_proof(mech: &str) {
    natkit_lab::require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let mut helper = lab
        .helper_session(Node::Lan, "proof_lan_side", &[("MECH", mech)])
        .expect("helper");
    let report = prove_lifecycle(&lab, &mut helper, Duration::from_secs(4));
    println!("{mech}: {report:?}");
    for m in &report.mapped {
        // Both ports were free: granted as asked, for the asked lifetime.
        assert_eq!(m.external.port(), m.internal.port(), "{m}");
        assert_eq!(m.lifetime_secs, LIFETIME.as_secs(), "{m}");
    }
    assert!(
        helper.finish(Duration::from_secs(10)).expect("helper exit"),
        "helper failed"
    );
}

#[test]
fn natpmp_lab_proof() {
    lab_proof("natpmp");
}

#[test]
fn pcp_lab_proof() {
    lab_proof("pcp");
}
