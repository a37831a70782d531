//! Checks on a [`MappingRequest`] shared by both mappers.

use std::time::Duration;

use natkit_core::MappingRequest;

use crate::error::{Error, Result};
use crate::schedule::RetransmitPlan;

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

/// Refuses a plan without a send or duration limit: the sans-IO
/// [`Transaction`](crate::Transaction) may follow one (RFC 6887 allows it),
/// but a mapper call on it would never return without an answer.
pub(crate) fn bounded(plan: RetransmitPlan) -> Result<()> {
    plan.validate()?;
    if plan.is_bounded() {
        Ok(())
    } else {
        Err(Error::InvalidPlan {
            reason: "no send or duration limit: a mapper call would never end",
        })
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
    fn unbounded_plans_are_refused() {
        assert!(bounded(RetransmitPlan::pcp()).is_ok());
        assert!(matches!(
            bounded(RetransmitPlan::pcp_rfc()),
            Err(Error::InvalidPlan { .. })
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
