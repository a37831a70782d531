//! [`PcpConfig`] and what detection finds ([`PcpAvailability`]).

use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use natkit_core::GatewayEpoch;

use crate::natpmp::{NATPMP_PORT, NatPmpConfig};
use crate::schedule::{PCP_RAND, RetransmitPlan};

#[cfg(doc)]
use super::PcpMapper;
#[cfg(doc)]
use natkit_core::PortMapper;

/// How a [`PcpMapper`] talks to the server.
#[derive(Debug, Clone, PartialEq)]
pub struct PcpConfig {
    /// The server's UDP port: 5351 on real gateways (shared with NAT-PMP,
    /// so the fallback uses it too); tests point it at a fake server.
    pub server_port: u16,
    /// Retransmission for MAP and ANNOUNCE ([`RetransmitPlan::pcp_steady`]:
    /// RFC 6887 §8.1.1 with MRT 8 s, bounded to 120 s so a call ends).
    pub retransmit: RetransmitPlan,
    /// The plan of [`PcpMapper::detect`] ([`RetransmitPlan::detect`] with
    /// RFC 6887's jitter: four sends in 2 s).
    pub detect: RetransmitPlan,
    /// The plan of deletes, the address query's included
    /// ([`RetransmitPlan::release`] with RFC 6887's jitter: 250 ms, then
    /// every 500 ms, for 4.9 s).
    pub delete: RetransmitPlan,
    /// Whether to use NAT-PMP when the server answers that it speaks only
    /// NAT-PMP (version 0, UNSUPP_VERSION). IPv4 servers only.
    pub fallback_to_natpmp: bool,
    /// The NAT-PMP settings for the fallback (its `server_port` is replaced
    /// by this config's `server_port`).
    pub natpmp: NatPmpConfig,
    /// The local address to send from (the client and internal address);
    /// `None` uses the one routing to the server. A request's own
    /// non-unspecified internal address takes precedence. Used only for
    /// requests in the server's family (and, when IPv6, for pinholes).
    pub local_address: Option<IpAddr>,
    /// The address a pinhole for `::` is made for; `None` chooses this
    /// host's stable global address towards the IPv6 server (see
    /// [`PcpMapper::pinhole_address`]).
    pub ipv6_local_address: Option<Ipv6Addr>,
    /// The PCP server for IPv6 pinholes when this mapper's server is IPv4
    /// (with its port, normally 5351, and for a link-local address the
    /// interface index as scope id). `None` searches for it on first use:
    /// the IPv6 default routers, then the first address of their prefixes
    /// (see `pcp/ipv6.rs` for why both).
    pub ipv6_server: Option<SocketAddrV6>,
    /// The lease of the short MAP that
    /// [`external_address`](PortMapper::external_address) makes (and
    /// deletes at once) to learn the external address; PCP has no opcode
    /// that only asks for it.
    pub address_query_lifetime: Duration,
}

impl Default for PcpConfig {
    fn default() -> Self {
        PcpConfig {
            server_port: NATPMP_PORT,
            retransmit: RetransmitPlan::pcp_steady(),
            detect: RetransmitPlan::detect().with_jitter(PCP_RAND),
            delete: RetransmitPlan::release().with_jitter(PCP_RAND),
            fallback_to_natpmp: true,
            natpmp: NatPmpConfig::default(),
            local_address: None,
            ipv6_local_address: None,
            ipv6_server: None,
            address_query_lifetime: Duration::from_secs(60),
        }
    }
}

/// What [`PcpMapper::detect`] and [`PcpMapper::announce`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcpAvailability {
    /// A PCP (version 2) server answered.
    Pcp {
        /// Its epoch.
        epoch: GatewayEpoch,
        /// Whether the epoch shows it lost its state since the previous
        /// answer to this mapper.
        epoch_reset: bool,
    },
    /// The server speaks only NAT-PMP; with
    /// [`PcpConfig::fallback_to_natpmp`] the mapper now uses NAT-PMP.
    NatPmpOnly {
        /// The NAT-PMP epoch in its answer.
        epoch: Option<GatewayEpoch>,
    },
}
