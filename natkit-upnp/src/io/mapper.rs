//! [`UpnpMapper`]: natkit-core's [`PortMapper`] over a UPnP IGD.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use natkit_core::{Mapping, MappingRequest, Mechanism, PortMapper};

use crate::config::DiscoveryConfig;
use crate::error::Error;
use crate::io::discovery::discover;
use crate::io::firewall::FirewallControl;
use crate::io::igd::Igd;
use crate::io::mapping::{Grant, PortMappingRequest};
use crate::wire::code::UpnpErrorCode;
use crate::wire::pinhole::{PinholeId, PinholeRequest, already_deleted, pinhole_lease};

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
///
/// A request whose internal address is IPv6 asks for a *pinhole* through
/// the router's IPv6 firewall (`WANIPv6FirewallControl`, see
/// [`Igd::firewall`]): nothing is translated, so the mapping's external
/// address and port are the internal ones, and its token carries the
/// pinhole's ID ([`PinholeId::to_token`]).
/// - `map` is `AddPinhole` for the address and port; `::` means this host's
///   stable global address, never a temporary one
///   ([`natkit_core::stable_ipv6_for`]); a wanted external
///   port other than the internal one is an invalid request. The lease is
///   the request's lifetime within 1 to 86400 s ([`pinhole_lease`]).
/// - `renew` is `AddPinhole` again, which extends the pinhole of the same
///   flow and returns its ID, or re-creates one the router forgot (after a
///   restart), then `UpdatePinhole` for that ID to set the lease exactly.
///   Renewing by the ID held is not safe: a restarted router counts IDs
///   from 1 again, and the old one may name another of this host's
///   pinholes.
/// - `unmap` is `DeletePinhole`; one already gone counts as done
///   ([`already_deleted`]). Without
///   a token (a mapping from elsewhere), the pinhole is found by adding it
///   again: the router returns the existing one's ID.
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
        // An IPv4-mapped address (`::ffff:a.b.c.d`) is the IPv4 address.
        let internal = match internal {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddrV4::new(v4, a.port()),
                None => {
                    return Err(Error::InvalidRequest {
                        reason: "UPnP IGD port mapping is IPv4 only",
                    });
                }
            },
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
            now(),
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
        if let (true, SocketAddr::V6(internal)) = (request.is_pinhole(), request.internal) {
            return Ok(self.map_pinhole(request, internal).await?);
        }
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
        if let (true, SocketAddr::V6(internal)) = (current.is_pinhole(), current.internal) {
            return Ok(self.renew_pinhole(request, current, internal).await?);
        }
        let external_ip = self.igd.external_ip().await?;
        let req = self.to_request(request, current.internal, current.external.port())?;
        let grant = self.igd.add_port_mapping(&req).await?;
        Ok(self.to_mapping(external_ip, &grant))
    }

    async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
        if let (true, SocketAddr::V6(internal)) = (mapping.is_pinhole(), mapping.internal) {
            return Ok(self.unmap_pinhole(mapping, internal).await?);
        }
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

impl UpnpMapper {
    /// The pinhole's internal address: the request's, with `::` replaced
    /// by this host's stable global address.
    fn pinhole_internal(
        &self,
        request: &MappingRequest,
        internal: SocketAddrV6,
    ) -> Result<SocketAddrV6, Error> {
        if request.external_port.is_some_and(|p| p != internal.port()) {
            return Err(Error::InvalidRequest {
                reason: "a pinhole opens the internal port itself: it cannot offer another external port",
            });
        }
        if !internal.ip().is_unspecified() {
            return Ok(SocketAddrV6::new(*internal.ip(), internal.port(), 0, 0));
        }
        // The default route's interface and its stable address; the reason
        // (static, autoconfigured, the kernel's own source) and the
        // temporary addresses passed over are logged.
        let chosen = natkit_core::stable_ipv6_for(natkit_core::addresses::ROUTE_LOOKUP_V6, None)
            .map_err(|source| Error::Ipv6Address { source })?;
        tracing::info!(address = %chosen, "pinhole for this host's stable IPv6 address");
        Ok(SocketAddrV6::new(chosen.address, internal.port(), 0, 0))
    }

    async fn map_pinhole(
        &self,
        request: &MappingRequest,
        internal: SocketAddrV6,
    ) -> Result<Mapping, Error> {
        let internal = self.pinhole_internal(request, internal)?;
        let fw = self.igd.firewall(*internal.ip())?;
        self.add_pinhole(&fw, request, internal).await
    }

    async fn add_pinhole(
        &self,
        fw: &FirewallControl,
        request: &MappingRequest,
        internal: SocketAddrV6,
    ) -> Result<Mapping, Error> {
        let lease = pinhole_lease(request.lifetime);
        let (id, copies) = fw
            .add_pinhole_counting(&PinholeRequest::new(request.protocol, internal, lease))
            .await?;
        if copies > 1 {
            // A hedged copy may have found the pinhole the first one made,
            // and miniupnpd 2.3.1 then sets a far expiry (see renew).
            set_lease(fw, id, lease).await;
        }
        Ok(pinhole_mapping(request, internal, lease, id))
    }

    /// Renews by flow, not by ID: AddPinhole for an existing flow extends
    /// it and returns its ID (the spec's rule; miniupnpd follows it), and
    /// re-creates one the router forgot. UpdatePinhole with the ID held
    /// would not be safe: a restarted router counts IDs from 1 again, so the
    /// old ID may by then name another of this host's pinholes (its TCP
    /// twin, say), which UpdatePinhole would renew while this one stays
    /// gone. UpdatePinhole follows for the ID AddPinhole returned, to set the
    /// lease exactly: miniupnpd 2.3.1, extending an existing pinhole in
    /// AddPinhole, passes the new expiry time where a lease length is
    /// expected, so the pinhole would last decades (seen in the lab: a 3 s
    /// pinhole added twice outlived 6 s; fixed in later versions). Its
    /// failure is only logged: the pinhole is open.
    async fn renew_pinhole(
        &self,
        request: &MappingRequest,
        current: &Mapping,
        internal: SocketAddrV6,
    ) -> Result<Mapping, Error> {
        let fw = self.igd.firewall(*internal.ip())?;
        let renewed = self.add_pinhole(&fw, request, internal).await?;
        let id = renewed.token.as_ref().and_then(PinholeId::from_token);
        let before = current.token.as_ref().and_then(PinholeId::from_token);
        if let Some(id) = id {
            if before.is_some_and(|b| b != id) {
                tracing::info!(%id, "the router had lost the pinhole; it is open again under a new ID");
            }
            set_lease(&fw, id, pinhole_lease(request.lifetime)).await;
        }
        Ok(renewed)
    }

    /// Deletes by the ID held: one exchange, and how a later run removes a
    /// killed run's pinholes from its journal. A router restart since the
    /// last renewal may have given that ID to another of this host's
    /// pinholes, which is then deleted instead; its next renewal (by flow)
    /// opens it again.
    async fn unmap_pinhole(&self, mapping: &Mapping, internal: SocketAddrV6) -> Result<(), Error> {
        let fw = self.igd.firewall(*internal.ip())?;
        let id = match mapping.token.as_ref().and_then(PinholeId::from_token) {
            Some(id) => id,
            // Adding again is how a pinhole's ID is found: the router
            // returns the existing one's (and one made now is deleted next).
            None => {
                fw.add_pinhole(&PinholeRequest::new(mapping.protocol, internal, 1))
                    .await?
            }
        };
        match fw.delete_pinhole(id).await {
            Err(e) if already_deleted(&e) => Ok(()),
            other => other,
        }
    }
}

/// UpdatePinhole to set a pinhole's lease exactly; a failure is only
/// logged, the pinhole being open either way.
async fn set_lease(fw: &FirewallControl, id: PinholeId, lease: u32) {
    if let Err(e) = fw.update_pinhole(id, lease).await {
        tracing::warn!(%id, error = %e, "setting the pinhole's lease failed");
    }
}

/// The clock the mapper stamps [`Mapping::obtained`] with: tokio's, the one
/// its transport's deadlines and the lease keeper run on, so that on a
/// paused runtime a grant's age is simulated time. As a std `Instant`,
/// because that is what [`Mapping`] holds (the same as
/// `std::time::Instant::now()` outside paused tests).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The [`Mapping`] for a pinhole: external is internal (no translation).
fn pinhole_mapping(
    request: &MappingRequest,
    internal: SocketAddrV6,
    lease_secs: u32,
    id: PinholeId,
) -> Mapping {
    Mapping::pinhole(
        Mechanism::Upnp,
        request.protocol,
        SocketAddr::V6(internal),
        Duration::from_secs(u64::from(lease_secs)),
        now(),
    )
    .with_token(Some(id.to_token()))
}
