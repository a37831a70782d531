//! PCP (RFC 6887): wire format, answer matching and the mapper.

mod exchange;
mod ipv6;
mod mapper;
mod result;
mod wire;

pub use exchange::{PcpAnswer, PcpExchange, is_natpmp_unsupported_version};
pub use ipv6::{DefaultRouter6, default_routers, parse_ipv6_route, server_candidates};
pub use mapper::{PcpAvailability, PcpConfig, PcpMapper};
pub use result::PcpResultCode;
pub use wire::{
    HEADER_LEN, IPPROTO_TCP, IPPROTO_UDP, MAP_DATA_LEN, MAX_MESSAGE_LEN, MapRequest, MapResponse,
    Nonce, PCP_VERSION, PcpOpcode, PcpOption, PcpRequest, PcpRequestBody, PcpResponse,
    UNSPECIFIED_V4, ip_from_wire, ip_to_wire, protocol_number,
};
