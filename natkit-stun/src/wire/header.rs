//! The fixed 20-byte header: message type, length, magic cookie, transaction id.

use crate::{Class, Method};

/// Size of the STUN header in bytes.
pub const HEADER_LEN: usize = 20;

/// The magic cookie of RFC 5389/8489 messages (bytes 4..8 of the header).
///
/// RFC 3489 messages carry the first 32 bits of a 128-bit transaction id there instead.
pub const MAGIC_COOKIE: u32 = 0x2112_a442;

/// The 14-bit message type: a [`Method`] and a [`Class`] interleaved (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    class: Class,
    method: Method,
}

impl MessageType {
    /// Binding request.
    pub const BINDING_REQUEST: MessageType = MessageType::new(Class::Request, Method::BINDING);
    /// Binding success response.
    pub const BINDING_SUCCESS: MessageType =
        MessageType::new(Class::SuccessResponse, Method::BINDING);
    /// Binding error response.
    pub const BINDING_ERROR: MessageType = MessageType::new(Class::ErrorResponse, Method::BINDING);
    /// Binding indication.
    pub const BINDING_INDICATION: MessageType =
        MessageType::new(Class::Indication, Method::BINDING);

    /// A message type from its class and method.
    pub const fn new(class: Class, method: Method) -> MessageType {
        MessageType { class, method }
    }

    /// The class.
    pub const fn class(self) -> Class {
        self.class
    }

    /// The method.
    pub const fn method(self) -> Method {
        self.method
    }

    /// The 16-bit wire value (the two most significant bits are zero).
    pub const fn to_u16(self) -> u16 {
        let m = self.method.value();
        let c = self.class.bits();
        (m & 0x000f) | ((m & 0x0070) << 1) | ((m & 0x0f80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
    }

    /// The message type of a 16-bit wire value; the two most significant bits are ignored.
    pub const fn from_u16(value: u16) -> MessageType {
        let m = (value & 0x000f) | ((value >> 1) & 0x0070) | ((value >> 2) & 0x0f80);
        let c = ((value >> 4) & 1) | ((value >> 7) & 2);
        // `m` is at most 12 bits by construction.
        MessageType {
            class: Class::from_bits(c),
            method: Method::from_masked(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn well_known_values() {
        assert_eq!(MessageType::BINDING_REQUEST.to_u16(), 0x0001);
        assert_eq!(MessageType::BINDING_INDICATION.to_u16(), 0x0011);
        assert_eq!(MessageType::BINDING_SUCCESS.to_u16(), 0x0101);
        assert_eq!(MessageType::BINDING_ERROR.to_u16(), 0x0111);
        // RFC 8656 Allocate request/success: method 0x003.
        let allocate = MessageType::from_u16(0x0103);
        assert_eq!(allocate.class(), Class::SuccessResponse);
        assert_eq!(allocate.method().value(), 0x003);
    }

    proptest! {
        #[test]
        fn round_trip(method in 0u16..=0xfff, class in 0u16..4) {
            let ty = MessageType::new(Class::from_bits(class), Method::from_masked(method));
            let wire = ty.to_u16();
            prop_assert_eq!(wire & 0xc000, 0);
            prop_assert_eq!(MessageType::from_u16(wire), ty);
        }

        #[test]
        fn every_14_bit_value_round_trips(value in 0u16..0x4000) {
            prop_assert_eq!(MessageType::from_u16(value).to_u16(), value);
        }
    }
}
