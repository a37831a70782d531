//! What a probe run reports: verdicts as they come, back-off notices, and a
//! closing summary.

use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::Protocol;

use crate::port_verdict::{PortProbe, PortState, PortVerdict};

/// One item of a probe run's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "event", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ProbeEvent {
    /// A port's verdict.
    Verdict(PortVerdict),
    /// The system ran out of sockets; the in-flight limit was lowered and
    /// the probe that failed will be retried.
    Backoff(Backoff),
    /// Every probe has its verdict; this is the last event.
    Finished(Stats),
}

/// The engine lowered its in-flight limit after running out of sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Backoff {
    /// The new limit.
    pub limit: usize,
    /// How many probes were in flight when it happened.
    pub in_flight: usize,
    /// The OS error (`EMFILE`, `ENFILE`, `ENOBUFS`, `EADDRNOTAVAIL`).
    pub errno: i32,
}

/// How many ports ended in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StateCounts {
    /// Open ports.
    pub open: usize,
    /// Closed ports.
    pub closed: usize,
    /// Filtered ports.
    pub filtered: usize,
    /// UDP ports that stayed silent.
    pub open_filtered: usize,
}

impl StateCounts {
    /// Counts one more port in `state`.
    pub fn add(&mut self, state: PortState) {
        match state {
            PortState::Open => self.open += 1,
            PortState::Closed => self.closed += 1,
            PortState::Filtered => self.filtered += 1,
            PortState::OpenFiltered => self.open_filtered += 1,
        }
    }

    /// The count for `state`.
    pub fn get(&self, state: PortState) -> usize {
        match state {
            PortState::Open => self.open,
            PortState::Closed => self.closed,
            PortState::Filtered => self.filtered,
            PortState::OpenFiltered => self.open_filtered,
        }
    }

    /// All ports counted.
    pub fn total(&self) -> usize {
        self.open + self.closed + self.filtered + self.open_filtered
    }
}

/// Counters for a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// Probes planned.
    pub probes: usize,
    /// Verdicts by state.
    pub counts: StateCounts,
    /// Tries sent (retries included).
    pub attempts: u64,
    /// How often the in-flight limit was lowered.
    pub backoffs: u32,
    /// The in-flight limit at the end.
    pub concurrency_limit: usize,
    /// The in-flight ceiling the run started with.
    pub concurrency_max: usize,
    /// From start to the last verdict.
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::micros", rename = "elapsed_us")
    )]
    pub elapsed: Duration,
}

/// A whole run: every verdict, sorted by address and protocol, and the
/// counters.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Summary {
    /// Every verdict, sorted by address, then protocol.
    pub verdicts: Vec<PortVerdict>,
    /// Every back-off, in order.
    pub backoffs: Vec<Backoff>,
    /// The counters.
    pub stats: Stats,
}

impl Summary {
    /// The verdicts in `state`.
    pub fn in_state(&self, state: PortState) -> impl Iterator<Item = &PortVerdict> + '_ {
        self.verdicts.iter().filter(move |v| v.state == state)
    }

    /// The verdict for `addr`/`protocol`, if it was probed.
    pub fn get(&self, addr: SocketAddr, protocol: Protocol) -> Option<&PortVerdict> {
        let key = PortProbe { addr, protocol };
        self.verdicts
            .binary_search_by(|v| v.probe.cmp(&key))
            .ok()
            .map(|i| &self.verdicts[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port_verdict::Reason;
    use std::net::{IpAddr, Ipv4Addr};

    fn verdict(port: u16, protocol: Protocol, state: PortState) -> PortVerdict {
        PortVerdict {
            probe: PortProbe {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                protocol,
            },
            state,
            reason: Reason::LocalError { errno: 1 },
            tries: 1,
            payload: None,
        }
    }

    #[test]
    fn counts_add_up() {
        let mut c = StateCounts::default();
        for s in [PortState::Open, PortState::Open, PortState::OpenFiltered] {
            c.add(s);
        }
        assert_eq!(c.get(PortState::Open), 2);
        assert_eq!(c.get(PortState::OpenFiltered), 1);
        assert_eq!(c.total(), 3);
    }

    #[test]
    fn summary_lookup() {
        let mut verdicts = vec![
            verdict(80, Protocol::Udp, PortState::OpenFiltered),
            verdict(22, Protocol::Tcp, PortState::Open),
            verdict(80, Protocol::Tcp, PortState::Closed),
        ];
        verdicts.sort_by_key(|v| v.probe);
        let s = Summary {
            verdicts,
            backoffs: Vec::new(),
            stats: Stats {
                probes: 3,
                counts: StateCounts::default(),
                attempts: 3,
                backoffs: 0,
                concurrency_limit: 1,
                concurrency_max: 1,
                elapsed: Duration::ZERO,
            },
        };
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80);
        assert_eq!(s.get(a, Protocol::Tcp).unwrap().state, PortState::Closed);
        assert_eq!(
            s.get(a, Protocol::Udp).unwrap().state,
            PortState::OpenFiltered
        );
        assert!(s.get(SocketAddr::new(a.ip(), 81), Protocol::Tcp).is_none());
        assert_eq!(s.in_state(PortState::Open).count(), 1);
    }

    #[test]
    fn events_are_tagged_in_json() {
        let e = ProbeEvent::Backoff(Backoff {
            limit: 3,
            in_flight: 7,
            errno: 24,
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "backoff");
        assert_eq!(json["limit"], 3);
    }
}
