//! IPv6 pinholes through the IGD's `WANIPv6FirewallControl` service: the
//! I/O side (the messages are built and parsed in [`crate::wire::pinhole`]).
//!
//! # Reaching the router over IPv6
//!
//! miniupnpd lets a pinhole be added, renewed or deleted only by its own
//! internal client (606 otherwise, miniupnp issue 731), and tells the
//! client by the address the request comes from. A request over IPv4 never
//! passes. So every request goes over IPv6, from the pinhole's address
//! (the socket is bound to it), to the router's IPv6 address on the same
//! port and path as the control URL the IPv4 description names.
//!
//! The router's IPv6 address is the next hop of this host's IPv6 default
//! route (on the interface that holds the pinhole's address), with that
//! interface as its scope when it is link-local, as it is when learnt from
//! router advertisements. Why that one:
//! - it is the router whose firewall drops the inbound traffic, by
//!   definition: the same rule as [`LocationPolicy::GatewayOnly`] for IPv4,
//!   where HTTP only goes where the default route goes;
//! - it costs no extra round trip. The alternative, SSDP over IPv6
//!   (`ff02::c`), waits up to the search's MX for multicast answers, and
//!   returns a LOCATION natkit would have to decide whether to trust;
//! - miniupnpd serves HTTP on one dual-stack socket (`[::]`, the port of its
//!   IPv4 LOCATION, bound to the LAN interface), so any of its LAN
//!   addresses, link-local included, answers on that port.
//!
//! A router whose IPv6 HTTP server listens on one address only (miniupnpd's
//! `ipv6_listening_ip`) or on another port than its IPv4 one is not reached
//! this way; [`Igd::with_ipv6_router`] names the address by hand.
//!
//! [`LocationPolicy::GatewayOnly`]: crate::LocationPolicy::GatewayOnly

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use natkit_core::Protocol;

use crate::error::{Error, Result};
use crate::io::bridge::MAX_SOAP_RESPONSE;
use crate::io::igd::{Hedging, Igd};
use crate::io::route6::default_routes;
use crate::io::transport::{Deadline, Soap, Target, post_soap_to};
use crate::wire::pinhole::{
    FirewallErrorCode, FirewallStatus, PinholeId, PinholeRequest, id_args, no_such_pinhole,
    outbound_args, parse_firewall_status, parse_is_working, parse_outbound_timeout,
    parse_pinhole_packets, parse_unique_id, update_args,
};
use crate::wire::soap::{SoapArgs, SoapReply, parse_response, request_body, soap_action};
use crate::wire::url::HttpUrl;

/// The IGD's `WANIPv6FirewallControl` service as its description names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirewallService {
    /// The service type as written (requests are addressed to it).
    pub(crate) service_type: String,
    /// Its control URL (an IPv4 URL: its port and path are used over IPv6).
    pub(crate) control: HttpUrl,
}

/// The IGD's IPv6 firewall service, reached over IPv6 from one local
/// address: the internal client of the pinholes it opens
/// ([`Igd::firewall`]).
#[derive(Debug, Clone)]
pub struct FirewallControl {
    service_type: String,
    path: String,
    router: SocketAddrV6,
    local: Ipv6Addr,
    /// `[router]:port`, for the `Host` header and error messages.
    host: String,
    soap_timeout: Duration,
    hedging: Hedging,
}

impl Igd {
    /// The IPv6 firewall service's type as the description writes it, if
    /// the IGD offers one (`WANIPv6FirewallControl`, IGD:2).
    pub fn firewall_service_type(&self) -> Option<&str> {
        self.firewall.as_ref().map(|f| f.service_type.as_str())
    }

    /// This IGD, reached over IPv6 at `router` (with `scope_id`, the
    /// interface index, when it is link-local) for the firewall service,
    /// instead of at the IPv6 default route's next hop.
    pub fn with_ipv6_router(mut self, router: Ipv6Addr, scope_id: u32) -> Igd {
        self.ipv6_router = Some((router, scope_id));
        self
    }

    /// The firewall service, talked to from `local`: the internal client of
    /// the pinholes (see the module documentation for where the router is
    /// found over IPv6).
    ///
    /// Fails with [`Error::NoFirewallService`] when the IGD has none and
    /// [`Error::NoIpv6Route`] when `local` is not this host's or there is
    /// no IPv6 default route.
    pub fn firewall(&self, local: Ipv6Addr) -> Result<FirewallControl> {
        let service = self
            .firewall
            .as_ref()
            .ok_or_else(|| Error::NoFirewallService {
                location: self.location().to_string(),
                device: self.display_name().to_owned(),
            })?;
        let (ip, scope) = match self.ipv6_router {
            Some(r) => r,
            None => default_router(local)?,
        };
        let router = SocketAddrV6::new(ip, service.control.addr.port(), 0, scope);
        Ok(FirewallControl {
            service_type: service.service_type.clone(),
            path: service.control.path.clone(),
            router,
            local,
            host: format!("[{ip}]:{}", router.port()),
            soap_timeout: self.soap_timeout(),
            hedging: self.hedging().clone(),
        })
    }
}

/// The IPv6 default route's next hop on `local`'s interface (or the best
/// one, for an address not found on any), with the interface as scope.
fn default_router(local: Ipv6Addr) -> Result<(Ipv6Addr, u32)> {
    let no_route = |detail: String| Error::NoIpv6Route { detail };
    let addrs =
        natkit_core::host_ipv6_addresses().map_err(|source| Error::Ipv6Address { source })?;
    let mine = addrs
        .iter()
        .find(|a| a.address == local)
        .ok_or_else(|| no_route(format!("{local} is not an address of this host")))?;
    let routes = default_routes().map_err(|e| no_route(format!("reading routes: {e}")))?;
    let route = routes
        .iter()
        .find(|r| mine.interface.as_deref() == Some(r.interface.as_str()))
        .or_else(|| routes.first())
        .ok_or_else(|| no_route("this host has no IPv6 default route".to_owned()))?;
    let link_local = route.via.is_unicast_link_local();
    if link_local && mine.if_index == 0 {
        return Err(no_route(format!(
            "the IPv6 router {} is link-local and its interface index is unknown here",
            route.via
        )));
    }
    Ok((route.via, if link_local { mine.if_index } else { 0 }))
}

impl FirewallControl {
    /// The local address requests come from (the pinholes' internal client).
    pub fn local(&self) -> Ipv6Addr {
        self.local
    }

    /// The router's address and port the requests go to.
    pub fn router(&self) -> SocketAddrV6 {
        self.router
    }

    /// The service type requests are addressed to.
    pub fn service_type(&self) -> &str {
        &self.service_type
    }

    /// `GetFirewallStatus`: whether the router filters IPv6 and lets
    /// clients open pinholes.
    pub async fn status(&self) -> Result<FirewallStatus> {
        parse_firewall_status(&self.call("GetFirewallStatus", &[]).await?)
    }

    /// `AddPinhole`: opens `request`, or extends the pinhole that exists for
    /// the same flow; returns its ID.
    pub async fn add_pinhole(&self, request: &PinholeRequest) -> Result<PinholeId> {
        Ok(self.add_pinhole_counting(request).await?.0)
    }

    /// [`add_pinhole`](Self::add_pinhole), and how many copies of the
    /// request were sent (more than one: hedged under loss).
    pub(crate) async fn add_pinhole_counting(
        &self,
        request: &PinholeRequest,
    ) -> Result<(PinholeId, u8)> {
        request.check()?;
        let (out, copies) = self
            .call_counting("AddPinhole", &request.add_args())
            .await?;
        Ok((parse_unique_id(&out)?, copies))
    }

    /// `UpdatePinhole`: a new lease of `lease_secs` (1..=86400) for `id`.
    pub async fn update_pinhole(&self, id: PinholeId, lease_secs: u32) -> Result<()> {
        if !(1..=crate::wire::pinhole::MAX_PINHOLE_LEASE).contains(&lease_secs) {
            return Err(Error::InvalidRequest {
                reason: "a pinhole lease is 1 to 86400 s",
            });
        }
        self.call("UpdatePinhole", &update_args(id, lease_secs))
            .await
            .map(drop)
            .map_err(|e| no_such_pinhole(id, e))
    }

    /// `DeletePinhole`. A pinhole already gone is [`Error::NoSuchPinhole`]
    /// ([`FailureKind::NoSuchMapping`](natkit_core::FailureKind::NoSuchMapping)).
    pub async fn delete_pinhole(&self, id: PinholeId) -> Result<()> {
        self.call("DeletePinhole", &id_args(id))
            .await
            .map(drop)
            .map_err(|e| no_such_pinhole(id, e))
    }

    /// `GetOutboundPinholeTimeout`: how long the router keeps an idle
    /// outbound flow open. miniupnpd does not implement it (501).
    pub async fn outbound_timeout(
        &self,
        protocol: Protocol,
        internal: SocketAddrV6,
        remote: Option<SocketAddrV6>,
    ) -> Result<Duration> {
        let args = outbound_args(protocol, internal, remote);
        parse_outbound_timeout(&self.call("GetOutboundPinholeTimeout", &args).await?)
    }

    /// `CheckPinholeWorking`: whether traffic has gone through `id`
    /// (709 NoTrafficReceived is `false`, not an error).
    pub async fn check_pinhole_working(&self, id: PinholeId) -> Result<bool> {
        match self.call("CheckPinholeWorking", &id_args(id)).await {
            Ok(out) => parse_is_working(&out),
            Err(e) if e.firewall_code() == Some(FirewallErrorCode::NoTrafficReceived) => Ok(false),
            Err(e) => Err(no_such_pinhole(id, e)),
        }
    }

    /// `GetPinholePackets`: how many packets went through `id`. miniupnpd
    /// answers 0 for an ID it does not have.
    pub async fn pinhole_packets(&self, id: PinholeId) -> Result<u32> {
        parse_pinhole_packets(&self.call("GetPinholePackets", &id_args(id)).await?)
    }

    /// One action from the local address, within the SOAP time limit,
    /// hedged under loss as the gateway's other actions are (see
    /// `decide/hedge.rs` for why each of these may be sent twice).
    async fn call(&self, action: &'static str, args: &[(&str, String)]) -> Result<SoapArgs> {
        Ok(self.call_counting(action, args).await?.0)
    }

    /// [`call`](Self::call), and how many copies of the request were sent.
    async fn call_counting(
        &self,
        action: &'static str,
        args: &[(&str, String)],
    ) -> Result<(SoapArgs, u8)> {
        let borrowed: Vec<(&str, &str)> = args.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = request_body(&self.service_type, action, &borrowed);
        let header = soap_action(&self.service_type, action);
        let soap = Soap {
            host: &self.host,
            path: &self.path,
            soap_action: &header,
            body: &body,
        };
        let target = Target {
            remote: SocketAddr::V6(self.router),
            bind: Some(IpAddr::V6(self.local)),
        };
        let deadline = Deadline::after(self.soap_timeout);
        let fetched = post_soap_to(
            &target,
            &soap,
            MAX_SOAP_RESPONSE,
            deadline,
            &self.hedging.plan(action, deadline),
        )
        .await
        .map_err(|e| Error::http(&format_args!("http://{}{}", self.host, self.path), e))?;
        match parse_response(&fetched.body, action)
            .map_err(|source| Error::Soap { action, source })?
        {
            SoapReply::Ok(out) => Ok((out, fetched.copies)),
            SoapReply::Fault { code, description } => Err(Error::Firewall {
                action,
                code: FirewallErrorCode::from_code(code.code()),
                description,
            }),
        }
    }
}
