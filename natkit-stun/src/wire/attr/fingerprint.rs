//! FINGERPRINT attribute value (RFC 8489 §14.7). Computing and checking it over a message
//! is in [`crate::fingerprint`].

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute, expect_len};
use crate::Error;

/// FINGERPRINT: CRC-32 of the message up to this attribute, XORed with 0x5354554e.
///
/// Emitting this value by hand writes whatever number it holds; use
/// [`MessageBuilder::finish_with_fingerprint`](crate::MessageBuilder::finish_with_fingerprint)
/// to compute it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u32);

impl DecodeAttribute<'_> for Fingerprint {
    const TYPE: AttrType = AttrType::FINGERPRINT;

    #[inline]
    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        expect_len(Self::TYPE, value, 4)?;
        let mut b = [0; 4];
        b.copy_from_slice(value);
        Ok(Fingerprint(u32::from_be_bytes(b)))
    }
}

impl EncodeAttribute for Fingerprint {
    fn attr_type(&self) -> AttrType {
        AttrType::FINGERPRINT
    }

    fn value_len(&self) -> usize {
        4
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        out.copy_from_slice(&self.0.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips(v in any::<u32>()) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 8];
            prop_assert_eq!(round_trip(&Fingerprint(v), &mut buf, &ctx), Fingerprint(v));
            prop_assert!(Fingerprint::decode(&[0; 3], &ctx).is_err());
        }
    }
}
