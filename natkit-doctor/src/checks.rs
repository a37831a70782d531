//! The sub-checks: the router's mapping protocols, STUN, the NAT type.
//! Each is bounded in time and never fails the whole run: a check that
//! cannot finish reports what it saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{Evidence, Gateway, Mechanism, Outcome, PortMapper};
use natkit_pmp::RetransmitPlan;
use natkit_pmp::natpmp::NatPmpConfig;
use natkit_pmp::pcp::PcpConfig;
use natkit_portmap::{AutoMapper, CleanupOptions, Journal, MechanismReport, PortMapConfig};
use natkit_stun::classify::{Classification, ClassifyConfig, classify};
use natkit_stun::client::StunDiscoverer;
use natkit_upnp::{DiscoveryConfig, Igd, PortMappingEntry};

use crate::report::{NatReport, ProtocolState, Status, StunAnswer, StunOutcome};

/// How long each kind of check may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// SSDP discovery of the IGD (plus its HTTP exchanges).
    pub(crate) upnp: Duration,
    /// Any one check as a whole.
    pub(crate) check: Duration,
}

impl Timeouts {
    pub(crate) fn new(check: Duration) -> Timeouts {
        Timeouts {
            // The combinator ends every mechanism's detection at the detection
            // window; UPnP's search ends just before it, so its own verdict
            // (what it searched, for how long) is the one reported. The
            // unicast M-SEARCH to the gateway is answered at once (UDA 2.0
            // §1.3.3), multicast answers within MX = 1 s, and the search's
            // third round (1.1 s) still goes out.
            upnp: check.min(UPNP_SEARCH),
            check,
        }
    }
}

/// The doctor's NAT-PMP/PCP plans, each within the check's time.
///
/// - detect: 125 ms doubling (PCP's ANNOUNCE with RFC 6887's ±10 % jitter,
///   which compounds to at most 1.11 s for the fourth send), cut at
///   [`DETECT_WINDOW`] by the combinator: sends at 0, 125, 375 and 875 ms,
///   so one lost datagram does not make a protocol look absent. A router
///   that drops 5351 silently (many do when NAT-PMP is off, and Linux
///   routers stop sending port unreachable after a burst of six) costs the
///   combinator's second window too: 2.4 s in all, which keeps the whole
///   default run under 3 s. RFC 6886's 250 ms would need 1.75 s for
///   four sends, 3.5 s for two windows. A late answer to an earlier send still
///   counts, so the shorter first wait only sends sooner, it never gives up
///   sooner on a slow router.
/// - requests (trial mappings, the address): RFC 6886's schedule for the
///   whole check, 5 sends in 5 s (PCP's 3 s IRT would fit only two);
/// - deletes: 250 ms doubling to 1 s, within the guard's 5 s bound.
struct PmpPlans {
    detect: RetransmitPlan,
    request: RetransmitPlan,
    delete: RetransmitPlan,
}

/// The doctor's detection window for NAT-PMP and PCP.
const DETECT_WINDOW: Duration = Duration::from_millis(1200);
/// The doctor's UPnP search, within the detection window.
const UPNP_SEARCH: Duration = Duration::from_millis(1150);
/// The first wait of the doctor's NAT-PMP and PCP detection.
const DETECT_FIRST_WAIT: Duration = Duration::from_millis(125);

impl PmpPlans {
    fn new(check: Duration, jitter: f64) -> PmpPlans {
        PmpPlans {
            detect: RetransmitPlan {
                initial: DETECT_FIRST_WAIT,
                ..RetransmitPlan::detect_within(check.min(DETECT_WINDOW))
            }
            .with_jitter(jitter),
            request: RetransmitPlan::detect_within(check).with_jitter(jitter),
            delete: RetransmitPlan::release_within(DELETE_BUDGET).with_jitter(jitter),
        }
    }
}

/// A trial mapping's delete, within the guard's 5 s bound on it.
const DELETE_BUDGET: Duration = Duration::from_millis(4_750);

/// What the router check found.
pub(crate) struct RouterFound {
    pub(crate) upnp: ProtocolState,
    pub(crate) natpmp: ProtocolState,
    pub(crate) pcp: ProtocolState,
    /// The combinator, when a mechanism can map.
    pub(crate) mapper: Option<Arc<dyn PortMapper>>,
    /// The combinator also when no IPv4 mechanism can map: the IPv6
    /// section's pinholes go through it (journaled like the mappings).
    pub(crate) auto: Arc<AutoMapper>,
    /// The router's port forwarding table (UPnP), when it could be read.
    pub(crate) entries: Option<Vec<PortMappingEntry>>,
}

/// Detects PCP, NAT-PMP and UPnP at once through natkit-portmap's
/// [`AutoMapper`], which then makes the trial mappings (UPnP first: its
/// refusals name the host holding a port; then PCP, then NAT-PMP). Its
/// journal records every trial mapping before it is used, so a doctor
/// killed outright (SIGKILL, power loss) has them deleted by the next run,
/// which cleans up first.
pub(crate) async fn check_router(gateway: &Gateway, t: Timeouts) -> RouterFound {
    let natpmp_plans = PmpPlans::new(t.check, 0.0);
    let pcp_plans = PmpPlans::new(t.check, natkit_pmp::PCP_RAND);
    let config = PortMapConfig {
        gateway: Some(gateway.clone()),
        detect_deadline: t.check.min(DETECT_WINDOW),
        upnp: DiscoveryConfig {
            gateway: Some(gateway.clone()),
            timeout: t.upnp,
            ..DiscoveryConfig::default()
        },
        natpmp: NatPmpConfig {
            retransmit: natpmp_plans.request,
            detect: natpmp_plans.detect,
            delete: natpmp_plans.delete,
            local_address: Some(gateway.local_address),
            ..NatPmpConfig::default()
        },
        pcp: PcpConfig {
            retransmit: pcp_plans.request,
            detect: pcp_plans.detect,
            delete: pcp_plans.delete,
            local_address: Some(IpAddr::V4(gateway.local_address)),
            ..PcpConfig::default()
        },
        ..PortMapConfig::default()
    }
    .with_order([Mechanism::Upnp, Mechanism::Pcp, Mechanism::NatPmp]);
    let mut auto = AutoMapper::new(config);
    match Journal::open_default() {
        Ok(journal) => auto = auto.with_journal(journal),
        Err(e) => tracing::warn!("no mapping journal: {}", one_line(&e)),
    }
    if auto.journal().is_some() {
        // Only what a journal proves is a dead run's: the UPnP tag sweep
        // would also take natkit mappings of programs that keep none.
        let options = CleanupOptions {
            upnp_tag_sweep: false,
        };
        match tokio::time::timeout(t.check, auto.cleanup(options)).await {
            Ok(Ok(report)) if report.deleted() > 0 => tracing::info!(
                "deleted {} mapping(s) an interrupted earlier run left behind",
                report.deleted()
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cleaning up earlier runs: {}", one_line(&e)),
            Err(_) => tracing::warn!("cleaning up earlier runs timed out"),
        }
    }
    let report = auto.detect().await;
    let state_of = |m: Mechanism| {
        report
            .get(m)
            .map(protocol_state)
            .unwrap_or_else(|| state(Status::NotChecked, None, None))
    };
    let (upnp, natpmp, pcp) = (
        state_of(Mechanism::Upnp),
        state_of(Mechanism::NatPmp),
        state_of(Mechanism::Pcp),
    );
    let entries = match auto.upnp() {
        Some(u) => list(u.igd(), t).await,
        // An IGD that is not connected still has a table worth reading.
        None if upnp.status.is_present() => unconnected_table(gateway, t).await,
        None => None,
    };
    let auto = Arc::new(auto);
    let mapper = report.chosen().map(|_| auto.clone() as Arc<dyn PortMapper>);
    RouterFound {
        upnp,
        natpmp,
        pcp,
        mapper,
        auto,
        entries,
    }
}

/// The report's view of one mechanism's detection.
fn protocol_state(m: &MechanismReport) -> ProtocolState {
    use natkit_core::FailureKind as K;
    let kind = m.error.as_ref().map(|e| e.kind);
    let status = if m.available {
        Status::Available
    } else if !m.responded {
        Status::Absent
    } else if m.mechanism == Mechanism::Upnp && matches!(kind, Some(K::NotConnected | K::Protocol))
    {
        // miniupnpd with a reserved WAN address answers GetStatusInfo
        // "Connected" but an empty NewExternalIPAddress (which does not
        // parse): upnpc calls that a "(not connected?) IGD", and so do we;
        // mappings on it fail with 501.
        Status::NotConnected
    } else if kind == Some(K::Unsupported) {
        Status::Unsupported
    } else {
        Status::Failing
    };
    let detail = match (&m.error, &m.detail) {
        (Some(e), Some(d)) => Some(format!("{d}: {}", tidy(&e.message))),
        (Some(e), None) => Some(tidy(&e.message)),
        (None, d) => d.clone(),
    };
    state(status, m.external_address, detail)
}

/// An error chain without the raw markup some errors quote (e.g. the
/// SOAP envelope of an unparseable answer): it helps nobody reading the
/// report; `-vv` logs have it.
fn tidy(message: &str) -> String {
    match message.find(": bad or missing response in answer: \"<") {
        Some(i) => format!("{} (unparseable answer)", &message[..i]),
        None => message.to_owned(),
    }
}

/// Reads the forwarding table of an IGD that is not connected.
async fn unconnected_table(gateway: &Gateway, t: Timeouts) -> Option<Vec<PortMappingEntry>> {
    let config = DiscoveryConfig {
        gateway: Some(gateway.clone()),
        timeout: t.upnp,
        ..DiscoveryConfig::default()
    };
    let found = tokio::time::timeout(t.check, natkit_upnp::discover(&config)).await;
    let igd = match found {
        Ok(Ok(igd)) => igd,
        Ok(Err(natkit_upnp::Error::NotConnected { location, .. })) => {
            match tokio::time::timeout(t.check, Igd::connect(&location, &config.http)).await {
                Ok(Ok(igd)) => igd,
                _ => return None,
            }
        }
        _ => return None,
    };
    list(&igd, t).await
}

async fn list(igd: &Igd, t: Timeouts) -> Option<Vec<PortMappingEntry>> {
    match tokio::time::timeout(t.check, igd.list_entries()).await {
        Ok(Ok(entries)) => Some(entries),
        Ok(Err(e)) => {
            tracing::info!("cannot list the IGD's port mappings: {}", one_line(&e));
            None
        }
        Err(_) => {
            tracing::info!("listing the IGD's port mappings timed out");
            None
        }
    }
}

fn state(
    status: Status,
    external_address: Option<IpAddr>,
    detail: Option<String>,
) -> ProtocolState {
    ProtocolState {
        status,
        external_address,
        detail,
    }
}

/// Asks every STUN server whose name resolved which address it sees (by address:
/// the names were looked up once, for every check); the others failed, with why.
pub(crate) async fn check_stun(
    servers: &[String],
    resolved: &[Result<SocketAddr, natkit_stun::Error>],
) -> (Vec<StunAnswer>, Option<SocketAddr>) {
    let (mut answers, _) = unresolved(servers, resolved);
    let asked: Vec<(usize, SocketAddr)> = resolved
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().ok().map(|a| (i, *a)))
        .collect();
    if asked.is_empty() {
        return (answers, None);
    }
    let discoverer = StunDiscoverer::new(asked.iter().map(|(_, a)| a.to_string()));
    let evidence = match discoverer.observe().await {
        Ok(e) => e,
        Err(e) => {
            for (i, _) in &asked {
                answers[*i].detail = Some(one_line(&e));
                answers[*i].failure = Some(e.discovery_failure());
            }
            return (answers, None);
        }
    };
    for ((i, _), e) in asked.iter().zip(&evidence) {
        answers[*i] = StunAnswer {
            server: servers[*i].clone(),
            ..stun_answer(e)
        };
    }
    let consensus =
        natkit_core::consensus(evidence).map(|c| SocketAddr::new(c.ip, c.port.unwrap_or(0)));
    (answers, consensus)
}

fn stun_answer(e: &Evidence) -> StunAnswer {
    let (outcome, address, failure) = match &e.outcome {
        Outcome::SawEndpoint(sa) => (StunOutcome::Saw, Some(*sa), None),
        Outcome::SawAddress(ip) => (StunOutcome::Saw, Some(SocketAddr::new(*ip, 0)), None),
        Outcome::TimedOut => (StunOutcome::TimedOut, None, None),
        Outcome::Failed { kind, detail } => (StunOutcome::Failed, None, Some((kind, detail))),
    };
    StunAnswer {
        server: e.source.clone(),
        outcome,
        address,
        detail: failure.map(|(_, detail)| detail.clone()),
        failure: failure.map(|(kind, _)| kind.clone()),
    }
}

/// Classifies the NAT (RFC 5780 / 3489 behaviour tests).
pub(crate) async fn check_nat(servers: &[String]) -> Result<Classification, natkit_stun::Error> {
    let mut config = ClassifyConfig::new(servers.iter().cloned());
    // Alongside the filtering tests, within their wait (see nat_checks).
    config.hairpinning = true;
    classify(config).await
}

/// The STUN answers before any is asked: each failed, with why its name did not
/// resolve (none for those that did).
fn unresolved(
    servers: &[String],
    resolved: &[Result<SocketAddr, natkit_stun::Error>],
) -> (Vec<StunAnswer>, Option<SocketAddr>) {
    let answers = servers
        .iter()
        .zip(resolved)
        .map(|(s, r)| StunAnswer {
            server: s.clone(),
            outcome: StunOutcome::Failed,
            address: None,
            detail: r.as_ref().err().map(|e| one_line(e)),
            failure: r.as_ref().err().map(natkit_stun::Error::discovery_failure),
        })
        .collect();
    (answers, None)
}

/// The report's view of a classification.
pub(crate) fn nat_report(c: &Classification) -> NatReport {
    let b = c.behaviour;
    let (servers, tested_with_name) = crate::nat_checks::servers(c);
    NatReport {
        mapping: b.mapping.as_str(),
        filtering: b.filtering.as_str(),
        legacy_type: c.legacy.as_str(),
        meaning: c.legacy.meaning(),
        port_preservation: b.port_preservation,
        hairpinning: b.hairpinning,
        tested_with: c.behaviour_server,
        tested_with_name,
        servers,
        rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1000.0),
        notes: c.notes.clone(),
        not_resolved: c
            .notes
            .iter()
            .filter(|n| {
                c.not_asked_by_note(n)
                    .is_some_and(|e| matches!(e, natkit_stun::Error::Resolve { .. }))
            })
            .cloned()
            .collect(),
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    crate::render::error_line(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_pmp::{Retransmitter, TimerAction};
    use std::time::Instant;

    /// The detection plan run on a simulated clock against a silent router: the
    /// send times, and when it gives up.
    fn silent(plan: RetransmitPlan, seed: u64) -> (Vec<Duration>, Duration) {
        let t0 = Instant::now();
        let mut r = Retransmitter::start(plan, t0, seed).expect("valid plan");
        let mut sends = vec![Duration::ZERO];
        loop {
            let now = r.deadline();
            match r.on_timeout(now) {
                TimerAction::Wait => panic!("told to wait at its own deadline"),
                TimerAction::Retransmit { .. } => sends.push(now - t0),
                TimerAction::GiveUp => return (sends, now - t0),
            }
            assert!(sends.len() < 100, "the plan never ends");
        }
    }

    #[test]
    fn a_silent_router_costs_two_windows_under_three_seconds_with_four_sends_each() {
        let ms = Duration::from_millis;
        let plans = PmpPlans::new(crate::DEFAULT_TIMEOUT, 0.0);
        let (sends, end) = silent(plans.detect, 1);
        assert_eq!(sends, [ms(0), ms(125), ms(375), ms(875)]);
        assert_eq!(end, DETECT_WINDOW);
        // PCP's jitter (±10 %) never costs a send or stretches the window.
        for seed in 0..1000 {
            let (sends, end) = silent(
                PmpPlans::new(crate::DEFAULT_TIMEOUT, natkit_pmp::PCP_RAND).detect,
                seed,
            );
            assert_eq!(sends.len(), 4, "seed {seed}: {sends:?}");
            assert!(end <= DETECT_WINDOW, "seed {seed}: {end:?}");
        }
        // Two windows on a router that drops 5351.
        assert!(DETECT_WINDOW * 2 < Duration::from_secs(3));
        // UPnP's search ends inside the window, after its 1.1 s round.
        let t = Timeouts::new(crate::DEFAULT_TIMEOUT);
        assert!(t.upnp > ms(1100) && t.upnp < DETECT_WINDOW, "{:?}", t.upnp);
        // A shorter check shortens the window too.
        let (_, end) = silent(PmpPlans::new(ms(800), 0.0).detect, 1);
        assert_eq!(end, ms(800));
    }
}
