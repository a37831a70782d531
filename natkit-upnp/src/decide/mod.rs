//! Decisions, sans-IO: what to send next and what an answer means, driven by
//! the outcomes the I/O side feeds back, tested with no sockets and, where
//! time matters, on a simulated clock.
//!
//! - [`search`]: which M-SEARCH discovery sends when;
//! - [`hedge`]: which exchanges may be sent again on a fresh connection,
//!   when each copy goes, and which answer is taken;
//! - [`add`]: AddPortMapping's and AddAnyPortMapping's steps (lease and port
//!   fallbacks, read-back, a fault caused by our own hedged copy);
//! - [`lease`]: which lease to ask for after a refusal, and what was granted.

pub(crate) mod add;
pub(crate) mod hedge;
pub mod lease;
pub mod search;
