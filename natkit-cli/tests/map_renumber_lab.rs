//! `natkit map --ipv6` keeps its pinhole across a new IPv6 prefix. In the
//! dual-stack lab with miniupnpd, two kept runs hold a pinhole each for the LAN
//! host's stable address, one through PCP and one through UPnP IGD, with a
//! listener on `[::]` behind each. The lab then renumbers the LAN as an ISP would
//! (`Lab::renumber_lan_v6`): the host's old addresses are gone and it has
//! 2a0d:88:77:79::2. Within one address check (15 s) each run says
//! `renumbered`, the outside peer connects to the new address through the new
//! pinhole, and after SIGTERM each run deletes it and exits 0, so the peer is
//! refused again.
//!
//! Root only; fails (never skips) without it.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, LabChild, NatKind, Node, Proto, require_root};
use serde_json::Value;

const NEW_PREFIX: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x79, 0, 0, 0, 0);
/// natkit's address check is every 15 s (`natkit::ADDRESS_CHECK_INTERVAL`);
/// the move is due within one check plus the router's answer.
const MOVE_WITHIN: Duration = Duration::from_secs(30);

/// A kept `natkit map --ipv6 --json` run and the JSON lines it printed.
struct Run {
    child: LabChild,
    lines: mpsc::Receiver<String>,
    seen: Vec<Value>,
}

impl Run {
    fn start(lab: &Lab, mechanism: &str, port: u16) -> Run {
        let mut c = lab.command(Node::Lan, natkit_lab::natkit_bin());
        c.args(["map", "--ipv6", "--protocol", "tcp", "--json"])
            .args(["--mechanism", mechanism, "--port", &port.to_string()])
            .args([
                "--journal",
                &format!("{}/journal-{mechanism}", lab.run_dir().display()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = LabChild::spawn(&mut c).expect("natkit map");
        let stdout = child.child_mut().stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next event named `name`, printed within `within`.
    fn wait_for(&mut self, name: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!("no {name} event ({e}): {:#?}", self.seen),
            };
            let event: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            self.seen.push(event.clone());
            if event["event"] == name {
                return event;
            }
        }
    }

    /// SIGTERM, then the `deleted` event and a clean exit.
    fn stop(mut self) -> Value {
        let kill = std::process::Command::new("kill")
            .args(["-TERM", &self.child.pid().to_string()])
            .status()
            .expect("kill");
        assert!(kill.success());
        let deleted = self.wait_for("deleted", Duration::from_secs(15));
        let status = self
            .child
            .wait_timeout(Duration::from_secs(15))
            .expect("wait")
            .expect("natkit map exits after SIGTERM");
        assert!(status.success(), "{status:?}: {:#?}", self.seen);
        deleted
    }
}

/// Whether the outside peer's TCP connection to `[address]:port` is accepted.
fn peer_connects(lab: &Lab, address: Ipv6Addr, port: u16) -> bool {
    lab.tcp_connects(Node::Wan, SocketAddr::new(IpAddr::V6(address), port))
        .expect("nc -z")
}

#[test]
fn map_ipv6_moves_its_pinhole_to_a_new_prefix() {
    require_root();
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .up();
    let v6 = lab.addrs().v6.expect("a dual-stack lab");
    let cases = [("pcp", 18410), ("upnp", 18411)];
    let _listeners: Vec<LabChild> = cases
        .iter()
        .map(|&(_, port)| {
            let listener = lab
                .spawn(
                    Node::Lan,
                    &["nc", "-6", "-l", "-k", "-p", &port.to_string()],
                )
                .expect("nc -l");
            lab.wait_listening(Node::Lan, Proto::Tcp, port, Duration::from_secs(5))
                .expect("nc listens");
            listener
        })
        .collect();
    let mut runs: Vec<Run> = cases
        .iter()
        .map(|&(mechanism, port)| Run::start(&lab, mechanism, port))
        .collect();
    for (run, &(_, port)) in runs.iter_mut().zip(&cases) {
        let mapped = run.wait_for("mapped", Duration::from_secs(15));
        let internal: SocketAddr = mapped["internal"]
            .as_str()
            .expect("internal")
            .parse()
            .expect("an address");
        assert_eq!(
            internal,
            SocketAddr::new(IpAddr::V6(v6.lan), port),
            "{mapped:#}"
        );
        assert!(
            peer_connects(&lab, v6.lan, port),
            "port {port} before: {:#?}",
            run.seen
        );
    }

    let new = lab.renumber_lan_v6(NEW_PREFIX).expect("renumber the LAN");
    let started = Instant::now();
    for (run, &(name, port)) in runs.iter_mut().zip(&cases) {
        let moved = run.wait_for("renumbered", MOVE_WITHIN);
        println!(
            "{name}: renumbered after {} ms: {moved}",
            started.elapsed().as_millis()
        );
        assert_eq!(moved["old"], v6.lan.to_string(), "{moved:#}");
        assert_eq!(moved["choice"]["address"], new.to_string(), "{moved:#}");
        assert_eq!(moved["internal"], format!("[{new}]:{port}"), "{moved:#}");
        assert_eq!(moved["mechanism"], name, "{moved:#}");
        assert!(
            peer_connects(&lab, new, port),
            "port {port} through the new pinhole: {:#?}",
            run.seen
        );
    }
    for (run, &(_, port)) in runs.into_iter().zip(&cases) {
        let deleted = run.stop();
        assert_eq!(deleted["released"], 1, "{deleted:#}");
        assert!(
            !peer_connects(&lab, new, port),
            "port {port} after natkit map stopped"
        );
    }
    lab.down().expect("down");
}
