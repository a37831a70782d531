//! Whether this host reaches the internet at all: the check that comes before every
//! other. A network with a default route but a dead uplink (an unplugged modem, an
//! ISP outage, a captive portal) looks healthy to every other check: the router
//! still answers UPnP and NAT-PMP, and "no STUN server answered" reads like a
//! firewall. Two observations tell it apart, both already made by the other checks
//! at the same time, so this adds no wait of its own:
//!
//! - the names: whether the resolver answered for the STUN servers' names. "No such
//!   name" is an answer (the DNS works); a lookup that timed out or found no DNS
//!   server (natkit-stun's [`ResolveFailure::TimedOut`] and
//!   [`ResolveFailure::DnsUnreachable`]) is not;
//! - the outside: whether anything beyond the router answered: a STUN server (one
//!   given by address needs no DNS), or a hop past the router in the hop trace.
//!
//! Names that get no answer and an outside that is silent: `no_internet`. Names
//! that get no answer while the outside answers: `dns_failure`. One dead server
//! among answering ones, or names that do not exist, are neither.

use std::net::{IpAddr, SocketAddr};

use natkit_stun::client::{ResolveFailure, ServerName};
use serde::Serialize;

use crate::findings::FindingCode;
use crate::hops::HopsReport;
use crate::report::{Finding, Report, Severity};

/// Whether the internet answered, as the report shows it (`internet` in the JSON).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InternetReport {
    /// The conclusion.
    pub verdict: InternetVerdict,
    /// What it rests on, in words.
    pub detail: String,
}

/// The uplink check's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InternetVerdict {
    /// Something outside the LAN answered, and the names that exist resolved.
    Working,
    /// Something outside answered, but the resolver did not: names fail.
    DnsFailure,
    /// The resolver did not answer and nothing outside the LAN did either.
    NoInternet,
    /// Nothing outside answered, but the resolver did (names resolve or do not
    /// exist): not a dead uplink as far as can be told; a firewall that drops UDP
    /// looks like this (`udp_blocked`).
    Unknown,
}

impl InternetVerdict {
    /// The stable snake_case name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            InternetVerdict::Working => "working",
            InternetVerdict::DnsFailure => "dns_failure",
            InternetVerdict::NoInternet => "no_internet",
            InternetVerdict::Unknown => "unknown",
        }
    }

    /// Whether the verdict is a problem (`no_internet`, `dns_failure`).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            InternetVerdict::NoInternet | InternetVerdict::DnsFailure
        )
    }
}

/// How the resolver did with the STUN servers' names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    /// Names the resolver answered for (an address, "no such name", "no address").
    answered: usize,
    /// Names it did not answer for (timed out, no DNS server), with why.
    silent: Vec<(String, ResolveFailure)>,
}

impl Names {
    /// Sorts each server's lookup; servers given as addresses need no DNS and do not
    /// count.
    pub(crate) fn of(
        servers: &[String],
        resolved: &[Result<SocketAddr, natkit_stun::Error>],
    ) -> Names {
        let mut names = Names::default();
        for (server, result) in servers.iter().zip(resolved) {
            if !matches!(ServerName::parse(server), Ok(ServerName::Host(..))) {
                continue;
            }
            match result {
                Ok(_) => names.answered += 1,
                Err(natkit_stun::Error::Resolve { failure, .. }) => match failure {
                    ResolveFailure::DnsUnreachable | ResolveFailure::TimedOut => {
                        names.silent.push((server.clone(), failure.clone()));
                    }
                    ResolveFailure::NoSuchName | ResolveFailure::NoAddress => names.answered += 1,
                    // A malformed name or an unknown resolver error says nothing
                    // about the uplink.
                    _ => {}
                },
                Err(_) => {}
            }
        }
        names
    }

    /// The resolver answered for none of the names, and did not answer for some.
    fn fail(&self) -> bool {
        self.answered == 0 && !self.silent.is_empty()
    }

    fn describe(&self) -> String {
        let why: Vec<String> = self
            .silent
            .iter()
            .map(|(_, f)| f.to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        format!(
            "no name resolved: {} of the STUN servers' names got no answer from the DNS \
             resolver ({})",
            self.silent.len(),
            why.join("; ")
        )
    }
}

/// What answered from beyond the router, in words; `None` when nothing did.
fn outside(r: &Report) -> Option<String> {
    let answered: Vec<&str> = r
        .stun_servers
        .iter()
        .filter(|s| s.address.is_some())
        .map(|s| s.server.as_str())
        .collect();
    if !answered.is_empty() {
        return Some(format!("STUN server {} answered", answered.join(", ")));
    }
    if let Some(n) = r.nat.as_ref().and_then(|n| n.tested_with) {
        return Some(format!("STUN server {n} answered the NAT type tests"));
    }
    beyond_router(r.hops.as_ref()?, r.gateway.map(IpAddr::V4))
}

/// A hop past the router that answered the hop trace.
fn beyond_router(h: &HopsReport, gateway: Option<IpAddr>) -> Option<String> {
    let hop = h
        .hops
        .iter()
        .find(|hop| hop.ttl >= 2 && hop.address.is_some_and(|a| Some(a) != gateway))?;
    let addr = hop.address?;
    Some(format!(
        "hop {} ({addr}) beyond the router answered the hop trace",
        hop.ttl
    ))
}

/// The uplink's verdict from the names' lookups and what the other checks saw.
pub(crate) fn judge(names: &Names, r: &Report) -> InternetReport {
    let outside = outside(r);
    let (verdict, detail) = match (names.fail(), outside) {
        (true, None) => (
            InternetVerdict::NoInternet,
            format!(
                "{}, and nothing outside the LAN answered (no STUN server, no hop beyond the \
                 router)",
                names.describe()
            ),
        ),
        (true, Some(o)) => (
            InternetVerdict::DnsFailure,
            format!("{}, although {o}", names.describe()),
        ),
        (false, Some(o)) => (InternetVerdict::Working, o),
        (false, None) => (
            InternetVerdict::Unknown,
            if names.answered > 0 {
                "nothing outside the LAN answered, but the DNS resolver did".to_owned()
            } else {
                "nothing outside the LAN answered, and no name was looked up".to_owned()
            },
        ),
    };
    InternetReport { verdict, detail }
}

/// The findings that follow from a dead uplink: fixing the uplink fixes them, so
/// they are marked `caused_by` it and come after it.
pub(crate) fn follows_from_no_internet(code: FindingCode) -> bool {
    matches!(
        code,
        FindingCode::UdpBlocked
            | FindingCode::IgdNotConnected
            | FindingCode::MappingProtocolFailing
            | FindingCode::PortNotMappable
            | FindingCode::PortBlockedUpstream
    )
}

/// The `no_internet` or `dns_failure` finding, when the uplink check found one.
pub(crate) fn finding(r: &Report) -> Option<Finding> {
    let internet = r.internet.as_ref()?;
    let (code, message, fix) = match internet.verdict {
        InternetVerdict::NoInternet => (
            FindingCode::NoInternet,
            format!(
                "this host has no internet connection: {}; everything else in this report \
                 was measured without one",
                internet.detail
            ),
            "check the router's internet connection first: the modem or fibre box and its \
             cables, the router's WAN or internet status page, and the ISP's outage page; a \
             hotel or café network may want its sign-in page opened in a browser; then run \
             the doctor again",
        ),
        InternetVerdict::DnsFailure => (
            FindingCode::DnsFailure,
            format!(
                "names do not resolve, although the internet answers: {}",
                internet.detail
            ),
            "the DNS server this host uses does not answer: check the DNS servers in the \
             network settings (or the router's DHCP settings), restart the router, or use \
             another DNS server; to check the rest meanwhile, give STUN servers by address \
             (--stun IP:PORT)",
        ),
        InternetVerdict::Working | InternetVerdict::Unknown => return None,
    };
    Some(Finding {
        code,
        severity: Severity::Problem,
        message,
        fix: fix.to_owned(),
        port: None,
        protocol: None,
        caused_by: None,
    })
}

/// Puts the uplink finding first and marks the findings that follow from it.
pub(crate) fn lead(first: Finding, rest: Vec<Finding>) -> Vec<Finding> {
    let cause = first.code;
    let mut out = Vec::with_capacity(rest.len() + 1);
    out.push(first);
    out.extend(rest.into_iter().map(|mut f| {
        if cause == FindingCode::NoInternet && follows_from_no_internet(f.code) {
            f.caused_by = Some(cause);
        }
        f
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{StunAnswer, StunOutcome};
    use natkit_probe::Hop;
    use std::time::Duration;

    fn resolve_err(name: &str, failure: ResolveFailure) -> Result<SocketAddr, natkit_stun::Error> {
        Err(natkit_stun::Error::Resolve {
            name: name.into(),
            failure,
        })
    }

    fn servers(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn answer(server: &str, saw: bool) -> StunAnswer {
        StunAnswer {
            server: server.into(),
            outcome: if saw {
                StunOutcome::Saw
            } else {
                StunOutcome::TimedOut
            },
            address: saw.then(|| "88.77.66.2:4000".parse().unwrap()),
            detail: None,
            failure: None,
        }
    }

    fn report() -> Report {
        let mut r = Report::empty();
        r.gateway = Some("192.168.77.1".parse().unwrap());
        r
    }

    fn hops(list: Vec<Hop>) -> HopsReport {
        crate::hops::report(
            Ok(("88.77.66.10".parse().unwrap(), list)),
            "192.168.77.1".parse().unwrap(),
            None,
        )
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_silent_resolver_and_a_silent_outside_is_no_internet() {
        let s = servers(&["stun.a.example:3478", "stun.b.example:3478"]);
        let resolved = vec![
            resolve_err("stun.a.example:3478", ResolveFailure::TimedOut),
            resolve_err("stun.b.example:3478", ResolveFailure::DnsUnreachable),
        ];
        let names = Names::of(&s, &resolved);
        let mut r = report();
        r.stun_servers = vec![answer("stun.a.example:3478", false)];
        let j = judge(&names, &r);
        assert_eq!(j.verdict, InternetVerdict::NoInternet, "{}", j.detail);
        assert!(
            j.detail.contains("2 of the STUN servers' names"),
            "{}",
            j.detail
        );
        // Only the router answers the hop trace: still nothing outside.
        r.hops = Some(hops(vec![
            Hop::router(1, "192.168.77.1".parse().unwrap(), MS),
            Hop::silent(2),
        ]));
        assert_eq!(judge(&names, &r).verdict, InternetVerdict::NoInternet);
    }

    /// A name whose lookup timed out and whose server stayed silent, then
    /// `second`, which resolved and answered.
    fn one_dead_one_answering(second: &str) -> (Names, Report) {
        let s = servers(&["stun.a.example:3478", second]);
        let resolved = vec![
            resolve_err("stun.a.example:3478", ResolveFailure::TimedOut),
            Ok("88.77.66.10:3478".parse().unwrap()),
        ];
        let mut r = report();
        r.stun_servers = vec![answer("stun.a.example:3478", false), answer(second, true)];
        (Names::of(&s, &resolved), r)
    }

    #[test]
    fn names_failing_while_the_outside_answers_is_dns_failure() {
        let (names, r) = one_dead_one_answering("88.77.66.10:3478");
        let j = judge(&names, &r);
        assert_eq!(j.verdict, InternetVerdict::DnsFailure, "{}", j.detail);
        assert!(
            j.detail.contains("88.77.66.10:3478 answered"),
            "{}",
            j.detail
        );
        // A hop beyond the router is enough too.
        let mut r = report();
        r.hops = Some(hops(vec![
            Hop::router(1, "192.168.77.1".parse().unwrap(), MS),
            Hop::router(2, "88.77.66.1".parse().unwrap(), MS),
        ]));
        assert_eq!(judge(&names, &r).verdict, InternetVerdict::DnsFailure);
    }

    #[test]
    fn no_internet_leads_and_marks_what_follows() {
        let mut r = report();
        r.mapping_protocols.upnp.status = crate::Status::NotConnected;
        r.mapping_protocols.natpmp.status = crate::Status::Absent;
        r.mapping_protocols.pcp.status = crate::Status::Absent;
        r.internet = Some(InternetReport {
            verdict: InternetVerdict::NoInternet,
            detail: "no name resolved".into(),
        });
        let f = crate::findings::derive(&r, &["UPnP 80/tcp".into()]);
        let codes: Vec<_> = f.iter().map(|f| (f.code.as_str(), f.caused_by)).collect();
        assert_eq!(
            codes,
            [
                ("no_internet", None),
                ("igd_not_connected", Some(FindingCode::NoInternet)),
                ("mapping_left_behind", None),
            ]
        );
        let doc = crate::render::json(&Report { findings: f, ..r });
        assert_eq!(doc["findings"][1]["caused_by"], "no_internet");
        assert_eq!(doc["internet"]["verdict"], "no_internet");
    }

    #[test]
    fn a_working_network_is_never_called_dead() {
        // One dead server (its name timed out) among answering ones.
        let (names, r) = one_dead_one_answering("stun.b.example:3478");
        assert_eq!(judge(&names, &r).verdict, InternetVerdict::Working);
        let s = servers(&["stun.a.example:3478", "stun.b.example:3478"]);
        // Names that do not exist are the DNS answering: not a dead uplink, even
        // when nothing answers over UDP (that is udp_blocked's).
        let nx = vec![
            resolve_err("stun.a.example:3478", ResolveFailure::NoSuchName),
            resolve_err("stun.b.example:3478", ResolveFailure::TimedOut),
        ];
        let names = Names::of(&s, &nx);
        assert_eq!(judge(&names, &report()).verdict, InternetVerdict::Unknown);
        // Servers given as addresses only: no name, no DNS verdict.
        let ips = servers(&["88.77.66.10:3478"]);
        let names = Names::of(&ips, &[Ok("88.77.66.10:3478".parse().unwrap())]);
        assert_eq!(names, Names::default());
        assert_eq!(judge(&names, &report()).verdict, InternetVerdict::Unknown);
    }
}
