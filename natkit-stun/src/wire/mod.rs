//! The STUN wire format, apart from everything that sends or receives: the message
//! view and its header, the builder, the attributes, MESSAGE-INTEGRITY and
//! FINGERPRINT. Nothing here allocates while decoding or touches a socket.

pub mod attr;
pub(crate) mod builder;
pub(crate) mod class;
pub mod fingerprint;
pub(crate) mod header;
pub mod integrity;
pub(crate) mod message;
pub(crate) mod method;
pub(crate) mod transaction_id;
