//! The crate's error type.

use natkit_core::{FailureKind, Mechanism};

use crate::attr::AttrType;

/// Everything that can go wrong while decoding, verifying or encoding STUN messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer is shorter than the 20-byte STUN header.
    #[error("buffer of {len} bytes is shorter than the 20-byte STUN header")]
    TooShort {
        /// Length of the buffer that was given.
        len: usize,
    },
    /// The two most significant bits of the message type are not zero, so this is not STUN.
    #[error("the first two bits of the message are not zero: not a STUN message")]
    NotStun,
    /// The header's message length is not a multiple of 4.
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The header's message length disagrees with the size of the buffer.
    #[error("header says the message is {declared} bytes long, but the buffer holds {actual}")]
    LengthMismatch {
        /// Total message size the header declares (20 + message length).
        declared: usize,
        /// Size of the buffer.
        actual: usize,
    },
    /// An attribute's header or value (with padding) runs past the end of the message.
    #[error("attribute at offset {offset} runs past the end of the message")]
    AttributeOverrun {
        /// Byte offset of the attribute's header from the start of the message.
        offset: usize,
    },
    /// An attribute's value has a length its type does not allow.
    #[error("attribute {attr} has invalid value length {len}")]
    InvalidLength {
        /// The attribute type.
        attr: AttrType,
        /// The value length found.
        len: usize,
    },
    /// An address attribute carries an unknown address family.
    #[error("attribute {attr} has unknown address family {family:#04x}")]
    UnknownAddressFamily {
        /// The attribute type.
        attr: AttrType,
        /// The family byte found (0x01 is IPv4, 0x02 is IPv6).
        family: u8,
    },
    /// A text attribute (USERNAME, SOFTWARE, REALM, NONCE, a reason phrase) is not UTF-8.
    #[error("attribute {attr} is not valid UTF-8")]
    InvalidUtf8 {
        /// The attribute type.
        attr: AttrType,
    },
    /// ERROR-CODE carries a class outside 3..=6 or a number outside 0..=99.
    #[error("ERROR-CODE has invalid class {class} / number {number}")]
    InvalidErrorCode {
        /// The class (hundreds digit) found.
        class: u8,
        /// The number (last two digits) found.
        number: u8,
    },
    /// A method value does not fit in 12 bits.
    #[error("method {0:#x} does not fit in 12 bits")]
    InvalidMethod(u16),
    /// An attribute the caller asked for is absent.
    #[error("attribute {0} is missing")]
    MissingAttribute(AttrType),
    /// FINGERPRINT is present but is not the last attribute of the message.
    #[error("FINGERPRINT is not the last attribute")]
    FingerprintNotLast,
    /// The FINGERPRINT value does not match the message.
    #[error("FINGERPRINT mismatch: message carries {received:#010x}, computed {computed:#010x}")]
    FingerprintMismatch {
        /// Value carried by the message.
        received: u32,
        /// Value computed over the message.
        computed: u32,
    },
    /// MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 does not match the message and key.
    #[error("{attr} does not match the message and key")]
    IntegrityMismatch {
        /// Which integrity attribute failed.
        attr: AttrType,
    },
    /// The output buffer is too small for what is being encoded.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The encoded value or message would exceed the 16-bit length field.
    #[error("encoded length {0} does not fit the 16-bit length field")]
    TooLong(usize),
    /// A STUN transaction got no acceptable answer before its plan gave up.
    #[error("no answer from {server} after {sends} sends in {elapsed:?}")]
    Timeout {
        /// Where the requests went.
        server: std::net::SocketAddr,
        /// How many requests were sent.
        sends: u32,
        /// How long the transaction lasted.
        elapsed: std::time::Duration,
    },
    /// The server answered with an error response.
    #[error("server {server} answered error {code}")]
    ErrorResponse {
        /// Who answered.
        server: std::net::SocketAddr,
        /// The ERROR-CODE number (e.g. 420), or 0 if the response carried none.
        code: u16,
    },
    /// A success response carried no mapped address of any kind.
    #[error("the response from {server} carries no mapped address")]
    NoMappedAddress {
        /// Who answered.
        server: std::net::SocketAddr,
    },
    /// None of the servers asked gave an address.
    #[error("none of the {servers} STUN servers gave an address")]
    NoAnswer {
        /// How many servers were asked.
        servers: usize,
    },
    /// A server name gave no address.
    #[error("cannot resolve {name}: {failure}")]
    Resolve {
        /// The name as given.
        name: String,
        /// Why.
        failure: crate::client::ResolveFailure,
    },
    /// A socket operation failed.
    #[error("{op}: {}", std::io::Error::from(*.kind))]
    Io {
        /// What was being done (e.g. "bind", "send", "connect").
        op: &'static str,
        /// The kind of failure.
        kind: std::io::ErrorKind,
    },
    /// This host cannot send to the server at all: it has no address or no route of
    /// the server's family (IPv6 on an IPv4-only network). Found by a route lookup,
    /// with no packet sent.
    #[error("no route to {server} (no {} address or route on this host): {}", family_name(server), std::io::Error::from(*.kind))]
    NoRoute {
        /// The server.
        server: std::net::SocketAddr,
        /// What the route lookup said (network unreachable, address not available).
        kind: std::io::ErrorKind,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// One of natkit's own threads or tasks ended abnormally (it panicked):
    /// a bug, not the network's doing nor the caller's.
    #[error("{what} panicked")]
    Panicked {
        /// Which: "a server thread", …
        what: &'static str,
    },
}

fn family_name(server: &std::net::SocketAddr) -> &'static str {
    crate::client::IpFamily::of(server.ip()).name()
}

impl Error {
    /// What kind of failure this is for an address discovery's evidence
    /// ([`natkit_core::Outcome::Failed`]).
    pub fn discovery_failure(&self) -> natkit_core::DiscoveryFailure {
        use natkit_core::DiscoveryFailure as D;
        match self {
            Error::Resolve { failure, .. } => D::Unresolved {
                reason: failure.to_string(),
            },
            Error::ErrorResponse { code, .. } => D::ErrorResponse { code: *code },
            e => D::Other(e.failure_kind()),
        }
    }

    /// This error as the evidence of an address discovery: a transaction that gave
    /// up is [`TimedOut`](natkit_core::Outcome::TimedOut), anything else
    /// [`Failed`](natkit_core::Outcome::Failed).
    pub fn to_outcome(&self) -> natkit_core::Outcome {
        match self {
            Error::Timeout { .. } => natkit_core::Outcome::TimedOut,
            e => natkit_core::Outcome::Failed {
                kind: e.discovery_failure(),
                detail: e.to_string(),
            },
        }
    }

    /// An [`Error::Io`] from a socket error and the operation that failed.
    pub fn io(op: &'static str, err: &std::io::Error) -> Error {
        Error::Io {
            op,
            kind: err.kind(),
        }
    }

    /// The broad failure kind natkit-core uses for this error.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            // Every server asked stayed silent or failed: none is usable.
            Error::NoAnswer { .. } => FailureKind::Unavailable,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::Io { .. } | Error::NoRoute { .. } | Error::Resolve { .. } => {
                FailureKind::Network
            }
            Error::InvalidConfig { .. } => FailureKind::Unsupported,
            Error::Panicked { .. } => FailureKind::Local,
            Error::TooShort { .. }
            | Error::NotStun
            | Error::UnalignedLength(_)
            | Error::LengthMismatch { .. }
            | Error::AttributeOverrun { .. }
            | Error::InvalidLength { .. }
            | Error::UnknownAddressFamily { .. }
            | Error::InvalidUtf8 { .. }
            | Error::InvalidErrorCode { .. }
            | Error::InvalidMethod(_)
            | Error::MissingAttribute(_)
            | Error::FingerprintNotLast
            | Error::FingerprintMismatch { .. }
            | Error::IntegrityMismatch { .. }
            | Error::BufferTooSmall { .. }
            | Error::TooLong(_)
            | Error::ErrorResponse { .. }
            | Error::NoMappedAddress { .. } => FailureKind::Protocol,
        }
    }
}

impl natkit_core::IntoCore for Error {
    fn failure_kind(&self) -> FailureKind {
        Error::failure_kind(self)
    }
}

impl From<Error> for natkit_core::Error {
    fn from(e: Error) -> Self {
        natkit_core::IntoCore::into_core(e, Mechanism::Stun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_into_core_with_kind_and_typed_source() {
        let core: natkit_core::Error = Error::NoAnswer { servers: 2 }.into();
        assert_eq!(core.failure_kind(), Some(FailureKind::Unavailable));
        assert!(
            matches!(
                &core,
                natkit_core::Error::Mechanism {
                    mechanism: Mechanism::Stun,
                    ..
                }
            ),
            "{core:?}"
        );
        assert_eq!(
            core.downcast_source(),
            Some(&Error::NoAnswer { servers: 2 })
        );
        // A panicked thread is a bug of this host, not a bad configuration.
        let panicked = Error::Panicked {
            what: "a server thread",
        };
        assert_eq!(panicked.failure_kind(), FailureKind::Local);
        assert_eq!(panicked.to_string(), "a server thread panicked");
    }
}
