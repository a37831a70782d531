//! Outside-in reachability: the dial-back protocol, its server and client.
//!
//! A host behind a NAT cannot tell from inside whether its forwarded ports
//! are reachable from the internet. It asks a dial-back server outside:
//!
//! 1. client → server, on a TCP control connection: [`Message::Request`]
//!    with a fresh random [`Nonce`] and up to [`MAX_PORTS`] ports;
//! 2. server → the address the control connection came from (never any
//!    other: the request cannot name one), once per port: a TCP connection
//!    or UDP datagram carrying [`Message::Probe`] with the same nonce;
//! 3. whatever answers on that port: [`Message::ProbeAck`] echoing the nonce
//!    — only the client's own responder knows it, so an answer without it
//!    means *someone else* answers on that port;
//! 4. server → client: [`Message::Report`] with the address the server saw
//!    and one [`DialOutcome`] per port; or [`Message::Refusal`].
//!
//! [`DialbackServer`] is the server (its abuse limits are listed in
//! [`server`]'s docs and enforced by [`Admission`]); [`DialbackClient`]
//! the client, which holds a temporary responder on every port being
//! checked (or notes that a local service holds it) while the server
//! dials, and decides a [`Reachability`] per port.
//!
//! # Deciding a port's verdict
//!
//! The server alone cannot tell a forward to the wrong LAN host from a
//! forward to us (both connect), nor "nothing forwards it" from "an ISP
//! drops it" (often both are silence). The client combines four things:
//! what the server saw, what its own responder saw, whether there is a NAT
//! at all (the observed address differs from our end of the control
//! connection), and a **control port** — one random free port per
//! protocol added to each request, on which the client listens on nothing:
//! the path's answer there is its answer for "not forwarded". The caller
//! may also say a port is known to be forwarded here
//! ([`CheckPort::expect_forwarded`], e.g. after mapping it with UPnP).
//!
//! Rules in order, first match wins ([`decide`]):
//!
//! | our responder saw | server saw | NAT | forward known | control port | verdict | rule ([`Why`]) |
//! |---|---|---|---|---|---|---|
//! | our nonce | anything | – | – | – | `reachable` (proven) | `nonce_echoed` / `nonce_arrived` |
//! | our nonce, at another local port | anything | – | – | – | `wrong_host` | `arrived_at_other_port` |
//! | not our nonce | nonce echoed | – | – | – | `wrong_host` | `echo_not_ours` |
//! | port held by a local service (or unbindable) | connected / replied, no echo | – | – | – | `reachable` (unproven) | `held_port_answered` |
//! | traffic without our probe | connected / replied, no echo | – | – | – | `wrong_host` | `middlebox_answered` |
//! | nothing | connected / replied, no echo | – | – | – | `wrong_host` | `other_host_answered` |
//! | – | ICMP unreachable (not port) | – | – | – | `filtered` | `icmp_unreachable` |
//! | – | reset / port unreachable | no | – | – | `closed` | `refused_no_nat` |
//! | – | reset / port unreachable | yes | yes | – | `closed` | `refused_despite_forward` |
//! | – | reset / port unreachable | yes | no | – | `not_forwarded` | `refused_unforwarded` |
//! | – | silence | no | – | – | `filtered` | `silent_no_nat` |
//! | – | silence | yes | yes | – | `filtered` | `silent_despite_forward` |
//! | – | silence | yes | no | refused | `filtered` | `silent_control_refused` |
//! | – | silence | yes | no | silent | `not_forwarded` | `silent_like_control` |
//! | – | silence | yes | no | none | `not_forwarded` | `silent_no_control` |
//!
//! Why: a responder of ours listens on every free port checked, so a dial
//! that reaches *this host's port* always shows our nonce there; a reset
//! or ICMP port unreachable therefore came from something else — behind a
//! NAT, the router's own stack or whatever it forwards to (a router does not
//! say which), so `not_forwarded` unless the caller knows a forward exists.
//! Silence while the router *refuses* the unforwarded control port means
//! this port in particular is dropped on the way (`filtered`, e.g. an ISP
//! blocking 443); silence like the control's is how this router treats
//! unforwarded ports. A forward to another LAN host with nothing listening
//! there resets like an unforwarded port and so reads `not_forwarded`; with
//! a listener there it reads `wrong_host`.
//!
//! Compared with a plain scan from outside (`nmap -sT`): `reachable` and
//! `wrong_host` are nmap's `open`, `closed` and `not_forwarded` its
//! `closed` (for a router that resets) or `filtered` (for one that drops),
//! `filtered` its `filtered`.
//!
//! # IPv6
//!
//! Nothing changes but the address: a server listening on `[::]` serves
//! both families ([`DialbackServerConfig::bind`]), dials an IPv6 client's own
//! address, and refuses non-global IPv6 as it refuses non-global IPv4
//! ([`TargetPolicy`]). Without a NAT the observed address is the client's
//! own, so a refusal reads `closed` and silence `filtered` (the router's
//! stateful firewall dropping new inbound connections), never
//! `not_forwarded`. The server reads ICMP and ICMPv6 errors from the socket
//! error queue on Linux, so a port unreachable sent by a firewall on the
//! target's behalf reads `filtered`, not `closed`. A host with privacy
//! addresses connects from a temporary one by default; a pinhole is for
//! the stable one: [`ClientConfig::source_ip`] picks which is checked.
//!
//! # Wire format
//!
//! Every message starts with an 8-byte header — magic `NKDB`, version,
//! kind, total length — followed by the 16-byte nonce. Integers are big
//! endian. Parsing checks every length, count, reserved byte and code and
//! never allocates; [`Message::emit`] writes into a caller's buffer.

mod admission;
mod client;
mod dial;
mod error;
mod list;
mod message;
mod policy;
mod reachability;
mod responder;
pub mod server;
mod stream;

pub use admission::{Admission, Limits};
pub use client::{
    CheckPort, ClientConfig, ControlPort, DialbackClient, MAX_CHECK_PORTS, PortReachability,
    ReachabilityReport,
};
pub use dial::DialTimeouts;
pub use error::{DialbackError, WireError};
pub use list::List;
pub use message::{
    DialOutcome, DialPort, DialResult, HEADER_LEN, MAGIC, MAX_MESSAGE_LEN, MAX_PORTS, Message,
    Nonce, RefusalCode, VERSION,
};
pub use policy::{IpPrefix, PortPolicy, PrefixError, TargetPolicy, canonical};
pub use reachability::{ControlEvidence, Evidence, Reachability, ResponderSaw, Why, decide};
pub use server::{
    DialbackCounters, DialbackCountersHandle, DialbackServer, DialbackServerConfig, StopHandle,
};

/// The old name of [`DialbackServerConfig`] (natkit-stun's server has a
/// `ServerConfig` too).
#[deprecated(note = "renamed `DialbackServerConfig`")]
pub type ServerConfig = DialbackServerConfig;
/// The old name of [`DialbackCounters`].
#[deprecated(note = "renamed `DialbackCounters`")]
pub type ServerCounters = DialbackCounters;
/// The old name of [`DialbackCountersHandle`].
#[deprecated(note = "renamed `DialbackCountersHandle`")]
pub type CountersHandle = DialbackCountersHandle;
