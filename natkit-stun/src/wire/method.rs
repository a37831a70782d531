//! The 12-bit STUN method.

use crate::Error;

/// A STUN method: a 12-bit number (RFC 8489 §5, bits M11..M0 of the message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u16);

impl Method {
    /// Binding (0x001), the only method of plain STUN (RFC 8489 §18.2).
    pub const BINDING: Method = Method(0x001);
    /// Shared Secret (0x002), RFC 3489 only; reserved since RFC 5389.
    pub const SHARED_SECRET: Method = Method(0x002);

    /// The largest method value (12 bits).
    pub const MAX: u16 = 0x0fff;

    /// A method from its number, which must fit in 12 bits.
    pub const fn new(value: u16) -> Result<Method, Error> {
        if value > Self::MAX {
            Err(Error::InvalidMethod(value))
        } else {
            Ok(Method(value))
        }
    }

    /// A method from any value, keeping its low 12 bits (the bits the message type
    /// has room for).
    pub(crate) const fn from_masked(value: u16) -> Method {
        Method(value & Self::MAX)
    }

    /// The method number.
    pub const fn value(self) -> u16 {
        self.0
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Method::BINDING => f.write_str("Binding"),
            Method::SHARED_SECRET => f.write_str("SharedSecret"),
            Method(v) => write!(f, "Method({v:#05x})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_bits_only() {
        assert_eq!(Method::new(0xfff).map(Method::value), Ok(0xfff));
        assert_eq!(Method::new(0x1000), Err(Error::InvalidMethod(0x1000)));
        assert_eq!(Method::BINDING.to_string(), "Binding");
        assert_eq!(
            Method::new(0x3).map(|m| m.to_string()),
            Ok("Method(0x003)".into())
        );
    }
}
