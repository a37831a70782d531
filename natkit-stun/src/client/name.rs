//! STUN server names before any lookup: `host:port`, `[v6]:port`, an address, or a
//! bare host (port 3478), and why a name gave no address.

use std::net::{IpAddr, SocketAddr};

use super::{DEFAULT_PORT, RESOLVE_TIMEOUT};

/// Why a server name gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResolveFailure {
    /// The name is not empty and well formed, but the resolver says it does not exist.
    NoSuchName,
    /// The resolver could not be reached or did not answer (no DNS: a dead uplink, or
    /// a captive network).
    DnsUnreachable,
    /// The lookup took longer than [`RESOLVE_TIMEOUT`].
    TimedOut,
    /// The name exists but has no address.
    NoAddress,
    /// The name has addresses, none of the family asked for (no AAAA record for an
    /// IPv6 question).
    NoAddressInFamily {
        /// The family asked for.
        family: super::IpFamily,
    },
    /// The text is not a host, `host:port` or address.
    BadName,
    /// Another resolver failure, as the system described it.
    Other {
        /// The system's message.
        message: String,
    },
}

impl std::fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveFailure::NoSuchName => f.write_str("no such name"),
            ResolveFailure::DnsUnreachable => {
                f.write_str("the DNS resolver did not answer (no internet, or no DNS server)")
            }
            ResolveFailure::TimedOut => write!(
                f,
                "the lookup took longer than {} s",
                RESOLVE_TIMEOUT.as_secs()
            ),
            ResolveFailure::NoAddress => f.write_str("the name has no address"),
            ResolveFailure::NoAddressInFamily { family } => {
                write!(f, "the name has no {family} address")
            }
            ResolveFailure::BadName => f.write_str("not a host, host:port or address"),
            ResolveFailure::Other { message } => f.write_str(message),
        }
    }
}

/// What a server name is, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerName {
    /// An address: nothing to look up.
    Addr(SocketAddr),
    /// A host name and port to look up.
    Host(String, u16),
}

impl ServerName {
    /// Parses `host:port`, `[v6]:port`, an IP address, or a bare host (port 3478).
    pub fn parse(name: &str) -> Result<ServerName, ResolveFailure> {
        let name = name.trim();
        if let Ok(a) = name.parse::<SocketAddr>() {
            return Ok(ServerName::Addr(a));
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(ServerName::Addr(SocketAddr::new(ip, DEFAULT_PORT)));
        }
        let (host, port) = match name.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>().map_err(|_| ResolveFailure::BadName)?,
            ),
            None => (name, DEFAULT_PORT),
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid || port == 0 {
            return Err(ResolveFailure::BadName);
        }
        Ok(ServerName::Host(host.to_owned(), port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_before_any_lookup() {
        let a = |s: &str| ServerName::Addr(s.parse().expect("addr"));
        assert_eq!(ServerName::parse("192.0.2.1:3479"), Ok(a("192.0.2.1:3479")));
        assert_eq!(ServerName::parse("192.0.2.1"), Ok(a("192.0.2.1:3478")));
        assert_eq!(
            ServerName::parse("[2001:db8::1]:19302"),
            Ok(a("[2001:db8::1]:19302"))
        );
        assert_eq!(
            ServerName::parse("2001:db8::1"),
            Ok(a("[2001:db8::1]:3478"))
        );
        assert_eq!(
            ServerName::parse("stun.example.net"),
            Ok(ServerName::Host("stun.example.net".into(), 3478))
        );
        assert_eq!(
            ServerName::parse(" stun.example.net:19302 "),
            Ok(ServerName::Host("stun.example.net".into(), 19302))
        );
        for bad in [
            "",
            ":3478",
            "stun.example.net:",
            "stun.example.net:0",
            "a b",
            "host:99999",
            "x/y",
        ] {
            assert_eq!(
                ServerName::parse(bad),
                Err(ResolveFailure::BadName),
                "{bad:?}"
            );
        }
    }
}
