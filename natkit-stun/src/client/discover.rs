//! External-address discovery against several STUN servers at once, with a consensus.

use async_trait::async_trait;
use natkit_core::{AddressDiscoverer, Evidence, ExternalAddress, Mechanism, Outcome};

use std::net::SocketAddr;
use std::time::Duration;

use super::family::IpFamily;
use super::plan::RtoPlan;
use super::request::BindingRequest;
use super::transaction::{AcceptFrom, BindingTransaction};
use super::udp::{bind_for, run_transactions};
use crate::Error;

/// Asks several STUN servers at once which address they see and forms a consensus
/// ([`natkit_core::consensus`]): the address most servers saw, with every server's
/// answer (agreeing, disagreeing, timed out or failed) as evidence.
///
/// All IPv4 servers are asked from one socket (and all IPv6 servers from another), so
/// the mapped ports are comparable: with an endpoint-independent NAT they agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunDiscoverer {
    servers: Vec<String>,
    plan: RtoPlan,
}

impl StunDiscoverer {
    /// A discoverer asking `servers` (`host:port`, `host` for port 3478, or a socket
    /// address) on the [`RtoPlan::FAST`] plan.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StunDiscoverer {
            servers: servers.into_iter().map(Into::into).collect(),
            plan: RtoPlan::FAST,
        }
    }

    /// Uses `plan` for every request.
    pub fn with_plan(mut self, plan: RtoPlan) -> Self {
        self.plan = plan;
        self
    }

    /// The servers asked.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Asks every server; fails only if the configuration is invalid or no server gave
    /// an address ([`Error::NoAnswer`]).
    pub async fn discover_stun(&self) -> Result<ExternalAddress, Error> {
        let evidence = self.observe().await?;
        natkit_core::consensus(evidence).ok_or(Error::NoAnswer {
            servers: self.servers.len(),
        })
    }

    /// Asks every server and returns one observation per server, in order.
    pub async fn observe(&self) -> Result<Vec<Evidence>, Error> {
        self.check()?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; self.servers.len()];
        let mut v4: Vec<(usize, BindingTransaction)> = Vec::new();
        let mut v6: Vec<(usize, BindingTransaction)> = Vec::new();
        let resolved = super::resolve_all(&self.servers).await;
        for (i, r) in resolved.into_iter().enumerate() {
            match r {
                Ok(addr) => {
                    let t = self.transaction(addr)?;
                    if addr.is_ipv4() { &mut v4 } else { &mut v6 }.push((i, t));
                }
                Err(why) => outcomes[i] = Some(why.to_outcome()),
            }
        }
        let (r4, r6) = tokio::join!(run_family(&mut v4), run_family(&mut v6));
        for (r, group) in [(r4, &mut v4), (r6, &mut v6)] {
            for (i, t) in group.iter_mut() {
                outcomes[*i] = Some(outcome(&r, t));
            }
        }
        Ok(self.evidence(&self.servers, outcomes))
    }

    /// This host's IPv4 and IPv6 external addresses, asked side by side: every server
    /// name is looked up once for both families (A and AAAA), then the servers with an
    /// IPv4 address are asked from one socket and those with an IPv6 address from
    /// another, at once, each family forming its own consensus. A family this host
    /// cannot send in (no address, no route: an IPv4-only network) says so at once,
    /// without waiting for timeouts. Fails only on a bad configuration.
    pub async fn discover_both(&self) -> Result<ExternalAddresses, Error> {
        self.check()?;
        let started = tokio::time::Instant::now();
        let every = super::resolve_all_every(&self.servers).await;
        let (v4, v6) = tokio::join!(
            self.discover_family(IpFamily::V4, &every),
            self.discover_family(IpFamily::V6, &every)
        );
        Ok(ExternalAddresses {
            ipv4: v4?,
            ipv6: v6?,
            elapsed: started.elapsed(),
        })
    }

    /// One family's external address alone, as [`discover_both`](Self::discover_both)
    /// finds it (e.g. the IPv6 one next to another IPv4 discovery).
    pub async fn discover_in(
        &self,
        family: IpFamily,
    ) -> Result<Result<ExternalAddress, NoAddress>, Error> {
        self.check()?;
        let every = super::resolve_all_every(&self.servers).await;
        self.discover_family(family, &every).await
    }

    /// One family's part of [`discover_both`](Self::discover_both).
    async fn discover_family(
        &self,
        family: IpFamily,
        every: &[Result<Vec<SocketAddr>, Error>],
    ) -> Result<Result<ExternalAddress, NoAddress>, Error> {
        let mut names = Vec::new();
        let mut group: Vec<(usize, BindingTransaction)> = Vec::new();
        for (name, all) in self.servers.iter().zip(every) {
            if let Some(&addr) = all.iter().flatten().find(|a| family.has(a)) {
                group.push((names.len(), self.transaction(addr)?));
                names.push(name.clone());
            }
        }
        let Some((_, first)) = group.first() else {
            return Ok(Err(NoAddress::NoServer { family }));
        };
        if let Err(error) = route_to(first.destination()).await {
            return Ok(Err(NoAddress::NoRoute { family, error }));
        }
        let r = run_family(&mut group).await;
        let outcomes = group
            .iter_mut()
            .map(|(_, t)| Some(outcome(&r, t)))
            .collect();
        let evidence = self.evidence(&names, outcomes);
        Ok(
            natkit_core::consensus(evidence.clone())
                .ok_or(NoAddress::NoAnswer { family, evidence }),
        )
    }

    fn check(&self) -> Result<(), Error> {
        if self.servers.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "no STUN servers to ask",
            });
        }
        self.plan.validate()
    }

    fn transaction(&self, addr: SocketAddr) -> Result<BindingTransaction, Error> {
        BindingTransaction::new(
            &BindingRequest::new(),
            addr,
            AcceptFrom::Destination,
            self.plan,
            &mut rand::rng(),
        )
    }

    fn evidence(&self, names: &[String], outcomes: Vec<Option<Outcome>>) -> Vec<Evidence> {
        names
            .iter()
            .zip(outcomes)
            .map(|(source, outcome)| Evidence {
                mechanism: Mechanism::Stun,
                source: source.clone(),
                outcome: outcome.unwrap_or(Outcome::TimedOut),
            })
            .collect()
    }
}

/// Runs one address family's transactions on one fresh socket.
async fn run_family(group: &mut [(usize, BindingTransaction)]) -> Result<(), Error> {
    let Some((_, first)) = group.first() else {
        return Ok(());
    };
    let socket = bind_for(first.destination()).await?;
    let mut ts: Vec<BindingTransaction> = group.iter().map(|(_, t)| t.clone()).collect();
    let r = run_transactions(&socket, &mut ts).await;
    for ((_, slot), t) in group.iter_mut().zip(ts) {
        *slot = t;
    }
    r.map(|_| ())
}

/// What one finished transaction says, given how its family's run ended.
fn outcome(run: &Result<(), Error>, t: &mut BindingTransaction) -> Outcome {
    match (run, t.take_outcome()) {
        (Err(e), _) => e.to_outcome(),
        (Ok(()), Some(Ok(resp))) => match resp.mapped_or_error() {
            Ok(mapped) => Outcome::SawEndpoint(mapped),
            Err(e) => e.to_outcome(),
        },
        (Ok(()), Some(Err(Error::Timeout { .. })) | None) => Outcome::TimedOut,
        (Ok(()), Some(Err(e))) => e.to_outcome(),
    }
}

/// Whether this host can send to `server` at all: a route lookup (a UDP connect, no
/// packet sent), which fails at once without an address or route of its family.
pub(crate) async fn route_to(server: SocketAddr) -> Result<tokio::net::UdpSocket, Error> {
    let no_route = |e: std::io::Error| Error::NoRoute {
        server,
        kind: e.kind(),
    };
    // A host with the family switched off may refuse the socket itself.
    let local: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = tokio::net::UdpSocket::bind(local).await.map_err(no_route)?;
    probe.connect(server).await.map_err(no_route)?;
    Ok(probe)
}

/// This host's public IPv4 and IPv6 addresses, found side by side
/// ([`StunDiscoverer::discover_both`]). Each family has its address, or why there is
/// none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAddresses {
    /// The IPv4 address (behind a NAT: the NAT's), with every server's answer.
    pub ipv4: Result<ExternalAddress, NoAddress>,
    /// The IPv6 address (no NAT: this host's own global address, the one it sends
    /// from), with every server's answer.
    pub ipv6: Result<ExternalAddress, NoAddress>,
    /// How long both took (the slower family's time: they run at once).
    pub elapsed: Duration,
}

impl ExternalAddresses {
    /// The result for `family`.
    pub fn get(&self, family: IpFamily) -> &Result<ExternalAddress, NoAddress> {
        match family {
            IpFamily::V4 => &self.ipv4,
            IpFamily::V6 => &self.ipv6,
        }
    }
}

/// Why a family has no external address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoAddress {
    /// None of the server names has an address of this family (no AAAA record for
    /// IPv6): nothing to ask.
    #[error("no STUN server has an {family} address")]
    NoServer {
        /// The family.
        family: IpFamily,
    },
    /// This host cannot send in this family: no address or no route of it (an
    /// IPv4-only network says this for IPv6). Known at once, without a timeout.
    #[error("no {family} on this host: {error}")]
    NoRoute {
        /// The family.
        family: IpFamily,
        /// What the route lookup said.
        error: Error,
    },
    /// Every server of this family was asked and none gave an address.
    #[error("none of the {} {family} STUN servers gave an address", evidence.len())]
    NoAnswer {
        /// The family.
        family: IpFamily,
        /// Each server's outcome.
        evidence: Vec<Evidence>,
    },
}

/// This host's public IPv4 and IPv6 addresses against
/// [`DEFAULT_SERVERS`](crate::DEFAULT_SERVERS) (their names resolve to both
/// families), on the [`RtoPlan::FAST`] plan: about 1.5 s at most.
pub async fn external_addresses() -> ExternalAddresses {
    let d = StunDiscoverer::new(crate::default_servers());
    match d.discover_both().await {
        Ok(found) => found,
        // The default list and plan are valid; keep the type total all the same.
        Err(error) => ExternalAddresses {
            ipv4: Err(NoAddress::NoRoute {
                family: IpFamily::V4,
                error: error.clone(),
            }),
            ipv6: Err(NoAddress::NoRoute {
                family: IpFamily::V6,
                error,
            }),
            elapsed: Duration::ZERO,
        },
    }
}

#[async_trait]
impl AddressDiscoverer for StunDiscoverer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Stun
    }

    async fn discover(&self) -> natkit_core::Result<ExternalAddress> {
        Ok(self.discover_stun().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_servers_is_a_config_error() {
        let d = StunDiscoverer::new(Vec::<String>::new());
        assert!(matches!(
            d.discover_stun().await,
            Err(Error::InvalidConfig { .. })
        ));
    }
}
