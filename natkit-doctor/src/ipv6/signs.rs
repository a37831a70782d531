//! What each check says of the firewall (a [`Sign`]), or why it says nothing
//! (a [`NoSign`], worded for the report).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One observation about the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sign {
    /// Evidence that new inbound connections are dropped.
    Blocks(String),
    /// Evidence that they get through.
    Allows(String),
}

/// Why a check gave no sign of the firewall, as data; the report words it
/// ([`fmt::Display`]) when it says why the firewall was not checked.
#[derive(Debug)]
pub(super) enum NoSign {
    /// No STUN server over IPv6 is configured (IPv4 literals serve the IPv4
    /// checks only).
    NoStunServer,
    /// No dial-back server over IPv6 was given.
    NoDialback,
    /// No UPnP IGD answered the router check.
    NoIgd,
    /// This host has no stable IPv6 address to ask the UPnP IGD from.
    NoStableAddress,
    /// The IGD offers no IPv6 firewall control for this host.
    IgdFirewall(natkit_upnp::Error),
    /// The STUN tests over IPv6 failed.
    StunFailed(natkit_stun::Error),
    /// The IGD's GetFirewallStatus failed.
    StatusFailed(natkit_upnp::Error),
    /// A check got no answer within its bound.
    NoAnswer {
        /// What was asked.
        asked: Asked,
        /// Its bound.
        within: Duration,
    },
    /// The STUN tests ran but what they saw tells nothing about a firewall.
    StunUntold {
        /// The server whose answers the behaviour rests on, if known.
        server: Option<SocketAddr>,
        /// What they saw.
        saw: StunUntold,
    },
}

/// What a check asks of something outside over IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// The RFC 5780 tests over IPv6.
    Stun,
    /// The UPnP IGD's GetFirewallStatus.
    FirewallStatus,
}

/// What STUN over IPv6 saw that tells nothing about a firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StunUntold {
    /// No server answered over UDP.
    NoAnswer,
    /// The address seen is not this host's own: the filtering tests measure
    /// a NAT66 or NPTv6 translator, not a firewall.
    Translated,
    /// The connectivity tests were inconclusive.
    Inconclusive,
    /// The filtering tests were inconclusive.
    FilteringInconclusive,
}

impl fmt::Display for NoSign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::render::error_line;
        match self {
            NoSign::NoStunServer => {
                f.write_str("no STUN server over IPv6 to test the firewall's filtering")
            }
            NoSign::NoDialback => f.write_str("no dial-back server over IPv6 given"),
            NoSign::NoIgd => f.write_str("no UPnP IGD answered to ask about its IPv6 firewall"),
            NoSign::NoStableAddress => {
                f.write_str("no stable IPv6 address to ask the UPnP IGD from")
            }
            NoSign::IgdFirewall(e) => write!(f, "UPnP IGD: {}", error_line(e)),
            NoSign::StunFailed(e) => write!(f, "{} failed: {}", Asked::Stun, error_line(e)),
            NoSign::StatusFailed(e) => {
                write!(f, "{} failed: {}", Asked::FirewallStatus, error_line(e))
            }
            NoSign::NoAnswer { asked, within } => {
                write!(f, "{asked}: no answer within {:.1} s", within.as_secs_f32())
            }
            NoSign::StunUntold { server, saw } => {
                match server {
                    Some(s) => write!(f, "STUN {s}: ")?,
                    None => f.write_str("STUN over IPv6: ")?,
                }
                f.write_str(match saw {
                    StunUntold::NoAnswer => "no STUN server answered over IPv6 (UDP)",
                    StunUntold::Translated => {
                        "the address seen over IPv6 is not this host's own (NAT66 or \
                         NPTv6): the filtering tests measure that translator, not a firewall"
                    }
                    StunUntold::Inconclusive => "the tests over IPv6 were inconclusive",
                    StunUntold::FilteringInconclusive => {
                        "the filtering tests over IPv6 were inconclusive"
                    }
                })
            }
        }
    }
}

impl fmt::Display for Asked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Asked::Stun => "STUN over IPv6",
            Asked::FirewallStatus => "UPnP IGD GetFirewallStatus",
        })
    }
}

/// What the RFC 5780 filtering tests over IPv6 say about the firewall: with
/// no NAT in the way (the server saw this host's own address), answers from
/// an address or port this host never sent to that are dropped mean a
/// stateful firewall; answers that get in mean none filters. `Err`: why the
/// tests could not tell.
pub(super) fn stun_sign(
    b: &natkit_core::NatBehaviour,
    server: Option<SocketAddr>,
) -> Result<Sign, NoSign> {
    use natkit_core::{Connectivity, FilteringBehaviour as F};
    let untold = |saw| Err(NoSign::StunUntold { server, saw });
    match b.connectivity {
        Connectivity::NoNat => {}
        Connectivity::UdpBlocked => return untold(StunUntold::NoAnswer),
        Connectivity::Nat => return untold(StunUntold::Translated),
        _ => return untold(StunUntold::Inconclusive),
    }
    let by = server.map_or_else(|| "STUN over IPv6".to_owned(), |s| format!("STUN {s}"));
    match b.filtering {
        F::AddressAndPortDependent | F::AddressDependent => Ok(Sign::Blocks(format!(
            "{by}: answers from an address or port this host never sent to are dropped \
             (filtering {}, no NAT): a stateful firewall",
            b.filtering.as_str()
        ))),
        F::EndpointIndependent => Ok(Sign::Allows(format!(
            "{by}: answers from an address and port this host never sent to get in \
             (filtering endpoint_independent, no NAT)"
        ))),
        _ => untold(StunUntold::FilteringInconclusive),
    }
}

/// What the router's UPnP IGD says of its IPv6 firewall (GetFirewallStatus):
/// enabled means new inbound connections need a pinhole.
pub(super) fn upnp_status_sign(enabled: bool, pinholes_allowed: bool) -> Sign {
    let status = format!(
        "GetFirewallStatus: FirewallEnabled {}, InboundPinholeAllowed {}",
        u8::from(enabled),
        u8::from(pinholes_allowed)
    );
    if enabled {
        Sign::Blocks(format!(
            "the router's UPnP IGD says its IPv6 firewall is on ({status})"
        ))
    } else {
        Sign::Allows(format!(
            "the router's UPnP IGD says its IPv6 firewall is off ({status})"
        ))
    }
}
