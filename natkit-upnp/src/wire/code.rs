//! UPnP error codes carried in SOAP faults (`<UPnPError><errorCode>`).
//!
//! The codes come from the UPnP Device Architecture (4xx, 5xx, 6xx) and
//! the WANIPConnection:2 service specification (7xx).

use std::fmt;

use natkit_core::FailureKind;

/// A UPnP error code from a SOAP fault, typed where natkit acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UpnpErrorCode {
    /// 401 Invalid Action: the service does not implement the action.
    InvalidAction,
    /// 402 Invalid Args: an argument was wrong. Some routers also use it
    /// for lease durations they do not accept.
    InvalidArgs,
    /// 501 Action Failed: the device could not carry out the action.
    ActionFailed,
    /// 606 Action not authorized (miniupnpd in `secure_mode` answers this
    /// when the internal client is not the host asking).
    NotAuthorized,
    /// 713 SpecifiedArrayIndexInvalid: past the end of the mapping table.
    SpecifiedArrayIndexInvalid,
    /// 714 NoSuchEntryInArray: no mapping with that external port and protocol.
    NoSuchEntryInArray,
    /// 715 WildCardNotPermittedInSrcIP.
    WildCardNotPermittedInSrcIp,
    /// 716 WildCardNotPermittedInExtPort.
    WildCardNotPermittedInExtPort,
    /// 718 ConflictInMappingEntry: the external port is mapped to another host.
    ConflictInMappingEntry,
    /// 724 SamePortValuesRequired: external and internal port must be equal.
    SamePortValuesRequired,
    /// 725 OnlyPermanentLeasesSupported: the lease must be 0.
    OnlyPermanentLeasesSupported,
    /// 726 RemoteHostOnlySupportsWildcard.
    RemoteHostOnlySupportsWildcard,
    /// 727 ExternalPortOnlySupportsWildcard.
    ExternalPortOnlySupportsWildcard,
    /// 728 NoPortMapsAvailable: the router has no room or no free port.
    NoPortMapsAvailable,
    /// 729 ConflictWithOtherMechanisms: the port is held by another
    /// mechanism (NAT-PMP, PCP, static forwarding).
    ConflictWithOtherMechanisms,
    /// 732 WildCardNotPermittedInIntPort.
    WildCardNotPermittedInIntPort,
    /// Any other code, kept as the number the router sent.
    Unknown(u16),
}

impl UpnpErrorCode {
    /// The type for a numeric code.
    pub fn from_code(code: u16) -> Self {
        use UpnpErrorCode::*;
        match code {
            401 => InvalidAction,
            402 => InvalidArgs,
            501 => ActionFailed,
            606 => NotAuthorized,
            713 => SpecifiedArrayIndexInvalid,
            714 => NoSuchEntryInArray,
            715 => WildCardNotPermittedInSrcIp,
            716 => WildCardNotPermittedInExtPort,
            718 => ConflictInMappingEntry,
            724 => SamePortValuesRequired,
            725 => OnlyPermanentLeasesSupported,
            726 => RemoteHostOnlySupportsWildcard,
            727 => ExternalPortOnlySupportsWildcard,
            728 => NoPortMapsAvailable,
            729 => ConflictWithOtherMechanisms,
            732 => WildCardNotPermittedInIntPort,
            other => Unknown(other),
        }
    }

    /// The numeric code.
    pub fn code(self) -> u16 {
        use UpnpErrorCode::*;
        match self {
            InvalidAction => 401,
            InvalidArgs => 402,
            ActionFailed => 501,
            NotAuthorized => 606,
            SpecifiedArrayIndexInvalid => 713,
            NoSuchEntryInArray => 714,
            WildCardNotPermittedInSrcIp => 715,
            WildCardNotPermittedInExtPort => 716,
            ConflictInMappingEntry => 718,
            SamePortValuesRequired => 724,
            OnlyPermanentLeasesSupported => 725,
            RemoteHostOnlySupportsWildcard => 726,
            ExternalPortOnlySupportsWildcard => 727,
            NoPortMapsAvailable => 728,
            ConflictWithOtherMechanisms => 729,
            WildCardNotPermittedInIntPort => 732,
            Unknown(code) => code,
        }
    }

    /// The spec's name for the code, or `unknown`.
    pub fn name(self) -> &'static str {
        use UpnpErrorCode::*;
        match self {
            InvalidAction => "InvalidAction",
            InvalidArgs => "InvalidArgs",
            ActionFailed => "ActionFailed",
            NotAuthorized => "ActionNotAuthorized",
            SpecifiedArrayIndexInvalid => "SpecifiedArrayIndexInvalid",
            NoSuchEntryInArray => "NoSuchEntryInArray",
            WildCardNotPermittedInSrcIp => "WildCardNotPermittedInSrcIP",
            WildCardNotPermittedInExtPort => "WildCardNotPermittedInExtPort",
            ConflictInMappingEntry => "ConflictInMappingEntry",
            SamePortValuesRequired => "SamePortValuesRequired",
            OnlyPermanentLeasesSupported => "OnlyPermanentLeasesSupported",
            RemoteHostOnlySupportsWildcard => "RemoteHostOnlySupportsWildcard",
            ExternalPortOnlySupportsWildcard => "ExternalPortOnlySupportsWildcard",
            NoPortMapsAvailable => "NoPortMapsAvailable",
            ConflictWithOtherMechanisms => "ConflictWithOtherMechanisms",
            WildCardNotPermittedInIntPort => "WildCardNotPermittedInIntPort",
            Unknown(_) => "unknown",
        }
    }

    /// Whether the same request may succeed later without any change:
    /// only when the router is out of ports or table space, which frees up
    /// as other leases end.
    pub fn is_retryable(self) -> bool {
        self.failure_kind().is_retryable()
    }

    /// The protocol-independent kind of failure this code means.
    pub fn failure_kind(self) -> FailureKind {
        use UpnpErrorCode::*;
        match self {
            InvalidAction => FailureKind::Unsupported,
            InvalidArgs | ActionFailed | NotAuthorized => FailureKind::Refused,
            SpecifiedArrayIndexInvalid => FailureKind::Protocol,
            // GetSpecificPortMappingEntry and DeletePortMapping's answer for
            // an entry the router does not hold (expired, deleted, or lost in
            // a restart).
            NoSuchEntryInArray => FailureKind::NoSuchMapping,
            ConflictInMappingEntry | ConflictWithOtherMechanisms => FailureKind::Conflict,
            NoPortMapsAvailable => FailureKind::NoResources,
            WildCardNotPermittedInSrcIp
            | WildCardNotPermittedInExtPort
            | SamePortValuesRequired
            | OnlyPermanentLeasesSupported
            | RemoteHostOnlySupportsWildcard
            | ExternalPortOnlySupportsWildcard
            | WildCardNotPermittedInIntPort => FailureKind::Unsupported,
            Unknown(_) => FailureKind::Refused,
        }
    }
}

impl fmt::Display for UpnpErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            401, 402, 501, 606, 713, 714, 715, 716, 718, 724, 725, 726, 727, 728, 729, 732, 999,
        ] {
            assert_eq!(UpnpErrorCode::from_code(code).code(), code);
        }
        assert_eq!(UpnpErrorCode::from_code(999), UpnpErrorCode::Unknown(999));
        assert_eq!(
            UpnpErrorCode::ConflictInMappingEntry.to_string(),
            "718 ConflictInMappingEntry"
        );
    }

    #[test]
    fn only_resource_shortage_is_retryable() {
        assert!(UpnpErrorCode::NoPortMapsAvailable.is_retryable());
        for c in [402, 501, 606, 718, 725, 729, 1234] {
            assert!(!UpnpErrorCode::from_code(c).is_retryable(), "{c}");
        }
        assert_eq!(
            UpnpErrorCode::ConflictWithOtherMechanisms.failure_kind(),
            FailureKind::Conflict
        );
        assert_eq!(
            UpnpErrorCode::from_code(714).failure_kind(),
            FailureKind::NoSuchMapping
        );
        assert_eq!(
            UpnpErrorCode::from_code(713).failure_kind(),
            FailureKind::Protocol
        );
    }
}
