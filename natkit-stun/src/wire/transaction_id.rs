//! The 96-bit transaction id.

/// A 96-bit STUN transaction id (RFC 8489 §5).
///
/// For RFC 3489 messages, whose 128-bit id also covers the magic-cookie field, see
/// [`Message::legacy_transaction_id`](crate::Message::legacy_transaction_id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TransactionId([u8; 12]);

impl TransactionId {
    /// Size of a transaction id in bytes.
    pub const LEN: usize = 12;

    /// A transaction id from its bytes.
    pub const fn new(bytes: [u8; 12]) -> TransactionId {
        TransactionId(bytes)
    }

    /// A fresh, uniformly random transaction id from a cryptographically secure RNG, as
    /// RFC 8489 §6 requires (ids must be hard to guess).
    pub fn random<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> TransactionId {
        let mut bytes = [0; 12];
        rng.fill_bytes(&mut bytes);
        TransactionId(bytes)
    }

    /// The bytes of the id.
    pub const fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    /// The id as owned bytes.
    pub const fn to_bytes(self) -> [u8; 12] {
        self.0
    }
}

impl From<[u8; 12]> for TransactionId {
    fn from(bytes: [u8; 12]) -> Self {
        TransactionId(bytes)
    }
}

impl core::fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TransactionId({self})")
    }
}

impl core::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic "RNG" that counts up, to check that `random` fills every byte.
    struct Counter(u8);

    impl rand::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            let mut b = [0; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
            Ok(())
        }
    }
    impl rand::TryCryptoRng for Counter {}

    #[test]
    fn random_fills_all_bytes_from_the_rng() {
        let id = TransactionId::random(&mut Counter(0));
        assert_eq!(id.as_bytes(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(id.to_string(), "0102030405060708090a0b0c");
        let mut rng = rand::rng();
        assert_ne!(
            TransactionId::random(&mut rng),
            TransactionId::random(&mut rng)
        );
    }
}
