//! Does a firewall on the way out block some ports? ("Some firewalls, such as
//! at a large organization, may not allow some connections.")
//!
//! The dial-back server runs an [`OutboundEcho`] on a configured set of ports
//! (`natkit dialback-server --outbound-ports 443/tcp,4500/udp`). For each
//! port of a profile the client ([`check_outbound`]) sends a 16-byte request
//! carrying a random nonce, over TCP (after the connect) or UDP, and waits for
//! the reply that carries the same nonce. The dial-back server's own TCP port
//! is asked as well, as a control: a port that answers proves the server is up
//! and reachable, so silence on the others is a block on the path, not a dead
//! server ([`decide`]).
//!
//! The echo's abuse limits (why it cannot be used to reflect or amplify):
//! - **Never more out than in**: a reply is exactly as long as the request
//!   (16 bytes), one reply per request; anything else gets nothing.
//! - **Requests only**: a reply (or any other bytes) is never answered, so two
//!   echoes forged at each other cannot loop.
//! - **No reply to ports below 1024** (a forged source at a UDP service such
//!   as echo or chargen).
//! - **Rate limits**: a token bucket per source address (IPv6 per /64) and one
//!   for the whole server; over either, nothing is sent.
//! - UDP replies go only to addresses the target policy permits (global ones
//!   unless the server allows private ones), like the dial-back server's dials.
//! - TCP: connections open at once are capped; each gets 2 s to send its 16
//!   bytes, then it is closed.

mod client;
mod server;

pub use client::{OutboundCheck, OutboundCheckConfig, check_outbound};
pub use server::{OutboundEcho, OutboundEchoConfig, OutboundEchoCounters};

use natkit_core::Protocol;

/// Every message's length: magic (4), kind (1), nonce (11).
pub const MESSAGE_LEN: usize = 16;
const MAGIC: &[u8; 4] = b"NKob";
const REQUEST: u8 = b'?';
const REPLY: u8 = b'!';

/// The ports an echo listens on at most (each is a socket).
pub const MAX_ECHO_PORTS: usize = 64;

/// A request carrying `nonce`.
pub fn request(nonce: [u8; 11]) -> [u8; MESSAGE_LEN] {
    message(REQUEST, nonce)
}

/// The reply the echo sends to a request carrying `nonce`.
pub fn reply(nonce: [u8; 11]) -> [u8; MESSAGE_LEN] {
    message(REPLY, nonce)
}

fn message(kind: u8, nonce: [u8; 11]) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m[..4].copy_from_slice(MAGIC);
    m[4] = kind;
    m[5..].copy_from_slice(&nonce);
    m
}

/// The echo's answer to `received`: the reply when it is exactly a request,
/// nothing for anything else (a reply, other protocols, wrong lengths).
pub fn reply_to(received: &[u8]) -> Option<[u8; MESSAGE_LEN]> {
    if received.len() != MESSAGE_LEN || &received[..4] != MAGIC || received[4] != REQUEST {
        return None;
    }
    let mut nonce = [0u8; 11];
    nonce.copy_from_slice(&received[5..]);
    Some(reply(nonce))
}

/// What came of one port's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum OutboundOutcome {
    /// The reply with our nonce came back: the port is open outbound.
    Answered,
    /// Nothing came back in time (TCP: no handshake): dropped on the way.
    Silent,
    /// An ICMP unreachable (host, network or administratively prohibited)
    /// came back: a firewall rejects it.
    Unreachable,
    /// A TCP reset or ICMP port unreachable: nothing listens there (the server
    /// is not configured for it), or a firewall answers for it.
    Refused,
    /// TCP connected, but the connection closed or stayed silent without our
    /// reply: something in the way (a proxy) took the connection, or the
    /// server runs something else there.
    NoReply,
    /// This host could not send (no socket, no route).
    Failed,
}

impl OutboundOutcome {
    /// The snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundOutcome::Answered => "answered",
            OutboundOutcome::Silent => "silent",
            OutboundOutcome::Unreachable => "unreachable",
            OutboundOutcome::Refused => "refused",
            OutboundOutcome::NoReply => "no_reply",
            OutboundOutcome::Failed => "failed",
        }
    }

    /// Whether this outcome means the path blocks the port (given that the
    /// server answered elsewhere).
    pub fn is_blocked(self) -> bool {
        matches!(self, OutboundOutcome::Silent | OutboundOutcome::Unreachable)
    }
}

/// One port's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundLeg {
    /// The server's port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// `true` for the dial-back server's own port (TCP connect only).
    pub control: bool,
    /// What came of it.
    pub outcome: OutboundOutcome,
    /// Milliseconds until the answer, when there was one.
    pub rtt_ms: Option<u64>,
}

/// What the check concludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundVerdict {
    /// Every port answered.
    Open,
    /// Some ports answered and some were dropped or rejected on the way.
    Blocked,
    /// Every port that did not answer was refused (the server does not serve
    /// it), none dropped.
    NotServed,
    /// Nothing answered, not even the control: the server is down or every
    /// way to it is blocked; no claim about single ports.
    Inconclusive,
}

impl OutboundVerdict {
    /// The snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboundVerdict::Open => "open",
            OutboundVerdict::Blocked => "blocked",
            OutboundVerdict::NotServed => "not_served",
            OutboundVerdict::Inconclusive => "inconclusive",
        }
    }
}

/// The verdict from the legs, sans-IO: a block is claimed only when at least
/// one leg answered (the server is up and this host reaches it).
pub fn decide(legs: &[OutboundLeg]) -> OutboundVerdict {
    if !legs.iter().any(|l| l.outcome == OutboundOutcome::Answered) {
        return OutboundVerdict::Inconclusive;
    }
    let profile = legs.iter().filter(|l| !l.control);
    if profile.clone().any(|l| l.outcome.is_blocked()) {
        OutboundVerdict::Blocked
    } else if profile
        .clone()
        .all(|l| l.outcome == OutboundOutcome::Answered)
    {
        OutboundVerdict::Open
    } else {
        OutboundVerdict::NotServed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(port: u16, protocol: Protocol, control: bool, outcome: OutboundOutcome) -> OutboundLeg {
        OutboundLeg {
            port,
            protocol,
            control,
            outcome,
            rtt_ms: None,
        }
    }

    #[test]
    fn only_requests_get_a_reply_of_the_same_length() {
        let nonce = *b"abcdefghijk";
        let r = reply_to(&request(nonce)).expect("a request is answered");
        assert_eq!(r, reply(nonce));
        assert_eq!(r.len(), request(nonce).len());
        assert_eq!(reply_to(&r), None, "a reply is never answered (no loops)");
        assert_eq!(reply_to(&request(nonce)[..15]), None);
        let mut long = request(nonce).to_vec();
        long.push(0);
        assert_eq!(reply_to(&long), None);
        let mut other = request(nonce);
        other[0] = b'X';
        assert_eq!(reply_to(&other), None);
        assert_eq!(reply_to(b""), None);
    }

    #[test]
    fn a_block_needs_an_answer_somewhere() {
        use OutboundOutcome::*;
        let ctl = leg(7007, Protocol::Tcp, true, Answered);
        let dropped = leg(443, Protocol::Tcp, false, Silent);
        let open = leg(5353, Protocol::Udp, false, Answered);
        let rejected = leg(4500, Protocol::Udp, false, Unreachable);
        let refused = leg(5354, Protocol::Tcp, false, Refused);
        assert_eq!(decide(&[ctl, dropped, open]), OutboundVerdict::Blocked);
        assert_eq!(decide(&[ctl, rejected]), OutboundVerdict::Blocked);
        assert_eq!(decide(&[ctl, open]), OutboundVerdict::Open);
        assert_eq!(decide(&[ctl, open, refused]), OutboundVerdict::NotServed);
        // Silence everywhere, the control too: a dead server looks the same.
        let dead = leg(7007, Protocol::Tcp, true, Silent);
        assert_eq!(decide(&[dead, dropped]), OutboundVerdict::Inconclusive);
        assert_eq!(decide(&[]), OutboundVerdict::Inconclusive);
        // A profile port that answers is control enough.
        assert_eq!(decide(&[dead, dropped, open]), OutboundVerdict::Blocked);
    }
}
