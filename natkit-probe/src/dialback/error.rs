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

/// What can go wrong running a dial-back server or check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialbackError {
    /// The server's listening socket could not be bound.
    #[error("binding the dial-back server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Accepting control connections failed for good.
    #[error("accepting dial-back control connections: {0}")]
    Accept(#[source] std::io::Error),
    /// The dial-back server could not be reached.
    #[error("connecting to the dial-back server {server}: {source}")]
    Connect {
        /// The server.
        server: std::net::SocketAddr,
        /// The OS error (a timeout is `TimedOut`).
        source: std::io::Error,
    },
    /// The control connection failed while talking to the server.
    #[error("talking to the dial-back server {server}: {source}")]
    Control {
        /// The server.
        server: std::net::SocketAddr,
        /// The OS error (a timeout is `TimedOut`).
        source: std::io::Error,
    },
    /// The server sent something that is not a dial-back message.
    #[error("the dial-back server {server} sent a bad message: {source}")]
    BadAnswer {
        /// The server.
        server: std::net::SocketAddr,
        /// What was wrong with it.
        source: WireError,
    },
    /// The server's answer does not belong to the request: another nonce,
    /// another message kind, or other ports than asked for.
    #[error("the dial-back server {server} answered something other than our request: {what}")]
    Mismatch {
        /// The server.
        server: std::net::SocketAddr,
        /// What did not match.
        what: &'static str,
    },
    /// The server refused the request.
    #[error("the dial-back server {server} refused: {reason}")]
    Refused {
        /// The server.
        server: std::net::SocketAddr,
        /// Its reason.
        reason: super::RefusalCode,
    },
    /// Nothing to check, or more ports than one check handles.
    #[error("{0} ports to check: 1 to {max} allowed", max = super::MAX_CHECK_PORTS)]
    PortCount(usize),
    /// A port to check is 0.
    #[error("port 0 cannot be checked")]
    PortZero,
    /// An outbound echo needs 1 to
    /// [`MAX_ECHO_PORTS`](crate::outbound::MAX_ECHO_PORTS) ports, none of them 0.
    #[error("an outbound echo listens on 1 to {max} ports other than 0; {0} given", max = crate::outbound::MAX_ECHO_PORTS)]
    EchoPorts(usize),
    /// The operating system's random source failed.
    #[error("no random nonce: {0}")]
    Random(getrandom::Error),
}

impl DialbackError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DialbackError::Refused { reason, .. } => reason.is_retryable(),
            DialbackError::Connect { .. } | DialbackError::Control { .. } => true,
            _ => false,
        }
    }
}
