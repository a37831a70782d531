//! This host's address as the internet sees it, and the NAT in the way.

use std::time::Duration;

use natkit_core::{DiscoveryFailure, Evidence, ExternalAddress, Mechanism, Outcome};
use natkit_stun::classify::{Classification, ClassifyConfig, classify};
use natkit_stun::client::{IpFamily, NoAddress, StunDiscoverer};

use crate::Error;

/// How long [`external_address`] waits for the STUN servers and the router.
pub const ADDRESS_TIMEOUT: Duration = Duration::from_secs(3);

/// This host's public IPv4 address: what the default STUN servers
/// ([`natkit_stun::DEFAULT_SERVERS`]) see over IPv4 and what the router reports
/// (UPnP, NAT-PMP, PCP), asked at once; the address most of them agree on, with
/// every answer as evidence. [`external_addresses`] finds the IPv6 one beside it.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit::Error> {
/// let a = natkit::external_address().await?;
/// println!("{} ({} of {} sources agree)", a.ip, a.agreeing().count(), a.evidence.len());
/// # Ok(()) }
/// ```
pub async fn external_address() -> Result<ExternalAddress, Error> {
    AddressQuery::new().run().await
}

/// This host's public IPv4 and IPv6 addresses, found side by side, each family
/// by its own consensus: IPv4 as [`external_address`] finds it (STUN servers over
/// IPv4 and the router), IPv6 from the STUN servers' IPv6 addresses alone (there is
/// no NAT on IPv6, so it is this host's own address, the one it sends from; routers
/// report no IPv6 address). A host without IPv6 says so at once
/// ([`NoAddress::NoRoute`]), without waiting for a timeout.
///
/// ```no_run
/// # async fn demo() {
/// use natkit::stun::client::NoAddress;
///
/// let found = natkit::external_addresses().await;
/// match &found.ipv4 {
///     Ok(a) => println!("IPv4 {} ({} sources agree)", a.ip, a.agreeing().count()),
///     Err(e) => println!("IPv4 unknown: {e}"),
/// }
/// match &found.ipv6 {
///     Ok(a) => println!("IPv6 {}", a.ip),
///     Err(NoAddress::NoRoute { .. }) => println!("no IPv6 here"),
///     Err(e) => println!("IPv6 unknown: {e}"),
/// }
/// # }
/// ```
pub async fn external_addresses() -> ExternalAddresses {
    AddressQuery::new().run_both().await
}

/// This host's public IPv4 and IPv6 addresses ([`external_addresses`],
/// [`AddressQuery::run_both`]): each family's address, or why it has none.
#[derive(Debug)]
#[non_exhaustive]
pub struct ExternalAddresses {
    /// The IPv4 address (behind a NAT: the NAT's), the consensus of the STUN
    /// servers' IPv4 addresses and the router; [`Error::NoAddress`] with every
    /// source's answer if none saw one.
    pub ipv4: Result<ExternalAddress, Error>,
    /// The IPv6 address, the consensus of the STUN servers' IPv6 addresses; or why
    /// there is none: no IPv6 on this host ([`NoAddress::NoRoute`]), no server with
    /// an IPv6 address, or no answer.
    pub ipv6: Result<ExternalAddress, NoAddress>,
    /// How long both took (they run at once).
    pub elapsed: Duration,
}

/// The NAT between this host and the internet, tested against the default STUN
/// servers: mapping and filtering behaviour (RFC 4787/5780), the classic name (full
/// cone … symmetric) and the evidence; `inconclusive` with the reason where the
/// servers that answered cannot tell.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit::Error> {
/// let c = natkit::nat_type().await?;
/// println!("{}: {}", c.legacy, c.legacy.meaning());
/// # Ok(()) }
/// ```
pub async fn nat_type() -> Result<Classification, Error> {
    NatTypeQuery::new().run().await
}

/// [`external_address`] with its choices open: the STUN servers, whether to ask the
/// router, the time limit.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until .run().await"]
pub struct AddressQuery {
    servers: Vec<String>,
    router: bool,
    timeout: Duration,
}

impl Default for AddressQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressQuery {
    /// The default servers, the router too, [`ADDRESS_TIMEOUT`].
    pub fn new() -> Self {
        AddressQuery {
            servers: natkit_stun::default_servers(),
            router: true,
            timeout: ADDRESS_TIMEOUT,
        }
    }

    /// Ask these STUN servers (`host:port`) instead of the defaults.
    pub fn servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Also ask the router for its external address (default on; needs the
    /// `portmap` feature).
    pub fn router(mut self, ask: bool) -> Self {
        self.router = ask;
        self
    }

    /// The longest wait for any one source.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Every source's answer about the IPv4 address: the STUN servers (asked at
    /// their IPv4 addresses) first, then the router's mechanisms.
    pub async fn observe(&self) -> Vec<Evidence> {
        let (stun, router) = tokio::join!(self.ask_stun(&[IpFamily::V4]), self.ask_router());
        let mut evidence = stun.ipv4;
        evidence.extend(router);
        evidence
    }

    /// The IPv4 address most sources agree on; [`Error::NoAddress`] if none saw
    /// one. A server's IPv6 address is not asked: it would see this host's own
    /// IPv6 address, another question ([`run_both`](Self::run_both)).
    pub async fn run(&self) -> Result<ExternalAddress, Error> {
        self.check()?;
        v4_consensus(self.observe().await)
    }

    /// The IPv4 and the IPv6 address side by side ([`external_addresses`]), each
    /// family by its own consensus: the STUN servers' IPv4 addresses and the router
    /// for IPv4, their IPv6 addresses for IPv6, all asked at once.
    pub async fn run_both(&self) -> ExternalAddresses {
        let started = tokio::time::Instant::now();
        if let Err(e) = self.check() {
            return ExternalAddresses {
                ipv4: Err(e),
                ipv6: Err(NoAddress::NoServer {
                    family: IpFamily::V6,
                }),
                elapsed: started.elapsed(),
            };
        }
        let (stun, router) = tokio::join!(self.ask_stun(&IpFamily::BOTH), self.ask_router());
        let mut ipv4 = stun.ipv4;
        ipv4.extend(router);
        ExternalAddresses {
            ipv4: v4_consensus(ipv4),
            ipv6: stun.ipv6,
            elapsed: started.elapsed(),
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.servers.is_empty() && !self.router {
            return Err(Error::InvalidArgument {
                what: "no STUN server to ask and the router not asked",
            });
        }
        Ok(())
    }

    /// The STUN servers' answers in `families`, each family on its own (one name is
    /// looked up once for both).
    async fn ask_stun(&self, families: &[IpFamily]) -> StunAnswers {
        let mut answers = StunAnswers {
            ipv4: Vec::new(),
            ipv6: Err(NoAddress::NoServer {
                family: IpFamily::V6,
            }),
        };
        if self.servers.is_empty() {
            return answers;
        }
        let discoverer = StunDiscoverer::new(self.servers.iter().cloned());
        let found = async {
            match families {
                [IpFamily::V4] => discoverer.discover_in(IpFamily::V4).await.map(|v4| {
                    let none = Err(NoAddress::NoServer {
                        family: IpFamily::V6,
                    });
                    (v4, none)
                }),
                _ => discoverer.discover_both().await.map(|b| (b.ipv4, b.ipv6)),
            }
        };
        let (v4, v6) = match tokio::time::timeout(self.timeout, found).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                let outcome = e.to_outcome();
                (
                    self.failed(IpFamily::V4, &outcome),
                    self.failed(IpFamily::V6, &outcome),
                )
            }
            Err(_) => (
                self.failed(IpFamily::V4, &Outcome::TimedOut),
                self.failed(IpFamily::V6, &Outcome::TimedOut),
            ),
        };
        answers.ipv4 = self.stun_evidence(v4);
        if families.contains(&IpFamily::V6) {
            answers.ipv6 = v6;
        }
        answers
    }

    /// `outcome` for every server, as `family`'s answer.
    fn failed(&self, family: IpFamily, outcome: &Outcome) -> Result<ExternalAddress, NoAddress> {
        Err(NoAddress::NoAnswer {
            family,
            evidence: self.each(|| outcome.clone()),
        })
    }

    /// One piece of evidence per server.
    fn each(&self, outcome: impl Fn() -> Outcome) -> Vec<Evidence> {
        self.servers
            .iter()
            .map(|s| Evidence {
                mechanism: Mechanism::Stun,
                source: s.clone(),
                outcome: outcome(),
            })
            .collect()
    }

    /// The STUN servers' part of the IPv4 evidence: their answers, or why none
    /// could be asked, as each server's outcome.
    fn stun_evidence(&self, found: Result<ExternalAddress, NoAddress>) -> Vec<Evidence> {
        match found {
            Ok(a) => a.evidence,
            Err(NoAddress::NoAnswer { evidence, .. }) => evidence,
            Err(NoAddress::NoRoute { error, .. }) => self.each(|| error.to_outcome()),
            Err(e) => self.each(|| Outcome::Failed {
                kind: DiscoveryFailure::Unresolved {
                    reason: "no IPv4 address".into(),
                },
                detail: e.to_string(),
            }),
        }
    }

    #[cfg(feature = "portmap")]
    async fn ask_router(&self) -> Vec<Evidence> {
        if !self.router {
            return Vec::new();
        }
        router::observe(self.timeout).await
    }

    #[cfg(not(feature = "portmap"))]
    async fn ask_router(&self) -> Vec<Evidence> {
        Vec::new()
    }
}

/// What the STUN servers said, per family.
struct StunAnswers {
    ipv4: Vec<Evidence>,
    ipv6: Result<ExternalAddress, NoAddress>,
}

fn v4_consensus(evidence: Vec<Evidence>) -> Result<ExternalAddress, Error> {
    natkit_core::consensus(evidence.clone()).ok_or(Error::NoAddress { evidence })
}

#[cfg(feature = "portmap")]
mod router {
    use std::time::Duration;

    use natkit_core::{
        DiscoveryFailure, Evidence, FailureKind, Mechanism, Outcome, default_gateway,
    };
    use natkit_portmap::{AutoMapper, MechanismReport, PortMapConfig};

    /// The router's own reports, one per mechanism.
    pub(super) async fn observe(timeout: Duration) -> Vec<Evidence> {
        let failed = |detail: String| {
            vec![Evidence {
                mechanism: Mechanism::Upnp,
                source: "default gateway".into(),
                outcome: Outcome::Failed {
                    kind: DiscoveryFailure::Other(FailureKind::Network),
                    detail,
                },
            }]
        };
        let gateway = match tokio::task::spawn_blocking(default_gateway).await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return failed(e.to_string()),
            Err(_) => return failed("the default gateway lookup did not finish".into()),
        };
        let source = gateway.address.to_string();
        let config = PortMapConfig {
            gateway: Some(gateway),
            detect_deadline: timeout,
            ..PortMapConfig::default()
        };
        let report = AutoMapper::new(config).detect().await;
        report
            .mechanisms
            .iter()
            .map(|m| Evidence {
                mechanism: m.mechanism,
                source: source.clone(),
                outcome: outcome(m),
            })
            .collect()
    }

    fn outcome(m: &MechanismReport) -> Outcome {
        match (&m.external_address, &m.error) {
            (Some(ip), _) => Outcome::SawAddress(*ip),
            (None, Some(e)) if e.kind == FailureKind::Timeout => Outcome::TimedOut,
            (None, Some(e)) => Outcome::Failed {
                kind: DiscoveryFailure::Other(e.kind),
                detail: e.message.clone(),
            },
            (None, None) => Outcome::Failed {
                kind: DiscoveryFailure::Other(FailureKind::Protocol),
                detail: "no external address".into(),
            },
        }
    }
}

/// [`nat_type`] with its choices open: the servers, hairpinning, the binding
/// lifetime, every knob of [`ClassifyConfig`].
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until .run().await"]
pub struct NatTypeQuery {
    config: ClassifyConfig,
}

impl Default for NatTypeQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl NatTypeQuery {
    /// Against [`natkit_stun::DEFAULT_SERVERS`], hairpinning included.
    pub fn new() -> Self {
        let mut config = ClassifyConfig::new(natkit_stun::default_servers());
        config.hairpinning = true;
        NatTypeQuery { config }
    }

    /// Test against these servers (`host:port`) instead.
    pub fn servers<I, S>(mut self, servers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// Whether to test hairpinning (default on).
    pub fn hairpinning(mut self, on: bool) -> Self {
        self.config.hairpinning = on;
        self
    }

    /// Any other setting.
    pub fn config(mut self, config: ClassifyConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs the tests.
    pub async fn run(&self) -> Result<Classification, Error> {
        classify(self.config.clone()).await.map_err(Error::Stun)
    }
}
