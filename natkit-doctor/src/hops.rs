//! The hop check: another NAT upstream of the router, seen from the first
//! hops towards a STUN server (natkit-probe's [`trace_hops`]), so it is found
//! also when the router speaks no mapping protocol and cannot say its WAN
//! address. The trace runs with the other checks; the conclusion waits for the
//! router's WAN address, which, when known, overrides what the hops suggest
//! ([`conclude_hops`]).

use std::net::IpAddr;
use std::time::Duration;

use natkit_probe::{
    Hop, HopConclusion, HopConfig, HopsNotChecked, RouterFacts, UpstreamSeen, conclude_hops,
    trace_hops,
};
use serde::Serialize;

/// What the first hops said, as the report shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HopsReport {
    /// The address traced towards: the first STUN server that resolved.
    pub target: Option<IpAddr>,
    /// The conclusion.
    pub verdict: HopVerdict,
    /// The NAT upstream of the router, with a double NAT.
    pub upstream: Option<IpAddr>,
    /// Whether that NAT is an ISP's carrier-grade NAT (100.64.0.0/10).
    pub carrier_grade: bool,
    /// The conclusion in words (why unknown, why not checked).
    pub detail: String,
    /// The hops, TTL 1 up to the target.
    pub hops: Vec<Hop>,
    /// How the upstream NAT was seen: only what the hops themselves showed is
    /// this check's evidence (a reserved WAN address is the router check's).
    #[serde(skip)]
    seen: Option<UpstreamSeen>,
}

/// The hop check's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HopVerdict {
    /// Another NAT sits upstream of the router.
    DoubleNat,
    /// The router's next hop is public: one NAT.
    SingleNat,
    /// The hops do not tell (a silent hop, a dead uplink …).
    Unknown,
    /// Not checked: the platform cannot, or there was nothing to trace towards.
    NotChecked,
}

/// The trace, before the router's facts are in: the target and its hops, or
/// why there are none (and the target, if one was chosen).
pub(crate) type Traced = Result<(IpAddr, Vec<Hop>), (Option<IpAddr>, Unchecked)>;

pub(crate) enum Unchecked {
    Trace(HopsNotChecked),
    NoTarget,
    TimedOut,
}

/// Traces the first hops towards the first STUN server that resolved (IPv4
/// first, as NATs are), within `bound`.
pub(crate) async fn trace(
    resolved: &[Result<std::net::SocketAddr, natkit_stun::Error>],
    bound: Duration,
) -> Traced {
    let addrs: Vec<_> = resolved.iter().flatten().collect();
    let Some(target) = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .copied()
    else {
        return Err((None, Unchecked::NoTarget));
    };
    let ip = target.ip();
    match tokio::time::timeout(bound, trace_hops(target, HopConfig::default())).await {
        Ok(Ok(hops)) => Ok((ip, hops)),
        Ok(Err(why)) => Err((Some(ip), Unchecked::Trace(why))),
        Err(_) => Err((Some(ip), Unchecked::TimedOut)),
    }
}

/// The report's hop section, from the trace and what is known of the router.
pub(crate) fn report(traced: Traced, gateway: IpAddr, router_wan: Option<IpAddr>) -> HopsReport {
    let facts = RouterFacts {
        gateway: Some(gateway),
        wan: router_wan,
    };
    let (target, conclusion) = match traced {
        Ok((target, hops)) => (target, conclude_hops(target, hops, facts)),
        Err((target, why)) => {
            let detail = match why {
                Unchecked::Trace(why) => why.to_string(),
                Unchecked::NoTarget => {
                    "not checked: no STUN server name resolved to trace towards".to_owned()
                }
                Unchecked::TimedOut => "not checked: the hop trace did not finish".to_owned(),
            };
            return HopsReport {
                target,
                verdict: HopVerdict::NotChecked,
                upstream: None,
                carrier_grade: false,
                detail,
                hops: Vec::new(),
                seen: None,
            };
        }
    };
    let upstream = conclusion.upstream().copied();
    HopsReport {
        target: Some(target),
        verdict: match conclusion {
            HopConclusion::DoubleNat { .. } => HopVerdict::DoubleNat,
            HopConclusion::SingleNat { .. } => HopVerdict::SingleNat,
            HopConclusion::Unknown { .. } => HopVerdict::Unknown,
            HopConclusion::NotChecked { .. } => HopVerdict::NotChecked,
        },
        upstream: upstream.map(|u| u.address),
        carrier_grade: upstream.is_some_and(|u| u.carrier_grade),
        detail: conclusion.to_string(),
        hops: conclusion.hops().to_vec(),
        seen: upstream.map(|u| u.seen),
    }
}

impl HopsReport {
    /// The double-NAT evidence the hops give, in words.
    pub(crate) fn evidence(&self) -> Option<String> {
        if self.verdict != HopVerdict::DoubleNat || self.seen == Some(UpstreamSeen::RouterWan) {
            return None;
        }
        let path: Vec<String> = self
            .hops
            .iter()
            .map(|h| match h.address {
                Some(a) => format!("{} {a}", h.ttl),
                None => format!("{} *", h.ttl),
            })
            .collect();
        let target = self
            .target
            .map(|t| format!(" towards {t}"))
            .unwrap_or_default();
        Some(format!(
            "{} (hops{target}: {})",
            self.detail.trim_start_matches("double NAT: "),
            path.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn traced(hops: Vec<Hop>) -> Traced {
        Ok((ip("88.77.66.10"), hops))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn carrier_grade_nat_is_evidence_with_the_path() {
        let hops = vec![
            Hop::router(1, ip("192.168.77.1"), MS),
            Hop::router(2, ip("100.64.0.1"), MS),
            Hop::target(3, ip("88.77.66.10"), MS),
        ];
        let r = report(traced(hops), ip("192.168.77.1"), None);
        assert_eq!(r.verdict, HopVerdict::DoubleNat);
        assert_eq!(r.upstream, Some(ip("100.64.0.1")));
        assert!(r.carrier_grade);
        assert_eq!(
            r.evidence().unwrap(),
            "a carrier-grade NAT upstream: the router's next hop is 100.64.0.1 (shared) \
             (hops towards 88.77.66.10: 1 192.168.77.1, 2 100.64.0.1, 3 88.77.66.10)"
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["verdict"], "double_nat");
        assert_eq!(v["hops"][1]["scope"], "shared");
    }

    #[test]
    fn single_nat_and_silence_give_no_evidence() {
        let single = vec![
            Hop::router(1, ip("192.168.77.1"), MS),
            Hop::target(2, ip("88.77.66.10"), MS),
        ];
        let r = report(traced(single), ip("192.168.77.1"), None);
        assert_eq!(r.verdict, HopVerdict::SingleNat);
        assert_eq!(r.evidence(), None);
        let silent = vec![Hop::router(1, ip("192.168.77.1"), MS), Hop::silent(2)];
        let r = report(traced(silent), ip("192.168.77.1"), None);
        assert_eq!(r.verdict, HopVerdict::Unknown);
        assert_eq!(r.evidence(), None);
    }

    #[test]
    fn a_reserved_wan_address_is_left_to_the_router_check() {
        let hops = vec![Hop::router(1, ip("192.168.77.1"), MS), Hop::silent(2)];
        let r = report(traced(hops), ip("192.168.77.1"), Some(ip("100.64.0.2")));
        assert_eq!(r.verdict, HopVerdict::DoubleNat);
        assert!(r.carrier_grade);
        assert_eq!(r.evidence(), None);
    }

    #[test]
    fn nothing_to_trace_or_no_platform_is_not_checked() {
        let r = report(Err((None, Unchecked::NoTarget)), ip("192.168.1.1"), None);
        assert_eq!(r.verdict, HopVerdict::NotChecked);
        assert!(r.detail.starts_with("not checked"), "{}", r.detail);
        let platform = Err((
            Some(ip("88.77.66.10")),
            Unchecked::Trace(HopsNotChecked::Platform),
        ));
        let r = report(platform, ip("192.168.1.1"), None);
        assert_eq!(r.verdict, HopVerdict::NotChecked);
        assert!(r.detail.contains("platform"), "{}", r.detail);
    }
}
