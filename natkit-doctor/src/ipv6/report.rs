//! The section's public types, as the report and its JSON carry them, and
//! their constructors for a part that did not run.

use std::net::{Ipv6Addr, SocketAddr};

use natkit_core::Protocol;
use serde::Serialize;

use super::host::HostIpv6State;

/// What the doctor found about IPv6.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Ipv6Report {
    /// Whether this host has a usable global IPv6 address and a route to the
    /// IPv6 internet (without them the other parts do not run), and something
    /// outside answered over IPv6 (when nothing did, the parts that ran say
    /// what they saw).
    pub available: bool,
    /// Why IPv6 is not available, or which interface its route leaves by.
    pub detail: String,
    /// This host's global IPv6 addresses (every interface), each with its kind.
    pub addresses: Vec<Ipv6HostAddress>,
    /// The address natkit opens pinholes for: a stable one, never a temporary;
    /// `None` when there is none.
    pub pinhole_address: Option<PinholeAddress>,
    /// Whether the router's firewall drops new inbound IPv6 connections.
    pub firewall: FirewallCheck,
    /// The trial pinhole: opened, then deleted.
    pub pinhole: PinholeCheck,
    /// Reachability from outside over IPv6 (with a dial-back server).
    pub reachability: Ipv6Reachability,
}

/// One global IPv6 address of this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Ipv6HostAddress {
    /// The address.
    pub address: Ipv6Addr,
    /// `global_stable`, `global_temporary`, `deprecated`, `tentative`, or
    /// `global_unknown` where the platform does not tell
    /// ([`natkit_core::Ipv6Kind`]).
    pub kind: &'static str,
    /// Configured by hand (no lifetime), where the platform tells.
    #[serde(rename = "static")]
    pub is_static: bool,
    /// The interface holding it.
    pub interface: Option<String>,
}

/// The stable address a pinhole uses, and why that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PinholeAddress {
    /// The address.
    pub address: Ipv6Addr,
    /// `kernel_source` (outbound traffic uses it too), `static`, or
    /// `autoconfigured` ([`natkit_core::StableReason`]).
    pub reason: &'static str,
    /// The address outbound connections use instead, when that is another
    /// (typically a temporary one).
    pub outbound_source: Option<Ipv6Addr>,
}

/// The firewall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FirewallVerdict {
    /// New inbound connections are dropped unless a pinhole lets them in.
    BlocksInbound,
    /// New inbound connections get through without a pinhole.
    AllowsInbound,
    /// The checks that ran could not tell.
    Unknown,
    /// No check could run (see `not_checked`).
    NotChecked,
}

impl FirewallVerdict {
    /// The stable snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallVerdict::BlocksInbound => "blocks_inbound",
            FirewallVerdict::AllowsInbound => "allows_inbound",
            FirewallVerdict::Unknown => "unknown",
            FirewallVerdict::NotChecked => "not_checked",
        }
    }
}

/// Whether the router's firewall drops new inbound IPv6.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FirewallCheck {
    /// The verdict.
    pub verdict: FirewallVerdict,
    /// What it rests on, each observation in words.
    pub evidence: Vec<String>,
    /// With `unknown` or `not_checked`: why nothing could tell.
    pub not_checked: Option<String>,
}

/// How the pinhole trial went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PinholeVerdict {
    /// A protocol opened the pinhole (it was deleted after the trial).
    Opened,
    /// A pinhole protocol answered but refused.
    Refused,
    /// The router answers no pinhole protocol (neither UPnP
    /// WANIPv6FirewallControl nor PCP over IPv6).
    NoProtocol,
    /// Not tried (see `not_checked`).
    NotChecked,
}

impl PinholeVerdict {
    /// The stable snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PinholeVerdict::Opened => "opened",
            PinholeVerdict::Refused => "refused",
            PinholeVerdict::NoProtocol => "no_protocol",
            PinholeVerdict::NotChecked => "not_checked",
        }
    }
}

/// The trial pinhole.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PinholeCheck {
    /// The outcome.
    pub verdict: PinholeVerdict,
    /// The protocol that opened it (`upnp` or `pcp`), the first that did in
    /// natkit's order (UPnP, then PCP).
    pub protocol: Option<&'static str>,
    /// The address and port of the trial pinhole.
    pub pinhole: Option<SocketAddr>,
    /// Its transport.
    pub transport: Option<Protocol>,
    /// Every protocol asked and what it said.
    pub attempts: Vec<PinholeAttempt>,
    /// With `not_checked`: why it was not tried.
    pub not_checked: Option<String>,
}

/// One pinhole protocol's answer to the trial.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PinholeAttempt {
    /// `upnp` (WANIPv6FirewallControl) or `pcp`.
    pub protocol: &'static str,
    /// `opened`, `refused` (it answered with an error) or `absent` (nothing
    /// usable answered: no server, not over IPv6, silence).
    pub outcome: &'static str,
    /// Whether the pinhole it opened was deleted again; `None` when none was
    /// opened.
    pub removed: Option<bool>,
    /// The router's refusal, why it is absent, or why deleting failed.
    pub detail: Option<String>,
}

/// Reachability from outside over IPv6.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Ipv6Reachability {
    /// The dial-back server asked (its IPv6 address).
    pub server: Option<SocketAddr>,
    /// One entry per port and round: first without a pinhole, then through
    /// one (when natkit could open one).
    pub ports: Vec<Ipv6PortReachability>,
    /// Why it was not checked (no dial-back server over IPv6, no ports …).
    pub not_checked: Option<String>,
}

/// One port's verdict in one round.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Ipv6PortReachability {
    /// The port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Whether natkit held a pinhole for it while the server dialled.
    pub through_pinhole: bool,
    /// `reachable`, `wrong_host`, `closed`, `filtered` (natkit-probe's
    /// verdicts), or `error` when the dial-back failed.
    pub verdict: String,
    /// What the server saw, in words.
    pub detail: Option<String>,
}

impl Ipv6Report {
    /// The section of a host without IPv6: every other part not checked, for
    /// the same reason.
    pub(super) fn unavailable(host: HostIpv6State) -> Ipv6Report {
        let why = format!("no IPv6: {}", host.detail);
        Ipv6Report {
            available: false,
            detail: host.detail,
            addresses: host.addresses,
            pinhole_address: None,
            firewall: FirewallCheck {
                verdict: FirewallVerdict::NotChecked,
                evidence: Vec::new(),
                not_checked: Some(why.clone()),
            },
            pinhole: PinholeCheck::not_checked(why.clone()),
            reachability: Ipv6Reachability::not_checked(None, why),
        }
    }
}

impl PinholeCheck {
    pub(super) fn not_checked(why: String) -> PinholeCheck {
        PinholeCheck {
            verdict: PinholeVerdict::NotChecked,
            protocol: None,
            pinhole: None,
            transport: None,
            attempts: Vec::new(),
            not_checked: Some(why),
        }
    }
}

impl Ipv6Reachability {
    pub(super) fn not_checked(server: Option<SocketAddr>, why: String) -> Ipv6Reachability {
        Ipv6Reachability {
            server,
            ports: Vec::new(),
            not_checked: Some(why),
        }
    }
}

/// `UPnP IGD` or `PCP`.
pub(super) fn mechanism_name(protocol: &str) -> &'static str {
    match protocol {
        "upnp" => "UPnP IGD",
        "pcp" => "PCP",
        _ => "a pinhole protocol",
    }
}
