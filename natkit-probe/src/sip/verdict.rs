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
    /// Nothing came back in time (TCP: no handshake, or no echo).
    Silent,
    /// Refused: a TCP reset, or an ICMP unreachable for the datagram.
    Refused,
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
            LegOutcome::Refused => "refused",
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
    /// The control leg came back intact, a SIP leg did not come back.
    SipSilentControlEchoed,
    /// The control leg did not come back: no SIP echo on the server, or UDP
    /// to it is lost; silence on the SIP port then means nothing.
    NoControlEcho,
    /// A leg failed locally.
    LocalFailure,
}

/// The verdict from the legs; rules in order, first match wins:
///
/// | legs | verdict | why |
/// |---|---|---|
/// | any leg came back changed | `rewrites` | `changed` |
/// | the control leg did not come back intact | `inconclusive` | `no_control_echo` |
/// | a SIP leg is silent or refused | `drops` | `sip_silent_control_echoed` |
/// | a SIP leg failed locally | `inconclusive` | `local_failure` |
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
    if sip().any(|l| matches!(l.outcome, LegOutcome::Silent | LegOutcome::Refused)) {
        return (SipAlgVerdict::Drops, SipWhy::SipSilentControlEchoed);
    }
    if sip().any(|l| matches!(l.outcome, LegOutcome::Failed { .. })) || sip().next().is_none() {
        return (SipAlgVerdict::Inconclusive, SipWhy::LocalFailure);
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
        use LegOutcome::{Intact, Refused, Silent};
        use SipAlgVerdict as V;
        let failed = LegOutcome::Failed { os_error: Some(1) };
        let table = [
            (Intact, Intact, Intact, V::NotSeen, SipWhy::AllIntact),
            (Intact, changed(), Intact, V::Rewrites, SipWhy::Changed),
            (Intact, Intact, changed(), V::Rewrites, SipWhy::Changed),
            // A rewrite is evidence whatever the control did.
            (Silent, changed(), Silent, V::Rewrites, SipWhy::Changed),
            (changed(), Intact, Intact, V::Rewrites, SipWhy::Changed),
            (
                Intact,
                Silent,
                Intact,
                V::Drops,
                SipWhy::SipSilentControlEchoed,
            ),
            (
                Intact,
                Intact,
                Refused,
                V::Drops,
                SipWhy::SipSilentControlEchoed,
            ),
            (
                Intact,
                Intact,
                Silent,
                V::Drops,
                SipWhy::SipSilentControlEchoed,
            ),
            // Silence everywhere: no echo server, or UDP lost; no claim.
            (
                Silent,
                Silent,
                Refused,
                V::Inconclusive,
                SipWhy::NoControlEcho,
            ),
            (
                Silent,
                Intact,
                Intact,
                V::Inconclusive,
                SipWhy::NoControlEcho,
            ),
            (
                failed.clone(),
                Intact,
                Intact,
                V::Inconclusive,
                SipWhy::NoControlEcho,
            ),
            (
                Intact,
                failed.clone(),
                Intact,
                V::Inconclusive,
                SipWhy::LocalFailure,
            ),
            // A drop on one leg outweighs a local failure on another.
            (
                Intact,
                failed,
                Silent,
                V::Drops,
                SipWhy::SipSilentControlEchoed,
            ),
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
