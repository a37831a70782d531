//! What can go wrong in the one-call API.

use std::sync::Arc;

/// An error of the one-call API; each variant keeps the underlying crate's typed
/// error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No default route, so no gateway to map on.
    #[error("no gateway: {0}")]
    NoGateway(#[source] natkit_core::Error),
    /// An IPv6 lease ([`PortLeaseBuilder::ipv6`](crate::PortLeaseBuilder::ipv6)) found
    /// no stable global IPv6 address to open the pinhole for (none at all, only
    /// temporary ones, or a platform that cannot tell them apart).
    #[error("no address for an IPv6 pinhole: {0}")]
    NoStableIpv6(#[source] natkit_core::Ipv6AddressError),
    /// The crash journal could not be opened.
    #[cfg(feature = "portmap")]
    #[error("the mapping journal: {0}")]
    Journal(#[source] natkit_portmap::Error),
    /// The port could not be mapped by any mechanism; the error says what each one
    /// answered.
    #[error("the port could not be mapped: {0}")]
    Map(#[source] natkit_core::Error),
    /// Deleting the mapping failed or did not finish in time; it may linger on the
    /// router until its lease ends. The lease keeper's error, shared with the
    /// keeper's `ReleaseFailed` event.
    #[error("the mapping could not be deleted: {0}")]
    CloseFailed(#[source] Arc<natkit_core::Error>),
    /// No source saw an address.
    #[error("no STUN server or router reported an address ({} sources asked)", evidence.len())]
    NoAddress {
        /// What every source said.
        evidence: Vec<natkit_core::Evidence>,
    },
    /// The NAT could not be tested (no server resolved, a socket error).
    #[cfg(feature = "stun")]
    #[error("the NAT could not be tested: {0}")]
    Stun(#[source] natkit_stun::Error),
    /// A call's arguments make no sense together.
    #[error("invalid argument: {what}")]
    InvalidArgument {
        /// What is wrong.
        what: &'static str,
    },
    /// A background task ended without an answer (the runtime is shutting down).
    #[error("{what} did not finish (is the tokio runtime shutting down?)")]
    TaskFailed {
        /// What was being done.
        what: &'static str,
    },
}
