//! STUN Binding request (RFC 8489 §5–6): the 20-byte header alone.

use crate::order::SplitMix64;

/// The STUN magic cookie.
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Binding request: method 0x001, class request.
const BINDING_REQUEST: u16 = 0x0001;

/// A Binding request with a random 96-bit transaction id and no attributes.
pub(super) fn binding_request(rng: &mut SplitMix64) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    v.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    let mut id = [0u8; 12];
    rng.fill(&mut id);
    v.extend_from_slice(&id);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_request_layout() {
        let m = binding_request(&mut SplitMix64::new(2));
        assert_eq!(m.len(), 20);
        assert_eq!(&m[..4], &[0x00, 0x01, 0x00, 0x00]);
        assert_eq!(&m[4..8], &[0x21, 0x12, 0xA4, 0x42]);
        // The top two bits of a STUN message are zero (RFC 8489 §5).
        assert_eq!(m[0] & 0xC0, 0);
    }
}
