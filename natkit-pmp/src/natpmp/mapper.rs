//! [`NatPmpMapper`]: NAT-PMP through the tokio driver, as a
//! [`natkit_core::PortMapper`].
//!
//! miniupnpd 2.3.1 (Debian `miniupnpd-nftables`), observed in the NAT lab:
//! - NAT-PMP and PCP share UDP 5351 (`enable_natpmp=yes` turns on both);
//!   a datagram whose first byte is 0 is NAT-PMP.
//! - The epoch is the seconds since the daemon started (3 s after start it
//!   says 3), so a daemon restart, not only a reboot, resets it; the lab's
//!   `restart-miniupnpd` also empties its rules, as a reboot would.
//! - A suggested external port held by another LAN host is not refused: the
//!   next free port is granted (asked 9100, got 9101), so always read the
//!   granted port.
//! - Lifetimes below its `min_lifetime` (default 120 s) are raised to it.
//! - A delete (lifetime 0) of a mapping that does not exist is answered with
//!   success (external port 0, lifetime 0).
//! - An unknown opcode is answered with an 8-byte header and result 5.
//! - `upnpc -l` lists NAT-PMP mappings with the description
//!   `NAT-PMP <external port> <tcp|udp>`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use natkit_core::{GatewayEpoch, IntoCore, Mapping, MappingRequest, Mechanism, PortMapper};

use crate::counters::Counters;
use crate::driver;
use crate::epoch::{EpochObservation, EpochTracker};
use crate::error::{Error, Result};
use crate::natpmp::exchange::NatPmpExchange;
use crate::natpmp::wire::{NATPMP_PORT, NatPmpAnswer, NatPmpRequest};
use crate::request::{bounded, internal_port, lifetime_secs};
use crate::schedule::RetransmitPlan;
use crate::transaction::Transaction;

/// How a [`NatPmpMapper`] talks to the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct NatPmpConfig {
    /// The server's UDP port: 5351 on real gateways; tests point it at a
    /// fake server.
    pub server_port: u16,
    /// Retransmission for address and mapping requests
    /// ([`RetransmitPlan::natpmp_steady`]: RFC 6886's 250 ms doubling,
    /// capped at 8 s, for 120 s).
    pub retransmit: RetransmitPlan,
    /// The plan of [`NatPmpMapper::detect`] ([`RetransmitPlan::detect`]:
    /// RFC 6886's schedule for 2 s, four sends).
    pub detect: RetransmitPlan,
    /// The plan of deletes ([`RetransmitPlan::release`]: 250 ms, then every
    /// 500 ms, for 4.9 s, within the lease keeper's default 5 s shutdown).
    /// A caller with a shorter shutdown budget should fit this into it.
    pub delete: RetransmitPlan,
    /// The local address to send from (the mapping's internal address);
    /// `None` uses the one routing to the gateway. A request's own
    /// non-unspecified internal address takes precedence.
    pub local_address: Option<Ipv4Addr>,
}

impl Default for NatPmpConfig {
    fn default() -> Self {
        NatPmpConfig {
            server_port: NATPMP_PORT,
            retransmit: RetransmitPlan::natpmp_steady(),
            detect: RetransmitPlan::detect(),
            delete: RetransmitPlan::release(),
            local_address: None,
        }
    }
}

/// The gateway's external address as NAT-PMP reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicAddress {
    /// The external IPv4 address.
    pub address: Ipv4Addr,
    /// The gateway's epoch in the answer.
    pub epoch: GatewayEpoch,
    /// Whether this answer showed the gateway lost its state since the
    /// previous answer to this mapper.
    pub epoch_reset: bool,
}

#[derive(Debug, Default)]
struct State {
    epoch: EpochTracker,
    counters: Counters,
}

/// A NAT-PMP client for one gateway.
#[derive(Debug)]
pub struct NatPmpMapper {
    server: SocketAddrV4,
    config: NatPmpConfig,
    state: Mutex<State>,
}

impl NatPmpMapper {
    /// A mapper for the gateway at `gateway` (from
    /// [`natkit_core::default_gateway`]). Nothing is sent until asked.
    pub fn new(gateway: Ipv4Addr, config: NatPmpConfig) -> Self {
        NatPmpMapper {
            server: SocketAddrV4::new(gateway, config.server_port),
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// The server's address and port.
    pub fn server(&self) -> SocketAddrV4 {
        self.server
    }

    /// The configuration.
    pub fn config(&self) -> &NatPmpConfig {
        &self.config
    }

    /// What this mapper saw on the wire so far.
    pub fn counters(&self) -> Counters {
        self.lock().counters
    }

    /// The last epoch the gateway reported.
    pub fn last_epoch(&self) -> Option<GatewayEpoch> {
        self.lock().epoch.last()
    }

    /// Asks for the external address with the full retransmission plan.
    pub async fn public_address(&self) -> Result<PublicAddress> {
        self.public_address_with(self.config.retransmit, None).await
    }

    /// Detects NAT-PMP: the external address request on
    /// [`NatPmpConfig::detect`]. `Err(Error::Timeout)` means no answer
    /// within the detection window: the gateway does not speak NAT-PMP, or
    /// every datagram of the window was lost.
    pub async fn detect(&self) -> Result<PublicAddress> {
        self.public_address_with(self.config.detect, None).await
    }

    /// Whether the gateway answers NAT-PMP at all (see [`detect`](Self::detect)).
    pub async fn is_available(&self) -> bool {
        self.detect().await.is_ok()
    }

    /// Asks for a mapping; `suggested` is the external port asked for.
    pub async fn request_mapping(
        &self,
        request: &MappingRequest,
        suggested: u16,
    ) -> Result<Mapping> {
        let lifetime = lifetime_secs(request.lifetime)?;
        let internal_port = internal_port(request)?;
        let local = self.local_for(request.internal.ip())?;
        let socket = driver::bind_towards(SocketAddr::V4(self.server), local).await?;
        let local_ip = socket
            .local_addr()
            .map_err(|source| Error::Io { op: "bind", source })?
            .ip();
        let address = self
            .public_address_with(self.config.retransmit, Some(&socket))
            .await?;
        let map = NatPmpRequest::Map {
            protocol: request.protocol,
            internal_port,
            suggested_external_port: suggested,
            lifetime,
        };
        let (answer, at) = self.exchange(&socket, map, self.config.retransmit).await?;
        let NatPmpAnswer::Mapping {
            epoch,
            external_port,
            lifetime: granted,
            ..
        } = answer
        else {
            return Err(failure(answer));
        };
        if granted == 0 {
            return Err(Error::ZeroLifetimeGranted);
        }
        let observation = self.observe_epoch(epoch, at);
        Ok(Mapping::new(
            Mechanism::NatPmp,
            request.protocol,
            SocketAddr::new(IpAddr::V4(address.address), external_port),
            SocketAddr::new(local_ip, internal_port),
            Duration::from_secs(u64::from(granted)),
            at,
        )
        .with_epoch(Some(observation.current())))
    }

    /// Deletes `mapping` (a request with lifetime 0 and suggested port 0,
    /// RFC 6886 §3.4).
    pub async fn delete_mapping(&self, mapping: &Mapping) -> Result<()> {
        if mapping.mechanism != Mechanism::NatPmp {
            return Err(Error::ForeignMapping {
                made_by: mapping.mechanism,
            });
        }
        let local = self.local_for(mapping.internal.ip())?;
        let socket = driver::bind_towards(SocketAddr::V4(self.server), local).await?;
        let request = NatPmpRequest::Map {
            protocol: mapping.protocol,
            internal_port: mapping.internal.port(),
            suggested_external_port: 0,
            lifetime: 0,
        };
        let (answer, at) = self.exchange(&socket, request, self.config.delete).await?;
        match answer {
            NatPmpAnswer::Mapping { epoch, .. } => {
                self.observe_epoch(epoch, at);
                Ok(())
            }
            other => Err(failure(other)),
        }
    }

    async fn public_address_with(
        &self,
        plan: RetransmitPlan,
        socket: Option<&tokio::net::UdpSocket>,
    ) -> Result<PublicAddress> {
        let owned;
        let socket = match socket {
            Some(s) => s,
            None => {
                let local = self.config.local_address.map(IpAddr::V4);
                owned = driver::bind_towards(SocketAddr::V4(self.server), local).await?;
                &owned
            }
        };
        let (answer, at) = self
            .exchange(socket, NatPmpRequest::ExternalAddress, plan)
            .await?;
        let NatPmpAnswer::ExternalAddress { epoch, address } = answer else {
            return Err(failure(answer));
        };
        let observation = self.observe_epoch(epoch, at);
        Ok(PublicAddress {
            address,
            epoch: observation.current(),
            epoch_reset: observation.is_reset(),
        })
    }

    /// One request/response exchange; result-code failures are returned as
    /// answers (with their epoch recorded) for the caller to turn into errors.
    async fn exchange(
        &self,
        socket: &tokio::net::UdpSocket,
        request: NatPmpRequest,
        plan: RetransmitPlan,
    ) -> Result<(NatPmpAnswer, Instant)> {
        let server = SocketAddr::V4(self.server);
        bounded(plan)?;
        // NAT-PMP has no jitter; the seed is unused.
        let txn = Transaction::new(
            NatPmpExchange::new(request),
            request.to_vec(),
            server,
            plan,
            driver::now(),
            0,
        )?;
        let (outcome, counters) = driver::run(socket, txn).await;
        self.lock().counters += counters;
        let (answer, at) = driver::answered(outcome?, server)?;
        if let NatPmpAnswer::Failure { epoch, .. } = answer {
            self.observe_epoch(epoch, at);
        }
        Ok((answer, at))
    }

    fn observe_epoch(&self, server_seconds: u32, at: Instant) -> EpochObservation {
        let mut state = self.lock();
        let state = &mut *state;
        state.epoch.observe_reporting(
            server_seconds,
            at,
            &mut state.counters,
            "NAT-PMP",
            &self.server,
        )
    }

    fn local_for(&self, requested: IpAddr) -> Result<Option<IpAddr>> {
        match requested {
            IpAddr::V4(v4) if !v4.is_unspecified() => Ok(Some(IpAddr::V4(v4))),
            IpAddr::V4(_) => Ok(self.config.local_address.map(IpAddr::V4)),
            // An IPv6 internal address, `::` included, asks for a pinhole
            // (natkit-core's `MappingRequest`), which NAT-PMP cannot make.
            IpAddr::V6(internal) => Err(Error::NatPmpNoIpv6 { internal }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The error for an answer that is not the success expected.
fn failure(answer: NatPmpAnswer) -> Error {
    match answer {
        NatPmpAnswer::Failure { code, epoch, .. } => Error::NatPmpResult { code, epoch },
        // The exchange matched the opcode, so a success of another shape
        // cannot happen; report it as what it would be.
        other => Error::UnknownOpcode {
            opcode: other.opcode().as_u8(),
        },
    }
}

#[async_trait]
impl PortMapper for NatPmpMapper {
    fn mechanism(&self) -> Mechanism {
        Mechanism::NatPmp
    }

    async fn external_address(&self) -> natkit_core::Result<IpAddr> {
        self.public_address()
            .await
            .map(|a| IpAddr::V4(a.address))
            .map_err(|e| e.into_core(Mechanism::NatPmp))
    }

    async fn map(&self, request: &MappingRequest) -> natkit_core::Result<Mapping> {
        let suggested = request
            .external_port
            .unwrap_or_else(|| request.internal.port());
        self.request_mapping(request, suggested)
            .await
            .map_err(|e| e.into_core(Mechanism::NatPmp))
    }

    async fn renew(
        &self,
        request: &MappingRequest,
        current: &Mapping,
    ) -> natkit_core::Result<Mapping> {
        // Ask for the port we hold, so the gateway extends the same mapping.
        self.request_mapping(request, current.external.port())
            .await
            .map_err(|e| e.into_core(Mechanism::NatPmp))
    }

    async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
        self.delete_mapping(mapping)
            .await
            .map_err(|e| e.into_core(Mechanism::NatPmp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_rfc() {
        let c = NatPmpConfig::default();
        assert_eq!(c.server_port, 5351);
        // RFC 6886's first wait and doubling on every path.
        for plan in [c.retransmit, c.detect, c.delete] {
            assert_eq!(plan.initial, Duration::from_millis(250));
            assert_eq!(plan.jitter, 0.0);
            assert!(plan.is_bounded());
        }
        assert_eq!(c.retransmit, RetransmitPlan::natpmp_steady());
        assert_eq!(c.detect, RetransmitPlan::detect());
        assert_eq!(c.delete, RetransmitPlan::release());
    }

    #[test]
    fn ipv6_internal_address_is_refused() {
        let m = NatPmpMapper::new(Ipv4Addr::LOCALHOST, NatPmpConfig::default());
        assert!(matches!(
            m.local_for("2a0d:88:77:77::2".parse().unwrap()),
            Err(Error::NatPmpNoIpv6 { internal }) if internal == "2a0d:88:77:77::2".parse::<std::net::Ipv6Addr>().unwrap()
        ));
        // `::` asks for a pinhole on the stable address, not for IPv4.
        let e = m.local_for("::".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::NatPmpNoIpv6 { .. }));
        assert_eq!(e.failure_kind(), natkit_core::FailureKind::Unsupported);
        assert_eq!(
            m.local_for("192.168.1.5".parse().unwrap()).unwrap(),
            Some("192.168.1.5".parse().unwrap())
        );
        assert_eq!(m.local_for("0.0.0.0".parse().unwrap()).unwrap(), None);
    }
}
