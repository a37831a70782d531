//! CHANGE-REQUEST (RFC 5780 §7.2, RFC 3489 §11.2.4).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute, expect_len};
use crate::Error;

const CHANGE_IP: u8 = 0x04;
const CHANGE_PORT: u8 = 0x02;

/// CHANGE-REQUEST: asks the server to answer from its other IP address and/or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// Answer from the other IP address (flag A).
    pub change_ip: bool,
    /// Answer from the other port (flag B).
    pub change_port: bool,
}

impl DecodeAttribute<'_> for ChangeRequest {
    const TYPE: AttrType = AttrType::CHANGE_REQUEST;

    fn decode(value: &[u8], _ctx: &Context) -> Result<Self, Error> {
        expect_len(Self::TYPE, value, 4)?;
        // Other bits are reserved: ignored on receipt.
        let flags = value.get(3).copied().unwrap_or(0);
        Ok(ChangeRequest {
            change_ip: flags & CHANGE_IP != 0,
            change_port: flags & CHANGE_PORT != 0,
        })
    }
}

impl EncodeAttribute for ChangeRequest {
    fn attr_type(&self) -> AttrType {
        AttrType::CHANGE_REQUEST
    }

    fn value_len(&self) -> usize {
        4
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        let mut flags = 0;
        if self.change_ip {
            flags |= CHANGE_IP;
        }
        if self.change_port {
            flags |= CHANGE_PORT;
        }
        out.copy_from_slice(&[0, 0, 0, flags]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn layout() {
        let ctx = Context::new(TransactionId::default());
        let mut buf = [0; 8];
        ChangeRequest {
            change_ip: true,
            change_port: true,
        }
        .emit(&mut buf, &ctx)
        .expect("emit");
        assert_eq!(buf, [0, 3, 0, 4, 0, 0, 0, 6]);
        assert!(ChangeRequest::decode(&[0, 0, 6], &ctx).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(change_ip in any::<bool>(), change_port in any::<bool>()) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 8];
            let v = ChangeRequest { change_ip, change_port };
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
        }
    }
}
