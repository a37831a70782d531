//! The IPv6 section: this host's global IPv6 addresses (stable and temporary),
//! whether the router's firewall drops new inbound IPv6 connections, whether
//! natkit can open a pinhole in it and through which protocol (opened for the
//! trial, then deleted), and with a dial-back server over IPv6 whether a port
//! is reachable from outside without and with a pinhole.
//!
//! There is no NAT on IPv6: a global address is reachable as it is, unless a
//! stateful firewall (every home router has one) drops what this host did not
//! ask for. A pinhole is a hole in that firewall for one address, port and
//! protocol: UPnP IGD's WANIPv6FirewallControl (AddPinhole) or a PCP MAP
//! request for an IPv6 address. It is opened for a stable address, never a
//! temporary (privacy) one that is retired within a day
//! ([`natkit_core::choose_stable_ipv6`]).
//!
//! Every part is bounded by the check's timeout and runs alongside the IPv4
//! checks; a part that cannot run says `not_checked` and why, never a guess.

mod checks;
mod findings;
mod text;

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{HostIpv6, Ipv6AddressError, Ipv6Kind, Protocol, StableIpv6};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::guard::MapGuard;

pub(crate) use findings::findings;
pub(crate) use text::render;

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

/// What the IPv6 checks need from the run.
pub(crate) struct Input {
    /// The STUN servers as configured: IPv6 literals, and names (their AAAA
    /// records); IPv4 literals are left out.
    pub(crate) stun_servers: Vec<String>,
    /// The ports to check, if any (the trial pinhole uses the first).
    pub(crate) ports: Vec<(u16, Protocol)>,
    /// A dial-back server's IPv6 address.
    pub(crate) dialback: Option<SocketAddr>,
    /// Whether to open trial pinholes at all.
    pub(crate) trial: bool,
    /// The bound on each check.
    pub(crate) timeout: Duration,
    /// The router check's mapper, once it has detected the protocols.
    pub(crate) router: tokio::sync::oneshot::Receiver<RouterForIpv6>,
}

/// What the router check hands the IPv6 checks.
#[derive(Default)]
pub(crate) struct RouterForIpv6 {
    /// The run's AutoMapper: pinholes go through it (PCP, then UPnP
    /// WANIPv6FirewallControl), journaled like the IPv4 trial mappings.
    pub(crate) auto: Option<Arc<natkit_portmap::AutoMapper>>,
    /// What the router's UPnP IGD answered to detection.
    pub(crate) upnp: crate::report::ProtocolState,
    /// What PCP answered.
    pub(crate) pcp: crate::report::ProtocolState,
}

impl Input {
    pub(crate) fn of(
        config: &crate::Config,
        timeout: Duration,
        router: tokio::sync::oneshot::Receiver<RouterForIpv6>,
    ) -> Input {
        Input {
            stun_servers: config.stun_servers.clone(),
            ports: config.ports.pairs(),
            dialback: config.dialback6.filter(SocketAddr::is_ipv6),
            trial: config.trial,
            timeout,
            router,
        }
    }
}

/// Starts the IPv6 checks on a task of their own.
pub(crate) fn start(input: Input, guard: Arc<MapGuard>) -> JoinHandle<Ipv6Report> {
    tokio::spawn(checks::run(input, guard))
}

/// The IPv6 section once done (`None` when it was cancelled).
pub(crate) async fn finish(started: JoinHandle<Ipv6Report>) -> Option<Ipv6Report> {
    crate::section(started).await
}

/// Whether a configured STUN server is an IPv6 literal (`[addr]:port`, or a
/// bare address): it serves the IPv6 checks only.
pub(crate) fn is_ipv6_literal(server: &str) -> bool {
    server.parse::<SocketAddr>().is_ok_and(|a| a.is_ipv6()) || server.parse::<Ipv6Addr>().is_ok()
}

/// This host's addresses as the report lists them: global ones only (a
/// link-local or unique local address is never reachable from outside).
fn listed(addrs: &[HostIpv6]) -> Vec<Ipv6HostAddress> {
    addrs
        .iter()
        .filter(|a| {
            matches!(
                a.kind,
                Ipv6Kind::GlobalStable
                    | Ipv6Kind::GlobalTemporary
                    | Ipv6Kind::Deprecated
                    | Ipv6Kind::Tentative
                    | Ipv6Kind::GlobalUnknown
            )
        })
        .map(|a| Ipv6HostAddress {
            address: a.address,
            kind: a.kind.as_str(),
            is_static: a.flags.is_some_and(natkit_core::Ipv6Flags::permanent),
            interface: a.interface.clone(),
        })
        .collect()
}

/// The host part of the section, decided from the address table, the kernel's
/// source address towards the IPv6 internet (`None`: no route) and the
/// stable-address choice.
pub(crate) struct HostIpv6State {
    pub(crate) available: bool,
    pub(crate) detail: String,
    pub(crate) addresses: Vec<Ipv6HostAddress>,
    pub(crate) stable: Option<StableIpv6>,
}

/// Decides the host part: available only with a usable global address and a
/// route to the IPv6 internet.
pub(crate) fn host_state(
    addrs: Result<Vec<HostIpv6>, Ipv6AddressError>,
    source: Option<Ipv6Addr>,
    chosen: Option<Result<StableIpv6, Ipv6AddressError>>,
) -> HostIpv6State {
    let addrs = match addrs {
        Ok(a) => a,
        Err(e) => {
            return HostIpv6State {
                available: false,
                detail: crate::render::error_line(&e),
                addresses: Vec::new(),
                stable: None,
            };
        }
    };
    let addresses = listed(&addrs);
    let ula: Vec<String> = (addrs.iter())
        .filter(|a| a.kind == Ipv6Kind::UniqueLocal)
        .map(|a| a.address.to_string())
        .collect();
    let usable = addrs.iter().any(|a| a.kind.is_usable_global());
    let source_global =
        source.filter(|s| natkit_core::AddressScope::of(IpAddr::V6(*s)).is_global());
    let (available, detail) = match (usable, source, source_global) {
        (false, _, _) if addresses.is_empty() && !ula.is_empty() => (
            false,
            format!(
                "this host has only unique local IPv6 addresses ({}), which the internet \
                 never reaches: the network has IPv6 inside but none to the internet",
                ula.join(", ")
            ),
        ),
        (false, _, _) if addresses.is_empty() => (
            false,
            "this host has no global IPv6 address (the network gives it none: no router \
             advertisement with a prefix, no DHCPv6)"
                .to_owned(),
        ),
        (false, _, _) => (
            false,
            "this host's global IPv6 addresses are all deprecated or not usable yet".to_owned(),
        ),
        (true, None, _) => (
            false,
            "this host has a global IPv6 address but no IPv6 route to the internet (no \
             default route from the router's advertisements)"
                .to_owned(),
        ),
        (true, Some(s), None) => (
            false,
            format!(
                "the IPv6 route to the internet leaves from {s}, which is not a global address"
            ),
        ),
        (true, Some(_), Some(s)) => {
            let on = addrs
                .iter()
                .find(|a| a.address == s)
                .and_then(|a| a.interface.clone())
                .map(|i| format!(" on {i}"))
                .unwrap_or_default();
            (true, format!("outbound IPv6 leaves from {s}{on}"))
        }
    };
    let stable = if available {
        chosen.and_then(Result::ok)
    } else {
        None
    };
    HostIpv6State {
        available,
        detail,
        addresses,
        stable,
    }
}

/// The report's view of the stable-address choice.
fn pinhole_address(s: &StableIpv6) -> PinholeAddress {
    PinholeAddress {
        address: s.address,
        reason: s.reason.as_str(),
        outbound_source: s.kernel_source,
    }
}

/// One observation about the firewall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sign {
    /// Evidence that new inbound connections are dropped.
    Blocks(String),
    /// Evidence that they get through.
    Allows(String),
}

/// Why a check gave no sign of the firewall, as data; the report words it
/// ([`fmt::Display`]) when it says why the firewall was not checked.
#[derive(Debug)]
pub(crate) enum NoSign {
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
pub(crate) enum Asked {
    /// The RFC 5780 tests over IPv6.
    Stun,
    /// The UPnP IGD's GetFirewallStatus.
    FirewallStatus,
}

/// What STUN over IPv6 saw that tells nothing about a firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StunUntold {
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
pub(crate) fn stun_sign(
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
pub(crate) fn upnp_status_sign(enabled: bool, pinholes_allowed: bool) -> Sign {
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

/// The firewall verdict from what the checks observed. A dial-back (or any)
/// observation of a drop outweighs a router that says its firewall is off:
/// what a connection from outside meets is the fact.
pub(crate) fn judge_firewall(signs: Vec<Sign>, why_none: Vec<NoSign>) -> FirewallCheck {
    let blocks = signs.iter().any(|s| matches!(s, Sign::Blocks(_)));
    let allows = signs.iter().any(|s| matches!(s, Sign::Allows(_)));
    let verdict = match (blocks, allows) {
        (true, _) => FirewallVerdict::BlocksInbound,
        (false, true) => FirewallVerdict::AllowsInbound,
        (false, false) if why_none.is_empty() => FirewallVerdict::Unknown,
        (false, false) => FirewallVerdict::NotChecked,
    };
    let evidence = signs
        .into_iter()
        .map(|s| match s {
            Sign::Blocks(e) | Sign::Allows(e) => e,
        })
        .collect();
    let not_checked = matches!(
        verdict,
        FirewallVerdict::Unknown | FirewallVerdict::NotChecked
    )
    .then(|| {
        if why_none.is_empty() {
            "the checks that ran could not tell".to_owned()
        } else {
            let why: Vec<String> = why_none.iter().map(NoSign::to_string).collect();
            why.join("; ")
        }
    });
    FirewallCheck {
        verdict,
        evidence,
        not_checked,
    }
}

/// What STUN over IPv6 saw of the way out, besides the firewall's filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StunPath {
    /// A server answered and saw this host's own address.
    Direct,
    /// A server answered and saw another address (the one it saw, if known):
    /// NAT66 or NPTv6 translates this host's IPv6.
    Translated(Option<SocketAddr>),
    /// No server answered.
    Silent,
    /// Not asked, or the tests could not tell.
    Unknown,
}

/// The section's conclusion once every check is in: whether IPv6 reaches the
/// internet (`available`), the detail, and the firewall verdict.
pub(crate) struct Conclusion {
    pub(crate) available: bool,
    pub(crate) detail: String,
    pub(crate) firewall: FirewallCheck,
}

/// Weighs the checks. What a packet from outside met (`observed`: STUN's
/// filtering tests, the dial-back without a pinhole) decides the firewall
/// verdict; the router's own word (`claim`: UPnP GetFirewallStatus) only when
/// nothing was observed, since a router may say its firewall is on while it
/// forwards everything. Two cases make any firewall verdict wrong:
/// - nothing outside answered over IPv6 (STUN silent, no dial-back connected,
///   `dial_answered` not `Some(true)`): IPv6 does not reach the internet (a
///   dead or missing IPv6 uplink), whatever the firewall does;
/// - STUN saw another address than this host's: a NAT on IPv6 stands between
///   the host and the internet, and a pinhole for the host's own address does
///   not make it reachable there.
pub(crate) fn conclude(
    host_detail: String,
    observed: Vec<Sign>,
    claim: Option<Sign>,
    why_none: Vec<NoSign>,
    path: StunPath,
    dial_answered: Option<bool>,
) -> Conclusion {
    let evidence_of = |s: &Sign| match s {
        Sign::Blocks(e) | Sign::Allows(e) => e.clone(),
    };
    let unknown = |evidence: Vec<String>, why: String| FirewallCheck {
        verdict: FirewallVerdict::Unknown,
        evidence,
        not_checked: Some(why),
    };
    let all: Vec<String> = observed.iter().chain(&claim).map(evidence_of).collect();
    match path {
        StunPath::Silent if dial_answered != Some(true) => {
            let how = if dial_answered == Some(false) {
                "no STUN server answered, and the dial-back server could not be reached"
            } else {
                "no STUN server answered"
            };
            let detail = format!(
                "{host_detail}, but nothing outside answers over IPv6 ({how}): IPv6 does not \
                 reach the internet (the router's IPv6 uplink is down, or it has none)"
            );
            let why = "IPv6 does not reach the internet, so what the firewall does to \
                       connections from outside cannot matter yet"
                .to_owned();
            Conclusion {
                available: false,
                detail,
                firewall: unknown(all, why),
            }
        }
        StunPath::Translated(seen) => {
            let seen = seen.map(|a| format!(" ({})", a.ip())).unwrap_or_default();
            let detail = format!(
                "{host_detail}; a NAT translates it (NAT66 or NPTv6): the internet sees another \
                 address{seen}"
            );
            let why = format!(
                "a NAT translates this host's IPv6 (STUN saw another address{seen}): a \
                 connection from outside meets that NAT, and a pinhole for this host's own \
                 address does not make it reachable there"
            );
            Conclusion {
                available: true,
                detail,
                firewall: unknown(all, why),
            }
        }
        _ => {
            let decisive = if observed.is_empty() {
                claim.clone().into_iter().collect()
            } else {
                observed
            };
            let mut firewall = judge_firewall(decisive, why_none);
            firewall.evidence = all;
            Conclusion {
                available: true,
                detail: host_detail,
                firewall,
            }
        }
    }
}

impl Ipv6Report {
    /// The section of a host without IPv6: every other part not checked, for
    /// the same reason.
    pub(crate) fn unavailable(host: HostIpv6State) -> Ipv6Report {
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
    pub(crate) fn not_checked(why: String) -> PinholeCheck {
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
    pub(crate) fn not_checked(server: Option<SocketAddr>, why: String) -> Ipv6Reachability {
        Ipv6Reachability {
            server,
            ports: Vec::new(),
            not_checked: Some(why),
        }
    }
}

/// `UPnP IGD` or `PCP`.
fn mechanism_name(protocol: &str) -> &'static str {
    match protocol {
        "upnp" => "UPnP IGD",
        "pcp" => "PCP",
        _ => "a pinhole protocol",
    }
}

#[cfg(test)]
mod conclude_tests;
#[cfg(test)]
mod tests;
