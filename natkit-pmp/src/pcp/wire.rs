//! The PCP wire format (RFC 6887 §7, §11): a request builder that writes
//! into a caller's buffer, and a checked view over responses.
//!
//! ```text
//! request header (24)   0: version=2 | 1: R=0,opcode | 2-3: reserved
//!                       4-7: requested lifetime | 8-23: client IP (IPv4-mapped for IPv4)
//! response header (24)  0: version | 1: R=1,opcode | 2: reserved | 3: result code
//!                       4-7: lifetime | 8-11: epoch time | 12-23: reserved
//! MAP data (36)         0-11: mapping nonce | 12: protocol | 13-15: reserved
//!                       16-17: internal port | 18-19: (suggested|assigned) external port
//!                       20-35: (suggested|assigned) external IP address
//! option                0: code | 1: reserved | 2-3: length | data, padded to 4
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use natkit_core::Protocol;
use rand::Rng;

use crate::error::{Error, Result};
use crate::pcp::PcpResultCode;

/// The PCP version this crate speaks.
pub const PCP_VERSION: u8 = 2;

/// The longest PCP message (RFC 6887 §7).
pub const MAX_MESSAGE_LEN: usize = 1100;

/// The common header's length.
pub const HEADER_LEN: usize = 24;

/// The MAP opcode data's length.
pub const MAP_DATA_LEN: usize = 36;

/// IANA protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;

/// IANA protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// The IANA protocol number of `protocol`.
pub fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
    }
}

/// A PCP opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcpOpcode {
    /// 0 ANNOUNCE: learn whether a server is there and its epoch.
    Announce,
    /// 1 MAP: create, renew or delete an inbound mapping.
    Map,
    /// 2 PEER: an outbound mapping to a known peer (not sent by natkit).
    Peer,
}

impl PcpOpcode {
    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Announce => 0,
            Self::Map => 1,
            Self::Peer => 2,
        }
    }

    /// The opcode for a wire value (without the R bit).
    pub fn from_u8(op: u8) -> Option<Self> {
        match op {
            0 => Some(Self::Announce),
            1 => Some(Self::Map),
            2 => Some(Self::Peer),
            _ => None,
        }
    }
}

/// A 96-bit mapping nonce (RFC 6887 §11.1). A mapping can only be renewed
/// or deleted with the nonce that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; 12]);

impl Nonce {
    /// A fresh nonce from `rng`.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut n = [0u8; 12];
        rng.fill_bytes(&mut n);
        Nonce(n)
    }
}

/// An address as PCP carries it: IPv6 as is, IPv4 as IPv4-mapped IPv6.
pub fn ip_to_wire(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address a 16-byte PCP field holds; IPv4-mapped becomes IPv4.
pub fn ip_from_wire(octets: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(octets);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The MAP opcode's request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRequest {
    /// The mapping nonce.
    pub nonce: Nonce,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on the client.
    pub internal_port: u16,
    /// The external address and port asked for. An unspecified address
    /// (`0.0.0.0`, sent as `::ffff:0.0.0.0`, or `::`) and port 0 mean no
    /// preference.
    pub suggested_external: SocketAddr,
}

/// What a request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpRequestBody {
    /// ANNOUNCE: no opcode data.
    Announce,
    /// MAP.
    Map(MapRequest),
}

/// A PCP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpRequest {
    /// The version, [`PCP_VERSION`] unless testing servers.
    pub version: u8,
    /// Requested lifetime in seconds (0 deletes a MAP; ANNOUNCE uses 0).
    pub lifetime: u32,
    /// The client's own address, which must be the packet's source address
    /// (the server answers ADDRESS_MISMATCH otherwise).
    pub client: IpAddr,
    /// The opcode and its data.
    pub body: PcpRequestBody,
}

impl PcpRequest {
    /// An ANNOUNCE request from `client`.
    pub fn announce(client: IpAddr) -> Self {
        PcpRequest {
            version: PCP_VERSION,
            lifetime: 0,
            client,
            body: PcpRequestBody::Announce,
        }
    }

    /// A MAP request from `client`.
    pub fn map(client: IpAddr, lifetime: u32, map: MapRequest) -> Self {
        PcpRequest {
            version: PCP_VERSION,
            lifetime,
            client,
            body: PcpRequestBody::Map(map),
        }
    }

    /// The opcode.
    pub fn opcode(&self) -> PcpOpcode {
        match self.body {
            PcpRequestBody::Announce => PcpOpcode::Announce,
            PcpRequestBody::Map(_) => PcpOpcode::Map,
        }
    }

    /// The encoded length.
    pub fn buffer_len(&self) -> usize {
        match self.body {
            PcpRequestBody::Announce => HEADER_LEN,
            PcpRequestBody::Map(_) => HEADER_LEN + MAP_DATA_LEN,
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
        out[0] = self.version;
        out[1] = self.opcode().as_u8();
        out[4..8].copy_from_slice(&self.lifetime.to_be_bytes());
        out[8..24].copy_from_slice(&ip_to_wire(self.client));
        if let PcpRequestBody::Map(m) = self.body {
            let d = &mut out[HEADER_LEN..];
            d[0..12].copy_from_slice(&m.nonce.0);
            d[12] = protocol_number(m.protocol);
            d[16..18].copy_from_slice(&m.internal_port.to_be_bytes());
            d[18..20].copy_from_slice(&m.suggested_external.port().to_be_bytes());
            d[20..36].copy_from_slice(&ip_to_wire(m.suggested_external.ip()));
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

/// The MAP data of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapResponse {
    /// The nonce the server echoed.
    pub nonce: Nonce,
    /// The IANA protocol number.
    pub protocol: u8,
    /// The internal port.
    pub internal_port: u16,
    /// The assigned external address and port (IPv4-mapped turned into
    /// IPv4).
    pub external: SocketAddr,
}

/// One option of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpOption<'a> {
    /// The option code.
    pub code: u8,
    /// The option data (without padding).
    pub data: &'a [u8],
}

/// A checked view over a PCP response.
///
/// [`new_checked`](Self::new_checked) validates the length (24 to 1100
/// bytes, a multiple of 4), the R bit, and the option list once; no
/// accessor can panic after. Opcode data is only read for version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcpResponse<'a> {
    buf: &'a [u8],
    /// Where the options start, or `None` when there is no MAP data in an
    /// error answer (some servers send only the header then).
    options_at: Option<usize>,
}

impl<'a> PcpResponse<'a> {
    /// Validates `buf` as a PCP response.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self> {
        let len = buf.len();
        if len < HEADER_LEN {
            return Err(Error::Truncated {
                len,
                needed: HEADER_LEN,
            });
        }
        if len > MAX_MESSAGE_LEN || !len.is_multiple_of(4) {
            return Err(Error::BadLength { len });
        }
        if buf[1] & 0x80 == 0 {
            return Err(Error::NotAResponse);
        }
        let mut view = PcpResponse {
            buf,
            options_at: None,
        };
        if view.version() != PCP_VERSION {
            return Ok(view);
        }
        let success = view.result_code() == PcpResultCode::Success;
        let options_at = match view.opcode() {
            Some(PcpOpcode::Announce) => Some(HEADER_LEN),
            Some(PcpOpcode::Map) if len >= HEADER_LEN + MAP_DATA_LEN => {
                Some(HEADER_LEN + MAP_DATA_LEN)
            }
            Some(PcpOpcode::Map) if success => {
                return Err(Error::Truncated {
                    len,
                    needed: HEADER_LEN + MAP_DATA_LEN,
                });
            }
            Some(PcpOpcode::Map) => None,
            Some(PcpOpcode::Peer) | None => None,
        };
        if let Some(at) = options_at {
            check_options(buf, at)?;
        }
        view.options_at = options_at;
        Ok(view)
    }

    /// The version field.
    pub fn version(&self) -> u8 {
        self.buf[0]
    }

    /// The raw opcode (without the R bit).
    pub fn opcode_raw(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    /// The opcode, when known.
    pub fn opcode(&self) -> Option<PcpOpcode> {
        PcpOpcode::from_u8(self.opcode_raw())
    }

    /// The result code.
    pub fn result_code(&self) -> PcpResultCode {
        PcpResultCode::from_u8(self.buf[3])
    }

    /// The lifetime: granted (success) or how long the error lasts.
    pub fn lifetime(&self) -> u32 {
        be32(self.buf, 4)
    }

    /// The server's epoch time, in seconds.
    pub fn epoch(&self) -> u32 {
        be32(self.buf, 8)
    }

    /// The MAP data, for version-2 MAP responses that carry it.
    pub fn map(&self) -> Option<MapResponse> {
        if self.version() != PCP_VERSION || self.opcode() != Some(PcpOpcode::Map) {
            return None;
        }
        let d = self.buf.get(HEADER_LEN..HEADER_LEN + MAP_DATA_LEN)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&d[0..12]);
        let mut ip = [0u8; 16];
        ip.copy_from_slice(&d[20..36]);
        Some(MapResponse {
            nonce: Nonce(nonce),
            protocol: d[12],
            internal_port: u16::from_be_bytes([d[16], d[17]]),
            external: SocketAddr::new(ip_from_wire(ip), u16::from_be_bytes([d[18], d[19]])),
        })
    }

    /// The options (already checked to be well-formed).
    pub fn options(&self) -> impl Iterator<Item = PcpOption<'a>> + 'a {
        let buf = self.buf;
        let mut at = self.options_at.unwrap_or(buf.len());
        std::iter::from_fn(move || {
            let head = buf.get(at..at + 4)?;
            let code = head[0];
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let data = buf.get(at + 4..at + 4 + len)?;
            at += 4 + padded(len);
            Some(PcpOption { code, data })
        })
    }
}

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn be32(buf: &[u8], at: usize) -> u32 {
    match buf.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// Checks that the options from `at` on each fit in the message.
fn check_options(buf: &[u8], mut at: usize) -> Result<()> {
    while at < buf.len() {
        let Some(head) = buf.get(at..at + 4) else {
            return Err(Error::MalformedOption { offset: at });
        };
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let end = at + 4 + padded(len);
        if end > buf.len() {
            return Err(Error::MalformedOption { offset: at });
        }
        at = end;
    }
    Ok(())
}

/// The IPv4-mapped unspecified address `::ffff:0.0.0.0`: "no preference"
/// for an IPv4 suggested external address.
pub const UNSPECIFIED_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const NONCE: Nonce = Nonce([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

    #[test]
    fn map_request_layout_rfc_6887() {
        let req = PcpRequest::map(
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
            7200,
            MapRequest {
                nonce: NONCE,
                protocol: Protocol::Udp,
                internal_port: 4500,
                suggested_external: SocketAddr::new(UNSPECIFIED_V4, 4500),
            },
        );
        let b = req.to_vec();
        assert_eq!(b.len(), 60);
        // Header: version 2, opcode MAP, reserved, lifetime 7200.
        assert_eq!(&b[0..8], &[2, 1, 0, 0, 0, 0, 0x1c, 0x20]);
        // Client address IPv4-mapped: ::ffff:192.168.1.10.
        assert_eq!(
            &b[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10]
        );
        assert_eq!(&b[24..36], &NONCE.0);
        assert_eq!(&b[36..40], &[17, 0, 0, 0]);
        assert_eq!(&b[40..44], &[0x11, 0x94, 0x11, 0x94]);
        // No preference for IPv4: ::ffff:0.0.0.0.
        assert_eq!(
            &b[44..60],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
        let mut small = [0u8; 59];
        assert!(matches!(
            req.emit(&mut small),
            Err(Error::BufferTooSmall { needed: 60, .. })
        ));
    }

    #[test]
    fn announce_and_ipv6_requests() {
        let client: IpAddr = "2001:db8::5".parse().unwrap();
        let a = PcpRequest::announce(client).to_vec();
        assert_eq!(a.len(), 24);
        assert_eq!(&a[0..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(ip_from_wire(a[8..24].try_into().unwrap()), client);
        let m = PcpRequest::map(
            client,
            60,
            MapRequest {
                nonce: NONCE,
                protocol: Protocol::Tcp,
                internal_port: 22,
                suggested_external: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            },
        )
        .to_vec();
        assert_eq!(m[36], 6);
        // No preference for IPv6: all zeros.
        assert_eq!(&m[44..60], &[0u8; 16]);
    }

    fn map_response(result: u8, nonce: Nonce, ext: [u8; 16]) -> Vec<u8> {
        let mut b = vec![2, 0x81, 0, result];
        b.extend(3600u32.to_be_bytes());
        b.extend(1234u32.to_be_bytes());
        b.extend([0u8; 12]);
        b.extend(nonce.0);
        b.extend([17, 0, 0, 0]);
        b.extend(4500u16.to_be_bytes());
        b.extend(61000u16.to_be_bytes());
        b.extend(ext);
        b
    }

    #[test]
    fn parses_map_response() {
        let ext = ip_to_wire(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)));
        let b = map_response(0, NONCE, ext);
        let r = PcpResponse::new_checked(&b).unwrap();
        assert_eq!(r.version(), 2);
        assert_eq!(r.opcode(), Some(PcpOpcode::Map));
        assert_eq!(r.result_code(), PcpResultCode::Success);
        assert_eq!(r.lifetime(), 3600);
        assert_eq!(r.epoch(), 1234);
        assert_eq!(
            r.map(),
            Some(MapResponse {
                nonce: NONCE,
                protocol: 17,
                internal_port: 4500,
                external: "203.0.113.9:61000".parse().unwrap()
            })
        );
        assert_eq!(r.options().count(), 0);
    }

    /// A firewall's answer for an IPv6 internal address: the assigned
    /// external address is IPv6 as is (not turned into IPv4), and equals
    /// the internal one.
    #[test]
    fn parses_ipv6_pinhole_response() {
        let host: Ipv6Addr = "2a0d:88:77:77::2".parse().unwrap();
        let mut b = map_response(0, NONCE, host.octets());
        // Internal and external port both 4500.
        b[42..44].copy_from_slice(&4500u16.to_be_bytes());
        let r = PcpResponse::new_checked(&b).unwrap();
        let m = r.map().unwrap();
        assert_eq!(m.external, SocketAddr::from((host, 4500)));
        assert_eq!(m.internal_port, 4500);
        // `::ffff:a.b.c.d` is the only form read as IPv4; an IPv6 address
        // whose last 32 bits look like IPv4 stays IPv6.
        let nat64: Ipv6Addr = "64:ff9b::c633:6402".parse().unwrap();
        assert_eq!(ip_from_wire(nat64.octets()), IpAddr::V6(nat64));
    }

    /// RFC 6887 §11.1 for an IPv6 client: the client address field is the
    /// address itself (not IPv4-mapped), and so is a suggested external
    /// address; a delete is the same MAP with lifetime 0.
    #[test]
    fn ipv6_pinhole_request_layout() {
        let host: Ipv6Addr = "2a0d:88:77:77::2".parse().unwrap();
        let map = MapRequest {
            nonce: NONCE,
            protocol: Protocol::Tcp,
            internal_port: 18_446,
            suggested_external: SocketAddr::from((Ipv6Addr::UNSPECIFIED, 18_446)),
        };
        let b = PcpRequest::map(IpAddr::V6(host), 600, map).to_vec();
        assert_eq!(b.len(), 60);
        assert_eq!(&b[0..8], &[2, 1, 0, 0, 0, 0, 0x02, 0x58]);
        assert_eq!(&b[8..24], &host.octets());
        assert_eq!(&b[24..36], &NONCE.0);
        assert_eq!(&b[36..40], &[6, 0, 0, 0]);
        assert_eq!(&b[40..44], &[0x48, 0x0e, 0x48, 0x0e]);
        assert_eq!(&b[44..60], &[0u8; 16]);
        let delete = PcpRequest::map(IpAddr::V6(host), 0, map).to_vec();
        assert_eq!(&delete[4..8], &[0, 0, 0, 0]);
        assert_eq!(&delete[8..], &b[8..]);
        let own = MapRequest {
            suggested_external: SocketAddr::from((host, 18_446)),
            ..map
        };
        let b = PcpRequest::map(IpAddr::V6(host), 600, own).to_vec();
        assert_eq!(&b[44..60], &host.octets());
    }

    #[test]
    fn error_codes_and_options() {
        let mut b = map_response(8, NONCE, [0; 16]);
        // A PREFER_FAILURE option (code 2, no data) and a 5-byte option.
        b.extend([2, 0, 0, 0]);
        b.extend([99, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]);
        let r = PcpResponse::new_checked(&b).unwrap();
        assert_eq!(r.result_code(), PcpResultCode::NoResources);
        let opts: Vec<_> = r.options().collect();
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[1].code, 99);
        assert_eq!(opts[1].data, &[1, 2, 3, 4, 5]);
        // An option that claims more than the message holds.
        let mut bad = map_response(0, NONCE, [0; 16]);
        bad.extend([1, 0, 0, 8, 0, 0, 0, 0]);
        assert!(matches!(
            PcpResponse::new_checked(&bad),
            Err(Error::MalformedOption { offset: 60 })
        ));
    }

    #[test]
    fn header_only_error_and_bad_lengths() {
        // 11 CANNOT_PROVIDE_EXTERNAL with only a header: accepted, no MAP data.
        let mut h = vec![2, 0x81, 0, 11];
        h.extend([0u8; 20]);
        let r = PcpResponse::new_checked(&h).unwrap();
        assert_eq!(r.result_code(), PcpResultCode::CannotProvideExternal);
        assert_eq!(r.map(), None);
        // The same header with SUCCESS is truncated.
        h[3] = 0;
        assert!(matches!(
            PcpResponse::new_checked(&h),
            Err(Error::Truncated { needed: 60, .. })
        ));
        assert!(matches!(
            PcpResponse::new_checked(&[2, 0x81, 0, 0]),
            Err(Error::Truncated { len: 4, .. })
        ));
        assert!(matches!(
            PcpResponse::new_checked(&[0u8; 26]),
            Err(Error::BadLength { len: 26 })
        ));
        assert!(matches!(
            PcpResponse::new_checked(&vec![0u8; 1104]),
            Err(Error::BadLength { len: 1104 })
        ));
        assert!(matches!(
            PcpResponse::new_checked(&[2u8; 24]),
            Err(Error::NotAResponse)
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            if let Ok(r) = PcpResponse::new_checked(&bytes) {
                let _ = (r.version(), r.opcode(), r.result_code(), r.lifetime(), r.epoch(), r.map());
                for o in r.options() {
                    let _ = (o.code, o.data.len());
                }
            }
        }

        #[test]
        fn arbitrary_v2_map_responses_never_panic(
            result: u8, tail in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            let mut b = map_response(result, NONCE, [0; 16]);
            b.extend(tail);
            if let Ok(r) = PcpResponse::new_checked(&b) {
                prop_assert!(r.map().is_some());
                let _ = r.options().count();
            }
        }

        #[test]
        fn addresses_round_trip(v4: [u8; 4], v6: [u8; 16]) {
            let a = IpAddr::V4(Ipv4Addr::from(v4));
            prop_assert_eq!(ip_from_wire(ip_to_wire(a)), a);
            let b = IpAddr::V6(Ipv6Addr::from(v6));
            let back = ip_from_wire(ip_to_wire(b));
            prop_assert!(back == b || Ipv6Addr::from(v6).to_ipv4_mapped().map(IpAddr::V4) == Some(back));
        }
    }
}
