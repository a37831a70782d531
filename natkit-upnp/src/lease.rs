//! Which lease to ask for next when a router refuses one, sans-IO.
//!
//! Real routers differ: IGD:1 routers may only accept permanent leases
//! (725 OnlyPermanentLeasesSupported); some reject leases above a week
//! (604800 s, the IGD:2 maximum) or any long lease with a bare 402 Invalid
//! Args; IGD:2 routers such as miniupnpd clamp silently to 604800 s. natkit
//! asks for what the caller wants and steps down only on those codes.

use crate::code::UpnpErrorCode;

/// The IGD:2 maximum lease (one week), in seconds.
pub const MAX_IGD2_LEASE: u32 = 604_800;

/// The shorter leases tried after 402 Invalid Args, longest first; 0
/// (permanent, or the router's maximum on IGD:2) comes last.
pub const FALLBACK_LEASES: [u32; 4] = [MAX_IGD2_LEASE, 86_400, 3_600, 0];

/// What happened to the lease the caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The router accepted the requested lease.
    AsRequested,
    /// The router refused the requested lease with 402 and accepted a
    /// shorter one (`accepted` may be 0: see [`LeaseOutcome::Permanent`]).
    Shortened {
        /// The lease asked for first, in seconds.
        requested: u32,
        /// The lease the router accepted, in seconds.
        accepted: u32,
    },
    /// The router only does permanent leases (725) or accepted nothing but
    /// 0: the mapping stays until deleted, so the caller must renew and
    /// delete it on its own schedule (natkit-core's `LeaseKeeper` does).
    Permanent {
        /// The lease asked for first, in seconds.
        requested: u32,
    },
}

/// The lease to try after `current` was refused with `code`, or `None`
/// when the code is not about leases or nothing shorter is left.
pub fn next_lease(current: u32, code: UpnpErrorCode) -> Option<u32> {
    match code {
        UpnpErrorCode::OnlyPermanentLeasesSupported => (current != 0).then_some(0),
        UpnpErrorCode::InvalidArgs => FALLBACK_LEASES.into_iter().find(|&l| l < current),
        _ => None,
    }
}

/// Describes the lease finally accepted.
pub fn outcome(requested: u32, accepted: u32) -> LeaseOutcome {
    if accepted == requested {
        LeaseOutcome::AsRequested
    } else if accepted == 0 {
        LeaseOutcome::Permanent { requested }
    } else {
        LeaseOutcome::Shortened {
            requested,
            accepted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(start: u32, code: UpnpErrorCode) -> Vec<u32> {
        let mut out = vec![start];
        while let Some(next) = next_lease(*out.last().unwrap(), code) {
            out.push(next);
        }
        out
    }

    #[test]
    fn steps_down_on_invalid_args() {
        assert_eq!(
            chain(1_000_000, UpnpErrorCode::InvalidArgs),
            [1_000_000, 604_800, 86_400, 3_600, 0]
        );
        assert_eq!(chain(7200, UpnpErrorCode::InvalidArgs), [7200, 3600, 0]);
        assert_eq!(chain(0, UpnpErrorCode::InvalidArgs), [0]);
    }

    #[test]
    fn permanent_only_goes_straight_to_zero() {
        assert_eq!(
            chain(7200, UpnpErrorCode::OnlyPermanentLeasesSupported),
            [7200, 0]
        );
        assert_eq!(
            next_lease(7200, UpnpErrorCode::ConflictInMappingEntry),
            None
        );
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(7200, 7200), LeaseOutcome::AsRequested);
        assert_eq!(
            outcome(7200, 0),
            LeaseOutcome::Permanent { requested: 7200 }
        );
        assert_eq!(
            outcome(1_000_000, 604_800),
            LeaseOutcome::Shortened {
                requested: 1_000_000,
                accepted: 604_800
            }
        );
    }
}
