//! The NAT behaviour test plan (RFC 5780 §4; RFC 3489 §10.1 with classic servers) as a
//! sans-IO state machine.
//!
//! The plan hands out *waves* of [`TestRequest`]s — Binding requests, each to be sent from
//! the local socket of its `group` (a fresh UDP port per group) — and takes back one
//! [`TestResult`] per request. Requests of one wave are independent and are run at once;
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
//! evidence of a more open filter (`decide`). Requests whose
//! *absence* of answer is evidence are retransmitted on an RTO derived from the RTT
//! measured in test I ([`no_answer_plan`]); each filtering round carries a control
//! request on the same schedule, and its absences count only if that control was
//! answered well inside the wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::{Connectivity, FilteringBehaviour, MappingBehaviour};

mod decide;
#[cfg(test)]
pub(crate) use decide::CONFIRMATIONS;
mod results;
mod waves;

use super::config::{ClassifyConfig, NO_ANSWER_RTO_CEILING};
use super::contacts::Contacts;
use super::evidence::{ServerCheck, TestEvidence, TestKind, TestOutcome};
use super::servers::Target;
use crate::Error;
use crate::client::{BindingRequest, RtoPlan};
use decide::{FilteringRound, MappingRound};

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
pub struct TestRequest {
    /// Identifies the request in its [`TestResult`].
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
    pub plan: RtoPlan,
    /// A hairpinning request: the answer is the request itself, looped back
    /// ([`BindingTransaction::hairpin`](crate::client::BindingTransaction::hairpin)).
    pub hairpin: bool,
}

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The request's id.
    pub id: u32,
    /// The local address of the request's group socket.
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
    outstanding: BTreeMap<u32, TestRequest>,
    wave_results: Vec<(TestRequest, TestResult)>,
    /// The wave the last wave's answers call for, handed out by `poll_requests`.
    next_wave: Vec<TestRequest>,
    /// Every discovery result so far (test I to the servers).
    discovered: Vec<(TestRequest, TestResult)>,
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
            next_wave: Vec::new(),
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

    /// The next wave of requests, once every result of the previous wave is in; empty
    /// while results are outstanding or when done.
    pub fn poll_requests(&mut self) -> Vec<TestRequest> {
        if !self.outstanding.is_empty() || self.phase == Phase::Done {
            return Vec::new();
        }
        let wave = if self.wave == 0 {
            self.discovery_wave()
        } else {
            std::mem::take(&mut self.next_wave)
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

    /// Test I on a fresh socket: to the first server alone at the first attempt when
    /// there are several (so that no other server's address, which may be the first
    /// one's alternate, is sent to before filtering is tested), else to every server.
    fn discovery_wave(&mut self) -> Vec<TestRequest> {
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
}

/// The retransmission plan for requests whose absence of answer is evidence, from the
/// round-trip time `rtt` measured in test I (RFC 8489 §6.2.1 asks for an RTO estimated
/// as in RFC 6298; from one sample R, RFC 6298 §2.2 gives SRTT = R, RTTVAR = R/2,
/// RTO = SRTT + 4 × RTTVAR = 3R). The RTO is bounded below by the configured floor
/// (timers and scheduling are not finer than a few milliseconds) and above by
/// [`NO_ANSWER_RTO_CEILING`]; without a sample it is the configured plan's RTO. The
/// sends double their spacing (RFC 8489) and the last waits 2 × RTO, so `n` sends wait
/// (2ⁿ⁻¹ + 1) × RTO in all: 9 × RTO for the default 4.
pub(crate) fn no_answer_plan(config: &ClassifyConfig, rtt: Option<Duration>) -> RtoPlan {
    let rto = rtt.map_or(config.plan.rto, |r| r.saturating_mul(3));
    RtoPlan {
        rto: rto
            .max(config.no_answer_floor)
            .min(NO_ANSWER_RTO_CEILING.max(config.no_answer_floor)),
        max_sends: config.no_answer_sends,
        final_wait_factor: 2,
    }
}
