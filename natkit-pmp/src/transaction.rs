//! One request/response exchange as a sans-IO state machine.
//!
//! A [`Transaction`] holds the encoded request, the server's address and a
//! [`Retransmitter`]. The caller (a tokio driver, or a test with a simulated
//! clock) feeds it time and datagrams and takes out datagrams to send, the
//! next deadline and events:
//!
//! ```text
//! loop {
//!     while let Some(t) = txn.poll_transmit() { send t.payload to t.destination }
//!     if let Some(outcome) = txn.outcome() { break }
//!     wait until txn.poll_timeout() or a datagram arrives
//!     txn.handle_timeout(now) / txn.handle_input(now, from, bytes)
//! }
//! ```
//!
//! Only datagrams whose source is exactly the server's address and port are
//! judged; everything else is dropped and counted. The protocol-specific
//! [`Exchange`] decides whether a datagram from the server answers this
//! request (opcode, protocol, internal port, PCP nonce).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::counters::Counters;
use crate::error::Result;
use crate::schedule::{RetransmitPlan, Retransmitter, TimerAction};

/// Why a datagram was not taken as the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// It did not come from the server's address and port.
    WrongSource,
    /// A PCP answer with another mapping nonce.
    WrongNonce,
    /// It did not parse.
    Malformed,
    /// It answers another request (opcode, protocol, internal port).
    Unmatched,
}

/// A protocol's judgement of a datagram from the server ([`Exchange::judge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement<T> {
    /// The answer to this request.
    Accept(T),
    /// Not the answer; drop it.
    Drop(DropReason),
}

/// The protocol-specific half of a transaction: which datagrams answer
/// the request.
pub trait Exchange {
    /// What an accepted answer is turned into.
    type Answer;

    /// Judges a datagram that came from the server's address and port.
    /// Must not panic on any input.
    fn judge(&self, datagram: &[u8]) -> Judgement<Self::Answer>;
}

/// A datagram the caller must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The server answered.
    Answered {
        /// The answer.
        answer: T,
        /// When it arrived.
        at: Instant,
        /// How many requests had been sent.
        sends: u32,
    },
    /// The plan ran out without an answer.
    TimedOut {
        /// How many requests were sent.
        sends: u32,
        /// From the first send to giving up.
        elapsed: Duration,
    },
}

/// Something that happened, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The request was (re)sent; `attempt` counts from 1.
    Sent {
        /// The send's number.
        attempt: u32,
    },
    /// A datagram was dropped.
    Dropped {
        /// Its source.
        from: SocketAddr,
        /// Why.
        reason: DropReason,
    },
    /// The transaction ended (see [`Transaction::outcome`]).
    Finished,
}

/// A request/response exchange with retransmission, driven by the caller.
#[derive(Debug)]
pub struct Transaction<E: Exchange> {
    exchange: E,
    request: Vec<u8>,
    server: SocketAddr,
    timer: Retransmitter,
    transmit_pending: bool,
    outcome: Option<Outcome<E::Answer>>,
    finished: bool,
    events: VecDeque<Event>,
    counters: Counters,
}

impl<E: Exchange> Transaction<E> {
    /// Starts an exchange at `now`: the first send is due at once.
    /// `jitter_seed` feeds the plan's jitter (from the caller's RNG).
    pub fn new(
        exchange: E,
        request: Vec<u8>,
        server: SocketAddr,
        plan: RetransmitPlan,
        now: Instant,
        jitter_seed: u64,
    ) -> Result<Self> {
        let timer = Retransmitter::start(plan, now, jitter_seed)?;
        let mut events = VecDeque::new();
        events.push_back(Event::Sent { attempt: 1 });
        Ok(Transaction {
            exchange,
            request,
            server,
            timer,
            transmit_pending: true,
            outcome: None,
            finished: false,
            events,
            counters: Counters {
                sent: 1,
                ..Counters::default()
            },
        })
    }

    /// The datagram to send now, if any. Each due send is returned once.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        if !self.transmit_pending || self.finished {
            return None;
        }
        self.transmit_pending = false;
        Some(Transmit {
            destination: self.server,
            payload: &self.request,
        })
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None`
    /// once the transaction has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.finished).then(|| self.timer.deadline())
    }

    /// Advances time: retransmits or gives up when a deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        match self.timer.on_timeout(now) {
            TimerAction::Wait => {}
            TimerAction::Retransmit { attempt } => {
                self.transmit_pending = true;
                self.counters.sent += 1;
                self.counters.retransmitted += 1;
                self.events.push_back(Event::Sent { attempt });
            }
            TimerAction::GiveUp => {
                self.counters.timed_out += 1;
                self.finish(Outcome::TimedOut {
                    sends: self.timer.sends(),
                    elapsed: now.saturating_duration_since(self.timer.started()),
                });
            }
        }
    }

    /// Feeds a datagram received at `now` from `from`.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if self.finished {
            return;
        }
        let verdict = if from == self.server {
            self.exchange.judge(datagram)
        } else {
            Judgement::Drop(DropReason::WrongSource)
        };
        match verdict {
            Judgement::Accept(answer) => {
                self.counters.answered += 1;
                self.finish(Outcome::Answered {
                    answer,
                    at: now,
                    sends: self.timer.sends(),
                });
            }
            Judgement::Drop(reason) => {
                match reason {
                    DropReason::WrongSource => self.counters.dropped_wrong_source += 1,
                    DropReason::WrongNonce => self.counters.dropped_wrong_nonce += 1,
                    DropReason::Malformed => self.counters.dropped_malformed += 1,
                    DropReason::Unmatched => self.counters.dropped_unmatched += 1,
                }
                self.events.push_back(Event::Dropped { from, reason });
            }
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How the transaction ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome<E::Answer>> {
        self.outcome.as_ref()
    }

    /// Takes the outcome out, once the transaction has ended.
    pub fn take_outcome(&mut self) -> Option<Outcome<E::Answer>> {
        self.outcome.take()
    }

    /// Whether the transaction has ended.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// What this transaction saw.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The server's address and port.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    fn finish(&mut self, outcome: Outcome<E::Answer>) {
        self.outcome = Some(outcome);
        self.finished = true;
        self.transmit_pending = false;
        self.events.push_back(Event::Finished);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// Accepts `[1]`, drops `[2]` as another nonce and everything else as
    /// malformed.
    struct Toy;
    impl Exchange for Toy {
        type Answer = u8;
        fn judge(&self, d: &[u8]) -> Judgement<u8> {
            match d {
                [1] => Judgement::Accept(1),
                [2] => Judgement::Drop(DropReason::WrongNonce),
                _ => Judgement::Drop(DropReason::Malformed),
            }
        }
    }

    fn server() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1)), 5351)
    }

    #[test]
    fn sends_retransmits_and_gives_up_on_schedule() {
        let t0 = Instant::now();
        let mut tx =
            Transaction::new(Toy, vec![9], server(), RetransmitPlan::natpmp(), t0, 0).unwrap();
        let mut send_times = Vec::new();
        let mut now = t0;
        loop {
            while let Some(t) = tx.poll_transmit() {
                assert_eq!(t.destination, server());
                assert_eq!(t.payload, &[9]);
                send_times.push((now - t0).as_millis());
            }
            let Some(deadline) = tx.poll_timeout() else {
                break;
            };
            now = deadline;
            tx.handle_timeout(now);
        }
        assert_eq!(
            send_times,
            vec![0, 250, 750, 1750, 3750, 7750, 15750, 31750, 63750]
        );
        assert_eq!(
            tx.take_outcome(),
            Some(Outcome::TimedOut {
                sends: 9,
                elapsed: Duration::from_millis(127_750)
            })
        );
        let c = tx.counters();
        assert_eq!((c.sent, c.retransmitted, c.timed_out), (9, 8, 1));
        // Nothing happens after the end.
        tx.handle_timeout(now + Duration::from_secs(1000));
        assert!(tx.poll_transmit().is_none());
        assert!(tx.poll_timeout().is_none());
    }

    #[test]
    fn spoofed_and_wrong_answers_are_dropped_and_counted() {
        let t0 = Instant::now();
        let mut tx =
            Transaction::new(Toy, vec![9], server(), RetransmitPlan::natpmp(), t0, 0).unwrap();
        assert!(tx.poll_transmit().is_some());
        let t = t0 + Duration::from_millis(10);
        // The right bytes from the right address but the wrong port.
        let other_port = SocketAddr::new(server().ip(), 5350);
        tx.handle_input(t, other_port, &[1]);
        // The right bytes from another host.
        let other_host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 66)), 5351);
        tx.handle_input(t, other_host, &[1]);
        tx.handle_input(t, server(), &[2]);
        tx.handle_input(t, server(), &[]);
        assert!(tx.outcome().is_none());
        tx.handle_input(t, server(), &[1]);
        assert_eq!(
            tx.outcome(),
            Some(&Outcome::Answered {
                answer: 1,
                at: t,
                sends: 1
            })
        );
        let c = tx.counters();
        assert_eq!(c.dropped_wrong_source, 2);
        assert_eq!(c.dropped_wrong_nonce, 1);
        assert_eq!(c.dropped_malformed, 1);
        assert_eq!(c.answered, 1);
        let events: Vec<Event> = std::iter::from_fn(|| tx.poll_event()).collect();
        assert_eq!(events.first(), Some(&Event::Sent { attempt: 1 }));
        assert_eq!(
            events[1],
            Event::Dropped {
                from: other_port,
                reason: DropReason::WrongSource
            }
        );
        assert_eq!(events.last(), Some(&Event::Finished));
    }

    #[test]
    fn an_answer_after_retransmissions_counts_sends() {
        let t0 = Instant::now();
        let mut tx =
            Transaction::new(Toy, vec![9], server(), RetransmitPlan::natpmp(), t0, 0).unwrap();
        tx.poll_transmit();
        tx.handle_timeout(t0 + Duration::from_millis(250));
        assert!(tx.poll_transmit().is_some());
        tx.handle_timeout(t0 + Duration::from_millis(749));
        assert!(tx.poll_transmit().is_none(), "retransmitted early");
        tx.handle_timeout(t0 + Duration::from_millis(750));
        assert!(tx.poll_transmit().is_some());
        let at = t0 + Duration::from_millis(800);
        tx.handle_input(at, server(), &[1]);
        assert_eq!(
            tx.take_outcome(),
            Some(Outcome::Answered {
                answer: 1,
                at,
                sends: 3
            })
        );
    }

    /// Detection on a simulated clock: up to three lost
    /// round trips still end in an answer (to the fourth send, at 1.75 s);
    /// only when all four sends of the 2 s window are lost is it "no
    /// answer", and then it says how many went out.
    #[test]
    fn detection_survives_lost_datagrams() {
        for lost in 0..=4u32 {
            let t0 = Instant::now();
            let mut tx =
                Transaction::new(Toy, vec![9], server(), RetransmitPlan::detect(), t0, 0).unwrap();
            let mut now = t0;
            let mut sent = 0;
            loop {
                while tx.poll_transmit().is_some() {
                    sent += 1;
                    if sent > lost {
                        // This send's round trip gets through.
                        tx.handle_input(now + Duration::from_millis(3), server(), &[1]);
                    }
                }
                let Some(deadline) = tx.poll_timeout() else {
                    break;
                };
                now = deadline;
                tx.handle_timeout(now);
            }
            match tx.take_outcome() {
                Some(Outcome::Answered { sends, .. }) => {
                    assert!(lost < 4);
                    assert_eq!(sends, lost + 1);
                }
                Some(Outcome::TimedOut { sends, elapsed }) => {
                    assert_eq!(lost, 4);
                    assert_eq!((sends, elapsed), (4, Duration::from_secs(2)));
                }
                None => panic!("no outcome"),
            }
        }
    }
}
