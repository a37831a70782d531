//! STUN wire format (RFC 8489, RFC 5389, RFC 5780, and RFC 3489 messages), sans-IO.
//!
//! * [`Message`] is a checked, zero-copy view of a received message: validate once with
//!   [`Message::new_checked`], then read the header, iterate attributes, decode typed
//!   attributes ([`Message::get`]), and check FINGERPRINT and MESSAGE-INTEGRITY. Decoding
//!   never allocates and no accessor can panic.
//! * [`MessageBuilder`] writes a message into a caller's `&mut [u8]`, computing
//!   MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT in place.
//! * [`attr`] holds the attribute registry and typed attributes, each with
//!   [`attr::DecodeAttribute`] and [`attr::EncodeAttribute`].
//!
//! ```
//! use natkit_stun::{Class, Message, MessageBuilder, Method, TransactionId};
//!
//! let tid = TransactionId::random(&mut rand::rng());
//! let mut buf = [0u8; 64];
//! let len = MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, tid)?
//!     .finish_with_fingerprint()?;
//!
//! let msg = Message::new_checked(&buf[..len])?;
//! assert_eq!(msg.class(), Class::Request);
//! assert_eq!(msg.transaction_id(), tid);
//! msg.check_fingerprint()?;
//! # Ok::<(), natkit_stun::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod attr;
mod builder;
mod class;
pub mod classify;
pub mod client;
mod error;
pub mod fingerprint;
mod header;
pub mod integrity;
mod message;
mod method;
pub mod server;
mod transaction_id;

pub use builder::MessageBuilder;
pub use class::Class;
pub use error::Error;
pub use header::{HEADER_LEN, MAGIC_COOKIE, MessageType};
pub use message::{Attributes, Message, RawAttributes};
pub use method::Method;
pub use transaction_id::TransactionId;
