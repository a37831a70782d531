//! A new IPv6 prefix under a `PortLease::builder(..).ipv6()` lease, in the
//! dual-stack lab with miniupnpd: a helper in the LAN host holds two leases (the
//! default order, PCP first, and UPnP IGD) for its static stable address
//! 2a0d:88:77:77::2 and serves "pong" on `[::]`. The test then renumbers the LAN as an ISP would: the
//! router gets 2a0d:88:77:79::1/64 beside the old prefix (and the internet a route
//! to it), the LAN host stops taking prefixes from advertisements, loses every
//! address of the old prefix and gets 2a0d:88:77:79::2. Within its address check
//! (1 s here) each lease opens a pinhole for the new address: the outside peer gets
//! through to it, and after the leases are closed no more. The old pinhole cannot be
//! deleted from an address the host no longer has; it lapses with its lease.
//! Root only; fails, never skips, without it.

mod lab_support;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use lab_support::{Helper, from_peer, open_pong_leases, pinholes, wait_for_line};
use natkit::{LeaseEvent, PortLeaseBuilder};
use natkit_lab::{Lab, NatKind};

const HELPER: &str = "lan_side_renumbered_lease";
/// The PCP lease's port, and the UPnP one's.
const PORTS: [u16; 2] = [18310, 18311];
const NEW_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x79, 0, 0, 0, 0);
const NEW: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x79, 0, 0, 0, 2);

#[test]
#[ignore = "helper: runs inside the dual-stack lab's LAN host, started by a_new_prefix_moves_the_pinhole"]
fn lan_side_renumbered_lease() {
    let addrs = natkit_lab::helper_addrs(HELPER)
        .expect("lab env")
        .expect("in the lab");
    let v6 = addrs.v6.expect("a dual-stack lab");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let bind = |port| SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        let check_often = |b: PortLeaseBuilder| b.address_check_interval(Duration::from_secs(1));
        let mut leases = Vec::new();
        for lease in open_pong_leases(PORTS, bind, v6.lan, check_often).await {
            println!("LEASE {}", lease.external().expect("in force"));
            leases.push((lease.events(), lease));
        }
        println!("HOLDING");
        let started = Instant::now();
        for (events, lease) in &mut leases {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("an event within 30 s")
                .expect("the lease is kept");
            let LeaseEvent::Renumbered {
                old,
                new,
                mapping,
                old_deleted,
            } = event
            else {
                panic!("renumbered: {event:?}")
            };
            assert_eq!(old, v6.lan);
            assert_eq!(mapping.external.ip(), IpAddr::V6(new.address));
            assert_eq!(lease.external().as_ref(), Some(&*mapping));
            println!(
                "RENUMBERED {old} -> {new} via {} after {} ms; old deleted: {old_deleted:?}",
                mapping.mechanism,
                started.elapsed().as_millis()
            );
            println!("MOVED {} {}", mapping.mechanism, new.address);
        }
        println!("MOVED-ALL");
        wait_for_line().await;
        for (_, lease) in leases {
            lease.close().await.expect("closed");
        }
        println!("CLOSED");
        wait_for_line().await;
    });
}

#[test]
fn a_new_prefix_moves_the_pinhole() {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .up();
    let v6 = lab.addrs().v6.expect("IPv6");
    let mut helper = Helper::spawn(&lab, HELPER, Duration::from_secs(40));
    helper.wait_for("HOLDING");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, v6.lan, port).trim(),
            "pong",
            "{}",
            pinholes(&lab)
        );
    }

    // The ISP's new prefix (natkit_lab::Lab::renumber_lan_v6 says how).
    let new = lab.renumber_lan_v6(NEW_PREFIX).expect("renumber the LAN");
    assert_eq!(new, NEW);
    for mechanism in ["pcp", "upnp"] {
        let moved = helper.wait_for("MOVED ");
        assert_eq!(moved, format!("MOVED {mechanism} {NEW}"));
    }
    helper.wait_for("MOVED-ALL");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, NEW, port).trim(),
            "pong",
            "port {port} through the new pinhole; the router's pinholes: {}",
            pinholes(&lab)
        );
    }
    // The old pinhole could not be deleted from an address the host no longer
    // has: it stays on the router until its lease ends.
    // (nft lists the rule's address match as raw payload: the address in hex.)
    let hex = |a: Ipv6Addr| -> String { a.octets().iter().map(|b| format!("{b:02x}")).collect() };
    let chain = pinholes(&lab);
    assert!(chain.contains(&hex(v6.lan)), "{chain}");
    assert!(chain.contains(&hex(NEW)), "{chain}");
    helper.go(); // close
    helper.wait_for("CLOSED");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, NEW, port),
            "",
            "port {port} after close: {}",
            pinholes(&lab)
        );
    }
    helper.finish();
    lab.down().expect("down");
}
