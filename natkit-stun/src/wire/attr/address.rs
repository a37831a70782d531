//! Address attributes: MAPPED-ADDRESS and its plain (non-XORed) relatives.
//!
//! Value layout (RFC 8489 §14.1): a reserved byte (ignored on receipt, zero on send), the
//! family (0x01 IPv4, 0x02 IPv6), the port, then 4 or 16 address bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

const FAMILY_IPV4: u8 = 0x01;
const FAMILY_IPV6: u8 = 0x02;

/// Value length of an address attribute carrying this address.
#[inline]
pub(crate) const fn address_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// Decodes a socket address, XORing port and address bytes with `xor` (all zero for the
/// plain attributes; cookie + transaction id for XOR-MAPPED-ADDRESS).
#[inline]
pub(crate) fn decode_address(
    attr: AttrType,
    value: &[u8],
    xor: &[u8; 16],
) -> Result<SocketAddr, Error> {
    let bad_len = || Error::InvalidLength {
        attr,
        len: value.len(),
    };
    let [_reserved, family, p0, p1, addr @ ..] = value else {
        return Err(bad_len());
    };
    let port = u16::from_be_bytes([p0 ^ xor[0], p1 ^ xor[1]]);
    match *family {
        FAMILY_IPV4 => {
            let a: [u8; 4] = addr.try_into().map_err(|_| bad_len())?;
            let ip = Ipv4Addr::new(a[0] ^ xor[0], a[1] ^ xor[1], a[2] ^ xor[2], a[3] ^ xor[3]);
            Ok(SocketAddr::new(IpAddr::V4(ip), port))
        }
        FAMILY_IPV6 => {
            let mut a: [u8; 16] = addr.try_into().map_err(|_| bad_len())?;
            for (b, k) in a.iter_mut().zip(xor) {
                *b ^= k;
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        family => Err(Error::UnknownAddressFamily { attr, family }),
    }
}

/// Encodes a socket address into `out` (exactly [`address_len`] bytes), XORed with `xor`.
#[inline]
pub(crate) fn emit_address(addr: &SocketAddr, out: &mut [u8], xor: &[u8; 16]) {
    let port = addr.port().to_be_bytes();
    let head = |family: u8| [0, family, port[0] ^ xor[0], port[1] ^ xor[1]];
    match addr {
        SocketAddr::V4(a) => {
            let ip = u32::from_be_bytes(a.ip().octets());
            let key = u32::from_be_bytes([xor[0], xor[1], xor[2], xor[3]]);
            let mut v = [0u8; 8];
            v[..4].copy_from_slice(&head(FAMILY_IPV4));
            v[4..].copy_from_slice(&(ip ^ key).to_be_bytes());
            if let Some(out) = out.get_mut(..8) {
                out.copy_from_slice(&v);
            }
        }
        SocketAddr::V6(a) => {
            let ip = u128::from_be_bytes(a.ip().octets()) ^ u128::from_be_bytes(*xor);
            let mut v = [0u8; 20];
            v[..4].copy_from_slice(&head(FAMILY_IPV6));
            v[4..].copy_from_slice(&ip.to_be_bytes());
            if let Some(out) = out.get_mut(..20) {
                out.copy_from_slice(&v);
            }
        }
    }
}

/// No XOR at all.
const PLAIN: [u8; 16] = [0; 16];

macro_rules! plain_address_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub SocketAddr);

        impl DecodeAttribute<'_> for $name {
            const TYPE: AttrType = $ty;
            fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
                decode_address(Self::TYPE, value, &PLAIN).map($name)
            }
        }

        impl EncodeAttribute for $name {
            fn attr_type(&self) -> AttrType {
                $ty
            }
            fn value_len(&self) -> usize {
                address_len(&self.0)
            }
            fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
                emit_address(&self.0, out, &PLAIN)
            }
        }

        impl From<SocketAddr> for $name {
            fn from(addr: SocketAddr) -> Self {
                $name(addr)
            }
        }
    };
}

plain_address_attr!(
    /// MAPPED-ADDRESS (RFC 8489 §14.1): the reflexive transport address, not XORed. Sent by
    /// RFC 3489 servers; RFC 5389+ servers send [`XorMappedAddress`](super::XorMappedAddress).
    MappedAddress,
    AttrType::MAPPED_ADDRESS
);
plain_address_attr!(
    /// ALTERNATE-SERVER (RFC 8489 §14.15): the server a 300 (Try Alternate) error redirects to.
    AlternateServer,
    AttrType::ALTERNATE_SERVER
);
plain_address_attr!(
    /// RESPONSE-ORIGIN (RFC 5780 §7.3): the address the response was sent from.
    ResponseOrigin,
    AttrType::RESPONSE_ORIGIN
);
plain_address_attr!(
    /// OTHER-ADDRESS (RFC 5780 §7.4): the server's alternate address (other IP and port)
    /// for NAT behaviour discovery.
    OtherAddress,
    AttrType::OTHER_ADDRESS
);
plain_address_attr!(
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3): the RFC 3489 name of OTHER-ADDRESS.
    ChangedAddress,
    AttrType::CHANGED_ADDRESS
);
plain_address_attr!(
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5): the RFC 3489 name of RESPONSE-ORIGIN.
    SourceAddress,
    AttrType::SOURCE_ADDRESS
);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    pub(crate) fn any_socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(Ipv4Addr::from(ip).into(), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(Ipv6Addr::from(ip).into(), port)),
        ]
    }

    #[test]
    fn ipv4_layout() {
        let ctx = Context::new(TransactionId::default());
        let mut buf = [0; 12];
        let a = MappedAddress("192.0.2.1:32853".parse().expect("addr"));
        a.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(buf, [0, 1, 0, 8, 0, 1, 0x80, 0x55, 192, 0, 2, 1]);
    }

    #[test]
    fn ipv6_layout() {
        // OTHER-ADDRESS [2a0d:88:77:66::11]:3479: family 0x02, the port, 16 bytes.
        let ctx = Context::new(TransactionId::default());
        let mut buf = [0; 24];
        let a = OtherAddress("[2a0d:88:77:66::11]:3479".parse().expect("addr"));
        a.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(
            buf,
            [
                0x80, 0x2c, 0, 20, 0, 2, 0x0d, 0x97, 0x2a, 0x0d, 0, 0x88, 0, 0x77, 0, 0x66, 0, 0,
                0, 0, 0, 0, 0, 0x11
            ]
        );
        assert_eq!(OtherAddress::decode(&buf[4..], &ctx), Ok(a));
        // A v4-mapped address stays IPv6 on the wire: the family is the address's own.
        let mapped = MappedAddress("[::ffff:192.0.2.1]:80".parse().expect("addr"));
        mapped.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(buf[5], FAMILY_IPV6);
    }

    #[test]
    fn rejects_bad_family_and_lengths() {
        let ctx = Context::new(TransactionId::default());
        let attr = AttrType::MAPPED_ADDRESS;
        assert_eq!(
            MappedAddress::decode(&[0, 3, 0, 1, 1, 2, 3, 4], &ctx),
            Err(Error::UnknownAddressFamily { attr, family: 3 })
        );
        assert_eq!(
            MappedAddress::decode(&[0, 1, 0, 1, 1, 2, 3], &ctx),
            Err(Error::InvalidLength { attr, len: 7 })
        );
        assert_eq!(
            MappedAddress::decode(&[0, 2, 0, 1, 1, 2, 3, 4], &ctx),
            Err(Error::InvalidLength { attr, len: 8 })
        );
        assert_eq!(
            MappedAddress::decode(&[], &ctx),
            Err(Error::InvalidLength { attr, len: 0 })
        );
        // The reserved first byte is ignored on receipt.
        assert_eq!(
            MappedAddress::decode(&[0xff, 1, 0, 80, 10, 0, 0, 1], &ctx),
            Ok(MappedAddress("10.0.0.1:80".parse().expect("addr")))
        );
    }

    proptest! {
        /// Any value at all, with either family byte: a typed error or an address of
        /// that family, never a panic; only the exact lengths (8 and 20) decode.
        #[test]
        fn arbitrary_values_decode_or_fail_typed(
            family in prop_oneof![Just(FAMILY_IPV4), Just(FAMILY_IPV6), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..40),
            tid in any::<[u8; 12]>(),
        ) {
            let ctx = Context::new(TransactionId::new(tid));
            let mut value = vec![0, family];
            value.extend_from_slice(&rest);
            for r in [
                MappedAddress::decode(&value, &ctx).map(|a| a.0),
                crate::attr::XorMappedAddress::decode(&value, &ctx).map(|a| a.0),
                OtherAddress::decode(&value, &ctx).map(|a| a.0),
            ] {
                match r {
                    Ok(a) => {
                        prop_assert!(
                            (family == FAMILY_IPV4 && a.is_ipv4() && value.len() == 8)
                                || (family == FAMILY_IPV6 && a.is_ipv6() && value.len() == 20)
                        );
                    }
                    Err(Error::InvalidLength { len, .. }) => prop_assert_eq!(len, value.len()),
                    Err(Error::UnknownAddressFamily { family: f, .. }) => {
                        prop_assert!(f == family && f != FAMILY_IPV4 && f != FAMILY_IPV6);
                    }
                    Err(e) => prop_assert!(false, "unexpected error {:?}", e),
                }
            }
        }

        #[test]
        fn round_trips(addr in any_socket_addr(), tid in any::<[u8; 12]>()) {
            let ctx = Context::new(TransactionId::new(tid));
            let mut buf = [0; 24];
            prop_assert_eq!(round_trip(&MappedAddress(addr), &mut buf, &ctx), MappedAddress(addr));
            prop_assert_eq!(round_trip(&AlternateServer(addr), &mut buf, &ctx), AlternateServer(addr));
            prop_assert_eq!(round_trip(&ResponseOrigin(addr), &mut buf, &ctx), ResponseOrigin(addr));
            prop_assert_eq!(round_trip(&OtherAddress(addr), &mut buf, &ctx), OtherAddress(addr));
            prop_assert_eq!(round_trip(&ChangedAddress(addr), &mut buf, &ctx), ChangedAddress(addr));
            prop_assert_eq!(round_trip(&SourceAddress(addr), &mut buf, &ctx), SourceAddress(addr));
        }
    }
}
