//! The human report: the path as a small picture, the NAT type, the
//! ports, and the findings with their fixes.

use std::fmt::Write as _;
use std::net::IpAddr;

use natkit_core::AddressScope;

use crate::report::{Report, Severity, Status};

fn scope(ip: IpAddr) -> &'static str {
    AddressScope::of(ip).describe()
}

/// The whole human report as text.
pub(crate) fn human(r: &Report) -> String {
    let mut o = String::new();
    path(r, &mut o);
    nat(r, &mut o);
    ports(r, &mut o);
    findings(r, &mut o);
    o
}

fn path(r: &Report, o: &mut String) {
    let (Some(gw), Some(local)) = (r.gateway, r.local_address) else {
        return;
    };
    let mp = &r.mapping_protocols;
    let _ = writeln!(o, "Path");
    let _ = writeln!(
        o,
        "  [this host]   {local} ({}) on {}",
        scope(local.into()),
        r.interface.as_deref().unwrap_or("?")
    );
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
    for s in &r.stun_servers {
        let what = match (s.address, &s.detail) {
            (Some(a), _) => format!("saw {a}"),
            (None, Some(d)) => format!("{}: {d}", s.outcome.replace('_', " ")),
            (None, None) => s.outcome.replace('_', " "),
        };
        let _ = writeln!(o, "                  {:<24} {what}", s.server);
    }
    for (name, s) in mp.named() {
        if let (Some(d), true) = (&s.detail, s.status != Status::Available) {
            let _ = writeln!(o, "  {name}: {d}");
        }
    }
    if r.double_nat {
        let _ = writeln!(o, "\n  Double NAT: {}", r.double_nat_evidence.join("; "));
    }
}

fn nat(r: &Report, o: &mut String) {
    let Some(n) = &r.nat else { return };
    let _ = writeln!(o, "\nNAT type        {}", n.legacy_type);
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
        let _ = writeln!(o, "  tested with   {s}{rtt}");
    }
    for note in &n.notes {
        let _ = writeln!(o, "  note          {note}");
    }
}

fn ports(r: &Report, o: &mut String) {
    if r.ports.is_empty() {
        return;
    }
    let _ = writeln!(o, "\nPorts");
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

fn findings(r: &Report, o: &mut String) {
    let _ = writeln!(o);
    if r.findings.is_empty() {
        let _ = writeln!(o, "Findings: none — nothing in the way was found.");
        return;
    }
    let _ = writeln!(o, "Findings");
    for f in &r.findings {
        let mark = match f.severity {
            Severity::Problem => "✗",
            Severity::Warning => "!",
        };
        let _ = writeln!(o, "  {mark} {}: {}", f.code, f.message);
        let _ = writeln!(o, "      fix: {}", f.fix);
    }
}
