//! IPv6 pinholes through PCP: which server, which address.
//!
//! RFC 6887 on IPv6: there is no NAT, so a MAP for an IPv6 internal
//! address asks the router's firewall for a pinhole. The client sends from
//! its IPv6 address, the client IP field holds that address itself (not
//! IPv4-mapped), and the assigned external address and port are the
//! internal ones. The nonce owns the mapping, a MAP with lifetime 0
//! deletes it, and the epoch tells a router restart, all as for IPv4.
//!
//! miniupnpd 2.3.1 (`pcpserver.c`, `CreatePCPMap_FW`, `DeletePCPMap`;
//! `netfilter_nft/nftpinhole.c`), read in its source and checked in the
//! NAT lab (`tests/lab_pcp_ipv6.rs`):
//! - A request is a pinhole request when its client IP is not IPv4-mapped
//!   (`is_fw`). The external address answered is the internal one: a
//!   suggested address that differs is logged and replaced, or refused
//!   CANNOT_PROVIDE_EXTERNAL with PREFER_FAILURE (which natkit never
//!   sends).
//! - A new pinhole is answered with external port = internal port. A MAP
//!   for a pinhole that already exists (same address, port, protocol) only
//!   refreshes its lease, whatever the nonce, and answers the *suggested*
//!   port unchanged; the nonce does not take the pinhole over as it does an
//!   IPv4 mapping. natkit suggests the internal port, so the echo is right.
//! - A delete compares the nonce with the pinhole's description (`PCP MAP
//!   <nonce>`) and answers NOT_AUTHORIZED for another nonce. A delete of a
//!   pinhole it does not hold is answered SUCCESS, unlike IPv4's
//!   NO_RESOURCES.
//! - Its nftables backend loses that description when it refreshes a
//!   pinhole (`update_pinhole` re-adds the rule with an empty one: a
//!   `strtok`/`strsep` slip, fixed in 2.3.6 by commit 358f430, miniupnp
//!   issue 663). After any renewal, a delete with the owning nonce is
//!   answered NOT_AUTHORIZED, and no PCP request can delete the pinhole
//!   any more. Seen in the lab, also for a MAP retransmitted after its
//!   first copy had made the pinhole (2 of 5 pinholes under 30 % loss):
//!   the second copy is a refresh. What natkit can still do is cut the lease:
//!   a refresh is accepted from any nonce, so [`PcpMapper::delete_mapping`]
//!   then asks for a 1 s lifetime (the server raises it to its
//!   `min_lifetime`, 120 s by default) and reports
//!   [`Error::PinholeShortened`]: the pinhole closes when that runs out.
//!   A pinhole re-created after a router restart has its description
//!   again, so it is deleted normally until its next renewal.
//! - Lifetimes are clamped to min_lifetime/max_lifetime (120 s / 86400 s by
//!   default) as for IPv4, and the epoch is the one NAT-PMP and IPv4 PCP
//!   use: seconds since the daemon started.
//! - Its IPv6 PCP socket listens on `ipv6_listening_ip` when that is set,
//!   else on every address (see `pcp/ipv6.rs` for how the server is
//!   found).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use natkit_core::{
    Ipv6AddressError, StableIpv6, addresses::ROUTE_LOOKUP_V6, host_ipv6_addresses, stable_ipv6_for,
};

use super::{Path, PcpMapper};
use crate::driver;
use crate::error::{Error, Result};
use crate::pcp::exchange::PcpAnswer;
use crate::pcp::ipv6;
use crate::pcp::wire::{MapRequest, PcpRequest};

impl PcpMapper {
    /// The stable address the last pinhole request for an unspecified
    /// (`::`) internal address chose, with the reason and the temporary
    /// addresses passed over; `None` before any, and on systems that do not
    /// tell temporary addresses apart (the kernel's source is used there).
    pub fn pinhole_address(&self) -> Option<StableIpv6> {
        self.lock().pinhole_address.clone()
    }

    /// The PCP server IPv6 pinholes go to, once known (this mapper's own
    /// server when it is IPv6, [`PcpConfig::ipv6_server`](super::PcpConfig::ipv6_server),
    /// or the one the search found).
    pub fn ipv6_server(&self) -> Option<SocketAddr> {
        self.fixed_v6_server().or(self.lock().found_v6)
    }

    /// Whether IPv6 pinholes can be opened through PCP, without opening
    /// one: the server that answers an ANNOUNCE from this host's stable
    /// address (the fixed one, or the search's result; a server found
    /// earlier is asked again). `Err` says why not: no stable address, no
    /// server answering ([`Error::NoIpv6Server`], [`Error::Timeout`],
    /// [`Error::PortUnreachable`]).
    pub async fn detect_ipv6(&self) -> Result<SocketAddr> {
        let internal = Ipv6Addr::UNSPECIFIED;
        if let Some(server) = self.ipv6_server() {
            let asked = self.announce_v6(server, internal).await;
            self.forget_v6_server_after(server, &asked);
            asked?;
            return Ok(server);
        }
        self.pinhole_server(internal).await
    }

    fn fixed_v6_server(&self) -> Option<SocketAddr> {
        if self.server.is_ipv6() {
            return Some(self.server);
        }
        self.config.ipv6_server.map(SocketAddr::V6)
    }

    /// Server, socket and client address for a pinhole on `internal`.
    pub(super) async fn pinhole_path(&self, internal: IpAddr) -> Result<Path> {
        let IpAddr::V6(internal) = internal else {
            return Err(Error::AddressFamily {
                detail: "a pinhole needs an IPv6 internal address",
            });
        };
        let server = self.pinhole_server(internal).await?;
        let local = IpAddr::V6(self.pinhole_source(internal, server)?);
        let socket = driver::bind_towards(server, Some(local)).await?;
        Ok(Path {
            server,
            socket,
            local,
        })
    }

    /// The PCP server for pinholes: fixed, remembered, or searched for by
    /// ANNOUNCE on [`PcpConfig::detect`](super::PcpConfig::detect) to each
    /// candidate of [`ipv6::server_candidates`] in turn, from the address
    /// a pinhole on `internal` would use.
    ///
    /// A candidate that stayed silent gets a second window after the others
    /// were tried: under 30 % loss one window (4 sends, each round trip
    /// through with p = 0.49) misses a live server 6.8 % of the time, which
    /// the lab saw fail a pinhole; two miss it 0.5 % of the time. One that
    /// answered port unreachable (nothing on 5351 there) is not asked again,
    /// so a router without PCP is still a quick answer.
    async fn pinhole_server(&self, internal: Ipv6Addr) -> Result<SocketAddr> {
        if let Some(s) = self.ipv6_server() {
            return Ok(s);
        }
        let addrs = host_ipv6_addresses().unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot list this host's IPv6 addresses");
            Vec::new()
        });
        let candidates =
            ipv6::server_candidates(&ipv6::default_routers(), &addrs, self.config.server_port);
        let mut silent: Vec<SocketAddr> = candidates.iter().map(|c| SocketAddr::V6(*c)).collect();
        for _window in 0..2 {
            let mut still_silent = Vec::new();
            for server in silent {
                match self.announce_v6(server, internal).await {
                    Ok(()) => {
                        tracing::info!(%server, "PCP server for IPv6 pinholes found");
                        self.lock().found_v6 = Some(server);
                        return Ok(server);
                    }
                    // Without a stable address there is nothing to open a
                    // pinhole for, whichever server answers: say that.
                    Err(e @ Error::NoStableIpv6 { .. }) => return Err(e),
                    Err(e @ Error::Timeout { .. }) => {
                        tracing::debug!(%server, error = %e, "no answer to ANNOUNCE");
                        still_silent.push(server);
                    }
                    Err(e) => tracing::debug!(%server, error = %e, "no PCP for IPv6 there"),
                }
            }
            silent = still_silent;
        }
        Err(Error::NoIpv6Server {
            tried: candidates.len(),
        })
    }

    /// One ANNOUNCE to a candidate: any version-2 answer shows a PCP server.
    async fn announce_v6(&self, server: SocketAddr, internal: Ipv6Addr) -> Result<()> {
        let local = IpAddr::V6(self.pinhole_source(internal, server)?);
        let socket = driver::bind_towards(server, Some(local)).await?;
        let (answer, _, _) = self
            .exchange(
                &socket,
                server,
                PcpRequest::announce(local),
                self.config.detect,
            )
            .await?;
        match answer {
            PcpAnswer::Announced { .. } | PcpAnswer::Mapped { .. } => Ok(()),
            PcpAnswer::Failure { version, .. } if version == crate::pcp::PCP_VERSION => Ok(()),
            PcpAnswer::Failure { version, .. } => Err(Error::UnsupportedServerVersion {
                server_version: version,
            }),
            PcpAnswer::NatPmpOnly { .. } => Err(Error::NatPmpNoIpv6 {
                internal: Ipv6Addr::UNSPECIFIED,
            }),
        }
    }

    /// A pinhole the server refused to delete (miniupnpd before 2.3.6 after
    /// a renewal, see the module doc): asks for the shortest lease instead
    /// and returns [`Error::PinholeShortened`] with what was granted, or
    /// the refusal when that fails too.
    pub(super) async fn shorten_pinhole(
        &self,
        socket: &tokio::net::UdpSocket,
        server: SocketAddr,
        local: IpAddr,
        map: MapRequest,
    ) -> Error {
        let refused = Error::PcpResult {
            code: crate::pcp::PcpResultCode::NotAuthorized,
            lifetime: 0,
            epoch: 0,
        };
        let shortest = PcpRequest::map(local, 1, map);
        match self
            .exchange(socket, server, shortest, self.config.delete)
            .await
        {
            Ok((PcpAnswer::Mapped { lifetime, .. }, _, _)) => {
                tracing::warn!(
                    %server,
                    lifetime,
                    "the PCP server refused to delete a pinhole it knows (miniupnpd < 2.3.6 after a renewal); its lease was cut instead"
                );
                Error::PinholeShortened { lifetime }
            }
            Ok((other, _, _)) => {
                tracing::debug!(?other, "cutting the pinhole's lease failed too");
                refused
            }
            Err(e) => {
                tracing::debug!(error = %e, "cutting the pinhole's lease failed too");
                refused
            }
        }
    }

    /// After an exchange with a searched-for server that did not answer,
    /// forgets it so the next request searches again (the router or its
    /// address changed).
    pub(super) fn forget_v6_server_after<T>(&self, server: SocketAddr, result: &Result<T>) {
        let gone = matches!(
            result,
            Err(Error::Timeout { .. } | Error::PortUnreachable { .. } | Error::Io { .. })
        );
        let mut state = self.lock();
        if gone && state.found_v6 == Some(server) {
            tracing::info!(%server, "IPv6 PCP server stopped answering; searching again next time");
            state.found_v6 = None;
        }
    }

    /// The client address for a pinhole on `internal`: the address itself,
    /// else (for `::`) [`PcpConfig::ipv6_local_address`](super::PcpConfig::ipv6_local_address)
    /// or an IPv6 `local_address`, else the host's stable global address on
    /// the link towards `server`.
    ///
    /// Not the kernel's own source choice: with `use_tempaddr=2` (the
    /// default of most desktop distributions, and of the lab) Linux prefers
    /// the temporary privacy address for outgoing traffic (RFC 6724 rule
    /// 7), and a pinhole for it dies with the address within a day. On
    /// Linux `/proc/net/if_inet6` tells the two apart
    /// ([`natkit_core::addresses`]); elsewhere the kernel's source is used
    /// with a warning, since the kind cannot be known.
    fn pinhole_source(&self, internal: Ipv6Addr, server: SocketAddr) -> Result<Ipv6Addr> {
        if !internal.is_unspecified() {
            return Ok(internal);
        }
        let configured = self
            .config
            .ipv6_local_address
            .or(match self.config.local_address {
                Some(IpAddr::V6(v6)) => Some(v6),
                _ => None,
            });
        if let Some(v6) = configured {
            return Ok(v6);
        }
        let chosen = if ipv6::needs_interface(server) {
            let addrs = host_ipv6_addresses().map_err(|source| Error::NoStableIpv6 { source })?;
            let interface = ipv6::interface_of(server, &addrs);
            stable_ipv6_for(ROUTE_LOOKUP_V6, interface.as_deref())
        } else {
            match server.ip() {
                IpAddr::V6(v6) => stable_ipv6_for(v6, None),
                IpAddr::V4(_) => {
                    return Err(Error::AddressFamily {
                        detail: "a pinhole's PCP server must be IPv6",
                    });
                }
            }
        };
        match chosen {
            Ok(chosen) => {
                tracing::debug!(%chosen, "pinhole address");
                let address = chosen.address;
                self.lock().pinhole_address = Some(chosen);
                Ok(address)
            }
            Err(Ipv6AddressError::KindUnknown { source_address }) => {
                tracing::warn!(
                    address = %source_address,
                    "this OS does not tell temporary IPv6 addresses apart; the pinhole uses the kernel's source"
                );
                Ok(source_address)
            }
            Err(source) => Err(Error::NoStableIpv6 { source }),
        }
    }
}
