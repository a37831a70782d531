//! XOR-MAPPED-ADDRESS (RFC 8489 §14.2).

use std::net::SocketAddr;

use super::address::{address_len, decode_address, emit_address};
use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

/// XOR-MAPPED-ADDRESS: the reflexive transport address, with the port XORed with the top
/// 16 bits of the magic cookie and the address XORed with the cookie (IPv4) or with the
/// cookie followed by the transaction id (IPv6), so that NATs rewriting addresses in
/// payloads leave it alone.
///
/// The value held here is the real (un-XORed) address. The XOR uses the cookie field as
/// found in the message (see [`Context`]), which also decodes classic RFC 3489 servers'
/// 0x8020 attribute ([`AttrType::XOR_MAPPED_ADDRESS_LEGACY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XorMappedAddress(pub SocketAddr);

impl DecodeAttribute<'_> for XorMappedAddress {
    const TYPE: AttrType = AttrType::XOR_MAPPED_ADDRESS;

    #[inline]
    fn decode(value: &[u8], ctx: &Context) -> Result<Self, Error> {
        decode_address(Self::TYPE, value, ctx.xor_key()).map(XorMappedAddress)
    }
}

impl EncodeAttribute for XorMappedAddress {
    fn attr_type(&self) -> AttrType {
        AttrType::XOR_MAPPED_ADDRESS
    }

    #[inline]
    fn value_len(&self) -> usize {
        address_len(&self.0)
    }

    #[inline]
    fn emit_value(&self, out: &mut [u8], ctx: &Context) {
        emit_address(&self.0, out, ctx.xor_key());
    }
}

impl From<SocketAddr> for XorMappedAddress {
    fn from(addr: SocketAddr) -> Self {
        XorMappedAddress(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::address::tests::any_socket_addr;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn rfc8489_ipv4_example() {
        // RFC 5769 §2.2: 192.0.2.1:32853 is sent as port 0xa147, address e1 12 a6 43.
        let ctx = Context::new(TransactionId::default());
        let v = [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let a = XorMappedAddress::decode(&v, &ctx).expect("decode");
        assert_eq!(a.0, "192.0.2.1:32853".parse().expect("addr"));
    }

    #[test]
    fn legacy_cookie_field_is_used_for_xor() {
        // An RFC 3489 message: the "cookie" field is the start of a 128-bit id.
        let ctx = Context::with_cookie(0x0102_0304, TransactionId::default());
        let a = XorMappedAddress("10.0.0.1:4660".parse().expect("addr"));
        let mut buf = [0; 12];
        a.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(&buf[4..], &[0, 1, 0x12 ^ 1, 0x34 ^ 2, 10 ^ 1, 2, 3, 1 ^ 4]);
    }

    proptest! {
        #[test]
        fn round_trips(addr in any_socket_addr(), tid in any::<[u8; 12]>(), cookie in any::<u32>()) {
            let ctx = Context::with_cookie(cookie, TransactionId::new(tid));
            let mut buf = [0; 24];
            prop_assert_eq!(round_trip(&XorMappedAddress(addr), &mut buf, &ctx), XorMappedAddress(addr));
        }
    }
}
