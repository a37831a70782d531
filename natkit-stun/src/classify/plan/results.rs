//! What each wave's answers mean: mapping rounds, filtering rounds and their
//! controls, hairpinning attempts.

use natkit_core::{FilteringBehaviour, MappingBehaviour};

use super::{
    FILTERING_ROUNDS_AT_ONCE, HAIRPIN_ATTEMPTS, HAIRPIN_MISSES, MAPPING_ROUNDS, Probe, ProbeResult,
    TestPlan,
};
use crate::classify::decide::{self, FilteringRound, FilteringVerdict, MappingRound};
use crate::classify::evidence::{TestKind, TestOutcome};

impl TestPlan {
    /// Takes a mapping round's answers; the next mapping wave, if one is needed.
    pub(super) fn mapping_results(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
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
    pub(super) fn filtering_results(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
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
    pub(super) fn control_vouches(&mut self, ctl: &Probe, outcome: &TestOutcome) -> bool {
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
    pub(super) fn hairpin_results(&mut self, results: &[(Probe, ProbeResult)]) -> Vec<Probe> {
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
