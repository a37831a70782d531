//! Per-port checks: the router's existing forward, a trial mapping (made,
//! then deleted), and reachability from outside.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{MappingRequest, PortMapper, Protocol, ServiceProfile};
use natkit_probe::dialback::{CheckPort, ClientConfig, DialbackClient, MAX_CHECK_PORTS};
use natkit_upnp::PortMappingEntry;
use tokio::task::JoinSet;

use crate::guard::{MapGuard, TrialError};
use crate::report::{Forward, MappingTrial, PortReport};

/// The most ports the doctor tries to map in one run; the others are
/// listed but not tried (a profile like iChat needs 27).
pub(crate) const MAX_TRIALS: usize = 64;
/// How many trial mappings run at once.
const PARALLEL_TRIALS: usize = 4;
/// The lease asked for a trial mapping: if deleting it fails, the router
/// drops it by itself soon.
const TRIAL_LIFETIME: Duration = Duration::from_secs(120);
/// The description of trial mappings (natkit adds its tag and the host).
pub(crate) const TRIAL_DESCRIPTION: &str = "doctor trial";

/// The router's existing forward of `port/protocol`, from its UPnP table.
pub(crate) fn forward_of(
    entries: &[PortMappingEntry],
    port: u16,
    protocol: Protocol,
    local: Ipv4Addr,
) -> Option<Forward> {
    entries
        .iter()
        .find(|e| e.external_port == port && e.protocol == protocol && e.enabled)
        .map(|e| Forward {
            host: e.internal_client.clone(),
            port: e.internal_port,
            description: e.description.clone(),
            this_host: e.internal_client.parse::<Ipv4Addr>().ok() == Some(local),
        })
}

/// What to check per port, and with what.
pub(crate) struct PortCheck<'a> {
    pub(crate) pairs: Vec<(u16, Protocol)>,
    pub(crate) profile: Option<&'static ServiceProfile>,
    /// The router's forwarding table (UPnP), when it could be read.
    pub(crate) entries: Option<&'a [PortMappingEntry]>,
    /// The mapper for trial mappings; `None` makes none.
    pub(crate) mapper: Option<Arc<dyn PortMapper>>,
    /// A dial-back server to check reachability from outside.
    pub(crate) dialback: Option<SocketAddr>,
    pub(crate) local: Ipv4Addr,
    pub(crate) timeout: Duration,
}

/// Checks every port: who it is forwarded to, whether the mapper can map
/// it, and with a dial-back server whether it is reachable from outside
/// (while the trial mapping is held). Every trial mapping is deleted.
pub(crate) async fn check_ports(c: PortCheck<'_>, guard: &Arc<MapGuard>) -> Vec<PortReport> {
    let mut reports: Vec<PortReport> = c
        .pairs
        .iter()
        .map(|&(port, protocol)| PortReport {
            port,
            protocol,
            purpose: c.profile.and_then(|p| p.purpose_of(port, protocol)),
            forwarded_to: c
                .entries
                .and_then(|e| forward_of(e, port, protocol, c.local)),
            mappable: None,
            mapping: None,
            reachability: "not_checked".into(),
            reachability_detail: None,
            forwarded_during_check: false,
        })
        .collect();
    let hold = c.dialback.is_some();
    let mut held = Vec::new();
    if let Some(mapper) = &c.mapper {
        held = trials(&mut reports, mapper, c.local, hold, guard).await;
    }
    if let Some(server) = c.dialback {
        reachability(&mut reports, server, c.timeout).await;
    }
    for (i, id) in held {
        if let Err(e) = guard.release(id).await {
            if let Some(m) = reports[i].mapping.as_mut() {
                m.removed = false;
                m.error = Some(format!("deleting the trial mapping: {e}"));
            }
        } else if let Some(m) = reports[i].mapping.as_mut() {
            m.removed = true;
        }
    }
    reports
}

/// Makes the trial mappings, a few at a time. With `hold`, the granted
/// mappings stay until the caller releases them (returned as report index
/// and guard id); otherwise each is deleted at once.
async fn trials(
    reports: &mut [PortReport],
    mapper: &Arc<dyn PortMapper>,
    local: Ipv4Addr,
    hold: bool,
    guard: &Arc<MapGuard>,
) -> Vec<(usize, u64)> {
    // A forward to this host that natkit did not make is someone's
    // setting: re-mapping it would overwrite it and deleting the trial
    // would remove it. Leave it alone.
    let candidates: Vec<usize> = (0..reports.len())
        .filter(|&i| {
            !reports[i]
                .forwarded_to
                .as_ref()
                .is_some_and(|f| f.this_host)
        })
        .take(MAX_TRIALS)
        .collect();
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut held = Vec::new();
    loop {
        while tasks.len() < PARALLEL_TRIALS && next < candidates.len() {
            let i = candidates[next];
            next += 1;
            let (port, protocol) = (reports[i].port, reports[i].protocol);
            let mapper = mapper.clone();
            let guard = guard.clone();
            tasks.spawn(
                async move { (i, trial(&guard, mapper, port, protocol, local, hold).await) },
            );
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        if let Ok((i, (mappable, t, id))) = done {
            reports[i].mappable = mappable;
            reports[i].mapping = Some(t);
            held.extend(id.map(|id| (i, id)));
        }
    }
    held
}

/// Asks the dial-back server about every port; ports natkit holds a
/// mapping for (or that the router already forwards here) are checked as
/// forwarded.
async fn reachability(reports: &mut [PortReport], server: SocketAddr, timeout: Duration) {
    let ports: Vec<CheckPort> = reports
        .iter_mut()
        .take(MAX_CHECK_PORTS)
        .map(|p| {
            // Only a trial mapping of the port itself: one the router moved
            // to another external port says nothing about this port, which
            // is then checked as it is (e.g. forwarded to another host).
            let ours = p
                .mapping
                .as_ref()
                .and_then(|m| m.external_port.filter(|&e| m.held && e == p.port));
            let forwarded_here = p.forwarded_to.as_ref().is_some_and(|f| f.this_host);
            match (ours, &p.forwarded_to) {
                (Some(external), _) => {
                    p.forwarded_during_check = true;
                    CheckPort::mapped(external, p.port, p.protocol)
                }
                (None, Some(f)) if forwarded_here => {
                    p.forwarded_during_check = true;
                    CheckPort::mapped(p.port, f.port, p.protocol)
                }
                _ => CheckPort::new(p.port, p.protocol),
            }
        })
        .collect();
    let mut config = ClientConfig::new(server);
    config.connect_timeout = timeout;
    let client = DialbackClient::new(config);
    let limit = timeout + Duration::from_secs(20);
    let answer = tokio::time::timeout(limit, client.check(&ports)).await;
    let report = match answer {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return dialback_failed(reports, crate::render::error_line(&e)),
        Err(_) => {
            return dialback_failed(
                reports,
                format!("no answer from the dial-back server {server} within {limit:?}"),
            );
        }
    };
    for (p, check) in reports.iter_mut().zip(&ports) {
        if let Some(v) = report.get(check.external, check.protocol) {
            p.reachability = v.verdict.as_str().into();
            p.reachability_detail = Some(format!(
                "{} (server {server} saw: {}; dialled {}:{})",
                v.why,
                v.server_saw,
                report.observed.ip(),
                check.external
            ));
        }
    }
}

fn dialback_failed(reports: &mut [PortReport], why: String) {
    for p in reports {
        p.reachability = "error".into();
        p.reachability_detail = Some(why.clone());
    }
}

/// Maps `port/protocol` to this host, then deletes the mapping.
async fn trial(
    guard: &Arc<MapGuard>,
    mapper: Arc<dyn PortMapper>,
    port: u16,
    protocol: Protocol,
    local: Ipv4Addr,
    hold: bool,
) -> (Option<bool>, MappingTrial, Option<u64>) {
    let mechanism = Some(mapper.mechanism().as_str());
    let request = MappingRequest::new(protocol, SocketAddr::new(IpAddr::V4(local), port))
        .with_lifetime(TRIAL_LIFETIME)
        .with_description(TRIAL_DESCRIPTION);
    match guard.map(mapper, request).await {
        Ok((id, mapping)) if hold => {
            let granted = mapping.external.port();
            let trial = MappingTrial {
                mechanism,
                external_port: Some(granted),
                removed: false,
                held: true,
                error: (granted != port)
                    .then(|| format!("the router gave external port {granted} instead of {port}")),
            };
            (Some(granted == port), trial, Some(id))
        }
        Ok((id, mapping)) => {
            let removed = guard.release(id).await;
            let granted = mapping.external.port();
            // A NAT-PMP/PCP router that gives another external port (the one
            // asked for is taken) cannot serve the port the service needs.
            let substituted = (granted != port)
                .then(|| format!("the router gave external port {granted} instead of {port}"));
            let removed_ok = removed.is_ok();
            let problems: Vec<String> = substituted
                .into_iter()
                .chain(
                    removed
                        .err()
                        .map(|e| format!("deleting the trial mapping: {e}")),
                )
                .collect();
            (
                Some(granted == port),
                MappingTrial {
                    mechanism,
                    external_port: Some(granted),
                    removed: removed_ok,
                    held: false,
                    error: (!problems.is_empty()).then(|| problems.join("; ")),
                },
                None,
            )
        }
        Err(TrialError::Refused(e)) => (
            Some(false),
            MappingTrial {
                mechanism,
                external_port: None,
                removed: true,
                held: false,
                error: Some(crate::render::error_line(&e)),
            },
            None,
        ),
        Err(TrialError::Stopped) => (
            None,
            MappingTrial {
                mechanism,
                external_port: None,
                removed: true,
                held: false,
                error: Some("not tried: interrupted".into()),
            },
            None,
        ),
    }
}
