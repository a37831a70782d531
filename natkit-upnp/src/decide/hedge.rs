//! Hedged requests: which exchanges may be sent again on a fresh connection
//! while the first is still unanswered, and when.
//!
//! Under loss, one HTTP exchange over TCP has a long tail: every lost SYN,
//! request or answer segment costs a retransmission timeout that doubles
//! each time (Linux: 1 s for a SYN, ≥ 200 ms for data, then 2×, 4×…), so two
//! or three losses in a row take the whole 3 s SOAP limit although a fresh
//! connection would most likely get through at once. After a hedge delay
//! without a complete answer, natkit sends the same request again on a new
//! connection, and takes the first usable answer: [`Race`] decides when
//! each copy goes and which answer is taken; `transport` runs the copies.
//!
//! Only actions that are safe to repeat are hedged:
//! - the reads (GetExternalIPAddress, GetStatusInfo,
//!   GetGenericPortMappingEntry, GetSpecificPortMappingEntry) and the
//!   description `GET`;
//! - AddPortMapping: adding the identical mapping again for the same
//!   internal client overwrites it (IGD:1 WANIPConnection 2.4.16, IGD:2's
//!   table: same protocol, port, remote host and client = "Success
//!   (overwrite)"). miniupnpd's `upnp_redirect` does exactly that: an
//!   existing rule with the same internal address and remote host is
//!   updated in place (lease restarted), only another client gets 718.
//!   Other routers have been reported to answer 718 to a re-add of a
//!   client's own mapping (Open.NAT issues #11 and #14, on renewal), so a
//!   718 to a hedged AddPortMapping is held back while another copy is in
//!   flight, and if it is all there is, the entry is read back: if it is
//!   exactly ours, one of our copies made it (`crate::decide::add`);
//! - DeletePortMapping: the second copy finds the entry gone and answers
//!   714 NoSuchEntryInArray (miniupnpd does), which after a hedge means the
//!   other copy deleted it (`crate::decide::add::delete_outcome`).
//!
//! - the IPv6 firewall's actions (`WANIPv6FirewallControl`): its reads;
//!   UpdatePinhole (a second copy sets the same lease); AddPinhole, since
//!   a second copy for the same flow finds the pinhole the first made and
//!   returns its ID (the spec's rule, seen from miniupnpd in the lab; its
//!   2.3.1 then sets a far expiry, which the mapper corrects, see
//!   `UpnpMapper`); DeletePinhole, whose second copy finds the pinhole gone
//!   (704, or 402 from miniupnpd 2.3.1), which the mapper takes as done.
//!
//! AddAnyPortMapping is never hedged: each copy may be granted another
//! port, and the extra mapping would be left behind. Unknown actions are
//! not hedged either.

use std::sync::Mutex;
use std::time::Duration;

use crate::wire::code::UpnpErrorCode;

/// A second copy goes no earlier than this many times the fastest recent
/// exchange of the same kind with this gateway: a router that takes
/// 400 ms to add a mapping is not sent a copy at 1 s.
pub(crate) const HEDGE_FACTOR: u32 = 4;
/// The most copies of one request (the first and five hedges).
pub(crate) const MAX_COPIES: u8 = 6;
/// How many recent exchanges of each kind are remembered.
const WINDOW: usize = 8;
/// The fewest answers of a kind a gateway's pace is learnt from. Under loss
/// one answer may have waited out a lost segment (200 ms or more) or SYN
/// (500 ms, the connect race): taken for the router's own pace, it held back
/// the next exchange's copies past its limit, and that exchange went
/// unhedged (one `natkit map --once` in about 200 under 30 % loss failed so).
const MIN_SAMPLES: usize = 3;
/// However slow a gateway has been, this many copies fit within an
/// exchange's time limit.
const MIN_COPIES_IN_LIMIT: u32 = 4;

/// Whether an exchange may be repeated, and which answer a repeat can
/// cause by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Not safe to send twice.
    Never,
    /// Safe; a fault with this code may have been caused by another copy
    /// of the same request, so a success from a copy still in flight is
    /// preferred to it.
    Safe {
        /// The fault our own duplicate can cause.
        self_inflicted: Option<UpnpErrorCode>,
    },
}

/// The exchanges natkit has hedging rules for: the description `GET` and
/// the SOAP actions by name. Each has its own timing record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exchange {
    /// The device description `GET`.
    Describe,
    GetExternalIPAddress,
    GetStatusInfo,
    GetGenericPortMappingEntry,
    GetSpecificPortMappingEntry,
    AddPortMapping,
    AddAnyPortMapping,
    DeletePortMapping,
    GetFirewallStatus,
    GetOutboundPinholeTimeout,
    CheckPinholeWorking,
    GetPinholePackets,
    AddPinhole,
    UpdatePinhole,
    DeletePinhole,
}

impl Exchange {
    /// Every exchange, in the order of their timing records.
    const ALL: [Exchange; 15] = [
        Exchange::Describe,
        Exchange::GetExternalIPAddress,
        Exchange::GetStatusInfo,
        Exchange::GetGenericPortMappingEntry,
        Exchange::GetSpecificPortMappingEntry,
        Exchange::AddPortMapping,
        Exchange::AddAnyPortMapping,
        Exchange::DeletePortMapping,
        Exchange::GetFirewallStatus,
        Exchange::GetOutboundPinholeTimeout,
        Exchange::CheckPinholeWorking,
        Exchange::GetPinholePackets,
        Exchange::AddPinhole,
        Exchange::UpdatePinhole,
        Exchange::DeletePinhole,
    ];

    /// The SOAP action named `name`, if natkit has rules for it.
    pub(crate) fn action(name: &str) -> Option<Exchange> {
        Self::ALL
            .into_iter()
            .find(|e| *e != Exchange::Describe && e.name() == name)
    }

    /// The action name (`GET` for the description).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Exchange::Describe => "GET",
            Exchange::GetExternalIPAddress => "GetExternalIPAddress",
            Exchange::GetStatusInfo => "GetStatusInfo",
            Exchange::GetGenericPortMappingEntry => "GetGenericPortMappingEntry",
            Exchange::GetSpecificPortMappingEntry => "GetSpecificPortMappingEntry",
            Exchange::AddPortMapping => "AddPortMapping",
            Exchange::AddAnyPortMapping => "AddAnyPortMapping",
            Exchange::DeletePortMapping => "DeletePortMapping",
            Exchange::GetFirewallStatus => "GetFirewallStatus",
            Exchange::GetOutboundPinholeTimeout => "GetOutboundPinholeTimeout",
            Exchange::CheckPinholeWorking => "CheckPinholeWorking",
            Exchange::GetPinholePackets => "GetPinholePackets",
            Exchange::AddPinhole => "AddPinhole",
            Exchange::UpdatePinhole => "UpdatePinhole",
            Exchange::DeletePinhole => "DeletePinhole",
        }
    }

    /// Whether it may be sent twice (see the [module docs](self)).
    pub(crate) fn repeat(self) -> Repeat {
        let safe = |self_inflicted| Repeat::Safe { self_inflicted };
        match self {
            Exchange::AddAnyPortMapping => Repeat::Never,
            Exchange::AddPortMapping => safe(Some(UpnpErrorCode::ConflictInMappingEntry)),
            Exchange::DeletePortMapping => safe(Some(UpnpErrorCode::NoSuchEntryInArray)),
            Exchange::Describe
            | Exchange::GetExternalIPAddress
            | Exchange::GetStatusInfo
            | Exchange::GetGenericPortMappingEntry
            | Exchange::GetSpecificPortMappingEntry
            | Exchange::GetFirewallStatus
            | Exchange::GetOutboundPinholeTimeout
            | Exchange::CheckPinholeWorking
            | Exchange::GetPinholePackets
            | Exchange::AddPinhole
            | Exchange::UpdatePinhole
            | Exchange::DeletePinhole => safe(None),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whether an exchange (`None`: one natkit has no rules for) may be
/// repeated.
pub(crate) fn repeat(exchange: Option<Exchange>) -> Repeat {
    exchange.map_or(Repeat::Never, Exchange::repeat)
}

/// The action name in a `SOAPAction` header value
/// (`"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping"`).
pub(crate) fn action_name(soap_action: &str) -> &str {
    let v = soap_action.trim().trim_matches('"');
    v.rsplit_once('#').map_or(v, |(_, a)| a)
}

/// The fastest recent exchanges of each kind with one gateway.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    recent: Mutex<[Recent; Exchange::ALL.len()]>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Recent {
    times: [Option<Duration>; WINDOW],
    next: usize,
}

impl Timings {
    /// Records how long one copy of an exchange took to its answer.
    pub(crate) fn record(&self, exchange: Exchange, took: Duration) {
        let mut all = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let r = &mut all[exchange.index()];
        r.times[r.next] = Some(took);
        r.next = (r.next + 1) % WINDOW;
    }

    /// The fastest of the recent exchanges of this kind, once at least
    /// [`MIN_SAMPLES`] were recorded.
    pub(crate) fn fastest(&self, exchange: Exchange) -> Option<Duration> {
        let all = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let times = all[exchange.index()].times.iter().flatten();
        if times.clone().count() < MIN_SAMPLES {
            return None;
        }
        times.min().copied()
    }
}

/// When to send the first hedge of an exchange whose time limit is `limit`:
/// `floor`, or [`HEDGE_FACTOR`] times the fastest recent exchange of that
/// kind if that is later, but never so late that fewer than
/// [`MIN_COPIES_IN_LIMIT`] copies fit within the limit. `None` when it must
/// not be hedged (or hedging is off).
pub(crate) fn hedge_delay(
    exchange: Option<Exchange>,
    floor: Option<Duration>,
    timings: &Timings,
    limit: Duration,
) -> Option<Duration> {
    let floor = floor?;
    let exchange = exchange.filter(|e| e.repeat() != Repeat::Never)?;
    let learnt = timings
        .fastest(exchange)
        .map_or(Duration::ZERO, |t| t * HEDGE_FACTOR);
    Some(floor.max(learnt.min(limit / MIN_COPIES_IN_LIMIT)))
}

/// One request's copies, as a state machine with no I/O: when the next
/// copy goes, and what an answer or a failure of one copy means. The
/// transport runs the copies and sleeps until [`Race::hedge_at`]; `I` is
/// its clock's instant (tokio's), or any instant in tests.
#[derive(Debug, Clone)]
pub(crate) struct Race<I> {
    sent: u8,
    in_flight: u8,
    /// When the next copy goes, and the interval after it.
    next_hedge: Option<(I, Duration)>,
    deadline: I,
    /// The fault our own duplicate can cause.
    self_inflicted: Option<UpnpErrorCode>,
}

/// What to do with one copy's complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnAnswer {
    /// It is the answer; drop the other copies.
    Take,
    /// A fault our own duplicate may have caused while another copy is in
    /// flight: keep it (the first such) in case nothing better comes, and
    /// wait for the others. No more copies are sent: the router answers.
    Hold,
}

/// What one copy's failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Others are still in flight: wait for them.
    Wait,
    /// None is left: the answer is a held fault if there is one, else this
    /// failure.
    Over,
}

impl<I> Race<I>
where
    I: Copy + Ord + std::ops::Add<Duration, Output = I>,
{
    /// The first copy went at `start`; `hedge_after` from the plan (`None`:
    /// one copy only), nothing sent at or after `deadline`.
    pub(crate) fn new(
        exchange: Option<Exchange>,
        hedge_after: Option<Duration>,
        start: I,
        deadline: I,
    ) -> Race<I> {
        let self_inflicted = match repeat(exchange) {
            Repeat::Safe { self_inflicted } => self_inflicted,
            Repeat::Never => None,
        };
        Race {
            sent: 1,
            in_flight: 1,
            next_hedge: hedge_after.map(|d| (start + d, d)),
            deadline,
            self_inflicted,
        }
    }

    /// How many copies were started.
    pub(crate) fn sent(&self) -> u8 {
        self.sent
    }

    /// When the next copy is due, if one may still go.
    pub(crate) fn hedge_at(&self) -> Option<I> {
        self.next_hedge
            .filter(|(at, _)| self.sent < MAX_COPIES && *at < self.deadline)
            .map(|(at, _)| at)
    }

    /// The next copy went (at [`hedge_at`](Self::hedge_at)); each further
    /// one as long after the previous.
    pub(crate) fn hedged(&mut self) {
        self.sent += 1;
        self.in_flight += 1;
        self.next_hedge = self.next_hedge.map(|(at, d)| (at + d, d));
    }

    /// A copy answered completely. `fault` reads the answer's UPnP fault
    /// code; it is called only when that can matter (another copy is in
    /// flight and the exchange has a fault its duplicate causes).
    pub(crate) fn answered(&mut self, fault: impl FnOnce() -> Option<UpnpErrorCode>) -> OnAnswer {
        self.in_flight = self.in_flight.saturating_sub(1);
        let doubtful = self.in_flight > 0
            && self
                .self_inflicted
                .is_some_and(|code| fault() == Some(code));
        if doubtful {
            self.next_hedge = None;
            OnAnswer::Hold
        } else {
            OnAnswer::Take
        }
    }

    /// A copy failed (connection, framing, size).
    pub(crate) fn failed(&mut self) -> OnFailure {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            OnFailure::Over
        } else {
            OnFailure::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(name: &str) -> Repeat {
        repeat(Exchange::action(name))
    }

    #[test]
    fn only_safe_actions_are_repeated() {
        for a in [
            "GetExternalIPAddress",
            "GetStatusInfo",
            "GetGenericPortMappingEntry",
            "GetSpecificPortMappingEntry",
        ] {
            assert_eq!(
                by_name(a),
                Repeat::Safe {
                    self_inflicted: None
                },
                "{a}"
            );
        }
        assert_eq!(
            repeat(Some(Exchange::Describe)),
            Repeat::Safe {
                self_inflicted: None
            }
        );
        assert_eq!(
            by_name("AddPortMapping"),
            Repeat::Safe {
                self_inflicted: Some(UpnpErrorCode::ConflictInMappingEntry)
            }
        );
        assert_eq!(
            by_name("DeletePortMapping"),
            Repeat::Safe {
                self_inflicted: Some(UpnpErrorCode::NoSuchEntryInArray)
            }
        );
        for a in [
            "GetFirewallStatus",
            "GetOutboundPinholeTimeout",
            "CheckPinholeWorking",
            "GetPinholePackets",
            "AddPinhole",
            "UpdatePinhole",
            "DeletePinhole",
        ] {
            assert_eq!(
                by_name(a),
                Repeat::Safe {
                    self_inflicted: None
                },
                "{a}"
            );
        }
        assert_eq!(by_name("AddAnyPortMapping"), Repeat::Never);
        assert_eq!(by_name("SetConnectionType"), Repeat::Never);
        assert_eq!(by_name(""), Repeat::Never);
        // The description's GET is no SOAP action.
        assert_eq!(Exchange::action("GET"), None);
    }

    #[test]
    fn names_and_records_are_one_to_one() {
        for (i, e) in Exchange::ALL.into_iter().enumerate() {
            assert_eq!(e.index(), i);
            if e != Exchange::Describe {
                assert_eq!(Exchange::action(e.name()), Some(e));
            }
        }
    }

    #[test]
    fn action_names_from_headers() {
        assert_eq!(
            action_name("\"urn:schemas-upnp-org:service:WANIPConnection:2#AddAnyPortMapping\""),
            "AddAnyPortMapping"
        );
        assert_eq!(action_name("urn:x:1#GetStatusInfo"), "GetStatusInfo");
        assert_eq!(action_name("\"\""), "");
    }

    #[test]
    fn delay_is_floor_or_learnt() {
        let t = Timings::default();
        let floor = Some(Duration::from_millis(500));
        let limit = Duration::from_secs(6);
        let status = Some(Exchange::GetStatusInfo);
        let add = Some(Exchange::AddPortMapping);
        assert_eq!(hedge_delay(status, floor, &t, limit), floor);
        assert_eq!(hedge_delay(status, None, &t, limit), None);
        assert_eq!(
            hedge_delay(Some(Exchange::AddAnyPortMapping), floor, &t, limit),
            None
        );
        assert_eq!(hedge_delay(None, floor, &t, limit), None);
        // A fast gateway: the floor holds.
        for _ in 0..MIN_SAMPLES {
            t.record(Exchange::GetStatusInfo, Duration::from_millis(3));
        }
        assert_eq!(hedge_delay(status, floor, &t, limit), floor);
        // A slow action: four times its fastest recent answer…
        for ms in [400, 300, 900] {
            t.record(Exchange::AddPortMapping, Duration::from_millis(ms));
        }
        assert_eq!(
            hedge_delay(add, floor, &t, limit),
            Some(Duration::from_millis(1200))
        );
        // …but four copies still fit within a shorter limit.
        assert_eq!(
            hedge_delay(add, floor, &t, Duration::from_secs(3)),
            Some(Duration::from_millis(750))
        );
        // The window forgets: eight fast answers later, the floor again.
        for _ in 0..WINDOW {
            t.record(Exchange::AddPortMapping, Duration::from_millis(10));
        }
        assert_eq!(hedge_delay(add, floor, &t, limit), floor);
    }

    /// One answer that waited out a lost segment is not the router's pace:
    /// the next exchange of its kind is hedged from the floor.
    #[test]
    fn one_slow_answer_is_not_learnt() {
        let t = Timings::default();
        let floor = Some(Duration::from_millis(500));
        let ip = Some(Exchange::GetExternalIPAddress);
        let limit = Duration::from_secs(3);
        t.record(Exchange::GetExternalIPAddress, Duration::from_millis(1000));
        assert_eq!(hedge_delay(ip, floor, &t, limit), floor);
        t.record(Exchange::GetExternalIPAddress, Duration::from_millis(1100));
        assert_eq!(hedge_delay(ip, floor, &t, limit), floor);
        t.record(Exchange::GetExternalIPAddress, Duration::from_millis(1200));
        assert_eq!(
            hedge_delay(ip, floor, &t, limit),
            Some(Duration::from_millis(750))
        );
    }

    /// Milliseconds on a simulated clock: plain numbers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Ms(u64);

    impl std::ops::Add<Duration> for Ms {
        type Output = Ms;
        fn add(self, d: Duration) -> Ms {
            Ms(self.0 + d.as_millis() as u64)
        }
    }

    fn race(exchange: Exchange, hedge_ms: Option<u64>, deadline: u64) -> Race<Ms> {
        Race::new(
            Some(exchange),
            hedge_ms.map(Duration::from_millis),
            Ms(0),
            Ms(deadline),
        )
    }

    /// Sends every copy the race asks for, up to `until`; the times sent.
    fn hedge_until(r: &mut Race<Ms>, until: u64) -> Vec<u64> {
        let mut sent = Vec::new();
        while let Some(Ms(at)) = r.hedge_at().filter(|t| t.0 <= until) {
            r.hedged();
            sent.push(at);
        }
        sent
    }

    #[test]
    fn copies_go_each_hedge_delay_up_to_six_before_the_deadline() {
        let mut r = race(Exchange::GetStatusInfo, Some(500), 3000);
        assert_eq!(r.hedge_at(), Some(Ms(500)));
        assert_eq!(hedge_until(&mut r, 3000), [500, 1000, 1500, 2000, 2500]);
        assert_eq!(r.sent(), MAX_COPIES);
        assert_eq!(r.hedge_at(), None);
        // No more than six, however long the limit.
        let mut r = race(Exchange::GetStatusInfo, Some(500), 60_000);
        assert_eq!(
            hedge_until(&mut r, 60_000).len(),
            usize::from(MAX_COPIES) - 1
        );
        // None at or past the deadline.
        let mut r = race(Exchange::GetStatusInfo, Some(500), 1000);
        assert_eq!(hedge_until(&mut r, 3000), [500]);
        // Not hedged: one copy.
        let r = race(Exchange::GetStatusInfo, None, 3000);
        assert_eq!(r.hedge_at(), None);
        assert_eq!(r.sent(), 1);
    }

    #[test]
    fn the_first_answer_wins_unless_a_duplicate_may_have_caused_it() {
        let conflict = || Some(UpnpErrorCode::ConflictInMappingEntry);
        // Alone: whatever it is, it is the answer (and is not even read).
        let mut r = race(Exchange::AddPortMapping, Some(500), 3000);
        assert_eq!(r.answered(|| unreachable!("not read")), OnAnswer::Take);
        // A 718 to AddPortMapping with another copy in flight: held, and no
        // more copies go; the other copy's success is taken.
        let mut r = race(Exchange::AddPortMapping, Some(500), 3000);
        hedge_until(&mut r, 500);
        assert_eq!(r.answered(conflict), OnAnswer::Hold);
        assert_eq!(r.hedge_at(), None);
        assert_eq!(r.answered(|| None), OnAnswer::Take);
        // Held, then the other copy fails: over, with the held fault.
        let mut r = race(Exchange::AddPortMapping, Some(500), 3000);
        hedge_until(&mut r, 500);
        assert_eq!(r.answered(conflict), OnAnswer::Hold);
        assert_eq!(r.failed(), OnFailure::Over);
        // 718 is no duplicate's doing for DeletePortMapping (714 is), and a
        // read has none.
        let mut r = race(Exchange::DeletePortMapping, Some(500), 3000);
        hedge_until(&mut r, 500);
        assert_eq!(r.answered(conflict), OnAnswer::Take);
        let mut r = race(Exchange::DeletePortMapping, Some(500), 3000);
        hedge_until(&mut r, 500);
        assert_eq!(
            r.answered(|| Some(UpnpErrorCode::NoSuchEntryInArray)),
            OnAnswer::Hold
        );
        let mut r = race(Exchange::GetStatusInfo, Some(500), 3000);
        hedge_until(&mut r, 500);
        assert_eq!(r.answered(|| unreachable!("not read")), OnAnswer::Take);
    }

    #[test]
    fn a_failed_copy_counts_only_when_none_is_left() {
        let mut r = race(Exchange::GetExternalIPAddress, Some(500), 3000);
        hedge_until(&mut r, 1000);
        assert_eq!(r.failed(), OnFailure::Wait);
        assert_eq!(r.failed(), OnFailure::Wait);
        assert_eq!(r.failed(), OnFailure::Over);
    }
}
