//! natkit-core's error type.

use crate::mechanism::Mechanism;
use crate::ports::PortSpecError;

/// A boxed error from a protocol crate, kept as the source of an [`Error`]
/// so callers can downcast to the crate's own typed error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in natkit-core, and the common error of the
/// [`PortMapper`](crate::PortMapper) and
/// [`AddressDiscoverer`](crate::AddressDiscoverer) traits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A protocol name other than `tcp` or `udp`.
    #[error("unknown protocol {name:?}: expected tcp or udp")]
    UnknownProtocol {
        /// The name given (at most 32 characters of it).
        name: String,
    },
    /// A port spec such as `443/tcp,4500/udp` did not parse.
    #[error(transparent)]
    InvalidPortSpec(#[from] PortSpecError),
    /// A service profile name that natkit does not know.
    #[error("unknown service profile {name:?}: known profiles are {known}")]
    UnknownProfile {
        /// The name given (at most 64 characters of it).
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// The host has no default IPv4 gateway (no network, or no route).
    #[error("no default gateway: {detail}")]
    NoDefaultGateway {
        /// What the OS lookup said.
        detail: String,
    },
    /// A port mapping or address discovery mechanism failed.
    #[error("{mechanism}: {kind}: {source}")]
    Mechanism {
        /// Which mechanism failed.
        mechanism: Mechanism,
        /// What kind of failure it was.
        kind: FailureKind,
        /// The protocol crate's own typed error (downcast to inspect it).
        #[source]
        source: BoxError,
    },
    /// The lease keeper has shut down and accepts no more requests.
    #[error("the lease keeper has shut down")]
    KeeperClosed,
}

impl Error {
    /// Wraps a protocol crate's error as a mechanism failure.
    pub fn mechanism(mechanism: Mechanism, kind: FailureKind, source: impl Into<BoxError>) -> Self {
        Error::Mechanism {
            mechanism,
            kind,
            source: source.into(),
        }
    }

    /// The failure kind, for mechanism failures.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            Error::Mechanism { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The protocol crate's typed error of a mechanism failure, if it is
    /// an `E` (e.g. `natkit_upnp::Error`, `natkit_pmp::Error`).
    pub fn downcast_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Mechanism { source, .. } => source.downcast_ref(),
            _ => None,
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.failure_kind().is_some_and(FailureKind::is_retryable)
    }
}

/// How every protocol crate's own error joins natkit-core's [`Error`]: it
/// names its [`FailureKind`], and [`into_core`](Self::into_core) wraps it
/// as a mechanism failure with the typed error kept as the source (so
/// [`Error::downcast_source`] finds it). The protocol crates' errors
/// (`natkit_upnp::Error`, `natkit_pmp::Error`, `natkit_stun::Error`,
/// `natkit_portmap::Error`) all implement it, and their
/// `From<Error> for natkit_core::Error` goes through it.
pub trait IntoCore: std::error::Error + Send + Sync + Sized + 'static {
    /// What kind of failure this is, for combinators and the lease keeper.
    fn failure_kind(&self) -> FailureKind;

    /// This error as `mechanism`'s failure.
    fn into_core(self, mechanism: Mechanism) -> Error {
        let kind = IntoCore::failure_kind(&self);
        Error::mechanism(mechanism, kind, self)
    }
}

/// The broad kind of a mechanism failure, shared by every protocol so that
/// combinators and the lease keeper can act on it without knowing the
/// protocol. Each protocol crate maps its own result codes onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum FailureKind {
    /// Nothing answered, or the router does not speak this protocol.
    Unavailable,
    /// The router speaks the protocol but refused: disabled by its owner,
    /// not authorised, or the request is not allowed.
    Refused,
    /// The port is already mapped to another host or by another client.
    Conflict,
    /// The router has no resources left (too many mappings, no ports).
    NoResources,
    /// The router does not support what was asked (an opcode, a protocol,
    /// a lease length).
    Unsupported,
    /// The router's WAN side is not connected.
    NotConnected,
    /// The request timed out after every retransmission.
    Timeout,
    /// A local network error (no route, socket error).
    Network,
    /// The router's answer was malformed or did not match the request.
    Protocol,
    /// The router holds no mapping or pinhole by the handle a renewal or
    /// deletion named (UPnP 704 `NoSuchEntry` for a pinhole's UniqueID,
    /// 714 for a port mapping): it restarted, or the lease ran out. A
    /// renewal that meets this makes the mapping again; a deletion that
    /// meets it is done.
    NoSuchMapping,
    /// This host failed, not the router: the mapping journal could not be
    /// read or written, or one of natkit's own tasks ended abnormally (a
    /// panic: a bug). Asking the router again does not help until the
    /// host is fixed.
    Local,
}

impl FailureKind {
    /// Whether the same request may succeed later without any change.
    ///
    /// A router whose WAN side is not connected yet (NAT-PMP result 3,
    /// PCP `NETWORK_FAILURE`, an IGD reporting `Disconnected`) may well be
    /// connected a minute later, so [`FailureKind::NotConnected`] counts.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::Timeout
                | FailureKind::Network
                | FailureKind::NoResources
                | FailureKind::NotConnected
        )
    }

    /// The machine name, e.g. `not_connected`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unavailable => "unavailable",
            FailureKind::Refused => "refused",
            FailureKind::Conflict => "conflict",
            FailureKind::NoResources => "no_resources",
            FailureKind::Unsupported => "unsupported",
            FailureKind::NotConnected => "not_connected",
            FailureKind::Timeout => "timeout",
            FailureKind::Network => "network",
            FailureKind::Protocol => "protocol",
            FailureKind::NoSuchMapping => "no_such_mapping",
            FailureKind::Local => "local",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailureKind::Unavailable => "not available",
            FailureKind::Refused => "refused",
            FailureKind::Conflict => "conflict",
            FailureKind::NoResources => "out of resources",
            FailureKind::Unsupported => "not supported",
            FailureKind::NotConnected => "not connected",
            FailureKind::Timeout => "timed out",
            FailureKind::Network => "network error",
            FailureKind::Protocol => "protocol error",
            FailureKind::NoSuchMapping => "no such mapping",
            FailureKind::Local => "failed on this host",
        })
    }
}

/// natkit-core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_error_keeps_typed_source() {
        #[derive(Debug, thiserror::Error)]
        #[error("code 718")]
        struct Conflict718;
        let e = Error::mechanism(Mechanism::Upnp, FailureKind::Conflict, Conflict718);
        assert_eq!(e.to_string(), "upnp: conflict: code 718");
        assert!(!e.is_retryable());
        assert!(e.downcast_source::<Conflict718>().is_some());
        assert!(e.downcast_source::<std::io::Error>().is_none());
        assert!(Error::mechanism(Mechanism::Pcp, FailureKind::Timeout, Conflict718).is_retryable());
    }
}
