//! One Binding transaction as a sans-IO state machine (RFC 8489 §6.2.1).
//!
//! A [`BindingTransaction`] owns the encoded request, its destination and a
//! [`RtoPlan`]. The caller — a tokio driver, or a test with a simulated clock —
//! feeds it time and datagrams and takes out datagrams to send, the next deadline and
//! finally the outcome:
//!
//! ```text
//! loop {
//!     while let Some(t) = txn.poll_transmit(now) { send t.payload to t.destination }
//!     if txn.is_done() { break }
//!     wait until txn.poll_timeout() or a datagram arrives
//!     txn.handle_timeout(now) / txn.handle_input(now, from, bytes)
//! }
//! ```
//!
//! A datagram is the answer only if it is a Binding response, carries this
//! transaction's id (all 128 bits of cookie and id, so RFC 3489 requests match too),
//! comes from an accepted source ([`AcceptFrom`]; a CHANGE-REQUEST test is answered
//! from another address) and, when it has a FINGERPRINT, the FINGERPRINT matches.
//! Everything else is dropped and counted ([`BindingCounters`]).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::counters::BindingCounters;
use super::plan::RtoPlan;
use super::request::BindingRequest;
use super::response::BindingResponse;
use crate::attr::AttrType;
use crate::{Class, Error, MAGIC_COOKIE, Message, Method, TransactionId};

/// Which sources may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptFrom {
    /// Only the address the request was sent to (the normal case).
    Destination,
    /// Only these addresses (e.g. the server's other address for CHANGE-REQUEST).
    Only(Vec<SocketAddr>),
}

/// What the transaction expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A Binding success or error response.
    Response,
    /// Its own request, looped back by a hairpinning NAT (RFC 5780 §4.6): a Binding
    /// request with this id, from any source.
    OwnRequest,
}

/// A datagram the caller must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: &'a [u8],
}

/// What [`BindingTransaction::handle_input`] made of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputVerdict {
    /// The answer: the transaction is done.
    Accepted,
    /// Not the answer; dropped and counted.
    Dropped(InputDropReason),
}

/// Why a datagram was not taken as the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDropReason {
    /// Not a well-formed STUN message, or its attributes do not decode.
    Malformed,
    /// Another transaction id.
    WrongTransaction,
    /// Our id, but from a source not accepted.
    WrongSource,
    /// FINGERPRINT present and wrong.
    BadFingerprint,
    /// Not a Binding response (or, for a hairpin test, not our request).
    Unexpected,
    /// The transaction had already ended.
    Late,
}

/// Sources seen answering with our id but dropped, kept for diagnostics (bounded).
const MAX_WRONG_SOURCES: usize = 4;

/// One Binding request and its retransmissions until an answer or the give-up time.
#[derive(Debug, Clone)]
pub struct BindingTransaction {
    request: Vec<u8>,
    key: [u8; 16],
    tid: TransactionId,
    destination: SocketAddr,
    accept: AcceptFrom,
    expect: Expect,
    plan: RtoPlan,
    first_send: Option<Instant>,
    sends: u32,
    transmit_due: bool,
    deadline: Option<Instant>,
    outcome: Option<Result<BindingResponse, Error>>,
    counters: BindingCounters,
    wrong_sources: Vec<SocketAddr>,
}

impl BindingTransaction {
    /// A transaction sending `request` to `destination` on `plan`, with a fresh
    /// transaction id from `rng` (a cryptographically secure RNG, RFC 8489 §6). The first
    /// send is due at once.
    pub fn new<R: rand::CryptoRng + ?Sized>(
        request: &BindingRequest,
        destination: SocketAddr,
        accept: AcceptFrom,
        plan: RtoPlan,
        rng: &mut R,
    ) -> Result<BindingTransaction, Error> {
        plan.validate()?;
        let tid = TransactionId::random(rng);
        let cookie = if request.rfc3489 {
            // A random first word that is not the magic cookie, so the request really
            // is RFC 3489.
            let mut b = [0; 4];
            rng.fill_bytes(&mut b);
            match u32::from_be_bytes(b) {
                MAGIC_COOKIE => MAGIC_COOKIE ^ 1,
                c => c,
            }
        } else {
            MAGIC_COOKIE
        };
        let bytes = request.encode(tid, cookie)?;
        let mut key = [0; 16];
        key[..4].copy_from_slice(&cookie.to_be_bytes());
        key[4..].copy_from_slice(tid.as_bytes());
        Ok(BindingTransaction {
            request: bytes,
            key,
            tid,
            destination,
            accept,
            expect: Expect::Response,
            plan,
            first_send: None,
            sends: 0,
            transmit_due: true,
            deadline: None,
            outcome: None,
            counters: BindingCounters::default(),
            wrong_sources: Vec::new(),
        })
    }

    /// A hairpinning test (RFC 5780 §4.6): sends a Binding request to `own_mapped`, this
    /// socket's own mapped address, and succeeds if the NAT loops the request back to
    /// this socket (from whatever source it chooses).
    pub fn hairpin<R: rand::CryptoRng + ?Sized>(
        own_mapped: SocketAddr,
        plan: RtoPlan,
        rng: &mut R,
    ) -> Result<BindingTransaction, Error> {
        let mut t = Self::new(
            &BindingRequest::new(),
            own_mapped,
            AcceptFrom::Destination,
            plan,
            rng,
        )?;
        t.expect = Expect::OwnRequest;
        Ok(t)
    }

    /// The transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The cookie field and transaction id together: what a response must echo.
    pub fn full_id(&self) -> [u8; 16] {
        self.key
    }

    /// Where the request goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// The encoded request.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request
    }

    /// The next datagram to send, if one is due. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        if !self.transmit_due || self.outcome.is_some() {
            return None;
        }
        self.transmit_due = false;
        if self.first_send.is_none() {
            self.first_send = Some(now);
        } else {
            self.counters.retransmitted += 1;
        }
        let wait = self
            .plan
            .wait_after_send(self.sends)
            .unwrap_or(Duration::ZERO);
        self.sends += 1;
        self.counters.sent += 1;
        self.deadline = Some(now.checked_add(wait).unwrap_or(now));
        Some(Transmit {
            destination: self.destination,
            payload: &self.request,
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` once
    /// done. While a send is due ([`poll_transmit`](Self::poll_transmit) not yet called)
    /// this is the current deadline or `None` before the first send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        self.deadline
    }

    /// Advances the clock: schedules the next retransmission or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || self.transmit_due {
            return;
        }
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        if self.sends < self.plan.max_sends {
            self.transmit_due = true;
        } else {
            self.counters.timed_out += 1;
            self.outcome = Some(Err(Error::Timeout {
                server: self.destination,
                sends: self.sends,
                elapsed: self
                    .first_send
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
            }));
        }
    }

    /// Ends the transaction with `error` (a driver could not send, say). No effect once
    /// done.
    pub fn abort(&mut self, error: Error) {
        if self.outcome.is_none() {
            self.outcome = Some(Err(error));
        }
    }

    /// Whether the 16 bytes after the length field of `bytes` are this transaction's:
    /// a cheap test for drivers that multiplex transactions on one socket.
    pub fn matches_id(&self, bytes: &[u8]) -> bool {
        bytes.get(4..20) == Some(&self.key[..])
    }

    /// Judges a datagram that arrived from `from`.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> InputVerdict {
        let verdict = self.judge(now, from, bytes);
        if let InputVerdict::Dropped(reason) = verdict {
            let c = &mut self.counters;
            match reason {
                InputDropReason::Malformed => c.dropped_malformed += 1,
                InputDropReason::WrongTransaction => c.dropped_wrong_transaction += 1,
                InputDropReason::WrongSource => c.dropped_wrong_source += 1,
                InputDropReason::BadFingerprint => c.dropped_bad_fingerprint += 1,
                InputDropReason::Unexpected => c.dropped_unexpected += 1,
                InputDropReason::Late => c.dropped_late += 1,
            }
        }
        verdict
    }

    fn judge(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> InputVerdict {
        let drop = InputVerdict::Dropped;
        if self.outcome.is_some() {
            return drop(InputDropReason::Late);
        }
        let Ok(msg) = Message::new_checked(bytes) else {
            return drop(InputDropReason::Malformed);
        };
        if msg.legacy_transaction_id() != self.key {
            return drop(InputDropReason::WrongTransaction);
        }
        let class_ok = match self.expect {
            Expect::Response => msg.class().is_response(),
            Expect::OwnRequest => msg.class() == Class::Request,
        };
        if !class_ok || msg.method() != Method::BINDING {
            return drop(InputDropReason::Unexpected);
        }
        let source_ok = match (&self.accept, self.expect) {
            (_, Expect::OwnRequest) => true,
            (AcceptFrom::Destination, _) => from == self.destination,
            (AcceptFrom::Only(list), _) => list.contains(&from),
        };
        if !source_ok {
            if self.wrong_sources.len() < MAX_WRONG_SOURCES && !self.wrong_sources.contains(&from) {
                self.wrong_sources.push(from);
            }
            return drop(InputDropReason::WrongSource);
        }
        let has_fingerprint = msg
            .raw_attributes()
            .any(|a| a.attr_type() == AttrType::FINGERPRINT);
        if has_fingerprint && msg.check_fingerprint().is_err() {
            return drop(InputDropReason::BadFingerprint);
        }
        let first = self.first_send.unwrap_or(now);
        let elapsed = now.saturating_duration_since(first);
        let rtt = (self.sends == 1).then_some(elapsed);
        match BindingResponse::decode(&msg, from, elapsed, rtt, self.sends) {
            Ok(resp) => {
                self.counters.accepted += 1;
                self.outcome = Some(Ok(resp));
                InputVerdict::Accepted
            }
            Err(_) => drop(InputDropReason::Malformed),
        }
    }

    /// Whether the transaction has ended (answered or given up).
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// How it ended: the accepted response, or [`Error::Timeout`]. `None` while running.
    pub fn outcome(&self) -> Option<&Result<BindingResponse, Error>> {
        self.outcome.as_ref()
    }

    /// Takes the outcome out (leaving the transaction done, with no outcome to give).
    pub fn take_outcome(&mut self) -> Option<Result<BindingResponse, Error>> {
        let o = self.outcome.take();
        if o.is_some() {
            // Keep the transaction closed: later datagrams are late, not answers.
            self.outcome = Some(Err(Error::InvalidConfig {
                reason: "outcome already taken",
            }));
        }
        o
    }

    /// What the transaction saw.
    pub fn counters(&self) -> BindingCounters {
        self.counters
    }

    /// How many requests were sent.
    pub fn sends(&self) -> u32 {
        self.sends
    }

    /// Sources that answered with this transaction's id but were not accepted (at most
    /// four): a server that ignores CHANGE-REQUEST shows up here.
    pub fn wrong_sources(&self) -> &[SocketAddr] {
        &self.wrong_sources
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attr::{ChangeRequest, OtherAddress, ResponseOrigin, XorMappedAddress};
    use crate::{MessageBuilder, MessageType};
    use rand::SeedableRng;

    pub(crate) fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    /// A success response to `req` carrying `mapped`, optionally with a bad FINGERPRINT.
    pub(crate) fn answer(req: &[u8], mapped: SocketAddr, other: Option<SocketAddr>) -> Vec<u8> {
        let req = Message::new_checked(req).expect("request");
        let mut buf = vec![0; 256];
        let mut b =
            MessageBuilder::response_to(&mut buf, &req, Class::SuccessResponse).expect("fits");
        b.add_attr(&XorMappedAddress(mapped)).expect("fits");
        if let Some(o) = other {
            b.add_attr(&OtherAddress(o)).expect("fits");
            b.add_attr(&ResponseOrigin(o)).expect("fits");
        }
        let n = b.finish_with_fingerprint().expect("fits");
        buf.truncate(n);
        buf
    }

    #[test]
    fn exact_schedule_and_give_up_time() {
        let t0 = Instant::now();
        let server = addr("192.0.2.1:3478");
        let mut t = BindingTransaction::new(
            &BindingRequest::new(),
            server,
            AcceptFrom::Destination,
            RtoPlan::RFC8489,
            &mut rng(),
        )
        .expect("new");
        let mut sent_at = Vec::new();
        let mut now = t0;
        // Step a simulated clock 1 ms at a time, as a driver would wake up.
        while !t.is_done() {
            while let Some(tx) = t.poll_transmit(now) {
                assert_eq!(tx.destination, server);
                sent_at.push(now - t0);
            }
            t.handle_timeout(now);
            if t.is_done() {
                break;
            }
            now = t.poll_timeout().expect("deadline").max(now);
        }
        let ms = |v| Duration::from_millis(v);
        assert_eq!(
            sent_at,
            [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec()
        );
        assert_eq!(now - t0, ms(39_500));
        match t.outcome() {
            Some(Err(Error::Timeout { sends, elapsed, .. })) => {
                assert_eq!((*sends, *elapsed), (7, ms(39_500)));
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(t.counters().sent, 7);
        assert_eq!(t.counters().retransmitted, 6);
        assert_eq!(t.counters().timed_out, 1);
        // Nothing happens before a deadline.
        let mut t2 = t.clone();
        t2.handle_timeout(t0);
        assert!(t2.is_done());
    }

    #[test]
    fn no_retransmission_before_the_deadline() {
        let t0 = Instant::now();
        let mut t = BindingTransaction::new(
            &BindingRequest::new(),
            addr("192.0.2.1:3478"),
            AcceptFrom::Destination,
            RtoPlan::FAST,
            &mut rng(),
        )
        .expect("new");
        assert!(t.poll_transmit(t0).is_some());
        assert!(t.poll_transmit(t0).is_none());
        t.handle_timeout(t0 + Duration::from_millis(99));
        assert!(t.poll_transmit(t0 + Duration::from_millis(99)).is_none());
        t.handle_timeout(t0 + Duration::from_millis(100));
        assert!(t.poll_transmit(t0 + Duration::from_millis(100)).is_some());
        assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(300)));
    }

    #[test]
    fn spoofed_id_and_source_are_ignored_and_the_real_answer_wins() {
        let t0 = Instant::now();
        let server = addr("192.0.2.1:3478");
        let mut t = BindingTransaction::new(
            &BindingRequest::new(),
            server,
            AcceptFrom::Destination,
            RtoPlan::RFC8489,
            &mut rng(),
        )
        .expect("new");
        let req = t.poll_transmit(t0).expect("send").payload.to_vec();
        let real = addr("198.51.100.7:40000");
        let fake = addr("203.0.113.66:6666");
        let at = t0 + Duration::from_millis(20);

        // Right id, wrong source.
        let spoof = answer(&req, fake, None);
        assert_eq!(
            t.handle_input(at, addr("192.0.2.99:3478"), &spoof),
            InputVerdict::Dropped(InputDropReason::WrongSource)
        );
        // Right source, wrong id.
        let mut other_id = req.clone();
        other_id[19] ^= 0xff;
        assert_eq!(
            t.handle_input(at, server, &answer(&other_id, fake, None)),
            InputVerdict::Dropped(InputDropReason::WrongTransaction)
        );
        // Bad fingerprint.
        let mut bad = answer(&req, fake, None);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            t.handle_input(at, server, &bad),
            InputVerdict::Dropped(InputDropReason::BadFingerprint)
        );
        // Garbage, and our own request reflected.
        assert_eq!(
            t.handle_input(at, server, b"hello"),
            InputVerdict::Dropped(InputDropReason::Malformed)
        );
        assert_eq!(
            t.handle_input(at, server, &req),
            InputVerdict::Dropped(InputDropReason::Unexpected)
        );
        assert!(!t.is_done());
        // The real answer.
        let ok = answer(&req, real, None);
        assert_eq!(t.handle_input(at, server, &ok), InputVerdict::Accepted);
        let resp = t.outcome().expect("done").as_ref().expect("answer");
        assert_eq!(resp.mapped, Some(real));
        assert_eq!(resp.rtt, Some(Duration::from_millis(20)));
        assert!(resp.fingerprint);
        // A later copy is late.
        assert_eq!(
            t.handle_input(at, server, &ok),
            InputVerdict::Dropped(InputDropReason::Late)
        );
        let c = t.counters();
        assert_eq!(
            (
                c.dropped_wrong_source,
                c.dropped_wrong_transaction,
                c.dropped_bad_fingerprint,
                c.dropped_malformed,
                c.dropped_unexpected,
                c.dropped_late,
                c.accepted
            ),
            (1, 1, 1, 1, 1, 1, 1)
        );
        assert_eq!(t.wrong_sources(), &[addr("192.0.2.99:3478")]);
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn change_request_accepts_only_the_named_sources() {
        let t0 = Instant::now();
        let server = addr("192.0.2.1:3478");
        let other = addr("192.0.2.2:3479");
        let mut t = BindingTransaction::new(
            &BindingRequest::with_change(true, true),
            server,
            AcceptFrom::Only(vec![other]),
            RtoPlan::FAST,
            &mut rng(),
        )
        .expect("new");
        let req = t.poll_transmit(t0).expect("send").payload.to_vec();
        let m = Message::new_checked(&req).expect("valid");
        assert_eq!(
            m.get::<ChangeRequest>(),
            Ok(Some(ChangeRequest {
                change_ip: true,
                change_port: true
            }))
        );
        let ans = answer(&req, addr("198.51.100.7:1"), Some(other));
        assert_eq!(
            t.handle_input(t0, server, &ans),
            InputVerdict::Dropped(InputDropReason::WrongSource)
        );
        assert_eq!(t.handle_input(t0, other, &ans), InputVerdict::Accepted);
    }

    #[test]
    fn late_answer_after_retransmission_has_no_rtt() {
        let t0 = Instant::now();
        let server = addr("192.0.2.1:3478");
        let mut t = BindingTransaction::new(
            &BindingRequest::new(),
            server,
            AcceptFrom::Destination,
            RtoPlan::FAST,
            &mut rng(),
        )
        .expect("new");
        let req = t.poll_transmit(t0).expect("send").payload.to_vec();
        let t1 = t0 + Duration::from_millis(100);
        t.handle_timeout(t1);
        assert!(t.poll_transmit(t1).is_some());
        let at = t0 + Duration::from_millis(150);
        assert_eq!(
            t.handle_input(at, server, &answer(&req, addr("198.51.100.7:1"), None)),
            InputVerdict::Accepted
        );
        let resp = t.outcome().expect("done").as_ref().expect("ok");
        assert_eq!((resp.rtt, resp.sends), (None, 2));
        assert_eq!(resp.elapsed, Duration::from_millis(150));
    }

    #[test]
    fn rfc3489_answers_match_on_all_128_bits() {
        let t0 = Instant::now();
        let server = addr("192.0.2.1:3478");
        let req = BindingRequest {
            rfc3489: true,
            ..BindingRequest::new()
        };
        let mut t = BindingTransaction::new(
            &req,
            server,
            AcceptFrom::Destination,
            RtoPlan::FAST,
            &mut rng(),
        )
        .expect("new");
        let bytes = t.poll_transmit(t0).expect("send").payload.to_vec();
        let m = Message::new_checked(&bytes).expect("valid");
        assert_ne!(m.cookie(), MAGIC_COOKIE);
        // An answer with the right 96-bit id but the magic cookie is someone else's.
        let mut wrong = bytes.clone();
        wrong[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        let mapped = addr("198.51.100.7:5");
        let mut buf = vec![0; 128];
        let mk = |req: &[u8], buf: &mut Vec<u8>| {
            let req = Message::new_checked(req).expect("req");
            let mut b =
                MessageBuilder::response_to(buf, &req, Class::SuccessResponse).expect("fits");
            b.add_attr(&crate::attr::MappedAddress(mapped))
                .expect("fits");
            b.finish()
        };
        let n = mk(&wrong, &mut buf);
        assert_eq!(
            t.handle_input(t0, server, &buf[..n]),
            InputVerdict::Dropped(InputDropReason::WrongTransaction)
        );
        let n = mk(&bytes, &mut buf);
        assert_eq!(
            t.handle_input(t0, server, &buf[..n]),
            InputVerdict::Accepted
        );
        let resp = t.outcome().expect("done").as_ref().expect("ok");
        assert_eq!(resp.mapped, Some(mapped));
        assert_eq!(resp.mapped_kind, Some(super::super::MappedKind::Plain));
        let _ = MessageType::BINDING_SUCCESS;
    }

    #[test]
    fn hairpin_accepts_its_own_request_from_anywhere() {
        let t0 = Instant::now();
        let own = addr("198.51.100.7:40000");
        let mut t = BindingTransaction::hairpin(own, RtoPlan::FAST, &mut rng()).expect("new");
        let req = t.poll_transmit(t0).expect("send").payload.to_vec();
        assert_eq!(
            t.handle_input(t0, addr("192.168.1.1:40000"), &req),
            InputVerdict::Accepted
        );
    }

    #[test]
    fn invalid_plan_is_an_error() {
        let plan = RtoPlan {
            max_sends: 0,
            ..RtoPlan::FAST
        };
        assert!(matches!(
            BindingTransaction::new(
                &BindingRequest::new(),
                addr("192.0.2.1:1"),
                AcceptFrom::Destination,
                plan,
                &mut rng()
            ),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
