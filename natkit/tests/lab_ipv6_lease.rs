//! `PortLease::builder(..).ipv6()` in the dual-stack lab: a helper in the LAN host
//! opens two IPv6 leases (PCP, the default order's first, and UPnP IGD), each a
//! pinhole for the host's static stable address rather than the temporary one its
//! outbound traffic uses, and serves "pong" on both ports. The outside peer gets
//! through both while the leases live and is dropped by the router's firewall once
//! they are closed. Root only; fails, never skips, without it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use natkit::core::StableReason;
use natkit::{Mechanism, PortLease, Protocol};
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto};
use tokio::io::AsyncWriteExt;

const HELPER: &str = "lan_side_ipv6_leases";
/// The PCP lease's port, and the UPnP one's.
const PORTS: [u16; 2] = [18300, 18301];

/// Answers "pong" to every connection on `addr`.
async fn serve_pong(addr: SocketAddr) {
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.write_all(b"pong\n").await;
    }
}

fn wait_for_line() {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("stdin");
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
            tokio::spawn(serve_pong(SocketAddr::from((v6.lan, port))));
            let mut builder = PortLease::builder(Protocol::Tcp, port)
                .ipv6()
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
        wait_for_line();
        for lease in leases {
            lease.close().await.expect("closed");
        }
        println!("CLOSED");
        // Still listening: the peer's next attempt shows the firewall, not a
        // missing listener.
        wait_for_line();
    });
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
    natkit_lab::require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .build()
        .expect("lab");
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
