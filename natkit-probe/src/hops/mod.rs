//! The hop trace: another NAT upstream of the home router, from the first
//! hops towards a public address (see [`check_upstream_nat`] for the rules).

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use natkit_core::AddressScope;

use crate::icmp::{IcmpKind, IcmpReport, IcmpVersion};
use crate::payload::PayloadKind;

mod conclude;
mod schedule;
#[cfg(test)]
mod tests;

pub use conclude::{
    HopConclusion, HopsNotChecked, HopsUndecided, RouterFacts, UpstreamNat, UpstreamSeen,
    conclude_hops,
};
pub use schedule::{HopSchedule, HopStep, HopTry};

/// How the hop trace runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopConfig {
    /// TTLs 1..=`max_hops` are traced (1..=32). Two decide; the rest are
    /// evidence.
    pub max_hops: u8,
    /// How long one try waits before its TTL is tried again.
    pub try_timeout: Duration,
    /// Tries per TTL (1..=4). The whole trace takes at most
    /// `tries × try_timeout`, less when every hop up to the target answered.
    pub tries: u8,
    /// What each datagram carries. A STUN Binding request (the default) makes a
    /// STUN server at the target answer, which shows where the path ends.
    pub payload: PayloadKind,
}

impl Default for HopConfig {
    fn default() -> Self {
        HopConfig {
            max_hops: 6,
            try_timeout: Duration::from_millis(500),
            tries: 2,
            payload: PayloadKind::Stun,
        }
    }
}

impl HopConfig {
    /// The longest the trace can take.
    pub fn bound(&self) -> Duration {
        self.try_timeout * u32::from(self.tries.max(1))
    }

    fn clamped(mut self) -> Self {
        self.max_hops = self.max_hops.clamp(1, 32);
        self.tries = self.tries.clamp(1, 4);
        self
    }
}

/// What came back for one TTL, as the socket layer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopReply {
    /// ICMP time exceeded: a router on the way, named by its address.
    TimeExceeded {
        /// The router (the ICMP's sender), when the kernel reported it.
        from: Option<IpAddr>,
    },
    /// The target itself answered: any datagram from it, or its port
    /// unreachable. The path ends at this TTL.
    Reached,
    /// A router refused to forward (an ICMP destination unreachable).
    Unreachable {
        /// The ICMP type and code.
        kind: IcmpKind,
        /// The router that sent it, when known.
        from: Option<IpAddr>,
    },
}

impl HopReply {
    /// What an ICMP error for a datagram to `target` means for the hop trace;
    /// `None` when it says nothing about the path (packet too big, parameter
    /// problem): keep waiting.
    pub fn from_icmp(report: &IcmpReport, target: IpAddr) -> Option<HopReply> {
        let kind = report.kind;
        match (kind.version, kind.icmp_type) {
            (IcmpVersion::V4, 11) | (IcmpVersion::V6, 3) => Some(HopReply::TimeExceeded {
                from: report.offender.map(|a| a.to_canonical()),
            }),
            _ if kind.is_port_unreachable() && report.is_from(target) => Some(HopReply::Reached),
            // Fragmentation needed is a type 3 too, but says "smaller", not "no".
            (IcmpVersion::V4, 3) if kind.icmp_code != 4 => Some(HopReply::Unreachable {
                kind,
                from: report.offender.map(|a| a.to_canonical()),
            }),
            (IcmpVersion::V6, 1) => Some(HopReply::Unreachable {
                kind,
                from: report.offender.map(|a| a.to_canonical()),
            }),
            _ => None,
        }
    }
}

/// What one TTL drew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "seen", rename_all = "snake_case"))]
pub enum HopAnswer {
    /// A router: ICMP time exceeded.
    Router {
        /// From this TTL's send to the answer.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// The target itself: the path is this many hops long.
    Target {
        /// From this TTL's send to the answer.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// A router refused to forward: the path ends here.
    Unreachable {
        /// The ICMP type and code.
        icmp: IcmpKind,
        /// From this TTL's send to the answer.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// Nothing came back on any try.
    Silent,
}

/// One hop of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Hop {
    /// The TTL that died here (1 = the first router).
    pub ttl: u8,
    /// Who answered, when anyone did and the kernel named it.
    pub address: Option<IpAddr>,
    /// The address's scope.
    pub scope: Option<AddressScope>,
    /// What came back.
    pub answer: HopAnswer,
}

impl Hop {
    fn new(ttl: u8, address: Option<IpAddr>, answer: HopAnswer) -> Hop {
        Hop {
            ttl,
            address,
            scope: address.map(AddressScope::of),
            answer,
        }
    }

    /// A hop that stayed silent.
    pub fn silent(ttl: u8) -> Hop {
        Hop::new(ttl, None, HopAnswer::Silent)
    }

    /// A router at `address` (time exceeded).
    pub fn router(ttl: u8, address: IpAddr, rtt: Duration) -> Hop {
        Hop::new(ttl, Some(address), HopAnswer::Router { rtt })
    }

    /// The target at `address`.
    pub fn target(ttl: u8, address: IpAddr, rtt: Duration) -> Hop {
        Hop::new(ttl, Some(address), HopAnswer::Target { rtt })
    }

    /// The round-trip time, when it answered.
    pub fn rtt(&self) -> Option<Duration> {
        match self.answer {
            HopAnswer::Router { rtt }
            | HopAnswer::Target { rtt }
            | HopAnswer::Unreachable { rtt, .. } => Some(rtt),
            HopAnswer::Silent => None,
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>2}  ", self.ttl)?;
        match (self.address, self.scope) {
            (Some(a), Some(s)) => write!(f, "{a} ({s})")?,
            _ => f.write_str("*")?,
        }
        match self.answer {
            HopAnswer::Router { rtt } => write!(f, "  {:.1} ms", ms(rtt)),
            HopAnswer::Target { rtt } => write!(f, "  {:.1} ms  target", ms(rtt)),
            HopAnswer::Unreachable { icmp, rtt } => {
                write!(f, "  {:.1} ms  {}", ms(rtt), icmp.describe())
            }
            HopAnswer::Silent => f.write_str("  no answer"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Is there a second NAT upstream of the home router? The first hops toward a
/// public address answer that without the router's help (no UPnP, NAT-PMP or
/// PCP needed), the way Apple's "multiple NAT" troubleshooting uses traceroute.
///
/// A UDP datagram with a TTL of *n* dies at the *n*-th router, which sends an
/// ICMP time exceeded from its own address. Linux queues that error on the
/// sending socket (`IP_RECVERR`), so no raw socket and no privilege is needed.
/// [`trace_hops`] sends every TTL at once and returns one [`Hop`] per TTL;
/// [`conclude_hops`] decides, sans-IO, what the hops say:
///
/// - hop 1 is the home router (the default gateway);
/// - the hop right after it is the router's own upstream gateway. When that
///   one has a private (RFC 1918) or shared (100.64.0.0/10) address, the home
///   router's WAN side is not on the internet: another NAT is upstream — a
///   carrier-grade NAT when the address is shared, an ISP box or a second home
///   router when it is private ([`HopConclusion::DoubleNat`]);
/// - a public hop right after the router means one NAT
///   ([`HopConclusion::SingleNat`]).
///
/// Private hops *further* on say nothing: ISPs number their own core routers
/// from RFC 1918 (a traceroute of a home line with a public address often
/// shows `10.x` routers after a public one). Only the router's next hop counts.
/// Even that one can be private on a line with a public address (some ISPs
/// number the link to the customer privately); when the router has reported a
/// public WAN address (UPnP, NAT-PMP, PCP) that report wins, and a private
/// next hop without it is marked as not corroborated.
///
/// Silence is not evidence: a router that sends no time exceeded leaves its
/// hop [`HopAnswer::Silent`], and when the hop that decides is silent the
/// answer is [`HopConclusion::Unknown`], never "single NAT".
///
/// A router whose WAN address was set by hand to a public one (miniupnpd's
/// `ext_ip` behind a carrier-grade NAT) defeats the cross-check: its report
/// wins over the shared next hop.
///
/// This traces the first hops toward `target` (a public STUN server's address,
/// or any public address) and concludes with `router`'s facts. Bounded by
/// [`HopConfig::bound`]; needs a tokio runtime with I/O and time.
pub async fn check_upstream_nat(
    target: std::net::SocketAddr,
    config: HopConfig,
    router: RouterFacts,
) -> HopConclusion {
    match trace_hops(target, config).await {
        Ok(hops) => conclude_hops(target.ip(), hops, router),
        Err(why) => HopConclusion::NotChecked { why },
    }
}

/// Traces TTLs 1..=`max_hops` toward `target` at once, each datagram on its own
/// unprivileged UDP socket with `IP_TTL` (or the IPv6 hop limit) set, and
/// returns one [`Hop`] per TTL up to the target. Bounded by
/// [`HopConfig::bound`].
///
/// Linux only: the ICMP time exceeded comes from the socket error queue
/// (`IP_RECVERR`, `SO_EE_OFFENDER`). Elsewhere it returns
/// [`HopsNotChecked::Platform`]: macOS and the BSDs deliver no ICMP error
/// with its sender to a UDP socket (their traceroute uses a raw socket, as
/// root); macOS's unprivileged ICMP datagram sockets and Windows'
/// `IcmpSendEcho2` with a TTL would work and are not implemented.
pub async fn trace_hops(
    target: std::net::SocketAddr,
    config: HopConfig,
) -> Result<Vec<Hop>, HopsNotChecked> {
    #[cfg(target_os = "linux")]
    {
        crate::engine::hops::trace(target, config).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (target, config);
        Err(HopsNotChecked::Platform)
    }
}
