//! The STUN server: a sans-IO [`ServerCore`] and a [`Server`] (a thread per socket with
//! batched I/O, driven from async code) on one socket
//! (plain Binding, the SNATMAP role) or four (RFC 5780 / RFC 3489 NAT behaviour
//! discovery: two IPs × two ports).

#[cfg(feature = "tokio")]
mod batch;
mod config;
mod core;
mod counters;
#[cfg(feature = "tokio")]
mod driver;
mod rate_limit;
mod sockets;

pub use self::core::{Reply, ServerCore};
pub use config::{RateLimit, ServerConfig};
pub use counters::ServerCounters;
#[cfg(feature = "tokio")]
pub use driver::{Server, ServerStopHandle};
pub use rate_limit::RateLimiter;
pub use sockets::{OTHER, PRIMARY, SocketIndex, SocketMap};
