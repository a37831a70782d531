//! natkit-upnp's error type.

use std::fmt;

use natkit_core::{FailureKind, Ipv6AddressError, Mechanism, Protocol};

use crate::config::LocationRefusal;
use crate::wire::code::UpnpErrorCode;
use crate::wire::description::{DescriptionError, ServiceEntry};
use crate::wire::entry::PortMappingEntry;
use crate::wire::http::HttpError;
use crate::wire::pinhole::FirewallErrorCode;
use crate::wire::soap::SoapError;
use crate::wire::status::ConnectionStatus;
use crate::wire::url::UrlError;
use crate::wire::wan::WanServiceKind;

/// Everything that can go wrong talking to a UPnP IGD.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No default gateway, so nowhere to search.
    #[error("no default gateway: {detail}")]
    NoDefaultGateway {
        /// What the lookup said.
        detail: String,
    },
    /// The UDP socket for SSDP could not be opened or used.
    #[error("SSDP socket: {op} failed: {kind}")]
    Socket {
        /// What was being done (`bind`, `send`).
        op: &'static str,
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// No IGD answered the search in time.
    #[error("no UPnP IGD answered within {waited_ms} ms (searched {searched})")]
    NoResponse {
        /// How long natkit waited.
        waited_ms: u64,
        /// Where the search went, e.g. `192.168.1.1:1900 and 239.255.255.250:1900`.
        searched: String,
    },
    /// An IGD answered with a LOCATION natkit will not fetch from.
    #[error(
        "refused IGD LOCATION {location}: {reason} (gateway {gateway}); see DiscoveryConfig::location_policy"
    )]
    LocationRefused {
        /// The LOCATION as sent.
        location: String,
        /// Why.
        reason: LocationRefusal,
        /// The default gateway searched.
        gateway: std::net::Ipv4Addr,
    },
    /// A LOCATION or control URL that is not `http://IPv4[:port]/…`.
    #[error("bad URL {url:?}: {source}")]
    BadUrl {
        /// The URL (at most 200 characters of it).
        url: String,
        /// What is wrong with it.
        source: UrlError,
    },
    /// The description names a control URL on another host than its own.
    #[error("IGD at {location} names a control URL on another host: {control}")]
    ControlUrlElsewhere {
        /// The description URL.
        location: String,
        /// The control URL.
        control: String,
    },
    /// An HTTP exchange with the IGD failed.
    #[error("HTTP to {url}: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// What went wrong.
        source: HttpError,
    },
    /// The device description was not usable.
    #[error("IGD at {location}: {source}")]
    Description {
        /// The description URL.
        location: String,
        /// What is wrong with it.
        source: DescriptionError,
    },
    /// The description has no WAN connection service natkit can drive (any
    /// version of WANIPConnection or WANPPPConnection, in the UPnP Forum's
    /// or the Broadband Forum's namespace, with a control URL).
    #[error(
        "device {device:?} at {location} has no WANIPConnection or WANPPPConnection service{}",
        Offered(offered)
    )]
    NoWanService {
        /// The description URL.
        location: String,
        /// The device's name.
        device: String,
        /// What the description did offer: its services (at most
        /// [`MAX_OFFERED`] of them), as written.
        offered: Vec<ServiceEntry>,
    },
    /// The IGD's WAN side is not connected; mappings would not reach the internet.
    #[error("IGD {device:?} at {location} is not connected (status {status})")]
    NotConnected {
        /// The description URL.
        location: String,
        /// The device's name.
        device: String,
        /// The status it reported.
        status: ConnectionStatus,
    },
    /// A SOAP answer was not usable.
    #[error("{action}: {source}")]
    Soap {
        /// The action called.
        action: &'static str,
        /// What is wrong with the answer.
        source: SoapError,
    },
    /// A SOAP answer lacked an argument or had a value out of range.
    #[error("{action}: bad or missing {argument} in answer: {value:?}")]
    BadArgument {
        /// The action called.
        action: &'static str,
        /// The argument.
        argument: &'static str,
        /// The value received (at most 64 characters), empty when missing.
        value: String,
    },
    /// The IGD answered with a UPnP error.
    #[error("{action}: UPnP error {code}: {description}")]
    Upnp {
        /// The action called.
        action: &'static str,
        /// The error code.
        code: UpnpErrorCode,
        /// The router's description of it.
        description: String,
    },
    /// 718 ConflictInMappingEntry: the port is already mapped to another
    /// host, which is named when the router says which.
    #[error("{external_port}/{protocol} is already mapped{}", Holder(holder.as_deref()))]
    Conflict {
        /// The protocol asked for.
        protocol: Protocol,
        /// The external port asked for.
        external_port: u16,
        /// The entry holding the port, read back from the router.
        holder: Option<Box<PortMappingEntry>>,
    },
    /// The IGD's service does not have this action (e.g.
    /// `AddAnyPortMapping` on IGD:1).
    #[error("{action} is not available on {service}")]
    NotSupported {
        /// The action.
        action: &'static str,
        /// The service in use.
        service: WanServiceKind,
    },
    /// The caller asked for something UPnP cannot express.
    #[error("invalid request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// The IPv6 firewall service answered with a UPnP error.
    #[error("{action}: UPnP error {code}: {description}")]
    Firewall {
        /// The action called.
        action: &'static str,
        /// The error code, in the firewall service's meaning.
        code: FirewallErrorCode,
        /// The router's description of it.
        description: String,
    },
    /// The router holds no pinhole with this ID (expired, deleted, or lost
    /// in a restart): 704 NoSuchEntry, or miniupnpd 2.3.1's 402 for an
    /// unknown ID (see [`no_such_pinhole`](crate::wire::pinhole::no_such_pinhole)).
    #[error("{action}: the router has no {id} (UPnP error {code}: {description})")]
    NoSuchPinhole {
        /// The action called.
        action: &'static str,
        /// The ID named.
        id: crate::wire::pinhole::PinholeId,
        /// The router's code for it, as sent.
        code: FirewallErrorCode,
        /// The router's description of it.
        description: String,
    },
    /// The IGD has no `WANIPv6FirewallControl` service: it cannot open
    /// IPv6 pinholes.
    #[error("device {device:?} at {location} has no WANIPv6FirewallControl service")]
    NoFirewallService {
        /// The description URL.
        location: String,
        /// The device's name.
        device: String,
    },
    /// No way to reach the router over IPv6 from the pinhole's address: no
    /// IPv6 default route, no such local address, or no usable global one.
    #[error("IPv6 to the router: {detail}")]
    NoIpv6Route {
        /// What is missing.
        detail: String,
    },
    /// This host's IPv6 addresses could not be listed, or it has no stable
    /// global one for a pinhole (natkit-core's `addresses`).
    #[error("this host's IPv6 address for a pinhole: {source}")]
    Ipv6Address {
        /// What natkit-core found.
        source: Ipv6AddressError,
    },
    /// The router's mapping table never ended.
    #[error("the port mapping table has more than {limit} entries")]
    TableTooLong {
        /// The most entries natkit reads.
        limit: u32,
    },
}

/// The most services [`Error::NoWanService`] lists.
pub const MAX_OFFERED: usize = 16;

struct Offered<'a>(&'a [ServiceEntry]);

impl fmt::Display for Offered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(" (it lists no services at all)");
        }
        f.write_str("; it offers ")?;
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let t = if s.service_type.is_empty() {
                "a service without a type"
            } else {
                &s.service_type
            };
            f.write_str(t)?;
            if s.control_url.is_empty() {
                f.write_str(" (no control URL)")?;
            }
        }
        Ok(())
    }
}

struct Holder<'a>(Option<&'a PortMappingEntry>);

impl fmt::Display for Holder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(e) => write!(
                f,
                " to {}:{} ({:?})",
                e.internal_client, e.internal_port, e.description
            ),
            None => f.write_str(" (the router did not say to whom)"),
        }
    }
}

impl Error {
    /// The protocol-independent kind of this failure.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Error::NoDefaultGateway { .. } | Error::Socket { .. } => FailureKind::Network,
            Error::NoResponse { .. } | Error::LocationRefused { .. } => FailureKind::Unavailable,
            Error::BadUrl { .. }
            | Error::ControlUrlElsewhere { .. }
            | Error::Description { .. }
            | Error::Soap { .. }
            | Error::BadArgument { .. }
            | Error::TableTooLong { .. } => FailureKind::Protocol,
            Error::Http { source, .. } => match source {
                HttpError::Timeout { .. } => FailureKind::Timeout,
                HttpError::Connect { .. } | HttpError::Io { .. } => FailureKind::Network,
                _ => FailureKind::Protocol,
            },
            Error::NoWanService { .. } => FailureKind::Unsupported,
            Error::NotConnected { .. } => FailureKind::NotConnected,
            Error::Upnp { code, .. } => code.failure_kind(),
            Error::Conflict { .. } => FailureKind::Conflict,
            Error::NotSupported { .. } | Error::NoFirewallService { .. } => {
                FailureKind::Unsupported
            }
            Error::Firewall { code, .. } => code.failure_kind(),
            Error::NoSuchPinhole { .. } => FailureKind::NoSuchMapping,
            Error::NoIpv6Route { .. } => FailureKind::Network,
            Error::Ipv6Address { source } => match source {
                Ipv6AddressError::NoStableAddress { .. } | Ipv6AddressError::KindUnknown { .. } => {
                    FailureKind::Unsupported
                }
                _ => FailureKind::Network,
            },
            Error::InvalidRequest { .. } => FailureKind::Refused,
        }
    }

    /// Whether the same request may succeed later without any change.
    pub fn is_retryable(&self) -> bool {
        self.failure_kind().is_retryable()
    }

    /// The firewall service's error code, for its faults.
    pub fn firewall_code(&self) -> Option<FirewallErrorCode> {
        match self {
            Error::Firewall { code, .. } | Error::NoSuchPinhole { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The UPnP error code, for errors that carry one.
    pub fn upnp_code(&self) -> Option<UpnpErrorCode> {
        match self {
            Error::Upnp { code, .. } => Some(*code),
            Error::Conflict { .. } => Some(UpnpErrorCode::ConflictInMappingEntry),
            _ => None,
        }
    }

    pub(crate) fn http(url: &impl fmt::Display, source: HttpError) -> Error {
        Error::Http {
            url: url.to_string(),
            source,
        }
    }

    /// [`Error::BadArgument`] with at most 64 characters of the value.
    pub(crate) fn bad_argument(action: &'static str, argument: &'static str, raw: &str) -> Error {
        Error::BadArgument {
            action,
            argument,
            value: raw.chars().take(64).collect(),
        }
    }

    pub(crate) fn bad_url(url: &str, source: UrlError) -> Error {
        Error::BadUrl {
            url: url.chars().take(200).collect(),
            source,
        }
    }
}

impl natkit_core::IntoCore for Error {
    fn failure_kind(&self) -> FailureKind {
        Error::failure_kind(self)
    }
}

impl From<Error> for natkit_core::Error {
    fn from(e: Error) -> Self {
        natkit_core::IntoCore::into_core(e, Mechanism::Upnp)
    }
}

/// natkit-upnp's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_the_holder() {
        let e = Error::Conflict {
            protocol: Protocol::Tcp,
            external_port: 443,
            holder: Some(Box::new(PortMappingEntry {
                remote_host: String::new(),
                external_port: 443,
                protocol: Protocol::Tcp,
                internal_client: "192.168.77.3".into(),
                internal_port: 8443,
                enabled: true,
                description: "upnpc".into(),
                lease_secs: 0,
            })),
        };
        assert_eq!(
            e.to_string(),
            "443/tcp is already mapped to 192.168.77.3:8443 (\"upnpc\")"
        );
        assert_eq!(e.upnp_code(), Some(UpnpErrorCode::ConflictInMappingEntry));
        let core: natkit_core::Error = e.into();
        assert_eq!(core.failure_kind(), Some(FailureKind::Conflict));
        let natkit_core::Error::Mechanism { source, .. } = &core else {
            panic!("not a mechanism error")
        };
        assert!(matches!(
            source.downcast_ref::<Error>(),
            Some(Error::Conflict {
                external_port: 443,
                ..
            })
        ));
    }

    #[test]
    fn kinds_and_retry() {
        let timeout = Error::http(&"http://10.0.0.1/", HttpError::Timeout { ms: 3000 });
        assert_eq!(timeout.failure_kind(), FailureKind::Timeout);
        assert!(timeout.is_retryable());
        let full = Error::Upnp {
            action: "AddPortMapping",
            code: UpnpErrorCode::NoPortMapsAvailable,
            description: "NoPortMapsAvailable".into(),
        };
        assert!(full.is_retryable());
        let nc = Error::NotConnected {
            location: "http://192.168.1.1:5000/rootDesc.xml".into(),
            device: "Box".into(),
            status: ConnectionStatus::Disconnected,
        };
        assert_eq!(nc.failure_kind(), FailureKind::NotConnected);
        assert_eq!(
            nc.to_string(),
            "IGD \"Box\" at http://192.168.1.1:5000/rootDesc.xml is not connected (status Disconnected)"
        );
    }
}
