//! The IPv6 checks' I/O: the address table, STUN over IPv6, the router's
//! pinholes (through the run's AutoMapper, so they are journaled like the
//! IPv4 trial mappings) and the dial-back over IPv6.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::addresses::ROUTE_LOOKUP_V6;
use natkit_core::{FailureKind, MappingRequest, PortMapper, Protocol};
use natkit_probe::dialback::{
    CheckPort, ClientConfig, DialbackClient, MAX_CHECK_PORTS, PortReachability, Reachability,
    ResponderSaw, Why,
};
use natkit_stun::classify::{ClassifyConfig, classify};
use natkit_stun::client::{IpFamily, NoAddress, RtoPlan, StunDiscoverer};

use super::conclude::{Conclusion, StunPath, conclude};
use super::host::{HostIpv6State, host_state, pinhole_address};
use super::report::{
    Ipv6PortReachability, Ipv6Reachability, Ipv6Report, PinholeAttempt, PinholeCheck,
    PinholeVerdict,
};
use super::signs::{self, Asked, NoSign, Sign};
use super::{Input, RouterForIpv6};
use crate::guard::{MapGuard, TrialError};
use natkit_portmap::AutoMapper;

/// The lease a trial pinhole asks for: deleted right after, and gone by itself
/// soon if deleting fails.
const TRIAL_LIFETIME: Duration = Duration::from_secs(120);
/// The most ports checked from outside over IPv6 (each gets a pinhole).
const MAX_DIALBACK_PORTS: usize = 8;

/// Runs the IPv6 section.
pub(crate) async fn run(input: Input, guard: Arc<MapGuard>) -> Ipv6Report {
    let Input {
        stun_servers,
        ports,
        dialback,
        trial,
        timeout,
        router,
    } = input;
    let host = match tokio::task::spawn_blocking(read_host).await {
        Ok(h) => h,
        // A bug of the doctor's: it goes on up, as a section's does
        // (crate::section).
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled (the runtime is shutting down): no table was read.
        Err(e) => host_state(Err(std::io::Error::other(e).into()), None, None),
    };
    if !host.available {
        return Ipv6Report::unavailable(host);
    }
    let stable = host.stable.as_ref().map(|s| s.address);
    let pinholes = async {
        let dialled: Vec<(u16, Protocol)> =
            ports.iter().copied().take(MAX_DIALBACK_PORTS).collect();
        let dial = match (dialback, stable) {
            (Some(server), Some(source)) if !dialled.is_empty() => Some((server, source)),
            _ => None,
        };
        // Without a pinhole first: the trial pinhole must not be open while the
        // server dials.
        let (round1, seen1) = match dial {
            Some((server, source)) => reach(server, source, &dialled, false, timeout).await,
            None => (Vec::new(), Vec::new()),
        };
        let router = router.await.unwrap_or_default();
        let upnp_sign = upnp_sign(&router, stable, timeout).await;
        let trial_ports: Vec<(u16, Protocol)> = if dial.is_some() {
            dialled.clone()
        } else {
            ports.iter().copied().take(1).collect()
        };
        let (pinhole, held) = if trial {
            // Neither pinhole protocol answered detection: nothing to ask, the
            // detection's words are the attempts.
            let absent = absent_protocols(&router);
            let untried = absent.len() == 2;
            let auto = router.auto.clone().filter(|_| !untried);
            // Each request is bounded by its mechanism; this bounds them all. A
            // pinhole granted after it is still deleted by the guard at the end.
            let bound = timeout + Duration::from_secs(2);
            let trials = trial_pinholes(auto, stable, &trial_ports, dial.is_some(), &guard);
            match tokio::time::timeout(bound, trials).await {
                Ok((mut check, held)) => {
                    if untried && check.verdict == PinholeVerdict::NoProtocol {
                        check.attempts = absent;
                    }
                    (check, held)
                }
                Err(_) => (
                    PinholeCheck::not_checked(format!(
                        "the pinhole requests did not finish within {:.1} s",
                        bound.as_secs_f32()
                    )),
                    Vec::new(),
                ),
            }
        } else {
            (
                PinholeCheck::not_checked("trial mappings are off (--no-trial)".into()),
                Vec::new(),
            )
        };
        let mut round2 = Vec::new();
        if let Some((server, source)) = dial.filter(|_| !held.is_empty()) {
            let through: Vec<(u16, Protocol)> = held.iter().map(|(p, _)| *p).collect();
            round2 = reach(server, source, &through, true, timeout).await.0;
        }
        let mut pinhole = pinhole;
        for (_, id) in held {
            if let Err(e) = guard.release(id).await {
                for a in pinhole
                    .attempts
                    .iter_mut()
                    .filter(|a| a.outcome == "opened")
                {
                    a.removed = Some(false);
                    a.detail = Some(format!("deleting the pinhole: {e}"));
                }
            }
        }
        (round1, seen1, round2, upnp_sign, pinhole)
    };
    let ((stun, path), (round1, seen1, round2, upnp, pinhole)) =
        tokio::join!(stun_sign(&stun_servers, timeout), pinholes);
    let mut observed = Vec::new();
    let mut why_none = Vec::new();
    match stun {
        Ok(sign) => observed.push(sign),
        Err(why) => why_none.push(why),
    }
    let claim = upnp.map_err(|why| why_none.push(why)).ok();
    observed.extend(seen1);
    if dialback.is_none() {
        why_none.push(NoSign::NoDialback);
    }
    // Whether the dial-back server was reached at all (an `error` row is a
    // control connection that failed).
    let dial_answered = (!round1.is_empty() || !round2.is_empty())
        .then(|| round1.iter().chain(&round2).any(|p| p.verdict != "error"));
    let Conclusion {
        available,
        detail,
        firewall,
    } = conclude(host.detail, observed, claim, why_none, path, dial_answered);
    let reachability = match (dialback, stable) {
        (None, _) => {
            Ipv6Reachability::not_checked(None, "no dial-back server over IPv6 given".into())
        }
        (Some(s), None) => Ipv6Reachability::not_checked(
            Some(s),
            "this host has no stable IPv6 address for the server to dial".into(),
        ),
        (Some(s), Some(_)) if ports.is_empty() => {
            Ipv6Reachability::not_checked(Some(s), "no ports to check".into())
        }
        (Some(s), Some(_)) => Ipv6Reachability {
            server: Some(s),
            ports: round1.into_iter().chain(round2).collect(),
            not_checked: None,
        },
    };
    Ipv6Report {
        available,
        detail,
        addresses: host.addresses,
        pinhole_address: host.stable.as_ref().map(pinhole_address),
        firewall,
        pinhole,
        reachability,
    }
}

/// The address table, the route to the IPv6 internet and the stable address on
/// the route's interface (blocking: it reads `/proc` and connects a socket).
fn read_host() -> HostIpv6State {
    let addrs = natkit_core::host_ipv6_addresses();
    // A route lookup only: no packet is sent.
    let source = natkit_core::kernel_source_v6(ROUTE_LOOKUP_V6)
        .ok()
        .flatten();
    let chosen = match (&addrs, source) {
        (Ok(list), Some(src)) => list
            .iter()
            .find(|a| a.address == src)
            .and_then(|a| a.interface.clone())
            .map(|iface| natkit_core::choose_stable_ipv6(list, &iface, Some(src))),
        _ => None,
    };
    host_state(addrs, source, chosen)
}

/// The firewall as the RFC 5780 filtering tests over IPv6 see it (the IPv6
/// literals given, and the names: their AAAA records), and what they saw of
/// the way out.
async fn stun_sign(servers: &[String], timeout: Duration) -> (Result<Sign, NoSign>, StunPath) {
    use natkit_core::Connectivity;
    let servers: Vec<String> = servers
        .iter()
        .filter(|s| !is_ipv4_literal(s))
        .cloned()
        .collect();
    if servers.is_empty() {
        return (Err(NoSign::NoStunServer), StunPath::Unknown);
    }
    let mut config = ClassifyConfig::new(servers.clone());
    config.family = Some(IpFamily::V6);
    let bound = timeout + Duration::from_secs(2);
    // Beside the classification, one Binding request per server: the
    // classifier takes longer to give up on silence than a short timeout
    // allows, and whether anything answered at all is what tells a dead IPv6
    // uplink.
    let answered = StunDiscoverer::new(servers).with_plan(RtoPlan::FAST);
    let (classified, answered) = tokio::join!(
        within(Asked::Stun, bound, classify(config), NoSign::StunFailed),
        tokio::time::timeout(bound, answered.discover_in(IpFamily::V6))
    );
    let c = match classified {
        Ok(c) => c,
        Err(why) => {
            let path = match answered {
                Ok(Ok(Err(NoAddress::NoAnswer { .. } | NoAddress::NoRoute { .. }))) => {
                    StunPath::Silent
                }
                _ => StunPath::Unknown,
            };
            return (Err(why), path);
        }
    };
    let path = match c.behaviour.connectivity {
        Connectivity::NoNat => StunPath::Direct,
        Connectivity::Nat => StunPath::Translated(c.external),
        Connectivity::UdpBlocked => StunPath::Silent,
        _ => StunPath::Unknown,
    };
    (signs::stun_sign(&c.behaviour, c.behaviour_server), path)
}

/// The answer to what was `asked`, or why there is none: its error (kept by
/// `failed`), or nothing within `bound`.
async fn within<T, E>(
    asked: Asked,
    bound: Duration,
    future: impl std::future::Future<Output = Result<T, E>>,
    failed: impl FnOnce(E) -> NoSign,
) -> Result<T, NoSign> {
    match tokio::time::timeout(bound, future).await {
        Ok(result) => result.map_err(failed),
        Err(_) => Err(NoSign::NoAnswer {
            asked,
            within: bound,
        }),
    }
}

fn is_ipv4_literal(server: &str) -> bool {
    server.parse::<SocketAddr>().is_ok_and(|a| a.is_ipv4())
        || server.parse::<std::net::Ipv4Addr>().is_ok()
}

/// What the router's UPnP IGD says about its IPv6 firewall
/// (WANIPv6FirewallControl GetFirewallStatus), asked from the stable address
/// as the pinholes are.
async fn upnp_sign(
    router: &RouterForIpv6,
    stable: Option<Ipv6Addr>,
    timeout: Duration,
) -> Result<Sign, NoSign> {
    let Some(upnp) = router.auto.as_ref().and_then(|a| a.upnp()) else {
        return Err(NoSign::NoIgd);
    };
    let Some(local) = stable else {
        return Err(NoSign::NoStableAddress);
    };
    let firewall = upnp.igd().firewall(local).map_err(NoSign::IgdFirewall)?;
    let status = firewall.status();
    let s = within(Asked::FirewallStatus, timeout, status, NoSign::StatusFailed).await?;
    Ok(signs::upnp_status_sign(
        s.enabled,
        s.inbound_pinhole_allowed,
    ))
}

/// The firewall as a dial-back without a pinhole saw it.
/// A reset or port unreachable with no NAT in between while this host's
/// responder listened came from something on the way: a firewall that rejects
/// rather than drops.
pub(crate) fn dialback_sign(port: u16, protocol: Protocol, v: &PortReachability) -> Option<Sign> {
    let what = format!(
        "dial-back to {port}/{protocol} without a pinhole: {}",
        v.verdict.as_str()
    );
    match v.verdict {
        Reachability::Filtered => Some(Sign::Blocks(what)),
        Reachability::Reachable => Some(Sign::Allows(what)),
        Reachability::Closed
            if v.why == Why::RefusedNoNat && v.responder == ResponderSaw::Nothing =>
        {
            Some(Sign::Blocks(format!(
                "{what}, refused while this host listened: a firewall rejects it"
            )))
        }
        _ => None,
    }
}

/// Asks the dial-back server to dial `ports` at `source` (the stable address:
/// the server dials the control connection's source): the rows, and without
/// a pinhole what they say about the firewall.
async fn reach(
    server: SocketAddr,
    source: Ipv6Addr,
    ports: &[(u16, Protocol)],
    through_pinhole: bool,
    timeout: Duration,
) -> (Vec<Ipv6PortReachability>, Vec<Sign>) {
    let checks: Vec<CheckPort> = ports
        .iter()
        .take(MAX_CHECK_PORTS)
        .map(|&(p, proto)| {
            if through_pinhole {
                CheckPort::mapped(p, p, proto)
            } else {
                CheckPort::new(p, proto)
            }
        })
        .collect();
    let mut config = ClientConfig::new(server);
    config.connect_timeout = timeout;
    config.source_ip = Some(IpAddr::V6(source));
    let client = DialbackClient::new(config);
    let limit = timeout + Duration::from_secs(20);
    let row = |&(port, protocol): &(u16, Protocol), verdict: String, detail: String| {
        Ipv6PortReachability {
            port,
            protocol,
            through_pinhole,
            verdict,
            detail: Some(detail),
        }
    };
    match tokio::time::timeout(limit, client.check(&checks)).await {
        Ok(Ok(report)) => {
            let signs = ports
                .iter()
                .filter(|_| !through_pinhole)
                .filter_map(|&(p, proto)| dialback_sign(p, proto, report.get(p, proto)?))
                .collect();
            let rows = ports
                .iter()
                .filter_map(|pp| {
                    let v = report.get(pp.0, pp.1)?;
                    Some(row(
                        pp,
                        v.verdict.as_str().to_owned(),
                        format!(
                            "{} (server {server} saw: {}; dialled [{}]:{})",
                            v.why,
                            v.server_saw,
                            report.observed.ip(),
                            pp.0
                        ),
                    ))
                })
                .collect();
            (rows, signs)
        }
        Ok(Err(e)) => {
            let why = crate::render::error_line(&e);
            let rows = ports
                .iter()
                .map(|pp| row(pp, "error".into(), why.clone()))
                .collect();
            (rows, Vec::new())
        }
        Err(_) => {
            let why = format!("no answer from the dial-back server {server} within {limit:?}");
            let rows = ports
                .iter()
                .map(|pp| row(pp, "error".into(), why.clone()))
                .collect();
            (rows, Vec::new())
        }
    }
}

/// The pinhole protocols (UPnP, PCP) that did not answer the router check's
/// detection at all, each as an `absent` attempt with its words.
fn absent_protocols(router: &RouterForIpv6) -> Vec<PinholeAttempt> {
    [("upnp", &router.upnp), ("pcp", &router.pcp)]
        .into_iter()
        .filter(|(_, s)| !s.status.is_present())
        .map(|(protocol, s)| PinholeAttempt {
            protocol,
            outcome: "absent",
            removed: None,
            detail: s.detail.clone(),
        })
        .collect()
}

/// Opens a pinhole for each of `ports` (a free port of this host when none are
/// given) through the run's mapper. With `hold` the pinholes stay (returned
/// with their guard ids, for the dial-back); otherwise each is deleted at
/// once.
async fn trial_pinholes(
    auto: Option<Arc<AutoMapper>>,
    address: Option<Ipv6Addr>,
    ports: &[(u16, Protocol)],
    hold: bool,
    guard: &Arc<MapGuard>,
) -> (PinholeCheck, Vec<((u16, Protocol), u64)>) {
    let Some(address) = address else {
        return (
            PinholeCheck::not_checked(
                "this host has no stable global IPv6 address to open a pinhole for".into(),
            ),
            Vec::new(),
        );
    };
    // Without ports, a port this host holds for the trial: nothing else can
    // be listening on it.
    let mut _listener: Option<TcpListener> = None;
    let ports: Vec<(u16, Protocol)> = if ports.is_empty() {
        match TcpListener::bind(SocketAddrV6::new(address, 0, 0, 0)).and_then(|l| {
            let port = l.local_addr()?.port();
            _listener = Some(l);
            Ok(port)
        }) {
            Ok(port) => vec![(port, Protocol::Tcp)],
            Err(e) => {
                return (
                    PinholeCheck::not_checked(format!(
                        "cannot pick a trial port on {address}: {e}"
                    )),
                    Vec::new(),
                );
            }
        }
    } else {
        ports.to_vec()
    };
    let (first_port, transport) = ports[0];
    let first = SocketAddr::new(IpAddr::V6(address), first_port);
    let Some(auto) = auto else {
        let mut check = PinholeCheck::not_checked(String::new());
        check.verdict = PinholeVerdict::NoProtocol;
        check.not_checked = None;
        check.pinhole = Some(first);
        check.transport = Some(transport);
        return (check, Vec::new());
    };
    let mut attempts = Vec::new();
    let mut held = Vec::new();
    for &(port, protocol) in &ports {
        let internal = SocketAddr::new(IpAddr::V6(address), port);
        let (attempt, id) = attempt(guard, auto.clone(), protocol, internal, hold).await;
        if port == first_port && protocol == transport {
            attempts.push(attempt);
        }
        held.extend(id.map(|id| ((port, protocol), id)));
    }
    let opened = attempts.iter().find(|a| a.outcome == "opened");
    let verdict = if opened.is_some() {
        PinholeVerdict::Opened
    } else if attempts.iter().any(|a| a.outcome == "refused") {
        PinholeVerdict::Refused
    } else {
        PinholeVerdict::NoProtocol
    };
    let check = PinholeCheck {
        verdict,
        protocol: opened.map(|a| a.protocol),
        pinhole: Some(first),
        transport: Some(transport),
        attempts,
        not_checked: None,
    };
    (check, held)
}

/// One trial pinhole: opened, then (unless held) deleted.
async fn attempt(
    guard: &Arc<MapGuard>,
    auto: Arc<AutoMapper>,
    transport: Protocol,
    internal: SocketAddr,
    hold: bool,
) -> (PinholeAttempt, Option<u64>) {
    let request = MappingRequest::new(transport, internal)
        .with_lifetime(TRIAL_LIFETIME)
        .with_description(crate::ports::TRIAL_DESCRIPTION);
    // Named when it fails: the first mechanism a pinhole goes to.
    let first = auto
        .order_for(&request)
        .first()
        .map_or("pcp", |m| m.as_str());
    match guard.map(auto as Arc<dyn PortMapper>, request).await {
        Ok((id, mapping)) => {
            let protocol = mapping.mechanism.as_str();
            if hold {
                let a = PinholeAttempt {
                    protocol,
                    outcome: "opened",
                    removed: Some(true),
                    detail: None,
                };
                return (a, Some(id));
            }
            let removed = guard.release(id).await;
            let a = PinholeAttempt {
                protocol,
                outcome: "opened",
                removed: Some(removed.is_ok()),
                detail: removed
                    .err()
                    .map(|e| format!("deleting the trial pinhole: {e}")),
            };
            (a, None)
        }
        Err(TrialError::Refused(e)) => {
            let outcome = match e.failure_kind() {
                // No usable answer (nothing listening, not over IPv6, silence):
                // the protocol is not there for pinholes. Anything else is the
                // router answering with an error.
                Some(
                    FailureKind::Unavailable
                    | FailureKind::Unsupported
                    | FailureKind::Network
                    | FailureKind::Timeout,
                ) => "absent",
                _ => "refused",
            };
            let a = PinholeAttempt {
                protocol: match &e {
                    natkit_core::Error::Mechanism { mechanism, .. }
                        if *mechanism != natkit_core::Mechanism::NatPmp =>
                    {
                        mechanism.as_str()
                    }
                    _ => first,
                },
                outcome,
                removed: None,
                detail: Some(crate::render::error_line(&e)),
            };
            (a, None)
        }
        Err(TrialError::Stopped) => {
            let a = PinholeAttempt {
                protocol: first,
                outcome: "refused",
                removed: None,
                detail: Some("not tried: interrupted".into()),
            };
            (a, None)
        }
    }
}
