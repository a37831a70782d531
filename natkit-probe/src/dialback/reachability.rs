//! From what the server saw and what our responders saw to a verdict per
//! port (sans-IO; the table is in the module docs of [`super`]).

use std::fmt;

use super::message::DialOutcome;

/// Whether a port is reachable from outside, and if not, where it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Reachability {
    /// The server's dial arrived at this host's port (proven by the nonce
    /// unless a local service holds the port, see `proven`).
    Reachable,
    /// Something answered from outside, but not this host's port: the
    /// router forwards it to another LAN host (or another local port), or
    /// a middlebox answers in its place.
    WrongHost,
    /// Refused (TCP reset, ICMP port unreachable) on a path that should
    /// lead here: this host or a firewall rejects it.
    Closed,
    /// Dropped on the way: nothing came back, or an ICMP "unreachable"
    /// from a router (e.g. an ISP blocking inbound 443).
    Filtered,
    /// Nothing on the router forwards the port to this host.
    NotForwarded,
}

impl Reachability {
    /// Every verdict, in declaration order.
    pub const ALL: [Reachability; 5] = [
        Reachability::Reachable,
        Reachability::WrongHost,
        Reachability::Closed,
        Reachability::Filtered,
        Reachability::NotForwarded,
    ];

    /// The snake_case name: `reachable`, `wrong_host`, `closed`,
    /// `filtered`, `not_forwarded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Reachable => "reachable",
            Reachability::WrongHost => "wrong_host",
            Reachability::Closed => "closed",
            Reachability::Filtered => "filtered",
            Reachability::NotForwarded => "not_forwarded",
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this host's responder for a port saw while the server dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "saw", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum ResponderSaw {
    /// The server's probe with our nonce arrived and was acknowledged.
    Nonce,
    /// The probe for this port (our nonce) arrived at the responder of
    /// another local port: the router forwards it to the wrong port.
    NonceOnOtherPort {
        /// The local port it arrived at.
        local: u16,
    },
    /// Connections or datagrams arrived, none with our probe.
    Foreign {
        /// How many.
        count: u32,
    },
    /// Nothing arrived.
    Nothing,
    /// A local service already holds the port, so no responder could
    /// listen: whether the dial reached *this* host cannot be proven.
    HeldByLocalService,
    /// The port could not be bound for another reason (e.g. `EACCES` for
    /// a port below 1024 without privileges); as unprovable as a held one.
    CannotBind {
        /// The OS error number.
        errno: i32,
    },
}

impl ResponderSaw {
    fn listened(self) -> bool {
        !matches!(
            self,
            ResponderSaw::HeldByLocalService | ResponderSaw::CannotBind { .. }
        )
    }
}

/// What the control port told about ports nobody forwards. The client
/// adds one port per protocol to each request, picked at random, on which
/// it holds no responder: the router's answer there is its answer for "not
/// forwarded", to compare silent ports against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "control", rename_all = "snake_case"))]
pub enum ControlEvidence {
    /// The control port was refused (reset / port unreachable): the path
    /// answers ports that lead nowhere, so a silent port was dropped.
    Refused {
        /// The control port.
        port: u16,
    },
    /// The control port was silent too: unforwarded ports are dropped
    /// silently, like filtered ones.
    Silent {
        /// The control port.
        port: u16,
    },
    /// No usable control (none sent, or it answered or got an ICMP error).
    Unknown,
}

impl ControlEvidence {
    /// What a control port's dial outcome says.
    pub fn from_outcome(port: u16, outcome: DialOutcome) -> Self {
        match outcome {
            DialOutcome::Refused => ControlEvidence::Refused { port },
            DialOutcome::Silence => ControlEvidence::Silent { port },
            _ => ControlEvidence::Unknown,
        }
    }
}

/// Everything a verdict is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// What the server saw.
    pub server: DialOutcome,
    /// What our responder saw.
    pub responder: ResponderSaw,
    /// Whether the server saw another address than our end of the control
    /// connection (a NAT in between).
    pub behind_nat: bool,
    /// The caller knows the router forwards this port to this host (e.g.
    /// a UPnP/NAT-PMP mapping it just made).
    pub expect_forwarded: bool,
    /// The control port of the same protocol.
    pub control: ControlEvidence,
}

/// Which rule of the decision table gave the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Why {
    /// Our responder got the nonce and the server got the echo.
    NonceEchoed,
    /// Our responder got the nonce; its echo did not reach the server.
    NonceArrived,
    /// Our nonce arrived at the responder of another local port.
    ArrivedAtOtherPort,
    /// The server claims an echo that no responder of ours sent.
    EchoNotOurs,
    /// Something answered on a port a local service holds: likely that
    /// service, but unproven.
    HeldPortAnswered,
    /// Something answered without the nonce while our responder, which was
    /// listening, saw nothing: another host answers.
    OtherHostAnswered,
    /// Our responder saw traffic without our probe, and the server got no
    /// echo: a middlebox answers in its place.
    MiddleboxAnswered,
    /// Refused and nothing reached this host, behind a NAT: the router (or
    /// whatever it forwards to) refuses it.
    RefusedUnforwarded,
    /// Refused although the caller says the router forwards it here.
    RefusedDespiteForward,
    /// Refused with no NAT in between: this host or its firewall rejects.
    RefusedNoNat,
    /// Silent although the caller says the router forwards it here.
    SilentDespiteForward,
    /// Silent while the control port was refused: this port in particular
    /// is dropped.
    SilentControlRefused,
    /// Silent like the control port: unforwarded ports are dropped here.
    SilentLikeControl,
    /// Silent behind a NAT with no control evidence: most likely not
    /// forwarded (an upstream filter would look the same).
    SilentNoControl,
    /// Silent with no NAT in between while our responder listened.
    SilentNoNat,
    /// An ICMP unreachable other than port unreachable.
    IcmpUnreachable,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::NonceEchoed => "our responder received the nonce and echoed it",
            Why::NonceArrived => {
                "our responder received the nonce (its echo did not reach the server)"
            }
            Why::ArrivedAtOtherPort => "the probe arrived at another local port of this host",
            Why::EchoNotOurs => "the server reports an echo no responder of ours sent",
            Why::HeldPortAnswered => {
                "something answered; a local service holds the port, so it is likely \
                 this host, but not proven"
            }
            Why::OtherHostAnswered => {
                "something answered without the nonce while our responder saw nothing: \
                 another host answers"
            }
            Why::MiddleboxAnswered => {
                "our responder saw traffic without the probe and no echo reached the \
                 server: something in between answers"
            }
            Why::RefusedUnforwarded => {
                "refused before reaching this host: nothing forwards it here"
            }
            Why::RefusedDespiteForward => {
                "refused although the router forwards it here: a firewall rejects it or \
                 the forward points elsewhere"
            }
            Why::RefusedNoNat => "refused with no NAT in between: a firewall rejects it",
            Why::SilentDespiteForward => "dropped: no answer although the router forwards it here",
            Why::SilentControlRefused => {
                "dropped: no answer while an unforwarded control port was refused"
            }
            Why::SilentLikeControl => {
                "no answer, like an unforwarded control port: nothing forwards it \
                 (an upstream filter would look the same)"
            }
            Why::SilentNoControl => "no answer and no control evidence: most likely not forwarded",
            Why::SilentNoNat => "dropped: no answer with no NAT in between",
            Why::IcmpUnreachable => "an ICMP unreachable from a router on the way",
        })
    }
}

/// The decision table (see [`super`]'s docs).
pub fn decide(e: &Evidence) -> (Reachability, Why) {
    use DialOutcome as S;
    use Reachability as V;
    // What our own responders saw is proof and comes first.
    match e.responder {
        ResponderSaw::Nonce => {
            let why = if e.server == S::Verified {
                Why::NonceEchoed
            } else {
                Why::NonceArrived
            };
            return (V::Reachable, why);
        }
        ResponderSaw::NonceOnOtherPort { .. } => return (V::WrongHost, Why::ArrivedAtOtherPort),
        _ => {}
    }
    match e.server {
        S::Verified => (V::WrongHost, Why::EchoNotOurs),
        S::AnsweredByOther => match e.responder {
            r if !r.listened() => (V::Reachable, Why::HeldPortAnswered),
            ResponderSaw::Foreign { .. } => (V::WrongHost, Why::MiddleboxAnswered),
            _ => (V::WrongHost, Why::OtherHostAnswered),
        },
        S::Unreachable => (V::Filtered, Why::IcmpUnreachable),
        S::Refused if !e.behind_nat => (V::Closed, Why::RefusedNoNat),
        S::Refused if e.expect_forwarded => (V::Closed, Why::RefusedDespiteForward),
        S::Refused => (V::NotForwarded, Why::RefusedUnforwarded),
        S::Silence if !e.behind_nat => (V::Filtered, Why::SilentNoNat),
        S::Silence if e.expect_forwarded => (V::Filtered, Why::SilentDespiteForward),
        S::Silence => match e.control {
            ControlEvidence::Refused { .. } => (V::Filtered, Why::SilentControlRefused),
            ControlEvidence::Silent { .. } => (V::NotForwarded, Why::SilentLikeControl),
            ControlEvidence::Unknown => (V::NotForwarded, Why::SilentNoControl),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTCOMES: [DialOutcome; 5] = [
        DialOutcome::Verified,
        DialOutcome::AnsweredByOther,
        DialOutcome::Refused,
        DialOutcome::Silence,
        DialOutcome::Unreachable,
    ];

    fn ev(server: DialOutcome, responder: ResponderSaw) -> Evidence {
        Evidence {
            server,
            responder,
            behind_nat: true,
            expect_forwarded: false,
            control: ControlEvidence::Refused { port: 50000 },
        }
    }

    #[test]
    fn our_nonce_is_proof_whatever_the_server_says() {
        for s in OUTCOMES {
            let (v, _) = decide(&ev(s, ResponderSaw::Nonce));
            assert_eq!(v, Reachability::Reachable, "{s:?}");
            let (v, why) = decide(&ev(s, ResponderSaw::NonceOnOtherPort { local: 9 }));
            assert_eq!((v, why), (Reachability::WrongHost, Why::ArrivedAtOtherPort));
        }
        assert_eq!(
            decide(&ev(DialOutcome::Verified, ResponderSaw::Nonce)).1,
            Why::NonceEchoed
        );
    }

    #[test]
    fn an_answer_without_our_nonce_is_never_success() {
        for r in [ResponderSaw::Nothing, ResponderSaw::Foreign { count: 1 }] {
            for s in [DialOutcome::Verified, DialOutcome::AnsweredByOther] {
                assert_eq!(decide(&ev(s, r)).0, Reachability::WrongHost, "{s:?} {r:?}");
            }
        }
        // Only where we could not listen is an answer "reachable", and
        // then it says why it is unproven.
        for r in [
            ResponderSaw::HeldByLocalService,
            ResponderSaw::CannotBind { errno: 13 },
        ] {
            assert_eq!(
                decide(&ev(DialOutcome::AnsweredByOther, r)),
                (Reachability::Reachable, Why::HeldPortAnswered)
            );
        }
    }

    #[test]
    fn refusals_and_silence_by_nat_and_control() {
        let nothing = ResponderSaw::Nothing;
        let mut e = ev(DialOutcome::Refused, nothing);
        assert_eq!(decide(&e).0, Reachability::NotForwarded);
        e.expect_forwarded = true;
        assert_eq!(decide(&e).0, Reachability::Closed);
        e.behind_nat = false;
        e.expect_forwarded = false;
        assert_eq!(decide(&e), (Reachability::Closed, Why::RefusedNoNat));

        let mut e = ev(DialOutcome::Silence, nothing);
        assert_eq!(
            decide(&e),
            (Reachability::Filtered, Why::SilentControlRefused)
        );
        e.control = ControlEvidence::Silent { port: 50000 };
        assert_eq!(
            decide(&e),
            (Reachability::NotForwarded, Why::SilentLikeControl)
        );
        e.control = ControlEvidence::Unknown;
        assert_eq!(decide(&e).0, Reachability::NotForwarded);
        e.expect_forwarded = true;
        assert_eq!(decide(&e).0, Reachability::Filtered);
        e.behind_nat = false;
        assert_eq!(decide(&e), (Reachability::Filtered, Why::SilentNoNat));

        for nat in [false, true] {
            let mut e = ev(DialOutcome::Unreachable, nothing);
            e.behind_nat = nat;
            assert_eq!(decide(&e).0, Reachability::Filtered);
        }
    }

    #[test]
    fn control_evidence_from_outcomes() {
        assert_eq!(
            ControlEvidence::from_outcome(7, DialOutcome::Refused),
            ControlEvidence::Refused { port: 7 }
        );
        assert_eq!(
            ControlEvidence::from_outcome(7, DialOutcome::Silence),
            ControlEvidence::Silent { port: 7 }
        );
        assert_eq!(
            ControlEvidence::from_outcome(7, DialOutcome::AnsweredByOther),
            ControlEvidence::Unknown
        );
    }

    #[test]
    fn names() {
        let names: Vec<_> = Reachability::ALL.iter().map(|v| v.as_str()).collect();
        assert_eq!(
            names,
            [
                "reachable",
                "wrong_host",
                "closed",
                "filtered",
                "not_forwarded"
            ]
        );
        assert!(!Why::SilentNoControl.to_string().is_empty());
    }
}
