//! When discovery sends which M-SEARCH, sans-IO: a few rounds that back
//! off, so a LAN without an IGD sees a handful of datagrams, not a stream.
//!
//! UDA 2.0 §1.3.2 asks control points to send a search "a few times" and
//! not to flood; each search also costs the router a turn of its event
//! loop (miniupnpd answers SSDP and HTTP in one loop). natkit's schedule,
//! offsets from the start of discovery:
//!
//! | round | at | searches (U: unicast to the gateway, M: multicast) |
//! |---|---|---|
//! | 0 | 0 | U and M `InternetGatewayDevice:1` |
//! | 1 | [`widen_after`](crate::DiscoveryConfig::widen_after) (100 ms) | U and M `InternetGatewayDevice:2`, U `WANIPConnection:1`, U `InternetGatewayDevice:1` again |
//! | 2 | [`repeat_after`](crate::DiscoveryConfig::repeat_after), at least 1 s after round 1 (1.1 s) | U and M `InternetGatewayDevice:1` and `:2`, U `WANIPConnection:1` and `WANPPPConnection:1` |
//! | 3, 4, … | 2 s, then 4 s, 8 s, 16 s (at most) after the previous | as round 2 |
//!
//! Round 1 is sent only while nothing usable has answered, and no round is
//! sent while an answer's description is being checked. So at most 6
//! datagrams in any second: 6 over the 750 ms of natkit-portmap's probe,
//! 12 over a 1.5 s or 2 s discovery. UDA 1.1 devices answer a search for an
//! earlier version of their type (an IGD:2 answers `…:1`); round 1 catches
//! the rest: IGD:2 devices that answer their exact version only, and
//! routers that answer service searches only. UDA 1.0 had no unicast
//! search, so older routers answer only the multicast copies.
//!
//! Under loss, the number of searches an IGD answers in time matters, not
//! their spacing. A device answers a multicast search after a random wait
//! of up to MX (1 s), so within a 1 s discovery mostly the unicast answers
//! count: miniupnpd 2.3.1 (IGD:2) answers every unicast search natkit
//! sends (even `WANPPPConnection:1`, which it does not offer), 4 in rounds
//! 0 and 1, so with 30 % loss on each way through the router (a search
//! and its answer both get through with probability 0.49) a 1 s discovery
//! misses it with probability about 0.51^4 ≈ 7 %, a 2 s one (4 more
//! unicast searches, and the multicast answers) about 0.51^8 ≈ 0.5 %.
//! Under loss the lease keeper's or the caller's retry covers the rest; a
//! stream of searches would too, at the
//! cost of every other host on the LAN.
//!
//! natkit does not search `urn:dslforum-org:device:InternetGatewayDevice:1`:
//! the one dslforum IGD in the corpus (a Huawei HG531) also answers the
//! UPnP Forum's `InternetGatewayDevice:1`, while AVM's FRITZ!Box answers the
//! dslforum type with its TR-064 interface, which wants a password.

use std::time::Duration;

/// Where one search goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchDest {
    /// Unicast to the gateway's SSDP port.
    Gateway,
    /// Multicast to 239.255.255.250:1900.
    Multicast,
}

/// One M-SEARCH datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    /// Where it goes.
    pub dest: SearchDest,
    /// Its search target (`ST`).
    pub target: &'static str,
}

const IGD1: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
const IGD2: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:2";
const WAN_IP1: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
const WAN_PPP1: &str = "urn:schemas-upnp-org:service:WANPPPConnection:1";

/// Every search target natkit sends (and so the only `ST` answers it takes).
pub const SEARCH_TARGETS: [&str; 4] = [IGD1, IGD2, WAN_IP1, WAN_PPP1];

const fn s(dest: SearchDest, target: &'static str) -> Search {
    Search { dest, target }
}

/// Round 0.
const NARROW: [Search; 2] = [s(SearchDest::Gateway, IGD1), s(SearchDest::Multicast, IGD1)];
/// Round 1: a second unicast copy of round 0's, which most IGDs answer,
/// because answers to multicast come after a random wait of up to MX
/// (1 s), often too late for a short discovery.
const WIDE: [Search; 4] = [
    s(SearchDest::Gateway, IGD2),
    s(SearchDest::Multicast, IGD2),
    s(SearchDest::Gateway, WAN_IP1),
    s(SearchDest::Gateway, IGD1),
];
/// Rounds 2 and later.
const ALL: [Search; 6] = [
    s(SearchDest::Gateway, IGD1),
    s(SearchDest::Multicast, IGD1),
    s(SearchDest::Gateway, IGD2),
    s(SearchDest::Multicast, IGD2),
    s(SearchDest::Gateway, WAN_IP1),
    s(SearchDest::Gateway, WAN_PPP1),
];

/// The least time between round 1 and its repeat: a second holds 6
/// datagrams at most.
pub const MIN_REPEAT_AFTER: Duration = Duration::from_secs(1);

/// The longest pause between two rounds.
pub const MAX_ROUND_INTERVAL: Duration = Duration::from_secs(16);

/// The search schedule of one discovery, driven by the time since it
/// started.
#[derive(Debug, Clone)]
pub struct SearchSchedule {
    widen_after: Duration,
    repeat_after: Duration,
    multicast: bool,
    round: u32,
    due: Duration,
}

impl SearchSchedule {
    /// A schedule whose round 1 comes `widen_after` and round 2
    /// `repeat_after` after the start (each later one twice as long after
    /// the previous, at most [`MAX_ROUND_INTERVAL`]; round 2 comes at least
    /// [`MIN_REPEAT_AFTER`] after round 1). Without `multicast`
    /// the multicast searches are left out. A zero `widen_after` sends
    /// rounds 0 and 1 together.
    pub fn new(widen_after: Duration, repeat_after: Duration, multicast: bool) -> Self {
        SearchSchedule {
            widen_after,
            repeat_after: repeat_after.max(widen_after + MIN_REPEAT_AFTER),
            multicast,
            round: 0,
            due: Duration::ZERO,
        }
    }

    /// When the next round is due, as time since the start.
    pub fn next_due(&self) -> Duration {
        self.due
    }

    /// The round due at `elapsed`, if any, and the schedule moves on.
    /// `quiet`: an answer is being checked, or one was usable; round 1
    /// (the wide one, right after round 0) is then skipped, and no round is
    /// sent: the time passes all the same.
    pub fn poll(&mut self, elapsed: Duration, quiet: bool) -> Vec<Search> {
        let mut out: Vec<Search> = Vec::new();
        while elapsed >= self.due {
            if !quiet {
                // A poll that comes late (a busy runtime) sends what the
                // missed rounds hold once, not each of them.
                for s in self.round_searches(self.round) {
                    if !out.contains(&s) {
                        out.push(s);
                    }
                }
            }
            self.round += 1;
            self.due = self.offset(self.round);
        }
        out
    }

    fn round_searches(&self, round: u32) -> impl Iterator<Item = Search> + '_ {
        let set: &[Search] = match round {
            0 => &NARROW,
            1 => &WIDE,
            _ => &ALL,
        };
        set.iter()
            .copied()
            .filter(|s| self.multicast || s.dest == SearchDest::Gateway)
    }

    fn offset(&self, round: u32) -> Duration {
        match round {
            0 => Duration::ZERO,
            1 => self.widen_after,
            2 => self.repeat_after,
            n => {
                let mut at = self.repeat_after;
                let mut step = Duration::from_secs(2);
                for _ in 3..=n {
                    at += step;
                    step = (step * 2).min(MAX_ROUND_INTERVAL);
                }
                at
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives the schedule on a simulated clock in 1 ms steps; returns the
    /// send time of every datagram.
    fn run(schedule: &mut SearchSchedule, until: Duration) -> Vec<(Duration, Search)> {
        let mut sent = Vec::new();
        let mut now = Duration::ZERO;
        while now < until {
            for s in schedule.poll(now, false) {
                sent.push((now, s));
            }
            now += ms(1);
        }
        sent
    }

    #[test]
    fn the_default_schedule() {
        // (ms, datagrams sent then)
        let mut sch = SearchSchedule::new(ms(100), ms(1000), true);
        let sent = run(&mut sch, Duration::from_secs(8));
        let times: Vec<(u64, usize)> = {
            let mut v: Vec<(u64, usize)> = Vec::new();
            for (t, _) in &sent {
                let t = u64::try_from(t.as_millis()).unwrap();
                match v.last_mut() {
                    Some((last, n)) if *last == t => *n += 1,
                    _ => v.push((t, 1)),
                }
            }
            v
        };
        assert_eq!(times, [(0, 2), (100, 4), (1100, 6), (3100, 6), (7100, 6)]);
        // Every target is asked by unicast; the IGD types by multicast too.
        for target in SEARCH_TARGETS {
            assert!(
                sent.iter()
                    .any(|(_, s)| s.target == target && s.dest == SearchDest::Gateway)
            );
        }
        assert_eq!(
            sent.iter()
                .filter(|(_, s)| s.dest == SearchDest::Multicast)
                .count(),
            8
        );
    }

    /// At most 6 datagrams in any second, and at most 6 a second on average
    /// over natkit's discovery windows (750 ms, 1 s, 2 s, 10 s).
    #[test]
    fn never_more_than_six_a_second() {
        for (widen, repeat) in [(100, 1000), (0, 1000), (100, 100), (300, 300), (50, 10)] {
            let mut sch = SearchSchedule::new(ms(widen), ms(repeat), true);
            let sent = run(&mut sch, Duration::from_secs(60));
            for (i, (t, _)) in sent.iter().enumerate() {
                let in_window = sent[i..]
                    .iter()
                    .take_while(|(u, _)| *u < *t + Duration::from_secs(1))
                    .count();
                assert!(
                    in_window <= 6,
                    "widen {widen} repeat {repeat}: {in_window} in the second from {t:?}"
                );
            }
            for window in [750, 1000, 2000, 10_000] {
                let n = sent.iter().filter(|(t, _)| *t < ms(window)).count();
                assert!(
                    n <= 6 || n * 1000 <= 6 * window as usize,
                    "{n} in {window} ms"
                );
            }
        }
    }

    #[test]
    fn rounds_back_off_to_the_cap() {
        let sch = SearchSchedule::new(ms(100), ms(1000), true);
        let offsets: Vec<u64> = (0..9)
            .map(|r| u64::try_from(sch.offset(r).as_millis()).unwrap())
            .collect();
        assert_eq!(
            offsets,
            [0, 100, 1100, 3100, 7100, 15_100, 31_100, 47_100, 63_100]
        );
    }

    #[test]
    fn quiet_rounds_are_skipped_not_delayed() {
        let mut sch = SearchSchedule::new(ms(100), ms(1000), true);
        assert_eq!(sch.poll(ms(0), false).len(), 2);
        // A description is being fetched from 50 ms to 1200 ms.
        assert!(sch.poll(ms(100), true).is_empty());
        assert!(sch.poll(ms(1100), true).is_empty());
        assert_eq!(sch.next_due(), ms(3100));
        assert_eq!(sch.poll(ms(3100), false).len(), 6);
    }

    #[test]
    fn unicast_only() {
        let mut sch = SearchSchedule::new(ms(100), ms(1000), false);
        let sent = run(&mut sch, Duration::from_secs(2));
        assert_eq!(sent.len(), 1 + 3 + 4);
        assert!(sent.iter().all(|(_, s)| s.dest == SearchDest::Gateway));
    }

    #[test]
    fn a_late_poll_sends_the_missed_searches_once() {
        let mut sch = SearchSchedule::new(ms(100), ms(1000), true);
        // The task was not scheduled for 1.5 s: rounds 0, 1 and 2 were
        // due; their six distinct searches go once.
        assert_eq!(sch.poll(ms(1500), false).len(), 6);
        assert_eq!(sch.next_due(), ms(3100));
    }
}
