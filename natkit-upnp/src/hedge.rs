//! Hedged requests: which exchanges may be sent again on a fresh connection
//! while the first is still unanswered, and when.
//!
//! Under loss, one HTTP exchange over TCP has a long tail: every lost SYN,
//! request or answer segment costs a retransmission timeout that doubles
//! each time (Linux: 1 s for a SYN, ≥ 200 ms for data, then 2×, 4×…), so two
//! or three losses in a row take the whole 3 s SOAP limit although a fresh
//! connection would most likely get through at once. After a hedge delay
//! without a complete answer, natkit sends the same request again on a new
//! connection, and takes the first usable answer (see `transport`).
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
//!   exactly ours, one of our copies made it (`Igd::add_port_mapping`);
//! - DeletePortMapping: the second copy finds the entry gone and answers
//!   714 NoSuchEntryInArray (miniupnpd does), which after a hedge means the
//!   other copy deleted it (`Igd::delete`).
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

use crate::code::UpnpErrorCode;

/// A second copy goes no earlier than this many times the fastest recent
/// exchange of the same kind with this gateway: a router that takes
/// 400 ms to add a mapping is not sent a copy at 1 s.
pub(crate) const HEDGE_FACTOR: u32 = 4;
/// The most copies of one request (the first and two hedges).
pub(crate) const MAX_COPIES: u8 = 3;
/// How many recent exchanges of each kind are remembered.
const WINDOW: usize = 8;

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

/// The exchanges natkit hedges, each with its own timing record.
const KINDS: [(&str, Repeat); 14] = [
    (
        "GET",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetExternalIPAddress",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetStatusInfo",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetGenericPortMappingEntry",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetSpecificPortMappingEntry",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "AddPortMapping",
        Repeat::Safe {
            self_inflicted: Some(UpnpErrorCode::ConflictInMappingEntry),
        },
    ),
    (
        "DeletePortMapping",
        Repeat::Safe {
            self_inflicted: Some(UpnpErrorCode::NoSuchEntryInArray),
        },
    ),
    (
        "GetFirewallStatus",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetOutboundPinholeTimeout",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "CheckPinholeWorking",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "GetPinholePackets",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "AddPinhole",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "UpdatePinhole",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
    (
        "DeletePinhole",
        Repeat::Safe {
            self_inflicted: None,
        },
    ),
];

/// The kind of a description fetch.
pub(crate) const GET: &str = "GET";

fn kind(name: &str) -> Option<usize> {
    KINDS.iter().position(|(n, _)| *n == name)
}

/// Whether `name` (an action name, or [`GET`]) may be repeated.
pub(crate) fn repeat(name: &str) -> Repeat {
    kind(name).map_or(Repeat::Never, |k| KINDS[k].1)
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
    recent: Mutex<[Recent; KINDS.len()]>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Recent {
    times: [Option<Duration>; WINDOW],
    next: usize,
}

impl Timings {
    /// Records how long one copy of a `name` exchange took to its answer.
    pub(crate) fn record(&self, name: &str, took: Duration) {
        let Some(k) = kind(name) else { return };
        let mut all = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let r = &mut all[k];
        r.times[r.next] = Some(took);
        r.next = (r.next + 1) % WINDOW;
    }

    /// The fastest of the recent `name` exchanges, if any was recorded.
    pub(crate) fn fastest(&self, name: &str) -> Option<Duration> {
        let k = kind(name)?;
        let all = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        all[k].times.iter().flatten().min().copied()
    }
}

/// When to send the first hedge of a `name` exchange: `floor`, or
/// [`HEDGE_FACTOR`] times the fastest recent exchange of that kind if that is
/// later. `None` when it must not be hedged (or hedging is off).
pub(crate) fn hedge_delay(
    name: &str,
    floor: Option<Duration>,
    timings: &Timings,
) -> Option<Duration> {
    let floor = floor?;
    if repeat(name) == Repeat::Never {
        return None;
    }
    let learnt = timings
        .fastest(name)
        .map_or(Duration::ZERO, |t| t * HEDGE_FACTOR);
    Some(floor.max(learnt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_actions_are_repeated() {
        for a in [
            "GetExternalIPAddress",
            "GetStatusInfo",
            "GetGenericPortMappingEntry",
            "GetSpecificPortMappingEntry",
            GET,
        ] {
            assert_eq!(
                repeat(a),
                Repeat::Safe {
                    self_inflicted: None
                },
                "{a}"
            );
        }
        assert_eq!(
            repeat("AddPortMapping"),
            Repeat::Safe {
                self_inflicted: Some(UpnpErrorCode::ConflictInMappingEntry)
            }
        );
        assert_eq!(
            repeat("DeletePortMapping"),
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
                repeat(a),
                Repeat::Safe {
                    self_inflicted: None
                },
                "{a}"
            );
        }
        assert_eq!(repeat("AddAnyPortMapping"), Repeat::Never);
        assert_eq!(repeat("SetConnectionType"), Repeat::Never);
        assert_eq!(repeat(""), Repeat::Never);
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
        assert_eq!(hedge_delay("GetStatusInfo", floor, &t), floor);
        assert_eq!(hedge_delay("GetStatusInfo", None, &t), None);
        assert_eq!(hedge_delay("AddAnyPortMapping", floor, &t), None);
        // A fast gateway: the floor holds.
        t.record("GetStatusInfo", Duration::from_millis(3));
        assert_eq!(hedge_delay("GetStatusInfo", floor, &t), floor);
        // A slow action: four times its fastest recent answer.
        for ms in [400, 300, 900] {
            t.record("AddPortMapping", Duration::from_millis(ms));
        }
        assert_eq!(
            hedge_delay("AddPortMapping", floor, &t),
            Some(Duration::from_millis(1200))
        );
        // The window forgets: eight fast answers later, the floor again.
        for _ in 0..WINDOW {
            t.record("AddPortMapping", Duration::from_millis(10));
        }
        assert_eq!(hedge_delay("AddPortMapping", floor, &t), floor);
        // Unknown kinds are not recorded.
        t.record("AddAnyPortMapping", Duration::from_secs(1));
        assert_eq!(t.fastest("AddAnyPortMapping"), None);
    }
}
