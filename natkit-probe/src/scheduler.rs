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
use crate::rate::TokenBucket;
use crate::rtt::{RttConfig, RttEstimator};
use crate::verdict::{PortProbe, PortState, Reason, Verdict};

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
        self.events.push_back(ProbeEvent::Verdict(Verdict {
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
mod tests {
    use super::*;
    use crate::icmp::IcmpKind;
    use crate::order::PortOrder;
    use crate::rate::RateLimit;
    use std::net::{Ipv4Addr, SocketAddr};

    const HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn probes(n: u16, protocol: Protocol) -> Vec<PortProbe> {
        (1..=n)
            .map(|p| PortProbe {
                addr: SocketAddr::new(HOST, p),
                protocol,
            })
            .collect()
    }

    fn config() -> ProbeConfig {
        ProbeConfig {
            order: PortOrder::AsGiven,
            ..ProbeConfig::default()
        }
    }

    #[test]
    fn a_seed_orders_a_plan_as_it_orders_its_probes() {
        let t0 = Instant::now();
        let targets = [HOST, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)];
        let spec: natkit_core::PortSpec = "1-300/tcp,53".parse().unwrap();
        let plan = ProbePlan::from_spec(&targets, &spec).unwrap();
        let order = PortOrder::Shuffled { seed: 99 };
        // The order a shuffle of the whole probe list gives…
        let mut want: Vec<PortProbe> = plan.iter().collect();
        order.apply(&mut want);
        // …is the order the scheduler starts them in.
        let cfg = ProbeConfig {
            order,
            ..ProbeConfig::default()
        };
        let mut s = Scheduler::for_plan(cfg, plan, usize::MAX, t0);
        let got: Vec<PortProbe> = (0..want.len())
            .map(|_| expect_launch(&mut s, t0).probe)
            .collect();
        assert_eq!(got, want);
        assert_eq!(s.poll(t0), Action::WaitForOutcome);
    }

    fn expect_launch(s: &mut Scheduler, now: Instant) -> Launch {
        match s.poll(now) {
            Action::Launch(l) => l,
            other => panic!("expected a launch, got {other:?}"),
        }
    }

    fn verdicts(s: &mut Scheduler, now: Instant) -> Vec<Verdict> {
        let mut out = Vec::new();
        while let Some(e) = s.poll_event(now) {
            if let ProbeEvent::Verdict(v) = e {
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn answers_become_verdicts_with_their_evidence() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(3, Protocol::Tcp), 10, t0);
        let a = expect_launch(&mut s, t0);
        let b = expect_launch(&mut s, t0);
        let c = expect_launch(&mut s, t0);
        assert_eq!(s.poll(t0), Action::WaitForOutcome);
        let rtt = Duration::from_millis(5);
        s.on_outcome(a.id, AttemptOutcome::Connected { rtt }, t0)
            .unwrap();
        s.on_outcome(b.id, AttemptOutcome::Reset { rtt }, t0)
            .unwrap();
        let report = IcmpReport {
            kind: IcmpKind::v4(3, 13),
            offender: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))),
            errno: 113,
        };
        s.on_outcome(c.id, AttemptOutcome::Icmp { report, rtt }, t0)
            .unwrap();
        let v = verdicts(&mut s, t0);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].state, PortState::Open);
        assert_eq!(v[0].reason, Reason::Connected { rtt });
        assert_eq!(v[1].state, PortState::Closed);
        assert_eq!(v[2].state, PortState::Filtered);
        assert!(matches!(
            v[2].reason,
            Reason::Icmp {
                from_target: false,
                ..
            }
        ));
        assert_eq!(s.poll(t0), Action::Done);
        assert_eq!(s.rtt_of(HOST).unwrap().samples(), 3);
    }

    #[test]
    fn silence_is_retried_with_doubled_timeout_then_concluded() {
        let t0 = Instant::now();
        let cfg = ProbeConfig {
            tries: 3,
            ..config()
        };
        let mut s = Scheduler::new(cfg, probes(1, Protocol::Udp), 10, t0);
        let mut now = t0;
        let mut timeouts = Vec::new();
        for attempt in 1..=3 {
            let l = expect_launch(&mut s, now);
            assert_eq!(l.attempt, attempt);
            assert_eq!(l.payload, Some(PayloadKind::Empty));
            timeouts.push(l.timeout);
            now += l.timeout;
            s.on_outcome(l.id, AttemptOutcome::Silence, now).unwrap();
        }
        let initial = RttConfig::default().initial_rto;
        let max = RttConfig::default().max_rto;
        assert_eq!(
            timeouts,
            [initial, (initial * 2).min(max), (initial * 4).min(max)]
        );
        let v = verdicts(&mut s, now);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].state, PortState::OpenFiltered);
        assert_eq!(
            v[0].reason,
            Reason::Silence {
                tries: 3,
                waited: timeouts.iter().sum()
            }
        );
        assert_eq!(v[0].tries, 3);
        assert_eq!(s.poll(now), Action::Done);
    }

    #[test]
    fn tcp_silence_is_filtered() {
        let t0 = Instant::now();
        let cfg = ProbeConfig {
            tries: 1,
            ..config()
        };
        let mut s = Scheduler::new(cfg, probes(1, Protocol::Tcp), 10, t0);
        let l = expect_launch(&mut s, t0);
        s.on_outcome(l.id, AttemptOutcome::Silence, t0).unwrap();
        assert_eq!(verdicts(&mut s, t0)[0].state, PortState::Filtered);
    }

    #[test]
    fn rtt_samples_shorten_later_timeouts() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(2, Protocol::Tcp), 1, t0);
        let a = expect_launch(&mut s, t0);
        assert_eq!(a.timeout, RttConfig::default().initial_rto);
        let rtt = Duration::from_millis(40);
        s.on_outcome(a.id, AttemptOutcome::Reset { rtt }, t0)
            .unwrap();
        let b = expect_launch(&mut s, t0);
        // 40 ms + 4 × 20 ms
        assert_eq!(b.timeout, Duration::from_millis(120));
    }

    #[test]
    fn seeded_order_is_deterministic() {
        let order = |seed: u64| {
            let t0 = Instant::now();
            let cfg = ProbeConfig {
                order: PortOrder::Shuffled { seed },
                ..ProbeConfig::default()
            };
            let mut s = Scheduler::new(cfg, probes(500, Protocol::Tcp), 1000, t0);
            let mut ports = Vec::new();
            while let Action::Launch(l) = s.poll(t0) {
                ports.push((l.probe.addr.port(), l.nonce));
            }
            ports
        };
        let a = order(99);
        assert_eq!(a.len(), 500);
        assert_eq!(a, order(99));
        assert_ne!(a, order(100));
        let in_order: Vec<u16> = (1..=500).collect();
        assert_ne!(a.iter().map(|x| x.0).collect::<Vec<_>>(), in_order);
    }

    #[test]
    fn concurrency_limit_holds() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(10, Protocol::Tcp), 3, t0);
        let launched: Vec<Launch> = (0..3).map(|_| expect_launch(&mut s, t0)).collect();
        assert_eq!(s.poll(t0), Action::WaitForOutcome);
        s.on_outcome(launched[0].id, AttemptOutcome::Silence, t0)
            .unwrap();
        // The retry of the silent port comes before untouched ports.
        let next = expect_launch(&mut s, t0);
        assert_eq!(next.probe, launched[0].probe);
        assert_eq!(next.attempt, 2);
    }

    #[test]
    fn exhaustion_backs_off_and_retries_without_losing_probes() {
        let t0 = Instant::now();
        let n = 40;
        let mut s = Scheduler::new(config(), probes(n, Protocol::Tcp), 16, t0);
        let first: Vec<Launch> = (0..16).map(|_| expect_launch(&mut s, t0)).collect();
        // The last eight could not get a socket.
        for l in &first[8..] {
            s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 24 }, t0)
                .unwrap();
        }
        let backoffs: Vec<Backoff> = std::iter::from_fn(|| s.poll_event(t0))
            .filter_map(|e| match e {
                ProbeEvent::Backoff(b) => Some(b),
                _ => None,
            })
            .collect();
        // One cut for the whole burst, to half of what was running when the
        // first failure came in.
        assert_eq!(
            backoffs,
            [Backoff {
                limit: 15 / 2,
                in_flight: 15,
                errno: 24
            }]
        );
        assert_eq!(s.concurrency_limit(), 7);
        assert_eq!(s.poll(t0), Action::WaitForOutcome);
        // Drive everything to the end on a simulated clock; every port gets
        // exactly one verdict and nothing is lost.
        let mut now = t0;
        let mut flying: VecDeque<Launch> = first[..8].iter().copied().collect();
        let mut done = Vec::new();
        loop {
            while let Some(e) = s.poll_event(now) {
                if let ProbeEvent::Verdict(v) = e {
                    done.push(v);
                }
            }
            match s.poll(now) {
                Action::Launch(l) => {
                    assert!(s.in_flight() <= s.concurrency_limit());
                    flying.push_back(l);
                }
                Action::WaitForOutcome => {
                    let l = flying.pop_front().unwrap();
                    now += Duration::from_millis(1);
                    let rtt = Duration::from_millis(1);
                    s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, now)
                        .unwrap();
                }
                Action::WaitUntil(t) => now = t,
                Action::Done => break,
            }
        }
        assert_eq!(done.len(), usize::from(n));
        let mut ports: Vec<u16> = done.iter().map(|v| v.probe.addr.port()).collect();
        ports.sort_unstable();
        assert_eq!(ports, (1..=n).collect::<Vec<_>>());
        assert!(done.iter().all(|v| v.tries == 1));
        assert_eq!(s.stats(now).attempts, u64::from(n));
        assert_eq!(s.stats(now).backoffs, 1);
    }

    #[test]
    fn exhaustion_with_nothing_in_flight_pauses_then_gives_up() {
        let t0 = Instant::now();
        let cfg = ProbeConfig {
            give_up_after: Duration::from_secs(5),
            ..config()
        };
        let mut s = Scheduler::new(cfg, probes(1, Protocol::Tcp), 4, t0);
        let mut now = t0;
        let mut pauses = Vec::new();
        let err = loop {
            let l = match s.poll(now) {
                Action::Launch(l) => l,
                Action::WaitUntil(t) => {
                    pauses.push(t - now);
                    now = t;
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            };
            if let Err(e) = s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 23 }, now) {
                break e;
            }
        };
        assert!(
            matches!(err, Error::ResourcesExhausted { errno: 23, waited } if waited >= Duration::from_secs(5))
        );
        assert_eq!(pauses[0], FIRST_IDLE_PAUSE);
        assert_eq!(pauses[1], FIRST_IDLE_PAUSE * 2);
        assert!(pauses.iter().all(|&p| p <= MAX_IDLE_PAUSE));
        assert_eq!(*pauses.last().unwrap(), MAX_IDLE_PAUSE);
    }

    #[test]
    fn exhaustion_recovers_when_sockets_come_back() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
        let l = expect_launch(&mut s, t0);
        s.on_outcome(l.id, AttemptOutcome::Exhausted { errno: 24 }, t0)
            .unwrap();
        let Action::WaitUntil(t) = s.poll(t0) else {
            panic!("expected a pause");
        };
        let l = expect_launch(&mut s, t);
        assert_eq!(l.attempt, 1, "an exhausted try does not count");
        let rtt = Duration::from_micros(50);
        s.on_outcome(l.id, AttemptOutcome::Connected { rtt }, t)
            .unwrap();
        assert_eq!(verdicts(&mut s, t).len(), 1);
        assert_eq!(s.poll(t), Action::Done);
    }

    #[test]
    fn self_connection_is_retried_uncounted() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
        let l = expect_launch(&mut s, t0);
        s.on_outcome(l.id, AttemptOutcome::SelfConnected, t0)
            .unwrap();
        let l = expect_launch(&mut s, t0);
        assert_eq!(l.attempt, 1);
        let rtt = Duration::from_micros(30);
        s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, t0)
            .unwrap();
        let v = verdicts(&mut s, t0);
        assert_eq!((v[0].state, v[0].tries), (PortState::Closed, 1));
    }

    #[test]
    fn rate_cap_holds_on_a_simulated_clock() {
        let t0 = Instant::now();
        let cfg = ProbeConfig {
            rate: Some(RateLimit {
                per_second: 200,
                burst: 5,
            }),
            ..config()
        };
        let mut s = Scheduler::new(cfg, probes(1000, Protocol::Tcp), 1000, t0);
        let mut now = t0;
        let mut launches = Vec::new();
        loop {
            match s.poll(now) {
                Action::Launch(l) => {
                    launches.push(now);
                    // Answer at once: only the rate cap holds things back.
                    let rtt = Duration::from_micros(10);
                    s.on_outcome(l.id, AttemptOutcome::Reset { rtt }, now)
                        .unwrap();
                }
                Action::WaitUntil(t) => {
                    assert!(t > now);
                    now = t;
                }
                Action::WaitForOutcome => panic!("nothing is in flight"),
                Action::Done => break,
            }
        }
        assert_eq!(launches.len(), 1000);
        for (i, &start) in launches.iter().enumerate() {
            let n = launches[i..]
                .iter()
                .take_while(|&&t| t < start + Duration::from_secs(1))
                .count();
            assert!(n <= 205, "{n} launches within a second");
        }
        // 1000 probes at 200/s after a burst of 5: (1000 − 5) / 200 s.
        assert_eq!(now - t0, Duration::from_millis(4975));
    }

    #[test]
    fn finished_comes_once_after_the_last_verdict() {
        let t0 = Instant::now();
        let mut s = Scheduler::new(config(), probes(1, Protocol::Tcp), 4, t0);
        assert!(s.poll_event(t0).is_none());
        let l = expect_launch(&mut s, t0);
        let rtt = Duration::from_micros(30);
        s.on_outcome(l.id, AttemptOutcome::Connected { rtt }, t0)
            .unwrap();
        assert!(matches!(s.poll_event(t0), Some(ProbeEvent::Verdict(_))));
        let Some(ProbeEvent::Finished(stats)) = s.poll_event(t0) else {
            panic!("expected the finish");
        };
        assert_eq!(stats.counts.open, 1);
        assert_eq!(stats.probes, 1);
        assert!(s.poll_event(t0).is_none());
        // An unknown id is ignored.
        s.on_outcome(l.id, AttemptOutcome::Silence, t0).unwrap();
    }
}
