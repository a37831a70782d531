//! [`AutoMapper`]: PCP, NAT-PMP and UPnP IGD detected at once, the best one
//! used, behind natkit-core's [`PortMapper`].

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use natkit_core::{
    FailureKind, Gateway, IntoCore, Mapping, MappingRequest, Mechanism, PortMapper, default_gateway,
};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpAvailability, PcpConfig, PcpMapper};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};
use tokio::sync::{OnceCell, watch};
use tokio::task::JoinError;
use tokio::time::Instant;

use crate::config::PortMapConfig;

/// A detection that found no usable mechanism is reused for this long before a
/// mapping detects again: the cleanup that starts a program and its first
/// mapping share one detection (and one UPnP discovery).
pub(crate) const DETECT_REUSE: Duration = Duration::from_secs(5);
use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::report::{Detection, MechanismError, MechanismReport};
use natkit_core::error_line;

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
/// - As a [`PortMapper`] it maps through the best available mechanism in
///   [`PortMapConfig::order`] (PCP, NAT-PMP, UPnP by default), falling
///   through to the next available one when a mapping attempt fails; it
///   does not wait for slower mechanisms once a better one has answered.
///   Renew and unmap go to the mechanism that made the mapping (PCP with
///   the nonce in [`Mapping::token`]), so the
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

    async fn finish(&self, mut rx: watch::Receiver<DetectState>) -> Detection {
        // The sender lives in the detection tasks, which always finish; if they
        // were cancelled (runtime shutting down), report what arrived.
        let finished = rx
            .wait_for(|s| s.finished.is_some())
            .await
            .map(|s| s.clone());
        let state = finished.unwrap_or_else(|_| rx.borrow().clone());
        let report = self.report_of(&state);
        if let Some(m) = report.chosen() {
            lock(&self.inner.chosen).get_or_insert(m);
        }
        report
    }

    fn report_of(&self, state: &DetectState) -> Detection {
        let mechanisms: Vec<MechanismReport> = self
            .inner
            .order
            .iter()
            .filter_map(|m| state.reports.iter().find(|r| r.mechanism == *m).cloned())
            .collect();
        Detection::new(
            self.inner.gateway.as_ref().ok().map(|g| g.address),
            mechanisms,
            state
                .finished
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(state.started),
        )
    }

    /// The running or last detection; a new one when there is none, or when
    /// `refresh_unusable` and the last finished without a usable mechanism
    /// more than [`DETECT_REUSE`] ago.
    fn current_detection(&self, refresh_unusable: bool) -> watch::Receiver<DetectState> {
        {
            let guard = lock(&self.inner.detection);
            if let Some(rx) = guard.as_ref() {
                let state = rx.borrow();
                let stale = refresh_unusable
                    && state.finished.is_some_and(|f| f.elapsed() >= DETECT_REUSE)
                    && !state.reports.iter().any(|r| r.available);
                if !stale {
                    return rx.clone();
                }
            }
        }
        self.start_detection()
    }

    fn start_detection(&self) -> watch::Receiver<DetectState> {
        let started = Instant::now();
        let (tx, rx) = watch::channel(DetectState {
            started,
            reports: Vec::new(),
            finished: None,
            first_window: Vec::new(),
        });
        *lock(&self.inner.detection) = Some(rx.clone());
        let tx = Arc::new(tx);
        let deadline = started + self.inner.detect_deadline;
        let total = self.inner.order.len();
        for &m in &self.inner.order {
            let tx = Arc::clone(&tx);
            let inner = Arc::clone(&self.inner);
            let detection =
                tokio::spawn(inner.detect_windows(m, started, deadline, Arc::clone(&tx)));
            tokio::spawn(async move {
                let report = match detection.await {
                    Ok(report) => report,
                    Err(e) => ended(m, started, e, &tx),
                };
                tracing::debug!(summary = %report.summary(), "detected");
                tx.send_modify(|s| {
                    s.reports.push(report);
                    if s.reports.len() == total {
                        s.finished = Some(Instant::now());
                    }
                });
            });
        }
        if total == 0 {
            tx.send_modify(|s| s.finished = Some(started));
        }
        rx
    }

    /// Waits until the best mechanism is known: the first in the order
    /// that is available, once every better one has failed. `None`: no
    /// mechanism is available (detection has finished).
    async fn decide(
        &self,
        order: &[Mechanism],
    ) -> (Option<Mechanism>, watch::Receiver<DetectState>) {
        let mut rx = self.current_detection(true);
        let decision = |s: &DetectState| -> Option<Option<Mechanism>> {
            for m in order {
                match s.reports.iter().find(|r| r.mechanism == *m) {
                    None => return None,
                    Some(r) if r.available => return Some(Some(*m)),
                    Some(_) => {}
                }
            }
            Some(None)
        };
        let decided = rx
            .wait_for(|s| decision(s).is_some())
            .await
            .map(|s| decision(&s).flatten());
        let chosen = decided.unwrap_or_else(|_| decision(&rx.borrow()).flatten());
        (chosen, rx)
    }

    /// The mapper for `mechanism`; UPnP is discovered now if no detection
    /// found it yet (e.g. cleaning up after a restart).
    pub(crate) async fn mapper_for(&self, mechanism: Mechanism) -> Result<&dyn PortMapper> {
        let missing = || Error::NoMapperFor { mechanism };
        match mechanism {
            Mechanism::Pcp => Ok(self.inner.pcp.as_ref().ok_or_else(missing)?),
            Mechanism::NatPmp => Ok(self.inner.natpmp.as_ref().ok_or_else(missing)?),
            Mechanism::Upnp if self.inner.order.contains(&Mechanism::Upnp) => {
                // Discovery is detection's: one search for the cleanup and
                // the mapping that follows it, not one each (with no IGD,
                // map_port spent two discovery timeouts, 4 s, and twice the
                // M-SEARCH datagrams).
                if self.inner.upnp.get().is_none() {
                    let mut rx = self.current_detection(true);
                    let _ = rx
                        .wait_for(|s| {
                            s.finished.is_some()
                                || s.reports.iter().any(|r| r.mechanism == Mechanism::Upnp)
                        })
                        .await;
                }
                Ok(&**self.inner.upnp.get().ok_or_else(missing)?)
            }
            _ => Err(missing()),
        }
    }

    /// The gateway's address, for the journal.
    pub(crate) fn gateway_address(&self) -> Option<Ipv4Addr> {
        self.inner.gateway.as_ref().ok().map(|g| g.address)
    }

    async fn map_inner(&self, request: &MappingRequest) -> Result<Mapping, natkit_core::Error> {
        let order = self.order_for(request);
        let skipped = self.skipped_for(request);
        if !skipped.is_empty() {
            tracing::info!(request = ?request.internal, "IPv6 pinhole: {PINHOLE_SKIP_NATPMP}");
        }
        let Some(&fallback) = order.first() else {
            return Err(Error::AllFailed { attempts: skipped }.into_core(Mechanism::NatPmp));
        };
        let (best, rx) = self.decide(&order).await;
        let Some(best) = best else {
            let report = self.finish(rx).await;
            return self
                .map_unanswered(request, report, fallback, &order, skipped)
                .await;
        };
        let mut attempts: Vec<(Mechanism, MechanismError)> = Vec::new();
        let mut tried = vec![best];
        let mut next = Some(best);
        while let Some(m) = next {
            match self.map_with(m, request).await {
                Ok(mapping) => return Ok(mapping),
                Err(e) => {
                    tracing::info!(mechanism = %m, error = %e, "mapping failed; trying the next mechanism");
                    attempts.push((m, MechanismError::from_core(e)));
                }
            }
            // Fall through to the next available mechanism: wait for the
            // whole detection now.
            let report = self.finish(rx.clone()).await;
            next = report
                .available()
                .find(|m| order.contains(m) && !tried.contains(m));
            if let Some(m) = next {
                tried.push(m);
            }
        }
        attempts.extend(skipped);
        Err(Error::AllFailed { attempts }.into_core(best))
    }

    /// The mechanisms of the order that `request` does not go to, and
    /// why: NAT-PMP for an IPv6 pinhole.
    fn skipped_for(&self, request: &MappingRequest) -> Vec<(Mechanism, MechanismError)> {
        let skip = request.is_pinhole() && self.inner.order.contains(&Mechanism::NatPmp);
        skip.then(|| {
            let internal = match request.internal.ip() {
                IpAddr::V6(a) => a,
                IpAddr::V4(_) => std::net::Ipv6Addr::UNSPECIFIED,
            };
            let why = natkit_pmp::Error::NatPmpNoIpv6 { internal };
            let why = MechanismError::typed(
                PINHOLE_SKIP_NATPMP.to_owned(),
                why.into_core(Mechanism::NatPmp),
            );
            (Mechanism::NatPmp, why)
        })
        .into_iter()
        .collect()
    }

    /// No mechanism is available. With
    /// [`PortMapConfig::map_unanswered`], NAT-PMP and PCP when their detection
    /// got no answer at all are tried anyway, in order, on their full
    /// request plans: a detection window can be lost to loss alone, and the
    /// request's own retransmission is the verdict then.
    async fn map_unanswered(
        &self,
        request: &MappingRequest,
        report: Detection,
        fallback: Mechanism,
        order: &[Mechanism],
        skipped: Vec<(Mechanism, MechanismError)>,
    ) -> Result<Mapping, natkit_core::Error> {
        let mut unanswered = self.unanswered(&report);
        unanswered.retain(|m| order.contains(m));
        if unanswered.is_empty() && !skipped.is_empty() {
            let mut attempts: Vec<(Mechanism, MechanismError)> = report
                .mechanisms
                .iter()
                .filter(|r| order.contains(&r.mechanism))
                .filter_map(|r| r.error.clone().map(|e| (r.mechanism, e)))
                .collect();
            attempts.extend(skipped);
            return Err(Error::AllFailed { attempts }.into_core(fallback));
        }
        if unanswered.is_empty() {
            return Err(Error::NoMechanism {
                report: Box::new(report),
            }
            .into_core(fallback));
        }
        let mut attempts: Vec<(Mechanism, MechanismError)> = Vec::new();
        for m in unanswered.iter().copied() {
            tracing::info!(mechanism = %m, "no answer to detection; mapping on the full request plan");
            match self.map_with(m, request).await {
                Ok(mapping) => return Ok(mapping),
                Err(e) => attempts.push((m, MechanismError::from_core(e))),
            }
        }
        attempts.extend(skipped);
        Err(Error::AllFailed { attempts }.into_core(unanswered[0]))
    }

    /// The NAT-PMP and PCP mechanisms whose detection got no answer, in order,
    /// when [`PortMapConfig::map_unanswered`] is on.
    fn unanswered(&self, report: &Detection) -> Vec<Mechanism> {
        if !self.inner.map_unanswered {
            return Vec::new();
        }
        report
            .mechanisms
            .iter()
            .filter(|r| matches!(r.mechanism, Mechanism::Pcp | Mechanism::NatPmp))
            .filter(|r| !r.responded && !r.available)
            .filter(|r| {
                r.error
                    .as_ref()
                    .is_some_and(|e| e.kind == FailureKind::Timeout)
            })
            .map(|r| r.mechanism)
            .collect()
    }

    async fn map_with(
        &self,
        m: Mechanism,
        request: &MappingRequest,
    ) -> natkit_core::Result<Mapping> {
        let mapper = self.mapper_for(m).await.map_err(|e| e.into_core(m))?;
        let mapping = mapper.map(request).await?;
        if let Some(journal) = &self.inner.journal
            && let Err(e) = journal.record(self.gateway_address(), &mapping)
        {
            // Unrecorded, a crash would leave it behind: take it back.
            if let Err(u) = mapper.unmap(&mapping).await {
                tracing::warn!(error = %u, "could not delete a mapping the journal did not take");
            }
            return Err(e.into_core(m));
        }
        *lock(&self.inner.chosen) = Some(mapping.mechanism);
        Ok(mapping)
    }
}

/// A mechanism's detection task that ended without a report: it panicked (a
/// bug of this host's, in natkit or a mapper) or was cancelled. It is that
/// mechanism's failure, [`FailureKind::Local`] with the [`JoinError`] as the
/// typed source, as the lease keeper reports a mapper's panic: left out,
/// the report would lack the mechanism and a mapping would wait for it in
/// vain, then find no mechanism even when a worse one was available. Not
/// re-raised: every caller waiting on this detection shares its report.
fn ended(
    m: Mechanism,
    started: Instant,
    e: JoinError,
    tx: &watch::Sender<DetectState>,
) -> MechanismReport {
    tracing::error!(mechanism = %m, %e, "a detection task ended without a report");
    // Its sibling (NAT-PMP or PCP) waits for every first window to end.
    tx.send_modify(|s| {
        if !s.first_window.iter().any(|(w, _)| *w == m) {
            s.first_window.push((m, false));
        }
    });
    let error = natkit_core::Error::mechanism(m, FailureKind::Local, e);
    MechanismReport::failed(
        m,
        false,
        MechanismError::from_core(error),
        started.elapsed(),
    )
}

impl Inner {
    /// `m`'s detection: its first window, and a second when
    /// [`another_window`](Self::another_window) says so.
    async fn detect_windows(
        self: Arc<Self>,
        m: Mechanism,
        started: Instant,
        deadline: Instant,
        tx: Arc<watch::Sender<DetectState>>,
    ) -> MechanismReport {
        let mut report = self.detect_bounded(m, started, deadline).await;
        tx.send_modify(|s| s.first_window.push((m, report.responded)));
        if let Some(why) = self.another_window(m, &report, &tx).await {
            let again = Instant::now() + self.detect_deadline;
            report = self.detect_bounded(m, started, again).await;
            let silent = !report.responded;
            if let Some(e) = report
                .error
                .as_mut()
                .filter(|e| silent && e.kind == FailureKind::Timeout)
            {
                e.message.push_str(why.note());
            }
        }
        report
    }

    /// [`detect_one`](Self::detect_one) within `deadline`. PCP's address
    /// query deletes the mapping it made on its delete plan, past the
    /// deadline if need be: cut short, it would leave that mapping on the
    /// router.
    async fn detect_bounded(
        &self,
        m: Mechanism,
        started: Instant,
        deadline: Instant,
    ) -> MechanismReport {
        let bound = match (m, &self.pcp) {
            (Mechanism::Pcp, Some(pcp)) => deadline + delete_length(pcp),
            _ => deadline,
        };
        match tokio::time::timeout_at(bound, self.detect_one(m, started, deadline)).await {
            Ok(r) => r,
            Err(_) => MechanismReport::failed(
                m,
                false,
                MechanismError::new(
                    FailureKind::Timeout,
                    format!(
                        "no answer within the detection deadline of {} ms",
                        self.detect_deadline.as_millis()
                    ),
                ),
                started.elapsed(),
            ),
        }
    }

    /// Why NAT-PMP's or PCP's "no answer" in the first window should get a
    /// second one, if it should: waits until every mechanism's first
    /// window has ended.
    async fn another_window(
        &self,
        m: Mechanism,
        report: &MechanismReport,
        tx: &watch::Sender<DetectState>,
    ) -> Option<AnotherWindow> {
        let sibling = match m {
            Mechanism::Pcp => Mechanism::NatPmp,
            Mechanism::NatPmp => Mechanism::Pcp,
            _ => return None,
        };
        let unanswered = !report.responded
            && report
                .error
                .as_ref()
                .is_some_and(|e| e.kind == FailureKind::Timeout);
        if !unanswered {
            return None;
        }
        let mut rx = tx.subscribe();
        let limit = Instant::now()
            + self.detect_deadline
            + self.pcp.as_ref().map_or(Duration::ZERO, delete_length);
        let all = self.order.len();
        let seen = tokio::time::timeout_at(limit, rx.wait_for(|s| s.first_window.len() >= all))
            .await
            .ok()?
            .ok()?;
        if seen.first_window.contains(&(sibling, true)) {
            Some(AnotherWindow::SiblingAnswered)
        } else if !self.map_unanswered && seen.first_window.iter().all(|(_, r)| !r) {
            // A router that refuses the port (ICMP) is absent at once; one
            // that drops everything costs this second window, so that loss
            // alone rarely makes "no port mapping protocol".
            Some(AnotherWindow::NothingAnswered)
        } else {
            None
        }
    }

    async fn detect_one(
        &self,
        m: Mechanism,
        started: Instant,
        deadline: Instant,
    ) -> MechanismReport {
        #[cfg(test)]
        if self.detect_panics == Some(m) {
            panic!("a bug in {m}'s detection");
        }
        let gateway_error = |e: &Arc<natkit_core::Error>| {
            MechanismReport::failed(
                m,
                false,
                MechanismError {
                    error: Some(Arc::clone(e)),
                    ..MechanismError::new(FailureKind::Network, error_line(&**e))
                },
                started.elapsed(),
            )
        };
        match m {
            Mechanism::Pcp => match (&self.pcp, &self.gateway) {
                (Some(pcp), _) => detect_pcp(pcp, started, deadline).await,
                (None, Err(e)) => gateway_error(e),
                (None, Ok(_)) => unreachable_report(m, started),
            },
            Mechanism::NatPmp => match (&self.natpmp, &self.gateway) {
                (Some(n), _) => detect_natpmp(n, started).await,
                (None, Err(e)) => gateway_error(e),
                (None, Ok(_)) => unreachable_report(m, started),
            },
            Mechanism::Upnp => match &self.gateway {
                Err(e) => gateway_error(e),
                Ok(_) => self.detect_upnp(started).await,
            },
            _ => unreachable_report(m, started),
        }
    }

    async fn detect_upnp(&self, started: Instant) -> MechanismReport {
        let m = Mechanism::Upnp;
        let igd = match natkit_upnp::discover(&self.upnp_config).await {
            Ok(igd) => igd,
            Err(e) => {
                let responded = !matches!(
                    e,
                    natkit_upnp::Error::NoResponse { .. }
                        | natkit_upnp::Error::NoDefaultGateway { .. }
                        | natkit_upnp::Error::Socket { .. }
                );
                return MechanismReport::failed(
                    m,
                    responded,
                    MechanismError::typed(error_line(&e), e.into()),
                    started.elapsed(),
                );
            }
        };
        let mut detail = format!(
            "IGD {:?} at {} ({})",
            igd.display_name(),
            igd.location(),
            igd.service().service_type()
        );
        // A router with several WAN connections: say which were not used.
        for other in igd.other_connections() {
            detail.push_str(&format!("; not used: {other}"));
        }
        let mapper = Arc::new(UpnpMapper::new(igd));
        let _ = self.upnp.set(Arc::clone(&mapper));
        // Discovery asked for it with the status, at once; under loss a
        // second exchange here could cost the detection deadline.
        let external_ip = match mapper.igd().discovered_external_ip() {
            Some(ip) => Ok(ip),
            None => mapper.igd().external_ip().await,
        };
        let mut report = match external_ip {
            Ok(ip) if !ip.is_unspecified() => MechanismReport::available(m, ip, started.elapsed()),
            // miniupnpd with a reserved WAN address says Connected and
            // then answers GetExternalIPAddress with an empty string:
            // upnpc calls that "(not connected?) IGD", and so do we.
            Ok(ip) => MechanismReport::failed(
                m,
                true,
                MechanismError::new(
                    FailureKind::NotConnected,
                    format!("the IGD reports Connected but its external address is {ip}"),
                ),
                started.elapsed(),
            ),
            Err(e) => MechanismReport::failed(
                m,
                true,
                MechanismError {
                    kind: FailureKind::NotConnected,
                    message: format!(
                        "the IGD reports Connected but has no external address: {}",
                        error_line(&e)
                    ),
                    error: Some(Arc::new(e.into())),
                },
                started.elapsed(),
            ),
        };
        report.detail = Some(detail);
        report
    }
}

/// Why NAT-PMP or PCP tries a second window.
#[derive(Debug, Clone, Copy)]
enum AnotherWindow {
    /// The other of the two answered on the same server port, and a server
    /// of either answers the other's version (RFC 6887 §9, if only with
    /// UNSUPP_VERSION): the silence was loss.
    SiblingAnswered,
    /// No mechanism answered at all: the router has none, or loss took
    /// every datagram of the window.
    NothingAnswered,
}

impl AnotherWindow {
    /// What a second timeout's message adds.
    fn note(self) -> &'static str {
        match self {
            AnotherWindow::SiblingAnswered => {
                " (twice; the server answered the other protocol on the same port, so these \
                 requests were most likely lost)"
            }
            AnotherWindow::NothingAnswered => " (in two windows, with nothing else answering)",
        }
    }
}

/// The longest PCP's delete can take (a mapper refuses unbounded plans).
fn delete_length(pcp: &PcpMapper) -> Duration {
    pcp.config().delete.longest().unwrap_or_default()
}

fn unreachable_report(m: Mechanism, started: Instant) -> MechanismReport {
    MechanismReport::failed(
        m,
        false,
        MechanismError::new(FailureKind::Unsupported, "not a port mapping mechanism"),
        started.elapsed(),
    )
}

/// PCP's detection: ANNOUNCE on the detection plan, then the external address
/// from a short-lived MAP in what is left of the window. A server that
/// answered ANNOUNCE is available even when the MAP's answers are all lost
/// in that time (its mapping requests then follow the full plan).
async fn detect_pcp(pcp: &PcpMapper, started: Instant, deadline: Instant) -> MechanismReport {
    let m = Mechanism::Pcp;
    let failed = |responded: bool, e: natkit_pmp::Error| {
        MechanismReport::failed(
            m,
            responded,
            MechanismError::typed(error_line(&e), e.into_core(m)),
            started.elapsed(),
        )
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let epoch = match pcp
        .announce_with(pcp.config().detect.bounded_by(left()))
        .await
    {
        Ok(PcpAvailability::Pcp { epoch, .. }) => epoch.server_seconds,
        Ok(PcpAvailability::NatPmpOnly { .. }) => {
            return MechanismReport::failed(
                m,
                false,
                MechanismError::new(FailureKind::Unavailable, "the server speaks only NAT-PMP"),
                started.elapsed(),
            );
        }
        Err(e) => {
            let responded = matches!(e, natkit_pmp::Error::PcpResult { .. });
            return failed(responded, e);
        }
    };
    let window = left();
    let address = if window.is_zero() {
        None
    } else {
        Some(
            pcp.public_address_with(pcp.config().retransmit.bounded_by(window))
                .await,
        )
    };
    let mut report = match address {
        Some(Ok(ip)) => MechanismReport::available(m, ip, started.elapsed()),
        Some(Err(natkit_pmp::Error::Timeout { sends, .. })) => {
            let mut r = MechanismReport::answered(m, started.elapsed());
            r.detail = Some(format!(
                "external address not learned: {sends} MAP request(s) unanswered within the detection window"
            ));
            r
        }
        None => MechanismReport::answered(m, started.elapsed()),
        Some(Err(e)) => failed(true, e),
    };
    report.epoch = Some(epoch);
    let server = format!("PCP server {}", pcp.server());
    report.detail = Some(match report.detail.take() {
        Some(d) => format!("{server}; {d}"),
        None => server,
    });
    report
}

async fn detect_natpmp(natpmp: &NatPmpMapper, started: Instant) -> MechanismReport {
    let m = Mechanism::NatPmp;
    let mut report = match natpmp.detect().await {
        Ok(a) if !a.address.is_unspecified() => {
            let mut r = MechanismReport::available(m, IpAddr::V4(a.address), started.elapsed());
            r.epoch = Some(a.epoch.server_seconds);
            r
        }
        Ok(a) => {
            let mut r = MechanismReport::failed(
                m,
                true,
                MechanismError::new(
                    FailureKind::NotConnected,
                    "the gateway reports external address 0.0.0.0",
                ),
                started.elapsed(),
            );
            r.epoch = Some(a.epoch.server_seconds);
            r
        }
        Err(e) => {
            let epoch = match &e {
                natkit_pmp::Error::NatPmpResult { epoch, .. } => Some(*epoch),
                _ => None,
            };
            let mut r = MechanismReport::failed(
                m,
                epoch.is_some(),
                MechanismError::typed(error_line(&e), e.into_core(m)),
                started.elapsed(),
            );
            r.epoch = epoch;
            r
        }
    };
    report.detail = Some(format!("NAT-PMP server {}", natpmp.server()));
    report
}

#[cfg(test)]
mod panic_tests;
#[cfg(test)]
mod pinhole_tests;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl PortMapper for AutoMapper {
    /// The mechanism of the last mapping or detection, else the first in the
    /// order. Each mapping says which mechanism made it.
    fn mechanism(&self) -> Mechanism {
        self.chosen()
            .or_else(|| self.inner.order.first().copied())
            .unwrap_or(Mechanism::Pcp)
    }

    async fn external_address(&self) -> natkit_core::Result<IpAddr> {
        let fallback = self.mechanism();
        let (best, rx) = self.decide(&self.inner.order).await;
        let Some(best) = best else {
            let report = self.finish(rx).await;
            let mut attempts: Vec<(Mechanism, MechanismError)> = Vec::new();
            for m in self.unanswered(&report) {
                let mapper = self.mapper_for(m).await.map_err(|e| e.into_core(m))?;
                match mapper.external_address().await {
                    Ok(ip) => return Ok(ip),
                    Err(e) => attempts.push((m, MechanismError::from_core(e))),
                }
            }
            if let Some((m, _)) = attempts.first() {
                let m = *m;
                return Err(Error::AllFailed { attempts }.into_core(m));
            }
            return Err(Error::NoMechanism {
                report: Box::new(report),
            }
            .into_core(fallback));
        };
        let mapper = self.mapper_for(best).await.map_err(|e| e.into_core(best))?;
        mapper.external_address().await
    }

    async fn map(&self, request: &MappingRequest) -> natkit_core::Result<Mapping> {
        self.map_inner(request).await
    }

    async fn renew(
        &self,
        request: &MappingRequest,
        current: &Mapping,
    ) -> natkit_core::Result<Mapping> {
        let m = current.mechanism;
        let mapper = self.mapper_for(m).await.map_err(|e| e.into_core(m))?;
        let renewed = mapper.renew(request, current).await?;
        if let Some(journal) = &self.inner.journal
            && let Err(e) = journal.replace(self.gateway_address(), current, &renewed)
        {
            tracing::warn!(error = %e, "journal: could not record a renewal");
        }
        Ok(renewed)
    }

    async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
        let m = mapping.mechanism;
        let mapper = self.mapper_for(m).await.map_err(|e| e.into_core(m))?;
        mapper.unmap(mapping).await?;
        if let Some(journal) = &self.inner.journal
            && let Err(e) = journal.forget(mapping)
        {
            tracing::warn!(error = %e, "journal: could not forget a deleted mapping");
        }
        Ok(())
    }
}
