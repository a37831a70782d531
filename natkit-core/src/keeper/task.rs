//! The keeper's tokio task: runs the map, renew and delete operations and
//! decides what comes next.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Command, KeeperConfig, KeeperEvent, MappingId, RemapReason, ShutdownReport};
use crate::error::{Error, FailureKind, Result};
use crate::mapper::PortMapper;
use crate::mapping::{Mapping, MappingRequest};
use crate::mechanism::Mechanism;

/// Starts the task on the current runtime.
pub(super) fn spawn(
    mapper: Arc<dyn PortMapper>,
    config: KeeperConfig,
    events: broadcast::Sender<KeeperEvent>,
    commands: mpsc::Receiver<Command>,
) {
    let task = Task {
        mapper,
        config,
        events,
        entries: BTreeMap::new(),
        next_id: 1,
        ops: JoinSet::new(),
        epochs: BTreeMap::new(),
        last_external: None,
    };
    tokio::spawn(task.run(commands));
}

struct Entry {
    request: MappingRequest,
    mapping: Option<Mapping>,
    next_at: Option<Instant>,
    failures: u32,
    in_flight: bool,
    /// Set between `Add` and the first grant.
    reply: Option<oneshot::Sender<Result<(MappingId, Mapping)>>>,
    /// A re-map was asked for while an operation was in flight.
    remap_pending: Option<RemapReason>,
}

struct OpDone {
    id: MappingId,
    /// `None` for the deletion of a grant that landed after its entry was
    /// removed; nothing more is done with it.
    result: Option<Result<Mapping>>,
    reason: Option<RemapReason>,
}

struct Task {
    mapper: Arc<dyn PortMapper>,
    config: KeeperConfig,
    events: broadcast::Sender<KeeperEvent>,
    entries: BTreeMap<MappingId, Entry>,
    next_id: u64,
    ops: JoinSet<OpDone>,
    /// The gateway's epoch as last seen, per mechanism and address family
    /// (`true`: IPv6 pinholes), since a router's IPv4 and IPv6 servers
    /// need not share one. One gateway per keeper: a reset seen on any
    /// starts every track afresh, so it is acted on once.
    epochs: BTreeMap<(Mechanism, bool), crate::GatewayEpoch>,
    /// The router's external address as last seen on a NAT mapping (a
    /// pinhole's "external" address is this host's own).
    last_external: Option<IpAddr>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let deadline = self
                .entries
                .values()
                .filter(|e| !e.in_flight)
                .filter_map(|e| e.next_at)
                .min();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Add(request, reply)) => self.add(request, reply),
                    Some(Command::Remove(id, reply)) => {
                        let result = self.remove(id).await;
                        let _ = reply.send(result);
                    }
                    Some(Command::Current(id, reply)) => {
                        let _ = reply.send(self.entries.get(&id).and_then(|e| e.mapping.clone()));
                    }
                    Some(Command::Shutdown(reply)) => {
                        let report = self.shutdown().await;
                        let _ = reply.send(report);
                        return;
                    }
                    None => {
                        // Every handle dropped without shutdown: still clean up.
                        self.shutdown().await;
                        return;
                    }
                },
                Some(done) = self.ops.join_next(), if !self.ops.is_empty() => {
                    if let Ok(done) = done {
                        self.finish(done);
                    }
                }
                () = sleep_until_opt(deadline) => self.start_due(),
            }
        }
    }

    fn emit(&self, event: KeeperEvent) {
        tracing::debug!(?event, "lease keeper");
        let _ = self.events.send(event);
    }

    fn add(
        &mut self,
        request: MappingRequest,
        reply: oneshot::Sender<Result<(MappingId, Mapping)>>,
    ) {
        let id = MappingId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                request,
                mapping: None,
                next_at: None,
                failures: 0,
                in_flight: false,
                reply: Some(reply),
                remap_pending: None,
            },
        );
        self.start(id, None);
    }

    /// Starts a map or renew operation for `id`.
    fn start(&mut self, id: MappingId, reason: Option<RemapReason>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight = true;
        entry.next_at = None;
        let mapper = Arc::clone(&self.mapper);
        let request = entry.request.clone();
        let current = entry.mapping.clone();
        self.ops.spawn(async move {
            let result = match &current {
                Some(m) => mapper.renew(&request, m).await,
                None => mapper.map(&request).await,
            };
            OpDone {
                id,
                result: Some(result),
                reason,
            }
        });
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        let due: Vec<MappingId> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.in_flight && e.next_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let reason = self
                .entries
                .get_mut(&id)
                .and_then(|e| e.remap_pending.take());
            self.start(id, reason);
        }
    }

    fn renew_at(&self, request: &MappingRequest, mapping: &Mapping) -> Option<Instant> {
        let lifetime = if mapping.lifetime.is_zero() {
            request.lifetime
        } else {
            mapping.lifetime
        };
        if lifetime.is_zero() {
            return None; // permanent asked and granted: nothing to renew
        }
        let wait = lifetime
            .mul_f64(self.config.renew_fraction)
            .max(self.config.min_renew_interval);
        Some(Instant::from_std(mapping.obtained) + wait)
    }

    fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.config
            .retry_initial
            .saturating_mul(factor)
            .min(self.config.retry_max)
    }

    fn finish(&mut self, done: OpDone) {
        let OpDone { id, result, reason } = done;
        let Some(result) = result else { return };
        let Some(entry) = self.entries.get_mut(&id) else {
            // Removed while in flight: remove() already deleted what it
            // knew; delete what this operation may have just made.
            if let Ok(mapping) = result {
                let mapper = Arc::clone(&self.mapper);
                self.ops.spawn(async move {
                    if let Err(e) = mapper.unmap(&mapping).await {
                        tracing::warn!(%e, "deleting a grant that arrived after removal failed");
                    }
                    OpDone {
                        id,
                        result: None,
                        reason: None,
                    }
                });
            }
            return;
        };
        entry.in_flight = false;
        match result {
            Ok(mapping) => self.granted(id, mapping, reason),
            Err(error) => self.failed(id, error, reason),
        }
    }

    fn granted(&mut self, id: MappingId, mapping: Mapping, reason: Option<RemapReason>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let was_lost = entry.mapping.is_none() && entry.reply.is_none();
        // A re-map asked for while this operation was in flight: the grant
        // that just landed was made under the router's new state (its epoch
        // or address agrees with what revealed the change, or it would set
        // `trigger` below), so it is that re-map; doing another one at the
        // next renewal would be redundant.
        let pending = entry.remap_pending.take();
        entry.mapping = Some(mapping.clone());
        entry.failures = 0;
        let request = entry.request.clone();
        let reply = entry.reply.take();
        let next = self.renew_at(&request, &mapping);
        if let Some(e) = self.entries.get_mut(&id) {
            e.next_at = next;
        }
        let mut trigger = None;
        if let Some(epoch) = mapping.epoch {
            let track = (mapping.mechanism, mapping.is_pinhole());
            if self
                .epochs
                .get(&track)
                .is_some_and(|prev| !prev.is_continued_by(&epoch))
            {
                trigger = Some(RemapReason::EpochReset);
                self.epochs.clear();
            }
            self.epochs.insert(track, epoch);
        }
        let external = mapping.external.ip();
        if !mapping.is_pinhole()
            && let Some(old) = self.last_external.replace(external)
            && old != external
        {
            self.emit(KeeperEvent::ExternalAddressChanged {
                id,
                old,
                new: external,
            });
            trigger = trigger.or(Some(RemapReason::ExternalAddressChanged));
        }
        if let Some(reply) = reply {
            let _ = reply.send(Ok((id, mapping.clone())));
            self.emit(KeeperEvent::Mapped { id, mapping });
        } else {
            let reason = trigger
                .or(reason)
                .or(pending)
                .or(was_lost.then_some(RemapReason::Recovered));
            match reason {
                Some(reason) => self.emit(KeeperEvent::Remapped {
                    id,
                    mapping,
                    reason,
                }),
                None => self.emit(KeeperEvent::Renewed { id, mapping }),
            }
        }
        if let Some(reason) = trigger {
            self.remap_others(id, reason);
        }
    }

    /// The router lost state or changed address: re-make every other
    /// mapping now rather than at its own renewal time.
    fn remap_others(&mut self, except: MappingId, reason: RemapReason) {
        let now = Instant::now();
        let others: Vec<MappingId> = self
            .entries
            .keys()
            .copied()
            .filter(|i| *i != except)
            .collect();
        for id in others {
            let Some(e) = self.entries.get_mut(&id) else {
                continue;
            };
            if e.reply.is_some() {
                continue; // first map still in flight: it gets a fresh grant anyway
            }
            e.remap_pending = Some(reason);
            if !e.in_flight {
                e.next_at = Some(now);
            }
        }
        self.start_due();
    }

    /// `reason`: why the failed operation ran, if it was a re-map.
    fn failed(&mut self, id: MappingId, error: Error, reason: Option<RemapReason>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(reply) = entry.reply.take() {
            // The first attempt failed: keep nothing, tell the caller.
            self.entries.remove(&id);
            let _ = reply.send(Err(error));
            return;
        }
        if error.failure_kind() == Some(FailureKind::NoSuchMapping) && entry.mapping.is_some() {
            // The router forgot it: make it again now, not after backoff
            // until the lease runs out; and check the others at once.
            tracing::info!(%id, %error, "the router no longer has the mapping; making it again");
            entry.mapping = None;
            entry.remap_pending = Some(RemapReason::Forgotten);
            entry.next_at = Some(Instant::now());
            if reason.is_none() {
                self.remap_others(id, RemapReason::Forgotten);
            } else {
                // Already part of a sweep another mapping started.
                self.start_due();
            }
            return;
        }
        entry.failures += 1;
        let failures = entry.failures;
        let now = Instant::now();
        let expired = entry
            .mapping
            .as_ref()
            .and_then(Mapping::expires)
            .is_some_and(|end| Instant::from_std(end) <= now);
        let newly_lost = expired || entry.mapping.is_none() && failures == 1;
        if expired {
            entry.mapping = None;
        }
        let retry_in = self.backoff(failures);
        if let Some(e) = self.entries.get_mut(&id) {
            e.next_at = Some(now + retry_in);
        }
        let error = error.to_string();
        if newly_lost {
            self.emit(KeeperEvent::Lost {
                id,
                error,
                retry_in,
            });
        } else {
            self.emit(KeeperEvent::RenewFailed {
                id,
                error,
                retry_in,
            });
        }
    }

    async fn remove(&mut self, id: MappingId) -> Result<()> {
        let entry = self.entries.remove(&id).ok_or(Error::KeeperClosed)?;
        let Some(mapping) = entry.mapping else {
            return Ok(()); // nothing in force (lost); an in-flight grant is deleted in finish()
        };
        let result =
            tokio::time::timeout(self.config.shutdown_timeout, self.mapper.unmap(&mapping))
                .await
                .unwrap_or_else(|_| {
                    Err(Error::mechanism(
                        mapping.mechanism,
                        FailureKind::Timeout,
                        "delete timed out",
                    ))
                });
        match &result {
            Ok(()) => self.emit(KeeperEvent::Released { id }),
            Err(e) => self.emit(KeeperEvent::ReleaseFailed {
                id,
                error: e.to_string(),
            }),
        }
        result
    }

    async fn shutdown(&mut self) -> ShutdownReport {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        // Let in-flight operations land first: a map that completes on the
        // router after we stop listening would be left behind.
        while !self.ops.is_empty() {
            match tokio::time::timeout_at(deadline, self.ops.join_next()).await {
                Ok(Some(Ok(done))) => self.finish_for_shutdown(done),
                Ok(Some(Err(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.ops.abort_all();
        let mut unmaps = JoinSet::new();
        for (id, entry) in std::mem::take(&mut self.entries) {
            if let Some(reply) = entry.reply {
                let _ = reply.send(Err(Error::KeeperClosed));
            }
            if let Some(mapping) = entry.mapping {
                let mapper = Arc::clone(&self.mapper);
                unmaps.spawn(async move {
                    let result = tokio::time::timeout_at(deadline, mapper.unmap(&mapping)).await;
                    let result = result.unwrap_or_else(|_| {
                        Err(Error::mechanism(
                            mapping.mechanism,
                            FailureKind::Timeout,
                            "deletion did not finish within the shutdown timeout",
                        ))
                    });
                    (id, result)
                });
            }
        }
        let mut report = ShutdownReport::default();
        while let Some(joined) = unmaps.join_next().await {
            let Ok((id, result)) = joined else { continue };
            match result {
                Ok(()) => {
                    report.released.push(id);
                    self.emit(KeeperEvent::Released { id });
                }
                Err(e) => {
                    report.failed.push((id, e.to_string()));
                    self.emit(KeeperEvent::ReleaseFailed {
                        id,
                        error: e.to_string(),
                    });
                }
            }
        }
        report.released.sort();
        report.failed.sort_by_key(|(id, _)| *id);
        report
    }

    fn finish_for_shutdown(&mut self, done: OpDone) {
        let OpDone { id, result, .. } = done;
        if let (Some(entry), Some(Ok(mapping))) = (self.entries.get_mut(&id), result) {
            entry.mapping = Some(mapping);
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
