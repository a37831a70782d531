//! Dial-back messages: parsing and emitting.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;

use super::error::WireError;
use super::list::List;

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

/// Bounds-checked reads over a message.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.saturating_add(n);
        let s = self.buf.get(self.at..end).ok_or(WireError::Truncated {
            needed: end,
            got: self.buf.len(),
        })?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn reserved(&mut self) -> Result<(), WireError> {
        let at = self.at;
        if self.u8()? != 0 {
            return Err(WireError::Reserved(at));
        }
        Ok(())
    }

    fn port(&mut self) -> Result<DialPort, WireError> {
        let port = self.u16()?;
        let protocol = match self.u8()? {
            PROTO_TCP => Protocol::Tcp,
            PROTO_UDP => Protocol::Udp,
            other => return Err(WireError::BadProtocol(other)),
        };
        self.reserved()?;
        if port == 0 {
            return Err(WireError::PortZero);
        }
        Ok(DialPort { port, protocol })
    }

    fn count(&mut self) -> Result<usize, WireError> {
        let n = usize::from(self.u8()?);
        self.reserved()?;
        if n == 0 || n > MAX_PORTS {
            return Err(WireError::BadPortCount(n));
        }
        Ok(n)
    }
}

fn proto_byte(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

impl Message {
    /// The message's nonce.
    pub fn nonce(&self) -> Nonce {
        match *self {
            Message::Request { nonce, .. }
            | Message::Probe { nonce, .. }
            | Message::ProbeAck { nonce, .. }
            | Message::Report { nonce, .. }
            | Message::Refusal { nonce, .. } => nonce,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Message::Request { .. } => KIND_REQUEST,
            Message::Probe { .. } => KIND_PROBE,
            Message::ProbeAck { .. } => KIND_PROBE_ACK,
            Message::Report { .. } => KIND_REPORT,
            Message::Refusal { .. } => KIND_REFUSAL,
        }
    }

    /// Parses exactly one message filling all of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader { buf, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        let declared = usize::from(r.u16()?);
        if declared != buf.len() {
            return Err(WireError::LengthMismatch {
                declared,
                actual: buf.len(),
            });
        }
        let mut nonce = Nonce::default();
        nonce.0.copy_from_slice(r.take(NONCE_LEN)?);
        let message = match kind {
            KIND_REQUEST => {
                let n = r.count()?;
                let mut ports = List::new();
                for _ in 0..n {
                    // Cannot overflow: n ≤ MAX_PORTS was checked.
                    let _ = ports.push(r.port()?);
                }
                Message::Request { nonce, ports }
            }
            KIND_PROBE => Message::Probe {
                nonce,
                port: r.port()?,
            },
            KIND_PROBE_ACK => Message::ProbeAck {
                nonce,
                port: r.port()?,
            },
            KIND_REPORT => {
                let family = r.u8()?;
                r.reserved()?;
                let port = r.u16()?;
                let ip = match family {
                    4 => {
                        let b = r.take(4)?;
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                    6 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(r.take(16)?);
                        IpAddr::V6(Ipv6Addr::from(a))
                    }
                    other => return Err(WireError::BadFamily(other)),
                };
                let n = r.count()?;
                let mut results = List::new();
                for _ in 0..n {
                    let port_no = r.u16()?;
                    let protocol = match r.u8()? {
                        PROTO_TCP => Protocol::Tcp,
                        PROTO_UDP => Protocol::Udp,
                        other => return Err(WireError::BadProtocol(other)),
                    };
                    if port_no == 0 {
                        return Err(WireError::PortZero);
                    }
                    let outcome = DialOutcome::from_code(r.u8()?)?;
                    let rtt = Duration::from_micros(u64::from(r.u32()?));
                    let _ = results.push(DialResult {
                        port: DialPort {
                            port: port_no,
                            protocol,
                        },
                        outcome,
                        rtt,
                    });
                }
                Message::Report {
                    nonce,
                    observed: SocketAddr::new(ip, port),
                    results,
                }
            }
            KIND_REFUSAL => {
                let reason = RefusalCode::from_code(r.u16()?)?;
                r.reserved()?;
                r.reserved()?;
                Message::Refusal { nonce, reason }
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        // The declared length matched the buffer, so anything left over
        // means the counts and the length disagree.
        if r.at != buf.len() {
            return Err(WireError::LengthMismatch {
                declared,
                actual: r.at,
            });
        }
        Ok(message)
    }

    /// The number of bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Message::Request { ports, .. } => 2 + ports.len() * PORT_LEN,
                Message::Probe { .. } | Message::ProbeAck { .. } => PORT_LEN,
                Message::Report {
                    observed, results, ..
                } => {
                    let addr = if observed.is_ipv4() { 4 } else { 16 };
                    4 + addr + 2 + results.len() * RESULT_LEN
                }
                Message::Refusal { .. } => 4,
            }
    }

    /// Writes the message to the start of `buf`; returns its length.
    /// Refuses lists that are empty (a request or report needs a port) and
    /// port 0, so everything emitted parses back.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(WireError::BufferTooSmall { needed: len, got })?;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let check_port = |p: &DialPort| {
            if p.port == 0 {
                Err(WireError::PortZero)
            } else {
                Ok(())
            }
        };
        let check_count = |n: usize| {
            if n == 0 || n > MAX_PORTS {
                Err(WireError::BadPortCount(n))
            } else {
                Ok(())
            }
        };
        match self {
            Message::Request { ports, .. } => {
                check_count(ports.len())?;
                ports.as_slice().iter().try_for_each(check_port)?;
            }
            Message::Probe { port, .. } | Message::ProbeAck { port, .. } => check_port(port)?,
            Message::Report { results, .. } => {
                check_count(results.len())?;
                results
                    .as_slice()
                    .iter()
                    .try_for_each(|r| check_port(&r.port))?;
            }
            Message::Refusal { .. } => {}
        }
        put(&MAGIC);
        put(&[VERSION, self.kind()]);
        // len ≤ MAX_MESSAGE_LEN, far below u16::MAX.
        put(&(len as u16).to_be_bytes());
        put(&self.nonce().0);
        let port_bytes = |p: &DialPort| {
            let b = p.port.to_be_bytes();
            [b[0], b[1], proto_byte(p.protocol), 0]
        };
        match self {
            Message::Request { ports, .. } => {
                put(&[ports.len() as u8, 0]);
                for p in ports.as_slice() {
                    put(&port_bytes(p));
                }
            }
            Message::Probe { port, .. } | Message::ProbeAck { port, .. } => {
                put(&port_bytes(port));
            }
            Message::Report {
                observed, results, ..
            } => {
                let family = if observed.is_ipv4() { 4 } else { 6 };
                put(&[family, 0]);
                put(&observed.port().to_be_bytes());
                match observed.ip() {
                    IpAddr::V4(a) => put(&a.octets()),
                    IpAddr::V6(a) => put(&a.octets()),
                }
                put(&[results.len() as u8, 0]);
                for r in results.as_slice() {
                    let p = r.port.port.to_be_bytes();
                    put(&[p[0], p[1], proto_byte(r.port.protocol), r.outcome.code()]);
                    let us = u32::try_from(r.rtt.as_micros()).unwrap_or(u32::MAX);
                    put(&us.to_be_bytes());
                }
            }
            Message::Refusal { reason, .. } => {
                put(&reason.code().to_be_bytes());
                put(&[0, 0]);
            }
        }
        Ok(len)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::SplitMix64;

    fn nonce(seed: u64) -> Nonce {
        let mut n = Nonce::default();
        SplitMix64::new(seed).fill(&mut n.0);
        n
    }

    fn samples() -> Vec<Message> {
        let n = nonce(1);
        let full: Vec<DialResult> = (1..=MAX_PORTS as u16)
            .map(|p| DialResult {
                port: DialPort::udp(16000 + p),
                outcome: DialOutcome::Silence,
                rtt: Duration::ZERO,
            })
            .collect();
        vec![
            Message::Request {
                nonce: n,
                ports: List::from_slice(&[
                    DialPort::tcp(443),
                    DialPort::udp(4500),
                    DialPort::udp(5353),
                ])
                .unwrap(),
            },
            Message::Probe {
                nonce: n,
                port: DialPort::tcp(443),
            },
            Message::ProbeAck {
                nonce: n,
                port: DialPort::udp(4500),
            },
            Message::Report {
                nonce: n,
                observed: "203.0.113.9:51515".parse().unwrap(),
                results: List::from_slice(&[
                    DialResult {
                        port: DialPort::tcp(443),
                        outcome: DialOutcome::Verified,
                        rtt: Duration::from_micros(23_456),
                    },
                    DialResult {
                        port: DialPort::udp(4500),
                        outcome: DialOutcome::AnsweredByOther,
                        rtt: Duration::from_micros(1),
                    },
                ])
                .unwrap(),
            },
            Message::Report {
                nonce: n,
                observed: "[2001:db8::9]:40000".parse().unwrap(),
                results: List::from_slice(&full).unwrap(),
            },
            Message::Refusal {
                nonce: n,
                reason: RefusalCode::RateLimited,
            },
        ]
    }

    fn bytes(m: &Message) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_MESSAGE_LEN];
        let n = m.emit(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn every_kind_round_trips() {
        for m in samples() {
            let b = bytes(&m);
            assert_eq!(b.len(), m.buffer_len());
            assert!(b.len() <= MAX_MESSAGE_LEN);
            assert_eq!(Message::parse(&b), Ok(m), "{m:?}");
        }
    }

    #[test]
    fn probe_layout_is_fixed() {
        let m = Message::Probe {
            nonce: Nonce([7; 16]),
            port: DialPort::tcp(443),
        };
        let mut want = b"NKDB".to_vec();
        want.extend_from_slice(&[1, 2, 0, 28]);
        want.extend_from_slice(&[7; 16]);
        want.extend_from_slice(&[0x01, 0xBB, 6, 0]);
        assert_eq!(bytes(&m), want);
        assert_eq!(MAX_MESSAGE_LEN, bytes(&samples()[4]).len());
    }

    #[test]
    fn header_errors_are_named() {
        let good = bytes(&samples()[1]);
        let with = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            Message::parse(&b)
        };
        assert_eq!(with(0, b'X'), Err(WireError::BadMagic));
        assert_eq!(with(4, 2), Err(WireError::UnsupportedVersion(2)));
        assert_eq!(with(5, 9), Err(WireError::UnknownKind(9)));
        assert_eq!(
            with(7, 29),
            Err(WireError::LengthMismatch {
                declared: 29,
                actual: 28
            })
        );
        assert_eq!(with(26, 1), Err(WireError::BadProtocol(1)));
        assert_eq!(with(27, 1), Err(WireError::Reserved(27)));
        let mut zero = good.clone();
        zero[24] = 0;
        zero[25] = 0;
        assert_eq!(Message::parse(&zero), Err(WireError::PortZero));
        assert_eq!(
            Message::parse(&good[..3]),
            Err(WireError::Truncated { needed: 4, got: 3 })
        );
    }

    #[test]
    fn counts_and_codes_are_checked() {
        let req = bytes(&samples()[0]);
        let mut b = req.clone();
        b[24] = 0;
        assert_eq!(Message::parse(&b), Err(WireError::BadPortCount(0)));
        // A count that claims more items than the length holds.
        let mut b = req.clone();
        b[24] = 4;
        assert!(matches!(
            Message::parse(&b),
            Err(WireError::Truncated { .. })
        ));
        // A count that claims fewer: bytes left over.
        let mut b = req.clone();
        b[24] = 2;
        assert!(matches!(
            Message::parse(&b),
            Err(WireError::LengthMismatch { .. })
        ));
        let report = bytes(&samples()[3]);
        let mut b = report.clone();
        b[24] = 5;
        assert_eq!(Message::parse(&b), Err(WireError::BadFamily(5)));
        let mut b = report.clone();
        // First result's outcome byte: header 24 + 4 + addr 4 + 2, then +3.
        b[24 + 4 + 4 + 2 + 3] = 77;
        assert_eq!(Message::parse(&b), Err(WireError::UnknownOutcome(77)));
        let refusal = bytes(&samples()[5]);
        let mut b = refusal.clone();
        b[25] = 99;
        assert_eq!(Message::parse(&b), Err(WireError::UnknownRefusal(99)));
    }

    #[test]
    fn emit_refuses_what_would_not_parse() {
        let empty = Message::Request {
            nonce: nonce(2),
            ports: List::new(),
        };
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        assert_eq!(empty.emit(&mut buf), Err(WireError::BadPortCount(0)));
        let zero = Message::Probe {
            nonce: nonce(2),
            port: DialPort::tcp(0),
        };
        assert_eq!(zero.emit(&mut buf), Err(WireError::PortZero));
        let m = &samples()[0];
        assert_eq!(
            m.emit(&mut buf[..10]),
            Err(WireError::BufferTooSmall {
                needed: m.buffer_len(),
                got: 10
            })
        );
    }

    #[test]
    fn rtt_saturates_at_the_wire_width() {
        let m = Message::Report {
            nonce: nonce(3),
            observed: "192.0.2.1:1".parse().unwrap(),
            results: List::from_slice(&[DialResult {
                port: DialPort::tcp(22),
                outcome: DialOutcome::Verified,
                rtt: Duration::from_secs(100_000),
            }])
            .unwrap(),
        };
        let Ok(Message::Report { results, .. }) = Message::parse(&bytes(&m)) else {
            panic!("did not parse back");
        };
        assert_eq!(
            results.as_slice()[0].rtt,
            Duration::from_micros(u64::from(u32::MAX))
        );
    }

    #[test]
    fn every_truncation_and_random_bytes_fail_cleanly() {
        for m in samples() {
            let b = bytes(&m);
            for cut in 0..b.len() {
                assert!(Message::parse(&b[..cut]).is_err(), "{m:?} cut at {cut}");
            }
        }
        // Random garbage, and valid headers over random bodies: parse
        // returns, never panics.
        let mut rng = SplitMix64::new(99);
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        for i in 0..20_000 {
            let len = rng.below(MAX_MESSAGE_LEN as u64 + 1) as usize;
            rng.fill(&mut buf[..len]);
            if i % 2 == 0 && len >= 8 {
                buf[..4].copy_from_slice(&MAGIC);
                buf[4] = VERSION;
                buf[5] = 1 + (rng.below(5) as u8);
                buf[6..8].copy_from_slice(&(len as u16).to_be_bytes());
            }
            if let Ok(m) = Message::parse(&buf[..len]) {
                // Whatever parses emits back to the same bytes.
                assert_eq!(bytes(&m), &buf[..len]);
            }
        }
    }

    #[test]
    fn refusal_retryability() {
        assert!(RefusalCode::RateLimited.is_retryable());
        assert!(RefusalCode::Busy.is_retryable());
        assert!(!RefusalCode::PortNotAllowed.is_retryable());
        assert!(!RefusalCode::BadRequest.is_retryable());
        assert!(!RefusalCode::TooManyPorts.is_retryable());
        assert!(!RefusalCode::TargetNotAllowed.is_retryable());
    }

    #[test]
    fn every_refusal_code_round_trips() {
        for reason in RefusalCode::ALL {
            let m = Message::Refusal {
                nonce: nonce(4),
                reason,
            };
            assert_eq!(Message::parse(&bytes(&m)), Ok(m));
            assert!(!reason.as_str().is_empty());
        }
    }
}
