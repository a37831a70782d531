//! Dial-back messages: the constants and types on the wire (the byte
//! layout is in `codec`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;

use super::error::WireError;
use super::list::List;

mod codec;
#[cfg(test)]
mod tests;

/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"NKDB";
/// The protocol version spoken here.
pub const VERSION: u8 = 1;
/// Header (8) plus nonce (16).
pub const HEADER_LEN: usize = 8 + NONCE_LEN;
/// The most ports one request may ask for.
pub const MAX_PORTS: usize = 32;
/// The longest message: a report for an IPv6 address with every port.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + 4 + 16 + 2 + MAX_PORTS * RESULT_LEN;

const NONCE_LEN: usize = 16;
const PORT_LEN: usize = 4;
const RESULT_LEN: usize = 8;

const KIND_REQUEST: u8 = 1;
const KIND_PROBE: u8 = 2;
const KIND_PROBE_ACK: u8 = 3;
const KIND_REPORT: u8 = 4;
const KIND_REFUSAL: u8 = 5;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// A request's 128-bit nonce: it ties probes, acknowledgements and the
/// report to one request, and only the requester's listener can echo it.
/// Fill it from a cryptographic random source (it is an input here, like
/// all randomness in natkit): a guessable nonce lets a third party fake an
/// acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    /// A nonce from the operating system's cryptographic random source.
    pub fn random() -> Result<Nonce, getrandom::Error> {
        let mut n = Nonce::default();
        getrandom::fill(&mut n.0)?;
        Ok(n)
    }
}

/// A port to dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialPort {
    /// The port (never 0 on the wire).
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl DialPort {
    /// `port`/tcp.
    pub const fn tcp(port: u16) -> Self {
        DialPort {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// `port`/udp.
    pub const fn udp(port: u16) -> Self {
        DialPort {
            port,
            protocol: Protocol::Udp,
        }
    }
}

impl Default for DialPort {
    fn default() -> Self {
        DialPort {
            port: 0,
            protocol: Protocol::Tcp,
        }
    }
}

/// What the server saw when it dialled a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DialOutcome {
    /// The port answered and echoed the nonce: the requester's own listener
    /// is reachable from outside.
    Verified,
    /// The port answered (TCP connected, or a UDP reply came) but without
    /// the nonce: another host or service answers on it.
    AnsweredByOther,
    /// Refused: a TCP reset or an ICMP port unreachable.
    Refused,
    /// Nothing came back.
    #[default]
    Silence,
    /// An ICMP unreachable other than port unreachable.
    Unreachable,
}

impl DialOutcome {
    fn code(self) -> u8 {
        match self {
            DialOutcome::Verified => 0,
            DialOutcome::AnsweredByOther => 1,
            DialOutcome::Refused => 2,
            DialOutcome::Silence => 3,
            DialOutcome::Unreachable => 4,
        }
    }

    fn from_code(c: u8) -> Result<Self, WireError> {
        Ok(match c {
            0 => DialOutcome::Verified,
            1 => DialOutcome::AnsweredByOther,
            2 => DialOutcome::Refused,
            3 => DialOutcome::Silence,
            4 => DialOutcome::Unreachable,
            other => return Err(WireError::UnknownOutcome(other)),
        })
    }
}

/// One port's result in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DialResult {
    /// The port dialled.
    pub port: DialPort,
    /// What the server saw.
    pub outcome: DialOutcome,
    /// The server's round-trip time to the answer (zero on silence); whole
    /// microseconds on the wire, saturating at `u32::MAX`.
    pub rtt: Duration,
}

/// Why a server will not dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RefusalCode {
    /// The request was malformed or asked for something unsupported.
    BadRequest,
    /// Too many requests from this address lately.
    RateLimited,
    /// The server is at capacity.
    Busy,
    /// The server's policy forbids dialling one of the ports.
    PortNotAllowed,
    /// More ports than this server dials for one request (its cap may be
    /// below the wire's [`MAX_PORTS`]).
    TooManyPorts,
    /// The address the request came from is private, shared (CGNAT),
    /// loopback or otherwise reserved, and this server is not configured to
    /// dial such addresses (a lab server may be).
    TargetNotAllowed,
}

impl RefusalCode {
    /// Whether asking again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, RefusalCode::RateLimited | RefusalCode::Busy)
    }

    fn code(self) -> u16 {
        match self {
            RefusalCode::BadRequest => 1,
            RefusalCode::RateLimited => 2,
            RefusalCode::Busy => 3,
            RefusalCode::PortNotAllowed => 4,
            RefusalCode::TooManyPorts => 5,
            RefusalCode::TargetNotAllowed => 6,
        }
    }

    fn from_code(c: u16) -> Result<Self, WireError> {
        Ok(match c {
            1 => RefusalCode::BadRequest,
            2 => RefusalCode::RateLimited,
            3 => RefusalCode::Busy,
            4 => RefusalCode::PortNotAllowed,
            5 => RefusalCode::TooManyPorts,
            6 => RefusalCode::TargetNotAllowed,
            other => return Err(WireError::UnknownRefusal(other)),
        })
    }
}

/// A dial-back message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "lists are stored inline so that parsing never allocates"
)]
pub enum Message {
    /// Client → server: please dial these ports of the address you see.
    Request {
        /// Fresh for every request.
        nonce: Nonce,
        /// 1 to [`MAX_PORTS`] ports.
        ports: List<DialPort>,
    },
    /// Server → the dialled port (first bytes of the TCP stream, or the
    /// UDP datagram).
    Probe {
        /// The request's nonce.
        nonce: Nonce,
        /// The port being dialled.
        port: DialPort,
    },
    /// The dialled port's listener → server: the nonce echoed.
    ProbeAck {
        /// The request's nonce.
        nonce: Nonce,
        /// The port that was dialled.
        port: DialPort,
    },
    /// Server → client: what it saw.
    Report {
        /// The request's nonce.
        nonce: Nonce,
        /// The client's address as the server saw it.
        observed: SocketAddr,
        /// One result per port requested.
        results: List<DialResult>,
    },
    /// Server → client: the request will not be served.
    Refusal {
        /// The request's nonce.
        nonce: Nonce,
        /// Why.
        reason: RefusalCode,
    },
}

impl RefusalCode {
    /// The snake_case name, e.g. `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::BadRequest => "bad_request",
            RefusalCode::RateLimited => "rate_limited",
            RefusalCode::Busy => "busy",
            RefusalCode::PortNotAllowed => "port_not_allowed",
            RefusalCode::TooManyPorts => "too_many_ports",
            RefusalCode::TargetNotAllowed => "target_not_allowed",
        }
    }

    /// Every code, in wire order.
    pub const ALL: [RefusalCode; 6] = [
        RefusalCode::BadRequest,
        RefusalCode::RateLimited,
        RefusalCode::Busy,
        RefusalCode::PortNotAllowed,
        RefusalCode::TooManyPorts,
        RefusalCode::TargetNotAllowed,
    ];
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RefusalCode::BadRequest => "malformed request",
            RefusalCode::RateLimited => "too many requests from this address",
            RefusalCode::Busy => "server busy",
            RefusalCode::PortNotAllowed => "a port is not allowed by the server's policy",
            RefusalCode::TooManyPorts => "more ports than the server dials per request",
            RefusalCode::TargetNotAllowed => {
                "the server does not dial private or reserved addresses"
            }
        })
    }
}

impl DialOutcome {
    /// The snake_case name, e.g. `answered_by_other`.
    pub fn as_str(self) -> &'static str {
        match self {
            DialOutcome::Verified => "verified",
            DialOutcome::AnsweredByOther => "answered_by_other",
            DialOutcome::Refused => "refused",
            DialOutcome::Silence => "silence",
            DialOutcome::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for DialOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialOutcome::Verified => "reachable (nonce echoed)",
            DialOutcome::AnsweredByOther => "answered by something else (no nonce)",
            DialOutcome::Refused => "refused",
            DialOutcome::Silence => "no answer",
            DialOutcome::Unreachable => "unreachable",
        })
    }
}
