//! This host's address as the internet sees it, and the NAT in the way.

use std::time::Duration;

use natkit_core::{Evidence, ExternalAddress, Mechanism, Outcome};
use natkit_stun::classify::{Classification, ClassifyConfig, classify};
use natkit_stun::client::StunDiscoverer;

use crate::Error;

/// How long [`external_address`] waits for the STUN servers and the router.
pub const ADDRESS_TIMEOUT: Duration = Duration::from_secs(3);

/// This host's public address: what the default STUN servers
/// ([`natkit_stun::DEFAULT_SERVERS`]) see and what the router reports (UPnP,
/// NAT-PMP, PCP), asked at once; the address most of them agree on, with every
/// answer as evidence.
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

    /// Every source's answer, STUN servers first, then the router's mechanisms.
    pub async fn observe(&self) -> Vec<Evidence> {
        let (mut evidence, router) = tokio::join!(self.ask_stun(), self.ask_router());
        evidence.extend(router);
        evidence
    }

    /// The address most sources agree on; [`Error::NoAddress`] if none saw one.
    pub async fn run(&self) -> Result<ExternalAddress, Error> {
        if self.servers.is_empty() && !self.router {
            return Err(Error::InvalidArgument {
                what: "no STUN server to ask and the router not asked",
            });
        }
        let evidence = self.observe().await;
        natkit_core::consensus(evidence.clone()).ok_or(Error::NoAddress { evidence })
    }

    async fn ask_stun(&self) -> Vec<Evidence> {
        if self.servers.is_empty() {
            return Vec::new();
        }
        let each = |outcome: Outcome| -> Vec<Evidence> {
            self.servers
                .iter()
                .map(|s| Evidence {
                    mechanism: Mechanism::Stun,
                    source: s.clone(),
                    outcome: outcome.clone(),
                })
                .collect()
        };
        let discoverer = StunDiscoverer::new(self.servers.iter().cloned());
        match tokio::time::timeout(self.timeout, discoverer.observe()).await {
            Ok(Ok(evidence)) => evidence,
            Ok(Err(e)) => each(e.to_outcome()),
            Err(_) => each(Outcome::TimedOut),
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
                    kind: DiscoveryFailure::Network,
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
            probe_deadline: timeout,
            ..PortMapConfig::default()
        };
        let report = AutoMapper::new(config).probe().await;
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
                kind: DiscoveryFailure::Router(e.kind),
                detail: e.message.clone(),
            },
            (None, None) => Outcome::Failed {
                kind: DiscoveryFailure::Protocol,
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
