//! The lab proof of a port mapper, shared by every mechanism's lab test: map a
//! TCP and a UDP port for echo servers on the LAN host, let the wan peer talk
//! to them through the router, renew, delete, and check the router's own
//! listing and nftables rules at each step.
//!
//! The mapper runs in a helper process in the LAN ([`HelperSession`]) that
//! speaks this line protocol:
//! - at start it serves [`spawn_echo`](crate::spawn_echo) on [`PROOF_TCP_PORT`]
//!   and [`PROOF_UDP_PORT`], maps both and prints one [`MappedLine`] each, tagged
//!   `MAPPED ` (TCP first);
//! - on `renew` it renews both and prints them tagged `RENEWED `;
//! - on `delete` it deletes both and prints `DELETED`;
//! - at the end of stdin it exits 0.
//!
//! [`serve_commands`] is the helper's stdin loop.
//!
//! This module is test support: its checks panic with the evidence, like
//! assertions in the test itself.

use std::fmt;
use std::io::{BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::thread;
use std::time::Duration;

use crate::lab::Lab;
use crate::peer::ECHO_PREFIX;
use crate::router::RouterMapping;
use crate::session::HelperSession;
use crate::spec::{Node, Proto};

/// The LAN host's TCP echo port in the proof.
pub const PROOF_TCP_PORT: u16 = 18_080;
/// The LAN host's UDP echo port in the proof.
pub const PROOF_UDP_PORT: u16 = 19_001;

/// How long the proof waits for a helper line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// One mapping as the helper reports it:
/// `<tcp|udp> <external ip:port> <internal ip:port> <lifetime secs>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedLine {
    /// TCP or UDP.
    pub proto: Proto,
    /// What the internet reaches.
    pub external: SocketAddr,
    /// Where the router forwards to.
    pub internal: SocketAddr,
    /// The granted lease (0: permanent).
    pub lifetime_secs: u64,
}

impl MappedLine {
    /// Parses the text after the tag; `None` if it is not one.
    pub fn parse(text: &str) -> Option<MappedLine> {
        let mut w = text.split_whitespace();
        let proto = match w.next()? {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        Some(MappedLine {
            proto,
            external: w.next()?.parse().ok()?,
            internal: w.next()?.parse().ok()?,
            lifetime_secs: w.next()?.parse().ok()?,
        })
    }
}

impl fmt::Display for MappedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.proto, self.external, self.internal, self.lifetime_secs
        )
    }
}

/// The helper's side: runs `handle` on every stdin line (trimmed, empty ones
/// skipped), printing and flushing the lines it returns, until stdin ends.
pub fn serve_commands(mut handle: impl FnMut(&str) -> Vec<String>) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines().map_while(Result::ok) {
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        // Run the command before taking the stdout lock: the helper's own
        // tasks may print meanwhile (a keeper's events).
        let replies = handle(command);
        let mut out = std::io::stdout().lock();
        for reply in replies {
            let _ = writeln!(out, "{reply}");
        }
        let _ = out.flush();
    }
}

/// What [`prove_lifecycle`] saw, for the test's report.
#[derive(Debug, Clone)]
pub struct LifecycleReport {
    /// The mappings as first granted (TCP, UDP).
    pub mapped: [MappedLine; 2],
    /// The router's remaining lease of the TCP mapping just before renewing.
    pub lease_before_renew: u32,
    /// The same just after.
    pub lease_after_renew: u32,
}

/// Runs the proof against a helper that has just started (see the module docs).
/// `wait_before_renew` lets the router's lease count down so that the renewal
/// visibly refreshes it.
///
/// # Panics
/// On any failed check, with the evidence (helper transcript, router listing).
pub fn prove_lifecycle(
    lab: &Lab,
    helper: &mut HelperSession,
    wait_before_renew: Duration,
) -> LifecycleReport {
    let a = *lab.addrs();
    let mapped = [
        expect_mapped(helper, "MAPPED "),
        expect_mapped(helper, "MAPPED "),
    ];
    assert_eq!((mapped[0].proto, mapped[1].proto), (Proto::Tcp, Proto::Udp));
    for (m, port) in mapped.iter().zip([PROOF_TCP_PORT, PROOF_UDP_PORT]) {
        assert_eq!(m.external.ip(), IpAddr::V4(a.public), "{m}");
        assert_eq!(m.internal, SocketAddr::from((a.lan, port)), "{m}");
        let row = router_row(lab, m);
        assert_eq!(row.lease_secs == 0, m.lifetime_secs == 0, "{row:?} for {m}");
        assert!(
            u64::from(row.lease_secs) <= m.lifetime_secs,
            "{row:?} for {m}"
        );
    }
    for m in &mapped {
        assert_reaches(lab, helper, m, "first");
    }

    thread::sleep(wait_before_renew);
    let lease_before_renew = router_row(lab, &mapped[0]).lease_secs;
    helper.send("renew").expect("send renew");
    let renewed = [
        expect_mapped(helper, "RENEWED "),
        expect_mapped(helper, "RENEWED "),
    ];
    for (before, after) in mapped.iter().zip(&renewed) {
        assert_eq!(after.external, before.external, "renewal moved the mapping");
        assert_eq!(after.internal, before.internal);
    }
    let lease_after_renew = router_row(lab, &renewed[0]).lease_secs;
    if mapped[0].lifetime_secs > 0 {
        // The lease counted down while we waited and the renewal restored it.
        let waited = u32::try_from(wait_before_renew.as_secs()).unwrap_or(u32::MAX);
        assert!(
            lease_before_renew + waited / 2 <= lease_after_renew,
            "lease not refreshed: {lease_before_renew} s left before renewal, {lease_after_renew} s after"
        );
    }
    for m in &renewed {
        assert_reaches(lab, helper, m, "renewed");
    }

    helper.send("delete").expect("send delete");
    helper.expect("DELETED", LINE_TIMEOUT).expect("deleted");
    let rows = lab.router_mappings().expect("router listing");
    let ours: Vec<&RouterMapping> = rows
        .iter()
        .filter(|r| IpAddr::V4(*r.internal.ip()) == IpAddr::V4(a.lan))
        .collect();
    assert!(ours.is_empty(), "left on the router after delete: {ours:?}");
    let ruleset = lab.router_ruleset().expect("nft ruleset");
    let lan = a.lan.to_string();
    assert!(
        !ruleset
            .lines()
            .any(|l| l.contains("dnat") && l.contains(&lan)),
        "a DNAT rule to {lan} is left:\n{ruleset}"
    );
    for m in &renewed {
        let answer = lab
            .exchange(Node::Wan, m.proto, m.external, "after-delete")
            .expect("exchange");
        assert!(
            answer.is_empty(),
            "{m} still answers after delete: {answer:?}"
        );
    }
    LifecycleReport {
        mapped,
        lease_before_renew,
        lease_after_renew,
    }
}

fn expect_mapped(helper: &mut HelperSession, tag: &str) -> MappedLine {
    let (text, _) = helper.expect(tag, LINE_TIMEOUT).expect("helper line");
    MappedLine::parse(&text).unwrap_or_else(|| panic!("bad {tag:?} line: {text:?}"))
}

/// The router's row for `m`.
///
/// # Panics
/// When the router does not list it.
pub fn router_row(lab: &Lab, m: &MappedLine) -> RouterMapping {
    let rows = lab.router_mappings().expect("router listing");
    rows.iter()
        .find(|r| {
            r.proto == m.proto
                && r.external_port == m.external.port()
                && SocketAddr::V4(r.internal) == m.internal
        })
        .cloned()
        .unwrap_or_else(|| panic!("the router does not list {m}: {rows:?}"))
}

/// The wan peer exchanges bytes with the LAN host's echo server through `m`,
/// and the helper saw them come from the peer.
///
/// # Panics
/// When the answer or the helper's report is not the expected one.
pub fn assert_reaches(lab: &Lab, helper: &mut HelperSession, m: &MappedLine, what: &str) {
    let payload = format!("{}-{what}-{}", m.proto, lab.id());
    let answer = lab
        .exchange(Node::Wan, m.proto, m.external, &payload)
        .expect("exchange");
    assert_eq!(
        answer,
        format!("{ECHO_PREFIX}{payload}"),
        "the wan peer's {what} exchange through {m}"
    );
    let (seen, _) = helper
        .expect(&format!("ECHOED {} ", m.proto), LINE_TIMEOUT)
        .expect("helper saw the exchange");
    let (from, text) = seen.split_once(' ').unwrap_or((seen.as_str(), ""));
    let from: SocketAddr = from
        .parse()
        .unwrap_or_else(|_| panic!("source in {seen:?}"));
    assert_eq!(from.ip(), IpAddr::V4(lab.addrs().peer), "{seen}");
    assert_eq!(text, payload);
}
