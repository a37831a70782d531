//! Port mapping table entries, and the natkit tag in their descriptions.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use natkit_core::{DESCRIPTION_TAG, Protocol};

/// The longest description natkit stores. Routers truncate long ones
/// (miniupnpd keeps descriptions in small fixed buffers); a truncated tag
/// would no longer be recognised by [`cleanup`](crate::Igd::cleanup), so
/// natkit truncates the user's part itself.
pub const MAX_DESCRIPTION: usize = 64;

/// One entry of the router's port mapping table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMappingEntry {
    /// `NewRemoteHost`: empty for "any remote host".
    pub remote_host: String,
    /// The external port.
    pub external_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The LAN host the port is forwarded to, as the router reports it.
    pub internal_client: String,
    /// The port on that host.
    pub internal_port: u16,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// The description its creator gave.
    pub description: String,
    /// Remaining lease in seconds; 0 means permanent.
    pub lease_secs: u32,
}

impl PortMappingEntry {
    /// The host that made this entry, if its description carries the
    /// natkit tag.
    pub fn natkit_owner(&self) -> Option<Ipv4Addr> {
        parse_tag(&self.description).map(|(ip, _)| ip)
    }

    /// Whether this is a natkit entry made by `host` for `host` itself: the
    /// only entries [`cleanup`](crate::Igd::cleanup) removes.
    pub fn is_natkit_entry_of(&self, host: Ipv4Addr) -> bool {
        self.natkit_owner() == Some(host) && self.client() == Some(host)
    }

    /// Whether this entry forwards to exactly `internal` with exactly
    /// `description`: the mapping asked for, made by one of its copies.
    pub(crate) fn is_mapping_of(&self, internal: SocketAddrV4, description: &str) -> bool {
        self.client() == Some(*internal.ip())
            && self.internal_port == internal.port()
            && self.description == description
    }

    /// The internal client, which routers report as text.
    fn client(&self) -> Option<Ipv4Addr> {
        self.internal_client.parse().ok()
    }
}

impl fmt::Display for PortMappingEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{} {:?}",
            self.external_port,
            self.protocol,
            self.internal_client,
            self.internal_port,
            self.description
        )?;
        if self.lease_secs == 0 {
            f.write_str(" (permanent)")
        } else {
            write!(f, " ({} s left)", self.lease_secs)
        }
    }
}

/// The description natkit stores: `natkit <host> <user description>`,
/// at most [`MAX_DESCRIPTION`] bytes. A user description that is empty or
/// just the tag adds nothing.
pub fn tag_description(host: Ipv4Addr, user: &str) -> String {
    let mut out = format!("{DESCRIPTION_TAG} {host}");
    let user = user.trim();
    if user.is_empty() || user == DESCRIPTION_TAG {
        return out;
    }
    out.push(' ');
    for c in user.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_DESCRIPTION {
            break;
        }
        out.push(c);
    }
    out
}

/// The host and user description of a natkit-tagged description.
pub fn parse_tag(description: &str) -> Option<(Ipv4Addr, &str)> {
    let rest = description
        .strip_prefix(DESCRIPTION_TAG)?
        .strip_prefix(' ')?;
    let (host, user) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((host.parse().ok()?, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);

    fn entry(client: &str, description: &str) -> PortMappingEntry {
        PortMappingEntry {
            remote_host: String::new(),
            external_port: 443,
            protocol: Protocol::Tcp,
            internal_client: client.into(),
            internal_port: 443,
            enabled: true,
            description: description.into(),
            lease_secs: 0,
        }
    }

    #[test]
    fn tags_round_trip() {
        let d = tag_description(HOST, "ssh server");
        assert_eq!(d, "natkit 192.168.77.2 ssh server");
        assert_eq!(parse_tag(&d), Some((HOST, "ssh server")));
        assert_eq!(tag_description(HOST, "natkit"), "natkit 192.168.77.2");
        assert_eq!(parse_tag("natkit 192.168.77.2"), Some((HOST, "")));
        let long = tag_description(HOST, &"é".repeat(100));
        assert!(long.len() <= MAX_DESCRIPTION);
        assert_eq!(parse_tag(&long).map(|t| t.0), Some(HOST));
    }

    #[test]
    fn only_own_tagged_entries_are_ours() {
        assert!(entry("192.168.77.2", "natkit 192.168.77.2 x").is_natkit_entry_of(HOST));
        // Another natkit host's entry.
        assert!(!entry("192.168.77.3", "natkit 192.168.77.3 x").is_natkit_entry_of(HOST));
        // Tagged by us but forwarding elsewhere: not ours to remove.
        assert!(!entry("192.168.77.3", "natkit 192.168.77.2 x").is_natkit_entry_of(HOST));
        // Not natkit at all.
        assert!(!entry("192.168.77.2", "Skype").is_natkit_entry_of(HOST));
        assert!(!entry("192.168.77.2", "natkitten 192.168.77.2").is_natkit_entry_of(HOST));
        assert_eq!(
            entry("192.168.77.3", "upnpc").to_string(),
            "443/tcp -> 192.168.77.3:443 \"upnpc\" (permanent)"
        );
    }
}
