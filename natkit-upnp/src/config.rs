//! Discovery and HTTP configuration, and the rule for which LOCATION
//! addresses natkit will fetch from.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use natkit_core::Gateway;

use crate::wire::ssdp::SSDP_PORT;

/// Limits on the HTTP exchanges with an IGD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The largest device description accepted (default 64 KiB;
    /// miniupnpd's is about 4 KiB).
    pub max_description: usize,
    /// Time limit for fetching the description (default 3 s).
    pub description_timeout: Duration,
    /// Time limit for one SOAP action (default 3 s). SOAP answers are
    /// limited to [`MAX_SOAP_RESPONSE`](crate::MAX_SOAP_RESPONSE) bytes.
    pub soap_timeout: Duration,
    /// Hedged requests: when the description or an action that is safe to
    /// repeat has no complete answer after this long, the same request is
    /// sent again on a fresh connection, and again each time as long again
    /// passes (six copies at most, all within the time limits above); the first
    /// usable answer is taken and the other connections closed. The delay
    /// is at least four times the fastest recent exchange of that kind with
    /// the gateway, so a slow router is not sent copies of requests it is
    /// still working on; that pace is learnt from three answers at least
    /// (one may have waited out a lost segment), and never delays the copies
    /// so much that fewer than four fit within the time limit. AddAnyPortMapping is never repeated (each copy may
    /// be granted a port). `None` sends one copy only. Default 500 ms: an
    /// IGD on the LAN answers in milliseconds, so no answer after 500 ms
    /// means a lost segment and TCP backing off (measurements at
    /// `HEDGE_AFTER` in the source).
    pub hedge_after: Option<Duration>,
}

/// The default [`HttpConfig::hedge_after`]. In the NAT lab with 30 % loss
/// on miniupnpd's router (one lab, 150 GetExternalIPAddress calls and 120
/// description fetches per setting, machine quiet):
///
/// | hedge after | SOAP (3 s): failed, p90, max | description (2 s): failed, p90, max |
/// |---|---|---|
/// | never | 9/150, 1.7 s, 3.0 s (limit) | 6/120, 1.2 s, 2.0 s (limit) |
/// | 500 ms | 0/150, 1.0 s, 1.8 s | 0/120, 1.0 s, 1.7 s |
/// | 1 s | 0/150, 1.0 s, 2.3 s | 2/120, 1.4 s, 2.0 s (limit) |
///
/// Half of the exchanges took just over 500 ms with or without hedging
/// (the second connect of the race in `transport`): the hedge at 500 ms
/// goes out in about half of them under this loss, and never on a clean
/// LAN, where miniupnpd answers in milliseconds.
///
/// Answers come in just after a copy goes out (median 0.5 s, p90 1.0 s,
/// p99 1.5 s): a stuck copy rarely recovers in time, so the copies, not
/// TCP's own retransmissions, carry an exchange through. How many copies,
/// and the description's limit, were sized with
/// `natkit-upnp/examples/http_census.rs` in the same lab (rounds of one
/// description fetch and one GetExternalIPAddress):
///
/// | copies, description limit | description: failed, max | SOAP (3 s): failed, max |
/// |---|---|---|
/// | 3, 2 s | 1/300, 2.0 s (limit) | 0/300, 2.2 s |
/// | 6, 2 s (4 fit) | 2/1000, 2.0 s (limit) | 0/1000, 2.2 s |
/// | 6, 3 s (the defaults) | 0/1000, 2.0 s | 0/1000, 2.0 s |
///
/// One `natkit map --once` makes about six such exchanges, so 1 in 500
/// failing cost one run in 80; that is what `lab_loss_all` saw.
const HEDGE_AFTER: Duration = Duration::from_millis(500);

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_description: 64 * 1024,
            description_timeout: Duration::from_secs(3),
            soap_timeout: Duration::from_secs(3),
            hedge_after: Some(HEDGE_AFTER),
        }
    }
}

/// Which hosts a LOCATION (and so every later HTTP request) may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LocationPolicy {
    /// Only the default gateway itself (the default): the IGD that matters
    /// is the router the traffic leaves by.
    #[default]
    GatewayOnly,
    /// Any host on the gateway's subnet.
    Lan,
    /// Any host at all. Only for tests and unusual set-ups.
    Any,
}

/// How to search for the IGD.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The gateway to search at and the host's address towards it; `None`
    /// looks it up ([`natkit_core::default_gateway`]).
    pub gateway: Option<Gateway>,
    /// The port unicast searches go to (default 1900; tests point it at a
    /// fake IGD).
    pub ssdp_port: u16,
    /// Whether to search by multicast to 239.255.255.250:1900 too (default
    /// true). Unicast to the gateway is always sent.
    pub multicast: bool,
    /// How long to wait for answers when none is good (default 1 s).
    /// Discovery returns as soon as a connected IGD is found; descriptions
    /// already being fetched at the deadline may take up to
    /// [`HttpConfig`]'s limits longer.
    pub timeout: Duration,
    /// When the searches are first repeated (default 1 s, and at least 1 s
    /// after [`widen_after`](Self::widen_after), so 1.1 s); each later
    /// round comes twice as long after the one before (see
    /// [`SearchSchedule`](crate::decide::search::SearchSchedule) for the schedule
    /// and why: at most 6 datagrams in any second).
    pub repeat_after: Duration,
    /// Round 0 asks for `InternetGatewayDevice:1` only (unicast to the
    /// gateway and multicast); round 1, the other targets, follows this
    /// long after if nothing is being checked by then (default 100 ms;
    /// zero sends both at once).
    ///
    /// Each search costs the router a turn of its event loop: miniupnpd
    /// answers searches and HTTP requests in one loop and logs several lines
    /// per search, so ten searches at once delayed its answers to the HTTP
    /// requests that follow by tens of milliseconds (see lab/README.md).
    pub widen_after: Duration,
    /// Which LOCATION hosts are accepted (default [`LocationPolicy::GatewayOnly`]).
    pub location_policy: LocationPolicy,
    /// Accept LOCATIONs at a loopback address (default false; a LAN device
    /// must not make natkit fetch from this host itself). Tests with a fake
    /// IGD on 127.0.0.1 set it.
    pub allow_loopback: bool,
    /// HTTP limits.
    pub http: HttpConfig,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            gateway: None,
            ssdp_port: SSDP_PORT,
            multicast: true,
            timeout: Duration::from_secs(1),
            repeat_after: Duration::from_secs(1),
            widen_after: Duration::from_millis(100),
            location_policy: LocationPolicy::default(),
            allow_loopback: false,
            http: HttpConfig::default(),
        }
    }
}

/// Why a LOCATION was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocationRefusal {
    /// A loopback address, and [`DiscoveryConfig::allow_loopback`] is off.
    Loopback,
    /// Unspecified, multicast or broadcast: not a host.
    NotAHost,
    /// Outside the gateway's subnet.
    OutsideSubnet,
    /// On the LAN but not the default gateway.
    NotGateway,
}

impl fmt::Display for LocationRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocationRefusal::Loopback => "it is a loopback address",
            LocationRefusal::NotAHost => "it is not a host address",
            LocationRefusal::OutsideSubnet => "it is outside the gateway's subnet",
            LocationRefusal::NotGateway => "it is not the default gateway",
        })
    }
}

/// Checks a LOCATION host against the policy, sans-IO.
pub fn check_location(
    ip: Ipv4Addr,
    gateway: &Gateway,
    policy: LocationPolicy,
    allow_loopback: bool,
) -> Result<(), LocationRefusal> {
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err(LocationRefusal::NotAHost);
    }
    if ip.is_loopback() && !allow_loopback {
        return Err(LocationRefusal::Loopback);
    }
    match policy {
        LocationPolicy::Any => Ok(()),
        _ if !gateway.is_on_lan(ip.into()) && ip != gateway.address => {
            Err(LocationRefusal::OutsideSubnet)
        }
        LocationPolicy::Lan => Ok(()),
        LocationPolicy::GatewayOnly if ip != gateway.address => Err(LocationRefusal::NotGateway),
        LocationPolicy::GatewayOnly => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(addr: [u8; 4], local: [u8; 4], prefix: u8) -> Gateway {
        Gateway {
            interface: "eth0".into(),
            address: addr.into(),
            local_address: local.into(),
            prefix_len: prefix,
            address_v6: None,
            local_v6: vec![],
        }
    }

    #[test]
    fn gateway_only_by_default() {
        let g = gw([192, 168, 77, 1], [192, 168, 77, 2], 24);
        let p = LocationPolicy::default();
        assert_eq!(
            check_location([192, 168, 77, 1].into(), &g, p, false),
            Ok(())
        );
        assert_eq!(
            check_location([192, 168, 77, 3].into(), &g, p, false),
            Err(LocationRefusal::NotGateway)
        );
        assert_eq!(
            check_location([10, 0, 0, 1].into(), &g, p, false),
            Err(LocationRefusal::OutsideSubnet)
        );
        assert_eq!(
            check_location([127, 0, 0, 1].into(), &g, p, false),
            Err(LocationRefusal::Loopback)
        );
        assert_eq!(
            check_location([255, 255, 255, 255].into(), &g, LocationPolicy::Any, true),
            Err(LocationRefusal::NotAHost)
        );
    }

    #[test]
    fn lan_and_any() {
        let g = gw([192, 168, 77, 1], [192, 168, 77, 2], 24);
        assert_eq!(
            check_location([192, 168, 77, 3].into(), &g, LocationPolicy::Lan, false),
            Ok(())
        );
        assert_eq!(
            check_location([10, 0, 0, 1].into(), &g, LocationPolicy::Lan, false),
            Err(LocationRefusal::OutsideSubnet)
        );
        assert_eq!(
            check_location([10, 0, 0, 1].into(), &g, LocationPolicy::Any, false),
            Ok(())
        );
        // A point-to-point gateway outside the host's /32 is still the gateway.
        let p2p = gw([100, 70, 0, 1], [100, 70, 1, 2], 32);
        assert_eq!(
            check_location(
                [100, 70, 0, 1].into(),
                &p2p,
                LocationPolicy::GatewayOnly,
                false
            ),
            Ok(())
        );
        // Loopback test set-up.
        let lo = gw([127, 0, 0, 1], [127, 0, 0, 1], 8);
        assert_eq!(
            check_location(
                [127, 0, 0, 1].into(),
                &lo,
                LocationPolicy::GatewayOnly,
                true
            ),
            Ok(())
        );
    }
}
