//! [`PcpMapper`] as natkit-core's [`PortMapper`]: its errors wrapped for
//! the mechanism that answered, and a renewal that keeps the nonce and a
//! pinhole's address.

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;
use natkit_core::{IntoCore, Mapping, MappingRequest, Mechanism, PortMapper};

use super::{PcpMapper, is_pinhole, token_nonce, unspecified_like};
use crate::error::Error;

impl PcpMapper {
    fn core_error(&self, e: Error) -> natkit_core::Error {
        let mechanism = if self.uses_natpmp() {
            Mechanism::NatPmp
        } else {
            Mechanism::Pcp
        };
        e.into_core(mechanism)
    }
}

#[async_trait]
impl PortMapper for PcpMapper {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Pcp
    }

    async fn external_address(&self) -> natkit_core::Result<IpAddr> {
        self.public_address().await.map_err(|e| self.core_error(e))
    }

    async fn map(&self, request: &MappingRequest) -> natkit_core::Result<Mapping> {
        let port = request
            .external_port
            .unwrap_or_else(|| request.internal.port());
        let suggested = SocketAddr::new(unspecified_like(self.server.ip()), port);
        self.request_mapping(request, suggested)
            .await
            .map_err(|e| self.core_error(e))
    }

    async fn renew(
        &self,
        request: &MappingRequest,
        current: &Mapping,
    ) -> natkit_core::Result<Mapping> {
        if current.mechanism == Mechanism::NatPmp
            && let Some(n) = &self.natpmp
        {
            return n
                .request_mapping(request, current.external.port())
                .await
                .map_err(|e| e.into_core(Mechanism::NatPmp));
        }
        // RFC 6887 §11.2.1: suggest the address and port we hold, with
        // the nonce that owns the mapping.
        let nonce = token_nonce(current).map_err(|e| self.core_error(e))?;
        // A pinhole belongs to the address it was made for: renew that one
        // even if the stable address choice would differ by now.
        let pinned;
        let request = if is_pinhole(current.internal.ip()) && request.internal.ip().is_unspecified()
        {
            pinned = MappingRequest {
                internal: current.internal,
                ..request.clone()
            };
            &pinned
        } else {
            request
        };
        self.request_mapping_with(request, current.external, nonce)
            .await
            .map_err(|e| self.core_error(e))
    }

    async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
        self.delete_mapping(mapping)
            .await
            .map_err(|e| self.core_error(e))
    }
}
