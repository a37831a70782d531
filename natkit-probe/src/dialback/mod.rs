//! The outside-in dial-back protocol: wire format (sans-IO).
//!
//! A host behind a NAT cannot tell from inside whether its forwarded ports
//! are reachable from the internet. It asks a dial-back server outside:
//!
//! 1. client → server, on a control channel: [`Message::Request`] with a
//!    fresh [`Nonce`] and up to [`MAX_PORTS`] ports;
//! 2. server → the client's public address, once per port: a TCP connection
//!    or UDP datagram carrying [`Message::Probe`] with the same nonce;
//! 3. whatever answers on that port: [`Message::ProbeAck`] echoing the nonce
//!    — only the client's own listener knows it, so an answer without it
//!    means *someone else* answers on that port (the DESIGN's "forwarded to
//!    another host on the LAN");
//! 4. server → client: [`Message::Report`] with the address the server saw
//!    and one [`DialOutcome`] per port; or [`Message::Refusal`].
//!
//! Every message starts with an 8-byte header — magic `NKDB`, version,
//! kind, total length — followed by the 16-byte nonce. Integers are big
//! endian. Parsing checks every length, count, reserved byte and code and
//! never allocates; [`Message::emit`] writes into a caller's buffer.

mod error;
mod list;
mod message;

pub use error::WireError;
pub use list::List;
pub use message::{
    DialOutcome, DialPort, DialResult, HEADER_LEN, MAGIC, MAX_MESSAGE_LEN, MAX_PORTS, Message,
    Nonce, RefusalCode, VERSION,
};
