//! The doctor never leaves a mapping behind.
//!
//! Every trial mapping goes through a [`MapGuard`]: the request runs in its
//! own task, so a mapping the router grants is recorded even when the check
//! that asked for it is cancelled (Ctrl-C); [`MapGuard::release_all`] stops
//! new requests, waits for those in flight and deletes everything still
//! held.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use natkit_core::{Mapping, MappingRequest, PortMapper};
use tokio::sync::watch;

type Held = (u64, Arc<dyn PortMapper>, Mapping);

/// The longest a single delete may take before it counts as failed.
const UNMAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Tracks every mapping the doctor made until it is deleted.
pub(crate) struct MapGuard {
    held: Mutex<Vec<Held>>,
    stopping: AtomicBool,
    next_id: AtomicU64,
    in_flight: watch::Sender<usize>,
}

/// Why a trial did not give a mapping.
pub(crate) enum TrialError {
    /// The guard is shutting down: no new mappings.
    Stopped,
    /// The router refused (or the request failed).
    Refused(natkit_core::Error),
}

impl MapGuard {
    pub(crate) fn new() -> Arc<MapGuard> {
        Arc::new(MapGuard {
            held: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            in_flight: watch::Sender::new(0),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self) {
        self.in_flight.send_modify(|n| *n += 1);
    }

    fn end(&self) {
        self.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Asks `mapper` for a mapping; the grant is held until released.
    pub(crate) async fn map(
        self: &Arc<Self>,
        mapper: Arc<dyn PortMapper>,
        request: MappingRequest,
    ) -> Result<(u64, Mapping), TrialError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(TrialError::Stopped);
        }
        self.begin();
        let guard = self.clone();
        let task = tokio::spawn(async move {
            let result = match mapper.map(&request).await {
                Ok(m) => {
                    let id = guard.next_id.fetch_add(1, Ordering::SeqCst);
                    guard.held().push((id, mapper, m.clone()));
                    Ok((id, m))
                }
                Err(e) => Err(TrialError::Refused(e)),
            };
            guard.end();
            result
        });
        match task.await {
            Ok(result) => result,
            // A bug, not a router's refusal: it goes on up, and the run
            // deletes what it holds before reporting it (lib.rs).
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(TrialError::Stopped),
        }
    }

    /// Deletes the mapping `id`; `Err` says why it could not be deleted
    /// (it then stays held, and [`release_all`](Self::release_all) tries
    /// again).
    pub(crate) async fn release(self: &Arc<Self>, id: u64) -> Result<(), ReleaseError> {
        let entry = {
            let mut held = self.held();
            let Some(i) = held.iter().position(|(h, _, _)| *h == id) else {
                return Ok(());
            };
            held.swap_remove(i)
        };
        self.begin();
        let guard = self.clone();
        let task = tokio::spawn(async move {
            let result = unmap(&entry).await;
            if result.is_err() {
                guard.held().push(entry);
            }
            guard.end();
            result
        });
        // Nothing aborts the task: it ended early only by panicking.
        task.await.unwrap_or(Err(ReleaseError::Panicked))
    }

    /// Stops new mappings, waits (up to `wait`) for requests in flight and
    /// deletes every mapping still held: what it deleted and what it could not.
    pub(crate) async fn release_all(&self, wait: Duration) -> Cleanup {
        self.stopping.store(true, Ordering::SeqCst);
        let mut rx = self.in_flight.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n == 0)).await;
        let left: Vec<Held> = std::mem::take(&mut *self.held());
        let mut cleanup = Cleanup::default();
        for entry in left {
            let (_, _, m) = &entry;
            let name = format!(
                "{} {}/{} -> {}",
                m.mechanism.display_name(),
                m.external.port(),
                m.protocol,
                m.internal
            );
            match unmap(&entry).await {
                Ok(()) => cleanup.deleted.push(name),
                Err(e) => cleanup.left_behind.push(format!("{name}: {e}")),
            }
        }
        cleanup
    }
}

/// What the clean-up at the end of a run (or after it was stopped) did with
/// the trial mappings still held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cleanup {
    /// The mappings it deleted, e.g. `UPnP IGD 5900/tcp -> 192.168.77.2:5900`.
    pub deleted: Vec<String>,
    /// The mappings it could not delete, each with the reason; they expire
    /// within the trial lease (two minutes).
    pub left_behind: Vec<String>,
}

/// Why a trial mapping could not be deleted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    /// The router refused the deletion, or the request failed.
    #[error("{}", crate::render::error_line(.0))]
    Failed(natkit_core::Error),
    /// No answer within [`UNMAP_TIMEOUT`].
    #[error("no answer within {} s", UNMAP_TIMEOUT.as_secs())]
    TimedOut,
    /// The task deleting it panicked: a bug of the doctor's.
    #[error("the delete task panicked")]
    Panicked,
}

async fn unmap((_, mapper, mapping): &Held) -> Result<(), ReleaseError> {
    match tokio::time::timeout(UNMAP_TIMEOUT, mapper.unmap(mapping)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ReleaseError::Failed(e)),
        Err(_) => Err(ReleaseError::TimedOut),
    }
}
