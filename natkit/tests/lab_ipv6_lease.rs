//! `PortLease::builder(..).ipv6()` in the dual-stack lab: a helper in the LAN host
//! opens two IPv6 leases (PCP, the default order's first, and UPnP IGD), each a
//! pinhole for the host's static stable address rather than the temporary one its
//! outbound traffic uses, and serves "pong" on both ports. The outside peer gets
//! through both while the leases live; a router restart (miniupnpd forgets every
//! pinhole) shuts it out until the leases' keeper opens both again at its next
//! renewal (PCP: a new epoch; UPnP: AddPinhole again); once the leases are closed
//! the router's firewall drops it. Root only; fails, never skips, without it.

mod lab_support;

use std::net::SocketAddr;
use std::time::Duration;

use lab_support::{Helper, from_peer, open_pong_leases, pinholes, wait_for_line};
use natkit::core::StableReason;
use natkit::{KeeperConfig, Mechanism, PortLease, PortLeaseBuilder};
use natkit_lab::{Lab, NatKind};

const HELPER: &str = "lan_side_ipv6_leases";
/// The PCP lease's port, and the UPnP one's.
const PORTS: [u16; 2] = [18300, 18301];

#[test]
#[ignore = "helper: runs inside the dual-stack lab's LAN host, started by ipv6_leases_open_pinholes"]
fn lan_side_ipv6_leases() {
    let addrs = natkit_lab::helper_addrs(HELPER)
        .expect("lab env")
        .expect("in the lab");
    let v6 = addrs.v6.expect("a dual-stack lab");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // Renewed every 6 s (5 % of 120 s), so the restart is seen soon.
        let renew_soon = |b: PortLeaseBuilder| {
            b.keeper_config(KeeperConfig {
                renew_fraction: 0.05,
                ..KeeperConfig::default()
            })
        };
        let bind = |port| SocketAddr::from((v6.lan, port));
        let leases = open_pong_leases(PORTS, bind, v6.lan, renew_soon).await;
        for (lease, port) in leases.iter().zip(PORTS) {
            let choice = lease.ipv6_address().expect("the address choice");
            assert_eq!(choice.reason, StableReason::Static, "{choice}");
            assert!(
                choice.kernel_source.is_some_and(|s| s != v6.lan),
                "outbound traffic uses another (temporary) address: {choice}"
            );
            let m = lease.external().expect("in force");
            assert!(m.is_pinhole(), "{m}");
            assert_eq!(m.external, SocketAddr::from((v6.lan, port)), "{m}");
            println!("LEASE {m} ({choice})");
        }
        assert_eq!(
            leases.iter().map(PortLease::mechanism).collect::<Vec<_>>(),
            [Some(Mechanism::Pcp), Some(Mechanism::Upnp)]
        );
        println!("HOLDING");
        wait_for_line().await; // the router has restarted
        let restarted = std::time::Instant::now();
        for lease in &leases {
            let mut watch = lease.watch();
            watch.borrow_and_update();
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    watch.changed().await.expect("the lease is kept");
                    if watch.borrow_and_update().is_some() {
                        return;
                    }
                }
            })
            .await
            .expect("re-opened within 20 s of the restart");
            let m = lease.external().expect("in force");
            println!("REOPENED {m} after {} ms", restarted.elapsed().as_millis());
        }
        println!("REOPENED-ALL");
        wait_for_line().await;
        for lease in leases {
            lease.close().await.expect("closed");
        }
        println!("CLOSED");
        // Still listening: the peer's next attempt shows the firewall, not a
        // missing listener.
        wait_for_line().await;
    });
}

#[test]
fn ipv6_leases_open_pinholes() {
    let mut lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .up();
    let lan = lab.addrs().v6.expect("IPv6").lan;
    let mut helper = Helper::spawn(&lab, HELPER, Duration::from_secs(30));
    helper.wait_for("HOLDING");
    for port in PORTS {
        assert_eq!(from_peer(&lab, lan, port).trim(), "pong", "port {port}");
    }
    lab.restart_miniupnpd().expect("restart miniupnpd");
    helper.go(); // restarted
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, lan, port),
            "",
            "port {port} after the restart"
        );
    }
    helper.wait_for("REOPENED-ALL");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, lan, port).trim(),
            "pong",
            "port {port} re-opened; the router's pinholes: {}",
            pinholes(&lab)
        );
    }
    helper.go(); // release
    helper.wait_for("CLOSED");
    for port in PORTS {
        assert_eq!(from_peer(&lab, lan, port), "", "port {port} after close");
    }
    helper.finish();
    lab.down().expect("down");
}
