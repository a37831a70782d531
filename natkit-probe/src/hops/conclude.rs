//! The hop trace's rules: what the hops and the router's facts say about
//! another NAT upstream.

use std::fmt;
use std::net::IpAddr;

use natkit_core::AddressScope;

use super::{Hop, HopAnswer};

/// What the caller knows about the home router, to cross-check the hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouterFacts {
    /// The default gateway: stands in for hop 1 when the router sends no time
    /// exceeded.
    pub gateway: Option<IpAddr>,
    /// The router's WAN address, when it reported one (UPnP, NAT-PMP, PCP).
    pub wan: Option<IpAddr>,
}

/// How the upstream NAT was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum UpstreamSeen {
    /// The router's next hop has a private or shared address, and the router
    /// reported no WAN address to confirm it.
    NextHop,
    /// The router's next hop has a private or shared address, and the router's
    /// own WAN address is private or shared too.
    NextHopAndRouterWan,
    /// The router reported a private or shared WAN address; its next hop did
    /// not answer (or answered publicly).
    RouterWan,
}

/// The NAT upstream of the home router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UpstreamNat {
    /// Its address as seen (the router's next hop, or the router's WAN address).
    pub address: IpAddr,
    /// That address's scope.
    pub scope: AddressScope,
    /// Shared address space (100.64.0.0/10, RFC 6598): an ISP's carrier-grade
    /// NAT.
    pub carrier_grade: bool,
    /// How it was seen.
    pub seen: UpstreamSeen,
}

impl fmt::Display for UpstreamNat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.carrier_grade {
            "a carrier-grade NAT"
        } else {
            "another NAT"
        };
        match self.seen {
            UpstreamSeen::NextHop | UpstreamSeen::NextHopAndRouterWan => write!(
                f,
                "{what} upstream: the router's next hop is {} ({})",
                self.address, self.scope
            ),
            UpstreamSeen::RouterWan => write!(
                f,
                "{what} upstream: the router's WAN address is {} ({})",
                self.address, self.scope
            ),
        }
    }
}

/// Why the hops could not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "reason", rename_all = "snake_case"))]
pub enum HopsUndecided {
    /// The target is not a public address, so the path to it need not cross
    /// the internet.
    TargetNotPublic {
        /// The target.
        target: IpAddr,
    },
    /// Hop 1 did not answer and no default gateway was given.
    FirstHopSilent,
    /// The first router has a public address: this host is not behind a home
    /// NAT router (or the router answers from its WAN side).
    FirstHopPublic {
        /// Its address.
        address: IpAddr,
    },
    /// The router's next hop did not answer: it may be a NAT or not.
    NextHopSilent,
    /// The path ends at the router (it refused to forward, or nothing past it
    /// was traced): no internet behind it, or too few hops traced.
    NothingBeyondRouter,
}

impl fmt::Display for HopsUndecided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopsUndecided::TargetNotPublic { target } => {
                write!(f, "the target {target} is not a public address")
            }
            HopsUndecided::FirstHopSilent => {
                f.write_str("the first router sent no ICMP time exceeded")
            }
            HopsUndecided::FirstHopPublic { address } => write!(
                f,
                "the first router answers from a public address ({address}): no home NAT router in front"
            ),
            HopsUndecided::NextHopSilent => f.write_str(
                "the router's next hop sent no ICMP time exceeded, so it may or may not be a NAT",
            ),
            HopsUndecided::NothingBeyondRouter => {
                f.write_str("nothing past the router answered: the path ends there")
            }
        }
    }
}

/// Why the hop trace did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "reason", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum HopsNotChecked {
    /// This platform gives an unprivileged UDP socket no ICMP time exceeded
    /// (only Linux has the socket error queue).
    Platform,
    /// The socket calls failed (no route, out of descriptors …).
    Socket {
        /// The OS error number.
        errno: i32,
    },
    /// No tokio runtime with I/O and time enabled.
    NoRuntime,
}

impl fmt::Display for HopsNotChecked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopsNotChecked::Platform => f.write_str(
                "not checked: this platform reports no ICMP time exceeded to an unprivileged UDP socket",
            ),
            HopsNotChecked::Socket { errno } => write!(
                f,
                "not checked: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            HopsNotChecked::NoRuntime => {
                f.write_str("not checked: no tokio runtime with I/O and time")
            }
        }
    }
}

/// What the first hops say about NAT upstream of the home router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "nat", rename_all = "snake_case"))]
pub enum HopConclusion {
    /// Another NAT sits upstream of the home router.
    DoubleNat {
        /// The upstream NAT.
        upstream: UpstreamNat,
        /// The hops, as evidence.
        hops: Vec<Hop>,
    },
    /// The router's next hop is public (or the router reported a public WAN
    /// address): one NAT, the home router's.
    SingleNat {
        /// The hops, as evidence.
        hops: Vec<Hop>,
    },
    /// The hops do not tell.
    Unknown {
        /// Why not.
        why: HopsUndecided,
        /// The hops, as evidence.
        hops: Vec<Hop>,
    },
    /// The trace could not run here.
    NotChecked {
        /// Why not.
        why: HopsNotChecked,
    },
}

impl HopConclusion {
    /// The hops behind the conclusion (none when not checked).
    pub fn hops(&self) -> &[Hop] {
        match self {
            HopConclusion::DoubleNat { hops, .. }
            | HopConclusion::SingleNat { hops }
            | HopConclusion::Unknown { hops, .. } => hops,
            HopConclusion::NotChecked { .. } => &[],
        }
    }

    /// The upstream NAT, when there is one.
    pub fn upstream(&self) -> Option<&UpstreamNat> {
        match self {
            HopConclusion::DoubleNat { upstream, .. } => Some(upstream),
            _ => None,
        }
    }
}

impl fmt::Display for HopConclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HopConclusion::DoubleNat { upstream, .. } => write!(f, "double NAT: {upstream}"),
            HopConclusion::SingleNat { .. } => {
                f.write_str("single NAT: the router's next hop is public")
            }
            HopConclusion::Unknown { why, .. } => write!(f, "unknown: {why}"),
            HopConclusion::NotChecked { why } => write!(f, "{why}"),
        }
    }
}

/// What `hops` toward `target` say, cross-checked with what is known of the
/// router. Sans-IO; the rules are those of
/// [`check_upstream_nat`](super::check_upstream_nat).
pub fn conclude_hops(target: IpAddr, hops: Vec<Hop>, router: RouterFacts) -> HopConclusion {
    let unknown = |why, hops| HopConclusion::Unknown { why, hops };
    if !AddressScope::of(target).is_global() {
        return unknown(HopsUndecided::TargetNotPublic { target }, hops);
    }
    let wan_scope = router.wan.map(AddressScope::of);
    let wan_public = wan_scope.is_some_and(AddressScope::is_global);
    // The router's own word on its WAN side: a reserved WAN address is a
    // second NAT whatever the hops show.
    let wan_upstream = router
        .wan
        .zip(wan_scope)
        .filter(|(_, s)| !s.is_global())
        .map(|(address, scope)| UpstreamNat {
            address,
            scope,
            carrier_grade: scope == AddressScope::Shared,
            seen: UpstreamSeen::RouterWan,
        });
    let by_wan = |why: HopsUndecided, hops: Vec<Hop>| match wan_upstream {
        Some(upstream) => HopConclusion::DoubleNat { upstream, hops },
        None if wan_public => HopConclusion::SingleNat { hops },
        None => unknown(why, hops),
    };

    let first = hops.iter().find(|h| h.ttl == 1);
    let first_addr = match first {
        Some(h) if matches!(h.answer, HopAnswer::Unreachable { .. }) => {
            return by_wan(HopsUndecided::NothingBeyondRouter, hops);
        }
        Some(Hop {
            address: Some(a), ..
        }) => Some(a.to_canonical()),
        _ => router.gateway.map(|g| g.to_canonical()),
    };
    let Some(first_addr) = first_addr else {
        return by_wan(HopsUndecided::FirstHopSilent, hops);
    };
    if AddressScope::of(first_addr).is_global() {
        return by_wan(
            HopsUndecided::FirstHopPublic {
                address: first_addr,
            },
            hops,
        );
    }

    // The router's next hop: the first hop past TTL 1 that is not the router
    // answering again (some routers answer for two TTLs).
    let mut next = None;
    for h in hops.iter().filter(|h| h.ttl >= 2) {
        match (h.answer, h.address.map(|a| a.to_canonical())) {
            (HopAnswer::Silent, _) | (_, None) => {
                return by_wan(HopsUndecided::NextHopSilent, hops);
            }
            (HopAnswer::Unreachable { .. }, Some(a)) if a == first_addr => {
                return by_wan(HopsUndecided::NothingBeyondRouter, hops);
            }
            (_, Some(a)) if a == first_addr => continue,
            (_, Some(a)) => {
                next = Some(a);
                break;
            }
        }
    }
    let Some(next) = next else {
        return by_wan(HopsUndecided::NothingBeyondRouter, hops);
    };
    let scope = AddressScope::of(next);
    if scope.is_global() {
        return match wan_upstream {
            Some(upstream) => HopConclusion::DoubleNat { upstream, hops },
            None => HopConclusion::SingleNat { hops },
        };
    }
    if wan_public {
        // The router has a public WAN address, so the private next hop is the
        // ISP numbering its link privately, not a NAT.
        return HopConclusion::SingleNat { hops };
    }
    let seen = if wan_upstream.is_some() {
        UpstreamSeen::NextHopAndRouterWan
    } else {
        UpstreamSeen::NextHop
    };
    HopConclusion::DoubleNat {
        upstream: UpstreamNat {
            address: next,
            scope,
            carrier_grade: scope == AddressScope::Shared,
            seen,
        },
        hops,
    }
}
