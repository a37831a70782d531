//! The NAT behaviour test plan (RFC 5780 §4; RFC 3489 §10.1 with classic servers) as a
//! sans-IO state machine.
//!
//! The plan hands out *waves* of [`Probe`]s — Binding requests, each to be sent from
//! the local socket of its `group` (a fresh UDP port per group, so that one group of
//! tests cannot leave NAT or filter state that changes another's result) — and takes
//! back one [`ProbeResult`] per probe. Probes of one wave are independent and are run at
//! once; the next wave depends on the answers:
//!
//! 1. test I to every server from one socket: connectivity, the external address,
//!    whether the mapping varies between servers, each server's alternate address and
//!    the checks on it, the RTT;
//! 2. with a usable server: mapping tests II, III and a repeat of I on the same socket;
//!    a filtering round (control, change IP and port, change port) on a fresh socket;
//!    optionally hairpinning;
//! 3. more filtering rounds (and a second mapping round, hairpin retries) until every
//!    conclusion has the evidence it needs ([`decide`](super::decide)), or the
//!    configured limits are reached and the answer is "inconclusive".
//!
//! Requests whose *absence* of answer is evidence are retransmitted on an RTO derived
//! from the RTT measured in test I ([`no_answer_plan`]), not on a fixed long timeout;
//! each filtering round carries a control request on the same schedule, and its
//! absences count only if that control was answered well inside the wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour, MappingBehaviour, NatBehaviour};

use super::config::{ClassifyConfig, NO_ANSWER_RTO_CEILING};
use super::decide::{self, FilteringRound, FilteringVerdict, MappingRound};
use super::evidence::{
    Classification, ServerCheck, ServerFlavor, TestEvidence, TestKind, TestOutcome,
};
use crate::Error;
use crate::client::{BindingRequest, RetransmitPlan};

/// How many times the first wave is tried before concluding that UDP is blocked.
const DISCOVERY_ATTEMPTS: u8 = 3;
/// How many filtering rounds go out at once: one more than the absences needed, so a
/// round spoiled by packet loss costs no second wave.
const FILTERING_ROUNDS_AT_ONCE: usize = decide::CONFIRMATIONS + 1;
/// How many mapping rounds at most.
const MAPPING_ROUNDS: u8 = 2;
/// How many hairpinning attempts at most, and how many are made at once at first.
const HAIRPIN_ATTEMPTS: u8 = 6;
/// How many controlled misses make "no hairpinning".
const HAIRPIN_MISSES: u8 = 3;

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Identifies the probe in its [`ProbeResult`].
    pub id: u32,
    /// The local socket to send from: the same group means the same socket; a new
    /// group means a fresh socket (fresh local port).
    pub group: u32,
    /// Which test.
    pub test: TestKind,
    /// Which round of that test.
    pub round: u8,
    /// Where to send.
    pub destination: SocketAddr,
    /// What to send.
    pub request: BindingRequest,
    /// Sources whose answer counts.
    pub accept: Vec<SocketAddr>,
    /// The retransmission plan.
    pub plan: RetransmitPlan,
    /// A hairpinning probe: the answer is the request itself, looped back
    /// ([`Transaction::hairpin`](crate::client::Transaction::hairpin)).
    pub hairpin: bool,
}

/// What became of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The probe's id.
    pub id: u32,
    /// The local address of the probe's group socket.
    pub local: Option<SocketAddr>,
    /// What it got.
    pub outcome: TestOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    Behaviour,
    Done,
}

/// The server the behaviour tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    primary: SocketAddr,
    other: SocketAddr,
}

/// The test plan.
#[derive(Debug, Clone)]
pub struct TestPlan {
    config: ClassifyConfig,
    servers: Vec<(String, SocketAddr)>,
    phase: Phase,
    outstanding: BTreeMap<u32, Probe>,
    wave_results: Vec<(Probe, ProbeResult)>,
    next_id: u32,
    next_group: u32,
    discovery_attempts: u8,
    discovery_group: u32,
    target: Option<Target>,
    connectivity: Connectivity,
    external: Option<SocketAddr>,
    local: Option<SocketAddr>,
    varies: Option<bool>,
    rtt: Option<Duration>,
    mapping_rounds: Vec<MappingRound>,
    mapping: Option<MappingBehaviour>,
    filtering_rounds: Vec<FilteringRound>,
    filtering: Option<FilteringBehaviour>,
    late_controls: u32,
    hairpin_attempts: u8,
    hairpin_misses: u8,
    hairpinning: Option<bool>,
    hairpin_done: bool,
    checks: Vec<ServerCheck>,
    evidence: Vec<TestEvidence>,
    notes: Vec<String>,
}

impl TestPlan {
    /// A plan against `servers` (names and resolved addresses, in order of preference).
    pub fn new(config: ClassifyConfig, servers: Vec<(String, SocketAddr)>) -> Result<Self, Error> {
        config.validate()?;
        if servers.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "no STUN server address to test against",
            });
        }
        Ok(TestPlan {
            config,
            servers,
            phase: Phase::Discovery,
            outstanding: BTreeMap::new(),
            wave_results: Vec::new(),
            next_id: 0,
            next_group: 0,
            discovery_attempts: 0,
            discovery_group: 0,
            target: None,
            connectivity: Connectivity::Inconclusive,
            external: None,
            local: None,
            varies: None,
            rtt: None,
            mapping_rounds: Vec::new(),
            mapping: None,
            filtering_rounds: Vec::new(),
            filtering: None,
            late_controls: 0,
            hairpin_attempts: 0,
            hairpin_misses: 0,
            hairpinning: None,
            hairpin_done: false,
            checks: Vec::new(),
            evidence: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Whether the plan has concluded.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The next wave of probes, once every result of the previous wave is in; empty
    /// while results are outstanding or when done.
    pub fn poll_probes(&mut self) -> Vec<Probe> {
        if !self.outstanding.is_empty() || self.phase == Phase::Done {
            return Vec::new();
        }
        let results = std::mem::take(&mut self.wave_results);
        let wave = match self.phase {
            Phase::Discovery if results.is_empty() => self.discovery_wave(),
            Phase::Discovery => self.after_discovery(&results),
            Phase::Behaviour => self.after_behaviour(&results),
            Phase::Done => Vec::new(),
        };
        if wave.is_empty() {
            self.phase = Phase::Done;
        }
        for p in &wave {
            self.outstanding.insert(p.id, p.clone());
        }
        wave
    }

    /// Takes the result of a probe of the current wave (unknown ids are ignored).
    pub fn handle_result(&mut self, result: ProbeResult) {
        let Some(probe) = self.outstanding.remove(&result.id) else {
            return;
        };
        self.evidence.push(TestEvidence {
            test: probe.test,
            round: probe.round,
            server: probe.destination,
            local: result.local,
            accepted_from: probe.accept.clone(),
            outcome: result.outcome.clone(),
        });
        self.wave_results.push((probe, result));
    }

    // One argument per field of the probe: clearer at the call sites than a builder.
    #[allow(clippy::too_many_arguments)]
    fn probe(
        &mut self,
        group: u32,
        test: TestKind,
        round: u8,
        destination: SocketAddr,
        request: BindingRequest,
        accept: SocketAddr,
        plan: RetransmitPlan,
    ) -> Probe {
        self.next_id += 1;
        Probe {
            id: self.next_id,
            group,
            test,
            round,
            destination,
            request,
            accept: vec![accept],
            plan,
            hairpin: test == TestKind::Hairpin,
        }
    }

    fn new_group(&mut self) -> u32 {
        self.next_group += 1;
        self.next_group
    }

    /// The plan for requests whose absence of answer is evidence (and for the controls
    /// sent beside them): see [`no_answer_plan`].
    fn no_answer_plan(&self) -> RetransmitPlan {
        no_answer_plan(&self.config, self.rtt)
    }

    fn discovery_wave(&mut self) -> Vec<Probe> {
        self.discovery_attempts += 1;
        let group = self.new_group();
        self.discovery_group = group;
        let plan = self.config.plan;
        let servers = self.servers.clone();
        servers
            .iter()
            .map(|&(_, s)| {
                self.probe(
                    group,
                    TestKind::MappingI,
                    self.discovery_attempts,
                    s,
                    BindingRequest::new(),
                    s,
                    plan,
                )
            })
            .collect()
    }

    fn after_discovery(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
        let answered: Vec<&(Probe, ProbeResult)> = results
            .iter()
            .filter(|(_, r)| r.outcome.mapped().is_some())
            .collect();
        if answered.is_empty() {
            if self.discovery_attempts < DISCOVERY_ATTEMPTS {
                return self.discovery_wave();
            }
            self.connectivity = Connectivity::UdpBlocked;
            self.check_servers(results);
            self.notes.push(format!(
                "no server answered {} rounds of Binding requests: UDP is blocked, or no \
                 server is up",
                self.discovery_attempts
            ));
            return Vec::new();
        }
        self.check_servers(results);
        let (_, first) = answered[0];
        self.external = first.outcome.mapped();
        self.local = first.local;
        self.connectivity = match (self.external, self.local) {
            (Some(e), Some(l)) if e == l => Connectivity::NoNat,
            (Some(_), Some(l)) if l.ip().is_unspecified() => Connectivity::Inconclusive,
            (Some(_), Some(_)) => Connectivity::Nat,
            _ => Connectivity::Inconclusive,
        };
        // Does the mapping change with the destination (two different server IPs)?
        let mut by_ip: Vec<(SocketAddr, SocketAddr)> = Vec::new();
        for (p, r) in &answered {
            if let Some(m) = r.outcome.mapped()
                && !by_ip.iter().any(|(d, _)| d.ip() == p.destination.ip())
            {
                by_ip.push((p.destination, m));
            }
        }
        if by_ip.len() >= 2 {
            self.varies = Some(by_ip.iter().any(|(_, m)| Some(*m) != self.external));
        }
        let target = self
            .checks
            .iter()
            .find(|c| c.usable_for_behaviour)
            .and_then(|c| {
                c.other.map(|other| Target {
                    primary: c.server,
                    other,
                })
            });
        let Some(target) = target else {
            self.notes.push(
                "no server gave a usable alternate address (RFC 5780 OTHER-ADDRESS or RFC 3489 \
                 CHANGED-ADDRESS): filtering cannot be tested"
                    .into(),
            );
            self.mapping = Some(match self.varies {
                Some(false) => MappingBehaviour::EndpointIndependent,
                Some(true) => {
                    self.notes.push(
                        "the mapping varies by destination (symmetric NAT), but telling address- \
                         from address-and-port-dependent needs a server with an alternate address"
                            .into(),
                    );
                    MappingBehaviour::Inconclusive
                }
                None => {
                    self.notes.push(
                        "only one server IP answered: the mapping cannot be compared across \
                         destinations"
                            .into(),
                    );
                    MappingBehaviour::Inconclusive
                }
            });
            self.filtering = Some(FilteringBehaviour::Inconclusive);
            self.hairpin_done = true;
            return Vec::new();
        };
        self.target = Some(target);
        // Karn: only an answer to a single send is an RTT sample. An answer after
        // retransmissions gives the time since the last send before it, a lower bound:
        // optimistic, which can only cost rounds (a control must still be answered at
        // its first send within half the wait), never a wrong type.
        self.rtt = results
            .iter()
            .find(|(p, _)| p.destination == target.primary)
            .and_then(|(p, r)| match &r.outcome {
                TestOutcome::Answered { rtt: Some(rtt), .. } => Some(*rtt),
                TestOutcome::Answered { elapsed, .. } => p
                    .plan
                    .send_offsets()
                    .filter(|o| o <= elapsed)
                    .last()
                    .map(|o| *elapsed - o),
                _ => None,
            });
        self.mapping_rounds.push(MappingRound {
            i: results
                .iter()
                .find(|(p, _)| p.destination == target.primary)
                .and_then(|(_, r)| r.outcome.mapped()),
            repeat_made: true,
            ..MappingRound::default()
        });
        self.phase = Phase::Behaviour;
        let group = self.discovery_group;
        let mut wave = self.mapping_wave(group, 1, false);
        for round in 1..=FILTERING_ROUNDS_AT_ONCE {
            wave.extend(self.filtering_wave(round));
        }
        for _ in 0..HAIRPIN_MISSES {
            wave.extend(self.hairpin_wave(false));
        }
        wave
    }

    /// Records each server's flavour and whether its alternate address is usable.
    fn check_servers(&mut self, results: &[(Probe, ProbeResult)]) {
        for (name, server) in self.servers.clone() {
            if self.checks.iter().any(|c| c.server == server) {
                continue;
            }
            let outcome = results
                .iter()
                .find(|(p, _)| p.destination == server)
                .map(|(_, r)| &r.outcome);
            let mut check = ServerCheck {
                server,
                name,
                flavor: ServerFlavor::Unreachable,
                other: None,
                usable_for_behaviour: false,
                problem: None,
            };
            if let Some(TestOutcome::Answered {
                other,
                origin,
                from,
                rfc3489,
                mapped: Some(_),
                ..
            }) = outcome
            {
                check.other = *other;
                check.flavor = match other {
                    None => ServerFlavor::Plain,
                    Some(_) if *rfc3489 => ServerFlavor::Rfc3489,
                    Some(_) => ServerFlavor::Rfc5780,
                };
                check.problem = match (other, origin) {
                    (None, _) => Some("no alternate address".into()),
                    (Some(o), _) if o.ip() == server.ip() || o.port() == server.port() => Some(
                        format!("its alternate address {o} does not differ in both IP and port"),
                    ),
                    (Some(_), Some(origin)) if origin != from => Some(format!(
                        "it says it answered from {origin} but the answer came from {from} \
                         (behind a NAT without advertising its public address?)"
                    )),
                    _ => None,
                };
                check.usable_for_behaviour = check.problem.is_none();
            }
            self.checks.push(check);
        }
    }

    fn mapping_wave(&mut self, group: u32, round: u8, with_i: bool) -> Vec<Probe> {
        let Some(t) = self.target else {
            return Vec::new();
        };
        let plan = self.config.plan;
        let alt_ip_primary_port = SocketAddr::new(t.other.ip(), t.primary.port());
        let mut wave = Vec::new();
        if with_i {
            wave.push(self.probe(
                group,
                TestKind::MappingI,
                round,
                t.primary,
                BindingRequest::new(),
                t.primary,
                plan,
            ));
        }
        wave.push(self.probe(
            group,
            TestKind::MappingII,
            round,
            alt_ip_primary_port,
            BindingRequest::new(),
            alt_ip_primary_port,
            plan,
        ));
        wave.push(self.probe(
            group,
            TestKind::MappingIII,
            round,
            t.other,
            BindingRequest::new(),
            t.other,
            plan,
        ));
        if !with_i {
            wave.push(self.probe(
                group,
                TestKind::MappingIRepeat,
                round,
                t.primary,
                BindingRequest::new(),
                t.primary,
                plan,
            ));
        }
        wave
    }

    fn filtering_wave(&mut self, round: usize) -> Vec<Probe> {
        let Some(t) = self.target else {
            return Vec::new();
        };
        let group = self.new_group();
        let round = u8::try_from(round).unwrap_or(u8::MAX);
        // The control runs on the same schedule as the tests it vouches for.
        let wait = self.no_answer_plan();
        let primary_ip_alt_port = SocketAddr::new(t.primary.ip(), t.other.port());
        // The control goes out last, right after the tests: a server that drops
        // requests (a per-source rate limit, a token bucket) and still answers the
        // control at its first send let the tests' first sends through too.
        vec![
            self.probe(
                group,
                TestKind::FilteringChangeIpPort,
                round,
                t.primary,
                BindingRequest::with_change(true, true),
                t.other,
                wait,
            ),
            self.probe(
                group,
                TestKind::FilteringChangePort,
                round,
                t.primary,
                BindingRequest::with_change(false, true),
                primary_ip_alt_port,
                wait,
            ),
            self.probe(
                group,
                TestKind::FilteringControl,
                round,
                t.primary,
                BindingRequest::new(),
                t.primary,
                wait,
            ),
        ]
    }

    fn hairpin_wave(&mut self, with_control: bool) -> Vec<Probe> {
        let (Some(t), Some(external)) = (self.target, self.external) else {
            return Vec::new();
        };
        if !self.config.hairpinning || self.connectivity != Connectivity::Nat || self.hairpin_done {
            self.hairpin_done = true;
            return Vec::new();
        }
        self.hairpin_attempts += 1;
        let round = self.hairpin_attempts;
        let group = self.discovery_group;
        let wait = self.no_answer_plan();
        let mut wave = vec![self.probe(
            group,
            TestKind::Hairpin,
            round,
            external,
            BindingRequest::new(),
            external,
            wait,
        )];
        if with_control {
            let plan = self.config.plan;
            wave.push(self.probe(
                group,
                TestKind::HairpinControl,
                round,
                t.primary,
                BindingRequest::new(),
                t.primary,
                plan,
            ));
        }
        wave
    }

    fn after_behaviour(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
        let mut wave = Vec::new();
        let found = |k: TestKind| {
            results
                .iter()
                .find(|(p, _)| p.test == k)
                .map(|(p, r)| (p.clone(), r.clone()))
        };
        // Mapping.
        if self.mapping.is_none()
            && let Some((p, r)) = found(TestKind::MappingII)
            && let Some(m) = self.mapping_rounds.last_mut()
        {
            m.ii = r.outcome.mapped();
            if let Some((_, r)) = found(TestKind::MappingIII) {
                m.iii = r.outcome.mapped();
            }
            if let Some((_, r)) = found(TestKind::MappingI) {
                m.i = r.outcome.mapped();
            }
            if let Some((_, r)) = found(TestKind::MappingIRepeat) {
                m.i_repeat = r.outcome.mapped();
            }
            let m = *m;
            match decide::mapping(&m) {
                Ok(b) => self.mapping = Some(b),
                Err(why) if self.mapping_rounds.len() < usize::from(MAPPING_ROUNDS) => {
                    self.notes
                        .push(format!("mapping round {}: {why}; repeating", p.round));
                    self.mapping_rounds.push(MappingRound::default());
                    let group = self.new_group();
                    let round = u8::try_from(self.mapping_rounds.len()).unwrap_or(u8::MAX);
                    wave.extend(self.mapping_wave(group, round, true));
                }
                Err(why) => {
                    self.notes.push(format!("mapping: {why}"));
                    self.mapping = Some(MappingBehaviour::Inconclusive);
                }
            }
        }
        // Filtering: one round per control in this wave.
        if self.filtering.is_none() {
            let mut any = false;
            for (ctl, ctl_result) in results
                .iter()
                .filter(|(p, _)| p.test == TestKind::FilteringControl)
            {
                any = true;
                let same = |k: TestKind| {
                    results
                        .iter()
                        .find(|(p, _)| p.test == k && p.group == ctl.group)
                        .map(|(_, r)| &r.outcome)
                };
                let answered = |k| same(k).is_some_and(TestOutcome::answered);
                let wrong = |k| {
                    same(k).is_some_and(|o| {
                        matches!(o, TestOutcome::NoAnswer { wrong_sources } if !wrong_sources.is_empty())
                    })
                };
                // The control vouches for the absences of its round only if its first
                // send was answered (nothing dropped it: neither loss nor a server's
                // rate limit, which would have dropped the tests sent just before it)
                // and within half of their wait (then each of them had that long,
                // three sends over, at the latency the control just showed).
                let window = ctl.plan.give_up_after();
                let control = match &ctl_result.outcome {
                    TestOutcome::Answered {
                        rtt: Some(rtt),
                        elapsed,
                        ..
                    } if *rtt <= window / 2 && *elapsed <= window / 2 => true,
                    TestOutcome::Answered { elapsed, .. } if *elapsed > window / 2 => {
                        self.late_controls += 1;
                        if self.late_controls == 1 {
                            self.notes.push(format!(
                                "filtering round {}: the control was answered after \
                                 {elapsed:?}, too late to vouch for a wait of {window:?}; \
                                 such rounds do not count",
                                ctl.round
                            ));
                        }
                        false
                    }
                    _ => false,
                };
                self.filtering_rounds.push(FilteringRound {
                    control,
                    change_ip_port: answered(TestKind::FilteringChangeIpPort),
                    change_port: answered(TestKind::FilteringChangePort),
                    wrong_source: wrong(TestKind::FilteringChangeIpPort)
                        || wrong(TestKind::FilteringChangePort),
                });
            }
            if any {
                match decide::filtering(
                    &self.filtering_rounds,
                    usize::from(self.config.max_filtering_rounds),
                ) {
                    FilteringVerdict::Decided(f) => self.filtering = Some(f),
                    FilteringVerdict::NeedMore => {
                        let done = self.filtering_rounds.len();
                        let room = usize::from(self.config.max_filtering_rounds) - done;
                        for round in done + 1..=done + room.min(FILTERING_ROUNDS_AT_ONCE) {
                            wave.extend(self.filtering_wave(round));
                        }
                    }
                    FilteringVerdict::Inconclusive(why) => {
                        self.notes.push(format!("filtering: {why}"));
                        self.filtering = Some(FilteringBehaviour::Inconclusive);
                    }
                }
            }
        }
        // Hairpinning: an answer is proof; a miss counts only next to an answered
        // request on the same socket, and it takes several.
        if !self.hairpin_done {
            let control = [
                TestKind::HairpinControl,
                TestKind::MappingIRepeat,
                TestKind::MappingII,
            ]
            .into_iter()
            .any(|k| {
                results.iter().any(|(p, r)| {
                    p.test == k && p.group == self.discovery_group && r.outcome.answered()
                })
            });
            let attempts: Vec<bool> = results
                .iter()
                .filter(|(p, _)| p.test == TestKind::Hairpin)
                .map(|(_, r)| r.outcome.answered())
                .collect();
            if attempts.iter().any(|&a| a) {
                self.hairpinning = Some(true);
                self.hairpin_done = true;
            } else if !attempts.is_empty() {
                if control {
                    let n = u8::try_from(attempts.len()).unwrap_or(u8::MAX);
                    self.hairpin_misses = self.hairpin_misses.saturating_add(n);
                }
                if self.hairpin_misses >= HAIRPIN_MISSES {
                    self.hairpinning = Some(false);
                    self.hairpin_done = true;
                } else if self.hairpin_attempts >= HAIRPIN_ATTEMPTS {
                    self.notes
                        .push("hairpinning: not enough controlled attempts".into());
                    self.hairpin_done = true;
                } else {
                    wave.extend(self.hairpin_wave(true));
                }
            }
        }
        wave
    }

    /// The conclusion so far (complete once [`is_done`](Self::is_done)).
    pub fn classification(&self) -> Classification {
        let port_preservation = match (self.external, self.local) {
            (Some(e), Some(l)) => Some(e.port() == l.port()),
            _ => None,
        };
        let behaviour = NatBehaviour {
            connectivity: self.connectivity,
            mapping: self.mapping.unwrap_or(MappingBehaviour::Inconclusive),
            filtering: self.filtering.unwrap_or(FilteringBehaviour::Inconclusive),
            hairpinning: self.hairpinning,
            port_preservation,
        };
        Classification {
            behaviour,
            legacy: behaviour.legacy_type(),
            external: self.external,
            local: self.local,
            mapping_varies_by_destination: match self.mapping {
                Some(MappingBehaviour::EndpointIndependent) => Some(false),
                Some(MappingBehaviour::AddressDependent)
                | Some(MappingBehaviour::AddressAndPortDependent) => Some(true),
                _ => self.varies,
            },
            behaviour_server: self.target.map(|t| t.primary),
            rtt: self.rtt,
            servers: self.checks.clone(),
            evidence: self.evidence.clone(),
            notes: self.notes.clone(),
            binding_lifetime: None,
            elapsed: Duration::ZERO,
        }
    }
}

/// The retransmission plan for requests whose absence of answer is evidence, from the
/// round-trip time `rtt` measured in test I (RFC 8489 §6.2.1 asks for an RTO estimated
/// as in RFC 6298; from one sample R, RFC 6298 §2.2 gives SRTT = R, RTTVAR = R/2,
/// RTO = SRTT + 4 × RTTVAR = 3R). The RTO is bounded below by the configured floor
/// (timers and scheduling are not finer than a few milliseconds) and above by
/// [`NO_ANSWER_RTO_CEILING`]; without a sample it is the configured plan's RTO. The
/// sends double their spacing (RFC 8489) and the last waits 2 × RTO, so `n` sends wait
/// (2ⁿ⁻¹ + 1) × RTO in all: 9 × RTO for the default 4.
pub(crate) fn no_answer_plan(config: &ClassifyConfig, rtt: Option<Duration>) -> RetransmitPlan {
    let rto = rtt.map_or(config.plan.rto, |r| r.saturating_mul(3));
    RetransmitPlan {
        rto: rto
            .max(config.no_answer_floor)
            .min(NO_ANSWER_RTO_CEILING.max(config.no_answer_floor)),
        max_sends: config.no_answer_sends,
        final_wait_factor: 2,
    }
}
