//! The sans-IO probe scheduler: which probe to start when, how long it may
//! wait, what its outcome means, and when to retry or back off.
//!
//! The engine asks [`Scheduler::poll`] what to do at `now`, performs the
//! [`Launch`]es it is given, and reports each try's [`AttemptOutcome`] back
//! with [`Scheduler::on_outcome`]; verdicts and back-off notices come out of
//! [`Scheduler::poll_event`]. No sockets, no clock: tests drive it on a
//! simulated one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use natkit_core::Protocol;

use crate::concurrency::Concurrency;
use crate::config::ProbeConfig;
use crate::error::Error;
use crate::event::{Backoff, ProbeEvent, StateCounts, Stats};
use crate::icmp::IcmpReport;
use crate::order::SplitMix64;
use crate::payload::PayloadKind;
use crate::plan::{MAX_PROBES, ProbePlan};
use crate::port_verdict::{PortProbe, PortState, PortVerdict, Reason};
use crate::rate::TokenBucket;
use crate::rtt::{RttConfig, RttEstimator};

/// How often a TCP probe may connect to itself (loopback, source port equal
/// to the target port) before the engine stops trying that port.
const MAX_SELF_CONNECTS: u8 = 16;
/// The first pause when no socket can be had and nothing is in flight.
const FIRST_IDLE_PAUSE: Duration = Duration::from_millis(10);
/// The longest such pause.
const MAX_IDLE_PAUSE: Duration = Duration::from_secs(1);

/// Identifies one try of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId(u64);

/// One try to start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Report the outcome under this id.
    pub id: AttemptId,
    /// What to probe.
    pub probe: PortProbe,
    /// Which try this is (1-based).
    pub attempt: u8,
    /// How long to wait for an answer.
    pub timeout: Duration,
    /// UDP: the payload to send.
    pub payload: Option<PayloadKind>,
    /// Seed for this try's payload ids and nonces.
    pub nonce: u64,
}

/// What the engine should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start this try now, then poll again.
    Launch(Launch),
    /// Nothing to start before this instant, unless an outcome comes first.
    WaitUntil(Instant),
    /// Nothing to start until a try in flight ends.
    WaitForOutcome,
    /// Every probe has its verdict.
    Done,
}

/// What one try saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// TCP: the handshake completed.
    Connected {
        /// Time to connect.
        rtt: Duration,
    },
    /// TCP: reset (`ECONNREFUSED`).
    Reset {
        /// Time to the reset.
        rtt: Duration,
    },
    /// UDP: a datagram came back.
    Reply {
        /// Time to the reply.
        rtt: Duration,
        /// Its length.
        bytes: usize,
    },
    /// A conclusive ICMP error came back.
    Icmp {
        /// The error and its sender.
        report: IcmpReport,
        /// Time to the error.
        rtt: Duration,
    },
    /// UDP: refused, without ICMP details.
    Refused {
        /// Time to the error.
        rtt: Duration,
    },
    /// Nothing came back within the timeout.
    Silence,
    /// TCP: the connection reached the probing socket itself (loopback,
    /// source port = target port); says nothing about the port.
    SelfConnected,
    /// No socket could be had: out of descriptors (`EMFILE`, `ENFILE`),
    /// buffers (`ENOBUFS`) or local ports (`EADDRNOTAVAIL`).
    Exhausted {
        /// The OS error number.
        errno: i32,
    },
    /// The local stack would not send the probe.
    LocalError {
        /// The OS error number.
        errno: i32,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    probe: PortProbe,
    tries: u8,
    waited: Duration,
    self_connects: u8,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    pending: Pending,
    epoch: u64,
    timeout: Duration,
    payload: Option<PayloadKind>,
}

#[derive(Debug, Clone, Copy)]
struct IdleExhaustion {
    since: Instant,
    pause: Duration,
}

/// The scheduler. See the module docs.
#[derive(Debug)]
pub struct Scheduler {
    config: ProbeConfig,
    total: usize,
    /// The plan, and its indices in probe order: 4 bytes a probe.
    plan: ProbePlan,
    order: Vec<u32>,
    /// How many of `order` have started their first try.
    started: usize,
    /// Probes to try again (retries, and tries that could not start), in
    /// front of the rest.
    requeued: VecDeque<Pending>,
    in_flight: HashMap<AttemptId, InFlight>,
    next_id: u64,
    rtt: HashMap<IpAddr, RttEstimator>,
    bucket: Option<TokenBucket>,
    concurrency: Concurrency,
    paused_until: Option<Instant>,
    idle: Option<IdleExhaustion>,
    rng: SplitMix64,
    events: VecDeque<ProbeEvent>,
    counts: StateCounts,
    attempts: u64,
    start: Instant,
    finished_reported: bool,
}

impl Scheduler {
    /// A scheduler for `probes` (put in `config.order`), starting at `now`,
    /// with at most `ceiling` tries in flight. `config` must be valid.
    pub fn new(config: ProbeConfig, probes: Vec<PortProbe>, ceiling: usize, now: Instant) -> Self {
        Self::for_plan(config, ProbePlan::from_vec(probes), ceiling, now)
    }

    /// A scheduler for `plan` (put in `config.order`), starting at `now`,
    /// with at most `ceiling` tries in flight. `config` must be valid.
    /// Beyond the plan itself it keeps 4 bytes a probe, plus the tries in
    /// flight and those waiting for a retry.
    pub fn for_plan(config: ProbeConfig, plan: ProbePlan, ceiling: usize, now: Instant) -> Self {
        let total = plan.len().min(MAX_PROBES);
        // MAX_PROBES < 2^32: every index fits.
        let mut order: Vec<u32> = (0..total as u32).collect();
        config.order.apply(&mut order);
        Scheduler {
            bucket: config.rate.map(|r| TokenBucket::new(r, now)),
            rng: SplitMix64::new(config.seed),
            concurrency: Concurrency::new(ceiling),
            config,
            total,
            plan,
            order,
            started: 0,
            requeued: VecDeque::new(),
            in_flight: HashMap::new(),
            next_id: 0,
            rtt: HashMap::new(),
            paused_until: None,
            idle: None,
            events: VecDeque::new(),
            counts: StateCounts::default(),
            attempts: 0,
            start: now,
            finished_reported: false,
        }
    }

    fn estimator(&mut self, ip: IpAddr) -> &mut RttEstimator {
        let cfg: RttConfig = self.config.rtt;
        self.rtt.entry(ip).or_insert_with(|| RttEstimator::new(cfg))
    }

    /// The RTT estimator of `ip`, once it has been probed.
    pub fn rtt_of(&self, ip: IpAddr) -> Option<&RttEstimator> {
        self.rtt.get(&ip)
    }

    /// How many tries are in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The current in-flight limit.
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency.limit()
    }

    /// Whether probes wait to start (first tries or retries).
    fn has_pending(&self) -> bool {
        !self.requeued.is_empty() || self.started < self.order.len()
    }

    /// The next probe to start: a requeued one first.
    fn next_pending(&mut self) -> Option<Pending> {
        if let Some(p) = self.requeued.pop_front() {
            return Some(p);
        }
        let index = *self.order.get(self.started)?;
        self.started += 1;
        let probe = self.plan.get(index as usize)?;
        Some(Pending {
            probe,
            tries: 0,
            waited: Duration::ZERO,
            self_connects: 0,
        })
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> Action {
        if !self.has_pending() {
            return if self.in_flight.is_empty() {
                Action::Done
            } else {
                Action::WaitForOutcome
            };
        }
        if let Some(until) = self.paused_until {
            if now < until {
                return Action::WaitUntil(until);
            }
            self.paused_until = None;
        }
        if !self.concurrency.allows(self.in_flight.len()) {
            return Action::WaitForOutcome;
        }
        if let Some(bucket) = &mut self.bucket
            && let Err(at) = bucket.try_take(now)
        {
            return Action::WaitUntil(at);
        }
        let Some(pending) = self.next_pending() else {
            return Action::Done;
        };
        let attempt = pending.tries.saturating_add(1);
        let timeout = self.estimator(pending.probe.addr.ip()).timeout_for(attempt);
        let payload = match pending.probe.protocol {
            Protocol::Tcp => None,
            Protocol::Udp => Some(self.config.payload_for(pending.probe.addr.port())),
        };
        let id = AttemptId(self.next_id);
        self.next_id += 1;
        self.attempts += 1;
        self.in_flight.insert(
            id,
            InFlight {
                pending,
                epoch: self.concurrency.epoch(),
                timeout,
                payload,
            },
        );
        Action::Launch(Launch {
            id,
            probe: pending.probe,
            attempt,
            timeout,
            payload,
            nonce: self.rng.next_u64(),
        })
    }

    /// Reports what try `id` saw, at `now`. Unknown ids are ignored. Fails
    /// only when sockets stayed unavailable with nothing in flight for
    /// longer than `give_up_after`.
    pub fn on_outcome(
        &mut self,
        id: AttemptId,
        outcome: AttemptOutcome,
        now: Instant,
    ) -> Result<(), Error> {
        let Some(flight) = self.in_flight.remove(&id) else {
            return Ok(());
        };
        let mut pending = flight.pending;
        if let AttemptOutcome::Exhausted { errno } = outcome {
            self.attempts -= 1;
            return self.on_exhausted(flight, errno, now);
        }
        self.idle = None;
        self.concurrency.on_completed();
        let ip = pending.probe.addr.ip();
        let tries = pending.tries.saturating_add(1);
        let (state, reason) = match outcome {
            AttemptOutcome::Connected { rtt } => (PortState::Open, Reason::Connected { rtt }),
            AttemptOutcome::Reset { rtt } => (PortState::Closed, Reason::Reset { rtt }),
            AttemptOutcome::Reply { rtt, bytes } => (PortState::Open, Reason::Reply { rtt, bytes }),
            AttemptOutcome::Refused { rtt } => (PortState::Closed, Reason::Refused { rtt }),
            AttemptOutcome::Icmp { report, rtt } => {
                let (state, from_target) = report
                    .conclude(ip)
                    .map_or((PortState::Filtered, report.is_from(ip)), |c| {
                        (c.state, c.from_target)
                    });
                let reason = Reason::Icmp {
                    report,
                    from_target,
                    rtt,
                };
                (state, reason)
            }
            AttemptOutcome::LocalError { errno } => {
                (PortState::Filtered, Reason::LocalError { errno })
            }
            AttemptOutcome::SelfConnected => {
                self.attempts -= 1;
                pending.self_connects += 1;
                if pending.self_connects < MAX_SELF_CONNECTS {
                    self.requeued.push_front(pending);
                    return Ok(());
                }
                (
                    PortState::Filtered,
                    Reason::LocalError {
                        errno: libc_eaddrnotavail(),
                    },
                )
            }
            AttemptOutcome::Silence => {
                pending.tries = tries;
                pending.waited += flight.timeout;
                if tries < self.config.tries {
                    // Retries go first, so each port finishes soon after it
                    // starts and the queue holds few half-done probes.
                    self.requeued.push_front(pending);
                    return Ok(());
                }
                let state = match pending.probe.protocol {
                    Protocol::Tcp => PortState::Filtered,
                    Protocol::Udp => PortState::OpenFiltered,
                };
                let reason = Reason::Silence {
                    tries,
                    waited: pending.waited,
                };
                (state, reason)
            }
            AttemptOutcome::Exhausted { .. } => return Ok(()),
        };
        if let Some(rtt) = reason.rtt() {
            self.estimator(ip).sample(rtt);
        }
        self.counts.add(state);
        self.events.push_back(ProbeEvent::Verdict(PortVerdict {
            probe: pending.probe,
            state,
            reason,
            tries,
            payload: flight.payload,
        }));
        Ok(())
    }

    fn on_exhausted(&mut self, flight: InFlight, errno: i32, now: Instant) -> Result<(), Error> {
        // The try never went out: it goes back first in line, uncounted.
        self.requeued.push_front(flight.pending);
        let in_flight = self.in_flight.len();
        if let Some(limit) = self.concurrency.on_exhausted(flight.epoch, in_flight) {
            self.events.push_back(ProbeEvent::Backoff(Backoff {
                limit,
                in_flight,
                errno,
            }));
        }
        if in_flight > 0 {
            // Tries in flight will end and free their sockets.
            self.idle = None;
            return Ok(());
        }
        // Nothing of ours to wait for: pause, doubling, until give_up_after.
        let idle = match self.idle {
            None => IdleExhaustion {
                since: now,
                pause: FIRST_IDLE_PAUSE,
            },
            Some(i) => IdleExhaustion {
                since: i.since,
                pause: (i.pause * 2).min(MAX_IDLE_PAUSE),
            },
        };
        let waited = now.saturating_duration_since(idle.since);
        if waited >= self.config.give_up_after {
            return Err(Error::ResourcesExhausted { errno, waited });
        }
        self.idle = Some(idle);
        self.paused_until = Some(now + idle.pause);
        Ok(())
    }

    /// The next verdict or notice, if any. After the last verdict comes one
    /// [`ProbeEvent::Finished`].
    pub fn poll_event(&mut self, now: Instant) -> Option<ProbeEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if !self.finished_reported && !self.has_pending() && self.in_flight.is_empty() {
            self.finished_reported = true;
            return Some(ProbeEvent::Finished(self.stats(now)));
        }
        None
    }

    /// Counters so far.
    pub fn stats(&self, now: Instant) -> Stats {
        Stats {
            probes: self.total,
            counts: self.counts,
            attempts: self.attempts,
            backoffs: self.concurrency.cuts(),
            concurrency_limit: self.concurrency.limit(),
            concurrency_max: self.concurrency.max(),
            elapsed: now.saturating_duration_since(self.start),
        }
    }
}

/// `EADDRNOTAVAIL`: no usable local address/port for this connection.
fn libc_eaddrnotavail() -> i32 {
    #[cfg(unix)]
    {
        nix::errno::Errno::EADDRNOTAVAIL as i32
    }
    #[cfg(not(unix))]
    {
        10049
    }
}

#[cfg(test)]
mod tests;
