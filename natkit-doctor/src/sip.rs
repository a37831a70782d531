//! The SIP ALG check (with a dial-back server): does the router, or something
//! else on the path, rewrite or drop SIP? It sends an OPTIONS request with this
//! host's own address to the dial-back server's SIP echo (UDP and TCP 5060, and
//! UDP on the dial-back port as a control) and compares what comes back; see
//! [`natkit_probe::sip`].

use std::net::SocketAddr;
use std::time::Duration;

use natkit_probe::sip::{
    LegOutcome, LegRole, SipAlgVerdict, SipChange, SipCheck, SipCheckConfig, SipLeg, SipTransport,
    SipWhy, check_sip_alg,
};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::findings::FindingCode;
use crate::report::{Finding, Report, Severity};

/// The whole check ends within this (its legs run at once).
pub(crate) const SIP_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the SIP ALG check found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SipAlgReport {
    /// `not_seen`, `rewrites`, `drops` or `inconclusive`.
    pub verdict: &'static str,
    /// The rule behind the verdict: `all_intact`, `changed`,
    /// `sip_silent_control_echoed`, `no_control_echo`, `local_failure`,
    /// `tcp_no_answer`.
    pub why: &'static str,
    /// The echo's SIP address (the dial-back server's address, port 5060).
    pub server: SocketAddr,
    /// Each request and what came of it.
    pub legs: Vec<SipLegReport>,
}

/// One request of the SIP ALG check.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SipLegReport {
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// The server port it went to.
    pub port: u16,
    /// `sip` (port 5060, where ALGs act) or `control` (the dial-back port).
    pub role: &'static str,
    /// The local address it was sent from and carried.
    pub local: Option<SocketAddr>,
    /// `intact`, `changed`, `silent`, `closed`, `refused`, `no_handshake` or
    /// `failed`.
    pub outcome: &'static str,
    /// With `changed`: each line that came back different, as sent and as received.
    pub changes: Vec<SipChange>,
}

/// The check running on its own task; dropping it (the doctor stopped or
/// dropped) stops the check.
pub(crate) struct Running(JoinHandle<SipAlgReport>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the check on its own task when there is a dial-back server, so it runs
/// while the other checks do.
pub(crate) fn start(dialback: Option<SocketAddr>) -> Option<Running> {
    let server = dialback?;
    let mut config = SipCheckConfig::for_dialback(server);
    config.timeout = SIP_CHECK_TIMEOUT;
    Some(Running(tokio::spawn(async move {
        let check = check_sip_alg(&config).await;
        report(SocketAddr::new(config.server, config.sip_port), &check)
    })))
}

/// The check's report, once it is done (`None` without a dial-back server, or if
/// it was cancelled).
pub(crate) async fn finish(started: Option<Running>) -> Option<SipAlgReport> {
    let mut running = started?;
    crate::section(&mut running.0).await
}

fn transport(t: SipTransport) -> &'static str {
    match t {
        SipTransport::Udp => "udp",
        SipTransport::Tcp => "tcp",
    }
}

fn leg(l: &SipLeg) -> SipLegReport {
    SipLegReport {
        transport: transport(l.transport),
        port: l.port,
        role: match l.role {
            LegRole::Sip => "sip",
            LegRole::Control => "control",
        },
        local: l.local,
        outcome: l.outcome.as_str(),
        changes: match &l.outcome {
            LegOutcome::Changed(c) => c.clone(),
            _ => Vec::new(),
        },
    }
}

pub(crate) fn report(server: SocketAddr, c: &SipCheck) -> SipAlgReport {
    SipAlgReport {
        verdict: match c.verdict {
            SipAlgVerdict::NotSeen => "not_seen",
            SipAlgVerdict::Rewrites => "rewrites",
            SipAlgVerdict::Drops => "drops",
            SipAlgVerdict::Inconclusive => "inconclusive",
        },
        why: match c.why {
            SipWhy::AllIntact => "all_intact",
            SipWhy::Changed => "changed",
            SipWhy::SipSilentControlEchoed => "sip_silent_control_echoed",
            SipWhy::NoControlEcho => "no_control_echo",
            SipWhy::LocalFailure => "local_failure",
            SipWhy::TcpNoAnswer => "tcp_no_answer",
        },
        server,
        legs: c.legs.iter().map(leg).collect(),
    }
}

const FIX: &str = "turn off the router's SIP ALG (called \"SIP ALG\", \"SIP Helper\", \"SIP \
     passthrough\" or \"SIP transformations\" in its settings); SIP phones and apps that do \
     their own NAT traversal (STUN, ICE, a provider's outbound proxy) work better without it. If \
     the router has no such setting, use SIP over TLS (port 5061) or another port than 5060, which \
     an ALG cannot read";

/// One line for the text report: the verdict, and each request's outcome.
pub(crate) fn describe(s: &SipAlgReport) -> String {
    let legs: Vec<String> = s
        .legs
        .iter()
        .map(|l| {
            let role = if l.role == "control" {
                " (control)"
            } else {
                ""
            };
            format!("{}/{}{role} {}", l.port, l.transport, l.outcome)
        })
        .collect();
    format!(
        "{} ({}): {}",
        s.verdict.replace('_', " "),
        s.why.replace('_', " "),
        legs.join(", ")
    )
}

/// The `sip_alg` finding, if the check saw SIP rewritten or dropped.
pub(crate) fn findings(r: &Report) -> Option<Finding> {
    let s = r.sip_alg.as_ref()?;
    let name = |l: &SipLegReport| format!("{}:{}/{}", s.server.ip(), l.port, l.transport);
    let message = match s.verdict {
        "rewrites" => {
            let what: Vec<String> = s
                .legs
                .iter()
                .filter(|l| !l.changes.is_empty())
                .map(|l| {
                    let lines: Vec<String> = l.changes.iter().map(ToString::to_string).collect();
                    format!("to {}: {}", name(l), lines.join("; "))
                })
                .collect();
            format!(
                "something on the path rewrites SIP (a SIP ALG): a SIP OPTIONS request carrying \
                 this host's address came back from the echo changed — {}. A SIP ALG that \
                 rewrites addresses breaks calls of phones and apps that handle NAT themselves \
                 (one-way or no audio, registrations that drop)",
                what.join(" | ")
            )
        }
        "drops" => {
            let lost: Vec<String> = s
                .legs
                .iter()
                .filter(|l| l.role == "sip" && l.outcome != "intact")
                .map(|l| format!("{} ({})", name(l), l.outcome))
                .collect();
            format!(
                "SIP to port {} does not get through: no echo from {}, while the same request \
                 to the dial-back port came back unchanged. A SIP ALG (or a firewall) drops SIP",
                s.server.port(),
                lost.join(", ")
            )
        }
        _ => return None,
    };
    Some(Finding {
        code: FindingCode::SipAlg,
        severity: Severity::Warning,
        message,
        fix: FIX.to_owned(),
        port: Some(s.server.port()),
        protocol: None,
        caused_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_probe::sip::decide;

    /// A report from the control leg's outcome and the SIP legs' (UDP, then TCP),
    /// as the check would have decided it.
    fn with(control: LegOutcome, sip: Vec<LegOutcome>) -> Report {
        let transports = [SipTransport::Udp, SipTransport::Tcp];
        let legs: Vec<SipLeg> = std::iter::once((SipTransport::Udp, LegRole::Control, control))
            .chain(
                transports
                    .into_iter()
                    .zip(sip)
                    .map(|(t, o)| (t, LegRole::Sip, o)),
            )
            .map(|(transport, role, outcome)| SipLeg {
                transport,
                port: if role == LegRole::Sip { 5060 } else { 7007 },
                role,
                local: "192.168.77.2:40000".parse().ok(),
                outcome,
            })
            .collect();
        let (verdict, why) = decide(&legs);
        let mut r = Report::empty();
        r.sip_alg = Some(report(
            "88.77.66.20:5060".parse().unwrap(),
            &SipCheck { verdict, why, legs },
        ));
        r
    }

    #[test]
    fn rewritten_via_names_both_values_and_dropped_tcp_names_the_leg() {
        let via = SipChange {
            part: "Via".into(),
            sent: Some("SIP/2.0/UDP 192.168.77.2:40000;rport".into()),
            received: Some("SIP/2.0/UDP 88.77.66.2:40000;rport".into()),
        };
        let r = with(
            LegOutcome::Intact,
            vec![LegOutcome::Changed(vec![via]), LegOutcome::Intact],
        );
        let f = findings(&r).expect("a finding");
        assert_eq!(f.code, FindingCode::SipAlg);
        assert!(
            f.message.contains(
                "to 88.77.66.20:5060/udp: Via: \"SIP/2.0/UDP 192.168.77.2:40000;rport\" → \
                 \"SIP/2.0/UDP 88.77.66.2:40000;rport\""
            ),
            "{}",
            f.message
        );
        assert_eq!(
            describe(r.sip_alg.as_ref().unwrap()),
            "rewrites (changed): 7007/udp (control) intact, 5060/udp changed, 5060/tcp intact"
        );
        let text = crate::render::text(&r, crate::render::Style::PLAIN);
        assert!(
            text.contains(
                "Dial-back checks\n  SIP ALG       rewrites (changed): 7007/udp (control) \
                 intact, 5060/udp changed, 5060/tcp intact (echo 88.77.66.20:5060)\n"
            ),
            "{text}"
        );
        let json = serde_json::to_value(r.sip_alg.as_ref().unwrap()).unwrap();
        assert_eq!(json["verdict"], "rewrites");
        assert_eq!(json["legs"][1]["changes"][0]["part"], "Via");

        let r = with(
            LegOutcome::Intact,
            vec![LegOutcome::Intact, LegOutcome::Refused],
        );
        let f = findings(&r).expect("a finding");
        assert!(
            f.message.contains("88.77.66.20:5060/tcp (refused)"),
            "{}",
            f.message
        );
    }

    #[test]
    fn silent_when_intact_inconclusive_or_not_checked() {
        let intact = with(
            LegOutcome::Intact,
            vec![LegOutcome::Intact, LegOutcome::Intact],
        );
        assert_eq!(intact.sip_alg.as_ref().unwrap().verdict, "not_seen");
        assert!(findings(&intact).is_none());
        // No control echo: the server runs no echo, or UDP is lost; no claim.
        let r = with(
            LegOutcome::Silent,
            vec![LegOutcome::Silent, LegOutcome::Refused],
        );
        assert_eq!(r.sip_alg.as_ref().unwrap().verdict, "inconclusive");
        assert!(findings(&r).is_none());
        assert!(findings(&Report::empty()).is_none());
    }
}
