//! The I/O: sockets, tokio and deadlines. Each module here moves bytes and
//! runs the [`decide`](crate::decide) rules over them, parsing with
//! [`wire`](crate::wire).
//!
//! - [`discovery`]: SSDP search, LOCATION checks and the description fetch;
//! - [`transport`]: HTTP over TCP, every byte counted, under one deadline,
//!   with hedged copies;
//! - [`igd`]: a discovered gateway and its actions; [`mapping`]: the port
//!   mapping actions; [`bridge`]: igd-next's actions over natkit's bounded
//!   HTTP;
//! - [`firewall`]: IPv6 pinholes, sent over IPv6 from the pinhole's address;
//!   [`route6`]: this host's IPv6 default router;
//! - [`mapper`]: natkit-core's `PortMapper` over all of it.

pub(crate) mod bridge;
pub(crate) mod discovery;
pub(crate) mod firewall;
pub(crate) mod igd;
pub(crate) mod mapper;
pub(crate) mod mapping;
pub mod route6;
pub(crate) mod transport;
