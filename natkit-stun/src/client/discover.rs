//! External-address discovery against several STUN servers at once, with a consensus.

use async_trait::async_trait;
use natkit_core::{AddressDiscoverer, Evidence, ExternalAddress, FailureKind, Mechanism, Outcome};

use super::plan::RetransmitPlan;
use super::request::BindingRequest;
use super::transaction::{AcceptFrom, Transaction};
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
    plan: RetransmitPlan,
}

impl StunDiscoverer {
    /// A discoverer asking `servers` (`host:port`, `host` for port 3478, or a socket
    /// address) on the [`RetransmitPlan::FAST`] plan.
    pub fn new<I, S>(servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StunDiscoverer {
            servers: servers.into_iter().map(Into::into).collect(),
            plan: RetransmitPlan::FAST,
        }
    }

    /// Uses `plan` for every request.
    pub fn with_plan(mut self, plan: RetransmitPlan) -> Self {
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
        if self.servers.is_empty() {
            return Err(Error::InvalidConfig {
                reason: "no STUN servers to ask",
            });
        }
        self.plan.validate()?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; self.servers.len()];
        let mut v4: Vec<(usize, Transaction)> = Vec::new();
        let mut v6: Vec<(usize, Transaction)> = Vec::new();
        let resolved = super::resolve_all(&self.servers).await;
        for (i, r) in resolved.into_iter().enumerate() {
            match r {
                Ok(addr) => {
                    let t = Transaction::new(
                        &BindingRequest::new(),
                        addr,
                        AcceptFrom::Destination,
                        self.plan,
                        &mut rand::rng(),
                    )?;
                    if addr.is_ipv4() { &mut v4 } else { &mut v6 }.push((i, t));
                }
                Err(why) => outcomes[i] = Some(Outcome::Failed(why.to_string())),
            }
        }
        let (r4, r6) = tokio::join!(run_family(&mut v4), run_family(&mut v6));
        for (r, group) in [(r4, &mut v4), (r6, &mut v6)] {
            for (i, t) in group.iter_mut() {
                outcomes[*i] = Some(match (&r, t.take_outcome()) {
                    (Err(e), _) => Outcome::Failed(e.to_string()),
                    (Ok(()), Some(Ok(resp))) => match resp.mapped_or_error() {
                        Ok(mapped) => Outcome::SawEndpoint(mapped),
                        Err(e) => Outcome::Failed(e.to_string()),
                    },
                    (Ok(()), Some(Err(Error::Timeout { .. })) | None) => Outcome::TimedOut,
                    (Ok(()), Some(Err(e))) => Outcome::Failed(e.to_string()),
                });
            }
        }
        Ok(self
            .servers
            .iter()
            .zip(outcomes)
            .map(|(source, outcome)| Evidence {
                mechanism: Mechanism::Stun,
                source: source.clone(),
                outcome: outcome.unwrap_or(Outcome::TimedOut),
            })
            .collect())
    }
}

/// Runs one address family's transactions on one fresh socket.
async fn run_family(group: &mut [(usize, Transaction)]) -> Result<(), Error> {
    let Some((_, first)) = group.first() else {
        return Ok(());
    };
    let socket = bind_for(first.destination()).await?;
    let mut ts: Vec<Transaction> = group.iter().map(|(_, t)| t.clone()).collect();
    let r = run_transactions(&socket, &mut ts).await;
    for ((_, slot), t) in group.iter_mut().zip(ts) {
        *slot = t;
    }
    r.map(|_| ())
}

#[async_trait]
impl AddressDiscoverer for StunDiscoverer {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Stun
    }

    async fn discover(&self) -> natkit_core::Result<ExternalAddress> {
        self.discover_stun().await.map_err(|e| {
            let kind = match e {
                Error::NoAnswer { .. } => FailureKind::Unavailable,
                Error::Io { .. } => FailureKind::Network,
                Error::Resolve { .. } => FailureKind::Network,
                Error::InvalidConfig { .. } => FailureKind::Unsupported,
                _ => FailureKind::Protocol,
            };
            natkit_core::Error::mechanism(Mechanism::Stun, kind, e)
        })
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
