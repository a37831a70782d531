//! `PortLease::builder(..).ipv6()` in the dual-stack lab: a helper in the LAN host
//! opens two IPv6 leases (PCP, the default order's first, and UPnP IGD), each a
//! pinhole for the host's static stable address rather than the temporary one its
//! outbound traffic uses, and serves "pong" on both ports. The outside peer gets
//! through both while the leases live; a router restart (miniupnpd forgets every
//! pinhole) shuts it out until the leases' keeper opens both again at its next
//! renewal (PCP: a new epoch; UPnP: AddPinhole again); once the leases are closed
//! the router's firewall drops it. Root only; fails, never skips, without it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use natkit::core::StableReason;
use natkit::{KeeperConfig, Mechanism, PortLease, Protocol};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HELPER: &str = "lan_side_ipv6_leases";
/// The PCP lease's port, and the UPnP one's.
const PORTS: [u16; 2] = [18300, 18301];

/// Answers "pong" to every connection on `listener`, after reading the request to
/// its end: closing with the peer's "ping" unread would reset the connection, and
/// the reset can discard the answer before the peer reads it.
async fn serve_pong(listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = Vec::new();
            let read = s.read_to_end(&mut request);
            if tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .is_ok()
            {
                let _ = s.write_all(b"pong\n").await;
                let _ = s.shutdown().await;
            }
        });
    }
}

/// The parent's next go-ahead (a line on stdin).
async fn wait_for_line() {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).expect("stdin");
    })
    .await
    .expect("stdin reader");
}

#[test]
#[ignore = "helper: runs inside the dual-stack lab's LAN host, started by ipv6_leases_open_pinholes"]
fn lan_side_ipv6_leases() {
    let addrs = natkit_lab::helper_addrs(HELPER)
        .expect("lab env")
        .expect("in the lab");
    let v6 = addrs.v6.expect("a dual-stack lab");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut leases = Vec::new();
        for (port, order) in PORTS.into_iter().zip([None, Some(Mechanism::Upnp)]) {
            let listener = tokio::net::TcpListener::bind(SocketAddr::from((v6.lan, port)))
                .await
                .expect("bind the listener");
            tokio::spawn(serve_pong(listener));
            // Renewed every 6 s (5 % of 120 s), so the restart is seen soon.
            let mut builder = PortLease::builder(Protocol::Tcp, port)
                .ipv6()
                .lifetime(Duration::from_secs(120))
                .keeper_config(KeeperConfig {
                    renew_fraction: 0.05,
                    ..KeeperConfig::default()
                })
                .without_journal();
            if let Some(m) = order {
                builder = builder.mechanisms([m]);
            }
            let lease = builder.open().await.expect("an IPv6 lease");
            let choice = lease.ipv6_address().expect("the address choice");
            assert_eq!(choice.address, v6.lan, "{choice}");
            assert_eq!(choice.reason, StableReason::Static, "{choice}");
            assert!(
                choice.kernel_source.is_some_and(|s| s != v6.lan),
                "outbound traffic uses another (temporary) address: {choice}"
            );
            let m = lease.external().expect("in force");
            assert!(m.is_pinhole(), "{m}");
            assert_eq!(m.external, SocketAddr::from((v6.lan, port)), "{m}");
            println!("LEASE {m} ({choice})");
            leases.push(lease);
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

/// miniupnpd's pinhole rules (its chain in the router's `inet filter` table).
fn pinholes(lab: &Lab) -> String {
    lab.exec_ok(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "miniupnpd"],
    )
    .unwrap_or_else(|e| e.to_string())
}

/// What the peer gets back from `addr`:`port` ("pong", or nothing when dropped).
fn from_peer(lab: &Lab, addr: Ipv6Addr, port: u16) -> String {
    lab.exchange(
        Node::Wan,
        Proto::Tcp,
        SocketAddr::from((addr, port)),
        "ping",
    )
    .expect("nc")
}

#[test]
fn ipv6_leases_open_pinholes() {
    let mut lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .up();
    let lan = lab.addrs().v6.expect("IPv6").lan;
    let mut cmd = lab.test_helper(Node::Lan, HELPER).expect("helper");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = LabChild::spawn(&mut cmd).expect("spawn helper");
    let stdout = child.child_mut().stdout.take().expect("stdout");
    let mut stdin = child.child_mut().stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("helper: {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_for = |mark: &str| loop {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if line.contains(mark) => return,
            Ok(_) => {}
            Err(e) => panic!("the helper never printed {mark}: {e}"),
        }
    };
    wait_for("HOLDING");
    for port in PORTS {
        assert_eq!(from_peer(&lab, lan, port).trim(), "pong", "port {port}");
    }
    lab.restart_miniupnpd().expect("restart miniupnpd");
    stdin.write_all(b"\n").expect("restarted");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, lan, port),
            "",
            "port {port} after the restart"
        );
    }
    wait_for("REOPENED-ALL");
    for port in PORTS {
        assert_eq!(
            from_peer(&lab, lan, port).trim(),
            "pong",
            "port {port} re-opened; the router's pinholes: {}",
            pinholes(&lab)
        );
    }
    stdin.write_all(b"\n").expect("release");
    wait_for("CLOSED");
    for port in PORTS {
        assert_eq!(from_peer(&lab, lan, port), "", "port {port} after close");
    }
    stdin.write_all(b"\n").expect("finish");
    drop(stdin);
    let status = child
        .wait_timeout(Duration::from_secs(10))
        .expect("wait")
        .expect("the helper exits");
    assert!(status.success(), "{status:?}");
    lab.down().expect("down");
}
