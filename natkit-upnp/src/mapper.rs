//! [`UpnpMapper`]: natkit-core's [`PortMapper`] over a UPnP IGD.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use natkit_core::{Mapping, MappingRequest, Mechanism, PortMapper};

use crate::code::UpnpErrorCode;
use crate::config::DiscoveryConfig;
use crate::discovery::discover;
use crate::error::Error;
use crate::igd::Igd;
use crate::mapping::{Grant, PortMappingRequest};

/// Maps ports through a UPnP IGD.
///
/// - `map` with a wanted external port uses `AddPortMapping` for exactly
///   that port, so a port held by another host is a typed
///   [`Error::Conflict`] (718) naming it, not a silent substitution; with
///   no wanted port it uses `AddAnyPortMapping` on IGD:2 (suggesting the
///   internal port) and `AddPortMapping` on the internal port on IGD:1.
/// - `renew` is `AddPortMapping` again for the same entry (routers update
///   their own client's entry in place).
/// - `unmap` is `DeletePortMapping`; an entry already gone counts as done.
/// - UPnP has no epoch: mappings carry `epoch: None`. A lease of 0 from the
///   router (permanent) is returned as [`Duration::ZERO`]: the caller (the
///   `LeaseKeeper`) must delete it.
#[derive(Debug, Clone)]
pub struct UpnpMapper {
    igd: Igd,
}

impl UpnpMapper {
    /// A mapper over an IGD already found.
    pub fn new(igd: Igd) -> Self {
        UpnpMapper { igd }
    }

    /// Discovers the IGD (see [`discover`]) and wraps it.
    pub async fn discover(config: &DiscoveryConfig) -> natkit_core::Result<Self> {
        Ok(UpnpMapper::new(discover(config).await?))
    }

    /// The IGD, for the richer API (listing, cleanup, status).
    pub fn igd(&self) -> &Igd {
        &self.igd
    }

    fn to_request(
        &self,
        request: &MappingRequest,
        internal: SocketAddr,
        external_port: u16,
    ) -> Result<PortMappingRequest, Error> {
        let SocketAddr::V4(internal) = internal else {
            return Err(Error::InvalidRequest {
                reason: "UPnP IGD port mapping is IPv4 only",
            });
        };
        Ok(PortMappingRequest {
            protocol: request.protocol,
            external_port,
            internal,
            lease_secs: u32::try_from(request.lifetime.as_secs()).unwrap_or(u32::MAX),
            description: request.description.clone(),
        })
    }

    fn to_mapping(&self, external_ip: IpAddr, grant: &Grant) -> Mapping {
        Mapping::new(
            Mechanism::Upnp,
            grant.protocol,
            SocketAddr::new(external_ip, grant.external_port),
            SocketAddr::V4(grant.internal),
            Duration::from_secs(u64::from(grant.lease_secs)),
            Instant::now(),
        )
    }
}

#[async_trait]
impl PortMapper for UpnpMapper {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Upnp
    }

    async fn external_address(&self) -> natkit_core::Result<IpAddr> {
        Ok(self.igd.external_ip().await?)
    }

    async fn map(&self, request: &MappingRequest) -> natkit_core::Result<Mapping> {
        let add = async {
            match request.external_port {
                Some(port) => {
                    let req = self.to_request(request, request.internal, port)?;
                    self.igd.add_port_mapping(&req).await
                }
                None => {
                    let req =
                        self.to_request(request, request.internal, request.internal.port())?;
                    if self.igd.service().is_igd2() {
                        self.igd.add_any_port_mapping(&req).await
                    } else {
                        self.igd.add_port_mapping(&req).await
                    }
                }
            }
        };
        // The external address is asked alongside the mapping (one round
        // trip less before the mapping is usable). A grant whose address
        // could not be learnt is deleted again: a mapping made and not
        // reported would be left behind.
        let (external_ip, grant) = tokio::join!(self.igd.external_ip(), add);
        let grant = grant?;
        match external_ip {
            Ok(ip) => Ok(self.to_mapping(ip, &grant)),
            Err(e) => {
                if let Err(d) = self.igd.delete(grant.protocol, grant.external_port).await {
                    tracing::warn!(error = %d, port = grant.external_port,
                        "deleting a grant whose external address is unknown failed");
                }
                Err(e.into())
            }
        }
    }

    async fn renew(
        &self,
        request: &MappingRequest,
        current: &Mapping,
    ) -> natkit_core::Result<Mapping> {
        let external_ip = self.igd.external_ip().await?;
        let req = self.to_request(request, current.internal, current.external.port())?;
        let grant = self.igd.add_port_mapping(&req).await?;
        Ok(self.to_mapping(external_ip, &grant))
    }

    async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
        match self
            .igd
            .delete(mapping.protocol, mapping.external.port())
            .await
        {
            Err(e) if e.upnp_code() == Some(UpnpErrorCode::NoSuchEntryInArray) => Ok(()),
            other => Ok(other?),
        }
    }
}
