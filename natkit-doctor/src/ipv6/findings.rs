//! The IPv6 findings, each with its fix: `no_ipv6` (informational),
//! `ipv6_temporary_address_only` and `ipv6_firewall_blocks`.

use std::net::Ipv6Addr;

use natkit_core::{Ipv6Kind, Protocol};

use super::report::{FirewallVerdict, Ipv6Report, PinholeVerdict, mechanism_name};
use crate::findings::FindingCode;
use crate::report::{Finding, Report, Severity};

/// The `natkit map` command that opens a pinhole for `port/protocol` on this
/// host's stable address (the fix natkit itself can apply).
pub(crate) fn map_command(port: Option<u16>, protocol: Protocol) -> String {
    let port = port.map_or_else(|| "PORT".to_owned(), |p| p.to_string());
    format!("natkit map --ipv6 --protocol {protocol} --port {port}")
}

/// The IPv6 findings: `no_ipv6` (informational), `ipv6_temporary_address_only`
/// and `ipv6_firewall_blocks`.
pub(crate) fn findings(r: &Report) -> Vec<Finding> {
    let Some(v6) = &r.ipv6 else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if !v6.available {
        // With a global address the checks ran (and found IPv6 going nowhere).
        let ran = if v6.firewall.verdict == FirewallVerdict::NotChecked {
            ", and the IPv6 checks did not run"
        } else {
            ""
        };
        out.push(crate::findings::finding(
            FindingCode::NoIpv6,
            Severity::Info,
            format!(
                "{}; services here are reachable over IPv4 only{ran}",
                v6.detail
            ),
            "nothing to do for IPv4; for IPv6, turn it on in the router's settings (often \
             \"IPv6\" or \"native IPv6\") if the internet provider offers it",
        ));
        return out;
    }
    let temporary: Vec<Ipv6Addr> = v6
        .addresses
        .iter()
        .filter(|a| a.kind == Ipv6Kind::GlobalTemporary.as_str())
        .map(|a| a.address)
        .collect();
    let stable = v6
        .addresses
        .iter()
        .any(|a| a.kind == Ipv6Kind::GlobalStable.as_str());
    if !stable && !temporary.is_empty() {
        out.push(crate::findings::finding(
            FindingCode::Ipv6TemporaryAddressOnly,
            Severity::Warning,
            format!(
                "this host has only temporary (privacy) IPv6 addresses ({}): each is retired \
                 within about a day, so nothing outside can keep reaching this host at one, \
                 and natkit opens no pinhole for it",
                list(&temporary)
            ),
            "give this host a stable IPv6 address as well: on Linux set \
             net.ipv6.conf.IFACE.use_tempaddr to 1 (temporary addresses alongside a stable \
             one) or addr_gen_mode to stable-privacy, or add a static address; on a Mac \
             the stable (\"secured\") address comes back when the interface is renewed",
        ));
    }
    if v6.firewall.verdict == FirewallVerdict::BlocksInbound {
        let ports: Vec<(u16, Protocol)> = r.ports.iter().map(|p| (p.port, p.protocol)).collect();
        out.push(firewall_finding(v6, &ports));
    }
    out
}

/// `a, b, c`.
fn list(addrs: &[Ipv6Addr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ports a fix names: at most this many.
const FIX_PORTS: usize = 4;

fn firewall_finding(v6: &Ipv6Report, ports: &[(u16, Protocol)]) -> Finding {
    let message = format!(
        "the router's firewall drops new inbound IPv6 connections to this host ({}): nothing \
         outside can connect to a service here over IPv6 without a pinhole",
        v6.firewall.evidence.join("; ")
    );
    let address = v6
        .pinhole_address
        .as_ref()
        .map_or_else(|| "this host".to_owned(), |a| a.address.to_string());
    let named: Vec<(Option<u16>, Protocol)> = if ports.is_empty() {
        vec![(None, v6.pinhole.transport.unwrap_or(Protocol::Tcp))]
    } else {
        ports
            .iter()
            .take(FIX_PORTS)
            .map(|&(p, proto)| (Some(p), proto))
            .collect()
    };
    let more = ports
        .len()
        .checked_sub(FIX_PORTS)
        .filter(|n| *n > 0)
        .map(|n| format!(" (and the same for the other {n} ports)"))
        .unwrap_or_default();
    let fix = match (v6.pinhole.verdict, v6.pinhole.protocol) {
        (PinholeVerdict::Opened, Some(protocol)) => {
            let commands: Vec<String> = named
                .iter()
                .map(|&(p, proto)| format!("`{}`", map_command(p, proto)))
                .collect();
            format!(
                "natkit can open the pinhole (a trial one for {address} opened through {} and \
                 was deleted): run {}{more}, which keeps it open while it runs; or allow the \
                 port{} in the router's IPv6 firewall settings",
                mechanism_name(protocol),
                commands.join(", "),
                if named.len() > 1 { "s" } else { "" },
            )
        }
        (PinholeVerdict::Refused, _) => {
            let why: Vec<String> = v6
                .pinhole
                .attempts
                .iter()
                .filter(|a| a.outcome == "refused")
                .map(|a| {
                    format!(
                        "{}: {}",
                        mechanism_name(a.protocol),
                        a.detail.as_deref().unwrap_or("refused")
                    )
                })
                .collect();
            format!(
                "the router refuses pinholes ({}): allow inbound IPv6 to {address} on {} in \
                 the router's firewall settings (\"IPv6 firewall\", \"pinholes\" or \"port \
                 filtering\"), or allow UPnP/PCP pinholes there",
                why.join("; "),
                ports_words(&named)
            )
        }
        _ => format!(
            "the router answers no pinhole protocol (neither UPnP IGD's \
             WANIPv6FirewallControl nor PCP), so natkit cannot open one: open {} for {address} \
             in the router's firewall settings (\"IPv6 firewall\", \"pinholes\" or \"port \
             filtering\"), or enable UPnP or PCP there so natkit can",
            ports_words(&named)
        ),
    };
    crate::findings::finding(
        FindingCode::Ipv6FirewallBlocks,
        Severity::Warning,
        message,
        &fix,
    )
}

fn ports_words(named: &[(Option<u16>, Protocol)]) -> String {
    let words: Vec<String> = named
        .iter()
        .map(|(p, proto)| match p {
            Some(p) => format!("{p}/{proto}"),
            None => "the service's port".to_owned(),
        })
        .collect();
    words.join(", ")
}
