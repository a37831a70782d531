//! NAT-PMP result codes (RFC 6886 §3.5).

use std::fmt;

use natkit_core::FailureKind;

/// The result code of a NAT-PMP response (RFC 6886 §3.5).
///
/// The code is 16 bits on the wire; values the RFC does not define are kept
/// in [`Unknown`](NatPmpResultCode::Unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NatPmpResultCode {
    /// 0: success.
    Success,
    /// 1: unsupported version. A NAT-PMP server also answers a PCP request
    /// with this code (and version 0), which is how a PCP client learns the
    /// router only speaks NAT-PMP.
    UnsupportedVersion,
    /// 2: not authorized / refused (e.g. the box supports mapping but the
    /// user has turned the feature off).
    NotAuthorized,
    /// 3: network failure (e.g. the NAT box itself has not obtained a DHCP
    /// lease on its WAN side).
    NetworkFailure,
    /// 4: out of resources (the box cannot create any more mappings now).
    OutOfResources,
    /// 5: unsupported opcode.
    UnsupportedOpcode,
    /// A code RFC 6886 does not define.
    Unknown(u16),
}

impl NatPmpResultCode {
    /// The code for a wire value.
    pub fn from_u16(code: u16) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::UnsupportedVersion,
            2 => Self::NotAuthorized,
            3 => Self::NetworkFailure,
            4 => Self::OutOfResources,
            5 => Self::UnsupportedOpcode,
            other => Self::Unknown(other),
        }
    }

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            Self::Success => 0,
            Self::UnsupportedVersion => 1,
            Self::NotAuthorized => 2,
            Self::NetworkFailure => 3,
            Self::OutOfResources => 4,
            Self::UnsupportedOpcode => 5,
            Self::Unknown(code) => code,
        }
    }

    /// Whether the same request may succeed later: a network failure (the
    /// router's WAN may come up) and out of resources (mappings may expire).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::NetworkFailure | Self::OutOfResources)
    }

    /// The broad failure kind natkit-core uses for this code.
    pub fn failure_kind(self) -> FailureKind {
        match self {
            // Success is never turned into an error; Protocol is the honest
            // answer if a caller does so anyway.
            Self::Success | Self::Unknown(_) => FailureKind::Protocol,
            Self::UnsupportedVersion => FailureKind::Unavailable,
            Self::NotAuthorized => FailureKind::Refused,
            Self::NetworkFailure => FailureKind::NotConnected,
            Self::OutOfResources => FailureKind::NoResources,
            Self::UnsupportedOpcode => FailureKind::Unsupported,
        }
    }
}

impl fmt::Display for NatPmpResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => f.write_str("0 success"),
            Self::UnsupportedVersion => f.write_str("1 unsupported version"),
            Self::NotAuthorized => f.write_str("2 not authorized/refused"),
            Self::NetworkFailure => f.write_str("3 network failure"),
            Self::OutOfResources => f.write_str("4 out of resources"),
            Self::UnsupportedOpcode => f.write_str("5 unsupported opcode"),
            Self::Unknown(code) => write!(f, "{code} (unknown result code)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_code() {
        for code in 0..=u16::MAX {
            assert_eq!(NatPmpResultCode::from_u16(code).as_u16(), code);
        }
    }

    #[test]
    fn retryable_and_kinds() {
        let retryable: Vec<u16> = (0..=6)
            .filter(|c| NatPmpResultCode::from_u16(*c).is_retryable())
            .collect();
        assert_eq!(retryable, vec![3, 4]);
        assert_eq!(
            NatPmpResultCode::NotAuthorized.failure_kind(),
            FailureKind::Refused
        );
        assert_eq!(
            NatPmpResultCode::OutOfResources.failure_kind(),
            FailureKind::NoResources
        );
        assert_eq!(
            NatPmpResultCode::UnsupportedOpcode.to_string(),
            "5 unsupported opcode"
        );
    }
}
