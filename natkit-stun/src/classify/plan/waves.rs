//! The requests of each test: where they go, from which socket, on which schedule.

use std::net::SocketAddr;

use super::{TestPlan, TestRequest, no_answer_plan};
use crate::classify::evidence::TestKind;
use crate::client::{BindingRequest, RtoPlan};
use natkit_core::Connectivity;

impl TestPlan {
    // One argument per field of the request: clearer at the call sites than a builder.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn probe(
        &mut self,
        group: u32,
        test: TestKind,
        round: u8,
        destination: SocketAddr,
        request: BindingRequest,
        accept: SocketAddr,
        plan: RtoPlan,
    ) -> TestRequest {
        self.next_id += 1;
        TestRequest {
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

    /// A plain Binding request to `destination`, answered from it.
    pub(super) fn plain(
        &mut self,
        group: u32,
        test: TestKind,
        round: u8,
        destination: SocketAddr,
        plan: RtoPlan,
    ) -> TestRequest {
        self.probe(
            group,
            test,
            round,
            destination,
            BindingRequest::new(),
            destination,
            plan,
        )
    }

    /// A plain test I to `server` from `group`.
    pub(super) fn test_i(
        &mut self,
        group: u32,
        round: u8,
        server: SocketAddr,
        plan: RtoPlan,
    ) -> TestRequest {
        self.plain(group, TestKind::MappingI, round, server, plan)
    }

    pub(super) fn new_group(&mut self) -> u32 {
        self.next_group += 1;
        self.next_group
    }

    /// The plan for requests whose absence of answer is evidence (and for the controls
    /// sent beside them): see [`no_answer_plan`].
    pub(super) fn no_answer_plan(&self) -> RtoPlan {
        no_answer_plan(&self.config, self.rtt)
    }

    /// Mapping tests on `group`: II (alternate IP), III (alternate IP and port) and,
    /// on the socket of test I, a repeat of I; on a fresh socket test I itself.
    pub(super) fn mapping_wave(&mut self, group: u32, round: u8, with_i: bool) -> Vec<TestRequest> {
        let Some(t) = self.target else {
            return Vec::new();
        };
        let plan = self.config.plan;
        let mut wave = Vec::new();
        if with_i {
            wave.push(self.test_i(group, round, t.primary, plan));
        }
        let ii = t.alt_ip_primary_port();
        wave.push(self.plain(group, TestKind::MappingII, round, ii, plan));
        wave.push(self.plain(group, TestKind::MappingIII, round, t.other, plan));
        if !with_i {
            wave.push(self.plain(group, TestKind::MappingIRepeat, round, t.primary, plan));
        }
        wave
    }

    pub(super) fn filtering_wave(&mut self, round: usize) -> Vec<TestRequest> {
        let Some(t) = self.target else {
            return Vec::new();
        };
        let group = self.new_group();
        let round = u8::try_from(round).unwrap_or(u8::MAX);
        // The control runs on the same schedule as the tests it vouches for.
        let wait = self.no_answer_plan();
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
                t.primary_ip_alt_port(),
                wait,
            ),
            self.plain(group, TestKind::FilteringControl, round, t.primary, wait),
        ]
    }

    pub(super) fn hairpin_wave(&mut self, with_control: bool) -> Vec<TestRequest> {
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
        let mut wave = vec![self.plain(group, TestKind::Hairpin, round, external, wait)];
        if with_control {
            let plan = self.config.plan;
            wave.push(self.plain(group, TestKind::HairpinControl, round, t.primary, plan));
        }
        wave
    }
}
