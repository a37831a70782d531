//! The lab proof of the three mappers — UPnP, NAT-PMP and PCP — against
//! miniupnpd (root only; fails, never skips, without it). It lives here, with
//! natkit-pmp as a dev-dependency, so one helper serves all three (as in
//! `lab_keeper.rs`). The steps are `natkit_lab::prove_lifecycle`: a TCP and a
//! UDP mapping for echo servers on the LAN host carry a real exchange with the
//! wan peer; renewal keeps the external port and refreshes the lease in
//! miniupnpd's own listing; delete leaves no entry and no nft rule of ours on
//! the router. The mapper runs in the LAN as the helper `proof_lan_side`.
//! (`tests/lab.rs` covers conflicts, lease clamping and cleanup;
//! natkit-pmp's `tests/lab.rs` substitution and the epoch reset.)

mod lab_mappers;

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{Mapping, MappingRequest, Protocol};
use natkit_lab::{
    Lab, MappedLine, Node, PROOF_TCP_PORT, PROOF_UDP_PORT, prove_lifecycle, serve_commands,
    spawn_echo,
};

use lab_mappers::{line, mapper};

/// Asked lifetime. miniupnpd grants UPnP leases as asked (up to 604800 s) and
/// NAT-PMP/PCP at least its `min_lifetime` (120 s).
const LIFETIME: Duration = Duration::from_secs(600);

#[test]
#[ignore = "helper process body; upnp_/natpmp_/pcp_lab_proof run it in the LAN"]
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
    let m = rt.block_on(mapper(&mech, a.rtr_lan));
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

/// Runs the proof for `mech`; `lease_ok` judges each granted lease.
fn lab_proof(mech: &str, lease_ok: impl Fn(&MappedLine) -> bool) {
    natkit_lab::require_root();
    let lab = Lab::builder().miniupnpd(true).build().expect("lab up");
    let mut helper = lab
        .helper_session(Node::Lan, "proof_lan_side", &[("MECH", mech)])
        .expect("helper");
    let report = prove_lifecycle(&lab, &mut helper, Duration::from_secs(4));
    println!("{mech}: {report:?}");
    for m in &report.mapped {
        // Both ports were free: granted as asked.
        assert_eq!(m.external.port(), m.internal.port(), "{m}");
        assert!(lease_ok(m), "{mech}: lease of {m}");
    }
    assert!(
        helper.finish(Duration::from_secs(10)).expect("helper exit"),
        "helper failed"
    );
}

#[test]
fn upnp_lab_proof() {
    // The lease reported is what the router reads back: the remaining one,
    // so a second may be gone.
    lab_proof("upnp", |m| {
        (LIFETIME.as_secs() - 2..=LIFETIME.as_secs()).contains(&m.lifetime_secs)
    });
}

#[test]
fn natpmp_lab_proof() {
    lab_proof("natpmp", |m| m.lifetime_secs == LIFETIME.as_secs());
}

#[test]
fn pcp_lab_proof() {
    lab_proof("pcp", |m| m.lifetime_secs == LIFETIME.as_secs());
}
