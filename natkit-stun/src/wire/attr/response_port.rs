//! RESPONSE-PORT (RFC 5780 §7.5).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute, expect_len};
use crate::Error;

/// RESPONSE-PORT: the port the client wants the response sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponsePort(pub u16);

impl DecodeAttribute<'_> for ResponsePort {
    const TYPE: AttrType = AttrType::RESPONSE_PORT;

    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        expect_len(Self::TYPE, value, 4)?;
        match value {
            [a, b, ..] => Ok(ResponsePort(u16::from_be_bytes([*a, *b]))),
            _ => Err(Error::InvalidLength {
                attr: Self::TYPE,
                len: value.len(),
            }),
        }
    }
}

impl EncodeAttribute for ResponsePort {
    fn attr_type(&self) -> AttrType {
        AttrType::RESPONSE_PORT
    }

    fn value_len(&self) -> usize {
        4
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        let [a, b] = self.0.to_be_bytes();
        out.copy_from_slice(&[a, b, 0, 0]);
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
        fn round_trips(port in any::<u16>()) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 8];
            prop_assert_eq!(round_trip(&ResponsePort(port), &mut buf, &ctx), ResponsePort(port));
            prop_assert!(ResponsePort::decode(&[0; 2], &ctx).is_err());
        }
    }
}
