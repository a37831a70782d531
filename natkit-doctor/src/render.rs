//! The report for people ([`text`]: the path as a small picture, the NAT
//! type, the ports, and the findings with their fixes) and for programs
//! ([`json`]: the document `docs/doctor.schema.json` describes).

use std::fmt::Write as _;
use std::net::IpAddr;

use natkit_core::{AddressScope, DiscoveryFailure};

use crate::report::{Report, Severity, Status};

/// How [`text`] looks: plain, or with ANSI colours (the caller decides, e.g.
/// only on a terminal and without `NO_COLOR`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Colour the section titles and the findings' marks.
    pub colour: bool,
}

impl Style {
    /// No escape sequences at all.
    pub const PLAIN: Style = Style { colour: false };
    /// ANSI colours.
    pub const COLOUR: Style = Style { colour: true };

    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn title(self, text: &str) -> String {
        self.paint("1", text)
    }
}

fn scope(ip: IpAddr) -> &'static str {
    AddressScope::of(ip).describe()
}

/// The whole report as text for people.
pub fn text(r: &Report, style: Style) -> String {
    let mut o = String::new();
    path(r, style, &mut o);
    nat(r, style, &mut o);
    ports(r, style, &mut o);
    dialback_checks(r, style, &mut o);
    crate::forwards::render(
        r.router_forwards.as_deref(),
        &style.title("Router forwards"),
        &mut o,
    );
    crate::ipv6::render(r.ipv6.as_ref(), &style.title("IPv6"), &mut o);
    findings(r, style, &mut o);
    o
}

/// The report as the JSON document of `docs/doctor.schema.json`
/// ([`SCHEMA`](crate::SCHEMA)).
pub fn json(r: &Report) -> serde_json::Value {
    // The report holds only strings, numbers, booleans and lists of them:
    // serializing it cannot fail, and Null would fail the schema loudly.
    serde_json::to_value(r).unwrap_or(serde_json::Value::Null)
}

/// The report quotes errors with natkit-core's one-line error chain.
pub use natkit_core::error_line;

fn path(r: &Report, style: Style, o: &mut String) {
    let (Some(gw), Some(local)) = (r.gateway, r.local_address) else {
        return;
    };
    let mp = &r.mapping_protocols;
    let _ = writeln!(o, "{}", style.title("Path"));
    let _ = writeln!(
        o,
        "  [this host]   {local} ({}) on {}",
        scope(local.into()),
        r.interface.as_deref().unwrap_or("?")
    );
    if let Some(l) = &r.local_name {
        let _ = writeln!(o, "                {}", crate::mdns::describe(l));
    }
    let _ = writeln!(o, "        │");
    let _ = writeln!(o, "        ▼");
    let _ = writeln!(o, "  [router]      {gw}");
    let protocols: Vec<String> = mp
        .named()
        .iter()
        .map(|(name, s)| format!("{name}: {}", s.status.describe()))
        .collect();
    let _ = writeln!(o, "        │       {}", protocols.join(" · "));
    match r.router_external_address {
        Some(ext) => {
            let _ = writeln!(o, "        │       external address {ext} ({})", scope(ext));
        }
        None => {
            let _ = writeln!(o, "        │       external address: not reported");
        }
    }
    let _ = writeln!(o, "        ▼");
    if r.double_nat {
        let upstream = r
            .router_external_address
            .filter(|ip| !AddressScope::of(*ip).is_global())
            .map(|ip| format!("(the router's WAN {ip} is inside it)"))
            .or_else(|| {
                let h = r.hops.as_ref()?;
                let kind = if h.carrier_grade {
                    ", carrier-grade NAT"
                } else {
                    ""
                };
                h.upstream
                    .map(|ip| format!("{ip} (the router's next hop{kind})"))
            })
            .unwrap_or_else(|| "(address not known)".into());
        let _ = writeln!(o, "  [second NAT]  {upstream}");
        let _ = writeln!(o, "        │");
        let _ = writeln!(o, "        ▼");
    }
    let seen = match r.stun_external_address {
        Some(sa) => format!("STUN servers see this host as {sa}"),
        None => "no STUN server answered".into(),
    };
    let _ = writeln!(o, "  [internet]    {seen}");
    // Names that did not resolve go on one line per reason: with the default
    // list on a network whose DNS knows only some of them, a line each would
    // bury the servers that answered.
    let mut unresolved: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in &r.stun_servers {
        if let Some(DiscoveryFailure::Unresolved { reason: why }) = &s.failure {
            let host = s
                .server
                .rsplit_once(':')
                .map_or(s.server.as_str(), |(h, _)| h);
            match unresolved.iter_mut().find(|(w, _)| *w == why.as_str()) {
                Some((_, hosts)) => hosts.push(host),
                None => unresolved.push((why, vec![host])),
            }
            continue;
        }
        let what = match (s.address, &s.detail) {
            (Some(a), _) => format!("saw {a}"),
            (None, Some(d)) => format!("{}: {d}", s.outcome.as_str().replace('_', " ")),
            (None, None) => s.outcome.as_str().replace('_', " "),
        };
        let _ = writeln!(o, "                  {:<24} {what}", s.server);
    }
    for (why, hosts) in unresolved {
        let _ = writeln!(
            o,
            "                  not resolved ({why}): {}",
            hosts.join(", ")
        );
    }
    for (name, s) in mp.named() {
        if let (Some(d), true) = (&s.detail, s.status != Status::Available) {
            let _ = writeln!(o, "  {name}: {d}");
        }
    }
    if r.double_nat {
        let _ = writeln!(o, "\n  Double NAT: {}", r.double_nat_evidence.join("; "));
    }
    if let Some(i) = r.internet.as_ref().filter(|i| i.verdict.is_failure()) {
        let _ = writeln!(
            o,
            "\n  Internet: {}: {}",
            i.verdict.as_str().replace('_', " "),
            i.detail
        );
    }
}

fn nat(r: &Report, style: Style, o: &mut String) {
    let Some(n) = &r.nat else { return };
    let _ = writeln!(o, "\n{}        {}", style.title("NAT type"), n.legacy_type);
    let _ = writeln!(o, "  means         {}", n.meaning);
    let _ = writeln!(o, "  mapping       {}", n.mapping);
    let _ = writeln!(o, "  filtering     {}", n.filtering);
    if let Some(p) = n.port_preservation {
        let _ = writeln!(o, "  port kept     {}", if p { "yes" } else { "no" });
    }
    if let Some(h) = n.hairpinning {
        let _ = writeln!(o, "  hairpinning   {}", if h { "yes" } else { "no" });
    }
    if let Some(s) = n.tested_with {
        let rtt = n
            .rtt_ms
            .map(|ms| format!(", rtt {ms:.1} ms"))
            .unwrap_or_default();
        let name = n
            .tested_with_name
            .as_deref()
            .filter(|name| *name != s.to_string())
            .map(|name| format!("{name} = "))
            .unwrap_or_default();
        let _ = writeln!(o, "  tested with   {name}{s}{rtt}");
    }
    let mut not_resolved = 0;
    for note in &n.notes {
        if n.not_resolved.contains(note) {
            not_resolved += 1;
            continue;
        }
        let _ = writeln!(o, "  note          {note}");
    }
    if not_resolved > 0 {
        let _ = writeln!(
            o,
            "  note          not asked: {not_resolved} server(s) whose names did not resolve (above)"
        );
    }
}

fn ports(r: &Report, style: Style, o: &mut String) {
    if r.ports.is_empty() {
        return;
    }
    let _ = writeln!(o, "\n{}", style.title("Ports"));
    let _ = writeln!(
        o,
        "  {:>11}  {:<28} {:<26} {:<16} purpose",
        "port", "forwarded on the router to", "natkit can map it", "from outside"
    );
    for p in &r.ports {
        let fwd = match &p.forwarded_to {
            Some(f) if f.this_host => format!("this host:{}", f.port),
            Some(f) => format!("{}:{}", f.host, f.port),
            None => "-".into(),
        };
        let mappable = match (p.mappable, &p.mapping) {
            (Some(true), Some(m)) => format!("yes ({}, removed)", m.mechanism.unwrap_or("?")),
            (Some(false), Some(m)) if m.external_port.is_some() => {
                format!("no (got port {})", m.external_port.unwrap_or(0))
            }
            (Some(true), None) => "yes".into(),
            (Some(false), _) => "no".into(),
            (None, _) if p.forwarded_to.as_ref().is_some_and(|f| f.this_host) => {
                "already forwarded".into()
            }
            (None, _) => "not tried".into(),
        };
        let _ = writeln!(
            o,
            "  {:>7}/{:<3}  {:<28} {:<26} {:<16} {}",
            p.port,
            p.protocol,
            fwd,
            mappable,
            p.reachability.replace('_', " "),
            p.purpose.unwrap_or("")
        );
    }
}

/// The checks that need a dial-back server (`--dialback`): a line each.
fn dialback_checks(r: &Report, style: Style, o: &mut String) {
    let lines = [
        r.sip_alg.as_ref().map(|s| {
            let server = s.server;
            (
                "SIP ALG",
                format!("{} (echo {server})", crate::sip::describe(s)),
            )
        }),
        r.outbound
            .as_ref()
            .map(|b| ("outbound", crate::outbound::describe(b))),
        r.bandwidth.as_ref().map(|b| {
            let server = b.server;
            (
                "bandwidth",
                format!("{} (server {server})", crate::bandwidth::describe(b)),
            )
        }),
    ];
    if lines.iter().all(Option::is_none) {
        return;
    }
    let _ = writeln!(o, "\n{}", style.title("Dial-back checks"));
    for (name, line) in lines.into_iter().flatten() {
        let _ = writeln!(o, "  {name:<13} {line}");
    }
}

fn findings(r: &Report, style: Style, o: &mut String) {
    let _ = writeln!(o);
    if r.findings.is_empty() {
        let _ = writeln!(
            o,
            "{} none — nothing in the way was found.",
            style.title("Findings:")
        );
        return;
    }
    let _ = writeln!(o, "{}", style.title("Findings"));
    for f in &r.findings {
        let mark = match f.severity {
            Severity::Problem => style.paint("31", "✗"),
            Severity::Warning => style.paint("33", "!"),
            Severity::Info => style.paint("36", "i"),
        };
        let _ = writeln!(o, "  {mark} {}: {}", f.code, f.message);
        match f.caused_by {
            Some(cause) => {
                let _ = writeln!(o, "      follows from {cause}: fix that first");
            }
            None => {
                let _ = writeln!(o, "      fix: {}", f.fix);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::empty();
        r.findings
            .push(crate::findings::no_network("no default route"));
        r
    }

    #[test]
    fn colour_only_when_asked() {
        let r = report();
        let plain = text(&r, Style::PLAIN);
        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(plain.contains("  ✗ no_network: "), "{plain}");
        let colour = text(&r, Style::COLOUR);
        assert!(colour.contains("\x1b[1mFindings\x1b[0m"), "{colour:?}");
        assert!(
            colour.contains("\x1b[31m✗\x1b[0m no_network: "),
            "{colour:?}"
        );
        // The same words either way.
        let stripped = colour
            .replace("\x1b[1m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[0m", "");
        assert_eq!(stripped, plain);
    }

    #[test]
    fn nat_notes_on_names_that_did_not_resolve_are_counted() {
        let unresolved = "not asked: cannot resolve x.example:3478: no such name";
        let mut r = Report::empty();
        let mut nat = crate::nat_checks::tests::nat("full_cone", None);
        nat.notes = vec![unresolved.into(), "hairpinning: not enough".into()];
        nat.not_resolved = vec![unresolved.into()];
        r.nat = Some(nat);
        let t = text(&r, Style::PLAIN);
        assert!(!t.contains(unresolved), "{t}");
        assert!(
            t.contains("  note          hairpinning: not enough\n"),
            "{t}"
        );
        assert!(
            t.contains("not asked: 1 server(s) whose names did not resolve (above)"),
            "{t}"
        );
    }

    #[test]
    fn names_that_did_not_resolve_share_a_line_per_reason() {
        use crate::report::{StunAnswer, StunOutcome};
        let mut r = Report::empty();
        r.gateway = Some("192.168.77.1".parse().expect("ip"));
        r.local_address = Some("192.168.77.2".parse().expect("ip"));
        use natkit_stun::Error;
        use natkit_stun::client::ResolveFailure;
        let failed = |server: &str, e: Error| StunAnswer {
            server: server.into(),
            outcome: StunOutcome::Failed,
            address: None,
            detail: Some(e.to_string()),
            failure: Some(e.discovery_failure()),
        };
        let unresolved = |server: &str, failure| {
            let e = Error::Resolve {
                name: server.into(),
                failure,
            };
            failed(server, e)
        };
        r.stun_servers = vec![
            unresolved("a.example:3478", ResolveFailure::NoSuchName),
            StunAnswer {
                server: "b.example:3478".into(),
                outcome: StunOutcome::Saw,
                address: "88.77.66.2:4000".parse().ok(),
                detail: None,
                failure: None,
            },
            unresolved("c.example:19302", ResolveFailure::NoSuchName),
            unresolved("d.example:3478", ResolveFailure::TimedOut),
            failed(
                "e.example:3478",
                Error::ErrorResponse {
                    server: "192.0.2.5:3478".parse().expect("addr"),
                    code: 420,
                },
            ),
        ];
        let t = text(&r, Style::PLAIN);
        assert!(
            t.contains("  b.example:3478           saw 88.77.66.2:4000\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "  e.example:3478           failed: server 192.0.2.5:3478 answered error 420\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("  not resolved (no such name): a.example, c.example\n"),
            "{t}"
        );
        assert!(
            t.contains("  not resolved (the lookup took longer than 3 s): d.example\n"),
            "{t}"
        );
        assert!(!t.contains("cannot resolve"), "{t}");
    }

    #[test]
    fn json_has_the_typed_code_as_snake_case() {
        let doc = json(&report());
        assert_eq!(doc["findings"][0]["code"], "no_network");
        assert_eq!(doc["findings"][0]["severity"], "problem");
        assert_eq!(doc["schema_version"], crate::SCHEMA_VERSION);
    }

    #[test]
    fn error_lines_name_each_cause_once() {
        let e = natkit_core::Error::mechanism(
            natkit_core::Mechanism::Pcp,
            natkit_core::FailureKind::Timeout,
            std::io::Error::other("no answer from 192.168.77.1:5351"),
        );
        assert_eq!(
            error_line(&e),
            "pcp: timed out: no answer from 192.168.77.1:5351"
        );
    }
}
