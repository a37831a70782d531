//! MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 attribute values (RFC 8489 §14.5, §14.6).
//! Computing and checking them over a message is in [`crate::integrity`].

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute, expect_len};
use crate::Error;

/// MESSAGE-INTEGRITY: the 20-byte HMAC-SHA1 of the message up to this attribute.
///
/// Use [`MessageBuilder::add_message_integrity`](crate::MessageBuilder::add_message_integrity)
/// to compute it; emitting this value by hand writes whatever bytes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageIntegrity(pub [u8; 20]);

impl DecodeAttribute<'_> for MessageIntegrity {
    const TYPE: AttrType = AttrType::MESSAGE_INTEGRITY;

    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        expect_len(Self::TYPE, value, 20)?;
        let mut mac = [0; 20];
        mac.copy_from_slice(value);
        Ok(MessageIntegrity(mac))
    }
}

impl EncodeAttribute for MessageIntegrity {
    fn attr_type(&self) -> AttrType {
        AttrType::MESSAGE_INTEGRITY
    }

    fn value_len(&self) -> usize {
        20
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        out.copy_from_slice(&self.0);
    }
}

/// MESSAGE-INTEGRITY-SHA256: the HMAC-SHA256 of the message up to this attribute,
/// possibly truncated to 16..=32 bytes (a multiple of 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageIntegritySha256 {
    mac: [u8; 32],
    len: u8,
}

impl MessageIntegritySha256 {
    /// A value from a MAC of 16..=32 bytes whose length is a multiple of 4.
    pub fn new(mac: &[u8]) -> Result<Self, Error> {
        if !(16..=32).contains(&mac.len()) || !mac.len().is_multiple_of(4) {
            return Err(Error::InvalidLength {
                attr: AttrType::MESSAGE_INTEGRITY_SHA256,
                len: mac.len(),
            });
        }
        let mut out = [0; 32];
        out[..mac.len()].copy_from_slice(mac);
        Ok(MessageIntegritySha256 {
            mac: out,
            len: mac.len() as u8,
        })
    }

    /// The (possibly truncated) MAC.
    pub fn mac(&self) -> &[u8] {
        self.mac.get(..usize::from(self.len)).unwrap_or(&self.mac)
    }
}

impl DecodeAttribute<'_> for MessageIntegritySha256 {
    const TYPE: AttrType = AttrType::MESSAGE_INTEGRITY_SHA256;

    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        MessageIntegritySha256::new(value)
    }
}

impl EncodeAttribute for MessageIntegritySha256 {
    fn attr_type(&self) -> AttrType {
        AttrType::MESSAGE_INTEGRITY_SHA256
    }

    fn value_len(&self) -> usize {
        usize::from(self.len)
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        out.copy_from_slice(self.mac());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn sha256_lengths() {
        assert!(MessageIntegritySha256::new(&[0; 12]).is_err());
        assert!(MessageIntegritySha256::new(&[0; 18]).is_err());
        assert!(MessageIntegritySha256::new(&[0; 36]).is_err());
        assert!(MessageIntegritySha256::new(&[0; 16]).is_ok());
        assert!(
            MessageIntegrity::decode(&[0; 19], &Context::new(TransactionId::default())).is_err()
        );
    }

    proptest! {
        #[test]
        fn round_trips(mac in any::<[u8; 32]>(), words in 4usize..=8, mac1 in any::<[u8; 20]>()) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 36];
            let v = MessageIntegritySha256::new(&mac[..words * 4]).expect("valid");
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
            prop_assert_eq!(v.mac(), &mac[..words * 4]);
            let v = MessageIntegrity(mac1);
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
        }
    }
}
