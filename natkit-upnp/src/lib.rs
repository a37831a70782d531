#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - [`discover`] finds the IGD on the default gateway by SSDP (unicast to
//!   the gateway and multicast, in a few rounds that back off: at most 6
//!   datagrams in any second, see [`search`]), refuses LOCATIONs off the
//!   gateway ([`LocationPolicy`]), fetches the description within
//!   [`HttpConfig`]'s limits and returns the first IGD that reports
//!   `Connected`; an unconnected one is reported as
//!   [`Error::NotConnected`], never silently used. With several WAN
//!   connections it maps through the connected one with a public address
//!   and lists the others ([`Igd::other_connections`]).
//! - [`Igd`] offers the actions: [`Igd::status`], [`Igd::external_ip`],
//!   [`Igd::add_port_mapping`], [`Igd::add_any_port_mapping`],
//!   [`Igd::get_specific_entry`], [`Igd::list_entries`], [`Igd::delete`],
//!   [`Igd::cleanup`].
//! - [`UpnpMapper`] implements natkit-core's `PortMapper`; for an IPv6
//!   internal address it opens a pinhole instead of a port mapping.
//! - [`Igd::firewall`] gives IGD:2's IPv6 firewall service
//!   (`WANIPv6FirewallControl`, [`pinhole`]): [`FirewallControl::status`],
//!   [`FirewallControl::add_pinhole`], `update_pinhole`, `delete_pinhole`,
//!   `outbound_timeout`, `check_pinhole_working`, `pinhole_packets`, sent
//!   over IPv6 from the pinhole's own address (natkit-core's `addresses`
//!   finds the stable one, [`route6`] the router).
//!
//! Every HTTP exchange runs under its [`HttpConfig`] time limit (3 s for
//! the description and for a SOAP action). Within it, a lossy link is met
//! twice: a fresh TCP connect is started every 500 ms until one completes,
//! and the description and the actions that are safe to repeat are
//! *hedged*: with no complete answer after [`HttpConfig::hedge_after`]
//! (500 ms, more for a gateway that is slow to answer), the same request
//! goes again on a fresh connection, up to six copies; the first usable
//! answer wins. AddAnyPortMapping is sent once. A 718 or 714 that a
//! duplicate of our own AddPortMapping or DeletePortMapping caused is not
//! reported as a failure ([`Igd::add_port_mapping`], [`Igd::delete`]).
//!
//! Every description natkit stores reads `natkit <host> <description>`
//! ([`tag_description`]), so [`Igd::cleanup`] can remove this host's stale
//! mappings and never anyone else's.
//!
//! # Router dialects
//!
//! Tried on the real routers' descriptions in the repository's sibling
//! `../shared/routers` (`tests/lab_routers.rs`, all 12 map, forward and
//! clean up) and on the in-repo fake IGD (`tests/dialects.rs`):
//! - any version of WANIPConnection and WANPPPConnection (an Orange
//!   Livebox offers only `WANPPPConnection:2`), in the UPnP Forum's or the
//!   Broadband Forum's `urn:dslforum-org` namespace (a Huawei HG531), in any
//!   device of the tree; every request is addressed to the service type as
//!   the description writes it, since devices refuse a later version or
//!   another namespace ([`WanServiceKind`]);
//! - `URLBase` is used only when it parses and names LOCATION's host (it is
//!   deprecated, and routers send unfilled templates or stale addresses);
//!   a control URL may name another port of that host (a D-Link DIR-655
//!   uses 4444 and 8832), never another host;
//! - descriptions with no XML declaration or namespace, chunked HTTP
//!   (FRITZ!Box), SSDP headers without a space after the colon, an empty
//!   `SERVER`;
//! - a description without a usable WAN service is
//!   [`Error::NoWanService`], listing the services it did offer.
//!
//! Quirks from other projects' trackers, each handled:
//! - the protocol goes in upper case (`TCP`, `UDP`; miniupnpd answers 402
//!   to anything else);
//! - 725 OnlyPermanentLeasesSupported and 402 for long leases step down
//!   ([`lease`]); a permanent AddPortMapping whose answer is lost is read
//!   back and deleted if it is ours, so no lease-0 mapping is left that
//!   nobody knows of;
//! - a finite lease granted and gone on read-back (routers that keep only
//!   lease 0) is asked again as permanent;
//! - a router that purges its table, or keeps an entry listed whose
//!   forwarding rule is gone: renewal is always AddPortMapping (never a
//!   read), which makes the entry and its rule again. A read-back is no
//!   proof that a port forwards; only traffic from outside is
//!   (natkit-probe's dial-back);
//! - a failover pair whose standby answers SSDP from its own address: the
//!   answer's source does not matter, its LOCATION does, and it must be the
//!   gateway ([`LocationPolicy::GatewayOnly`]): HTTP goes only where the
//!   default route goes, whoever pointed there. A pair whose members name
//!   their own addresses in LOCATION is refused with
//!   [`Error::LocationRefused`]; [`LocationPolicy::Lan`] accepts them, and
//!   any other host on the LAN.
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
//! Observed against miniupnpd 2.3.1 (Debian 12's `miniupnpd-nftables`) in
//! the NAT lab (`tests/lab.rs`):
//! - it announces IGD:2 (`InternetGatewayDevice:2`, `WANIPConnection:2`,
//!   control URL `/ctl/IPConn`, description on port 2869) with `SERVER:
//!   <OS>/<kernel> UPnP/1.1 MiniUPnPd/2.3.1`; it answers a unicast search
//!   for `InternetGatewayDevice:1` and `WANIPConnection:1` too (UDA 1.1:
//!   an earlier version of its types), even for `WANPPPConnection:1`,
//!   which it does not offer;
//! - it answers a unicast M-SEARCH to the gateway in 50–100 ms, with or
//!   without `MX`; discovery completes in about 250–300 ms;
//! - AddPortMapping for a port mapped to another internal client is 718
//!   ConflictInMappingEntry, and GetSpecificPortMappingEntry then names that
//!   client and its description; AddPortMapping again for the same client
//!   updates the entry in place, which is how renewal works;
//! - it never refuses a lease: 0 and anything above 604800 s become
//!   604800 s silently (reported as [`LeaseOutcome::Shortened`]), so natkit
//!   reads every grant back rather than trusting what it asked for;
//!   GetSpecificPortMappingEntry reports the *remaining* lease;
//! - GetGenericPortMappingEntry past the end is 713; DeletePortMapping of
//!   an entry that is gone is 714.
//!
//! Its IPv6 firewall (`WANIPv6FirewallControl:1`, the dual-stack lab,
//! `tests/lab_pinhole.rs`; more in [`pinhole`]):
//! - the service sits beside `WANIPConnection:2` at `/ctl/IP6FCtl`; its HTTP
//!   socket is dual-stack on the IPv4 port, so the router's link-local
//!   address from the IPv6 default route answers;
//! - only the pinhole's own address may add or delete it (606 from any
//!   other, and for ports below 1024), so natkit binds the connection to it;
//! - AddPinhole for an existing flow returns its ID, and gives the pinhole a
//!   far expiry (a 3 s lease added twice outlived 6 s): renewal is
//!   AddPinhole, then UpdatePinhole for the lease; after a restart IDs start
//!   at 1 again, and an ID it does not hold is 402, not 704;
//! - its pinhole rules have no counter: CheckPinholeWorking stays 709 and
//!   GetPinholePackets 0 after traffic; GetOutboundPinholeTimeout is 501.
//!
//! From miniupnpd's documentation, not exercised by the lab (which runs
//! with `secure_mode=no`): with `secure_mode=yes` a client may only map to
//! its own address, so natkit maps for the address the IGD sees
//! ([`Igd::local_ip`]); with a reserved WAN address (double NAT) 2.3.1
//! reports an empty external address and fails mappings with 501.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod decide;
mod error;
mod io;
mod wire;

pub use decide::{lease, search};
pub use io::route6;
pub use wire::{description, http, pinhole, soap, ssdp, url};

pub use config::{DiscoveryConfig, HttpConfig, LocationPolicy, LocationRefusal, check_location};
pub use decide::lease::LeaseOutcome;
pub use error::{Error, MAX_OFFERED, Result};
pub use io::bridge::MAX_SOAP_RESPONSE;
pub use io::discovery::discover;
pub use io::firewall::FirewallControl;
pub use io::igd::{Igd, OtherConnection};
pub use io::mapper::UpnpMapper;
pub use io::mapping::{CleanupReport, Grant, MAX_LIST_ENTRIES, PortMappingRequest};
pub use wire::code::UpnpErrorCode;
pub use wire::description::{Description, DescriptionError, ServiceEntry};
pub use wire::entry::{MAX_DESCRIPTION, PortMappingEntry, parse_tag, tag_description};
pub use wire::http::HttpError;
pub use wire::pinhole::{FirewallErrorCode, FirewallStatus, PinholeId, PinholeRequest};
pub use wire::soap::SoapError;
pub use wire::ssdp::{SsdpError, SsdpResponse};
pub use wire::status::{ConnectionStatus, StatusInfo};
pub use wire::url::{HttpUrl, UrlError};
pub use wire::wan::{
    ConnectionAnswer, UrnDomain, WanConnection, WanServiceKind, choose_connection,
};
pub use wire::xml::{MAX_XML_DEPTH, MAX_XML_ELEMENTS, MAX_XML_TEXT, XmlError};
