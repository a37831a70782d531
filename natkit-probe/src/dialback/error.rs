//! Why a dial-back message did not parse or emit.

/// A malformed (or unemittable) dial-back message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the message needs.
    #[error("truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The first four bytes are not `NKDB`.
    #[error("not a dial-back message (bad magic)")]
    BadMagic,
    /// A protocol version this implementation does not speak.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// A message kind this implementation does not know.
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    /// The header's length disagrees with the bytes given.
    #[error("declared length {declared} but {actual} bytes given")]
    LengthMismatch {
        /// The header's length field.
        declared: usize,
        /// The bytes given.
        actual: usize,
    },
    /// More ports than [`MAX_PORTS`](super::MAX_PORTS), or none at all
    /// where at least one is required.
    #[error("{0} ports: 1 to {max} allowed", max = super::MAX_PORTS)]
    BadPortCount(usize),
    /// A protocol number other than 6 (TCP) or 17 (UDP).
    #[error("unknown protocol number {0}")]
    BadProtocol(u8),
    /// Port 0 cannot be dialled.
    #[error("port 0")]
    PortZero,
    /// A reserved byte is not zero.
    #[error("reserved byte at offset {0} is not zero")]
    Reserved(usize),
    /// An address family other than 4 or 6.
    #[error("unknown address family {0}")]
    BadFamily(u8),
    /// An unknown dial outcome code.
    #[error("unknown dial outcome {0}")]
    UnknownOutcome(u8),
    /// An unknown refusal code.
    #[error("unknown refusal code {0}")]
    UnknownRefusal(u16),
    /// The output buffer is too small for the message.
    #[error("buffer of {got} bytes, {needed} needed")]
    BufferTooSmall {
        /// Bytes the message needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
}
