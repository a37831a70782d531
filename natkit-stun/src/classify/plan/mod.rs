//! The NAT behaviour test plan (RFC 5780 §4; RFC 3489 §10.1 with classic servers) as a
//! sans-IO state machine.
//!
//! The plan hands out *waves* of [`Probe`]s — Binding requests, each to be sent from
//! the local socket of its `group` (a fresh UDP port per group) — and takes back one
//! [`ProbeResult`] per probe. Probes of one wave are independent and are run at once;
//! the next wave depends on the answers.
//!
//! The order is chosen so that no test's traffic can open the filter another test
//! measures, however coarsely the NAT keeps its state. A NAT may keep its filter per
//! internal host rather than per mapping (RFC 3489's wording: "only if the internal
//! host had previously sent a packet to IP address X"): then a request to the server's
//! alternate address from *any* socket of this host lets the alternate address in to
//! every socket, and a restricted cone looks like a full cone. So:
//!
//! 1. test I to the first server alone (then, if it does not answer or cannot test
//!    filtering, to every server): connectivity, the external address, the server's
//!    alternate address and the checks on it, the RTT;
//! 2. filtering rounds (control, change IP and port, change port), each on a fresh
//!    socket and all sent to the primary address only, until filtering is decided;
//!    hairpinning (to this host's own mapped address) alongside;
//! 3. only then the mapping tests II, III and a repeat of I, which send to the
//!    alternate address, and test I to the other servers;
//! 4. a second mapping round if the first was spoiled.
//!
//! Every destination is recorded with its wave ([`Contacts`]); an answer from an
//! address this host had sent to in the same wave or before is not counted as
//! evidence of a more open filter ([`decide`](super::decide)). Requests whose
//! *absence* of answer is evidence are retransmitted on an RTO derived from the RTT
//! measured in test I ([`no_answer_plan`]); each filtering round carries a control
//! request on the same schedule, and its absences count only if that control was
//! answered well inside the wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour, MappingBehaviour, NatBehaviour};

mod results;
mod waves;

use super::config::{ClassifyConfig, NO_ANSWER_RTO_CEILING};
use super::contacts::Contacts;
use super::decide::{self, FilteringRound, MappingRound};
use super::evidence::{Classification, ServerCheck, TestEvidence, TestKind, TestOutcome};
use super::firewall::Firewall;
use super::servers::{self, Target};
use crate::Error;
use crate::client::{BindingRequest, IpFamily, RetransmitPlan, Transaction};

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
/// Sends to the first server alone before every server is asked: two sends, then a
/// wait of two RTOs (300 ms on the default plan).
const FIRST_ALONE_SENDS: u32 = 2;

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

/// The test plan.
#[derive(Debug, Clone)]
pub struct TestPlan {
    config: ClassifyConfig,
    servers: Vec<(String, SocketAddr)>,
    phase: Phase,
    outstanding: BTreeMap<u32, Probe>,
    wave_results: Vec<(Probe, ProbeResult)>,
    /// Every discovery result so far (test I to the servers).
    discovered: Vec<(Probe, ProbeResult)>,
    /// The number of the wave handed out last (the first is 1).
    wave: u32,
    contacts: Contacts,
    next_id: u32,
    next_group: u32,
    discovery_attempts: u8,
    /// The first server was asked alone and the rest not yet.
    first_alone: bool,
    discovery_group: u32,
    /// Servers not asked yet (asked once filtering is decided).
    unasked: Vec<(String, SocketAddr)>,
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
    hairpin_answered: bool,
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
            discovered: Vec::new(),
            wave: 0,
            contacts: Contacts::default(),
            next_id: 0,
            next_group: 0,
            discovery_attempts: 0,
            first_alone: false,
            discovery_group: 0,
            unasked: Vec::new(),
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
            hairpin_answered: false,
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
            Phase::Discovery => self.after_discovery(results),
            Phase::Behaviour => self.after_behaviour(&results),
            Phase::Done => Vec::new(),
        };
        if wave.is_empty() {
            self.finish();
            return wave;
        }
        self.wave += 1;
        for p in &wave {
            self.contacts.record(p.destination, self.wave);
            self.outstanding.insert(p.id, p.clone());
        }
        wave
    }

    /// Takes the finished client transaction that ran probe `id` from the socket
    /// `local`: what it ended with (answer, no answer with the sources that answered
    /// from the wrong address, error) becomes the probe's [`TestOutcome`]. A driver
    /// that runs [`Transaction`]s hands them here and does no translating itself.
    pub fn handle_transaction(
        &mut self,
        id: u32,
        local: Option<SocketAddr>,
        txn: &mut Transaction,
    ) {
        let outcome =
            TestOutcome::from_transaction(txn.take_outcome(), txn.wrong_sources().to_vec());
        self.handle_result(ProbeResult { id, local, outcome });
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

    /// Test I on a fresh socket: to the first server alone at the first attempt when
    /// there are several (so that no other server's address, which may be the first
    /// one's alternate, is sent to before filtering is tested), else to every server.
    fn discovery_wave(&mut self) -> Vec<Probe> {
        self.discovery_attempts += 1;
        let group = self.new_group();
        self.discovery_group = group;
        let round = self.discovery_attempts;
        let mut plan = self.config.plan;
        let servers: Vec<SocketAddr> = if self.discovery_attempts == 1 && self.servers.len() > 1 {
            self.first_alone = true;
            plan.max_sends = plan.max_sends.min(FIRST_ALONE_SENDS);
            plan.final_wait_factor = plan.final_wait_factor.min(2);
            vec![self.servers[0].1]
        } else {
            self.servers.iter().map(|&(_, s)| s).collect()
        };
        servers
            .into_iter()
            .map(|s| self.test_i(group, round, s, plan))
            .collect()
    }

    fn after_discovery(&mut self, results: Vec<(Probe, ProbeResult)>) -> Vec<Probe> {
        self.discovered.extend(results);
        self.update_checks();
        if self.first_alone {
            self.first_alone = false;
            if self.checks.first().is_some_and(|c| c.usable_for_behaviour) {
                self.unasked = self.servers[1..].to_vec();
                return self.start_behaviour();
            }
            // The first server is silent or cannot test filtering: ask every server
            // from the same socket (the first again only if it was silent).
            let group = self.discovery_group;
            let plan = self.config.plan;
            let round = self.discovery_attempts;
            let skip = usize::from(self.answered_by(self.servers[0].1).is_some());
            let rest: Vec<SocketAddr> = self.servers[skip..].iter().map(|&(_, s)| s).collect();
            return rest
                .into_iter()
                .map(|s| self.test_i(group, round, s, plan))
                .collect();
        }
        if self
            .discovered
            .iter()
            .all(|(_, r)| r.outcome.mapped().is_none())
        {
            if self.discovery_attempts < DISCOVERY_ATTEMPTS {
                self.discovered.clear();
                return self.discovery_wave();
            }
            self.connectivity = Connectivity::UdpBlocked;
            self.notes.push(format!(
                "no server answered {} rounds of Binding requests: UDP is blocked, or no \
                 server is up",
                self.discovery_attempts
            ));
            return Vec::new();
        }
        self.start_behaviour()
    }

    /// The answer of `server` to test I in discovery, if any.
    fn answered_by(&self, server: SocketAddr) -> Option<&(Probe, ProbeResult)> {
        self.discovered
            .iter()
            .find(|(p, r)| p.destination == server && r.outcome.mapped().is_some())
    }

    /// Each server's check from its best answer so far, in the configured order.
    fn update_checks(&mut self) {
        let mut checks = Vec::with_capacity(self.servers.len());
        for (name, server) in &self.servers {
            let answered = self
                .discovered
                .iter()
                .find(|(p, r)| p.destination == *server && r.outcome.mapped().is_some());
            let asked = self
                .discovered
                .iter()
                .any(|(p, _)| p.destination == *server);
            if asked || answered.is_some() {
                checks.push(servers::check(
                    name,
                    *server,
                    answered.map(|(_, r)| &r.outcome),
                ));
            }
        }
        self.checks = checks;
    }

    /// Whether the mapping changed between two server IPs, from every test I so far.
    fn update_varies(&mut self) {
        let mut by_ip: Vec<(SocketAddr, SocketAddr)> = Vec::new();
        for (p, r) in &self.discovered {
            if let Some(m) = r.outcome.mapped()
                && !by_ip.iter().any(|(d, _)| d.ip() == p.destination.ip())
            {
                by_ip.push((p.destination, m));
            }
        }
        if by_ip.len() >= 2 {
            self.varies = Some(by_ip.iter().any(|(_, m)| Some(*m) != self.external));
        }
    }

    /// Picks the server and sends the first behaviour wave: filtering and hairpinning.
    fn start_behaviour(&mut self) -> Vec<Probe> {
        let target = servers::choose(&self.checks, &self.contacts, self.wave);
        let answer = target
            .and_then(|t| self.answered_by(t.primary))
            .or_else(|| {
                self.discovered
                    .iter()
                    .find(|(_, r)| r.outcome.mapped().is_some())
            })
            .cloned();
        let Some((probe, result)) = answer else {
            return Vec::new();
        };
        self.external = result.outcome.mapped();
        self.local = result.local;
        self.discovery_group = probe.group;
        self.connectivity = match (self.external, self.local) {
            (Some(e), Some(l)) if e == l => Connectivity::NoNat,
            (Some(_), Some(l)) if l.ip().is_unspecified() => Connectivity::Inconclusive,
            (Some(_), Some(_)) => Connectivity::Nat,
            _ => Connectivity::Inconclusive,
        };
        self.update_varies();
        let Some(target) = target else {
            self.no_target();
            return Vec::new();
        };
        self.target = Some(target);
        // Karn: only an answer to a single send is an RTT sample. An answer after
        // retransmissions gives the time since the last send before it, a lower bound:
        // optimistic, which can only cost rounds (a control must still be answered at
        // its first send within half the wait), never a wrong type.
        self.rtt = match &result.outcome {
            TestOutcome::Answered { rtt: Some(rtt), .. } => Some(*rtt),
            TestOutcome::Answered { elapsed, .. } => probe
                .plan
                .send_offsets()
                .filter(|o| o <= elapsed)
                .last()
                .map(|o| *elapsed - o),
            _ => None,
        };
        self.mapping_rounds.push(MappingRound {
            i: self.external,
            repeat_made: true,
            ..MappingRound::default()
        });
        self.phase = Phase::Behaviour;
        let mut wave = Vec::new();
        for round in 1..=FILTERING_ROUNDS_AT_ONCE {
            wave.extend(self.filtering_wave(round));
        }
        for attempt in 0..HAIRPIN_MISSES {
            wave.extend(self.hairpin_wave(attempt == 0));
        }
        wave
    }

    /// No server can test filtering: what the mapped addresses of several servers say.
    fn no_target(&mut self) {
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
    }

    fn after_behaviour(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
        let mut wave = self.mapping_results(results);
        // Test I to the servers asked last, for their checks and the mapping compare.
        let consensus: Vec<(Probe, ProbeResult)> = results
            .iter()
            .filter(|(p, _)| {
                p.test == TestKind::MappingI
                    && self.target.is_some_and(|t| t.primary != p.destination)
            })
            .cloned()
            .collect();
        if !consensus.is_empty() {
            self.discovered.extend(consensus);
            self.update_checks();
            self.update_varies();
        }
        if self.filtering.is_none() {
            wave.extend(self.filtering_results(results));
        }
        // Filtering is decided: now the tests that send to the alternate address.
        if self.filtering.is_some() && !self.mapping_started() {
            let group = self.discovery_group;
            wave.extend(self.mapping_wave(group, 1, false));
            let plan = self.config.plan;
            for (_, server) in std::mem::take(&mut self.unasked) {
                wave.push(self.test_i(group, 1, server, plan));
            }
        }
        wave.extend(self.hairpin_results(results));
        wave
    }

    /// Whether the first mapping wave went out.
    fn mapping_started(&self) -> bool {
        self.mapping.is_some() || self.evidence.iter().any(|e| e.test == TestKind::MappingII)
    }

    /// The plan ends: conclusions that need every axis.
    fn finish(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        if self.target.is_some()
            && self.hairpin_misses >= HAIRPIN_MISSES
            && !self.hairpin_answered
            && !self.hairpin_miss_counts()
        {
            self.notes.push(
                "hairpinning: the request to this host's own public address did not come \
                 back, but where the mapping depends on the destination the looped-back \
                 request arrives through a new mapping that the filter may drop, so no \
                 hairpinning cannot be told from filtering"
                    .into(),
            );
        }
    }

    /// A hairpin miss means "no hairpinning" only if the looped-back request would
    /// pass the filter: it arrives from this host's own public address through the
    /// mapping the request made, the same one when the mapping is endpoint-independent.
    fn hairpin_miss_counts(&self) -> bool {
        self.mapping == Some(MappingBehaviour::EndpointIndependent)
            || self.filtering == Some(FilteringBehaviour::EndpointIndependent)
    }

    /// Whether the NAT kept the local port: proven by a mapping that kept it. One that
    /// did not says "no" only if it was the socket's first mapping: where the mapping
    /// depends on the destination and the socket had sent elsewhere first (a silent
    /// server), that earlier mapping may hold the port.
    fn port_preservation(&self) -> Option<bool> {
        let (e, l) = (self.external?, self.local?);
        if e.port() == l.port() {
            return Some(true);
        }
        let first_mapping = self.mapping == Some(MappingBehaviour::EndpointIndependent)
            || self.discovered.iter().all(|(p, _)| {
                p.group != self.discovery_group
                    || Some(p.destination) == self.target.map(|t| t.primary)
            });
        first_mapping.then_some(false)
    }

    fn hairpinning(&self) -> Option<bool> {
        if self.hairpin_answered {
            Some(true)
        } else if self.hairpin_misses >= HAIRPIN_MISSES && self.hairpin_miss_counts() {
            Some(false)
        } else {
            None
        }
    }

    /// The conclusion so far (complete once [`is_done`](Self::is_done)).
    pub fn classification(&self) -> Classification {
        let behaviour = NatBehaviour {
            connectivity: self.connectivity,
            mapping: self.mapping.unwrap_or(MappingBehaviour::Inconclusive),
            filtering: self.filtering.unwrap_or(FilteringBehaviour::Inconclusive),
            hairpinning: self.hairpinning(),
            port_preservation: self.port_preservation(),
        };
        Classification {
            family: self.servers.first().map(|(_, s)| IpFamily::of(s.ip())),
            behaviour,
            legacy: behaviour.legacy_type(),
            firewall: Firewall::of(&behaviour),
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
