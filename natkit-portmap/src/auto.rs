//! [`AutoMapper`]: PCP, NAT-PMP and UPnP IGD detected at once, the best one
//! used, behind natkit-core's [`PortMapper`](natkit_core::PortMapper).
//!
//! This file holds the type, its shared state and its public API; the rest
//! is in:
//! - `detect`: asking every mechanism at once, NAT-PMP's and PCP's second
//!   window, a panicked detection task as its mechanism's failure;
//! - `map`: choosing the mechanism for a request, falling through to the
//!   next, the journal around each mapping, and the
//!   [`PortMapper`](natkit_core::PortMapper) impl;
//! - `cleanup` (a sibling, `src/cleanup.rs`): deleting what a crashed run
//!   left behind;
//! - `panic_tests`, `pinhole_tests`: a panicked detection, and where an
//!   IPv6 pinhole request goes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natkit_core::{Gateway, MappingRequest, Mechanism, default_gateway};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

use crate::config::PortMapConfig;
use crate::journal::Journal;
use crate::report::{Detection, MechanismReport};

/// Why an IPv6 pinhole request never goes to NAT-PMP: reported among the
/// attempts when no other mechanism could open the pinhole.
pub const PINHOLE_SKIP_NATPMP: &str =
    "not asked: NAT-PMP has no IPv6 (RFC 6886); a pinhole needs PCP or UPnP IGDv2";

/// One port mapper over every mechanism the router speaks.
///
/// - [`detect`](Self::detect) asks PCP, NAT-PMP and UPnP at once and
///   reports what each said ([`Detection`]), within
///   [`PortMapConfig::detect_deadline`] (900 ms by default): a router that
///   refuses the ports (ICMP port unreachable) is "no port mapping
///   protocol" in under a second. NAT-PMP and PCP send on RFC 6886's
///   250 ms doubling within that window, so a lost datagram is sent again.
///   When the whole window goes unanswered they try a second window if
///   the other of the two answered (same server port) or nothing answered
///   at all (a silent router then costs two deadlines); still no answer is
///   reported as "no answer", and with [`PortMapConfig::map_unanswered`] (a
///   single mechanism asked for by name) the mapping is tried anyway on the
///   full request plan. A mechanism that answered stays available even
///   when later requests go unanswered; those follow their own plans.
/// - As a [`PortMapper`](natkit_core::PortMapper) it maps through the best
///   available mechanism in [`PortMapConfig::order`] (PCP, NAT-PMP, UPnP by
///   default), falling through to the next available one when a mapping
///   attempt fails; it does not wait for slower mechanisms once a better one
///   has answered.
///   Renew and unmap go to the mechanism that made the mapping (PCP with
///   the nonce in [`Mapping::token`](natkit_core::Mapping::token)), so the
///   [`LeaseKeeper`](natkit_core::LeaseKeeper) runs on it unchanged.
/// - An IPv6 request ([`MappingRequest::is_pinhole`]) asks for a pinhole:
///   it goes to PCP, then UPnP IGD (`WANIPv6FirewallControl`), in the
///   configured order; NAT-PMP is skipped, since it has no IPv6
///   ([`PINHOLE_SKIP_NATPMP`] says so in the error when all else fails).
/// - With a [`Journal`] ([`with_journal`](Self::with_journal)) every
///   mapping is recorded before it is returned and forgotten once deleted;
///   [`cleanup`](Self::cleanup) deletes what a crashed run left behind.
///
/// Cloning is cheap and shares the detection, the mappers and the journal.
#[derive(Clone)]
pub struct AutoMapper {
    inner: Arc<Inner>,
}

struct Inner {
    order: Vec<Mechanism>,
    detect_deadline: Duration,
    map_unanswered: bool,
    gateway: std::result::Result<Gateway, Arc<natkit_core::Error>>,
    upnp_config: DiscoveryConfig,
    pcp: Option<PcpMapper>,
    natpmp: Option<NatPmpMapper>,
    upnp: OnceCell<Arc<UpnpMapper>>,
    detection: Mutex<Option<watch::Receiver<DetectState>>>,
    chosen: Mutex<Option<Mechanism>>,
    journal: Option<Journal>,
    /// This mechanism's detection panics, as a bug in it would.
    #[cfg(test)]
    detect_panics: Option<Mechanism>,
}

#[derive(Debug, Clone)]
struct DetectState {
    started: Instant,
    reports: Vec<MechanismReport>,
    finished: Option<Instant>,
    /// Whether each mechanism answered in the first window; NAT-PMP and
    /// PCP look at each other's before their report is final.
    first_window: Vec<(Mechanism, bool)>,
}

impl std::fmt::Debug for AutoMapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoMapper")
            .field("order", &self.inner.order)
            .field("gateway", &self.inner.gateway)
            .field("chosen", &self.chosen())
            .finish_non_exhaustive()
    }
}

impl AutoMapper {
    /// A mapper for `config`'s gateway (or the default gateway). Nothing
    /// is sent until [`detect`](Self::detect) or the first mapping. Without
    /// a gateway every mechanism reports a network failure.
    pub fn new(config: PortMapConfig) -> Self {
        let order = config.effective_order();
        let gateway = match config.gateway.clone() {
            Some(g) => Ok(g),
            None => default_gateway().map_err(Arc::new),
        };
        let (pcp, natpmp) = match &gateway {
            Ok(g) => (
                order.contains(&Mechanism::Pcp).then(|| {
                    PcpMapper::new(
                        g.address,
                        PcpConfig {
                            fallback_to_natpmp: false,
                            local_address: config
                                .pcp
                                .local_address
                                .or(Some(IpAddr::V4(g.local_address))),
                            detect: config.pcp.detect.bounded_by(config.detect_deadline),
                            ..config.pcp.clone()
                        },
                    )
                }),
                order.contains(&Mechanism::NatPmp).then(|| {
                    NatPmpMapper::new(
                        g.address,
                        NatPmpConfig {
                            local_address: config.natpmp.local_address.or(Some(g.local_address)),
                            detect: config.natpmp.detect.bounded_by(config.detect_deadline),
                            ..config.natpmp.clone()
                        },
                    )
                }),
            ),
            Err(_) => (None, None),
        };
        let upnp_config = DiscoveryConfig {
            gateway: gateway.as_ref().ok().cloned(),
            ..config.upnp.clone()
        };
        AutoMapper {
            inner: Arc::new(Inner {
                order,
                detect_deadline: config.detect_deadline,
                map_unanswered: config.map_unanswered,
                gateway,
                upnp_config,
                pcp,
                natpmp,
                upnp: OnceCell::new(),
                detection: Mutex::new(None),
                chosen: Mutex::new(None),
                journal: None,
                #[cfg(test)]
                detect_panics: None,
            }),
        }
    }

    /// Records every mapping in `journal` (see [`Journal`]). Call before
    /// the mapper is cloned or used.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.journal = Some(journal),
            None => tracing::warn!("with_journal on a shared AutoMapper: journal not attached"),
        }
        self
    }

    /// The journal, if any.
    pub fn journal(&self) -> Option<&Journal> {
        self.inner.journal.as_ref()
    }

    /// The gateway, or why there is none
    /// ([`natkit_core::Error::NoDefaultGateway`]).
    pub fn gateway(&self) -> std::result::Result<&Gateway, &natkit_core::Error> {
        self.inner.gateway.as_ref().map_err(|e| &**e)
    }

    /// The mechanisms in use, best first.
    pub fn order(&self) -> &[Mechanism] {
        &self.inner.order
    }

    /// The mechanisms that can serve `request`, best first: the whole
    /// order for a NAT mapping; for an IPv6 pinhole the order without
    /// NAT-PMP (see [`PINHOLE_SKIP_NATPMP`]).
    pub fn order_for(&self, request: &MappingRequest) -> Vec<Mechanism> {
        self.inner
            .order
            .iter()
            .copied()
            .filter(|m| !(request.is_pinhole() && *m == Mechanism::NatPmp))
            .collect()
    }

    /// The mechanism of the last successful mapping, else the best one the
    /// last detection found, else `None`.
    pub fn chosen(&self) -> Option<Mechanism> {
        *lock(&self.inner.chosen)
    }

    /// The PCP mapper (NAT-PMP fallback off), if PCP is in the order.
    pub fn pcp(&self) -> Option<&PcpMapper> {
        self.inner.pcp.as_ref()
    }

    /// The NAT-PMP mapper, if NAT-PMP is in the order.
    pub fn natpmp(&self) -> Option<&NatPmpMapper> {
        self.inner.natpmp.as_ref()
    }

    /// The UPnP mapper, once discovery found an IGD.
    pub fn upnp(&self) -> Option<&UpnpMapper> {
        self.inner.upnp.get().map(|m| &**m)
    }

    /// Asks every mechanism in the order at once and waits for all of
    /// them (at most [`PortMapConfig::detect_deadline`]). Always a fresh
    /// detection; later mappings use its answers.
    pub async fn detect(&self) -> Detection {
        let rx = self.start_detection();
        self.finish(rx).await
    }

    /// The last detection, waiting for it to finish; one is
    /// started if none ran yet.
    pub async fn last_detection(&self) -> Detection {
        let rx = self.current_detection(false);
        self.finish(rx).await
    }

    /// The gateway's address, for the journal.
    pub(crate) fn gateway_address(&self) -> Option<Ipv4Addr> {
        self.inner.gateway.as_ref().ok().map(|g| g.address)
    }
}

mod detect;
mod map;
#[cfg(test)]
mod panic_tests;
#[cfg(test)]
mod pinhole_tests;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
