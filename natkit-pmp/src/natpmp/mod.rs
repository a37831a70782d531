//! NAT-PMP (RFC 6886): wire format, answer matching and the mapper.

mod exchange;
mod mapper;
mod result;
mod wire;

pub use exchange::NatPmpExchange;
pub use mapper::{NatPmpConfig, NatPmpMapper, PublicAddress};
pub use result::NatPmpResultCode;
pub use wire::{
    HEADER_LEN, NATPMP_PORT, NATPMP_VERSION, NatPmpAnswer, NatPmpOpcode, NatPmpRequest,
    NatPmpResponse,
};
