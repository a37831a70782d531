//! The port mapper trait: what UPnP IGD, NAT-PMP and PCP have in common.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::Result;
use crate::mapping::{Mapping, MappingRequest};
use crate::mechanism::Mechanism;

/// Something that can open ports on the router: a UPnP IGD client, a NAT-PMP
/// or PCP client, or a combinator of them.
///
/// Implementations must be safe to call concurrently. Every mapping returned
/// by [`map`](PortMapper::map) is the caller's to renew and to
/// [`unmap`](PortMapper::unmap); the [`LeaseKeeper`](crate::LeaseKeeper)
/// does both.
#[async_trait]
pub trait PortMapper: Send + Sync {
    /// Which mechanism this mapper speaks.
    fn mechanism(&self) -> Mechanism;

    /// The mechanism's machine name (`upnp`, `natpmp`, `pcp`).
    fn name(&self) -> &'static str {
        self.mechanism().as_str()
    }

    /// The router's external (WAN) address, as the router reports it.
    ///
    /// If this address is not global (see [`crate::AddressScope`]), another
    /// NAT sits upstream and mappings made here do not reach the internet.
    async fn external_address(&self) -> Result<IpAddr>;

    /// Asks the router for a mapping.
    async fn map(&self, request: &MappingRequest) -> Result<Mapping>;

    /// Extends `current`, which was made from `request`. The router may
    /// answer with a different external address or port, or a new epoch;
    /// the returned mapping is the one now in force.
    async fn renew(&self, request: &MappingRequest, current: &Mapping) -> Result<Mapping>;

    /// Deletes a mapping this mapper made.
    async fn unmap(&self, mapping: &Mapping) -> Result<()>;
}
