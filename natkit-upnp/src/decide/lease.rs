//! Which lease to ask for next when a router refuses one, sans-IO.
//!
//! Real routers differ: IGD:1 routers may only accept permanent leases
//! (725 OnlyPermanentLeasesSupported); some reject leases above a week
//! (604800 s, the IGD:2 maximum) or any long lease with a bare 402 Invalid
//! Args; IGD:2 routers such as miniupnpd clamp silently to 604800 s. natkit
//! asks for what the caller wants and steps down only on those codes.

use crate::wire::code::UpnpErrorCode;

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
    /// The router granted a shorter, finite lease: it refused the
    /// requested one with 402 and took a shorter one, or it clamped the
    /// request silently (IGD:2 routers turn 0, "permanent", into 604800 s).
    /// The caller must renew before it ends.
    Shortened {
        /// The lease asked for first, in seconds (0: permanent).
        requested: u32,
        /// The lease the router granted, in seconds.
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

/// The lease to ask for when the router granted `lease` and the entry was
/// gone when read back right after. RFC 6886 §9 reports IGDs that ignore or
/// mishandle any lease other than 0; firewalla issue #556 (a Netgear X6S
/// that only keeps ttl 0) and libtorrent issue #4580 (permanent leases "for
/// the users with really shitty routers that need the workaround") are two
/// of the reports. Such a router says success and keeps nothing, so natkit
/// asks once more for a permanent lease, which the lease keeper then renews
/// and deletes. `None` when it already was permanent.
pub fn lease_after_vanishing(lease: u32) -> Option<u32> {
    (lease != 0).then_some(0)
}

/// How much shorter than asked a read-back lease may be and still count
/// as granted in full: the router reports the *remaining* lease, which has
/// already run down a little by the time natkit reads it back.
pub const READ_BACK_SLACK: u32 = 60;

/// Describes the lease: `requested` by the caller, `accepted` in the
/// request the router took, and `read_back` as the router then reported
/// it (IGD:2 routers clamp silently: miniupnpd turns 0 and anything above
/// 604800 into 604800).
pub fn outcome(requested: u32, accepted: u32, read_back: Option<u32>) -> LeaseOutcome {
    let granted = read_back.unwrap_or(accepted);
    if granted == 0 {
        return if requested == 0 {
            LeaseOutcome::AsRequested
        } else {
            LeaseOutcome::Permanent { requested }
        };
    }
    let full = accepted != 0 && granted.saturating_add(READ_BACK_SLACK) >= accepted;
    if accepted == requested && full {
        LeaseOutcome::AsRequested
    } else {
        LeaseOutcome::Shortened {
            requested,
            accepted: if full { accepted } else { granted },
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
    fn a_vanished_finite_lease_becomes_permanent_once() {
        assert_eq!(lease_after_vanishing(3600), Some(0));
        assert_eq!(lease_after_vanishing(0), None);
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(7200, 7200, None), LeaseOutcome::AsRequested);
        assert_eq!(outcome(7200, 7200, Some(7198)), LeaseOutcome::AsRequested);
        assert_eq!(outcome(0, 0, Some(0)), LeaseOutcome::AsRequested);
        assert_eq!(
            outcome(7200, 0, None),
            LeaseOutcome::Permanent { requested: 7200 }
        );
        assert_eq!(
            outcome(1_000_000, 604_800, Some(604_800)),
            LeaseOutcome::Shortened {
                requested: 1_000_000,
                accepted: 604_800
            }
        );
        // Clamped silently by an IGD:2 router.
        let clamped = LeaseOutcome::Shortened {
            requested: 1_000_000,
            accepted: 604_800,
        };
        assert_eq!(outcome(1_000_000, 1_000_000, Some(604_800)), clamped);
        assert_eq!(
            outcome(0, 0, Some(604_800)),
            LeaseOutcome::Shortened {
                requested: 0,
                accepted: 604_800
            }
        );
    }
}
