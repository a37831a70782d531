#![doc = include_str!("../README.md")]
//!
//! # Where to start
//!
//! - The codec: [`Message`] (validate once with [`Message::new_checked`], then read
//!   the header, iterate attributes, decode typed ones with [`Message::get`], check
//!   FINGERPRINT and MESSAGE-INTEGRITY), [`MessageBuilder`], and [`attr`] with its
//!   [`attr::DecodeAttribute`] and [`attr::EncodeAttribute`].
//! - The client: [`client::BindingTransaction`] (sans-IO) and its drivers in [`client`].
//! - NAT behaviour: [`classify::TestPlan`] (sans-IO) and [`classify`]'s runner.
//! - The server: [`server::ServerCore`] (sans-IO) and its driver in [`server`].
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod classify;
pub mod client;
mod defaults;
mod error;
pub mod server;
mod wire;

pub use defaults::{DEFAULT_SERVERS, PublicServer, default_servers};
pub use error::Error;
pub use wire::builder::MessageBuilder;
pub use wire::class::Class;
pub use wire::header::{HEADER_LEN, MAGIC_COOKIE, MessageType};
pub use wire::message::{Attributes, Message, RawAttributes};
pub use wire::method::Method;
pub use wire::transaction_id::TransactionId;
pub use wire::{attr, fingerprint, integrity};
