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
use crate::decide::search::{Search, SearchDest, SearchSchedule};
use crate::error::{Error, Result};
use crate::io::igd::Igd;
use crate::wire::ssdp::{
    MAX_SSDP_RESPONSE, SSDP_MULTICAST, SsdpResponse, is_igd_target, search_request,
};
use crate::wire::url::HttpUrl;

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
    let mut schedule =
        SearchSchedule::new(config.widen_after, config.repeat_after, config.multicast);
    let mut seen: HashSet<String> = HashSet::new();
    let mut pending: JoinSet<Result<Igd>> = JoinSet::new();
    let mut problem: Option<Error> = None;
    let mut buf = vec![0u8; MAX_SSDP_RESPONSE + 1];
    let mut sent: u32 = 0;

    loop {
        let next_send = start + schedule.next_due();
        tokio::select! {
            _ = sleep_until(next_send), if next_send < deadline => {
                // While a candidate is being checked, more searches only
                // keep the router (most likely that very IGD) busy.
                let searches = schedule.poll(start.elapsed(), !pending.is_empty());
                sent += send_searches(&socket, unicast, &searches).await?;
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
    tracing::debug!(sent, "SSDP searches sent");
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

/// Sends `searches`; returns how many datagrams went out. Only a unicast
/// failure is an error (a host without a multicast route still has
/// unicast), and only when nothing else could be sent.
async fn send_searches(
    socket: &UdpSocket,
    unicast: SocketAddrV4,
    searches: &[Search],
) -> Result<u32> {
    let mut last_error = None;
    let mut sent = 0;
    for search in searches {
        let (to, mx) = match search.dest {
            SearchDest::Gateway => (unicast, None),
            SearchDest::Multicast => (SSDP_MULTICAST, Some(1)),
        };
        let req = search_request(to, search.target, mx);
        match socket.send_to(req.as_bytes(), to).await {
            Ok(_) => sent += 1,
            Err(e) if search.dest == SearchDest::Gateway => last_error = Some(e.kind()),
            Err(_) => {}
        }
    }
    match last_error {
        Some(kind) if sent == 0 => Err(Error::Socket { op: "send", kind }),
        _ => Ok(sent),
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
        // A candidate's check panicked: a bug of natkit's, not an IGD that
        // failed to answer. It goes on up rather than read as "no IGD".
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down.
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
