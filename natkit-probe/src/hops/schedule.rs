//! The hop trace's timing, sans-IO: which TTL to send when, and when to stop.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::{Hop, HopAnswer, HopConfig, HopReply};

/// One datagram to send: TTL `ttl`, its `attempt`-th try (from 0). Each try
/// goes out on its own socket, so every answer belongs to exactly one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopTry {
    /// The TTL (hop limit).
    pub ttl: u8,
    /// 0 for the first try.
    pub attempt: u8,
}

/// What [`HopSchedule::poll`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopStep {
    /// Send this try now.
    Send(HopTry),
    /// Nothing to send before this instant (or before an answer comes).
    WaitUntil(Instant),
    /// Finished: read [`HopSchedule::hops`].
    Done,
}

#[derive(Debug, Clone)]
struct Slot {
    sent: Vec<Instant>,
    answer: Option<(HopReply, Duration)>,
}

/// The hop trace's timing, sans-IO: every TTL at once, each retried after
/// `try_timeout` while silent, all done by `tries × try_timeout` or as soon as
/// every hop up to the target answered.
#[derive(Debug, Clone)]
pub struct HopSchedule {
    config: HopConfig,
    target: IpAddr,
    end: Instant,
    slots: Vec<Slot>,
    /// The smallest TTL that reached the target: hops past it are the target
    /// again, not worth waiting for.
    limit: u8,
}

impl HopSchedule {
    /// A schedule toward `target` starting at `now`.
    pub fn new(config: HopConfig, target: IpAddr, now: Instant) -> HopSchedule {
        let config = config.clamped();
        HopSchedule {
            config,
            target,
            end: now + config.bound(),
            slots: vec![
                Slot {
                    sent: Vec::new(),
                    answer: None,
                };
                usize::from(config.max_hops)
            ],
            limit: config.max_hops,
        }
    }

    /// The configuration in force (out-of-range values clamped).
    pub fn config(&self) -> &HopConfig {
        &self.config
    }

    /// When the trace ends at the latest.
    pub fn deadline(&self) -> Instant {
        self.end
    }

    fn live(&self) -> impl Iterator<Item = (u8, &Slot)> {
        (1..=self.limit).zip(&self.slots)
    }

    /// Whether every hop up to the target has answered, or time is up.
    pub fn is_done(&self, now: Instant) -> bool {
        now >= self.end || self.live().all(|(_, s)| s.answer.is_some())
    }

    /// The next thing to do at `now`.
    pub fn poll(&mut self, now: Instant) -> HopStep {
        if self.is_done(now) {
            return HopStep::Done;
        }
        let timeout = self.config.try_timeout;
        let tries = usize::from(self.config.tries);
        let mut wake = self.end;
        for ttl in 1..=self.limit {
            let slot = &mut self.slots[usize::from(ttl - 1)];
            if slot.answer.is_some() || slot.sent.len() >= tries {
                continue;
            }
            let due = slot.sent.last().map_or(now, |&t| t + timeout);
            if due <= now {
                let attempt = u8::try_from(slot.sent.len()).unwrap_or(u8::MAX);
                slot.sent.push(now);
                return HopStep::Send(HopTry { ttl, attempt });
            }
            if due > now {
                wake = wake.min(due);
            }
        }
        HopStep::WaitUntil(wake)
    }

    /// Records what `at` drew at `now`. The first answer for a TTL counts;
    /// later ones, and answers to tries never sent, are ignored.
    pub fn on_reply(&mut self, at: HopTry, reply: HopReply, now: Instant) {
        let Some(slot) = at
            .ttl
            .checked_sub(1)
            .and_then(|i| self.slots.get_mut(usize::from(i)))
        else {
            return;
        };
        let Some(&sent) = slot.sent.get(usize::from(at.attempt)) else {
            return;
        };
        if slot.answer.is_some() {
            return;
        }
        slot.answer = Some((reply, now.saturating_duration_since(sent)));
        if reply == HopReply::Reached && at.ttl < self.limit {
            self.limit = at.ttl;
        }
    }

    /// The hops so far, TTL 1 up to the target (or `max_hops`).
    pub fn hops(&self) -> Vec<Hop> {
        self.live()
            .map(|(ttl, slot)| match slot.answer {
                None => Hop::silent(ttl),
                Some((HopReply::TimeExceeded { from }, rtt)) => {
                    Hop::new(ttl, from, HopAnswer::Router { rtt })
                }
                Some((HopReply::Reached, rtt)) => Hop::target(ttl, self.target, rtt),
                Some((HopReply::Unreachable { kind, from }, rtt)) => {
                    Hop::new(ttl, from, HopAnswer::Unreachable { icmp: kind, rtt })
                }
            })
            .collect()
    }
}
