//! Text attributes: USERNAME, SOFTWARE, REALM, NONCE (UTF-8, bounded length).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

/// Validates a text value: UTF-8 and at most `max_bytes` long.
fn text(attr: AttrType, value: &[u8], max_bytes: usize) -> Result<&str, Error> {
    if value.len() > max_bytes {
        return Err(Error::InvalidLength {
            attr,
            len: value.len(),
        });
    }
    core::str::from_utf8(value).map_err(|_| Error::InvalidUtf8 { attr })
}

macro_rules! text_attr {
    ($(#[$doc:meta])* $name:ident, $ty:expr, max_bytes = $max:expr, max_chars = $chars:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name<'a>(&'a str);

        impl<'a> $name<'a> {
            /// Longest value accepted, in bytes.
            pub const MAX_BYTES: usize = $max;

            /// Wraps a value for sending; fails if it is longer than the RFC allows.
            #[inline]
            pub fn new(value: &'a str) -> Result<Self, Error> {
                // A value of at most `$chars` bytes has at most `$chars` characters, so the
                // characters only need counting for longer values.
                if value.len() > Self::MAX_BYTES
                    || (value.len() > $chars && value.chars().count() > $chars)
                {
                    return Err(Error::InvalidLength { attr: $ty, len: value.len() });
                }
                Ok($name(value))
            }

            /// The text.
            pub const fn as_str(&self) -> &'a str {
                self.0
            }
        }

        impl<'a> DecodeAttribute<'a> for $name<'a> {
            const TYPE: AttrType = $ty;
            fn decode(value: &'a [u8], _ctx: &Context) -> Result<Self, Error> {
                text(Self::TYPE, value, Self::MAX_BYTES).map($name)
            }
        }

        impl EncodeAttribute for $name<'_> {
            fn attr_type(&self) -> AttrType {
                $ty
            }
            fn value_len(&self) -> usize {
                self.0.len()
            }
            #[inline]
            fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
                out.copy_from_slice(self.0.as_bytes());
            }
        }

        impl core::fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.0)
            }
        }
    };
}

text_attr!(
    /// USERNAME (RFC 8489 §14.3): at most 513 bytes of UTF-8 (OpaqueString-prepared by the
    /// sender; this crate sends and compares the bytes as given).
    Username,
    AttrType::USERNAME,
    max_bytes = 513,
    max_chars = 513
);
text_attr!(
    /// SOFTWARE (RFC 8489 §14.14): the agent's name and version, fewer than 128 characters.
    Software,
    AttrType::SOFTWARE,
    max_bytes = 763,
    max_chars = 127
);
text_attr!(
    /// REALM (RFC 8489 §14.9): the long-term credential realm, fewer than 128 characters.
    Realm,
    AttrType::REALM,
    max_bytes = 763,
    max_chars = 127
);
text_attr!(
    /// NONCE (RFC 8489 §14.10): the server's nonce, fewer than 128 characters.
    Nonce,
    AttrType::NONCE,
    max_bytes = 763,
    max_chars = 127
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn limits() {
        let ctx = Context::new(TransactionId::default());
        assert!(Software::new(&"x".repeat(127)).is_ok());
        assert!(Software::new(&"x".repeat(128)).is_err());
        assert!(Username::new(&"u".repeat(513)).is_ok());
        assert!(Username::new(&"u".repeat(514)).is_err());
        assert_eq!(
            Username::decode(&[b'u'; 514], &ctx),
            Err(Error::InvalidLength {
                attr: AttrType::USERNAME,
                len: 514
            })
        );
        assert_eq!(
            Realm::decode(&[0xff, 0xfe], &ctx),
            Err(Error::InvalidUtf8 {
                attr: AttrType::REALM
            })
        );
    }

    proptest! {
        #[test]
        fn round_trips(s in "\\PC{0,127}") {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 1024];
            if let Ok(v) = Username::new(&s) {
                prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
            }
            let v = Software::new(&s).expect("127 chars always fit");
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
            let v = Realm::new(&s).expect("fits");
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
            let v = Nonce::new(&s).expect("fits");
            prop_assert_eq!(round_trip(&v, &mut buf, &ctx), v);
        }
    }
}
