//! ERROR-CODE (RFC 8489 §14.8).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

/// ERROR-CODE: a numeric code 300..=699 and a UTF-8 reason phrase (fewer than 128
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode<'a> {
    code: u16,
    reason: &'a str,
}

impl<'a> ErrorCode<'a> {
    /// 300 Try Alternate.
    pub const TRY_ALTERNATE: u16 = 300;
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated.
    pub const UNAUTHENTICATED: u16 = 401;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 438 Stale Nonce.
    pub const STALE_NONCE: u16 = 438;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;

    /// Longest reason phrase accepted, in bytes.
    pub const MAX_REASON_BYTES: usize = 763;

    /// An error code for sending: `code` must be in 300..=699 and the reason fewer than 128
    /// characters.
    pub fn new(code: u16, reason: &'a str) -> Result<Self, Error> {
        if !(300..=699).contains(&code) {
            return Err(Error::InvalidErrorCode {
                class: u8::try_from(code / 100).unwrap_or(u8::MAX),
                number: (code % 100) as u8,
            });
        }
        if reason.len() > Self::MAX_REASON_BYTES || reason.chars().count() > 127 {
            return Err(Error::InvalidLength {
                attr: AttrType::ERROR_CODE,
                len: 4 + reason.len(),
            });
        }
        Ok(ErrorCode { code, reason })
    }

    /// The numeric code, 300..=699.
    pub const fn code(&self) -> u16 {
        self.code
    }

    /// The hundreds digit (3..=6).
    pub const fn class(&self) -> u8 {
        (self.code / 100) as u8
    }

    /// The last two digits (0..=99).
    pub const fn number(&self) -> u8 {
        (self.code % 100) as u8
    }

    /// The reason phrase.
    pub const fn reason(&self) -> &'a str {
        self.reason
    }
}

impl<'a> DecodeAttribute<'a> for ErrorCode<'a> {
    const TYPE: AttrType = AttrType::ERROR_CODE;

    fn decode(value: &'a [u8], _ctx: &Context) -> Result<Self, Error> {
        let attr = Self::TYPE;
        let [_, _, class, number, reason @ ..] = value else {
            return Err(Error::InvalidLength {
                attr,
                len: value.len(),
            });
        };
        if reason.len() > Self::MAX_REASON_BYTES {
            return Err(Error::InvalidLength {
                attr,
                len: value.len(),
            });
        }
        // The 21 reserved bits are ignored; only the low 3 bits carry the class.
        let class = class & 0x07;
        let number = *number;
        if !(3..=6).contains(&class) || number > 99 {
            return Err(Error::InvalidErrorCode { class, number });
        }
        let reason = core::str::from_utf8(reason).map_err(|_| Error::InvalidUtf8 { attr })?;
        Ok(ErrorCode {
            code: u16::from(class) * 100 + u16::from(number),
            reason,
        })
    }
}

impl EncodeAttribute for ErrorCode<'_> {
    fn attr_type(&self) -> AttrType {
        AttrType::ERROR_CODE
    }

    fn value_len(&self) -> usize {
        4 + self.reason.len()
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        let (head, reason) = out.split_at_mut(4);
        head.copy_from_slice(&[0, 0, self.class(), self.number()]);
        reason.copy_from_slice(self.reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn layout_and_validation() {
        let ctx = Context::new(TransactionId::default());
        let e = ErrorCode::new(420, "Unknown Attribute").expect("valid");
        let mut buf = [0; 32];
        let n = e.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(n, 4 + 4 + 20);
        assert_eq!(&buf[..8], &[0, 9, 0, 21, 0, 0, 4, 20]);
        assert_eq!(ErrorCode::decode(&buf[4..25], &ctx), Ok(e));
        assert_eq!(
            ErrorCode::decode(&[0, 0, 2, 0], &ctx),
            Err(Error::InvalidErrorCode {
                class: 2,
                number: 0
            })
        );
        assert_eq!(
            ErrorCode::decode(&[0, 0, 4, 100], &ctx),
            Err(Error::InvalidErrorCode {
                class: 4,
                number: 100
            })
        );
        assert!(ErrorCode::decode(&[0, 0, 4], &ctx).is_err());
        assert!(ErrorCode::new(299, "").is_err());
        assert!(ErrorCode::new(700, "").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(code in 300u16..=699, reason in "\\PC{0,127}") {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 1024];
            let e = ErrorCode::new(code, &reason).expect("valid");
            prop_assert_eq!(round_trip(&e, &mut buf, &ctx), e);
        }
    }
}
