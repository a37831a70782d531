#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bandwidth;
mod checks;
mod config;
mod findings;
mod forwards;
mod guard;
mod hops;
mod ipv6;
mod mdns;
mod nat_checks;
mod outbound;
mod ports;
pub mod render;
mod report;
mod sip;
mod uplink;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{AddressScope, Gateway};
use natkit_stun::client::resolve_all;
use tokio::task::{AbortHandle, JoinError, JoinHandle};
use tokio::time::Instant;

pub use bandwidth::{BandwidthReport, BandwidthWay, LOW_BANDWIDTH_KBPS};
pub use config::{Config, ConfigError, DEFAULT_TIMEOUT, Ports, Stage, TIMEOUT_RANGE};
pub use forwards::RouterForward;
pub use guard::Cleanup;
pub use hops::{HopVerdict, HopsReport};
pub use ipv6::{
    FirewallCheck, FirewallVerdict, Ipv6HostAddress, Ipv6PortReachability, Ipv6Reachability,
    Ipv6Report, PinholeAddress, PinholeAttempt, PinholeCheck, PinholeVerdict,
};
pub use mdns::{Heard, LocalNameReport, NameClaim};
pub use nat_checks::NatServer;
pub use outbound::{OutboundPortReport, OutboundReport};
pub use report::{
    Finding, FindingCode, Forward, MappingProtocols, MappingTrial, NatReport, PortReport,
    ProtocolState, Report, SCHEMA_VERSION, Severity, Status, StunAnswer, StunOutcome,
};
pub use sip::{SipAlgReport, SipLegReport};
pub use uplink::{InternetReport, InternetVerdict};

use crate::checks::Timeouts;
use crate::guard::MapGuard;

/// The JSON Schema (2020-12) of the report's JSON form, `docs/doctor.schema.json`.
pub const SCHEMA: &str = include_str!("../doctor.schema.json");

/// How long the clean-up waits for mapping requests still in flight before it
/// deletes what is held.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// How a run ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Run {
    /// Every check ran; the report has the findings. Its trial mappings are
    /// deleted (one that could not be is a `mapping_left_behind` finding).
    Finished(Box<Report>),
    /// The stop future resolved first: the checks were abandoned and every trial
    /// mapping held was deleted (or is listed as left behind).
    Stopped(Cleanup),
}

/// Diagnoses this host's path to the internet: the gateway, the router's mapping
/// protocols and forwarding table, what STUN servers see, a double NAT, the NAT
/// type, and per port of [`Config::ports`] whether it is forwarded, mappable and
/// (with [`Config::dialback`]) reachable from outside.
///
/// Every check runs at once and is bounded by [`Config::timeout`] (a dial-back
/// check by the timeout plus 20 s for the server's dials). Trial mappings are
/// deleted before this returns; if the future is dropped, they are deleted by a
/// task spawned on the current runtime (see [`diagnose_until`]).
pub async fn diagnose(config: Config) -> Report {
    match diagnose_until(config, std::future::pending()).await {
        Run::Finished(report) => *report,
        // A pending stop never resolves; an empty report keeps the signature total.
        Run::Stopped(_) => Report::empty(),
    }
}

/// [`diagnose`], stopped cleanly when `stop` resolves first (Ctrl-C in a tool, a
/// "cancel" button in an app): the checks are abandoned, requests in flight are
/// waited for (up to 10 s), and every trial mapping held is deleted before this
/// returns [`Run::Stopped`] with what was deleted.
///
/// Dropping this future (e.g. in a `select!` or on a timeout) also deletes every
/// trial mapping: the requests run in tasks of their own that record what the
/// router grants, and the drop spawns their deletion on the current tokio runtime.
/// Only a runtime shut down at the same moment (or a killed process) leaves them;
/// then the journal of natkit-portmap lets the next run delete them, and they
/// expire within two minutes anyway.
///
/// Must run inside a tokio runtime with time and I/O enabled.
pub async fn diagnose_until(config: Config, stop: impl Future<Output = ()>) -> Run {
    let started = Instant::now();
    let guard = MapGuard::new();
    let progress = config.progress.clone();
    let work = tokio::spawn(run_checks(config, guard.clone()));
    // Until the clean-up below has been spawned, a drop aborts the checks and
    // deletes what they hold.
    let on_drop = ReleaseOnDrop {
        guard: Some(guard.clone()),
        work: work.abort_handle(),
    };
    let mut work = work;
    let outcome = tokio::select! {
        joined = &mut work => Some(joined),
        () = stop => None,
    };
    work.abort();
    if let Some(p) = &progress {
        p.send_replace(Stage::Cleanup);
    }
    // The deletion runs in its own task: dropping this future from here on does
    // not cut it short.
    let cleanup = spawn_release(guard);
    on_drop.disarm();
    let cleanup = cleanup.await.unwrap_or_default();
    match outcome {
        Some(Ok(mut report)) => {
            if report.gateway.is_some() {
                report.findings = findings::derive(&report, &cleanup.left_behind);
            }
            report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            Run::Finished(Box::new(report))
        }
        // A check panicked: a bug, reported as such once the mappings are gone.
        Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Some(Err(_)) | None => Run::Stopped(cleanup),
    }
}

/// A section's task once it ends: its report, or `None` when it was cancelled.
/// A panic is a bug of the doctor's, never a section that silently goes
/// missing: it goes on up, and [`diagnose_until`] deletes what the run holds
/// before re-raising it.
pub(crate) async fn section<T>(task: impl Future<Output = Result<T, JoinError>>) -> Option<T> {
    match task.await {
        Ok(report) => Some(report),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

fn spawn_release(guard: Arc<MapGuard>) -> JoinHandle<Cleanup> {
    tokio::spawn(async move { guard.release_all(RELEASE_WAIT).await })
}

/// Aborts the checks and spawns the deletion of their mappings when a run's
/// future is dropped before its own clean-up started.
struct ReleaseOnDrop {
    guard: Option<Arc<MapGuard>>,
    work: AbortHandle,
}

impl ReleaseOnDrop {
    fn disarm(mut self) {
        self.guard = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        self.work.abort();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let cleanup = guard.release_all(RELEASE_WAIT).await;
                    if !cleanup.left_behind.is_empty() {
                        tracing::warn!(
                            "could not delete trial mappings: {}",
                            cleanup.left_behind.join("; ")
                        );
                    }
                });
            }
            Err(_) => tracing::warn!(
                "the doctor was dropped outside a tokio runtime: its trial mappings are left \
                 to expire (the next run deletes them from the journal)"
            ),
        }
    }
}

/// Runs every check (at once where they are independent) into a report.
async fn run_checks(config: Config, guard: Arc<MapGuard>) -> Report {
    let mut r = Report::empty();
    r.profile = config.ports.profile().map(|p| p.name);
    config.report_stage(Stage::Gateway);
    let gateway = match tokio::task::spawn_blocking(natkit_core::default_gateway).await {
        Ok(g) => g,
        Err(e) => Err(natkit_core::Error::NoDefaultGateway {
            detail: e.to_string(),
        }),
    };
    let gw = match gateway {
        Ok(gw) => gw,
        Err(e) => {
            r.findings
                .push(findings::no_network(&render::error_line(&e)));
            return r;
        }
    };
    r.interface = Some(gw.interface.clone());
    r.gateway = Some(gw.address);
    r.local_address = Some(gw.local_address);
    r.local_address_scope = Some(AddressScope::of(gw.local_address.into()).as_str());
    config.report_stage(Stage::RouterAndStun);
    let t = Timeouts::new(config.clamped_timeout());
    // IPv6 literals serve the IPv6 section only.
    let stun: Vec<String> = (config.stun_servers.iter())
        .filter(|s| !ipv6::is_ipv6_literal(s))
        .cloned()
        .collect();
    // The names, looked up once for the address check, the hop trace and the uplink
    // check, at the same time as the other checks.
    let lookups = tokio::sync::OnceCell::new();
    // The SIP ALG check (with --dialback) runs on its own task alongside the rest.
    let sip_side = sip::start(config.dialback);
    // So does the outbound check, on the ports to check.
    let outbound_side = outbound::start(config.dialback, config.ports.pairs());
    // And the bandwidth measurement.
    let bandwidth_side = bandwidth::start(config.dialback);
    // And the mDNS question: who else answers for this host's .local name. Its
    // group listener shares 5353/udp, so it stays off when the reachability
    // check listens there itself: it would take that check's datagrams.
    let checks_5353 = config.dialback.is_some()
        && config
            .ports
            .pairs()
            .contains(&(5353, natkit_core::Protocol::Udp));
    let mdns_side = Some(mdns::start(gw.local_address, !checks_5353));
    // And the IPv6 section: addresses, the firewall, a trial pinhole.
    let (ipv6_router, router_rx) = tokio::sync::oneshot::channel();
    let ipv6_side = ipv6::start(ipv6::Input::of(&config, t.check, router_rx), guard.clone());
    let router_side = router_and_ports(&gw, &config, t, &guard, &mut r, ipv6_router);
    // The classification first, then the plain address check: the address check asks
    // every listed server at once, and when the list holds a server's alternate address
    // (both of stund's IPs, say) that request would open a NAT filter kept per host
    // before the classifier's filtering tests ran, and a restricted cone would look
    // like a full cone.
    let stun_side = async {
        if stun.is_empty() {
            return (None, None);
        }
        let bound = t.check + Duration::from_secs(2);
        let nat = tokio::time::timeout(bound, checks::check_nat(&stun)).await;
        // The names as the hop side looked them up, by now (both lookups started at
        // once): a dead DNS costs one resolver timeout, not two.
        let resolved = lookups.get_or_init(|| resolve_all(&stun)).await;
        let seen = tokio::time::timeout(bound, checks::check_stun(&stun, resolved)).await;
        (Some(seen), Some(nat))
    };
    // The first hops towards a STUN server: another NAT upstream, also when the
    // router speaks no mapping protocol. Its lookups of the names also tell whether
    // the DNS answers (the uplink check).
    let hop_side = async {
        let resolved = lookups.get_or_init(|| resolve_all(&stun)).await;
        let traced = hops::trace(resolved, t.check).await;
        (uplink::Names::of(&stun, resolved), traced)
    };
    let ((), (seen, nat), (names, traced)) = tokio::join!(router_side, stun_side, hop_side);
    r.hops = Some(hops::report(
        traced,
        IpAddr::V4(gw.address),
        r.router_external_address,
    ));
    match seen {
        Some(Ok((answers, consensus))) => {
            r.stun_servers = answers;
            r.stun_external_address = consensus;
        }
        Some(Err(_)) => tracing::warn!("STUN discovery timed out"),
        None => {}
    }
    match nat {
        Some(Ok(Ok(c))) => r.nat = Some(checks::nat_report(&c)),
        Some(Ok(Err(e))) => {
            tracing::warn!("NAT classification failed: {}", render::error_line(&e));
        }
        Some(Err(_)) => tracing::warn!("NAT classification timed out"),
        None => {}
    }
    double_nat(&mut r);
    r.sip_alg = sip::finish(sip_side).await;
    r.outbound = outbound::finish(outbound_side).await;
    r.bandwidth = bandwidth::finish(bandwidth_side).await;
    r.local_name = mdns::finish(mdns_side).await;
    r.ipv6 = ipv6::finish(ipv6_side).await;
    r.internet = Some(uplink::judge(&names, &r));
    r
}

/// The router's protocols, then the per-port checks through the best one.
async fn router_and_ports(
    gw: &Gateway,
    config: &Config,
    t: Timeouts,
    guard: &Arc<MapGuard>,
    r: &mut Report,
    ipv6_router: tokio::sync::oneshot::Sender<ipv6::RouterForIpv6>,
) {
    let router = checks::check_router(gw, t).await;
    let _ = ipv6_router.send(ipv6::RouterForIpv6 {
        auto: Some(router.auto.clone()),
        upnp: router.upnp.clone(),
        pcp: router.pcp.clone(),
    });
    r.mapping_protocols.upnp = router.upnp;
    r.mapping_protocols.natpmp = router.natpmp;
    r.mapping_protocols.pcp = router.pcp;
    r.router_external_address = r
        .mapping_protocols
        .named()
        .iter()
        .find_map(|(_, s)| s.external_address);
    r.router_external_address_scope = r
        .router_external_address
        .map(|ip| AddressScope::of(ip).as_str());
    r.router_forwards = router
        .entries
        .as_deref()
        .map(|e| forwards::table(e, gw.local_address));
    let mapper = router.mapper.filter(|_| config.trial);
    let pairs = config.ports.pairs();
    if !pairs.is_empty() {
        config.report_stage(Stage::Ports(pairs.len()));
        let check = ports::PortCheck {
            pairs,
            profile: config.ports.profile(),
            entries: router.entries.as_deref(),
            mapper,
            dialback: config.dialback,
            local: gw.local_address,
            timeout: t.check,
        };
        r.ports = ports::check_ports(check, guard).await;
    }
}

/// Decides whether a second NAT sits upstream, from the router's external
/// address, what STUN servers see, and the router's own complaints.
fn double_nat(r: &mut Report) {
    let mut evidence = Vec::new();
    let stun_ip = r.stun_external_address.map(|sa| sa.ip());
    if let Some(ext) = r.router_external_address {
        if let Some(note) = natkit_core::upstream_nat_note(ext) {
            evidence.push(note);
        } else if let Some(seen) = stun_ip.filter(|ip| *ip != ext) {
            evidence.push(format!(
                "the router reports external address {ext}, but STUN servers see {seen}"
            ));
        }
    } else if let Some(seen) = stun_ip.filter(|ip| Some(*ip) != r.local_address.map(IpAddr::V4)) {
        let mp = &r.mapping_protocols;
        let complaints: Vec<String> = mp
            .named()
            .iter()
            .filter(|(_, s)| matches!(s.status, Status::NotConnected | Status::Failing))
            .map(|(name, s)| format!("{name} {}", s.status.describe()))
            .collect();
        if !complaints.is_empty() {
            evidence.push(format!(
                "the router reports no usable WAN address ({}) although STUN servers reach the \
                 internet through it and see {seen}: its own WAN address is not public",
                complaints.join(", ")
            ));
        }
    }
    evidence.extend(r.hops.as_ref().and_then(hops::HopsReport::evidence));
    r.double_nat = !evidence.is_empty();
    r.double_nat_evidence = evidence;
}

#[cfg(test)]
mod tests {
    /// A section's panic reaches the run (which deletes its mappings, then
    /// re-raises it); only a cancelled section is missing from the report.
    #[tokio::test]
    async fn a_section_that_panics_is_raised_not_dropped() {
        let panicked = tokio::spawn(async { panic!("a bug in a section") });
        let raised = tokio::spawn(super::section(panicked)).await;
        assert!(raised.is_err_and(|e| e.is_panic()));
        let cancelled = tokio::spawn(std::future::pending::<()>());
        cancelled.abort();
        assert_eq!(super::section(cancelled).await, None);
        let done = tokio::spawn(async { 7 });
        assert_eq!(super::section(done).await, Some(7));
    }
}
