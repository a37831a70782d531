//! WAN connection services, sans-IO: which service types natkit drives,
//! in which order it prefers them, and which of several WAN connections
//! of one router it maps through.
//!
//! Real routers write the service type in more ways than the IGD spec's
//! two (`urn:schemas-upnp-org:service:WANIPConnection:1` and
//! `…:WANPPPConnection:1`), and a client that matches only those finds no
//! service and never sends a request:
//! - version 2 and later: IGD:2 routers offer `WANIPConnection:2` (Google
//!   OnHub, miniupnpd) and Sagemcom's Orange Livebox offers only
//!   `WANPPPConnection:2`;
//! - the Broadband Forum's namespace, `urn:dslforum-org:service:…` (TR-064):
//!   a Huawei HG531 writes its whole description in it (tailscale issue
//!   #10911), its WAN service being
//!   `urn:dslforum-org:service:WANPPPConnection:1`;
//! - several WAN connection devices in one description (a MikroTik CHR has
//!   two WANDevices, each with a WANIPConnection:1, tailscale issue #8364;
//!   DSL routers list an unconfigured PPP connection next to the IP one).
//!
//! A device answers a request addressed to its own service type or an
//! earlier version of it, and refuses (401 Invalid Action) one addressed to
//! a later version or another namespace, so natkit addresses every request
//! to the type exactly as the description writes it.

use std::fmt;
use std::net::IpAddr;

use natkit_core::AddressScope;

use crate::wire::status::ConnectionStatus;

/// The namespace a service type is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UrnDomain {
    /// `urn:schemas-upnp-org:` (UPnP Forum's IGD), preferred.
    UpnpOrg,
    /// `urn:dslforum-org:` (Broadband Forum TR-064). Some routers serve
    /// their IGD in it; on others (AVM) it is a separate management
    /// interface that asks for a password, which is why the UPnP Forum's
    /// service comes first when a router offers both.
    DslForum,
}

impl UrnDomain {
    fn parse(s: &str) -> Option<UrnDomain> {
        if s.eq_ignore_ascii_case("schemas-upnp-org") {
            Some(UrnDomain::UpnpOrg)
        } else if s.eq_ignore_ascii_case("dslforum-org") {
            Some(UrnDomain::DslForum)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            UrnDomain::UpnpOrg => "schemas-upnp-org",
            UrnDomain::DslForum => "dslforum-org",
        }
    }
}

/// Which WAN connection service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WanConnection {
    /// `WANIPConnection` (routers with an IP uplink), preferred.
    Ip,
    /// `WANPPPConnection` (DSL routers).
    Ppp,
}

/// A WAN connection service type natkit can drive: any version of
/// `WANIPConnection` or `WANPPPConnection`, in the UPnP Forum's or the
/// Broadband Forum's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WanServiceKind {
    /// IP or PPP.
    pub connection: WanConnection,
    /// The service version (1 for IGD:1, 2 for IGD:2, …).
    pub version: u32,
    /// The namespace.
    pub domain: UrnDomain,
}

/// The highest service version accepted (IGD:2 is the latest published).
const MAX_VERSION: u32 = 99;

impl WanServiceKind {
    /// `urn:schemas-upnp-org:service:WANIPConnection:2`.
    pub const WAN_IP2: WanServiceKind = WanServiceKind::upnp(WanConnection::Ip, 2);
    /// `urn:schemas-upnp-org:service:WANIPConnection:1`.
    pub const WAN_IP1: WanServiceKind = WanServiceKind::upnp(WanConnection::Ip, 1);
    /// `urn:schemas-upnp-org:service:WANPPPConnection:1`.
    pub const WAN_PPP1: WanServiceKind = WanServiceKind::upnp(WanConnection::Ppp, 1);

    const fn upnp(connection: WanConnection, version: u32) -> WanServiceKind {
        WanServiceKind {
            connection,
            version,
            domain: UrnDomain::UpnpOrg,
        }
    }

    /// The kind of a service type URN, `urn:DOMAIN:service:NAME:VERSION`
    /// (domain and name compared case-insensitively), or `None` for any
    /// other service.
    pub fn parse(urn: &str) -> Option<WanServiceKind> {
        let mut parts = urn.trim().split(':');
        let (Some(urn_word), Some(domain), Some(service), Some(name), Some(version), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if !urn_word.eq_ignore_ascii_case("urn") || !service.eq_ignore_ascii_case("service") {
            return None;
        }
        let connection = if name.eq_ignore_ascii_case("WANIPConnection") {
            WanConnection::Ip
        } else if name.eq_ignore_ascii_case("WANPPPConnection") {
            WanConnection::Ppp
        } else {
            return None;
        };
        // Digits without a leading zero, so the canonical spelling is the
        // description's (case aside).
        if version.is_empty()
            || version.len() > 2
            || version.starts_with('0')
            || !version.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let version: u32 = version.parse().ok()?;
        if version == 0 || version > MAX_VERSION {
            return None;
        }
        Some(WanServiceKind {
            connection,
            version,
            domain: UrnDomain::parse(domain)?,
        })
    }

    /// The service type URN in its canonical spelling. Requests use the
    /// description's own spelling ([`Igd::service_type`](crate::Igd::service_type)).
    pub fn service_type(self) -> String {
        format!("urn:{}:service:{self}", self.domain.as_str())
    }

    /// Whether the service has the IGD:2 actions (`AddAnyPortMapping`):
    /// version 2 or later.
    pub fn is_igd2(self) -> bool {
        self.version >= 2
    }

    /// The order of preference when nothing else decides: the UPnP
    /// Forum's namespace, then IP before PPP, then the higher version.
    pub(crate) fn preference(self) -> (UrnDomain, WanConnection, std::cmp::Reverse<u32>) {
        (
            self.domain,
            self.connection,
            std::cmp::Reverse(self.version),
        )
    }
}

impl fmt::Display for WanServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.connection {
            WanConnection::Ip => "WANIPConnection",
            WanConnection::Ppp => "WANPPPConnection",
        };
        write!(f, "{name}:{}", self.version)
    }
}

/// What one WAN connection answered when asked for its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionAnswer {
    /// `GetStatusInfo`'s status, `None` when the action failed.
    pub status: Option<ConnectionStatus>,
    /// `GetExternalIPAddress`, `None` when the action failed.
    pub external_ip: Option<IpAddr>,
}

impl ConnectionAnswer {
    /// How good a connection to map through this is; higher is better, 0
    /// is not usable. A connection whose `GetStatusInfo` fails counts as
    /// connected when it reports an external address (some routers lack
    /// the action).
    fn score(&self) -> u8 {
        let has_address = self.external_ip.is_some_and(|ip| !ip.is_unspecified());
        let connected = match &self.status {
            Some(s) => s.is_connected(),
            None => has_address,
        };
        if !connected {
            return 0;
        }
        match self.external_ip.map(AddressScope::of) {
            Some(AddressScope::Global) => 3,
            Some(AddressScope::Unspecified) | None => 1,
            Some(_) => 2,
        }
    }

    /// Whether mappings through this connection could reach anyone.
    pub fn is_usable(&self) -> bool {
        self.score() > 0
    }
}

/// Which of a router's WAN connections to map through, given what each
/// answered, listed in order of preference: the first connected one with a
/// public external address, else the first connected one with any address
/// (a router behind another NAT), else the first connected one. `None`
/// when none is connected.
pub fn choose_connection(answers: &[ConnectionAnswer]) -> Option<usize> {
    let best = answers
        .iter()
        .enumerate()
        .max_by_key(|(i, p)| (p.score(), std::cmp::Reverse(*i)))?;
    (best.1.score() > 0).then_some(best.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_version_and_both_namespaces() {
        assert_eq!(
            WanServiceKind::parse("urn:schemas-upnp-org:service:WANIPConnection:2"),
            Some(WanServiceKind::WAN_IP2)
        );
        assert_eq!(
            WanServiceKind::parse("URN:SCHEMAS-UPNP-ORG:SERVICE:WANPPPCONNECTION:1"),
            Some(WanServiceKind::WAN_PPP1)
        );
        let ppp2 =
            WanServiceKind::parse("urn:schemas-upnp-org:service:WANPPPConnection:2").unwrap();
        assert_eq!((ppp2.connection, ppp2.version), (WanConnection::Ppp, 2));
        assert!(ppp2.is_igd2());
        let dsl = WanServiceKind::parse("urn:dslforum-org:service:WANPPPConnection:1").unwrap();
        assert_eq!(dsl.domain, UrnDomain::DslForum);
        assert_eq!(
            dsl.service_type(),
            "urn:dslforum-org:service:WANPPPConnection:1"
        );
        assert_eq!(
            WanServiceKind::parse("urn:schemas-upnp-org:service:WANIPConnection:3")
                .map(|k| k.version),
            Some(3)
        );
        for not in [
            "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1",
            "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
            "urn:schemas-upnp-org:device:WANConnectionDevice:1",
            "urn:schemas-upnp-org:service:WANIPConnection",
            "urn:schemas-upnp-org:service:WANIPConnection:0",
            "urn:schemas-upnp-org:service:WANIPConnection:x",
            "urn:schemas-upnp-org:service:WANIPConnection:01",
            "urn:schemas-upnp-org:service:WANIPConnection:1:1",
            "urn:example-com:service:WANIPConnection:1",
            "",
        ] {
            assert_eq!(WanServiceKind::parse(not), None, "{not}");
        }
    }

    #[test]
    fn preference_is_upnp_org_then_ip_then_newer() {
        let dsl_ip = WanServiceKind {
            domain: UrnDomain::DslForum,
            ..WanServiceKind::WAN_IP2
        };
        let mut kinds = vec![
            dsl_ip,
            WanServiceKind::WAN_PPP1,
            WanServiceKind::WAN_IP1,
            WanServiceKind::WAN_IP2,
        ];
        kinds.sort_by_key(|k| k.preference());
        assert_eq!(
            kinds,
            [
                WanServiceKind::WAN_IP2,
                WanServiceKind::WAN_IP1,
                WanServiceKind::WAN_PPP1,
                dsl_ip
            ]
        );
    }

    fn answer(status: Option<ConnectionStatus>, ip: Option<[u8; 4]>) -> ConnectionAnswer {
        ConnectionAnswer {
            status,
            external_ip: ip.map(IpAddr::from),
        }
    }

    #[test]
    fn the_connected_one_with_a_public_address_wins() {
        use ConnectionStatus::{Connected, Disconnected, Unconfigured};
        let unconfigured = answer(Some(Unconfigured), Some([0, 0, 0, 0]));
        let private = answer(Some(Connected), Some([10, 0, 0, 2]));
        let public = answer(Some(Connected), Some([6, 0, 0, 2]));
        let down = answer(Some(Disconnected), Some([6, 0, 0, 3]));
        assert_eq!(
            choose_connection(&[unconfigured.clone(), private.clone(), public.clone()]),
            Some(2)
        );
        assert_eq!(choose_connection(&[down.clone(), private.clone()]), Some(1));
        // Equal: the first in order of preference.
        assert_eq!(
            choose_connection(&[public.clone(), public.clone()]),
            Some(0)
        );
        assert_eq!(
            choose_connection(&[down.clone(), unconfigured.clone()]),
            None
        );
        assert_eq!(choose_connection(&[]), None);
        // No GetStatusInfo: an address means connected.
        assert_eq!(
            choose_connection(&[down, answer(None, Some([6, 0, 0, 4]))]),
            Some(1)
        );
        assert!(!answer(None, Some([0, 0, 0, 0])).is_usable());
        assert!(!answer(None, None).is_usable());
        // Connected without an answer to GetExternalIPAddress still counts.
        assert_eq!(
            choose_connection(&[unconfigured, answer(Some(Connected), None)]),
            Some(1)
        );
    }
}
