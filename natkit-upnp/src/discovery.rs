//! Finding the IGD: SSDP search (unicast to the gateway and multicast),
//! LOCATION checks, description fetch and the "is it connected" check,
//! all under time limits.
//!
//! igd-next's search sends only IGD:1 targets, only by multicast, and
//! takes the first responder whatever its state; natkit searches both IGD
//! versions and the WAN services, unicast too, and keeps looking until it
//! finds a *connected* IGD on the default gateway.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use natkit_core::{Gateway, default_gateway};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::config::{DiscoveryConfig, check_location};
use crate::error::{Error, Result};
use crate::igd::Igd;
use crate::ssdp::{
    MAX_SSDP_RESPONSE, SEARCH_TARGETS, SSDP_MULTICAST, SsdpResponse, is_igd_target, search_request,
};
use crate::url::HttpUrl;

/// Searches for the IGD on the default gateway and returns it once it
/// reports Connected.
///
/// Fails with [`Error::NotConnected`] naming the IGD when the only IGDs
/// found are not connected, [`Error::LocationRefused`] when the only
/// answers point elsewhere than the gateway, and [`Error::NoResponse`]
/// when nothing answered within [`DiscoveryConfig::timeout`].
pub async fn discover(config: &DiscoveryConfig) -> Result<Igd> {
    let gateway = match &config.gateway {
        Some(g) => g.clone(),
        None => default_gateway().map_err(|e| Error::NoDefaultGateway {
            detail: e.to_string(),
        })?,
    };
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
        .await
        .map_err(|e| Error::Socket {
            op: "bind",
            kind: e.kind(),
        })?;
    let unicast = SocketAddrV4::new(gateway.address, config.ssdp_port);
    let start = Instant::now();
    let deadline = start + config.timeout;
    let mut next_send = start;
    let mut round = if config.widen_after.is_zero() || config.widen_after >= config.resend_interval
    {
        Round::All
    } else {
        Round::Narrow
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut pending: JoinSet<Result<Igd>> = JoinSet::new();
    let mut problem: Option<Error> = None;
    let mut buf = vec![0u8; MAX_SSDP_RESPONSE + 1];

    loop {
        tokio::select! {
            _ = sleep_until(next_send), if next_send < deadline => {
                // While a candidate is being checked, more searches only
                // keep the router (most likely that very IGD) busy.
                if pending.is_empty() {
                    send_searches(&socket, unicast, config.multicast, round).await?;
                }
                (next_send, round) = match round {
                    Round::Narrow => (start + config.widen_after, Round::Rest),
                    Round::Rest => (start + config.resend_interval, Round::All),
                    Round::All => (
                        next_send + config.resend_interval.max(std::time::Duration::from_millis(10)),
                        Round::All,
                    ),
                };
            }
            received = socket.recv_from(&mut buf) => {
                // Errors such as ICMP port unreachable are not fatal: keep listening.
                let Ok((n, _from)) = received else { continue };
                if let Some(location) = accept_answer(&buf[..n], &gateway, config, &mut seen, &mut problem) {
                    let http = config.http.clone();
                    let server = location.1;
                    pending.spawn(async move {
                        Igd::connect_url(location.0, server, &http).await?.require_connected().await
                    });
                }
            }
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                if let Some(igd) = settle(done, &mut problem) {
                    return Ok(igd);
                }
            }
            _ = sleep_until(deadline) => break,
        }
    }
    // Candidates already being checked finish within their HTTP limits.
    while let Some(done) = pending.join_next().await {
        if let Some(igd) = settle(done, &mut problem) {
            return Ok(igd);
        }
    }
    Err(problem.unwrap_or_else(|| Error::NoResponse {
        waited_ms: u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX),
        searched: if config.multicast {
            format!("{unicast} and {SSDP_MULTICAST}")
        } else {
            unicast.to_string()
        },
    }))
}

/// Which searches one round sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Unicast to the gateway, the two IGD device types only.
    Narrow,
    /// What `Narrow` left out: the service targets by unicast, every target
    /// by multicast.
    Rest,
    /// Every target, unicast and multicast.
    All,
}

/// How many of [`SEARCH_TARGETS`] (the IGD device types) a narrow round asks for.
const NARROW_TARGETS: usize = 2;

async fn send_searches(
    socket: &UdpSocket,
    unicast: SocketAddrV4,
    multicast: bool,
    round: Round,
) -> Result<()> {
    let (unicast_targets, multicast_targets): (&[&str], &[&str]) = match round {
        Round::Narrow => (&SEARCH_TARGETS[..NARROW_TARGETS], &[]),
        Round::Rest => (&SEARCH_TARGETS[NARROW_TARGETS..], &SEARCH_TARGETS),
        Round::All => (&SEARCH_TARGETS, &SEARCH_TARGETS),
    };
    let mut last_error = None;
    for target in unicast_targets {
        let req = search_request(unicast, target, None);
        if let Err(e) = socket.send_to(req.as_bytes(), unicast).await {
            last_error = Some(e.kind());
        }
    }
    if multicast {
        for target in multicast_targets {
            let req = search_request(SSDP_MULTICAST, target, Some(1));
            // A host without a multicast route still has unicast.
            let _ = socket.send_to(req.as_bytes(), SSDP_MULTICAST).await;
        }
    }
    match last_error {
        Some(kind) if !multicast => Err(Error::Socket { op: "send", kind }),
        _ => Ok(()),
    }
}

/// Checks one datagram; returns a new LOCATION worth fetching.
fn accept_answer(
    datagram: &[u8],
    gateway: &Gateway,
    config: &DiscoveryConfig,
    seen: &mut HashSet<String>,
    problem: &mut Option<Error>,
) -> Option<(HttpUrl, Option<String>)> {
    let answer = SsdpResponse::parse(datagram).ok()?;
    if !is_igd_target(answer.st) || !seen.insert(answer.location.to_owned()) {
        return None;
    }
    let url = match HttpUrl::parse(answer.location) {
        Ok(u) => u,
        Err(e) => {
            record(problem, Error::bad_url(answer.location, e));
            return None;
        }
    };
    if let Err(reason) = check_location(
        url.ip(),
        gateway,
        config.location_policy,
        config.allow_loopback,
    ) {
        record(
            problem,
            Error::LocationRefused {
                location: answer.location.chars().take(200).collect(),
                reason,
                gateway: gateway.address,
            },
        );
        return None;
    }
    Some((url, answer.server.map(|s| s.chars().take(128).collect())))
}

fn settle(
    done: std::result::Result<Result<Igd>, tokio::task::JoinError>,
    problem: &mut Option<Error>,
) -> Option<Igd> {
    match done {
        Ok(Ok(igd)) => Some(igd),
        Ok(Err(e)) => {
            record(problem, e);
            None
        }
        Err(_) => None,
    }
}

/// Keeps the most telling problem: an IGD that is there but not connected
/// beats one that failed to answer properly, which beats a refused LOCATION.
fn record(problem: &mut Option<Error>, e: Error) {
    fn rank(e: &Error) -> u8 {
        match e {
            Error::NotConnected { .. } => 3,
            Error::LocationRefused { .. } | Error::BadUrl { .. } => 1,
            _ => 2,
        }
    }
    if problem.as_ref().is_none_or(|p| rank(&e) > rank(p)) {
        *problem = Some(e);
    }
}
