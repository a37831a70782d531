//! The lease keeper: holds an application's mappings through any
//! [`PortMapper`] for as long as they are wanted, and removes them after.
//!
//! - Each mapping is renewed at half its granted lifetime (configurable).
//!   A permanent grant (lifetime 0, UPnP routers that only do permanent
//!   leases) is refreshed at half the *requested* lifetime, so that a router
//!   that lost it (reboot) gets it back.
//! - When a renewal shows the gateway's epoch did not continue (RFC 6887
//!   §8.5: the router rebooted or its daemon restarted) or its external
//!   address changed, every other mapping on the same keeper is re-made at
//!   once instead of waiting for its own renewal.
//! - When the router stops answering, renewals are retried with exponential
//!   backoff; a mapping whose lease ran out is reported lost and re-made as
//!   soon as the router answers again.
//! - [`LeaseKeeper::shutdown`] deletes every mapping the keeper made, all at
//!   once, within a bounded time. Dropping the keeper without calling it
//!   still deletes them from the keeper's task, as long as the tokio runtime
//!   keeps running.
//!
//! Time comes from tokio's clock, so tests drive the keeper on a paused,
//! simulated clock (`tokio::time::pause`), and mappers stamp
//! [`Mapping::obtained`] with `tokio::time::Instant::now().into_std()`
//! (identical to `std::time::Instant::now()` outside paused tests).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Error, FailureKind, Result};
use crate::mapper::PortMapper;
use crate::mapping::{Mapping, MappingRequest};

/// How the keeper times renewals, retries and shutdown.
#[derive(Debug, Clone, PartialEq)]
pub struct KeeperConfig {
    /// Renew when this fraction of the granted lifetime has passed
    /// (RFC 6886 and RFC 6887 suggest one half).
    pub renew_fraction: f64,
    /// Never renew more often than this, whatever the router granted.
    pub min_renew_interval: Duration,
    /// The first retry after a failed renewal.
    pub retry_initial: Duration,
    /// Retries back off by doubling up to this interval.
    pub retry_max: Duration,
    /// The most time [`LeaseKeeper::shutdown`] spends deleting mappings.
    pub shutdown_timeout: Duration,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        KeeperConfig {
            renew_fraction: 0.5,
            min_renew_interval: Duration::from_secs(2),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// The keeper's handle for one mapping it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MappingId(u64);

impl fmt::Display for MappingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why the keeper made a mapping again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemapReason {
    /// The gateway's epoch did not continue: it rebooted or its mapping
    /// daemon restarted, losing its mappings.
    EpochReset,
    /// The router's external address changed.
    ExternalAddressChanged,
    /// The mapping had been lost (the router stopped answering past the
    /// lease) and the router answers again.
    Recovered,
}

/// What the keeper did or saw.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KeeperEvent {
    /// A new mapping is in force.
    Mapped {
        /// The keeper's handle.
        id: MappingId,
        /// The mapping.
        mapping: Mapping,
    },
    /// A mapping was renewed with nothing of note.
    Renewed {
        /// The keeper's handle.
        id: MappingId,
        /// The mapping now in force.
        mapping: Mapping,
    },
    /// A mapping was made again.
    Remapped {
        /// The keeper's handle.
        id: MappingId,
        /// The mapping now in force.
        mapping: Mapping,
        /// Why.
        reason: RemapReason,
    },
    /// The router's external address changed.
    ExternalAddressChanged {
        /// The mapping on which it was seen.
        id: MappingId,
        /// The address before.
        old: IpAddr,
        /// The address now.
        new: IpAddr,
    },
    /// A renewal failed; the mapping may still be in force until its lease
    /// ends. The keeper retries.
    RenewFailed {
        /// The keeper's handle.
        id: MappingId,
        /// What went wrong.
        error: String,
        /// When the keeper tries again.
        retry_in: Duration,
    },
    /// The lease ended without a successful renewal: the mapping is gone.
    /// The keeper keeps trying to make it again.
    Lost {
        /// The keeper's handle.
        id: MappingId,
        /// The last error.
        error: String,
        /// When the keeper tries again.
        retry_in: Duration,
    },
    /// A mapping was deleted on request or at shutdown.
    Released {
        /// The keeper's handle.
        id: MappingId,
    },
    /// Deleting a mapping failed or timed out (it may linger on the router
    /// until its lease ends).
    ReleaseFailed {
        /// The keeper's handle.
        id: MappingId,
        /// What went wrong.
        error: String,
    },
}

/// What [`LeaseKeeper::shutdown`] achieved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Mappings deleted.
    pub released: Vec<MappingId>,
    /// Mappings whose deletion failed or timed out, with the reason.
    pub failed: Vec<(MappingId, String)>,
}

enum Command {
    Add(
        MappingRequest,
        oneshot::Sender<Result<(MappingId, Mapping)>>,
    ),
    Remove(MappingId, oneshot::Sender<Result<()>>),
    Current(MappingId, oneshot::Sender<Option<Mapping>>),
    Shutdown(oneshot::Sender<ShutdownReport>),
}

/// Holds mappings through a [`PortMapper`]; see the [module docs](crate::keeper).
///
/// Events arrive on the receiver returned by [`LeaseKeeper::new`]; the
/// channel is unbounded (events are a handful per renewal period) and the
/// keeper goes on working if it is dropped.
pub struct LeaseKeeper {
    commands: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseKeeper").finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Starts a keeper on the current tokio runtime.
    pub fn new(
        mapper: Arc<dyn PortMapper>,
        config: KeeperConfig,
    ) -> (LeaseKeeper, mpsc::UnboundedReceiver<KeeperEvent>) {
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let task = Task {
            mapper,
            config,
            events,
            entries: BTreeMap::new(),
            next_id: 1,
            ops: JoinSet::new(),
            last_epoch: None,
            last_external: None,
        };
        tokio::spawn(task.run(rx));
        (LeaseKeeper { commands }, events_rx)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| Error::KeeperClosed)?;
        rx.await.map_err(|_| Error::KeeperClosed)
    }

    /// Makes a mapping and keeps it until [`remove`](Self::remove) or
    /// shutdown. Fails, and keeps nothing, if the first attempt fails.
    pub async fn add(&self, request: MappingRequest) -> Result<(MappingId, Mapping)> {
        self.ask(|tx| Command::Add(request, tx)).await?
    }

    /// Deletes a mapping now and stops keeping it.
    pub async fn remove(&self, id: MappingId) -> Result<()> {
        self.ask(|tx| Command::Remove(id, tx)).await?
    }

    /// The mapping now in force for `id`, if any (none while it is lost).
    pub async fn current(&self, id: MappingId) -> Result<Option<Mapping>> {
        self.ask(|tx| Command::Current(id, tx)).await
    }

    /// Deletes every mapping, waiting at most
    /// [`KeeperConfig::shutdown_timeout`], and stops the keeper.
    pub async fn shutdown(self) -> ShutdownReport {
        self.ask(Command::Shutdown).await.unwrap_or_default()
    }
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
    events: mpsc::UnboundedSender<KeeperEvent>,
    entries: BTreeMap<MappingId, Entry>,
    next_id: u64,
    ops: JoinSet<OpDone>,
    /// The gateway's epoch and external address as last seen on any
    /// mapping: one gateway per keeper, so a reset is noticed once.
    last_epoch: Option<crate::GatewayEpoch>,
    last_external: Option<IpAddr>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
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
            Err(error) => self.failed(id, error),
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
            if self
                .last_epoch
                .is_some_and(|prev| !prev.is_continued_by(&epoch))
            {
                trigger = Some(RemapReason::EpochReset);
            }
            self.last_epoch = Some(epoch);
        }
        let external = mapping.external.ip();
        if let Some(old) = self.last_external.replace(external)
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

    fn failed(&mut self, id: MappingId, error: Error) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if let Some(reply) = entry.reply.take() {
            // The first attempt failed: keep nothing, tell the caller.
            self.entries.remove(&id);
            let _ = reply.send(Err(error));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GatewayEpoch, Mechanism, Protocol};
    use std::net::{Ipv4Addr, SocketAddr};
    use std::sync::Mutex;

    /// A router with a mapping table, an epoch clock that restarts on
    /// reboot, and switchable failure modes.
    struct FakeRouter {
        state: Mutex<RouterState>,
    }

    struct RouterState {
        booted: Instant,
        external: Ipv4Addr,
        lifetime: Duration,
        down: bool,
        hang_on_delete: bool,
        /// How long a renewal takes before the router answers.
        renew_delay: Duration,
        /// (protocol, internal port) → external port
        table: BTreeMap<(Protocol, u16), u16>,
        calls: Vec<(&'static str, u16, Duration)>,
        started: Instant,
    }

    impl FakeRouter {
        fn new(lifetime: Duration) -> Arc<FakeRouter> {
            let now = Instant::now();
            Arc::new(FakeRouter {
                state: Mutex::new(RouterState {
                    booted: now - Duration::from_secs(1000),
                    external: Ipv4Addr::new(198, 51, 100, 1),
                    lifetime,
                    down: false,
                    hang_on_delete: false,
                    renew_delay: Duration::ZERO,
                    table: BTreeMap::new(),
                    calls: Vec::new(),
                    started: now,
                }),
            })
        }

        fn with<T>(&self, f: impl FnOnce(&mut RouterState) -> T) -> T {
            f(&mut self.state.lock().unwrap())
        }

        fn reboot(&self) {
            self.with(|s| {
                s.booted = Instant::now();
                s.table.clear();
            });
        }

        fn calls(&self, kind: &str) -> Vec<Duration> {
            self.with(|s| {
                s.calls
                    .iter()
                    .filter(|c| c.0 == kind)
                    .map(|c| c.2)
                    .collect()
            })
        }

        fn grant(&self, kind: &'static str, request: &MappingRequest) -> Result<Mapping> {
            self.with(|s| {
                let now = Instant::now();
                s.calls
                    .push((kind, request.internal.port(), now - s.started));
                if s.down {
                    return Err(Error::mechanism(
                        Mechanism::NatPmp,
                        FailureKind::Timeout,
                        "no answer",
                    ));
                }
                let ext = request.external_port.unwrap_or(request.internal.port());
                s.table
                    .insert((request.protocol, request.internal.port()), ext);
                Ok(Mapping::new(
                    Mechanism::NatPmp,
                    request.protocol,
                    SocketAddr::new(s.external.into(), ext),
                    request.internal,
                    s.lifetime,
                    now.into_std(),
                )
                .with_epoch(Some(GatewayEpoch {
                    server_seconds: (now - s.booted).as_secs() as u32,
                    observed_at: now.into_std(),
                })))
            })
        }
    }

    #[async_trait::async_trait]
    impl PortMapper for FakeRouter {
        fn mechanism(&self) -> Mechanism {
            Mechanism::NatPmp
        }
        async fn external_address(&self) -> Result<IpAddr> {
            Ok(self.with(|s| s.external.into()))
        }
        async fn map(&self, request: &MappingRequest) -> Result<Mapping> {
            self.grant("map", request)
        }
        async fn renew(&self, request: &MappingRequest, _current: &Mapping) -> Result<Mapping> {
            let delay = self.with(|s| s.renew_delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.grant("renew", request)
        }
        async fn unmap(&self, mapping: &Mapping) -> Result<()> {
            let hang = self.with(|s| {
                let started = s.started;
                s.calls
                    .push(("unmap", mapping.internal.port(), Instant::now() - started));
                s.hang_on_delete
            });
            if hang {
                std::future::pending::<()>().await;
            }
            self.with(|s| s.table.remove(&(mapping.protocol, mapping.internal.port())));
            Ok(())
        }
    }

    fn request(port: u16, lifetime_s: u64) -> MappingRequest {
        MappingRequest::new(
            Protocol::Udp,
            SocketAddr::new(Ipv4Addr::new(192, 168, 77, 2).into(), port),
        )
        .with_lifetime(Duration::from_secs(lifetime_s))
    }

    fn keeper(router: &Arc<FakeRouter>) -> (LeaseKeeper, mpsc::UnboundedReceiver<KeeperEvent>) {
        LeaseKeeper::new(
            Arc::clone(router) as Arc<dyn PortMapper>,
            KeeperConfig::default(),
        )
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<KeeperEvent>) -> Vec<KeeperEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    async fn advance_to(start: Instant, secs: u64) {
        tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
        // Let the keeper task run what became due.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn renews_at_half_the_granted_lifetime() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (id, m) = keeper.add(request(5000, 7200)).await.unwrap();
        assert_eq!(m.external.port(), 5000);
        assert!(matches!(drain(&mut events)[..], [KeeperEvent::Mapped { id: i, .. }] if i == id));
        advance_to(t0, 59).await;
        assert!(router.calls("renew").is_empty());
        advance_to(t0, 61).await;
        assert_eq!(router.calls("renew"), [Duration::from_secs(60)]);
        assert!(matches!(
            drain(&mut events)[..],
            [KeeperEvent::Renewed { .. }]
        ));
        advance_to(t0, 181).await;
        assert_eq!(
            router.calls("renew"),
            [60, 120, 180].map(Duration::from_secs)
        );
        let report = keeper.shutdown().await;
        assert_eq!(report.released, [id]);
        assert!(router.with(|s| s.table.is_empty()));
    }

    #[tokio::test(start_paused = true)]
    async fn epoch_reset_remaps_every_mapping_at_once() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
        advance_to(t0, 30).await;
        let (b, _) = keeper.add(request(6000, 7200)).await.unwrap();
        drain(&mut events);
        advance_to(t0, 50).await;
        router.reboot(); // the router forgets both mappings
        assert!(router.with(|s| s.table.is_empty()));
        advance_to(t0, 61).await;
        // a's renewal at 60 s sees the new epoch; b is re-made at once
        // instead of at its own renewal time (90 s).
        assert_eq!(router.calls("renew"), [60, 60].map(Duration::from_secs));
        assert_eq!(router.with(|s| s.table.len()), 2);
        let evs = drain(&mut events);
        let reasons: Vec<(MappingId, RemapReason)> = evs
            .iter()
            .filter_map(|e| match e {
                KeeperEvent::Remapped { id, reason, .. } => Some((*id, *reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
        );
        keeper.shutdown().await;
    }

    /// Two renewals in flight when the first reveals a reboot: the second
    /// was answered under the new epoch, so it is reported as the re-map
    /// and not repeated at the next renewal.
    #[tokio::test(start_paused = true)]
    async fn renewal_in_flight_during_reset_counts_as_the_remap() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
        let (b, _) = keeper.add(request(6000, 7200)).await.unwrap();
        drain(&mut events);
        router.with(|s| s.renew_delay = Duration::from_secs(1));
        advance_to(t0, 50).await;
        router.reboot();
        // Both renewals start at 60 s and are answered at 61 s.
        advance_to(t0, 62).await;
        let mut reasons: Vec<(MappingId, RemapReason)> = drain(&mut events)
            .iter()
            .filter_map(|e| match e {
                KeeperEvent::Remapped { id, reason, .. } => Some((*id, *reason)),
                _ => None,
            })
            .collect();
        reasons.sort_by_key(|r| r.0);
        assert_eq!(
            reasons,
            [(a, RemapReason::EpochReset), (b, RemapReason::EpochReset)]
        );
        assert_eq!(router.with(|s| s.table.len()), 2);
        // No redundant re-map: the next calls are the regular renewals at
        // half the lifetime after the grants (61 + 60 s).
        // (The fake router logs a renewal when it answers: at 61 s.)
        advance_to(t0, 119).await;
        assert_eq!(router.calls("renew"), [61, 61].map(Duration::from_secs));
        assert!(drain(&mut events).is_empty());
        keeper.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn backs_off_reports_loss_and_recovers() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (id, _) = keeper.add(request(5000, 7200)).await.unwrap();
        drain(&mut events);
        router.with(|s| s.down = true);
        advance_to(t0, 119).await;
        // Renewal at 60 s, then retries 1, 2, 4, 8, 16 s apart.
        assert_eq!(
            router.calls("renew"),
            [60, 61, 63, 67, 75, 91].map(Duration::from_secs)
        );
        let evs = drain(&mut events);
        assert_eq!(evs.len(), 6);
        assert!(
            evs.iter()
                .all(|e| matches!(e, KeeperEvent::RenewFailed { .. }))
        );
        // The next retry (91 + 32 = 123 s) is past the lease: lost.
        advance_to(t0, 124).await;
        assert!(matches!(
            drain(&mut events)[..],
            [KeeperEvent::Lost { id: i, retry_in, .. }] if i == id && retry_in == Duration::from_secs(64)
        ));
        assert_eq!(keeper.current(id).await.unwrap(), None);
        // The router comes back; the next attempt (187 s) re-makes the
        // mapping with a fresh map request.
        router.with(|s| s.down = false);
        advance_to(t0, 188).await;
        assert_eq!(router.calls("map"), [0, 187].map(Duration::from_secs));
        assert!(matches!(
            drain(&mut events)[..],
            [KeeperEvent::Remapped {
                reason: RemapReason::Recovered,
                ..
            }]
        ));
        assert!(keeper.current(id).await.unwrap().is_some());
        keeper.shutdown().await;
        assert!(router.with(|s| s.table.is_empty()));
    }

    #[tokio::test(start_paused = true)]
    async fn external_address_change_is_reported_and_remaps_others() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
        advance_to(t0, 20).await;
        keeper.add(request(6000, 7200)).await.unwrap();
        drain(&mut events);
        router.with(|s| s.external = Ipv4Addr::new(198, 51, 100, 99));
        advance_to(t0, 61).await;
        let evs = drain(&mut events);
        assert!(evs.iter().any(|e| matches!(e,
            KeeperEvent::ExternalAddressChanged { id, new, .. }
                if *id == a && *new == IpAddr::from(Ipv4Addr::new(198, 51, 100, 99)))));
        assert_eq!(router.calls("renew"), [60, 60].map(Duration::from_secs));
        keeper.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_grants_are_refreshed_on_our_schedule() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::ZERO); // "only permanent leases"
        let (keeper, _events) = keeper(&router);
        keeper.add(request(5000, 600)).await.unwrap();
        advance_to(t0, 601).await;
        assert_eq!(router.calls("renew"), [300, 600].map(Duration::from_secs));
        keeper.shutdown().await;
        assert!(router.with(|s| s.table.is_empty()));
    }

    #[tokio::test(start_paused = true)]
    async fn first_failure_is_returned_and_nothing_kept() {
        let router = FakeRouter::new(Duration::from_secs(120));
        router.with(|s| s.down = true);
        let (keeper, mut events) = keeper(&router);
        let err = keeper.add(request(5000, 7200)).await.unwrap_err();
        assert_eq!(err.failure_kind(), Some(FailureKind::Timeout));
        assert!(drain(&mut events).is_empty());
        assert_eq!(keeper.shutdown().await, ShutdownReport::default());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_is_bounded_when_the_router_hangs() {
        let t0 = Instant::now();
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, _events) = keeper(&router);
        for port in [5000, 5001, 5002] {
            keeper.add(request(port, 7200)).await.unwrap();
        }
        router.with(|s| s.hang_on_delete = true);
        let report = keeper.shutdown().await;
        assert_eq!(
            Instant::now() - t0,
            KeeperConfig::default().shutdown_timeout
        );
        assert!(report.released.is_empty());
        assert_eq!(report.failed.len(), 3);
        assert!(
            report.failed[0].1.contains("shutdown timeout"),
            "{:?}",
            report.failed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remove_deletes_one_and_drop_deletes_the_rest() {
        let router = FakeRouter::new(Duration::from_secs(120));
        let (keeper, mut events) = keeper(&router);
        let (a, _) = keeper.add(request(5000, 7200)).await.unwrap();
        keeper.add(request(5001, 7200)).await.unwrap();
        keeper.add(request(5002, 7200)).await.unwrap();
        keeper.remove(a).await.unwrap();
        assert_eq!(router.with(|s| s.table.len()), 2);
        assert!(matches!(keeper.remove(a).await, Err(Error::KeeperClosed)));
        drop(keeper);
        // The task notices every handle is gone and cleans up by itself.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(router.with(|s| s.table.is_empty()));
        let released = drain(&mut events)
            .iter()
            .filter(|e| matches!(e, KeeperEvent::Released { .. }))
            .count();
        assert_eq!(released, 3);
    }
}
