//! One IPv6 pinhole (or IPv4 PCP mapping) from nothing, timed, for
//! `benches/pinhole_vs_upnpc.sh`, which runs this inside the dual-stack lab's LAN
//! host next to `upnpc -6 -A`.
//!
//! ```sh
//! pinhole_latency upnp6 PORT   # gateway lookup, stable address, SSDP discovery,
//!                              # description, AddPinhole; the pinhole is left
//! pinhole_latency pcp6 PORT    # gateway lookup, stable address, IPv6 PCP server
//!                              # search, MAP; then deleted (untimed)
//! pinhole_latency pcp4 PORT    # gateway lookup, MAP for the IPv4 address; then
//!                              # deleted (untimed)
//! ```
//!
//! Prints `ok ELAPSED_US MAPPING`: the time from the start of the gateway lookup to
//! the router's grant, in this process. The UPnP pinhole is left in place so the
//! process's wall time (the script's other figure) holds exactly what
//! `upnpc -6 -A` does; the script clears the router between rounds.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use natkit_core::addresses::ROUTE_LOOKUP_V6;
use natkit_core::{
    AddressScope, Gateway, MappingRequest, PortMapper, Protocol, default_gateway, stable_ipv6_for,
};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(what), Some(port)) = (
        args.first(),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        eprintln!("usage: pinhole_latency upnp6|pcp6|pcp4 PORT");
        return ExitCode::from(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pinhole_latency: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(what, port)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinhole_latency: {}", natkit_core::error_line(&*e));
            ExitCode::FAILURE
        }
    }
}

/// This host's stable IPv6 address on the gateway's interface, as
/// `natkit map --ipv6` and `PortLease::ipv6` choose it.
fn stable(gw: &Gateway, port: u16) -> Result<SocketAddrV6, BoxError> {
    let toward = gw
        .address_v6
        .filter(|a| AddressScope::of(IpAddr::V6(*a)).is_global())
        .unwrap_or(ROUTE_LOOKUP_V6);
    let choice = stable_ipv6_for(toward, Some(&gw.interface))?;
    Ok(SocketAddrV6::new(choice.address, port, 0, 0))
}

async fn run(what: &str, port: u16) -> Result<String, BoxError> {
    let start = Instant::now();
    let gw = default_gateway()?;
    let lifetime = Duration::from_secs(3600);
    let (mapper, request): (Box<dyn PortMapper>, MappingRequest) = match what {
        "upnp6" => {
            let request = MappingRequest::pinhole(Protocol::Tcp, stable(&gw, port)?);
            let upnp = UpnpMapper::discover(&DiscoveryConfig::default()).await?;
            (Box::new(upnp), request)
        }
        "pcp6" => {
            let request = MappingRequest::pinhole(Protocol::Tcp, stable(&gw, port)?);
            (
                Box::new(PcpMapper::new(gw.address, PcpConfig::default())),
                request,
            )
        }
        "pcp4" => {
            let internal = SocketAddr::from((gw.local_address, port));
            (
                Box::new(PcpMapper::new(gw.address, PcpConfig::default())),
                MappingRequest::new(Protocol::Tcp, internal),
            )
        }
        other => return Err(format!("unknown contender {other}").into()),
    };
    let request = request
        .with_lifetime(lifetime)
        .with_description("pinhole_latency");
    let mapping = mapper.map(&request).await?;
    let took = start.elapsed();
    if what != "upnp6" {
        mapper.unmap(&mapping).await?;
    }
    Ok(format!("ok {} {mapping}", took.as_micros()))
}
