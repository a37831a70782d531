//! Checks on a [`MappingRequest`] shared by both mappers.

use std::time::Duration;

use natkit_core::MappingRequest;

use crate::error::{Error, Result};

/// The requested lifetime in whole seconds (rounded up, at most
/// `u32::MAX`); zero is refused because on the wire it deletes.
pub(crate) fn lifetime_secs(lifetime: Duration) -> Result<u32> {
    if lifetime.is_zero() {
        return Err(Error::InvalidRequest {
            reason: "lifetime 0 would delete the mapping",
        });
    }
    let secs = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    Ok(u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The request's internal port; port 0 is refused (on the wire it means
/// "all ports", for deleting every mapping of the host).
pub(crate) fn internal_port(request: &MappingRequest) -> Result<u16> {
    match request.internal.port() {
        0 => Err(Error::InvalidRequest {
            reason: "internal port 0",
        }),
        port => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_round_up_and_clamp() {
        assert_eq!(lifetime_secs(Duration::from_millis(1500)).unwrap(), 2);
        assert_eq!(lifetime_secs(Duration::from_secs(7200)).unwrap(), 7200);
        assert_eq!(
            lifetime_secs(Duration::from_secs(u64::from(u32::MAX) + 10)).unwrap(),
            u32::MAX
        );
        assert!(matches!(
            lifetime_secs(Duration::ZERO),
            Err(Error::InvalidRequest { .. })
        ));
    }

    #[test]
    fn port_zero_is_refused() {
        let req = MappingRequest::new(natkit_core::Protocol::Tcp, "10.0.0.2:0".parse().unwrap());
        assert!(matches!(
            internal_port(&req),
            Err(Error::InvalidRequest { .. })
        ));
        let req = MappingRequest::new(natkit_core::Protocol::Tcp, "10.0.0.2:22".parse().unwrap());
        assert_eq!(internal_port(&req).unwrap(), 22);
    }
}
