//! The outbound check (with a dial-back server): does a firewall on the way
//! out (an organisation's, a hotel's) block some of the profile's ports? Each
//! port gets a request to the dial-back server's outbound echo
//! (`natkit dialback-server --outbound-ports`), TCP or UDP, all at once, and
//! the dial-back port itself is the control; see [`natkit_probe::outbound`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_probe::outbound::{OutboundCheck, OutboundCheckConfig, check_outbound};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::findings::FindingCode;
use crate::report::{Finding, Report, Severity};

/// The whole check ends within this (its ports are asked at once).
pub(crate) const OUTBOUND_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the outbound check found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OutboundReport {
    /// `open`, `blocked`, `not_served` or `inconclusive`.
    pub verdict: &'static str,
    /// The dial-back server's address, which the echo shares.
    pub server: IpAddr,
    /// Each port asked and what came of it, the control first.
    pub ports: Vec<OutboundPortReport>,
}

/// One port of the outbound check.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OutboundPortReport {
    /// The server's port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    /// The dial-back server's own port (a TCP connect), asked as the control.
    pub control: bool,
    /// `answered`, `silent`, `unreachable`, `refused`, `no_reply` or `failed`.
    pub outcome: &'static str,
    /// Milliseconds until the answer, when there was one.
    pub rtt_ms: Option<u64>,
}

/// Starts the check on its own task when there is a dial-back server and
/// ports to check, so it runs while the other checks do.
pub(crate) fn start(
    dialback: Option<SocketAddr>,
    ports: Vec<(u16, Protocol)>,
) -> Option<JoinHandle<OutboundReport>> {
    let server = dialback?;
    if ports.is_empty() {
        return None;
    }
    let mut config = OutboundCheckConfig::for_dialback(server, ports);
    config.timeout = OUTBOUND_CHECK_TIMEOUT;
    Some(tokio::spawn(async move {
        report(server.ip(), &check_outbound(&config).await)
    }))
}

/// The check's report once it is done (`None` when not run or cancelled).
pub(crate) async fn finish(started: Option<JoinHandle<OutboundReport>>) -> Option<OutboundReport> {
    crate::section(started?).await
}

pub(crate) fn report(server: IpAddr, c: &OutboundCheck) -> OutboundReport {
    OutboundReport {
        verdict: c.verdict.as_str(),
        server,
        ports: c
            .legs
            .iter()
            .map(|l| OutboundPortReport {
                port: l.port,
                protocol: match l.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                },
                control: l.control,
                outcome: l.outcome.as_str(),
                rtt_ms: l.rtt_ms,
            })
            .collect(),
    }
}

const FIX: &str = "these ports are blocked on the way out, by a firewall on this network (an \
     organisation's, a hotel's, a guest network's) or the router's own outbound filter: ask the \
     network's administrator to allow them, allow them in the router's firewall, or use a network \
     that does not filter outbound traffic";

/// One line for the text report: the verdict, and each port's outcome.
pub(crate) fn describe(o: &OutboundReport) -> String {
    let ports: Vec<String> = o
        .ports
        .iter()
        .map(|p| {
            let role = if p.control { " (control)" } else { "" };
            let rtt = p.rtt_ms.map(|ms| format!(" {ms} ms")).unwrap_or_default();
            format!(
                "{}/{}{role} {}{rtt}",
                p.port,
                p.protocol,
                p.outcome.replace('_', " ")
            )
        })
        .collect();
    format!("{}: {}", o.verdict.replace('_', " "), ports.join(", "))
}

/// The `outbound_blocked` finding, when some port was dropped or rejected on
/// the way out while another answered.
pub(crate) fn findings(r: &Report) -> Option<Finding> {
    let o = r.outbound.as_ref()?;
    if o.verdict != "blocked" {
        return None;
    }
    let list = |pick: &dyn Fn(&OutboundPortReport) -> bool| -> Vec<String> {
        o.ports
            .iter()
            .filter(|p| pick(p))
            .map(|p| format!("{}/{}", p.port, p.protocol))
            .collect()
    };
    let blocked = list(&|p| !p.control && matches!(p.outcome, "silent" | "unreachable"));
    let answered = list(&|p| p.outcome == "answered");
    let mut message = format!(
        "outbound connections to {} are blocked: nothing came back from the dial-back server \
         {} on them, while {} answered",
        blocked.join(", "),
        o.server,
        answered.join(", ")
    );
    let refused = list(&|p| !p.control && p.outcome == "refused");
    if !refused.is_empty() {
        message.push_str(&format!(
            "; {} refused (the server does not serve them, or a firewall resets them)",
            refused.join(", ")
        ));
    }
    let first = o
        .ports
        .iter()
        .find(|p| !p.control && matches!(p.outcome, "silent" | "unreachable"));
    Some(Finding {
        code: FindingCode::OutboundBlocked,
        severity: Severity::Problem,
        message,
        fix: FIX.to_owned(),
        port: first.map(|p| p.port),
        protocol: None,
        caused_by: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use natkit_probe::outbound::{OutboundLeg, OutboundOutcome, decide};

    fn with(legs: &[(u16, Protocol, bool, OutboundOutcome)]) -> Report {
        let legs: Vec<OutboundLeg> = legs
            .iter()
            .map(|&(port, protocol, control, outcome)| OutboundLeg {
                port,
                protocol,
                control,
                outcome,
                rtt_ms: (outcome == OutboundOutcome::Answered).then_some(3),
            })
            .collect();
        let mut r = Report::empty();
        r.outbound = Some(report(
            "88.77.66.20".parse().expect("ip"),
            &OutboundCheck {
                verdict: decide(&legs),
                legs,
            },
        ));
        r
    }

    #[test]
    fn blocked_ports_are_named_with_what_answered() {
        use OutboundOutcome::*;
        let r = with(&[
            (7007, Protocol::Tcp, true, Answered),
            (443, Protocol::Tcp, false, Silent),
            (4500, Protocol::Udp, false, Unreachable),
            (5353, Protocol::Udp, false, Answered),
            (5354, Protocol::Tcp, false, Refused),
        ]);
        let f = findings(&r).expect("a finding");
        assert_eq!(f.code, FindingCode::OutboundBlocked);
        assert!(
            f.message.starts_with(
                "outbound connections to 443/tcp, 4500/udp are blocked: nothing came back from \
                 the dial-back server 88.77.66.20 on them, while 7007/tcp, 5353/udp answered; \
                 5354/tcp refused"
            ),
            "{}",
            f.message
        );
        assert_eq!(f.port, Some(443));
        assert_eq!(
            describe(r.outbound.as_ref().expect("report")),
            "blocked: 7007/tcp (control) answered 3 ms, 443/tcp silent, 4500/udp unreachable, \
             5353/udp answered 3 ms, 5354/tcp refused"
        );
        let json = serde_json::to_value(r.outbound.as_ref().expect("report")).expect("json");
        assert_eq!(json["verdict"], "blocked");
        assert_eq!(json["ports"][1]["outcome"], "silent");
        assert_eq!(json["ports"][3]["rtt_ms"], 3);
    }

    #[test]
    fn silent_when_open_not_served_dead_or_not_checked() {
        use OutboundOutcome::*;
        let open = with(&[
            (7007, Protocol::Tcp, true, Answered),
            (443, Protocol::Tcp, false, Answered),
        ]);
        assert!(findings(&open).is_none());
        let refused = with(&[
            (7007, Protocol::Tcp, true, Answered),
            (443, Protocol::Tcp, false, Refused),
        ]);
        assert_eq!(refused.outbound.as_ref().expect("r").verdict, "not_served");
        assert!(findings(&refused).is_none());
        // A dead server: no claim about single ports.
        let dead = with(&[
            (7007, Protocol::Tcp, true, Silent),
            (443, Protocol::Tcp, false, Silent),
        ]);
        assert_eq!(dead.outbound.as_ref().expect("r").verdict, "inconclusive");
        assert!(findings(&dead).is_none());
        assert!(findings(&Report::empty()).is_none());
    }
}
