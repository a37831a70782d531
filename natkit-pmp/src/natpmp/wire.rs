//! The NAT-PMP wire format (RFC 6886 §3): request encoding and a checked
//! view over responses.
//!
//! Why not the `natpmp` crate at runtime: its async client
//! (`NatpmpAsync::read_response_or_retry`) has no timeout or retransmission
//! (it waits on `recv` forever), uses a connected socket so it cannot say
//! where a datagram came from or count spoofed ones, hard-codes port 5351,
//! reads into a 16-byte buffer without checking the received length (a
//! truncated answer parses as zeros), does not match the answer to the
//! request, and drops the epoch of error answers. Its types have private
//! fields, so a sans-IO core cannot build them either. This codec is the
//! small part we need (12- and 16-byte messages); the `natpmp` crate stays
//! as the reference it is checked against in the tests below.
//!
//! ```text
//! request   0: vers=0 | 1: op (0 addr, 1 UDP, 2 TCP) | 2-3: reserved
//!           4-5: internal port | 6-7: suggested external port | 8-11: lifetime
//! response  0: vers=0 | 1: 128+op | 2-3: result code | 4-7: seconds since epoch
//!           op 0:  8-11: external IPv4 address
//!           op 1/2: 8-9: internal port | 10-11: mapped external port | 12-15: lifetime
//! ```

use std::net::Ipv4Addr;

use natkit_core::Protocol;

use crate::error::{Error, Result};
use crate::natpmp::NatPmpResultCode;

/// The NAT-PMP server port on the gateway (also PCP's).
pub const NATPMP_PORT: u16 = 5351;

/// The NAT-PMP version, 0.
pub const NATPMP_VERSION: u8 = 0;

/// The length of every NAT-PMP response header (version, opcode, result,
/// epoch); error answers may be this short.
pub const HEADER_LEN: usize = 8;

/// A NAT-PMP opcode (without the response bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatPmpOpcode {
    /// 0: ask for the external address.
    ExternalAddress,
    /// 1: map a UDP port.
    MapUdp,
    /// 2: map a TCP port.
    MapTcp,
}

impl NatPmpOpcode {
    /// The mapping opcode for `protocol`.
    pub fn map(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Udp => Self::MapUdp,
            Protocol::Tcp => Self::MapTcp,
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::ExternalAddress => 0,
            Self::MapUdp => 1,
            Self::MapTcp => 2,
        }
    }

    /// The opcode for a wire value (without the response bit).
    pub fn from_u8(op: u8) -> Option<Self> {
        match op {
            0 => Some(Self::ExternalAddress),
            1 => Some(Self::MapUdp),
            2 => Some(Self::MapTcp),
            _ => None,
        }
    }

    /// The mapped protocol, for the mapping opcodes.
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Self::ExternalAddress => None,
            Self::MapUdp => Some(Protocol::Udp),
            Self::MapTcp => Some(Protocol::Tcp),
        }
    }
}

/// A NAT-PMP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatPmpRequest {
    /// Ask for the gateway's external address (2 bytes on the wire).
    ExternalAddress,
    /// Create, renew (same ports) or delete (lifetime 0, suggested port 0)
    /// a mapping (12 bytes on the wire).
    Map {
        /// TCP or UDP.
        protocol: Protocol,
        /// The port on this host.
        internal_port: u16,
        /// The external port asked for; the gateway may grant another.
        suggested_external_port: u16,
        /// Requested lifetime in seconds; 0 deletes.
        lifetime: u32,
    },
}

impl NatPmpRequest {
    /// The opcode.
    pub fn opcode(&self) -> NatPmpOpcode {
        match self {
            Self::ExternalAddress => NatPmpOpcode::ExternalAddress,
            Self::Map { protocol, .. } => NatPmpOpcode::map(*protocol),
        }
    }

    /// The encoded length.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::ExternalAddress => 2,
            Self::Map { .. } => 12,
        }
    }

    /// Encodes into the front of `buf`; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len();
        let Some(out) = buf.get_mut(..needed) else {
            return Err(Error::BufferTooSmall {
                len: buf.len(),
                needed,
            });
        };
        out.fill(0);
        out[0] = NATPMP_VERSION;
        out[1] = self.opcode().as_u8();
        if let Self::Map {
            internal_port,
            suggested_external_port,
            lifetime,
            ..
        } = self
        {
            out[4..6].copy_from_slice(&internal_port.to_be_bytes());
            out[6..8].copy_from_slice(&suggested_external_port.to_be_bytes());
            out[8..12].copy_from_slice(&lifetime.to_be_bytes());
        }
        Ok(needed)
    }

    /// Encodes into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.buffer_len()];
        // Cannot fail: the buffer has exactly the needed length.
        let _ = self.emit(&mut v);
        v
    }
}

/// A checked view over a NAT-PMP response.
///
/// [`new_checked`](Self::new_checked) validates the version, the response
/// bit, the opcode and the length once; the accessors cannot panic after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatPmpResponse<'a> {
    buf: &'a [u8],
    opcode: NatPmpOpcode,
}

impl<'a> NatPmpResponse<'a> {
    /// Validates `buf` as a NAT-PMP response.
    ///
    /// Success answers must be complete (12 bytes for the address, 16 for a
    /// mapping); error answers need only the 8-byte header. Trailing bytes
    /// are ignored.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        let [version, op, r0, r1, ..] = *buf else {
            return Err(Error::Truncated {
                len: buf.len(),
                needed: HEADER_LEN,
            });
        };
        if version != NATPMP_VERSION {
            return Err(Error::UnexpectedVersion { version });
        }
        if op & 0x80 == 0 {
            return Err(Error::NotAResponse);
        }
        let opcode =
            NatPmpOpcode::from_u8(op & 0x7f).ok_or(Error::UnknownOpcode { opcode: op & 0x7f })?;
        let success = u16::from_be_bytes([r0, r1]) == 0;
        let needed = match (success, opcode) {
            (false, _) => HEADER_LEN,
            (true, NatPmpOpcode::ExternalAddress) => 12,
            (true, _) => 16,
        };
        if buf.len() < needed {
            return Err(Error::Truncated {
                len: buf.len(),
                needed,
            });
        }
        Ok(NatPmpResponse { buf, opcode })
    }

    /// The opcode answered.
    pub fn opcode(&self) -> NatPmpOpcode {
        self.opcode
    }

    /// The result code.
    pub fn result_code(&self) -> NatPmpResultCode {
        NatPmpResultCode::from_u16(self.u16_at(2).unwrap_or(0))
    }

    /// Seconds since the server's epoch started.
    pub fn epoch(&self) -> u32 {
        self.u32_at(4).unwrap_or(0)
    }

    /// The external address (address answers of 12 bytes or more).
    pub fn external_address(&self) -> Option<Ipv4Addr> {
        match self.opcode {
            NatPmpOpcode::ExternalAddress => self.u32_at(8).map(Ipv4Addr::from),
            _ => None,
        }
    }

    /// The internal port (mapping answers of 16 bytes or more; error
    /// answers often carry it too).
    pub fn internal_port(&self) -> Option<u16> {
        self.mapping_field(|s| s.u16_at(8))
    }

    /// The external port the gateway granted.
    pub fn external_port(&self) -> Option<u16> {
        self.mapping_field(|s| s.u16_at(10))
    }

    /// The lifetime granted, in seconds.
    pub fn lifetime(&self) -> Option<u32> {
        self.mapping_field(|s| s.u32_at(12))
    }

    fn mapping_field<T>(&self, f: impl Fn(&Self) -> Option<T>) -> Option<T> {
        match self.opcode {
            NatPmpOpcode::ExternalAddress => None,
            _ if self.buf.len() < 16 => None,
            _ => f(self),
        }
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.buf.get(at..at + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.buf.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A parsed NAT-PMP answer (the owned form of [`NatPmpResponse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatPmpAnswer {
    /// The external address.
    ExternalAddress {
        /// Seconds since the server's epoch.
        epoch: u32,
        /// The gateway's external IPv4 address.
        address: Ipv4Addr,
    },
    /// A mapping granted (or, with lifetime 0, deleted).
    Mapping {
        /// TCP or UDP.
        protocol: Protocol,
        /// Seconds since the server's epoch.
        epoch: u32,
        /// The internal port.
        internal_port: u16,
        /// The external port granted; may differ from the one suggested.
        external_port: u16,
        /// The lifetime granted, in seconds.
        lifetime: u32,
    },
    /// A non-zero result code.
    Failure {
        /// The opcode answered.
        opcode: NatPmpOpcode,
        /// The result code.
        code: NatPmpResultCode,
        /// Seconds since the server's epoch.
        epoch: u32,
        /// The internal port, when the answer carries it.
        internal_port: Option<u16>,
    },
}

impl NatPmpAnswer {
    /// Parses a response.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let r = NatPmpResponse::new_checked(buf)?;
        let epoch = r.epoch();
        let code = r.result_code();
        if code != NatPmpResultCode::Success {
            return Ok(NatPmpAnswer::Failure {
                opcode: r.opcode(),
                code,
                epoch,
                internal_port: r.internal_port(),
            });
        }
        // new_checked guarantees the fields of a success answer exist.
        let missing = Error::Truncated {
            len: buf.len(),
            needed: 16,
        };
        Ok(match r.opcode().protocol() {
            None => NatPmpAnswer::ExternalAddress {
                epoch,
                address: r.external_address().ok_or(missing)?,
            },
            Some(protocol) => NatPmpAnswer::Mapping {
                protocol,
                epoch,
                internal_port: r.internal_port().ok_or(Error::Truncated {
                    len: buf.len(),
                    needed: 16,
                })?,
                external_port: r.external_port().ok_or(Error::Truncated {
                    len: buf.len(),
                    needed: 16,
                })?,
                lifetime: r.lifetime().ok_or(missing)?,
            },
        })
    }

    /// Seconds since the server's epoch.
    pub fn epoch(&self) -> u32 {
        match self {
            Self::ExternalAddress { epoch, .. }
            | Self::Mapping { epoch, .. }
            | Self::Failure { epoch, .. } => *epoch,
        }
    }

    /// The opcode answered.
    pub fn opcode(&self) -> NatPmpOpcode {
        match self {
            Self::ExternalAddress { .. } => NatPmpOpcode::ExternalAddress,
            Self::Mapping { protocol, .. } => NatPmpOpcode::map(*protocol),
            Self::Failure { opcode, .. } => *opcode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_layouts_from_rfc_6886() {
        assert_eq!(NatPmpRequest::ExternalAddress.to_vec(), vec![0, 0]);
        let map = NatPmpRequest::Map {
            protocol: Protocol::Tcp,
            internal_port: 443,
            suggested_external_port: 8443,
            lifetime: 7200,
        };
        assert_eq!(
            map.to_vec(),
            vec![0, 2, 0, 0, 0x01, 0xbb, 0x20, 0xfb, 0, 0, 0x1c, 0x20]
        );
        // Delete: lifetime 0 and suggested port 0 (RFC 6886 §3.4).
        let del = NatPmpRequest::Map {
            protocol: Protocol::Udp,
            internal_port: 4500,
            suggested_external_port: 0,
            lifetime: 0,
        };
        assert_eq!(del.to_vec(), vec![0, 1, 0, 0, 0x11, 0x94, 0, 0, 0, 0, 0, 0]);
        let mut small = [0u8; 11];
        assert!(matches!(
            map.emit(&mut small),
            Err(Error::BufferTooSmall {
                len: 11,
                needed: 12
            })
        ));
    }

    #[test]
    fn parses_address_and_mapping_answers() {
        let addr = [0, 128, 0, 0, 0, 0, 0x0e, 0x10, 198, 51, 100, 7];
        assert_eq!(
            NatPmpAnswer::parse(&addr).unwrap(),
            NatPmpAnswer::ExternalAddress {
                epoch: 3600,
                address: Ipv4Addr::new(198, 51, 100, 7)
            }
        );
        let map = [
            0, 130, 0, 0, 0, 0, 0, 60, 0x01, 0xbb, 0xc4, 0xbb, 0, 0, 0x0e, 0x10,
        ];
        assert_eq!(
            NatPmpAnswer::parse(&map).unwrap(),
            NatPmpAnswer::Mapping {
                protocol: Protocol::Tcp,
                epoch: 60,
                internal_port: 443,
                external_port: 50363,
                lifetime: 3600
            }
        );
    }

    #[test]
    fn error_answers_may_be_short() {
        // miniupnpd 2.3.1 answers an unsupported opcode with 8 bytes (seen
        // in the lab), and the RFC 6886 §3.5 error answers are 8 bytes too.
        let refused = [0, 129, 0, 2, 0, 0, 1, 0];
        assert_eq!(
            NatPmpAnswer::parse(&refused).unwrap(),
            NatPmpAnswer::Failure {
                opcode: NatPmpOpcode::MapUdp,
                code: NatPmpResultCode::NotAuthorized,
                epoch: 256,
                internal_port: None
            }
        );
    }

    #[test]
    fn rejects_bad_input_with_typed_errors() {
        assert!(matches!(
            NatPmpAnswer::parse(&[0, 128, 0]),
            Err(Error::Truncated { len: 3, .. })
        ));
        // A success answer cut short.
        assert!(matches!(
            NatPmpAnswer::parse(&[0, 130, 0, 0, 0, 0, 0, 1, 0, 80, 0, 80]),
            Err(Error::Truncated {
                len: 12,
                needed: 16
            })
        ));
        assert!(matches!(
            NatPmpAnswer::parse(&[2, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
            Err(Error::UnexpectedVersion { version: 2 })
        ));
        assert!(matches!(
            NatPmpAnswer::parse(&[0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]),
            Err(Error::NotAResponse)
        ));
        assert!(matches!(
            NatPmpAnswer::parse(&[0, 131, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]),
            Err(Error::UnknownOpcode { opcode: 3 })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(r) = NatPmpResponse::new_checked(&bytes) {
                let _ = (r.result_code(), r.epoch(), r.external_address(),
                    r.internal_port(), r.external_port(), r.lifetime());
            }
            let _ = NatPmpAnswer::parse(&bytes);
        }

        #[test]
        fn mapping_answers_round_trip(op in 1u8..=2, epoch: u32, ip: u16, ep: u16, lt: u32) {
            let mut b = vec![0, 128 + op, 0, 0];
            b.extend(epoch.to_be_bytes());
            b.extend(ip.to_be_bytes());
            b.extend(ep.to_be_bytes());
            b.extend(lt.to_be_bytes());
            let a = NatPmpAnswer::parse(&b).unwrap();
            let NatPmpAnswer::Mapping { epoch: e, internal_port, external_port, lifetime, .. } = a
            else { panic!("{a:?}") };
            prop_assert_eq!((e, internal_port, external_port, lifetime), (epoch, ip, ep, lt));
        }
    }

    /// The `natpmp` crate as the reference: its encoder writes the same
    /// bytes as ours, and its decoder reads the same values from an answer.
    mod against_natpmp_crate {
        use super::*;
        use std::future::Future;
        use std::io;
        use std::pin::pin;
        use std::sync::{Arc, Mutex};
        use std::task::{Context, Poll, Waker};

        /// An in-memory socket: records what is sent, replays one datagram.
        /// Clones share the buffers, so the test keeps a handle.
        #[derive(Default, Clone)]
        struct Capture {
            sent: Arc<Mutex<Vec<u8>>>,
            reply: Arc<Mutex<Vec<u8>>>,
        }

        #[async_trait::async_trait]
        impl natpmp::AsyncUdpSocket for Capture {
            async fn connect(&self, _addr: &str) -> io::Result<()> {
                Ok(())
            }
            async fn send(&self, buf: &[u8]) -> io::Result<usize> {
                self.sent.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
                let reply = self.reply.lock().unwrap();
                let n = reply.len().min(buf.len());
                buf[..n].copy_from_slice(&reply[..n]);
                Ok(n)
            }
        }

        /// Every future here completes on its first poll (no real I/O).
        fn ready<T>(f: impl Future<Output = T>) -> T {
            let mut f = pin!(f);
            match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(v) => v,
                Poll::Pending => panic!("in-memory future pending"),
            }
        }

        fn client() -> (natpmp::NatpmpAsync<Capture>, Capture) {
            let socket = Capture::default();
            (
                natpmp::new_natpmp_async_with(socket.clone(), Ipv4Addr::LOCALHOST),
                socket,
            )
        }

        proptest! {
            #[test]
            fn same_request_bytes(tcp: bool, internal: u16, external: u16, lifetime: u32) {
                let (n, socket) = client();
                let proto = if tcp { natpmp::Protocol::TCP } else { natpmp::Protocol::UDP };
                ready(n.send_port_mapping_request(proto, internal, external, lifetime)).unwrap();
                let ours = NatPmpRequest::Map {
                    protocol: if tcp { Protocol::Tcp } else { Protocol::Udp },
                    internal_port: internal,
                    suggested_external_port: external,
                    lifetime,
                };
                prop_assert_eq!(socket.sent.lock().unwrap().clone(), ours.to_vec());
            }

            #[test]
            fn same_answer_values(op in 0u8..=2, epoch: u32, a: u16, b: u16, lt: u32) {
                let mut bytes = vec![0, 128 + op, 0, 0];
                bytes.extend(epoch.to_be_bytes());
                bytes.extend(a.to_be_bytes());
                bytes.extend(b.to_be_bytes());
                bytes.extend(lt.to_be_bytes());
                let (n, socket) = client();
                *socket.reply.lock().unwrap() = bytes.clone();
                let theirs = ready(n.read_response_or_retry()).unwrap();
                let ours = NatPmpAnswer::parse(&bytes).unwrap();
                match (theirs, ours) {
                    (natpmp::Response::Gateway(g), NatPmpAnswer::ExternalAddress { epoch, address }) => {
                        prop_assert_eq!((g.epoch(), *g.public_address()), (epoch, address));
                    }
                    (natpmp::Response::UDP(m), NatPmpAnswer::Mapping { protocol: Protocol::Udp, epoch, internal_port, external_port, lifetime })
                    | (natpmp::Response::TCP(m), NatPmpAnswer::Mapping { protocol: Protocol::Tcp, epoch, internal_port, external_port, lifetime }) => {
                        prop_assert_eq!(
                            (m.epoch(), m.private_port(), m.public_port(), m.lifetime().as_secs()),
                            (epoch, internal_port, external_port, u64::from(lifetime))
                        );
                    }
                    (t, o) => prop_assert!(false, "disagree: {:?} vs {:?}", t, o),
                }
            }
        }

        #[test]
        fn same_address_request() {
            let (mut n, socket) = client();
            ready(n.send_public_address_request()).unwrap();
            assert_eq!(
                *socket.sent.lock().unwrap(),
                NatPmpRequest::ExternalAddress.to_vec()
            );
        }
    }
}
