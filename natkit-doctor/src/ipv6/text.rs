//! The IPv6 section of the text report.

use std::fmt::Write as _;

use super::report::{FirewallVerdict, Ipv6Report, PinholeVerdict, mechanism_name};

/// The section under `title`; nothing when the checks did not run (no
/// default route).
pub(crate) fn render(v6: Option<&Ipv6Report>, title: &str, o: &mut String) {
    let Some(v6) = v6 else { return };
    let _ = writeln!(o, "\n{title}");
    if !v6.available {
        let _ = writeln!(o, "  none          {}", v6.detail);
        return;
    }
    for (i, a) in v6.addresses.iter().enumerate() {
        let label = if i == 0 { "addresses" } else { "" };
        let kind = a.kind.strip_prefix("global_").unwrap_or(a.kind);
        let how = if a.is_static { ", static" } else { "" };
        let on = a
            .interface
            .as_deref()
            .map(|i| format!(" on {i}"))
            .unwrap_or_default();
        let _ = writeln!(o, "  {label:<13} {} ({kind}{how}){on}", a.address);
    }
    match &v6.pinhole_address {
        Some(p) => {
            let outbound = p
                .outbound_source
                .map(|s| format!("; outbound traffic uses {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  pinholes for  {} ({}{outbound})",
                p.address,
                p.reason.replace('_', " ")
            );
        }
        None => {
            let _ = writeln!(o, "  pinholes for  none: no stable address");
        }
    }
    let fw = &v6.firewall;
    let verdict = match fw.verdict {
        FirewallVerdict::BlocksInbound => "drops new inbound connections",
        FirewallVerdict::AllowsInbound => "lets new inbound connections in",
        FirewallVerdict::Unknown => "unknown",
        FirewallVerdict::NotChecked => "not checked",
    };
    let why = if fw.evidence.is_empty() {
        fw.not_checked.clone().unwrap_or_default()
    } else {
        fw.evidence.join("; ")
    };
    let _ = writeln!(o, "  firewall      {verdict}{}", paren(&why));
    let p = &v6.pinhole;
    let line = match (p.verdict, p.protocol, p.pinhole, p.transport) {
        (PinholeVerdict::Opened, Some(proto), Some(at), Some(t)) => {
            let removed = p
                .attempts
                .iter()
                .filter(|a| a.outcome == "opened")
                .all(|a| a.removed == Some(true));
            format!(
                "natkit can open one: {at}/{t} through {}, {}",
                mechanism_name(proto),
                if removed { "removed" } else { "NOT removed" }
            )
        }
        (PinholeVerdict::Refused, ..) => "refused".to_owned(),
        (PinholeVerdict::NoProtocol, ..) => {
            "no pinhole protocol (UPnP IGD WANIPv6FirewallControl, PCP)".to_owned()
        }
        _ => format!(
            "not checked{}",
            paren(p.not_checked.as_deref().unwrap_or(""))
        ),
    };
    let _ = writeln!(o, "  pinhole       {line}");
    for a in &p.attempts {
        let detail = a.detail.as_deref().map(paren).unwrap_or_default();
        let _ = writeln!(
            o,
            "                  {:<10} {}{detail}",
            mechanism_name(a.protocol),
            a.outcome
        );
    }
    let r = &v6.reachability;
    if let Some(why) = &r.not_checked {
        let _ = writeln!(o, "  from outside  not checked ({why})");
    }
    for (i, port) in r.ports.iter().enumerate() {
        let label = if i == 0 { "from outside" } else { "" };
        let how = if port.through_pinhole {
            "through a pinhole"
        } else {
            "without a pinhole"
        };
        let _ = writeln!(
            o,
            "  {label:<13} {}/{} {how}: {}",
            port.port,
            port.protocol,
            port.verdict.replace('_', " ")
        );
    }
}

/// ` (text)`, or nothing for no text.
fn paren(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}
