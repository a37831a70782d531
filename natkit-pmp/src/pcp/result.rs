//! PCP result codes (RFC 6887 §7.4).

use std::fmt;

use natkit_core::FailureKind;

/// The result code of a PCP response (RFC 6887 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PcpResultCode {
    /// 0 SUCCESS.
    Success,
    /// 1 UNSUPP_VERSION: the server does not speak the request's version;
    /// the response's version field holds one it does speak (0 = NAT-PMP).
    UnsuppVersion,
    /// 2 NOT_AUTHORIZED: refused by policy, or the mapping belongs to
    /// another nonce.
    NotAuthorized,
    /// 3 MALFORMED_REQUEST.
    MalformedRequest,
    /// 4 UNSUPP_OPCODE.
    UnsuppOpcode,
    /// 5 UNSUPP_OPTION: a mandatory option the server does not know.
    UnsuppOption,
    /// 6 MALFORMED_OPTION.
    MalformedOption,
    /// 7 NETWORK_FAILURE: the server or its upstream has a transient problem.
    NetworkFailure,
    /// 8 NO_RESOURCES: out of mappings, ports or state.
    NoResources,
    /// 9 UNSUPP_PROTOCOL: the transport protocol is not supported.
    UnsuppProtocol,
    /// 10 USER_EX_QUOTA: this host has exceeded its mapping quota.
    UserExQuota,
    /// 11 CANNOT_PROVIDE_EXTERNAL: the suggested external address/port
    /// cannot be given (taken, or disallowed) and no other was offered.
    CannotProvideExternal,
    /// 12 ADDRESS_MISMATCH: the packet's source is not the client address in
    /// the request (another NAT sits between client and server).
    AddressMismatch,
    /// 13 EXCESSIVE_REMOTE_PEERS (PEER/FILTER only).
    ExcessiveRemotePeers,
    /// A code RFC 6887 does not define.
    Unknown(u8),
}

impl PcpResultCode {
    /// The code for a wire value.
    pub fn from_u8(code: u8) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::UnsuppVersion,
            2 => Self::NotAuthorized,
            3 => Self::MalformedRequest,
            4 => Self::UnsuppOpcode,
            5 => Self::UnsuppOption,
            6 => Self::MalformedOption,
            7 => Self::NetworkFailure,
            8 => Self::NoResources,
            9 => Self::UnsuppProtocol,
            10 => Self::UserExQuota,
            11 => Self::CannotProvideExternal,
            12 => Self::AddressMismatch,
            13 => Self::ExcessiveRemotePeers,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::UnsuppVersion => 1,
            Self::NotAuthorized => 2,
            Self::MalformedRequest => 3,
            Self::UnsuppOpcode => 4,
            Self::UnsuppOption => 5,
            Self::MalformedOption => 6,
            Self::NetworkFailure => 7,
            Self::NoResources => 8,
            Self::UnsuppProtocol => 9,
            Self::UserExQuota => 10,
            Self::CannotProvideExternal => 11,
            Self::AddressMismatch => 12,
            Self::ExcessiveRemotePeers => 13,
            Self::Unknown(code) => code,
        }
    }

    /// The RFC name, e.g. `NO_RESOURCES`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::UnsuppVersion => "UNSUPP_VERSION",
            Self::NotAuthorized => "NOT_AUTHORIZED",
            Self::MalformedRequest => "MALFORMED_REQUEST",
            Self::UnsuppOpcode => "UNSUPP_OPCODE",
            Self::UnsuppOption => "UNSUPP_OPTION",
            Self::MalformedOption => "MALFORMED_OPTION",
            Self::NetworkFailure => "NETWORK_FAILURE",
            Self::NoResources => "NO_RESOURCES",
            Self::UnsuppProtocol => "UNSUPP_PROTOCOL",
            Self::UserExQuota => "USER_EX_QUOTA",
            Self::CannotProvideExternal => "CANNOT_PROVIDE_EXTERNAL",
            Self::AddressMismatch => "ADDRESS_MISMATCH",
            Self::ExcessiveRemotePeers => "EXCESSIVE_REMOTE_PEERS",
            Self::Unknown(_) => "UNKNOWN",
        }
    }

    /// Whether the same request may succeed later. RFC 6887 §7.4 calls
    /// NETWORK_FAILURE, NO_RESOURCES and USER_EX_QUOTA (and
    /// EXCESSIVE_REMOTE_PEERS) short-lifetime errors whose lifetime field
    /// says when to try again; the others persist until something changes.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::NetworkFailure
                | Self::NoResources
                | Self::UserExQuota
                | Self::ExcessiveRemotePeers
        )
    }

    /// The broad failure kind natkit-core uses for this code.
    pub fn failure_kind(self) -> FailureKind {
        match self {
            Self::UnsuppVersion => FailureKind::Unavailable,
            Self::NotAuthorized | Self::AddressMismatch => FailureKind::Refused,
            Self::UnsuppOpcode | Self::UnsuppOption | Self::UnsuppProtocol => {
                FailureKind::Unsupported
            }
            Self::NetworkFailure => FailureKind::NotConnected,
            Self::NoResources | Self::UserExQuota | Self::ExcessiveRemotePeers => {
                FailureKind::NoResources
            }
            Self::CannotProvideExternal => FailureKind::Conflict,
            Self::Success | Self::MalformedRequest | Self::MalformedOption | Self::Unknown(_) => {
                FailureKind::Protocol
            }
        }
    }
}

impl fmt::Display for PcpResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.as_u8(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_code() {
        for code in 0..=u8::MAX {
            assert_eq!(PcpResultCode::from_u8(code).as_u8(), code);
        }
        for code in 0..=13 {
            assert!(!matches!(
                PcpResultCode::from_u8(code),
                PcpResultCode::Unknown(_)
            ));
        }
        assert_eq!(PcpResultCode::from_u8(14), PcpResultCode::Unknown(14));
    }

    #[test]
    fn names_retryable_kinds() {
        assert_eq!(PcpResultCode::from_u8(8).to_string(), "8 NO_RESOURCES");
        assert_eq!(
            PcpResultCode::from_u8(11).to_string(),
            "11 CANNOT_PROVIDE_EXTERNAL"
        );
        assert_eq!(PcpResultCode::from_u8(2).name(), "NOT_AUTHORIZED");
        assert_eq!(PcpResultCode::from_u8(1).name(), "UNSUPP_VERSION");
        let retryable: Vec<u8> = (0..=14)
            .filter(|c| PcpResultCode::from_u8(*c).is_retryable())
            .collect();
        assert_eq!(retryable, vec![7, 8, 10, 13]);
        assert_eq!(
            PcpResultCode::CannotProvideExternal.failure_kind(),
            FailureKind::Conflict
        );
        assert_eq!(
            PcpResultCode::NoResources.failure_kind(),
            FailureKind::NoResources
        );
    }
}
