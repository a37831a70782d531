//! The keeper's rules, with no I/O and no clock of its own: when to renew,
//! how to back off, when a mapping is lost, and when the router's state
//! changed so that every mapping must be made again.
//!
//! [`Schedule`] is fed what happened (a mapping was asked for, an operation
//! was granted or failed, time passed) together with `now`, and answers with
//! [`Action`]s: operations to start, events to emit, callers to answer.
//! [`Schedule::next_deadline`] says when it next wants [`Schedule::tick`].
//! The keeper's tokio task ([`LeaseKeeper`](super::LeaseKeeper)) runs the
//! operations and sleeps until the deadline; tests drive the same rules on
//! plain [`Instant`] arithmetic.
//!
//! `now` must come from the clock the mapper stamps [`Mapping::obtained`]
//! and [`GatewayEpoch::observed_at`](crate::GatewayEpoch) with, since
//! renewal times and lease ends are computed from those stamps.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{KeeperConfig, KeeperEvent, MappingId, RemapReason};
use crate::error::{Error, FailureKind};
use crate::mapping::{Mapping, MappingRequest};
use crate::mechanism::Mechanism;

/// An operation the driver is to run against the router now.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Make the mapping afresh.
    Map(MappingRequest),
    /// Renew the mapping in force.
    Renew(MappingRequest, Mapping),
}

/// What the driver is to do, in order.
#[derive(Debug)]
pub enum Action {
    /// Start `op` for `id`, and report its outcome with
    /// [`Schedule::granted`] or [`Schedule::failed`].
    Start {
        /// The keeper's handle.
        id: MappingId,
        /// What to run.
        op: Op,
    },
    /// The first grant for `id`: answer the caller of `add`.
    Added {
        /// The keeper's handle.
        id: MappingId,
        /// The mapping now in force.
        mapping: Mapping,
    },
    /// The first attempt for `id` failed: the schedule keeps nothing; give
    /// the caller of `add` the error.
    GiveUp {
        /// The keeper's handle (no longer known to the schedule).
        id: MappingId,
        /// The error [`Schedule::failed`] was told, handed back for the caller.
        error: Error,
    },
    /// A grant landed for a mapping removed while it was in flight: delete
    /// it on the router.
    Delete(Mapping),
    /// Tell the listeners.
    Emit(KeeperEvent),
}

#[derive(Debug)]
struct Entry {
    request: MappingRequest,
    mapping: Option<Mapping>,
    next_at: Option<Instant>,
    failures: u32,
    /// An operation is running; inside, the re-map reason it runs for.
    in_flight: Option<Option<RemapReason>>,
    /// Between `add` and the first grant.
    adding: bool,
    /// A re-map was asked for while an operation was in flight.
    remap_pending: Option<RemapReason>,
}

/// The lease keeper's schedule; see the [module docs](self).
#[derive(Debug)]
pub struct Schedule {
    config: KeeperConfig,
    entries: BTreeMap<MappingId, Entry>,
    next_id: u64,
    /// The gateway's epoch as last seen, per mechanism and address family
    /// (`true`: IPv6 pinholes), since a router's IPv4 and IPv6 servers
    /// need not share one. One gateway per keeper: a reset seen on any
    /// starts every track afresh, so it is acted on once.
    epochs: BTreeMap<(Mechanism, bool), crate::GatewayEpoch>,
    /// The router's external address as last seen on a NAT mapping (a
    /// pinhole's "external" address is this host's own).
    last_external: Option<IpAddr>,
}

impl Schedule {
    /// An empty schedule.
    pub fn new(config: KeeperConfig) -> Schedule {
        Schedule {
            config,
            entries: BTreeMap::new(),
            next_id: 1,
            epochs: BTreeMap::new(),
            last_external: None,
        }
    }

    /// The configuration it runs on.
    pub fn config(&self) -> &KeeperConfig {
        &self.config
    }

    /// A mapping is asked for: it gets a handle and is made at once.
    pub fn add(&mut self, request: MappingRequest) -> (MappingId, Vec<Action>) {
        let id = MappingId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                request,
                mapping: None,
                next_at: None,
                failures: 0,
                in_flight: None,
                adding: true,
                remap_pending: None,
            },
        );
        let mut out = Vec::new();
        self.start(id, None, &mut out);
        (id, out)
    }

    /// Stops keeping `id`. `None` if it is unknown; otherwise the mapping
    /// in force, which the driver deletes (none while lost or still being
    /// made: a grant that lands later is answered with [`Action::Delete`]).
    pub fn remove(&mut self, id: MappingId) -> Option<Option<Mapping>> {
        self.entries.remove(&id).map(|e| e.mapping)
    }

    /// The mapping in force for `id`, if any.
    pub fn current(&self, id: MappingId) -> Option<&Mapping> {
        self.entries.get(&id).and_then(|e| e.mapping.as_ref())
    }

    /// Every mapping held, with the one in force, for shutdown. The
    /// schedule is empty afterwards.
    pub fn drain(&mut self) -> Vec<(MappingId, Option<Mapping>)> {
        std::mem::take(&mut self.entries)
            .into_iter()
            .map(|(id, e)| (id, e.mapping))
            .collect()
    }

    /// A grant that landed while shutting down: it is in force, and is to
    /// be deleted with the rest.
    pub fn landed(&mut self, id: MappingId, mapping: Mapping) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.mapping = Some(mapping);
        }
    }

    /// When [`tick`](Self::tick) next has something to start.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.in_flight.is_none())
            .filter_map(|e| e.next_at)
            .min()
    }

    /// Time passed: starts what is due.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.start_due(now, &mut out);
        out
    }

    fn start(&mut self, id: MappingId, reason: Option<RemapReason>, out: &mut Vec<Action>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.in_flight = Some(reason);
        entry.next_at = None;
        let op = match &entry.mapping {
            Some(m) => Op::Renew(entry.request.clone(), m.clone()),
            None => Op::Map(entry.request.clone()),
        };
        out.push(Action::Start { id, op });
    }

    fn start_due(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due: Vec<MappingId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.in_flight.is_none() && e.next_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let reason = self
                .entries
                .get_mut(&id)
                .and_then(|e| e.remap_pending.take());
            self.start(id, reason, out);
        }
    }

    /// When to renew a grant: at the configured fraction of its lifetime
    /// (of the requested one for a permanent grant, so that a router that
    /// lost it gets it back), never sooner than the floor; never for a
    /// permanent mapping asked and granted.
    fn renew_at(&self, request: &MappingRequest, mapping: &Mapping) -> Option<Instant> {
        let lifetime = if mapping.lifetime.is_zero() {
            request.lifetime
        } else {
            mapping.lifetime
        };
        if lifetime.is_zero() {
            return None;
        }
        let wait = lifetime
            .mul_f64(self.config.renew_fraction)
            .max(self.config.min_renew_interval);
        Some(mapping.obtained + wait)
    }

    /// The wait after the `failures`th failure in a row: doubling from
    /// the initial retry up to the maximum.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.config
            .retry_initial
            .saturating_mul(factor)
            .min(self.config.retry_max)
    }

    /// The operation for `id` was granted `mapping` at `now`.
    pub fn granted(&mut self, id: MappingId, mapping: Mapping, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(entry) = self.entries.get_mut(&id) else {
            // Removed while in flight: delete what this operation made.
            out.push(Action::Delete(mapping));
            return out;
        };
        let reason = entry.in_flight.take().flatten();
        let was_lost = entry.mapping.is_none() && !entry.adding;
        let first = std::mem::take(&mut entry.adding);
        // A re-map asked for while this operation was in flight: the grant
        // that just landed was made under the router's new state (its epoch
        // or address agrees with what revealed the change, or it would set
        // `trigger` below), so it is that re-map; doing another one at the
        // next renewal would be redundant.
        let pending = entry.remap_pending.take();
        entry.mapping = Some(mapping.clone());
        entry.failures = 0;
        let request = entry.request.clone();
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
            out.push(Action::Emit(KeeperEvent::ExternalAddressChanged {
                id,
                old,
                new: external,
            }));
            trigger = trigger.or(Some(RemapReason::ExternalAddressChanged));
        }
        if first {
            out.push(Action::Added {
                id,
                mapping: mapping.clone(),
            });
            out.push(Action::Emit(KeeperEvent::Mapped { id, mapping }));
        } else {
            let reason = trigger
                .or(reason)
                .or(pending)
                .or(was_lost.then_some(RemapReason::Recovered));
            out.push(Action::Emit(match reason {
                Some(reason) => KeeperEvent::Remapped {
                    id,
                    mapping,
                    reason,
                },
                None => KeeperEvent::Renewed { id, mapping },
            }));
        }
        if let Some(reason) = trigger {
            self.remap_others(id, reason, now, &mut out);
        }
        out
    }

    /// The router lost state or changed address: re-make every other
    /// mapping now rather than at its own renewal time.
    fn remap_others(
        &mut self,
        except: MappingId,
        reason: RemapReason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        for (id, e) in self.entries.iter_mut() {
            if *id == except || e.adding {
                continue; // a first map still in flight gets a fresh grant anyway
            }
            e.remap_pending = Some(reason);
            if e.in_flight.is_none() {
                e.next_at = Some(now);
            }
        }
        self.start_due(now, out);
    }

    /// The operation for `id` failed at `now` with `error`; the rules act
    /// on its [`Error::failure_kind`], and the error itself goes to the
    /// caller of `add` ([`Action::GiveUp`]) or into the event.
    pub fn failed(&mut self, id: MappingId, error: Error, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(entry) = self.entries.get_mut(&id) else {
            return out;
        };
        let reason = entry.in_flight.take().flatten();
        if entry.adding {
            self.entries.remove(&id);
            out.push(Action::GiveUp { id, error });
            return out;
        }
        if error.failure_kind() == Some(FailureKind::NoSuchMapping) && entry.mapping.is_some() {
            // The router forgot it: make it again now, not after backoff
            // until the lease runs out; and check the others at once.
            tracing::info!(%id, %error, "the router no longer has the mapping; making it again");
            entry.mapping = None;
            entry.remap_pending = Some(RemapReason::Forgotten);
            entry.next_at = Some(now);
            if reason.is_none() {
                self.remap_others(id, RemapReason::Forgotten, now, &mut out);
            } else {
                // Already part of a sweep another mapping started.
                self.start_due(now, &mut out);
            }
            return out;
        }
        entry.failures += 1;
        let failures = entry.failures;
        let expired = entry
            .mapping
            .as_ref()
            .and_then(Mapping::expires)
            .is_some_and(|end| end <= now);
        let newly_lost = expired || entry.mapping.is_none() && failures == 1;
        if expired {
            entry.mapping = None;
        }
        let retry_in = self.backoff(failures);
        if let Some(e) = self.entries.get_mut(&id) {
            e.next_at = Some(now + retry_in);
        }
        let error = Arc::new(error);
        out.push(Action::Emit(if newly_lost {
            KeeperEvent::Lost {
                id,
                error,
                retry_in,
            }
        } else {
            KeeperEvent::RenewFailed {
                id,
                error,
                retry_in,
            }
        }));
        out
    }
}

#[cfg(test)]
#[path = "tests/schedule.rs"]
mod tests;
