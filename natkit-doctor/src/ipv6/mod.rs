//! The IPv6 section: this host's global IPv6 addresses (stable and temporary),
//! whether the router's firewall drops new inbound IPv6 connections, whether
//! natkit can open a pinhole in it and through which protocol (opened for the
//! trial, then deleted), and with a dial-back server over IPv6 whether a port
//! is reachable from outside without and with a pinhole.
//!
//! There is no NAT on IPv6: a global address is reachable as it is, unless a
//! stateful firewall (every home router has one) drops what this host did not
//! ask for. A pinhole is a hole in that firewall for one address, port and
//! protocol: UPnP IGD's WANIPv6FirewallControl (AddPinhole) or a PCP MAP
//! request for an IPv6 address. It is opened for a stable address, never a
//! temporary (privacy) one that is retired within a day
//! ([`natkit_core::choose_stable_ipv6`]).
//!
//! Every part is bounded by the check's timeout and runs alongside the IPv4
//! checks; a part that cannot run says `not_checked` and why, never a guess.

mod checks;
mod conclude;
mod findings;
mod host;
mod report;
mod signs;
mod text;

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::Protocol;
use tokio::task::JoinHandle;

use crate::guard::MapGuard;

pub(crate) use findings::findings;
pub use report::{
    FirewallCheck, FirewallVerdict, Ipv6HostAddress, Ipv6PortReachability, Ipv6Reachability,
    Ipv6Report, PinholeAddress, PinholeAttempt, PinholeCheck, PinholeVerdict,
};
pub(crate) use text::render;

/// What the IPv6 checks need from the run.
pub(crate) struct Input {
    /// The STUN servers as configured: IPv6 literals, and names (their AAAA
    /// records); IPv4 literals are left out.
    pub(crate) stun_servers: Vec<String>,
    /// The ports to check, if any (the trial pinhole uses the first).
    pub(crate) ports: Vec<(u16, Protocol)>,
    /// A dial-back server's IPv6 address.
    pub(crate) dialback: Option<SocketAddr>,
    /// Whether to open trial pinholes at all.
    pub(crate) trial: bool,
    /// The bound on each check.
    pub(crate) timeout: Duration,
    /// The router check's mapper, once it has detected the protocols.
    pub(crate) router: tokio::sync::oneshot::Receiver<RouterForIpv6>,
}

/// What the router check hands the IPv6 checks.
#[derive(Default)]
pub(crate) struct RouterForIpv6 {
    /// The run's AutoMapper: pinholes go through it (PCP, then UPnP
    /// WANIPv6FirewallControl), journaled like the IPv4 trial mappings.
    pub(crate) auto: Option<Arc<natkit_portmap::AutoMapper>>,
    /// What the router's UPnP IGD answered to detection.
    pub(crate) upnp: crate::report::ProtocolState,
    /// What PCP answered.
    pub(crate) pcp: crate::report::ProtocolState,
}

impl Input {
    pub(crate) fn of(
        config: &crate::Config,
        timeout: Duration,
        router: tokio::sync::oneshot::Receiver<RouterForIpv6>,
    ) -> Input {
        Input {
            stun_servers: config.stun_servers.clone(),
            ports: config.ports.pairs(),
            dialback: config.dialback6.filter(SocketAddr::is_ipv6),
            trial: config.trial,
            timeout,
            router,
        }
    }
}

/// Starts the IPv6 checks on a task of their own.
pub(crate) fn start(input: Input, guard: Arc<MapGuard>) -> JoinHandle<Ipv6Report> {
    tokio::spawn(checks::run(input, guard))
}

/// The IPv6 section once done (`None` when it was cancelled).
pub(crate) async fn finish(started: JoinHandle<Ipv6Report>) -> Option<Ipv6Report> {
    crate::section(started).await
}

/// Whether a configured STUN server is an IPv6 literal (`[addr]:port`, or a
/// bare address): it serves the IPv6 checks only.
pub(crate) fn is_ipv6_literal(server: &str) -> bool {
    server.parse::<SocketAddr>().is_ok_and(|a| a.is_ipv6()) || server.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod conclude_tests;
#[cfg(test)]
mod tests;
