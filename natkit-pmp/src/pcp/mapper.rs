//! [`PcpMapper`]: PCP through the tokio driver, as a
//! [`natkit_core::PortMapper`], falling back to NAT-PMP when the router only
//! speaks that.
//!
//! miniupnpd 2.3.1 (Debian `miniupnpd-nftables`), observed in the NAT lab:
//! - It answers PCP version 2 natively on 5351; a version it does not know
//!   (3) gets UNSUPP_VERSION naming version 2; version 1 is parsed with
//!   the draft layout. A NAT-PMP-only server would answer version 0 with
//!   result 1, which [`PcpMapper`] turns into the NAT-PMP fallback.
//! - The epoch is shared with NAT-PMP: seconds since the daemon started.
//! - ANNOUNCE is answered with a 24-byte SUCCESS carrying the epoch.
//! - The client address in the header must be the packet's source, else
//!   ADDRESS_MISMATCH (12); so the client address is the bound local
//!   address, never `0.0.0.0`.
//! - Granted lifetimes are at least its `min_lifetime` (asked 60 s, got
//!   120 s).
//! - A suggested external port held by another host is not refused: the
//!   next free one is assigned (natkit never sends PREFER_FAILURE).
//! - Nonces: a MAP for an existing mapping of the same host with another
//!   nonce succeeds and the new nonce owns the mapping from then on; a
//!   delete with any other nonce than the owner's is refused with
//!   NOT_AUTHORIZED (2). This mapper therefore keeps the nonce of every
//!   mapping it made and reuses it to renew and delete.
//! - A delete of a mapping that does not exist is answered NO_RESOURCES (8)
//!   with lifetime 30, not SUCCESS.
//! - `upnpc -l` lists PCP mappings with the description `PCP MAP <nonce>`
//!   (the nonce in hex, 32-bit words byte-swapped).
//!
//! A request whose internal address is IPv6 asks for a firewall pinhole
//! instead (see `mapper/pinhole.rs` for the server, the address and
//! miniupnpd's IPv6 behaviour): [`PcpMapper::ipv6_server`],
//! [`PcpMapper::pinhole_address`].
//!
//! Every [`Mapping`] this mapper makes carries its nonce as
//! [`Mapping::token`] (12 bytes), and renew and delete use the mapping's
//! token before the in-memory table: a later process that reads a mapping
//! back from a journal can still delete it.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use natkit_core::{
    GatewayEpoch, Mapping, MappingRequest, MappingToken, Mechanism, Protocol, StableIpv6,
};
use rand::Rng;
use tokio::net::UdpSocket;

use crate::counters::Counters;
use crate::driver;
use crate::epoch::{EpochObservation, EpochTracker};
use crate::error::{Error, Result};
use crate::natpmp::{NatPmpConfig, NatPmpMapper};
use crate::pcp::PcpResultCode;
use crate::pcp::exchange::{PcpAnswer, PcpExchange};
use crate::pcp::wire::{MapRequest, Nonce, PcpRequest};
use crate::request::{bounded, internal_port, lifetime_secs};
use crate::schedule::RetransmitPlan;
use crate::transaction::{Outcome, Transaction};

mod answers;
mod config;
mod pinhole;
mod port_mapper;

use answers::{deleted, failure, token_nonce};
pub use config::{PcpAvailability, PcpConfig};

/// Where one request goes: the server, a socket bound to the client
/// address, and that address.
struct Path {
    server: SocketAddr,
    socket: UdpSocket,
    local: IpAddr,
}

#[derive(Debug, Default)]
struct State {
    epoch: EpochTracker,
    counters: Counters,
    /// The nonce of every live mapping, by protocol and internal address.
    nonces: HashMap<(Protocol, SocketAddr), Nonce>,
    natpmp_only: bool,
    /// The epoch of the IPv6 pinhole server, when it is not `server`.
    epoch_v6: EpochTracker,
    /// The IPv6 pinhole server found by the search.
    found_v6: Option<SocketAddr>,
    /// The stable address the last pinhole request chose, and why.
    pinhole_address: Option<StableIpv6>,
}

/// A PCP client for one server.
pub struct PcpMapper {
    server: SocketAddr,
    config: PcpConfig,
    rng: Mutex<Box<dyn Rng + Send>>,
    state: Mutex<State>,
    natpmp: Option<NatPmpMapper>,
}

impl fmt::Debug for PcpMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcpMapper")
            .field("server", &self.server)
            .field("config", &self.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PcpMapper {
    /// A mapper for the PCP server at `server` (the default gateway for
    /// IPv4, from [`natkit_core::default_gateway`]), with nonces from a
    /// generator seeded by the OS.
    pub fn new(server: impl Into<IpAddr>, config: PcpConfig) -> Self {
        let rng: rand::rngs::StdRng = rand::make_rng();
        Self::with_rng(server, config, rng)
    }

    /// As [`new`](Self::new), with nonces and jitter drawn from `rng`.
    pub fn with_rng(
        server: impl Into<IpAddr>,
        config: PcpConfig,
        rng: impl Rng + Send + 'static,
    ) -> Self {
        let server = SocketAddr::new(server.into(), config.server_port);
        let natpmp = match server.ip() {
            IpAddr::V4(v4) if config.fallback_to_natpmp => Some(NatPmpMapper::new(
                v4,
                NatPmpConfig {
                    server_port: config.server_port,
                    local_address: config.local_address.and_then(|ip| match ip {
                        IpAddr::V4(v4) => Some(v4),
                        IpAddr::V6(_) => None,
                    }),
                    ..config.natpmp.clone()
                },
            )),
            _ => None,
        };
        PcpMapper {
            server,
            config,
            rng: Mutex::new(Box::new(rng)),
            state: Mutex::new(State::default()),
            natpmp,
        }
    }

    /// The server's address and port.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The configuration.
    pub fn config(&self) -> &PcpConfig {
        &self.config
    }

    /// Whether the server turned out to speak only NAT-PMP, so this mapper
    /// now maps through NAT-PMP (its mappings say [`Mechanism::NatPmp`]).
    pub fn uses_natpmp(&self) -> bool {
        self.lock().natpmp_only
    }

    /// What this mapper (and its NAT-PMP fallback) saw on the wire.
    pub fn counters(&self) -> Counters {
        let mut c = self.lock().counters;
        if let Some(n) = &self.natpmp {
            c += n.counters();
        }
        c
    }

    /// The last PCP epoch the server reported.
    pub fn last_epoch(&self) -> Option<GatewayEpoch> {
        self.lock().epoch.last()
    }

    /// Sends ANNOUNCE with the full retransmission plan.
    pub async fn announce(&self) -> Result<PcpAvailability> {
        self.announce_with(self.config.retransmit).await
    }

    /// Detects PCP (or NAT-PMP only): ANNOUNCE on [`PcpConfig::detect`].
    /// `Err(Error::Timeout)` means no answer within the detection window:
    /// nothing answers PCP or NAT-PMP there, or every datagram of the
    /// window was lost.
    pub async fn detect(&self) -> Result<PcpAvailability> {
        self.announce_with(self.config.detect).await
    }

    /// Whether this mapper can map through the server: it answers PCP, or
    /// only NAT-PMP and the fallback is on.
    pub async fn is_available(&self) -> bool {
        match self.detect().await {
            Ok(PcpAvailability::Pcp { .. }) => true,
            Ok(PcpAvailability::NatPmpOnly { .. }) => self.natpmp.is_some(),
            Err(_) => false,
        }
    }

    /// The external address: through NAT-PMP after a fallback, otherwise
    /// from a short-lived UDP MAP for this query's own socket port, deleted
    /// again at once.
    pub async fn public_address(&self) -> Result<IpAddr> {
        self.public_address_with(self.config.retransmit).await
    }

    /// [`public_address`](Self::public_address) with the MAP on `plan`
    /// (e.g. the rest of a detection window). The delete of the short-lived
    /// mapping always runs on [`PcpConfig::delete`] to its end, so a MAP
    /// that was answered is not left behind.
    pub async fn public_address_with(&self, plan: RetransmitPlan) -> Result<IpAddr> {
        if let Some(n) = self.natpmp_if_fallen_back() {
            return Ok(IpAddr::V4(n.public_address().await?.address));
        }
        let socket = driver::bind_towards(self.server, self.local_same_family()).await?;
        let local = local_addr(&socket)?;
        let lifetime = lifetime_secs(self.config.address_query_lifetime)?;
        let nonce = Nonce::random(&mut **self.rng());
        let map = MapRequest {
            nonce,
            protocol: Protocol::Udp,
            internal_port: local.port(),
            suggested_external: SocketAddr::new(unspecified_like(local.ip()), 0),
        };
        let request = PcpRequest::map(local.ip(), lifetime, map);
        let answer = match self.exchange(&socket, self.server, request, plan).await {
            Ok((answer, _, _)) => answer,
            Err(e @ Error::Timeout { .. }) => {
                // The server may have made the mapping and every answer
                // been lost (under 30 % loss in the lab, about one query
                // in five left one behind for its lease): delete it. A
                // server without it answers NO_RESOURCES (miniupnpd).
                self.delete_quietly(&socket, self.server, local.ip(), map)
                    .await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let external = match answer {
            PcpAnswer::Mapped { external, .. } => external,
            PcpAnswer::NatPmpOnly { .. } => {
                let n = self.fall_back()?;
                return Ok(IpAddr::V4(n.public_address().await?.address));
            }
            other => return Err(failure(other)),
        };
        self.delete_quietly(&socket, self.server, local.ip(), map)
            .await;
        Ok(external.ip())
    }

    /// Deletes the mapping `map` made (or may have made) on
    /// [`PcpConfig::delete`], logging a failure: it expires on its own.
    async fn delete_quietly(
        &self,
        socket: &UdpSocket,
        server: SocketAddr,
        local: IpAddr,
        map: MapRequest,
    ) {
        let delete = PcpRequest::map(local, 0, map);
        if let Err(e) = self
            .exchange_counted(socket, server, delete, self.config.delete)
            .await
            .and_then(|(a, _, _, sends)| deleted(a, sends))
        {
            tracing::debug!(error = %e, %server, "deleting a mapping nobody holds failed");
        }
    }

    /// Asks for a mapping, suggesting `suggested` as the external address
    /// and port (an unspecified address or port 0: no preference). For an
    /// IPv6 pinhole the suggestion is always `::` and the internal port: a
    /// firewall does not translate.
    pub async fn request_mapping(
        &self,
        request: &MappingRequest,
        suggested: SocketAddr,
    ) -> Result<Mapping> {
        self.request_mapping_with(request, suggested, None).await
    }

    /// [`request_mapping`](Self::request_mapping) with the nonce of the
    /// mapping being renewed (`None`: the one this mapper holds for the
    /// internal address, or a fresh one).
    async fn request_mapping_with(
        &self,
        request: &MappingRequest,
        suggested: SocketAddr,
        nonce: Option<Nonce>,
    ) -> Result<Mapping> {
        let pinhole = is_pinhole(request.internal.ip());
        if !pinhole && let Some(n) = self.natpmp_if_fallen_back() {
            return n.request_mapping(request, suggested.port()).await;
        }
        let lifetime = lifetime_secs(request.lifetime)?;
        let port = internal_port(request)?;
        let Path {
            server,
            socket,
            local: local_ip,
        } = self.path(request.internal.ip()).await?;
        let internal = SocketAddr::new(local_ip, port);
        let key = (request.protocol, internal);
        let fresh = nonce.is_none() && !self.lock().nonces.contains_key(&key);
        let nonce = nonce.unwrap_or_else(|| self.nonce_for(key));
        let suggested = if pinhole {
            // A firewall does not translate: no address preference (`::`;
            // the server answers the internal one) and the internal port.
            // miniupnpd 2.3.1 echoes the suggested port when it refreshes
            // an existing pinhole, so any other port would come back as
            // one the pinhole does not have.
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
        } else if suggested.ip().is_unspecified() {
            SocketAddr::new(unspecified_like(local_ip), suggested.port())
        } else {
            suggested
        };
        let map = MapRequest {
            nonce,
            protocol: request.protocol,
            internal_port: port,
            suggested_external: suggested,
        };
        let pcp = PcpRequest::map(local_ip, lifetime, map);
        let exchanged = self
            .exchange(&socket, server, pcp, self.config.retransmit)
            .await;
        if pinhole {
            self.forget_v6_server_after(server, &exchanged);
        }
        let (answer, at, observation) = match exchanged {
            Ok(exchanged) => exchanged,
            Err(e @ Error::Timeout { .. }) if fresh => {
                // As for the address query: the server may hold a mapping
                // for this nonce whose every answer was lost, and no one
                // would know its nonce to delete it. (A renewal's mapping
                // stays: its holder deletes it.)
                self.delete_quietly(&socket, server, local_ip, map).await;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match answer {
            PcpAnswer::Mapped { lifetime: 0, .. } => Err(Error::ZeroLifetimeGranted),
            PcpAnswer::Mapped {
                lifetime, external, ..
            } => {
                self.lock().nonces.insert(key, nonce);
                Ok(Mapping::new(
                    Mechanism::Pcp,
                    request.protocol,
                    external,
                    internal,
                    Duration::from_secs(u64::from(lifetime)),
                    at,
                )
                .with_epoch(observation.map(|o| o.current()))
                .with_token(MappingToken::new(&nonce.0)))
            }
            PcpAnswer::NatPmpOnly { .. } if pinhole => Err(Error::NatPmpNoIpv6 {
                internal: match local_ip {
                    IpAddr::V6(v6) => v6,
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                },
            }),
            PcpAnswer::NatPmpOnly { .. } => {
                let n = self.fall_back()?;
                n.request_mapping(request, suggested.port()).await
            }
            other => Err(failure(other)),
        }
    }

    /// Deletes `mapping` (MAP with lifetime 0 and the creating nonce: the
    /// mapping's token, else the one this mapper holds).
    pub async fn delete_mapping(&self, mapping: &Mapping) -> Result<()> {
        match (mapping.mechanism, &self.natpmp) {
            (Mechanism::Pcp, _) => {}
            (Mechanism::NatPmp, Some(n)) => return n.delete_mapping(mapping).await,
            (made_by, _) => return Err(Error::ForeignMapping { made_by }),
        }
        let Path {
            server,
            socket,
            local: local_ip,
        } = self.path(mapping.internal.ip()).await?;
        let key = (
            mapping.protocol,
            SocketAddr::new(local_ip, mapping.internal.port()),
        );
        let nonce = match token_nonce(mapping)? {
            Some(n) => n,
            None => self.nonce_for(key),
        };
        let map = MapRequest {
            nonce,
            protocol: mapping.protocol,
            internal_port: mapping.internal.port(),
            suggested_external: mapping.external,
        };
        let pcp = PcpRequest::map(local_ip, 0, map);
        let (answer, _, _, sends) = self
            .exchange_counted(&socket, server, pcp, self.config.delete)
            .await?;
        match deleted(answer, sends) {
            Err(Error::PcpResult {
                code: PcpResultCode::NotAuthorized,
                ..
            }) if is_pinhole(mapping.internal.ip()) => {
                let shortened = self.shorten_pinhole(&socket, server, local_ip, map).await;
                self.lock().nonces.remove(&key);
                Err(shortened)
            }
            result => {
                result?;
                self.lock().nonces.remove(&key);
                Ok(())
            }
        }
    }

    /// ANNOUNCE on `plan` (e.g. a detection window of the caller's).
    pub async fn announce_with(&self, plan: RetransmitPlan) -> Result<PcpAvailability> {
        let socket = driver::bind_towards(self.server, self.local_same_family()).await?;
        let local_ip = local_addr(&socket)?.ip();
        let (answer, at, epoch) = self
            .exchange(&socket, self.server, PcpRequest::announce(local_ip), plan)
            .await?;
        match answer {
            PcpAnswer::NatPmpOnly { epoch } => {
                if self.natpmp.is_some() {
                    self.lock().natpmp_only = true;
                    tracing::info!(server = %self.server, "PCP server speaks only NAT-PMP; falling back");
                }
                Ok(PcpAvailability::NatPmpOnly {
                    epoch: epoch.map(|server_seconds| GatewayEpoch {
                        server_seconds,
                        observed_at: at,
                    }),
                })
            }
            PcpAnswer::Failure {
                code: PcpResultCode::UnsuppVersion,
                version,
                ..
            } if version != crate::pcp::PCP_VERSION => Err(Error::UnsupportedServerVersion {
                server_version: version,
            }),
            // Any version-2 answer, even an error such as UNSUPP_OPCODE from
            // a server without ANNOUNCE, shows a PCP server is there.
            PcpAnswer::Announced { .. } | PcpAnswer::Failure { .. } | PcpAnswer::Mapped { .. } => {
                let observation = epoch.ok_or(Error::NotAResponse)?;
                Ok(PcpAvailability::Pcp {
                    epoch: observation.current(),
                    epoch_reset: observation.is_reset(),
                })
            }
        }
    }

    /// One exchange: draws the jitter seed, runs the transaction, records
    /// counters and the epoch of any version-2 answer.
    async fn exchange(
        &self,
        socket: &UdpSocket,
        server: SocketAddr,
        request: PcpRequest,
        plan: RetransmitPlan,
    ) -> Result<(PcpAnswer, Instant, Option<EpochObservation>)> {
        let (answer, at, epoch, _) = self.exchange_counted(socket, server, request, plan).await?;
        Ok((answer, at, epoch))
    }

    /// [`exchange`](Self::exchange), also saying how many requests were
    /// sent before the answer came.
    async fn exchange_counted(
        &self,
        socket: &UdpSocket,
        server: SocketAddr,
        request: PcpRequest,
        plan: RetransmitPlan,
    ) -> Result<(PcpAnswer, Instant, Option<EpochObservation>, u32)> {
        bounded(plan)?;
        let seed = self.rng().next_u64();
        let txn = Transaction::new(
            PcpExchange::new(request),
            request.to_vec(),
            server,
            plan,
            driver::now(),
            seed,
        )?;
        let (outcome, counters) = driver::run(socket, txn).await;
        self.lock().counters += counters;
        let outcome = outcome?;
        let sends = match &outcome {
            Outcome::Answered { sends, .. } => *sends,
            Outcome::TimedOut { .. } => 0,
        };
        let (answer, at) = driver::answered(outcome, server)?;
        let epoch = match answer {
            PcpAnswer::Announced { epoch } | PcpAnswer::Mapped { epoch, .. } => Some(epoch),
            PcpAnswer::Failure { epoch, version, .. } if version == crate::pcp::PCP_VERSION => {
                Some(epoch)
            }
            _ => None,
        };
        let observation = epoch.map(|e| self.observe_epoch(server, e, at));
        Ok((answer, at, observation, sends))
    }

    fn observe_epoch(
        &self,
        server: SocketAddr,
        server_seconds: u32,
        at: Instant,
    ) -> EpochObservation {
        let mut state = self.lock();
        let state = &mut *state;
        // The IPv6 pinhole server may be another box than the IPv4 one
        // (miniupnpd shares one epoch, but nothing promises that).
        let tracker = if server == self.server {
            &mut state.epoch
        } else {
            &mut state.epoch_v6
        };
        tracker.observe_reporting(server_seconds, at, &mut state.counters, "PCP", &server)
    }

    fn fall_back(&self) -> Result<&NatPmpMapper> {
        match &self.natpmp {
            Some(n) => {
                self.lock().natpmp_only = true;
                tracing::info!(server = %self.server, "PCP server speaks only NAT-PMP; falling back");
                Ok(n)
            }
            None => Err(Error::UnsupportedServerVersion { server_version: 0 }),
        }
    }

    fn natpmp_if_fallen_back(&self) -> Option<&NatPmpMapper> {
        if self.lock().natpmp_only {
            self.natpmp.as_ref()
        } else {
            None
        }
    }

    fn nonce_for(&self, key: (Protocol, SocketAddr)) -> Nonce {
        if let Some(n) = self.lock().nonces.get(&key) {
            return *n;
        }
        Nonce::random(&mut **self.rng())
    }

    /// The server, socket and client address for a request about
    /// `internal`: an IPv6 one is a pinhole ([`Self::pinhole_path`]).
    async fn path(&self, internal: IpAddr) -> Result<Path> {
        if is_pinhole(internal) {
            return self.pinhole_path(internal).await;
        }
        let local = self.local_for(internal)?;
        let socket = driver::bind_towards(self.server, local).await?;
        let local = local_addr(&socket)?.ip();
        Ok(Path {
            server: self.server,
            socket,
            local,
        })
    }

    /// [`PcpConfig::local_address`] when it is of the server's family.
    fn local_same_family(&self) -> Option<IpAddr> {
        self.config
            .local_address
            .filter(|ip| ip.is_ipv4() == self.server.is_ipv4())
    }

    fn local_for(&self, requested: IpAddr) -> Result<Option<IpAddr>> {
        if requested.is_unspecified() {
            return Ok(self.local_same_family());
        }
        if requested.is_ipv4() != self.server.is_ipv4() {
            return Err(Error::AddressFamily {
                detail: "internal address and PCP server are of different families",
            });
        }
        Ok(Some(requested))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, Box<dyn Rng + Send>> {
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn local_addr(socket: &UdpSocket) -> Result<SocketAddr> {
    socket
        .local_addr()
        .map_err(|source| Error::Io { op: "bind", source })
}

/// Whether a request about `internal` asks for an IPv6 pinhole, as
/// [`MappingRequest::is_pinhole`] decides: any IPv6 internal address, `::`
/// included, but not an IPv4-mapped one.
fn is_pinhole(internal: IpAddr) -> bool {
    matches!(internal, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none())
}

/// "No preference" in the family of `ip`.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}
