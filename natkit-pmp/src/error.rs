//! natkit-pmp's error type.

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{FailureKind, Mechanism};

use crate::natpmp::NatPmpResultCode;
use crate::pcp::PcpResultCode;

/// What went wrong in a NAT-PMP or PCP exchange.
///
/// Mappers hand it to callers wrapped in [`natkit_core::Error::Mechanism`];
/// downcast the source to this type to see the details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The NAT-PMP server answered with a non-zero result code.
    #[error("NAT-PMP server answered result code {code}")]
    NatPmpResult {
        /// The result code.
        code: NatPmpResultCode,
        /// The server's seconds since start of epoch in that answer.
        epoch: u32,
    },
    /// The PCP server answered with a non-success result code.
    #[error("PCP server answered result code {code} (retry after {lifetime} s)")]
    PcpResult {
        /// The result code.
        code: PcpResultCode,
        /// For errors, how long the server expects the error to last, in
        /// seconds (RFC 6887 §7.2).
        lifetime: u32,
        /// The server's epoch time in that answer.
        epoch: u32,
    },
    /// The PCP server speaks a version other than 2 (answered UNSUPP_VERSION
    /// with this version), and it is not NAT-PMP (version 0) we could use.
    #[error("PCP server speaks only version {server_version}")]
    UnsupportedServerVersion {
        /// The version the server offered.
        server_version: u8,
    },
    /// The server's host answered with ICMP port unreachable: nothing
    /// listens on the port (RFC 6886 §3.1: the gateway does not support
    /// NAT-PMP, no need to wait for the remaining retransmissions).
    #[error(
        "{server} answered port unreachable (ICMP) after {sends} sends: no server listens there"
    )]
    PortUnreachable {
        /// Where the requests went.
        server: SocketAddr,
        /// How many requests were sent.
        sends: u32,
    },
    /// No answer after every retransmission of the plan.
    #[error("no answer from {server} after {sends} sends in {elapsed:?}")]
    Timeout {
        /// Where the requests went.
        server: SocketAddr,
        /// How many requests were sent.
        sends: u32,
        /// How long the exchange lasted.
        elapsed: Duration,
    },
    /// A datagram was shorter than its format needs.
    #[error("truncated message: {len} bytes, at least {needed} needed")]
    Truncated {
        /// The datagram's length.
        len: usize,
        /// The length its header calls for.
        needed: usize,
    },
    /// A datagram was longer than the protocol allows, or not a multiple of
    /// four bytes (PCP, RFC 6887 §7).
    #[error("bad message length {len}")]
    BadLength {
        /// The datagram's length.
        len: usize,
    },
    /// The version field is not the one expected.
    #[error("unexpected protocol version {version}")]
    UnexpectedVersion {
        /// The version found.
        version: u8,
    },
    /// A request where a response was expected (R bit / high opcode bit clear).
    #[error("message is a request, not a response")]
    NotAResponse,
    /// An opcode this crate does not know in a response.
    #[error("unknown opcode {opcode}")]
    UnknownOpcode {
        /// The opcode (without the response bit).
        opcode: u8,
    },
    /// A PCP option whose length runs past the end of the message.
    #[error("malformed PCP option at offset {offset}")]
    MalformedOption {
        /// Where the option starts.
        offset: usize,
    },
    /// The caller's buffer is too small for the message.
    #[error("buffer of {len} bytes too small, {needed} needed")]
    BufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The message's length.
        needed: usize,
    },
    /// A retransmission plan that could never send or never stop.
    #[error("invalid retransmission plan: {reason}")]
    InvalidPlan {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A mapping request natkit will not send: port 0 or a zero lifetime
    /// (both mean "delete" on the wire).
    #[error("invalid mapping request: {reason}")]
    InvalidRequest {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server reported success for a mapping but granted a lifetime of
    /// zero, which would mean the mapping does not exist.
    #[error("server granted a mapping with lifetime 0")]
    ZeroLifetimeGranted,
    /// The mapping was made by another mechanism than this mapper speaks.
    #[error("mapping was made by {made_by}, not by this mapper")]
    ForeignMapping {
        /// The mechanism that made it.
        made_by: Mechanism,
    },
    /// The address family of the server and the mapping do not fit
    /// (NAT-PMP is IPv4 only; a PCP server answers its own family).
    #[error("address family mismatch: {detail}")]
    AddressFamily {
        /// What did not fit.
        detail: &'static str,
    },
    /// NAT-PMP has no IPv6 (RFC 6886 maps IPv4 only): an IPv6 pinhole
    /// needs PCP or UPnP's WANIPv6FirewallControl.
    #[error("NAT-PMP has no IPv6: a pinhole for {internal} needs PCP or UPnP")]
    NatPmpNoIpv6 {
        /// The IPv6 internal address asked for (`::` when unspecified).
        internal: std::net::Ipv6Addr,
    },
    /// No PCP server answered for IPv6 pinholes: none of the candidates
    /// (the IPv6 default routers, then the first address of each of their
    /// prefixes) answered an ANNOUNCE.
    #[error("no PCP server for IPv6 pinholes answered ({tried} address(es) tried)")]
    NoIpv6Server {
        /// How many addresses were tried (0: no IPv6 default route).
        tried: usize,
    },
    /// No stable global IPv6 address to open a pinhole for (only temporary
    /// addresses, no IPv6 route, ...).
    #[error("no stable IPv6 address for a pinhole: {source}")]
    NoStableIpv6 {
        /// Why, from the host's address table.
        #[source]
        source: natkit_core::Ipv6AddressError,
    },
    /// The PCP server refused to delete an IPv6 pinhole with the nonce
    /// that owns it, and its lease was cut to the shortest the server
    /// grants instead: the pinhole stays open until then. miniupnpd before
    /// 2.3.6 does this for every pinhole renewed since it was made.
    #[error(
        "the router refused to delete the pinhole (NOT_AUTHORIZED); its lease was cut to {lifetime} s"
    )]
    PinholeShortened {
        /// The lease left, in seconds.
        lifetime: u32,
    },
    /// A local socket operation failed.
    #[error("socket {op} failed: {source}")]
    Io {
        /// The operation: `bind`, `send`, `recv`, `route`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// natkit-pmp's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl natkit_core::IntoCore for Error {
    fn failure_kind(&self) -> FailureKind {
        Error::failure_kind(self)
    }
}

impl Error {
    /// The broad failure kind natkit-core uses for this error.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::NatPmpResult { code, .. } => code.failure_kind(),
            Error::PcpResult { code, .. } => code.failure_kind(),
            Error::UnsupportedServerVersion { .. }
            | Error::PortUnreachable { .. }
            | Error::NoIpv6Server { .. } => FailureKind::Unavailable,
            Error::PinholeShortened { .. } => FailureKind::Refused,
            Error::NoStableIpv6 {
                source: natkit_core::Ipv6AddressError::NoRoute { .. },
            } => FailureKind::NotConnected,
            Error::NoStableIpv6 { .. } => FailureKind::Unavailable,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::Io { .. } => FailureKind::Network,
            Error::InvalidPlan { .. }
            | Error::InvalidRequest { .. }
            | Error::ForeignMapping { .. }
            | Error::AddressFamily { .. }
            | Error::NatPmpNoIpv6 { .. } => FailureKind::Unsupported,
            Error::Truncated { .. }
            | Error::BadLength { .. }
            | Error::UnexpectedVersion { .. }
            | Error::NotAResponse
            | Error::UnknownOpcode { .. }
            | Error::MalformedOption { .. }
            | Error::BufferTooSmall { .. }
            | Error::ZeroLifetimeGranted => FailureKind::Protocol,
        }
    }

    /// Whether the same request may succeed later without any change:
    /// what its [`failure_kind`](Self::failure_kind) says, as for the
    /// wrapped [`natkit_core::Error`].
    pub fn is_retryable(&self) -> bool {
        self.failure_kind().is_retryable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_core::IntoCore;

    #[test]
    fn wraps_into_core_with_kind() {
        let e = Error::PcpResult {
            code: PcpResultCode::NoResources,
            lifetime: 30,
            epoch: 5,
        };
        assert!(e.is_retryable());
        let core = e.into_core(Mechanism::Pcp);
        assert_eq!(core.failure_kind(), Some(FailureKind::NoResources));
        let natkit_core::Error::Mechanism { source, .. } = &core else {
            panic!("not a mechanism error")
        };
        let inner = source.downcast_ref::<Error>().expect("typed source");
        assert!(matches!(
            inner,
            Error::PcpResult {
                code: PcpResultCode::NoResources,
                ..
            }
        ));
        let refused = Error::NatPmpResult {
            code: NatPmpResultCode::NotAuthorized,
            epoch: 1,
        };
        assert!(!refused.is_retryable());
        assert_eq!(refused.failure_kind(), FailureKind::Refused);
        // No IPv6 route yet is the network not being up yet: retryable here
        // as in the natkit_core::Error it becomes.
        let no_route = Error::NoStableIpv6 {
            source: natkit_core::Ipv6AddressError::NoRoute {
                toward: std::net::Ipv6Addr::LOCALHOST,
            },
        };
        assert!(no_route.is_retryable());
        assert!(no_route.into_core(Mechanism::Pcp).is_retryable());
    }
}
