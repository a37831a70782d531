//! [`PortLease`]: a port opened on the router and kept open, in one call.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use natkit_core::{
    Gateway, KeeperConfig, KeeperEvent, LeaseKeeper, Mapping, MappingId, MappingRequest, Mechanism,
    PortMapper, Protocol, StableIpv6, StableReason, default_gateway, stable_ipv6_for,
};
use natkit_portmap::{AutoMapper, CleanupOptions, CleanupReport, Journal, PortMapConfig};
use tokio::sync::{broadcast, watch};

use crate::Error;
use crate::renumber::{
    ADDRESS_CHECK_INTERVAL, AddressSource, AddressWatch, Held, LEASE_EVENT_CAPACITY, LeaseEvent,
    PinholeFollower, host_source, toward_v6,
};

/// The lease asked for by default: RFC 6886's recommended two hours. The keeper
/// renews at half of what the router grants, so a shorter grant only means more
/// renewals.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7200);

/// A port mapped on the router and kept mapped until [`close`](Self::close) or drop.
///
/// [`open`](Self::open) finds the default gateway, removes what a killed earlier run
/// of this program left on the router (natkit's crash journal), maps the port
/// through the best mechanism the router speaks (PCP, NAT-PMP, then UPnP IGD), and
/// hands the mapping to a [`LeaseKeeper`], which renews it at half its lifetime,
/// re-makes it after a router reboot or an external address change, and deletes it
/// at the end.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit::Error> {
/// use natkit::{PortLease, Protocol};
///
/// let lease = PortLease::open(Protocol::Tcp, 8080).await?;
/// if let Some(m) = lease.external() {
///     println!("reachable at {} via {}", m.external, m.mechanism);
/// }
/// let mut changes = lease.watch();
/// tokio::spawn(async move {
///     while changes.changed().await.is_ok() {
///         println!("now: {:?}", changes.borrow().as_ref().map(|m| m.external));
///     }
/// });
/// lease.close().await?; // deleted on the router, within KeeperConfig::shutdown_timeout
/// # Ok(()) }
/// ```
///
/// Dropping a lease without `close` still deletes the mapping, from the keeper's
/// task, as long as the tokio runtime runs on; `close` waits for the deletion and
/// says whether it worked.
///
/// # IPv6
///
/// IPv6 has no NAT, but the router's firewall drops inbound connections.
/// [`PortLeaseBuilder::ipv6`] opens a *pinhole* instead (PCP, then UPnP IGD's
/// `WANIPv6FirewallControl`; NAT-PMP has no IPv6): for this host's stable global
/// IPv6 address, never a temporary (privacy) one, which would stop working when the
/// OS retires it. [`PortLease::ipv6_address`] says which address was used and why.
/// The pinhole is kept, re-made and cleaned up like a mapping; its
/// [`Mapping::external`] is the host's own address and port.
///
/// When the ISP changes the LAN's IPv6 prefix, the address goes away and a pinhole
/// for it lets nothing in. The lease looks at the host's addresses every
/// [`ADDRESS_CHECK_INTERVAL`](crate::ADDRESS_CHECK_INTERVAL); once the address is
/// gone (or deprecated, with a new stable one beside it) it opens a pinhole for the
/// new stable address, deletes the old one (a router that refuses, the request
/// coming from another address, lets it lapse) and says so in a
/// [`LeaseEvent::Renumbered`](crate::LeaseEvent::Renumbered) on
/// [`PortLease::events`].
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit::Error> {
/// use natkit::{PortLease, Protocol};
///
/// let lease = PortLease::builder(Protocol::Tcp, 8080).ipv6().open().await?;
/// if let Some(choice) = lease.ipv6_address() {
///     println!("pinhole for {choice}"); // "2a0d:…::2 on eth0 (stable, static; …)"
/// }
/// if let Some(m) = lease.external() {
///     assert!(m.is_pinhole());
///     println!("{m}"); // "pinhole [2a0d:…::2]:8080/tcp via PCP"
/// }
/// lease.close().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PortLease {
    keeper: Arc<LeaseKeeper>,
    held: Arc<Mutex<Held>>,
    current: watch::Receiver<Option<Mapping>>,
    gateway: Gateway,
    cleanup: Option<CleanupReport>,
    events: broadcast::Sender<LeaseEvent>,
    /// The address watch of an IPv6 lease for the stable address natkit chose.
    watcher: Option<PinholeFollower>,
}

impl PortLease {
    /// Maps `port` of this host (on the address that routes to the default gateway)
    /// for `protocol`, asking for the same external port, and keeps it.
    pub async fn open(protocol: Protocol, port: u16) -> Result<PortLease, Error> {
        PortLease::builder(protocol, port).open().await
    }

    /// Everything [`open`](Self::open) does, with the choices it makes by default
    /// open to change.
    pub fn builder(protocol: Protocol, port: u16) -> PortLeaseBuilder {
        PortLeaseBuilder {
            protocol,
            port,
            external_port: Some(port),
            lifetime: DEFAULT_LIFETIME,
            description: None,
            gateway: None,
            order: None,
            journal: JournalChoice::Default,
            keeper: KeeperConfig::default(),
            portmap: PortMapConfig::default(),
            family: Family::V4,
            address_check: ADDRESS_CHECK_INTERVAL,
        }
    }

    /// The mapping in force now; `None` while it is lost (the router stopped
    /// answering past the lease; the keeper keeps trying).
    pub fn external(&self) -> Option<Mapping> {
        self.current.borrow().clone()
    }

    /// The mapping as it changes: renewed with another port, re-made after a reboot,
    /// lost, back.
    pub fn watch(&self) -> watch::Receiver<Option<Mapping>> {
        self.current.clone()
    }

    /// The mechanism of the mapping in force, if any.
    pub fn mechanism(&self) -> Option<Mechanism> {
        self.current.borrow().as_ref().map(|m| m.mechanism)
    }

    /// The gateway the port is mapped on.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// For an IPv6 lease: the address the pinhole is for, and why it was chosen
    /// (`None` for an IPv4 lease or an address the caller gave). It changes when
    /// the LAN's prefix does.
    pub fn ipv6_address(&self) -> Option<StableIpv6> {
        self.held().ipv6.clone()
    }

    /// What the lease does on its own beyond renewing (moving an IPv6 pinhole to a
    /// new prefix), from now on.
    pub fn events(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the clean-up of an earlier run's leftovers did (`None` without a journal).
    pub fn cleanup_report(&self) -> Option<&CleanupReport> {
        self.cleanup.as_ref()
    }

    /// Deletes the mapping on the router and stops keeping it; waits at most
    /// [`KeeperConfig::shutdown_timeout`].
    pub async fn close(mut self) -> Result<(), Error> {
        if let Some(watcher) = self.watcher.take() {
            watcher.stop().await;
        }
        let id = self.held().id;
        let Ok(keeper) = Arc::try_unwrap(self.keeper) else {
            return Err(Error::TaskFailed {
                what: "stopping the IPv6 address watch",
            });
        };
        let report = keeper.shutdown().await;
        if let Some(e) = report.task_failed {
            return Err(Error::CloseFailed(Arc::new(e)));
        }
        match report.failed.into_iter().find(|(i, _)| *i == id) {
            Some((_, e)) => Err(Error::CloseFailed(e)),
            None if report.released.contains(&id) => Ok(()),
            // Lost at the time (nothing in force on the router): nothing to delete.
            None => Ok(()),
        }
    }
}

/// Which address the lease is for.
#[derive(Debug, Clone, Copy)]
enum Family {
    V4,
    /// A pinhole; `Some`: for this address, as given.
    V6(Option<Ipv6Addr>),
}

#[derive(Debug, Clone)]
enum JournalChoice {
    Default,
    Dir(PathBuf),
    Off,
}

/// How to open a [`PortLease`]; from [`PortLease::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .open().await"]
pub struct PortLeaseBuilder {
    protocol: Protocol,
    port: u16,
    external_port: Option<u16>,
    lifetime: Duration,
    description: Option<String>,
    gateway: Option<Gateway>,
    order: Option<Vec<Mechanism>>,
    journal: JournalChoice,
    keeper: KeeperConfig,
    portmap: PortMapConfig,
    family: Family,
    address_check: Duration,
}

impl PortLeaseBuilder {
    /// Open an IPv6 pinhole instead of an IPv4 mapping, for this host's stable
    /// global IPv6 address on the gateway's interface (see
    /// [`natkit_core::stable_ipv6_for`]): never a temporary one. Fails with
    /// [`Error::NoStableIpv6`] when there is none. The external port is the
    /// local one (a firewall does not translate).
    pub fn ipv6(mut self) -> Self {
        self.family = Family::V6(None);
        self
    }

    /// How often an IPv6 lease for the stable address natkit chose ([`ipv6`](Self::ipv6))
    /// looks whether the host still has it (default
    /// [`ADDRESS_CHECK_INTERVAL`](crate::ADDRESS_CHECK_INTERVAL)).
    pub fn address_check_interval(mut self, every: Duration) -> Self {
        self.address_check = every.max(Duration::from_millis(100));
        self
    }

    /// Open an IPv6 pinhole for `address`, one of this host's, as given (the
    /// caller's choice, even a temporary address; it is not moved when the prefix
    /// changes).
    pub fn ipv6_address(mut self, address: Ipv6Addr) -> Self {
        self.family = Family::V6(Some(address));
        self
    }

    /// The external port to ask for (default: the same as the local port); `None`
    /// lets the router choose.
    pub fn external_port(mut self, port: Option<u16>) -> Self {
        self.external_port = port;
        self
    }

    /// The lease to ask for (default [`DEFAULT_LIFETIME`]); zero asks for a permanent
    /// mapping where the protocol has one.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The mapping's description on the router (natkit's tag is added to it).
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Map on this gateway instead of the default route's.
    pub fn gateway(mut self, gateway: Gateway) -> Self {
        self.gateway = Some(gateway);
        self
    }

    /// The mechanisms to try, in order (default PCP, NAT-PMP, UPnP).
    pub fn mechanisms(mut self, order: impl IntoIterator<Item = Mechanism>) -> Self {
        self.order = Some(order.into_iter().collect());
        self
    }

    /// Keep the crash journal in `dir` instead of the default directory.
    pub fn journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal = JournalChoice::Dir(dir.into());
        self
    }

    /// No crash journal: a killed process leaves its mapping until the lease ends.
    pub fn without_journal(mut self) -> Self {
        self.journal = JournalChoice::Off;
        self
    }

    /// Renewal, retry and shutdown timing.
    pub fn keeper_config(mut self, config: KeeperConfig) -> Self {
        self.keeper = config;
        self
    }

    /// Per-protocol settings (detection deadline, UPnP discovery, NAT-PMP and PCP
    /// retransmission); its gateway and order are overridden by
    /// [`gateway`](Self::gateway) and [`mechanisms`](Self::mechanisms) when set.
    pub fn port_map_config(mut self, config: PortMapConfig) -> Self {
        self.portmap = config;
        self
    }

    /// Cleans up an earlier run's leftovers, maps the port and starts keeping it.
    pub async fn open(self) -> Result<PortLease, Error> {
        let gateway = match self.gateway.or(self.portmap.gateway.clone()) {
            Some(g) => g,
            // The lookup reads the routing table with blocking calls.
            None => blocking("the default gateway lookup", default_gateway)
                .await?
                .map_err(Error::NoGateway)?,
        };
        let mut config = PortMapConfig {
            gateway: Some(gateway.clone()),
            ..self.portmap
        };
        match self.order.as_deref() {
            // One mechanism named: nothing else could answer instead, so its detection
            // is longer and a lost detection window still leads to a mapping attempt.
            Some(&[only]) => config = config.only(only),
            Some(order) => config = config.with_order(order.to_vec()),
            None => {}
        }
        let journal = match self.journal {
            JournalChoice::Off => None,
            choice => Some(
                blocking("opening the journal", move || match choice {
                    JournalChoice::Dir(dir) => Journal::open(dir),
                    _ => Journal::open_default(),
                })
                .await?
                .map_err(Error::Journal)?,
            ),
        };
        let mut mapper = AutoMapper::new(config);
        let mut cleanup = None;
        if let Some(journal) = journal {
            mapper = mapper.with_journal(journal);
            // A clean-up that fails (the router does not answer) must not keep the
            // port closed: what it could not delete stays in the journal for the
            // next run.
            match mapper.cleanup(CleanupOptions::default()).await {
                Ok(report) => cleanup = Some(report),
                Err(e) => tracing::warn!(error = %e, "cleaning up an earlier run failed"),
            }
        }
        let (internal, ipv6) = match self.family {
            Family::V4 => (IpAddr::V4(gateway.local_address), None),
            Family::V6(Some(address)) => (IpAddr::V6(address), None),
            Family::V6(None) => {
                let choice = ipv6_for(&gateway).await?;
                (IpAddr::V6(choice.address), Some(choice))
            }
        };
        let external_port = match internal {
            IpAddr::V6(_) => Some(self.port),
            IpAddr::V4(_) => self.external_port,
        };
        let mut request = MappingRequest::new(self.protocol, SocketAddr::new(internal, self.port))
            .with_external_port(external_port)
            .with_lifetime(self.lifetime);
        if let Some(d) = self.description {
            request = request.with_description(d);
        }
        let mapper: Arc<dyn PortMapper> = Arc::new(mapper);
        let watch = ipv6.as_ref().map(|choice| {
            (
                AddressWatch::new(
                    choice.address,
                    choice.interface.clone(),
                    self.address_check,
                    tokio::time::Instant::now(),
                ),
                host_source(toward_v6(&gateway)),
            )
        });
        let mut lease =
            PortLease::start(mapper, self.keeper, request, gateway, ipv6, watch).await?;
        lease.cleanup = cleanup;
        Ok(lease)
    }
}

impl PortLease {
    /// Maps `request` through a keeper over `mapper`, follows it, and for an IPv6
    /// lease watches its address (`watch`).
    pub(crate) async fn start(
        mapper: Arc<dyn PortMapper>,
        config: KeeperConfig,
        request: MappingRequest,
        gateway: Gateway,
        ipv6: Option<StableIpv6>,
        watch: Option<(AddressWatch, AddressSource)>,
    ) -> Result<PortLease, Error> {
        let (keeper, events) = LeaseKeeper::new(mapper, config);
        let (id, mapping) = match keeper.add(request.clone()).await {
            Ok(granted) => granted,
            Err(e) => {
                keeper.shutdown().await;
                return Err(Error::Map(e));
            }
        };
        let keeper = Arc::new(keeper);
        let held = Arc::new(Mutex::new(Held { id, ipv6 }));
        let (tx, current) = watch::channel(Some(mapping));
        let tx = Arc::new(tx);
        let (lease_events, _) = broadcast::channel(LEASE_EVENT_CAPACITY);
        tokio::spawn(follow(held.clone(), events, tx.clone()));
        let watcher = watch.map(|(w, source)| {
            PinholeFollower::run(
                w,
                source,
                request,
                keeper.clone(),
                held.clone(),
                tx,
                lease_events.clone(),
            )
        });
        Ok(PortLease {
            keeper,
            held,
            current,
            gateway,
            cleanup: None,
            events: lease_events,
            watcher,
        })
    }
}

/// `f`'s value, run on tokio's blocking pool (`what` it does names it). A panic
/// in `f` is a bug and goes on up to the caller, as if `f` had run here; only a
/// task the runtime cancelled (it is shutting down) is [`Error::TaskFailed`].
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::TaskFailed { what }),
    }
}

/// The stable global IPv6 address on the gateway's interface. The route lookup
/// (for the report's "outbound traffic uses …") goes towards the gateway's global
/// IPv6 address when it has one, else the default route.
async fn ipv6_for(gateway: &Gateway) -> Result<StableIpv6, Error> {
    let toward = toward_v6(gateway);
    let interface = gateway.interface.clone();
    let what = "finding this host's stable IPv6 address";
    let choice = blocking(what, move || stable_ipv6_for(toward, Some(&interface)))
        .await?
        .map_err(Error::NoStableIpv6)?;
    if choice.reason != StableReason::KernelSource {
        tracing::info!(%choice, "IPv6 pinhole for a stable address other than the kernel's source");
    }
    Ok(choice)
}

/// Keeps the lease's watch in step with the keeper's events for its mapping (the
/// one in `held` at the time: a prefix change moves it); ends when the keeper stops
/// (its event channel closes).
async fn follow(
    held: Arc<Mutex<Held>>,
    mut events: natkit_core::KeeperEvents,
    tx: Arc<watch::Sender<Option<Mapping>>>,
) {
    while let Some(event) = events.recv().await {
        let id: MappingId = held.lock().unwrap_or_else(PoisonError::into_inner).id;
        match event {
            KeeperEvent::Mapped { id: i, mapping }
            | KeeperEvent::Renewed { id: i, mapping }
            | KeeperEvent::Remapped { id: i, mapping, .. }
                if i == id =>
            {
                tx.send_replace(Some(mapping));
            }
            KeeperEvent::Lost { id: i, .. } | KeeperEvent::Released { id: i } if i == id => {
                tx.send_replace(None);
            }
            // Missed events are followed by the next renewal's state; nothing to do.
            _ => {}
        }
    }
}
