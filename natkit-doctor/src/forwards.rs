//! The router's whole forwarding table in the report, each entry with what its port
//! is usually for (the iChat note's "548 and 5900, what were those?").

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use natkit_core::Protocol;
use natkit_upnp::PortMappingEntry;
use serde::Serialize;

/// One entry of the router's forwarding table (UPnP listing).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RouterForward {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The port on the router's WAN side.
    pub external_port: u16,
    /// The LAN host it goes to, as the router names it.
    pub internal_host: String,
    /// The port on that host.
    pub internal_port: u16,
    /// Whether it goes to this host.
    pub this_host: bool,
    /// The description its creator gave.
    pub description: String,
    /// The lease left in seconds; 0 is permanent.
    pub lease_secs: u32,
    /// Whether the router has it enabled.
    pub enabled: bool,
    /// What the external port is usually for (a natkit profile's purpose, else
    /// a common registration); `None` when natkit does not know the port.
    pub purpose: Option<&'static str>,
}

/// The report's rows for a listed table: this host's first, each in port order.
pub(crate) fn table(entries: &[PortMappingEntry], local: Ipv4Addr) -> Vec<RouterForward> {
    let mut rows: Vec<RouterForward> = entries
        .iter()
        .map(|e| RouterForward {
            protocol: e.protocol,
            external_port: e.external_port,
            internal_host: e.internal_client.clone(),
            internal_port: e.internal_port,
            this_host: e.internal_client.parse::<Ipv4Addr>() == Ok(local),
            description: e.description.clone(),
            lease_secs: e.lease_secs,
            enabled: e.enabled,
            purpose: natkit_core::purpose(e.external_port, e.protocol),
        })
        .collect();
    rows.sort_by_key(|f| (!f.this_host, f.external_port, f.protocol));
    rows
}

/// The text section: nothing when the table was not read, a line when it is empty.
pub(crate) fn render(forwards: Option<&[RouterForward]>, title: &str, o: &mut String) {
    let Some(rows) = forwards else { return };
    let _ = writeln!(o, "\n{title}");
    if rows.is_empty() {
        let _ = writeln!(o, "  none");
        return;
    }
    for f in rows {
        let to = if f.this_host {
            format!("this host:{}", f.internal_port)
        } else {
            format!("{}:{}", f.internal_host, f.internal_port)
        };
        let lease = match (f.lease_secs, f.enabled) {
            (_, false) => ", disabled".to_owned(),
            (0, true) => ", permanent".to_owned(),
            (s, true) => format!(", {s} s left"),
        };
        let _ = writeln!(
            o,
            "  {:>11}  -> {:<24} {:<42} {:?}{lease}",
            format!("{}/{}", f.external_port, f.protocol),
            to,
            f.purpose.unwrap_or("unknown port"),
            f.description,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

    fn entry(client: &str, port: u16, protocol: Protocol) -> PortMappingEntry {
        PortMappingEntry {
            remote_host: String::new(),
            external_port: port,
            protocol,
            internal_client: client.into(),
            internal_port: port,
            enabled: true,
            description: format!("d{port}"),
            lease_secs: 0,
        }
    }

    #[test]
    fn this_hosts_forwards_come_first_with_purposes() {
        let rows = table(
            &[
                entry("192.168.77.3", 3074, Protocol::Udp),
                entry("192.168.77.2", 5900, Protocol::Tcp),
                entry("192.168.77.2", 548, Protocol::Tcp),
                entry("printer", 40000, Protocol::Tcp),
            ],
            HOST,
        );
        let got: Vec<_> = rows
            .iter()
            .map(|f| (f.external_port, f.this_host, f.purpose))
            .collect();
        assert_eq!(
            got,
            [
                (548, true, Some("Apple Filing Protocol over TCP")),
                (
                    5900,
                    true,
                    Some("VNC / Apple Remote Desktop screen sharing")
                ),
                (3074, false, Some("Xbox Live")),
                (40000, false, None),
            ]
        );
        let mut o = String::new();
        render(Some(&rows), "Router forwards", &mut o);
        assert!(o.contains("548/tcp  -> this host:548"), "{o}");
        assert!(o.contains("-> 192.168.77.3:3074"), "{o}");
        assert!(o.contains("unknown port"), "{o}");
        let mut empty = String::new();
        render(Some(&[]), "Router forwards", &mut empty);
        assert_eq!(empty, "\nRouter forwards\n  none\n");
        let mut unread = String::new();
        render(None, "Router forwards", &mut unread);
        assert!(unread.is_empty());
    }
}
