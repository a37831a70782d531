//! Where answers enter the plan, and what they mean: a finished client transaction
//! becomes its test's [`TestOutcome`]; once a wave's answers are all in they become
//! the discovery checks, mapping rounds, filtering rounds with their controls and
//! hairpinning attempts that [`decide`](super::decide) concludes from, and the next
//! wave.

use std::net::SocketAddr;

use natkit_core::{Connectivity, FilteringBehaviour, MappingBehaviour};

use super::decide::{self, FilteringRound, FilteringVerdict, MappingRound};
use super::{
    DISCOVERY_ATTEMPTS, FILTERING_ROUNDS_AT_ONCE, HAIRPIN_ATTEMPTS, HAIRPIN_MISSES, MAPPING_ROUNDS,
    Phase, TestPlan, TestRequest, TestResult,
};
use crate::Error;
use crate::classify::evidence::{TestEvidence, TestFailure, TestKind, TestOutcome};
use crate::classify::servers;
use crate::client::{BindingResponse, BindingTransaction};

impl TestOutcome {
    /// What a finished client transaction means for its test: a success response is
    /// an answer, a timeout (or no outcome) an absence with the sources that answered
    /// from the wrong address, anything else a failure.
    pub fn from_transaction(
        outcome: Option<Result<BindingResponse, Error>>,
        wrong_sources: Vec<SocketAddr>,
    ) -> TestOutcome {
        match outcome {
            Some(Ok(resp)) => match resp.error_code {
                Some(code) => TestOutcome::Failed(TestFailure::ErrorResponse { code }),
                None => TestOutcome::Answered {
                    mapped: resp.mapped,
                    from: resp.from,
                    other: resp.other_address,
                    rfc3489: resp.other_is_rfc3489,
                    origin: resp.response_origin,
                    rtt: resp.rtt,
                    elapsed: resp.elapsed,
                },
            },
            Some(Err(Error::Timeout { .. })) | None => TestOutcome::NoAnswer { wrong_sources },
            Some(Err(e)) => TestOutcome::Failed(TestFailure::Transaction(e)),
        }
    }
}

impl TestPlan {
    /// Takes the finished client transaction that ran request `id` from the socket
    /// `local`: what it ended with (answer, no answer with the sources that answered
    /// from the wrong address, error) becomes the request's [`TestOutcome`]. A driver
    /// that runs [`BindingTransaction`]s hands them here and does no translating itself.
    pub fn handle_transaction(
        &mut self,
        id: u32,
        local: Option<SocketAddr>,
        txn: &mut BindingTransaction,
    ) {
        let outcome =
            TestOutcome::from_transaction(txn.take_outcome(), txn.wrong_sources().to_vec());
        self.handle_result(TestResult { id, local, outcome });
    }

    /// Takes the result of a request of the current wave (unknown ids are ignored).
    pub fn handle_result(&mut self, result: TestResult) {
        let Some(sent) = self.outstanding.remove(&result.id) else {
            return;
        };
        self.evidence.push(TestEvidence {
            test: sent.test,
            round: sent.round,
            server: sent.destination,
            local: result.local,
            accepted_from: sent.accept.clone(),
            outcome: result.outcome.clone(),
        });
        self.wave_results.push((sent, result));
        if self.outstanding.is_empty() {
            let results = std::mem::take(&mut self.wave_results);
            self.next_wave = match self.phase {
                Phase::Discovery => self.after_discovery(results),
                Phase::Behaviour => self.after_behaviour(&results),
                Phase::Done => Vec::new(),
            };
        }
    }

    fn after_discovery(&mut self, results: Vec<(TestRequest, TestResult)>) -> Vec<TestRequest> {
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
    fn answered_by(&self, server: SocketAddr) -> Option<&(TestRequest, TestResult)> {
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
    fn start_behaviour(&mut self) -> Vec<TestRequest> {
        let target = servers::choose(&self.checks, &self.contacts, self.wave);
        let answer = target
            .and_then(|t| self.answered_by(t.primary))
            .or_else(|| {
                self.discovered
                    .iter()
                    .find(|(_, r)| r.outcome.mapped().is_some())
            })
            .cloned();
        let Some((sent, result)) = answer else {
            return Vec::new();
        };
        self.external = result.outcome.mapped();
        self.local = result.local;
        self.discovery_group = sent.group;
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
            TestOutcome::Answered { elapsed, .. } => sent
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

    fn after_behaviour(&mut self, results: &[(TestRequest, TestResult)]) -> Vec<TestRequest> {
        let mut wave = self.mapping_results(results);
        // Test I to the servers asked last, for their checks and the mapping compare.
        let consensus: Vec<(TestRequest, TestResult)> = results
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

    /// Takes a mapping round's answers; the next mapping wave, if one is needed.
    pub(super) fn mapping_results(
        &mut self,
        results: &[(TestRequest, TestResult)],
    ) -> Vec<TestRequest> {
        let mut wave = Vec::new();
        let Some(t) = self.target else {
            return wave;
        };
        let found = |k: TestKind| {
            results
                .iter()
                .find(|(p, _)| {
                    p.test == k && (k != TestKind::MappingI || p.destination == t.primary)
                })
                .map(|(p, r)| (p.clone(), r.clone()))
        };
        if self.mapping.is_some() {
            return wave;
        }
        let Some((p, r)) = found(TestKind::MappingII) else {
            return wave;
        };
        let Some(m) = self.mapping_rounds.last_mut() else {
            return wave;
        };
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
        wave
    }

    /// Takes the filtering rounds of this wave (one per control); more rounds if
    /// needed.
    pub(super) fn filtering_results(
        &mut self,
        results: &[(TestRequest, TestResult)],
    ) -> Vec<TestRequest> {
        let mut wave = Vec::new();
        let Some(t) = self.target else {
            return wave;
        };
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
            let control = self.control_vouches(ctl, &ctl_result.outcome);
            self.filtering_rounds.push(FilteringRound {
                control,
                change_ip_port: answered(TestKind::FilteringChangeIpPort),
                change_port: answered(TestKind::FilteringChangePort),
                wrong_source: wrong(TestKind::FilteringChangeIpPort)
                    || wrong(TestKind::FilteringChangePort),
                alternate_ip_contacted: self.contacts.ip_by(t.other.ip(), self.wave),
                alternate_port_contacted: self
                    .contacts
                    .endpoint_by(t.primary_ip_alt_port(), self.wave),
            });
        }
        if !any {
            return wave;
        }
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
        wave
    }

    /// Whether a filtering round's control vouches for its absences: its first send
    /// was answered (nothing dropped it: neither loss nor a server's rate limit, which
    /// would have dropped the tests sent just before it) and within half of their wait
    /// (then each of them had that long, three sends over, at the latency the control
    /// just showed).
    pub(super) fn control_vouches(&mut self, ctl: &TestRequest, outcome: &TestOutcome) -> bool {
        let window = ctl.plan.give_up_after();
        match outcome {
            TestOutcome::Answered {
                rtt: Some(rtt),
                elapsed,
                ..
            } if *rtt <= window / 2 && *elapsed <= window / 2 => true,
            TestOutcome::Answered { elapsed, .. } if *elapsed > window / 2 => {
                self.late_controls += 1;
                if self.late_controls == 1 {
                    self.notes.push(format!(
                        "filtering round {}: the control was answered after {elapsed:?}, too \
                         late to vouch for a wait of {window:?}; such rounds do not count",
                        ctl.round
                    ));
                }
                false
            }
            _ => false,
        }
    }

    /// Hairpinning: an answer is proof; a miss counts only next to an answered request
    /// on the same socket, and it takes several.
    pub(super) fn hairpin_results(
        &mut self,
        results: &[(TestRequest, TestResult)],
    ) -> Vec<TestRequest> {
        if self.hairpin_done {
            return Vec::new();
        }
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
            self.hairpin_answered = true;
            self.hairpin_done = true;
        } else if !attempts.is_empty() {
            if control {
                let n = u8::try_from(attempts.len()).unwrap_or(u8::MAX);
                self.hairpin_misses = self.hairpin_misses.saturating_add(n);
            }
            if self.hairpin_misses >= HAIRPIN_MISSES {
                self.hairpin_done = true;
            } else if self.hairpin_attempts >= HAIRPIN_ATTEMPTS {
                self.notes
                    .push("hairpinning: not enough controlled attempts".into());
                self.hairpin_done = true;
            } else {
                return self.hairpin_wave(true);
            }
        }
        Vec::new()
    }
}
