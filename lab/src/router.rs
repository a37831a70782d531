//! The router's own view of its port mappings: miniupnpd's list as the
//! reference client `upnpc -l` prints it, and the router's nftables rules.
//!
//! miniupnpd keeps UPnP, NAT-PMP and PCP mappings in one table, so this one
//! listing shows all three (NAT-PMP entries read `NAT-PMP <port> <proto>`, PCP
//! entries `PCP MAP <nonce>`); the lease column is the *remaining* lease.

use std::net::SocketAddrV4;

use crate::error::LabError;
use crate::lab::Lab;
use crate::spec::{Node, Proto};

/// One row of `upnpc -l`:
/// ` 1 TCP  5555->192.168.77.2:5555  'natkit 192.168.77.2 x' '' 3599`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterMapping {
    /// TCP or UDP.
    pub proto: Proto,
    /// The router's external port.
    pub external_port: u16,
    /// The LAN address and port it forwards to.
    pub internal: SocketAddrV4,
    /// The stored description.
    pub description: String,
    /// The remaining lease in seconds (0: permanent).
    pub lease_secs: u32,
}

/// Parses the rows of `upnpc -l` output; every other line is skipped.
pub fn parse_upnpc_list(text: &str) -> Vec<RouterMapping> {
    text.lines().filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<RouterMapping> {
    let mut words = line.split_whitespace();
    words.next()?.parse::<u32>().ok()?;
    let proto = match words.next()? {
        "TCP" => Proto::Tcp,
        "UDP" => Proto::Udp,
        _ => return None,
    };
    let (external, internal) = words.next()?.split_once("->")?;
    let external_port = external.parse().ok()?;
    let internal = internal.parse().ok()?;
    // The rest: 'description' 'remoteHost' lease — the description may hold spaces.
    let rest = line.split_once("->")?.1;
    let open = rest.find('\'')?;
    let close = open + 1 + rest[open + 1..].find('\'')?;
    let description = rest[open + 1..close].to_owned();
    let lease_secs = rest.split_whitespace().last()?.parse().ok()?;
    Some(RouterMapping {
        proto,
        external_port,
        internal,
        description,
        lease_secs,
    })
}

impl Lab {
    /// miniupnpd's mapping table, read with `upnpc -u <rootDesc> -l` from the LAN
    /// host (no SSDP wait). Fails without miniupnpd or when upnpc fails.
    pub fn router_mappings(&self) -> Result<Vec<RouterMapping>, LabError> {
        if !self.spec().miniupnpd {
            return Err(LabError::NoMiniupnpd);
        }
        let port = self.get("MINIUPNPD_HTTP_PORT").unwrap_or("2869");
        let url = format!("http://{}:{port}/rootDesc.xml", self.addrs().rtr_lan);
        let text = self.exec_ok(Node::Lan, &["upnpc", "-u", url.as_str(), "-l"])?;
        Ok(parse_upnpc_list(&text))
    }

    /// The router's whole nftables ruleset (`nft list ruleset` in `rtr`), where
    /// miniupnpd's DNAT and forward rules for each mapping live.
    pub fn router_ruleset(&self) -> Result<String, LabError> {
        self.exec_ok(Node::Rtr, &["nft", "list", "ruleset"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upnpc_rows() {
        let text = "\
ExternalIPAddress = 88.77.66.2
 i protocol exPort->inAddr:inPort description remoteHost leaseTime
 0 UDP  5557->192.168.77.2:5557  'NAT-PMP 5557 udp' '' 60
 1 TCP  5555->192.168.77.2:5555  'natkit 192.168.77.2 x' '' 3599
10 TCP   443->192.168.77.3:443   '' '' 0
GetGenericPortMappingEntry() returned 713 (SpecifiedArrayIndexInvalid)
";
        let rows = parse_upnpc_list(text);
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            RouterMapping {
                proto: Proto::Udp,
                external_port: 5557,
                internal: "192.168.77.2:5557".parse().unwrap(),
                description: "NAT-PMP 5557 udp".into(),
                lease_secs: 60,
            }
        );
        assert_eq!(rows[1].description, "natkit 192.168.77.2 x");
        assert_eq!(rows[1].lease_secs, 3599);
        assert_eq!(rows[2].description, "");
        assert_eq!(rows[2].external_port, 443);
    }
}
