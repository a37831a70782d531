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
//! - When a renewal is answered "no such mapping"
//!   ([`FailureKind::NoSuchMapping`](crate::FailureKind::NoSuchMapping): a
//!   UPnP router that restarted has no epoch to tell, and forgets its
//!   pinholes), the mapping is made afresh at once, and every other
//!   mapping is renewed at once too (which re-makes those it forgot).
//! - IPv6 pinholes ([`Mapping::is_pinhole`]) are kept like mappings; their
//!   "external" address is this host's own, so it never counts as the
//!   router's external address changing. Epochs are followed per
//!   mechanism and address family (a router may run IPv4 and IPv6 PCP
//!   servers with their own epochs); a reset seen on one makes all again.
//! - When the router stops answering, renewals are retried with exponential
//!   backoff; a mapping whose lease ran out is reported lost and re-made as
//!   soon as the router answers again.
//! - [`LeaseKeeper::shutdown`] deletes every mapping the keeper made, all at
//!   once, within a bounded time. Dropping the keeper without calling it
//!   still deletes them from the keeper's task, as long as the tokio runtime
//!   keeps running.
//!
//! The rules above are [`schedule::Schedule`], a state machine with no
//! I/O that is told what happened and when; the keeper's tokio task only
//! runs the operations it asks for. Time comes from tokio's clock, so tests
//! drive the keeper on a paused, simulated clock (`tokio::time::pause`), and
//! mappers stamp [`Mapping::obtained`] with
//! `tokio::time::Instant::now().into_std()` (identical to
//! `std::time::Instant::now()` outside paused tests).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::mapper::PortMapper;
use crate::mapping::{Mapping, MappingRequest};
use crate::mechanism::Mechanism;

mod events;
pub mod schedule;
mod task;
#[cfg(test)]
mod tests;

pub use events::{EVENT_CAPACITY, KeeperEvents, TryRecvError};

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
    /// A renewal was answered "no such mapping": the router forgot it
    /// (a restart without an epoch to show it, e.g. UPnP).
    Forgotten,
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
        /// What went wrong: the mapper's error (shared, since every
        /// listener gets the event).
        error: Arc<Error>,
        /// When the keeper tries again.
        retry_in: Duration,
    },
    /// The lease ended without a successful renewal: the mapping is gone.
    /// The keeper keeps trying to make it again.
    Lost {
        /// The keeper's handle.
        id: MappingId,
        /// The last error: the mapper's (shared, as above).
        error: Arc<Error>,
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
        /// What went wrong: the mapper's error, or a
        /// [`FailureKind::Timeout`](crate::FailureKind::Timeout) when the
        /// deletion did not finish in time (shared, as above).
        error: Arc<Error>,
    },
    /// This listener fell behind and missed `missed` events: the keeper keeps at
    /// most [`EVENT_CAPACITY`] unread events per listener rather than growing
    /// without bound. Ask [`LeaseKeeper::current`] for the state now.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// What [`LeaseKeeper::shutdown`] achieved.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Mappings deleted.
    pub released: Vec<MappingId>,
    /// Mappings whose deletion failed or timed out, with the mechanism's
    /// error (a deletion whose task panicked: [`FailureKind::Local`](crate::FailureKind::Local)):
    /// the one its [`KeeperEvent::ReleaseFailed`] carries.
    pub failed: Vec<(MappingId, Arc<Error>)>,
    /// The keeper's own task had ended abnormally, so nothing was deleted:
    /// what it held stays on the router until the leases end. It ends so
    /// only by panicking (a bug of natkit's): the first request to find it
    /// gone gets [`FailureKind::Local`](crate::FailureKind::Local) with the
    /// [`JoinError`](tokio::task::JoinError), later ones
    /// [`Error::KeeperClosed`].
    pub task_failed: Option<Error>,
}

impl ShutdownReport {
    /// Whether every mapping the keeper held was deleted.
    pub fn all_released(&self) -> bool {
        self.failed.is_empty() && self.task_failed.is_none()
    }
}

/// How many requests may wait for the keeper's task (each caller waits for its
/// answer, so this bounds only concurrent callers).
const COMMAND_CAPACITY: usize = 64;

enum Command {
    Add(
        MappingRequest,
        oneshot::Sender<Result<(MappingId, Mapping)>>,
    ),
    Remove(MappingId, oneshot::Sender<Result<(), Arc<Error>>>),
    Current(MappingId, oneshot::Sender<Option<Mapping>>),
    Shutdown(oneshot::Sender<ShutdownReport>),
    /// Makes the task panic, as a bug in it would.
    #[cfg(test)]
    Crash,
}

/// Holds mappings through a [`PortMapper`]; see the [module docs](crate::keeper).
///
/// Events arrive on the [`KeeperEvents`] returned by [`LeaseKeeper::new`] and
/// by [`subscribe`](Self::subscribe): a bounded broadcast, so a listener that
/// does not read costs at most [`EVENT_CAPACITY`] events and is told what it
/// missed; the keeper goes on working if every listener is dropped.
pub struct LeaseKeeper {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<KeeperEvent>,
    /// The keeper's task, until a request finds it gone and asks how it
    /// ended.
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The mapper's mechanism, named in the error of a task that panicked.
    mechanism: Mechanism,
}

impl fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseKeeper").finish_non_exhaustive()
    }
}

impl LeaseKeeper {
    /// Starts a keeper on the current tokio runtime.
    pub fn new(mapper: Arc<dyn PortMapper>, config: KeeperConfig) -> (LeaseKeeper, KeeperEvents) {
        let (commands, rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events, events_rx) = broadcast::channel(EVENT_CAPACITY);
        let mechanism = mapper.mechanism();
        let task = task::spawn(mapper, config, events.clone(), rx);
        let keeper = LeaseKeeper {
            commands,
            events,
            task: std::sync::Mutex::new(Some(task)),
            mechanism,
        };
        (keeper, KeeperEvents::new(events_rx))
    }

    /// Another listener for the keeper's events, from now on.
    pub fn subscribe(&self) -> KeeperEvents {
        KeeperEvents::new(self.events.subscribe())
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(make(tx)).await.is_err() {
            return Err(self.closed().await);
        }
        match rx.await {
            Ok(answer) => Ok(answer),
            Err(_) => Err(self.closed().await),
        }
    }

    /// Why the keeper's task is gone. It ends by itself only after
    /// [`shutdown`](Self::shutdown) or once every handle is dropped, so a
    /// request that finds it gone found a panic: told (as
    /// [`ShutdownReport::task_failed`] says) to the first request.
    async fn closed(&self) -> Error {
        let task = (self.task.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match task {
            Some(handle) => match handle.await {
                Err(e) => task::ended(self.mechanism, e),
                Ok(()) => Error::KeeperClosed,
            },
            None => Error::KeeperClosed,
        }
    }

    /// Makes a mapping and keeps it until [`remove`](Self::remove) or
    /// shutdown. Fails, and keeps nothing, if the first attempt fails.
    pub async fn add(&self, request: MappingRequest) -> Result<(MappingId, Mapping)> {
        self.ask(|tx| Command::Add(request, tx)).await?
    }

    /// Deletes a mapping now and stops keeping it. A failed deletion's
    /// error is the one its [`KeeperEvent::ReleaseFailed`] carries, shared
    /// with the listeners.
    pub async fn remove(&self, id: MappingId) -> Result<(), Arc<Error>> {
        self.ask(|tx| Command::Remove(id, tx)).await?
    }

    /// The mapping now in force for `id`, if any (none while it is lost).
    pub async fn current(&self, id: MappingId) -> Result<Option<Mapping>> {
        self.ask(|tx| Command::Current(id, tx)).await
    }

    /// Deletes every mapping, waiting at most
    /// [`KeeperConfig::shutdown_timeout`], and stops the keeper.
    pub async fn shutdown(self) -> ShutdownReport {
        self.ask(Command::Shutdown)
            .await
            .unwrap_or_else(|e| ShutdownReport {
                task_failed: Some(e),
                ..ShutdownReport::default()
            })
    }
}
