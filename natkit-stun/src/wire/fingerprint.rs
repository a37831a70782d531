//! FINGERPRINT computation (RFC 8489 §14.7): CRC-32 (ISO HDLC, as in Ethernet) XOR
//! 0x5354554e over the message up to the FINGERPRINT attribute.

/// The constant the CRC-32 is XORed with ("STUN" in ASCII).
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// The FINGERPRINT value of `bytes`: the message from its first byte up to, not including,
/// the FINGERPRINT attribute, with the header length already counting the FINGERPRINT.
#[inline]
pub fn fingerprint(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes) ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The CRC-32/ISO-HDLC check value of "123456789" is 0xcbf43926.
        assert_eq!(fingerprint(b"123456789"), 0xcbf4_3926 ^ FINGERPRINT_XOR);
    }
}
