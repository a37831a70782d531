//! The keeper's tokio task: runs the operations the [`Schedule`] asks for
//! and feeds their outcomes back; the rules live in the schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{self, JoinError, JoinSet};
use tokio::time::Instant;

use super::schedule::{Action, Op, Schedule};
use super::{Command, KeeperConfig, KeeperEvent, MappingId, ShutdownReport};
use crate::error::{Error, FailureKind, Result};
use crate::mapper::PortMapper;
use crate::mapping::{Mapping, MappingRequest};
use crate::mechanism::Mechanism;

/// The keeper's one clock: tokio's, so that tests run it paused. Mappers
/// stamp their grants from the same clock (`tokio::time::Instant::now()`,
/// as std's `Instant` outside paused tests), and the schedule compares
/// those stamps with this.
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Starts the task on the current runtime.
pub(super) fn spawn(
    mapper: Arc<dyn PortMapper>,
    config: KeeperConfig,
    events: broadcast::Sender<KeeperEvent>,
    commands: mpsc::Receiver<Command>,
) -> task::JoinHandle<()> {
    let task = Task {
        mapper,
        events,
        schedule: Schedule::new(config),
        replies: BTreeMap::new(),
        ops: JoinSet::new(),
        op_ids: HashMap::new(),
    };
    tokio::spawn(task.run(commands))
}

struct OpDone {
    id: MappingId,
    /// `None` for the deletion of a grant that landed after its entry was
    /// removed; nothing more is done with it.
    result: Option<Result<Mapping>>,
}

struct Task {
    mapper: Arc<dyn PortMapper>,
    events: broadcast::Sender<KeeperEvent>,
    schedule: Schedule,
    /// Callers of `add` waiting for the first grant.
    replies: BTreeMap<MappingId, oneshot::Sender<Result<(MappingId, Mapping)>>>,
    ops: JoinSet<OpDone>,
    /// The mapping each map or renew task in `ops` is for, so that one that
    /// ends without a result (it panicked) still answers for its mapping.
    op_ids: HashMap<task::Id, MappingId>,
}

/// A keeper task that ended without a result: it panicked (a bug of the
/// mapper's or natkit's, not the router's doing) or was cancelled. The
/// host's failure, [`FailureKind::Local`], with the [`JoinError`] as the
/// typed source; never dropped, since the mapping it was for depends on it.
pub(super) fn ended(mechanism: Mechanism, e: JoinError) -> Error {
    tracing::error!(%e, "a lease keeper task ended without a result");
    Error::mechanism(mechanism, FailureKind::Local, e)
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        loop {
            let deadline = self.schedule.next_deadline().map(Instant::from_std);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Add(request, reply)) => self.add(request, reply),
                    Some(Command::Remove(id, reply)) => {
                        let result = self.remove(id).await;
                        let _ = reply.send(result);
                    }
                    Some(Command::Current(id, reply)) => {
                        let _ = reply.send(self.schedule.current(id).cloned());
                    }
                    Some(Command::Shutdown(reply)) => {
                        let report = self.shutdown().await;
                        let _ = reply.send(report);
                        return;
                    }
                    #[cfg(test)]
                    Some(Command::Crash) => panic!("a bug in the keeper's task"),
                    None => {
                        // Every handle dropped without shutdown: still clean up.
                        self.shutdown().await;
                        return;
                    }
                },
                Some(joined) = self.ops.join_next_with_id(), if !self.ops.is_empty() => {
                    if let Some(done) = self.joined(joined) {
                        self.finish(done);
                    }
                }
                () = sleep_until_opt(deadline) => {
                    let actions = self.schedule.tick(now());
                    self.run_actions(actions);
                }
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
        let (id, actions) = self.schedule.add(request);
        self.replies.insert(id, reply);
        self.run_actions(actions);
    }

    /// Runs the schedule's actions.
    fn run_actions(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start { id, op } => {
                    let mapper = Arc::clone(&self.mapper);
                    let started = self.ops.spawn(async move {
                        let result = match &op {
                            Op::Renew(request, m) => mapper.renew(request, m).await,
                            Op::Map(request) => mapper.map(request).await,
                        };
                        OpDone {
                            id,
                            result: Some(result),
                        }
                    });
                    self.op_ids.insert(started.id(), id);
                }
                Action::Added { id, mapping } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(Ok((id, mapping)));
                    }
                }
                Action::GiveUp { id, error } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(Err(error));
                    }
                }
                Action::Delete(mapping) => {
                    let mapper = Arc::clone(&self.mapper);
                    self.ops.spawn(async move {
                        if let Err(e) = mapper.unmap(&mapping).await {
                            tracing::warn!(%e, "deleting a grant that arrived after removal failed");
                        }
                        OpDone {
                            id: MappingId(0),
                            result: None,
                        }
                    });
                }
                Action::Emit(event) => self.emit(event),
            }
        }
    }

    /// A joined operation as its outcome: a map or renew task that ended
    /// without one failed, with the [`JoinError`] as the reason. `None`
    /// for a deletion of a late grant that ended so (logged by [`ended`]:
    /// that grant may stay on the router until its lease ends).
    fn joined(&mut self, joined: Result<(task::Id, OpDone), JoinError>) -> Option<OpDone> {
        match joined {
            Ok((task, done)) => {
                self.op_ids.remove(&task);
                Some(done)
            }
            Err(e) => {
                let id = self.op_ids.remove(&e.id());
                let error = ended(self.mapper.mechanism(), e);
                id.map(|id| OpDone {
                    id,
                    result: Some(Err(error)),
                })
            }
        }
    }

    fn finish(&mut self, done: OpDone) {
        let OpDone { id, result } = done;
        let Some(result) = result else { return };
        match result {
            Ok(mapping) => {
                let actions = self.schedule.granted(id, mapping, now());
                self.run_actions(actions);
            }
            Err(error) => {
                let actions = self.schedule.failed(id, error, now());
                self.run_actions(actions);
            }
        }
    }

    async fn remove(&mut self, id: MappingId) -> Result<(), Arc<Error>> {
        let entry = (self.schedule.remove(id)).ok_or_else(|| Arc::new(Error::KeeperClosed))?;
        if let Some(reply) = self.replies.remove(&id) {
            let _ = reply.send(Err(Error::KeeperClosed));
        }
        let Some(mapping) = entry else {
            return Ok(()); // nothing in force (lost); an in-flight grant is deleted in finish()
        };
        let timeout = self.schedule.config().shutdown_timeout;
        let result = tokio::time::timeout(timeout, self.mapper.unmap(&mapping))
            .await
            .unwrap_or_else(|_| {
                Err(Error::mechanism(
                    mapping.mechanism,
                    FailureKind::Timeout,
                    "delete timed out",
                ))
            });
        match result {
            Ok(()) => {
                self.emit(KeeperEvent::Released { id });
                Ok(())
            }
            Err(e) => {
                let error = Arc::new(e);
                self.emit(KeeperEvent::ReleaseFailed {
                    id,
                    error: Arc::clone(&error),
                });
                Err(error)
            }
        }
    }

    async fn shutdown(&mut self) -> ShutdownReport {
        let deadline = Instant::now() + self.schedule.config().shutdown_timeout;
        // Let in-flight operations land first: a map that completes on the
        // router after we stop listening would be left behind.
        while !self.ops.is_empty() {
            let joined = match tokio::time::timeout_at(deadline, self.ops.join_next_with_id()).await
            {
                Ok(Some(joined)) => self.joined(joined),
                Ok(None) | Err(_) => break,
            };
            match joined {
                Some(OpDone {
                    id,
                    result: Some(Ok(mapping)),
                }) => self.schedule.landed(id, mapping),
                // A first attempt that failed: its caller hears why, not
                // only that the keeper closed.
                Some(OpDone {
                    id,
                    result: Some(Err(error)),
                }) => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(Err(error));
                    }
                }
                _ => {}
            }
        }
        self.ops.abort_all();
        self.op_ids.clear();
        let mut unmaps = JoinSet::new();
        let mut unmap_ids = HashMap::new();
        for (id, mapping) in self.schedule.drain() {
            if let Some(reply) = self.replies.remove(&id) {
                let _ = reply.send(Err(Error::KeeperClosed));
            }
            if let Some(mapping) = mapping {
                let mapper = Arc::clone(&self.mapper);
                let mechanism = mapping.mechanism;
                let started = unmaps.spawn(async move {
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
                unmap_ids.insert(started.id(), (id, mechanism));
            }
        }
        let mut report = ShutdownReport::default();
        while let Some(joined) = unmaps.join_next().await {
            let (id, result) = match joined {
                Ok(done) => done,
                Err(e) => {
                    let Some(&(id, mechanism)) = unmap_ids.get(&e.id()) else {
                        continue; // not a task of this set: cannot happen
                    };
                    (id, Err(ended(mechanism, e)))
                }
            };
            match result {
                Ok(()) => {
                    report.released.push(id);
                    self.emit(KeeperEvent::Released { id });
                }
                Err(e) => {
                    let error = Arc::new(e);
                    self.emit(KeeperEvent::ReleaseFailed {
                        id,
                        error: Arc::clone(&error),
                    });
                    report.failed.push((id, error));
                }
            }
        }
        report.released.sort();
        report.failed.sort_by_key(|(id, _)| *id);
        report
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
