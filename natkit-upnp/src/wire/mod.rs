//! The wire: sans-IO parsers and builders of what a UPnP device sends and
//! is sent. Everything here reads untrusted bytes or text under hard limits
//! and answers with a typed error, never a panic (the fuzz targets feed SSDP
//! answers, HTTP heads and chunks, descriptions and SOAP answers arbitrary
//! bytes); nothing here does I/O or reads a clock.
//!
//! - [`ssdp`]: M-SEARCH out, the unicast answers in;
//! - [`http`]: HTTP/1.1 response framing and chunked decoding;
//! - [`xml`]: the bounded XML walk the next two are built on;
//! - [`description`]: the device description, its WAN services and control
//!   URLs; [`wan`]: the WAN service types and which connection to map through;
//! - [`soap`]: action envelopes out, arguments or a UPnP fault in; [`code`]:
//!   the fault codes; [`status`]: GetStatusInfo's state; [`entry`]: a port
//!   mapping entry and natkit's tag in its description;
//! - [`pinhole`]: `WANIPv6FirewallControl`'s arguments, answers and faults;
//! - [`url`]: the `http://IPv4[:port]/path` URLs a device may name.

pub mod description;
pub mod http;
pub mod pinhole;
pub mod soap;
pub mod ssdp;
pub mod url;

pub(crate) mod code;
pub(crate) mod entry;
pub(crate) mod status;
pub(crate) mod wan;
pub(crate) mod xml;
