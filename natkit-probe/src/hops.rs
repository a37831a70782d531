//! The hop probe: another NAT upstream of the home router, from the first
//! hops towards a public address (see [`check_upstream_nat`] for the rules).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use natkit_core::AddressScope;

use crate::icmp::{IcmpKind, IcmpReport, IcmpVersion};
use crate::payload::PayloadKind;

/// How the hop probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopConfig {
    /// TTLs 1..=`max_hops` are probed (1..=32). Two decide; the rest are
    /// evidence.
    pub max_hops: u8,
    /// How long one try waits before its TTL is tried again.
    pub try_timeout: Duration,
    /// Tries per TTL (1..=4). The whole probe takes at most
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
    /// The longest the probe can take.
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
    /// What an ICMP error for a datagram to `target` means for the hop probe;
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

/// One datagram to send: TTL `ttl`, its `attempt`-th try (from 0). Each try
/// goes out on its own socket, so every answer belongs to exactly one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopTry {
    /// The TTL (hop limit).
    pub ttl: u8,
    /// 0 for the first try.
    pub attempt: u8,
}

/// What [`HopSchedule::poll`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopStep {
    /// Send this try now.
    Send(HopTry),
    /// Nothing to send before this instant (or before an answer comes).
    WaitUntil(Instant),
    /// Finished: read [`HopSchedule::hops`].
    Done,
}

#[derive(Debug, Clone)]
struct Slot {
    sent: Vec<Instant>,
    answer: Option<(HopReply, Duration)>,
}

/// The hop probe's timing, sans-IO: every TTL at once, each retried after
/// `try_timeout` while silent, all done by `tries × try_timeout` or as soon as
/// every hop up to the target answered.
#[derive(Debug, Clone)]
pub struct HopSchedule {
    config: HopConfig,
    target: IpAddr,
    end: Instant,
    slots: Vec<Slot>,
    /// The smallest TTL that reached the target: hops past it are the target
    /// again, not worth waiting for.
    limit: u8,
}

impl HopSchedule {
    /// A schedule toward `target` starting at `now`.
    pub fn new(config: HopConfig, target: IpAddr, now: Instant) -> HopSchedule {
        let config = config.clamped();
        HopSchedule {
            config,
            target,
            end: now + config.bound(),
            slots: vec![
                Slot {
                    sent: Vec::new(),
                    answer: None,
                };
                usize::from(config.max_hops)
            ],
            limit: config.max_hops,
        }
    }

    /// The configuration in force (out-of-range values clamped).
    pub fn config(&self) -> &HopConfig {
        &self.config
    }

    /// When the probe ends at the latest.
    pub fn deadline(&self) -> Instant {
        self.end
    }

    fn live(&self) -> impl Iterator<Item = (u8, &Slot)> {
        (1..=self.limit).zip(&self.slots)
    }

    /// Whether every hop up to the target has answered, or time is up.
    pub fn is_done(&self, now: Instant) -> bool {
        now >= self.end || self.live().all(|(_, s)| s.answer.is_some())
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: Instant) -> HopStep {
        if self.is_done(now) {
            return HopStep::Done;
        }
        let timeout = self.config.try_timeout;
        let tries = usize::from(self.config.tries);
        let mut wake = self.end;
        for ttl in 1..=self.limit {
            let slot = &mut self.slots[usize::from(ttl - 1)];
            if slot.answer.is_some() || slot.sent.len() >= tries {
                continue;
            }
            let due = slot.sent.last().map_or(now, |&t| t + timeout);
            if due <= now {
                let attempt = u8::try_from(slot.sent.len()).unwrap_or(u8::MAX);
                slot.sent.push(now);
                return HopStep::Send(HopTry { ttl, attempt });
            }
            if due > now {
                wake = wake.min(due);
            }
        }
        HopStep::WaitUntil(wake)
    }

    /// Records what `at` drew at `now`. The first answer for a TTL counts;
    /// later ones, and answers to tries never sent, are ignored.
    pub fn on_reply(&mut self, at: HopTry, reply: HopReply, now: Instant) {
        let Some(slot) = at
            .ttl
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(usize::from(i)))
        else {
            return;
        };
        let Some(&sent) = slot.sent.get(usize::from(at.attempt)) else {
            return;
        };
        if slot.answer.is_some() {
            return;
        }
        slot.answer = Some((reply, now.saturating_duration_since(sent)));
        if reply == HopReply::Reached && at.ttl < self.limit {
            self.limit = at.ttl;
        }
    }

    /// The hops so far, TTL 1 up to the target (or `max_hops`).
    pub fn hops(&self) -> Vec<Hop> {
        self.live()
            .map(|(ttl, slot)| match slot.answer {
                None => Hop::silent(ttl),
                Some((HopReply::TimeExceeded { from }, rtt)) => {
                    Hop::new(ttl, from, HopAnswer::Router { rtt })
                }
                Some((HopReply::Reached, rtt)) => Hop::target(ttl, self.target, rtt),
                Some((HopReply::Unreachable { kind, from }, rtt)) => {
                    Hop::new(ttl, from, HopAnswer::Unreachable { icmp: kind, rtt })
                }
            })
            .collect()
    }
}

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
    /// was probed): no internet behind it, or too few hops probed.
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

/// Why the hop probe did not run.
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
    /// The probe could not run here.
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
/// router. Sans-IO; the rules are those of [`check_upstream_nat`].
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
/// This probes the first hops toward `target` (a public STUN server's address,
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

/// Probes TTLs 1..=`max_hops` toward `target` at once, each datagram on its own
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const MS: Duration = Duration::from_millis(1);

    fn r(ttl: u8, a: &str) -> Hop {
        Hop::router(ttl, ip(a), MS)
    }

    fn t(ttl: u8, a: &str) -> Hop {
        Hop::target(ttl, ip(a), MS)
    }

    const STUN: &str = "88.77.66.10";

    fn judge(hops: &[Hop], router: RouterFacts) -> HopConclusion {
        conclude_hops(ip(STUN), hops.to_vec(), router)
    }

    fn none() -> RouterFacts {
        RouterFacts::default()
    }

    fn upstream(c: &HopConclusion) -> UpstreamNat {
        *c.upstream()
            .unwrap_or_else(|| panic!("not double NAT: {c:?}"))
    }

    #[test]
    fn single_nat_home_line() {
        // Home router, then the ISP's public gateway.
        let hops = [
            r(1, "192.168.1.1"),
            r(2, "62.155.240.1"),
            r(3, "62.154.5.2"),
        ];
        assert_eq!(
            judge(&hops, none()),
            HopConclusion::SingleNat {
                hops: hops.to_vec()
            }
        );
        // The lab: the STUN server is the router's next hop.
        let lab = [r(1, "192.168.77.1"), t(2, STUN)];
        assert!(matches!(
            judge(&lab, none()),
            HopConclusion::SingleNat { .. }
        ));
    }

    #[test]
    fn private_core_routers_after_a_public_hop_are_not_a_nat() {
        // ISPs number core routers from RFC 1918 and 100.64/10.
        let hops = [
            r(1, "192.168.1.1"),
            r(2, "80.81.82.1"),
            r(3, "10.20.30.1"),
            r(4, "100.70.0.1"),
            r(5, "172.16.9.9"),
            r(6, "80.81.200.1"),
        ];
        assert!(matches!(
            judge(&hops, none()),
            HopConclusion::SingleNat { .. }
        ));
    }

    #[test]
    fn shared_next_hop_is_carrier_grade_nat() {
        // The lab's --double-nat: home router, then the ISP NAT's inside address.
        let hops = [r(1, "192.168.77.1"), r(2, "100.64.0.1"), t(3, STUN)];
        let c = judge(&hops, none());
        let up = upstream(&c);
        assert_eq!(up.address, ip("100.64.0.1"));
        assert_eq!(up.scope, AddressScope::Shared);
        assert!(up.carrier_grade);
        assert_eq!(up.seen, UpstreamSeen::NextHop);
        assert_eq!(c.hops(), &hops);
        assert!(c.to_string().contains("carrier-grade NAT"), "{c}");
    }

    #[test]
    fn private_next_hop_is_another_nat() {
        // A mesh or second router behind the ISP's box.
        let hops = [r(1, "192.168.1.1"), r(2, "192.168.0.1"), r(3, "84.1.2.3")];
        let up = upstream(&judge(&hops, none()));
        assert_eq!(up.scope, AddressScope::Private);
        assert!(!up.carrier_grade);
        // Corroborated by a private WAN address the router reported.
        let facts = RouterFacts {
            wan: Some(ip("192.168.0.23")),
            ..none()
        };
        assert_eq!(
            upstream(&judge(&hops, facts)).seen,
            UpstreamSeen::NextHopAndRouterWan
        );
    }

    #[test]
    fn a_public_wan_address_overrides_a_private_next_hop() {
        // Some ISPs number the customer link privately; the router's public WAN
        // address says there is no second NAT.
        let hops = [r(1, "192.168.1.1"), r(2, "10.53.0.1"), r(3, "84.1.2.3")];
        let facts = RouterFacts {
            wan: Some(ip("84.1.9.9")),
            ..none()
        };
        assert!(matches!(
            judge(&hops, facts),
            HopConclusion::SingleNat { .. }
        ));
    }

    #[test]
    fn a_reserved_wan_address_is_double_nat_even_with_silent_hops() {
        let hops = [r(1, "192.168.77.1"), Hop::silent(2), Hop::silent(3)];
        let facts = RouterFacts {
            wan: Some(ip("100.64.0.2")),
            ..none()
        };
        let up = upstream(&judge(&hops, facts));
        assert_eq!(up.seen, UpstreamSeen::RouterWan);
        assert!(up.carrier_grade);
        assert_eq!(up.address, ip("100.64.0.2"));
        // And a public next hop does not clear it.
        let hops = [r(1, "192.168.77.1"), r(2, "84.1.2.3")];
        assert_eq!(upstream(&judge(&hops, facts)).seen, UpstreamSeen::RouterWan);
    }

    #[test]
    fn silence_is_not_single_nat() {
        // A silent CGN at TTL 2 followed by the public target must not pass for
        // "one NAT".
        let hops = [r(1, "192.168.77.1"), Hop::silent(2), t(3, STUN)];
        assert_eq!(
            judge(&hops, none()),
            HopConclusion::Unknown {
                why: HopsUndecided::NextHopSilent,
                hops: hops.to_vec()
            }
        );
        // Every hop silent, no gateway.
        let silent: Vec<Hop> = (1..=6).map(Hop::silent).collect();
        assert!(matches!(
            judge(&silent, none()),
            HopConclusion::Unknown {
                why: HopsUndecided::FirstHopSilent,
                ..
            }
        ));
        // A public WAN address from the router still answers.
        let facts = RouterFacts {
            wan: Some(ip("84.1.9.9")),
            ..none()
        };
        assert!(matches!(
            judge(&silent, facts),
            HopConclusion::SingleNat { .. }
        ));
    }

    #[test]
    fn the_gateway_stands_in_for_a_silent_router() {
        let hops = [Hop::silent(1), r(2, "100.64.12.1"), r(3, "84.1.2.3")];
        assert!(matches!(
            judge(&hops, none()),
            HopConclusion::Unknown {
                why: HopsUndecided::FirstHopSilent,
                ..
            }
        ));
        let facts = RouterFacts {
            gateway: Some(ip("192.168.1.1")),
            ..none()
        };
        assert!(upstream(&judge(&hops, facts)).carrier_grade);
    }

    #[test]
    fn a_router_answering_twice_is_skipped() {
        let hops = [r(1, "192.168.1.1"), r(2, "192.168.1.1"), r(3, "100.64.0.1")];
        assert_eq!(upstream(&judge(&hops, none())).address, ip("100.64.0.1"));
    }

    #[test]
    fn a_dead_uplink_is_undecided() {
        let unreach = Hop::new(
            2,
            Some(ip("192.168.1.1")),
            HopAnswer::Unreachable {
                icmp: IcmpKind::v4(3, 0),
                rtt: MS,
            },
        );
        let hops = [r(1, "192.168.1.1"), unreach];
        assert!(matches!(
            judge(&hops, none()),
            HopConclusion::Unknown {
                why: HopsUndecided::NothingBeyondRouter,
                ..
            }
        ));
        // Only one hop probed.
        assert!(matches!(
            judge(&[r(1, "192.168.1.1")], none()),
            HopConclusion::Unknown {
                why: HopsUndecided::NothingBeyondRouter,
                ..
            }
        ));
    }

    #[test]
    fn a_public_first_hop_or_private_target_is_undecided() {
        let hops = [r(1, "84.1.2.1"), r(2, "10.0.0.1")];
        assert!(matches!(
            judge(&hops, none()),
            HopConclusion::Unknown {
                why: HopsUndecided::FirstHopPublic { .. },
                ..
            }
        ));
        let c = conclude_hops(ip("10.1.1.1"), vec![r(1, "192.168.1.1")], none());
        assert!(matches!(
            c,
            HopConclusion::Unknown {
                why: HopsUndecided::TargetNotPublic { .. },
                ..
            }
        ));
    }

    #[test]
    fn icmp_errors_become_replies() {
        let target = ip(STUN);
        let rep = |kind, from: &str| IcmpReport {
            kind,
            offender: Some(ip(from)),
            errno: 113,
        };
        assert_eq!(
            HopReply::from_icmp(&rep(IcmpKind::v4(11, 0), "100.64.0.1"), target),
            Some(HopReply::TimeExceeded {
                from: Some(ip("100.64.0.1"))
            })
        );
        assert_eq!(
            HopReply::from_icmp(&rep(IcmpKind::v6(3, 0), "::ffff:10.0.0.1"), target),
            Some(HopReply::TimeExceeded {
                from: Some(ip("10.0.0.1"))
            })
        );
        assert_eq!(
            HopReply::from_icmp(&rep(IcmpKind::v4(3, 3), STUN), target),
            Some(HopReply::Reached)
        );
        assert!(matches!(
            HopReply::from_icmp(&rep(IcmpKind::v4(3, 3), "10.0.0.1"), target),
            Some(HopReply::Unreachable { .. })
        ));
        assert!(matches!(
            HopReply::from_icmp(&rep(IcmpKind::v4(3, 1), "192.168.1.1"), target),
            Some(HopReply::Unreachable { .. })
        ));
        assert_eq!(
            HopReply::from_icmp(&rep(IcmpKind::v4(3, 4), "10.0.0.1"), target),
            None
        );
        assert_eq!(
            HopReply::from_icmp(&rep(IcmpKind::v4(12, 0), "10.0.0.1"), target),
            None
        );
    }

    fn cfg() -> HopConfig {
        HopConfig {
            max_hops: 4,
            try_timeout: Duration::from_millis(500),
            tries: 2,
            payload: PayloadKind::Stun,
        }
    }

    fn drain(s: &mut HopSchedule, now: Instant) -> Vec<HopTry> {
        let mut out = Vec::new();
        while let HopStep::Send(t) = s.poll(now) {
            out.push(t);
        }
        out
    }

    #[test]
    fn every_ttl_goes_out_at_once_and_silent_ones_once_more() {
        let t0 = Instant::now();
        let mut s = HopSchedule::new(cfg(), ip(STUN), t0);
        let first = drain(&mut s, t0);
        assert_eq!(
            first,
            (1..=4)
                .map(|ttl| HopTry { ttl, attempt: 0 })
                .collect::<Vec<_>>()
        );
        assert_eq!(s.poll(t0), HopStep::WaitUntil(t0 + 500 * MS));
        let at = t0 + 3 * MS;
        s.on_reply(
            HopTry { ttl: 1, attempt: 0 },
            HopReply::TimeExceeded {
                from: Some(ip("192.168.77.1")),
            },
            at,
        );
        // Before the timeout nothing more goes out.
        assert!(drain(&mut s, t0 + 499 * MS).is_empty());
        let second = drain(&mut s, t0 + 500 * MS);
        assert_eq!(
            second,
            (2..=4)
                .map(|ttl| HopTry { ttl, attempt: 1 })
                .collect::<Vec<_>>()
        );
        // No third try: the wait runs to the end.
        assert_eq!(s.poll(t0 + 600 * MS), HopStep::WaitUntil(t0 + 1000 * MS));
        assert_eq!(s.poll(t0 + 1000 * MS), HopStep::Done);
        let hops = s.hops();
        assert_eq!(hops.len(), 4);
        assert_eq!(hops[0], r(1, "192.168.77.1").with_rtt(3 * MS));
        assert!(hops[1..].iter().all(|h| h.answer == HopAnswer::Silent));
        assert_eq!(s.deadline(), t0 + cfg().bound());
    }

    #[test]
    fn the_target_ends_the_probe_early_and_trims_the_hops() {
        let t0 = Instant::now();
        let mut s = HopSchedule::new(cfg(), ip(STUN), t0);
        drain(&mut s, t0);
        let te = |a: &str| HopReply::TimeExceeded { from: Some(ip(a)) };
        s.on_reply(
            HopTry { ttl: 3, attempt: 0 },
            HopReply::Reached,
            t0 + 2 * MS,
        );
        s.on_reply(
            HopTry { ttl: 4, attempt: 0 },
            HopReply::Reached,
            t0 + 2 * MS,
        );
        s.on_reply(
            HopTry { ttl: 1, attempt: 0 },
            te("192.168.77.1"),
            t0 + 3 * MS,
        );
        assert!(!s.is_done(t0 + 3 * MS));
        s.on_reply(HopTry { ttl: 2, attempt: 0 }, te("100.64.0.1"), t0 + 4 * MS);
        assert_eq!(s.poll(t0 + 4 * MS), HopStep::Done);
        let hops = s.hops();
        assert_eq!(
            hops,
            [
                r(1, "192.168.77.1").with_rtt(3 * MS),
                r(2, "100.64.0.1").with_rtt(4 * MS),
                t(3, STUN).with_rtt(2 * MS),
            ]
        );
    }

    #[test]
    fn a_retry_answer_is_timed_from_the_retry_and_duplicates_are_ignored() {
        let t0 = Instant::now();
        let mut s = HopSchedule::new(
            HopConfig {
                max_hops: 1,
                ..cfg()
            },
            ip(STUN),
            t0,
        );
        drain(&mut s, t0);
        let retry_at = t0 + 500 * MS;
        assert_eq!(drain(&mut s, retry_at), [HopTry { ttl: 1, attempt: 1 }]);
        let te = HopReply::TimeExceeded {
            from: Some(ip("192.168.1.1")),
        };
        s.on_reply(HopTry { ttl: 1, attempt: 1 }, te, retry_at + 7 * MS);
        // A late answer to the first try changes nothing; nor does a try never sent.
        s.on_reply(
            HopTry { ttl: 1, attempt: 0 },
            HopReply::Reached,
            retry_at + 8 * MS,
        );
        s.on_reply(HopTry { ttl: 1, attempt: 3 }, HopReply::Reached, retry_at);
        s.on_reply(HopTry { ttl: 9, attempt: 0 }, HopReply::Reached, retry_at);
        assert_eq!(s.poll(retry_at + 8 * MS), HopStep::Done);
        assert_eq!(s.hops(), [r(1, "192.168.1.1").with_rtt(7 * MS)]);
    }

    #[test]
    fn out_of_range_settings_are_clamped_and_bounded() {
        let t0 = Instant::now();
        let c = HopConfig {
            max_hops: 0,
            tries: 0,
            ..cfg()
        };
        let mut s = HopSchedule::new(c, ip(STUN), t0);
        assert_eq!(s.config().max_hops, 1);
        assert_eq!(s.config().tries, 1);
        assert_eq!(drain(&mut s, t0).len(), 1);
        assert_eq!(s.poll(t0 + 500 * MS), HopStep::Done);
        let c = HopConfig {
            max_hops: 200,
            tries: 9,
            ..cfg()
        };
        let s = HopSchedule::new(c, ip(STUN), t0);
        assert_eq!(s.config().max_hops, 32);
        assert_eq!(s.deadline(), t0 + 2000 * MS);
    }

    #[test]
    fn hops_read_well() {
        assert_eq!(
            r(2, "100.64.0.1")
                .with_rtt(Duration::from_micros(412))
                .to_string(),
            " 2  100.64.0.1 (shared)  0.4 ms"
        );
        assert_eq!(Hop::silent(3).to_string(), " 3  *  no answer");
        assert_eq!(
            t(3, STUN).to_string(),
            " 3  88.77.66.10 (global)  1.0 ms  target"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn conclusions_serialize_with_their_evidence() {
        let hops = [r(1, "192.168.77.1"), r(2, "100.64.0.1"), t(3, STUN)];
        let c = judge(&hops, none());
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["nat"], "double_nat");
        assert_eq!(v["upstream"]["carrier_grade"], true);
        assert_eq!(v["upstream"]["seen"], "next_hop");
        assert_eq!(v["hops"][1]["address"], "100.64.0.1");
        assert_eq!(v["hops"][1]["scope"], "shared");
        assert_eq!(v["hops"][1]["answer"]["seen"], "router");
        assert_eq!(v["hops"][1]["answer"]["rtt_us"], 1000);
        let back: HopConclusion = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
        let n = serde_json::to_value(HopConclusion::NotChecked {
            why: HopsNotChecked::Platform,
        })
        .unwrap();
        assert_eq!(n["nat"], "not_checked");
        assert_eq!(n["why"]["reason"], "platform");
    }

    impl Hop {
        fn with_rtt(mut self, d: Duration) -> Hop {
            match &mut self.answer {
                HopAnswer::Router { rtt }
                | HopAnswer::Target { rtt }
                | HopAnswer::Unreachable { rtt, .. } => *rtt = d,
                HopAnswer::Silent => {}
            }
            self
        }
    }
}
