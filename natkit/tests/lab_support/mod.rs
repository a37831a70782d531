//! What natkit's IPv6 lease lab tests share: the LAN helper's "pong" server and
//! its go-ahead from the parent, the parent's view of the helper's output, and the
//! outside peer's attempt.
#![allow(dead_code)] // each test crate uses its own part

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use natkit::{Mechanism, PortLease, PortLeaseBuilder, Protocol};
use natkit_lab::{Lab, LabChild, Node, Proto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers "pong" to every connection on `listener`, after reading the request to
/// its end: closing with the peer's "ping" unread would reset the connection, and
/// the reset can discard the answer before the peer reads it.
pub(crate) async fn serve_pong(listener: tokio::net::TcpListener) {
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

/// In the helper: one IPv6 lease for each of `ports`, the first in the default
/// order (PCP first) and the second through UPnP only, each with a "pong"
/// listener bound at `bind(port)` and a 120 s lifetime, without a journal;
/// `tune` adds what the test needs. Each must be for `stable`, the host's
/// static stable address.
pub(crate) async fn open_pong_leases(
    ports: [u16; 2],
    bind: impl Fn(u16) -> SocketAddr,
    stable: Ipv6Addr,
    tune: impl Fn(PortLeaseBuilder) -> PortLeaseBuilder,
) -> Vec<PortLease> {
    let mut leases = Vec::new();
    for (port, order) in ports.into_iter().zip([None, Some(Mechanism::Upnp)]) {
        let listener = tokio::net::TcpListener::bind(bind(port))
            .await
            .expect("bind the listener");
        tokio::spawn(serve_pong(listener));
        let mut builder = tune(
            PortLease::builder(Protocol::Tcp, port)
                .ipv6()
                .lifetime(Duration::from_secs(120))
                .without_journal(),
        );
        if let Some(m) = order {
            builder = builder.mechanisms([m]);
        }
        let lease = builder.open().await.expect("an IPv6 lease");
        let choice = lease.ipv6_address().expect("the address choice");
        assert_eq!(choice.address, stable, "{choice}");
        leases.push(lease);
    }
    leases
}

/// In the helper: the parent's next go-ahead (a line on stdin).
pub(crate) async fn wait_for_line() {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).expect("stdin");
    })
    .await
    .expect("stdin reader");
}

/// What the peer gets back from `addr`:`port` ("pong", or nothing when dropped).
pub(crate) fn from_peer(lab: &Lab, addr: Ipv6Addr, port: u16) -> String {
    lab.exchange(
        Node::Wan,
        Proto::Tcp,
        SocketAddr::from((addr, port)),
        "ping",
    )
    .expect("nc")
}

/// miniupnpd's pinhole rules (its chain in the router's `inet filter` table).
pub(crate) fn pinholes(lab: &Lab) -> String {
    lab.exec_ok(
        Node::Rtr,
        &["nft", "list", "chain", "inet", "filter", "miniupnpd"],
    )
    .unwrap_or_else(|e| e.to_string())
}

/// A helper running in the LAN host, seen from the parent: its output line by
/// line (echoed), and its stdin for go-aheads.
pub(crate) struct Helper {
    child: LabChild,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    patience: Duration,
}

impl Helper {
    /// Starts the test helper `name` in the LAN host; [`wait_for`](Self::wait_for)
    /// waits at most `patience` for each line.
    pub(crate) fn spawn(lab: &Lab, name: &str, patience: Duration) -> Helper {
        let mut cmd = lab.test_helper(Node::Lan, name).expect("helper");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = LabChild::spawn(&mut cmd).expect("spawn helper");
        let stdout = child.child_mut().stdout.take().expect("stdout");
        let stdin = child.child_mut().stdin.take().expect("stdin");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("helper: {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Helper {
            child,
            stdin: Some(stdin),
            lines,
            patience,
        }
    }

    /// The helper's next line holding `mark` (the lines before are skipped).
    pub(crate) fn wait_for(&self, mark: &str) -> String {
        loop {
            match self.lines.recv_timeout(self.patience) {
                Ok(line) if line.contains(mark) => return line,
                Ok(_) => {}
                Err(e) => panic!("the helper never printed {mark}: {e}"),
            }
        }
    }

    /// Lets the helper go on past its next [`wait_for_line`].
    pub(crate) fn go(&mut self) {
        self.stdin
            .as_mut()
            .expect("stdin")
            .write_all(b"\n")
            .expect("go-ahead");
    }

    /// The last go-ahead, and the helper's successful exit.
    pub(crate) fn finish(mut self) {
        self.go();
        drop(self.stdin.take());
        let status = self
            .child
            .wait_timeout(Duration::from_secs(10))
            .expect("wait")
            .expect("the helper exits");
        assert!(status.success(), "{status:?}");
    }
}
