//! The mechanisms natkit uses to map ports and learn addresses.

use std::fmt;

/// How a mapping was made or an address was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Mechanism {
    /// UPnP Internet Gateway Device (IGD:1 or IGD:2).
    Upnp,
    /// NAT Port Mapping Protocol (RFC 6886).
    NatPmp,
    /// Port Control Protocol (RFC 6887).
    Pcp,
    /// Session Traversal Utilities for NAT (RFC 8489), address discovery only.
    Stun,
}

impl Mechanism {
    /// The machine name used in output and on the command line:
    /// `upnp`, `natpmp`, `pcp`, `stun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Upnp => "upnp",
            Mechanism::NatPmp => "natpmp",
            Mechanism::Pcp => "pcp",
            Mechanism::Stun => "stun",
        }
    }

    /// A human name: `UPnP IGD`, `NAT-PMP`, `PCP`, `STUN`.
    pub fn display_name(self) -> &'static str {
        match self {
            Mechanism::Upnp => "UPnP IGD",
            Mechanism::NatPmp => "NAT-PMP",
            Mechanism::Pcp => "PCP",
            Mechanism::Stun => "STUN",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
