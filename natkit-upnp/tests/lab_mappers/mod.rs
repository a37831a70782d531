//! What the lab tests over all three real mappers share: making the mapper a
//! mechanism name asks for, and printing a mapping as the helper protocol's
//! line.
// Each test binary uses what it needs of this module.
#![allow(dead_code, unreachable_pub)]

use std::net::Ipv4Addr;
use std::sync::Arc;

use natkit_core::{Mapping, PortMapper, Protocol};
use natkit_lab::{MappedLine, Proto};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};

/// The mapper for `mech` (`upnp`: found by real discovery with the default
/// configuration, gateway lookup and unicast plus multicast SSDP; `natpmp`,
/// `pcp`: talking to `gateway`, PCP without falling back to NAT-PMP).
pub async fn mapper(mech: &str, gateway: Ipv4Addr) -> Arc<dyn PortMapper> {
    match mech {
        "upnp" => Arc::new(
            UpnpMapper::discover(&DiscoveryConfig::default())
                .await
                .expect("discover"),
        ),
        "natpmp" => Arc::new(NatPmpMapper::new(gateway, NatPmpConfig::default())),
        "pcp" => Arc::new(PcpMapper::new(
            gateway,
            PcpConfig {
                fallback_to_natpmp: false,
                ..PcpConfig::default()
            },
        )),
        other => panic!("unknown mechanism {other}"),
    }
}

/// `m` as the helper reports it.
pub fn line(m: &Mapping) -> MappedLine {
    MappedLine {
        proto: match m.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
        },
        external: m.external,
        internal: m.internal,
        lifetime_secs: m.lifetime.as_secs(),
    }
}
