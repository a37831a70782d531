//! Turning the checks' signs into the firewall verdict and the section's
//! conclusion.

use std::net::SocketAddr;

use super::report::{FirewallCheck, FirewallVerdict};
use super::signs::{NoSign, Sign};

/// The firewall verdict from what the checks observed. A dial-back (or any)
/// observation of a drop outweighs a router that says its firewall is off:
/// what a connection from outside meets is the fact.
pub(super) fn judge_firewall(signs: Vec<Sign>, why_none: Vec<NoSign>) -> FirewallCheck {
    let blocks = signs.iter().any(|s| matches!(s, Sign::Blocks(_)));
    let allows = signs.iter().any(|s| matches!(s, Sign::Allows(_)));
    let verdict = match (blocks, allows) {
        (true, _) => FirewallVerdict::BlocksInbound,
        (false, true) => FirewallVerdict::AllowsInbound,
        (false, false) if why_none.is_empty() => FirewallVerdict::Unknown,
        (false, false) => FirewallVerdict::NotChecked,
    };
    let evidence = signs
        .into_iter()
        .map(|s| match s {
            Sign::Blocks(e) | Sign::Allows(e) => e,
        })
        .collect();
    let not_checked = matches!(
        verdict,
        FirewallVerdict::Unknown | FirewallVerdict::NotChecked
    )
    .then(|| {
        if why_none.is_empty() {
            "the checks that ran could not tell".to_owned()
        } else {
            let why: Vec<String> = why_none.iter().map(NoSign::to_string).collect();
            why.join("; ")
        }
    });
    FirewallCheck {
        verdict,
        evidence,
        not_checked,
    }
}

/// What STUN over IPv6 saw of the way out, besides the firewall's filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StunPath {
    /// A server answered and saw this host's own address.
    Direct,
    /// A server answered and saw another address (the one it saw, if known):
    /// NAT66 or NPTv6 translates this host's IPv6.
    Translated(Option<SocketAddr>),
    /// No server answered.
    Silent,
    /// Not asked, or the tests could not tell.
    Unknown,
}

/// The section's conclusion once every check is in: whether IPv6 reaches the
/// internet (`available`), the detail, and the firewall verdict.
pub(super) struct Conclusion {
    pub(super) available: bool,
    pub(super) detail: String,
    pub(super) firewall: FirewallCheck,
}

/// Weighs the checks. What a packet from outside met (`observed`: STUN's
/// filtering tests, the dial-back without a pinhole) decides the firewall
/// verdict; the router's own word (`claim`: UPnP GetFirewallStatus) only when
/// nothing was observed, since a router may say its firewall is on while it
/// forwards everything. Two cases make any firewall verdict wrong:
/// - nothing outside answered over IPv6 (STUN silent, no dial-back connected,
///   `dial_answered` not `Some(true)`): IPv6 does not reach the internet (a
///   dead or missing IPv6 uplink), whatever the firewall does;
/// - STUN saw another address than this host's: a NAT on IPv6 stands between
///   the host and the internet, and a pinhole for the host's own address does
///   not make it reachable there.
pub(super) fn conclude(
    host_detail: String,
    observed: Vec<Sign>,
    claim: Option<Sign>,
    why_none: Vec<NoSign>,
    path: StunPath,
    dial_answered: Option<bool>,
) -> Conclusion {
    let evidence_of = |s: &Sign| match s {
        Sign::Blocks(e) | Sign::Allows(e) => e.clone(),
    };
    let unknown = |evidence: Vec<String>, why: String| FirewallCheck {
        verdict: FirewallVerdict::Unknown,
        evidence,
        not_checked: Some(why),
    };
    let all: Vec<String> = observed.iter().chain(&claim).map(evidence_of).collect();
    match path {
        StunPath::Silent if dial_answered != Some(true) => {
            let how = if dial_answered == Some(false) {
                "no STUN server answered, and the dial-back server could not be reached"
            } else {
                "no STUN server answered"
            };
            let detail = format!(
                "{host_detail}, but nothing outside answers over IPv6 ({how}): IPv6 does not \
                 reach the internet (the router's IPv6 uplink is down, or it has none)"
            );
            let why = "IPv6 does not reach the internet, so what the firewall does to \
                       connections from outside cannot matter yet"
                .to_owned();
            Conclusion {
                available: false,
                detail,
                firewall: unknown(all, why),
            }
        }
        StunPath::Translated(seen) => {
            let seen = seen.map(|a| format!(" ({})", a.ip())).unwrap_or_default();
            let detail = format!(
                "{host_detail}; a NAT translates it (NAT66 or NPTv6): the internet sees another \
                 address{seen}"
            );
            let why = format!(
                "a NAT translates this host's IPv6 (STUN saw another address{seen}): a \
                 connection from outside meets that NAT, and a pinhole for this host's own \
                 address does not make it reachable there"
            );
            Conclusion {
                available: true,
                detail,
                firewall: unknown(all, why),
            }
        }
        _ => {
            let decisive = if observed.is_empty() {
                claim.clone().into_iter().collect()
            } else {
                observed
            };
            let mut firewall = judge_firewall(decisive, why_none);
            firewall.evidence = all;
            Conclusion {
                available: true,
                detail: host_detail,
                firewall,
            }
        }
    }
}
