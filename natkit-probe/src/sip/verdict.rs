//! From what came back on each leg of the check to a verdict, sans-IO.

use std::net::SocketAddr;

use super::wire::{SipChange, SipTransport};

/// What one leg of the check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LegRole {
    /// The request to the SIP port, where ALGs act.
    Sip,
    /// The same request over UDP to a port no ALG watches (the dial-back
    /// server's port): it shows that the echo server runs and that UDP to it
    /// gets through, so silence on the SIP port is not plain loss.
    Control,
}

/// What came of one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LegOutcome {
    /// The request came back byte for byte.
    Intact,
    /// It came back changed: these lines differ.
    Changed(Vec<SipChange>),
    /// Nothing came back in time: UDP after every try; TCP connected and sent,
    /// but no echo by the deadline.
    Silent,
    /// TCP: the connection was closed or reset after the request, without an
    /// echo (the echo closes unanswered what it cannot read as OPTIONS).
    Closed,
    /// Refused: a TCP reset to the handshake, or an ICMP unreachable for the
    /// datagram.
    Refused,
    /// TCP: neither a handshake nor a reset in time.
    NoHandshake,
    /// A local socket error (errno when the OS gave one): the leg says
    /// nothing about the path.
    Failed {
        /// The OS error number.
        os_error: Option<i32>,
    },
}

impl LegOutcome {
    /// The stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LegOutcome::Intact => "intact",
            LegOutcome::Changed(_) => "changed",
            LegOutcome::Silent => "silent",
            LegOutcome::Closed => "closed",
            LegOutcome::Refused => "refused",
            LegOutcome::NoHandshake => "no_handshake",
            LegOutcome::Failed { .. } => "failed",
        }
    }
}

/// One request of the check and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SipLeg {
    /// UDP or TCP.
    pub transport: SipTransport,
    /// The server port it went to.
    pub port: u16,
    /// SIP port or control.
    pub role: LegRole,
    /// The local address the request was sent from (and carries).
    pub local: Option<SocketAddr>,
    /// What came back.
    pub outcome: LegOutcome,
}

/// Whether something on the path acts on SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SipAlgVerdict {
    /// Every request came back unchanged.
    NotSeen,
    /// A request came back rewritten or garbled.
    Rewrites,
    /// The control echo works but SIP to the SIP port does not come back.
    Drops,
    /// The check could not tell.
    Inconclusive,
}

/// Why [`decide`] said what it said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SipWhy {
    /// Every leg came back byte for byte.
    AllIntact,
    /// At least one leg came back changed.
    Changed,
    /// The control leg came back intact; a SIP leg did not come back (UDP:
    /// after every try), or was refused or closed on the way.
    SipSilentControlEchoed,
    /// The control leg did not come back: no SIP echo on the server, or UDP
    /// to it is lost; silence on the SIP port then means nothing.
    NoControlEcho,
    /// A leg failed locally.
    LocalFailure,
    /// The TCP leg got no handshake, or no echo, in time, and no other leg
    /// decided.
    TcpNoAnswer,
}

/// Whether a SIP leg's outcome shows SIP being lost on the way. UDP silence
/// counts: the request was sent every [`resend`](super::SipCheckConfig::resend)
/// until the end, as often as the control's that came back. TCP silence does
/// not: within the budget, a SYN or segment lost twice (the kernel's
/// retransmission timers are 1 s and up) looks the same as a drop; measured in
/// the lab at 30 % loss, without any ALG, 1 to 3 checks in 20 ended so.
fn lost(l: &SipLeg) -> bool {
    matches!(
        (l.transport, &l.outcome),
        (_, LegOutcome::Refused)
            | (SipTransport::Udp, LegOutcome::Silent)
            | (SipTransport::Tcp, LegOutcome::Closed)
    )
}

/// The verdict from the legs; rules in order, first match wins:
///
/// | legs | verdict | why |
/// |---|---|---|
/// | any leg came back changed | `rewrites` | `changed` |
/// | the control leg did not come back intact | `inconclusive` | `no_control_echo` |
/// | a SIP leg: UDP silent or refused, TCP refused or closed without echo | `drops` | `sip_silent_control_echoed` |
/// | a SIP leg failed locally | `inconclusive` | `local_failure` |
/// | the TCP leg: no handshake or no echo in time | `inconclusive` | `tcp_no_answer` |
/// | all intact | `not_seen` | `all_intact` |
///
/// A change anywhere counts, even on the control port: something rewrites
/// SIP on every port then. No legs at all is `inconclusive`.
pub fn decide(legs: &[SipLeg]) -> (SipAlgVerdict, SipWhy) {
    if legs
        .iter()
        .any(|l| matches!(l.outcome, LegOutcome::Changed(_)))
    {
        return (SipAlgVerdict::Rewrites, SipWhy::Changed);
    }
    let control_ok = legs
        .iter()
        .any(|l| l.role == LegRole::Control && l.outcome == LegOutcome::Intact);
    if !control_ok {
        return (SipAlgVerdict::Inconclusive, SipWhy::NoControlEcho);
    }
    let sip = || legs.iter().filter(|l| l.role == LegRole::Sip);
    if sip().any(lost) {
        return (SipAlgVerdict::Drops, SipWhy::SipSilentControlEchoed);
    }
    if sip().any(|l| matches!(l.outcome, LegOutcome::Failed { .. })) || sip().next().is_none() {
        return (SipAlgVerdict::Inconclusive, SipWhy::LocalFailure);
    }
    if sip().any(|l| l.outcome != LegOutcome::Intact) {
        return (SipAlgVerdict::Inconclusive, SipWhy::TcpNoAnswer);
    }
    (SipAlgVerdict::NotSeen, SipWhy::AllIntact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(transport: SipTransport, role: LegRole, outcome: LegOutcome) -> SipLeg {
        SipLeg {
            transport,
            port: if role == LegRole::Sip { 5060 } else { 7007 },
            role,
            local: None,
            outcome,
        }
    }

    fn legs(control: LegOutcome, udp: LegOutcome, tcp: LegOutcome) -> Vec<SipLeg> {
        vec![
            leg(SipTransport::Udp, LegRole::Control, control),
            leg(SipTransport::Udp, LegRole::Sip, udp),
            leg(SipTransport::Tcp, LegRole::Sip, tcp),
        ]
    }

    fn changed() -> LegOutcome {
        LegOutcome::Changed(vec![SipChange {
            part: "Via".into(),
            sent: Some("a".into()),
            received: Some("b".into()),
        }])
    }

    #[test]
    fn every_rule() {
        use LegOutcome::{Closed, Intact, NoHandshake, Refused, Silent};
        use SipAlgVerdict as V;
        use SipWhy as W;
        let failed = LegOutcome::Failed { os_error: Some(1) };
        // (control, SIP over UDP, SIP over TCP) → verdict, why
        #[rustfmt::skip]
        let table = [
            (Intact, Intact, Intact, V::NotSeen, W::AllIntact),
            (Intact, changed(), Intact, V::Rewrites, W::Changed),
            (Intact, Intact, changed(), V::Rewrites, W::Changed),
            // A rewrite is evidence whatever the control did.
            (Silent, changed(), Silent, V::Rewrites, W::Changed),
            (changed(), Intact, Intact, V::Rewrites, W::Changed),
            // UDP lost after every try while the control came back: dropped.
            (Intact, Silent, Intact, V::Drops, W::SipSilentControlEchoed),
            (Intact, Refused, Intact, V::Drops, W::SipSilentControlEchoed),
            // TCP refused or closed without an echo: dropped.
            (Intact, Intact, Refused, V::Drops, W::SipSilentControlEchoed),
            (Intact, Intact, Closed, V::Drops, W::SipSilentControlEchoed),
            // TCP without an answer in time: loss or a drop, no claim.
            (Intact, Intact, Silent, V::Inconclusive, W::TcpNoAnswer),
            (Intact, Intact, NoHandshake, V::Inconclusive, W::TcpNoAnswer),
            // ... but UDP evidence still counts.
            (Intact, Silent, NoHandshake, V::Drops, W::SipSilentControlEchoed),
            (Intact, changed(), NoHandshake, V::Rewrites, W::Changed),
            // Silence everywhere: no echo server, or UDP lost; no claim.
            (Silent, Silent, Refused, V::Inconclusive, W::NoControlEcho),
            (Silent, Intact, Intact, V::Inconclusive, W::NoControlEcho),
            (failed.clone(), Intact, Intact, V::Inconclusive, W::NoControlEcho),
            (Intact, failed.clone(), Intact, V::Inconclusive, W::LocalFailure),
            // A drop on one leg outweighs a local failure on another.
            (Intact, failed, Closed, V::Drops, W::SipSilentControlEchoed),
        ];
        for (i, (c, u, t, verdict, why)) in table.into_iter().enumerate() {
            assert_eq!(decide(&legs(c, u, t)), (verdict, why), "row {i}");
        }
        assert_eq!(
            decide(&[]),
            (SipAlgVerdict::Inconclusive, SipWhy::NoControlEcho)
        );
        assert_eq!(
            decide(&[leg(SipTransport::Udp, LegRole::Control, LegOutcome::Intact)]),
            (SipAlgVerdict::Inconclusive, SipWhy::LocalFailure)
        );
    }
}
