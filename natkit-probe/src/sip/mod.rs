//! Does something on the path rewrite or drop SIP? (A "SIP ALG".)
//!
//! Many home routers run a SIP application-level gateway: it rewrites the
//! private addresses in SIP messages that cross the NAT, usually badly, or
//! drops what it cannot parse; softphones behind it then register but get
//! one-way or no audio. natkit checks with an echo:
//!
//! 1. The client sends an `OPTIONS` request that carries its own address and
//!    port (private behind a NAT) in Via, From, Contact, Call-ID and the SDP
//!    body ([`options_request`]) to the [`SipEcho`] on port 5060, over UDP
//!    and over TCP, and the same over UDP to the echo's control port, which
//!    no ALG watches.
//! 2. The echo sends back exactly the bytes it received.
//! 3. The client compares what came back byte for byte with what it sent
//!    ([`compare`]) and [`decide`]s: a change is a rewrite (with each changed
//!    line, before and after); while the control port echoes, UDP silence on
//!    5060 (after a try every 200 ms) or a TCP reset or close without an echo
//!    is a drop; TCP without an answer in time (loss looks the same) and
//!    silence everywhere prove nothing.
//!
//! What Linux's own ALG (nf_conntrack_sip with nf_nat_sip) does to the
//! check's request, seen in the natkit lab: on the way out it rewrites Via,
//! From and Contact to the router's public address; on the way back (the
//! echo is a request from outside) it restores From and Contact but not Via,
//! so the client sees Via changed. It leaves the SDP of an OPTIONS alone
//! (it rewrites SDP only in INVITE, UPDATE, ACK, PRACK and responses).
//!
//! The echo's abuse limits (bytes out never more than bytes in, OPTIONS only,
//! rate limits, no echo to low ports) are listed in [`echo`]'s docs.

mod check;
pub mod echo;
mod verdict;
mod wire;

pub use check::{SipCheck, SipCheckConfig, check_sip_alg};
pub use echo::{
    EchoGate, GateRefusal, SipEcho, SipEchoConfig, SipEchoCounters, SipEchoCountersHandle,
};
pub use verdict::{LegOutcome, LegRole, SipAlgVerdict, SipLeg, SipWhy, decide};
pub use wire::{
    Framing, MAX_SIP_LEN, NotEchoed, SIP_PORT, SipChange, SipTransport, compare, echoable_datagram,
    frame_stream, options_request, replaces_local_address,
};
