//! natkit-upnp: port mapping through a UPnP Internet Gateway Device
//! (IGD:1 and IGD:2), on igd-next and tokio.
//!
//! - [`discover`] finds the IGD on the default gateway by SSDP (unicast to
//!   the gateway and multicast; IGD:2, IGD:1 and the WAN service search
//!   targets), refuses LOCATIONs off the gateway ([`LocationPolicy`]),
//!   fetches the description within [`HttpConfig`]'s limits and returns the
//!   first IGD that reports `Connected`; an unconnected one is reported as
//!   [`Error::NotConnected`], never silently used.
//! - [`Igd`] offers the actions: [`Igd::status`], [`Igd::external_ip`],
//!   [`Igd::add_port_mapping`], [`Igd::add_any_port_mapping`],
//!   [`Igd::get_specific_entry`], [`Igd::list_entries`], [`Igd::delete`],
//!   [`Igd::cleanup`].
//! - [`UpnpMapper`] implements natkit-core's `PortMapper`.
//!
//! Every description natkit stores reads `natkit <host> <description>`
//! ([`tag_description`]), so [`Igd::cleanup`] can remove this host's stale
//! mappings and never anyone else's.
//!
//! # What is natkit's and what is igd-next's
//!
//! igd-next's `Gateway` builds and parses AddPortMapping,
//! DeletePortMapping, GetExternalIPAddress and GetGenericPortMappingEntry,
//! with natkit's bounded HTTP provider underneath. natkit does the rest
//! itself, sans-IO where it parses: SSDP ([`ssdp`]), HTTP framing
//! ([`http`]), the description ([`description`]) and SOAP answers
//! ([`soap`]) for GetStatusInfo, GetSpecificPortMappingEntry and
//! AddAnyPortMapping (which igd-next lacks or only offers with a random
//! port).
//!
//! # miniupnpd, the reference IGD
//!
//! What natkit relies on, from miniupnpd's behaviour (to be confirmed
//! against the NAT lab's miniupnpd, see `tests/`):
//! - it announces IGD:2 (`InternetGatewayDevice:2`, `WANIPConnection:2`)
//!   when built with IGD:2 support, and IGD:1 when `force_igd_desc_v1` is
//!   set; natkit prefers WANIPConnection:2, then :1, then WANPPPConnection:1;
//! - with `secure_mode=yes` it refuses mappings whose internal client is
//!   not the host asking (606 not authorised), so natkit maps for the
//!   address the IGD sees ([`Igd::local_ip`]);
//! - AddPortMapping for a port already mapped to another internal client
//!   is 718 ConflictInMappingEntry; for the same client it updates the
//!   entry in place, which is how renewal works;
//! - on IGD:2 a lease of 0, or above 604800 s, becomes 604800 s, so natkit
//!   reads every grant back with GetSpecificPortMappingEntry rather than
//!   trusting what it asked for;
//! - GetGenericPortMappingEntry past the end is 713.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bridge;
mod code;
mod config;
pub mod description;
mod discovery;
mod entry;
mod error;
pub mod http;
mod igd;
pub mod lease;
mod mapper;
mod mapping;
pub mod soap;
pub mod ssdp;
mod status;
mod transport;
pub mod url;
mod xml;

pub use bridge::MAX_SOAP_RESPONSE;
pub use code::UpnpErrorCode;
pub use config::{DiscoveryConfig, HttpConfig, LocationPolicy, LocationRefusal, check_location};
pub use description::{Description, DescriptionError, WanServiceKind};
pub use discovery::discover;
pub use entry::{MAX_DESCRIPTION, PortMappingEntry, parse_tag, tag_description};
pub use error::{Error, Result};
pub use http::HttpError;
pub use igd::Igd;
pub use lease::LeaseOutcome;
pub use mapper::UpnpMapper;
pub use mapping::{CleanupReport, Grant, MAX_LIST_ENTRIES, PortMappingRequest};
pub use soap::SoapError;
pub use ssdp::{SsdpError, SsdpResponse};
pub use status::{ConnectionStatus, StatusInfo};
pub use url::{HttpUrl, UrlError};
pub use xml::{MAX_XML_DEPTH, MAX_XML_ELEMENTS, MAX_XML_TEXT, XmlError};
