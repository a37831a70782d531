//! Helpers shared by the lab's own acceptance tests: listeners and senders with `nc`,
//! the reference clients `upnpc` and `natpmpc`, nft counters, ICMP echo with `nping`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Output;
use std::time::Duration;

use natkit_lab::{Lab, LabError, Node, Proto};

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Starts `nc -l` (TCP) or `nc -u -l -W 1` (one UDP datagram) on `port` in `node`
/// and waits until it listens.
pub(crate) fn listen(lab: &Lab, node: Node, proto: Proto, port: u16) -> natkit_lab::LabChild {
    let port_s = port.to_string();
    let argv: Vec<&str> = match proto {
        Proto::Tcp => vec!["nc", "-n", "-l", "-p", &port_s],
        Proto::Udp => vec!["nc", "-n", "-u", "-l", "-W", "1", "-p", &port_s],
    };
    let child = lab.spawn(node, &argv).expect("spawn listener");
    lab.wait_listening(node, proto, port, Duration::from_secs(5))
        .expect("listener up");
    child
}

/// Sends `payload` from `from` (bound to `src`) to `dst` with nc; returns nc's output.
pub(crate) fn send(
    lab: &Lab,
    from: Node,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    proto: Proto,
    payload: &str,
) -> Output {
    // UDP: -w 1 is how long nc lingers after stdin's EOF.
    let flags = if proto == Proto::Udp {
        "-u -w 1"
    } else {
        "-N -w 2"
    };
    let script = format!(
        "printf '%s' '{payload}' | nc -n {flags} -s {src} {} {}",
        dst.ip(),
        dst.port()
    );
    lab.exec(from, &["sh", "-c", script.as_str()])
        .expect("run nc")
}

/// Does `payload`, sent from the wan peer to `dst`, arrive at a listener on
/// `listen_node`:`listen_port`? Returns what the listener received, `None` if
/// nothing arrived.
pub(crate) fn delivered(
    lab: &Lab,
    (listen_node, listen_port): (Node, u16),
    (from, src): (Node, Ipv4Addr),
    dst: SocketAddrV4,
    proto: Proto,
    payload: &str,
) -> Option<String> {
    let listener = listen(lab, listen_node, proto, listen_port);
    let sent = send(lab, from, src, dst, proto, payload);
    // A TCP sender that failed (refused, timed out) delivered nothing, so a short
    // grace suffices; otherwise wait for the listener to finish.
    let wait = if proto == Proto::Tcp && !sent.status.success() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(4)
    };
    match listener.wait_with_output_timeout(wait) {
        Ok(out) => {
            let got = text(&out.stdout);
            assert!(
                sent.status.success(),
                "sender failed though {got:?} arrived: {}",
                natkit_lab::dump_output(&sent)
            );
            Some(got)
        }
        Err(LabError::Timeout { .. }) => None,
        Err(e) => panic!("listener: {e}"),
    }
}

pub(crate) fn wan_to(lab: &Lab, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(lab.addrs().public, port)
}

pub(crate) fn upnpc(lab: &Lab, args: &[&str]) -> String {
    // -u: the IGD's description URL, so only the discovery test waits for SSDP.
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    let mut argv = vec!["upnpc", "-u", url.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(Node::Lan, &argv).expect("run upnpc");
    text(&out.stdout) + &text(&out.stderr)
}

pub(crate) fn natpmpc(lab: &Lab, node: Node, args: &[&str]) -> Output {
    let gw = lab.addrs().rtr_lan.to_string();
    let mut argv = vec!["natpmpc", "-g", gw.as_str()];
    argv.extend_from_slice(args);
    lab.exec(node, &argv).expect("run natpmpc")
}

pub(crate) fn epoch(out: &Output) -> u64 {
    text(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("epoch = "))
        .unwrap_or_else(|| {
            panic!(
                "no epoch in natpmpc output: {}",
                natkit_lab::dump_output(out)
            )
        })
        .trim()
        .parse()
        .expect("epoch parses")
}

/// The packet count of the first `counter` in an nft listing.
pub(crate) fn nft_counter(lab: &Lab, node: Node, listing: &[&str]) -> u64 {
    let mut argv = vec!["nft", "list"];
    argv.extend_from_slice(listing);
    let out = lab.exec_ok(node, &argv).expect("nft list");
    let after = out
        .split("counter packets ")
        .nth(1)
        .unwrap_or_else(|| panic!("no counter in {out}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("counter parses")
}

/// Is `pid` a live (not zombie) process?
pub(crate) fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}

/// Sends `count` ICMP echo requests from `from` to `to` with nping (from the nmap
/// package; iputils' ping is not in the CI's package list) and returns (sent, echo
/// replies from `to`). Only echo replies count: nping's own "Rcvd" also counts ICMP
/// errors such as the router's "network unreachable".
pub(crate) fn echo(lab: &Lab, from: Node, to: Ipv4Addr, count: u32) -> (u32, u32) {
    let (to_s, count_s) = (to.to_string(), count.to_string());
    // nping waits one --delay after the last probe: long enough for a lone probe.
    let delay = if count == 1 { "500ms" } else { "2ms" };
    let argv = [
        "nping",
        "--icmp",
        "-c",
        count_s.as_str(),
        "--delay",
        delay,
        to_s.as_str(),
    ];
    let out = lab.exec(from, &argv).expect("nping");
    let stdout = text(&out.stdout);
    let sent = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Raw packets sent: "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no nping summary: {}", natkit_lab::dump_output(&out)));
    let from_to = format!("[{to} > ");
    let replies = stdout
        .lines()
        .filter(|l| l.starts_with("RCVD") && l.contains(&from_to) && l.contains("Echo reply"))
        .count();
    (sent, u32::try_from(replies).expect("count fits"))
}

pub(crate) fn ping(lab: &Lab, from: Node, to: Ipv4Addr) -> bool {
    echo(lab, from, to, 1) == (1, 1)
}
