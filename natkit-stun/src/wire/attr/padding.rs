//! PADDING (RFC 5780 §7.6).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

/// PADDING: filler that makes a message bigger (to test fragmentation); only its length
/// matters. Zeros are sent; received content is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Padding(pub u16);

impl DecodeAttribute<'_> for Padding {
    const TYPE: AttrType = AttrType::PADDING;

    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        u16::try_from(value.len())
            .map(Padding)
            .map_err(|_| Error::InvalidLength {
                attr: Self::TYPE,
                len: value.len(),
            })
    }
}

impl EncodeAttribute for Padding {
    fn attr_type(&self) -> AttrType {
        AttrType::PADDING
    }

    fn value_len(&self) -> usize {
        usize::from(self.0)
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        out.fill(0);
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
        fn round_trips(len in 0u16..1500) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0xffu8; 1508];
            prop_assert_eq!(round_trip(&Padding(len), &mut buf, &ctx), Padding(len));
        }
    }
}
