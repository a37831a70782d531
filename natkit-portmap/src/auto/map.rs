//! The mapping path: the best mechanism the detection found, the next
//! available one when a mapping fails, the unanswered ones when
//! [`PortMapConfig::map_unanswered`](crate::PortMapConfig::map_unanswered)
//! says so, and the [`PortMapper`] impl.

use std::net::IpAddr;

use async_trait::async_trait;
use natkit_core::{FailureKind, IntoCore, Mapping, MappingRequest, Mechanism, PortMapper};
use tokio::sync::watch;

use super::{AutoMapper, DetectState, PINHOLE_SKIP_NATPMP, lock};
use crate::error::{Error, Result};
use crate::report::{Detection, MechanismError};

impl AutoMapper {
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
    /// [`PortMapConfig::map_unanswered`](crate::PortMapConfig::map_unanswered),
    /// NAT-PMP and PCP when their detection got no answer at all are tried
    /// anyway, in order, on their full request plans: a detection window can
    /// be lost to loss alone, and the request's own retransmission is the
    /// verdict then.
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
    /// when [`PortMapConfig::map_unanswered`](crate::PortMapConfig::map_unanswered) is on.
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
