//! Port states and the verdicts that carry them, each with its evidence.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use natkit_core::Protocol;

use crate::icmp::IcmpReport;
use crate::payload::PayloadKind;

/// One port of one host to probe: an address and a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortProbe {
    /// The target address and port.
    pub addr: SocketAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl fmt::Display for PortProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.protocol)
    }
}

/// What a probe concluded about a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum PortState {
    /// Something answered: a TCP handshake completed, or a UDP reply came.
    Open,
    /// The target said nothing listens: a TCP reset, or an ICMP port
    /// unreachable sent by the target itself.
    Closed,
    /// Something on the way stopped the probe: an ICMP unreachable (or a
    /// port unreachable from a host other than the target), a local refusal
    /// to send, or — for TCP — silence after every try.
    Filtered,
    /// UDP only: silence after every try. The port may be open (the
    /// service ignored the probe) or filtered (it was dropped).
    OpenFiltered,
}

impl PortState {
    /// Every state, in declaration order.
    pub const ALL: [PortState; 4] = [
        PortState::Open,
        PortState::Closed,
        PortState::Filtered,
        PortState::OpenFiltered,
    ];

    /// The snake_case name used in JSON: `open`, `closed`, `filtered`,
    /// `open_filtered`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Open => "open",
            PortState::Closed => "closed",
            PortState::Filtered => "filtered",
            PortState::OpenFiltered => "open_filtered",
        }
    }
}

impl fmt::Display for PortState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was seen that led to a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "seen", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Reason {
    /// TCP: the three-way handshake completed.
    Connected {
        /// From `connect()` to the connection being established.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// TCP: the target answered the SYN with a reset (`ECONNREFUSED`).
    Reset {
        /// From `connect()` to the reset.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// UDP: a datagram came back from the probed address and port.
    Reply {
        /// From the send to the reply.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
        /// The reply's length in bytes.
        bytes: usize,
    },
    /// An ICMP error came back.
    Icmp {
        /// The ICMP type/code and its sender.
        report: IcmpReport,
        /// Whether the target itself sent it.
        from_target: bool,
        /// From the send to the error.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// UDP: the kernel reported the port refused (`ECONNREFUSED`) but no
    /// ICMP details (a platform without a socket error queue).
    Refused {
        /// From the send to the error.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
        rtt: Duration,
    },
    /// Nothing came back.
    Silence {
        /// How many probes were sent.
        tries: u8,
        /// The total time spent waiting over all tries.
        #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "waited_us"))]
        waited: Duration,
    },
    /// This host would not send the probe: no route, a local firewall
    /// (`EPERM`), an address family it lacks …
    LocalError {
        /// The OS error number.
        errno: i32,
    },
}

impl Reason {
    /// The round-trip time measured, if an answer (or ICMP error) came.
    pub fn rtt(&self) -> Option<Duration> {
        match *self {
            Reason::Connected { rtt }
            | Reason::Reset { rtt }
            | Reason::Reply { rtt, .. }
            | Reason::Icmp { rtt, .. }
            | Reason::Refused { rtt } => Some(rtt),
            Reason::Silence { .. } | Reason::LocalError { .. } => None,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Connected { rtt } => write!(f, "connected in {rtt:?}"),
            Reason::Reset { rtt } => write!(f, "reset after {rtt:?}"),
            Reason::Reply { rtt, bytes } => write!(f, "{bytes}-byte reply after {rtt:?}"),
            Reason::Icmp { report, rtt, .. } => write!(f, "{report} after {rtt:?}"),
            Reason::Refused { rtt } => write!(f, "refused after {rtt:?}"),
            Reason::Silence { tries, waited } => {
                write!(f, "no answer to {tries} tries in {waited:?}")
            }
            Reason::LocalError { errno } => {
                write!(f, "not sent: {}", std::io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

/// The conclusion about one port, with its evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PortVerdict {
    /// The port probed.
    pub probe: PortProbe,
    /// What it concluded.
    pub state: PortState,
    /// What was seen.
    pub reason: Reason,
    /// How many probes were sent before the conclusion.
    pub tries: u8,
    /// UDP: the payload sent (the last try's).
    pub payload: Option<PayloadKind>,
}

impl fmt::Display for PortVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.probe, self.state, self.reason)?;
        if let Some(p) = self.payload {
            write!(f, " ({p} payload)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::IcmpKind;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn states_have_snake_case_names() {
        let names: Vec<_> = PortState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["open", "closed", "filtered", "open_filtered"]);
        for s in PortState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }

    #[test]
    fn verdict_serializes_its_evidence() {
        let target = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v = PortVerdict {
            probe: PortProbe {
                addr: SocketAddr::new(target, 53),
                protocol: Protocol::Udp,
            },
            state: PortState::Closed,
            reason: Reason::Icmp {
                report: IcmpReport {
                    kind: IcmpKind::v4(3, 3),
                    offender: Some(target),
                    errno: 111,
                },
                from_target: true,
                rtt: Duration::from_micros(42),
            },
            tries: 1,
            payload: Some(PayloadKind::Dns),
        };
        let json = serde_json::to_value(v).unwrap();
        assert_eq!(json["state"], "closed");
        assert_eq!(json["reason"]["seen"], "icmp");
        assert_eq!(json["reason"]["rtt_us"], 42);
        assert_eq!(json["reason"]["report"]["kind"]["type"], 3);
        assert_eq!(json["reason"]["report"]["offender"], "127.0.0.1");
        assert_eq!(json["probe"]["protocol"], "udp");
        assert_eq!(json["payload"], "dns");
        let back: PortVerdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, v);
        assert_eq!(
            v.to_string(),
            "127.0.0.1:53/udp closed: ICMP type 3 code 3 (port unreachable) from 127.0.0.1 after 42µs (dns payload)"
        );
    }

    #[test]
    fn rtt_only_when_something_answered() {
        let rtt = Duration::from_millis(3);
        assert_eq!(Reason::Reset { rtt }.rtt(), Some(rtt));
        assert_eq!(
            Reason::Silence {
                tries: 2,
                waited: rtt
            }
            .rtt(),
            None
        );
        assert_eq!(Reason::LocalError { errno: 101 }.rtt(), None);
    }
}
