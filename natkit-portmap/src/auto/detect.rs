//! Detection: each mechanism in the order asked at once on its own task,
//! NAT-PMP's and PCP's second window, and the report a task that ended
//! without one (a panic) leaves in its place.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{FailureKind, IntoCore, Mechanism, error_line};
use natkit_pmp::natpmp::NatPmpMapper;
use natkit_pmp::pcp::{PcpAvailability, PcpMapper};
use natkit_upnp::UpnpMapper;
use tokio::sync::watch;
use tokio::task::JoinError;
use tokio::time::Instant;

use super::{AutoMapper, DetectState, Inner, lock};
use crate::report::{Detection, MechanismError, MechanismReport};

/// A detection that found no usable mechanism is reused for this long before a
/// mapping detects again: the cleanup that starts a program and its first
/// mapping share one detection (and one UPnP discovery).
pub(crate) const DETECT_REUSE: Duration = Duration::from_secs(5);

impl AutoMapper {
    pub(super) async fn finish(&self, mut rx: watch::Receiver<DetectState>) -> Detection {
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
    pub(super) fn current_detection(&self, refresh_unusable: bool) -> watch::Receiver<DetectState> {
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

    pub(super) fn start_detection(&self) -> watch::Receiver<DetectState> {
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
