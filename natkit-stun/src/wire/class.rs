//! The message class: request, indication, success or error response.

/// The class of a STUN message (RFC 8489 §5, bits C1 and C0 of the message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A request (C1 C0 = 0b00).
    Request,
    /// An indication (0b01).
    Indication,
    /// A success response (0b10).
    SuccessResponse,
    /// An error response (0b11).
    ErrorResponse,
}

impl Class {
    /// The two class bits (C1 C0) as a number 0..=3.
    pub const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    /// The class for two class bits (C1 C0); only the low two bits of `bits` are used.
    pub const fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }

    /// Whether this is a success or an error response.
    pub const fn is_response(self) -> bool {
        matches!(self, Class::SuccessResponse | Class::ErrorResponse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        for bits in 0..4 {
            assert_eq!(Class::from_bits(bits).bits(), bits);
        }
        assert!(Class::ErrorResponse.is_response());
        assert!(!Class::Indication.is_response());
    }
}
