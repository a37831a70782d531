//! An IPv6 lease across a prefix change: when the ISP renumbers the LAN, the
//! host's addresses in the old prefix are deprecated and then removed, and a
//! pinhole for one of them lets nothing in any more, however faithfully it is
//! renewed. [`AddressWatch`] (no I/O) decides, from a look at the host's addresses
//! every [`ADDRESS_CHECK_INTERVAL`], when the pinhole's address is no longer
//! usable and which stable address replaces it; [`keep_address`] runs it: opens
//! the pinhole for the new address, then deletes the old one.
//!
//! Deleting the old pinhole may be refused: UPnP's DeletePinhole must come from the
//! pinhole's own address (606 otherwise), which the host no longer has. It is then
//! left to expire on the router at the end of its lease.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use natkit_core::addresses::{
    HostIpv6, Ipv6AddressError, Ipv6Kind, ROUTE_LOOKUP_V6, choose_stable_ipv6, host_ipv6_addresses,
    kernel_source_v6,
};
use natkit_core::{
    AddressScope, Gateway, LeaseKeeper, Mapping, MappingId, MappingRequest, StableIpv6,
};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// How often an IPv6 lease for this host's stable address looks whether the
/// address is still there (a read of `/proc/net/if_inet6` on Linux).
pub const ADDRESS_CHECK_INTERVAL: Duration = Duration::from_secs(15);

/// What a [`PortLease`](crate::PortLease) did on its own, beyond renewing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum LeaseEvent {
    /// The host lost the pinhole's address (the LAN's IPv6 prefix changed), and
    /// the lease now holds a pinhole for another stable address.
    Renumbered {
        /// The address the old pinhole was for.
        old: Ipv6Addr,
        /// The address chosen now, and why.
        new: Box<StableIpv6>,
        /// The pinhole now in force.
        mapping: Box<Mapping>,
        /// Whether the old pinhole was deleted on the router; if not (a router
        /// that takes deletions only from the pinhole's own address), why: it
        /// lapses at the end of its lease.
        old_deleted: Result<(), Arc<natkit_core::Error>>,
    },
    /// The pinhole's address is gone and no pinhole could be opened for the stable
    /// address that replaces it (or there is none yet); tried again at the next
    /// check.
    RenumberFailed {
        /// The address the pinhole is for.
        old: Ipv6Addr,
        /// What went wrong.
        error: Arc<RenumberError>,
    },
}

/// Why a lease whose IPv6 address is gone still holds its old pinhole
/// ([`LeaseEvent::RenumberFailed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenumberError {
    /// No stable address replaces the one gone (none at all, or only temporary
    /// ones, which a pinhole never uses).
    #[error("no stable IPv6 address replaces it: {0}")]
    NoReplacement(#[source] Ipv6AddressError),
    /// Reading this host's addresses panicked (a bug); the next look tries
    /// again.
    #[error("reading this host's IPv6 addresses panicked: {0}")]
    ReadPanicked(#[source] tokio::task::JoinError),
    /// The router did not open the pinhole for the address that replaces it.
    #[error("opening the pinhole for {address} failed: {source}")]
    Open {
        /// The address that replaces the old one.
        address: Ipv6Addr,
        /// The mechanism's error.
        #[source]
        source: natkit_core::Error,
    },
}

/// What one look at the host's addresses says about the pinhole's address.
#[derive(Debug)]
pub(crate) enum Renumbering {
    /// The address is there and usable: nothing to do.
    Held,
    /// The address is gone or deprecated, and this stable address replaces it.
    Move(StableIpv6),
    /// The address is gone or deprecated, and no stable address replaces it yet.
    NoReplacement(Ipv6AddressError),
}

/// The rule: when a pinhole's address needs replacing, and by what. No I/O; the
/// caller reads the host's addresses when [`due`](Self::due) says so.
#[derive(Debug, Clone)]
pub(crate) struct AddressWatch {
    held: Ipv6Addr,
    interface: String,
    interval: Duration,
    next: Instant,
}

impl AddressWatch {
    /// Watches `held` on `interface`, first looking `interval` after `now`.
    pub(crate) fn new(held: Ipv6Addr, interface: String, interval: Duration, now: Instant) -> Self {
        AddressWatch {
            held,
            interface,
            interval,
            next: now + interval,
        }
    }

    /// When to look next.
    pub(crate) fn due(&self) -> Instant {
        self.next
    }

    /// The address the pinhole is for.
    pub(crate) fn held(&self) -> Ipv6Addr {
        self.held
    }

    /// A look at the host's addresses at `now` (`kernel_source`: the kernel's
    /// source towards the internet, which [`choose_stable_ipv6`] prefers).
    ///
    /// The address needs replacing when it is no longer on the host, or is
    /// deprecated (an old prefix on its way out: it still receives, but a new
    /// stable address has taken its place). A deprecated address with nothing to
    /// replace it is kept: the pinhole still works until the address goes.
    pub(crate) fn look(
        &mut self,
        now: Instant,
        host: Result<&[HostIpv6], &Ipv6AddressError>,
        kernel_source: Option<Ipv6Addr>,
    ) -> Renumbering {
        self.skip(now);
        let host = match host {
            Ok(host) => host,
            // Cannot tell: keep what works rather than move on a failed read.
            Err(_) => return Renumbering::Held,
        };
        let held = host.iter().find(|a| a.address == self.held);
        let deprecated = match held {
            Some(a) if a.kind != Ipv6Kind::Deprecated => return Renumbering::Held,
            Some(_) => true,
            None => false,
        };
        match choose_stable_ipv6(host, &self.interface, kernel_source) {
            Ok(new) if new.address != self.held => Renumbering::Move(new),
            Ok(_) => Renumbering::Held,
            Err(_) if deprecated => Renumbering::Held,
            Err(e) => Renumbering::NoReplacement(e),
        }
    }

    /// No look at `now` (the addresses could not be read): the next one an
    /// interval later.
    pub(crate) fn skip(&mut self, now: Instant) {
        self.next = now + self.interval;
    }

    /// The pinhole now is for `address`.
    pub(crate) fn moved(&mut self, address: Ipv6Addr) {
        self.held = address;
    }
}

/// Where [`keep_address`] reads the host's addresses: the listing and the kernel's
/// source towards the internet. Blocking; called on a blocking thread.
pub(crate) type AddressSource =
    Arc<dyn Fn() -> (Result<Vec<HostIpv6>, Ipv6AddressError>, Option<Ipv6Addr>) + Send + Sync>;

/// The lease's state that a renumbering changes.
#[derive(Debug)]
pub(crate) struct Held {
    /// The keeper's handle for the pinhole in force.
    pub(crate) id: MappingId,
    /// The address chosen, and why.
    pub(crate) ipv6: Option<StableIpv6>,
}

/// Runs `watch` for the lease `held` (first request `request`) until the keeper
/// stops: at each check, moves the pinhole to the replacement address.
async fn keep_address(
    mut watch: AddressWatch,
    request: MappingRequest,
    keeper: Arc<LeaseKeeper>,
    held: Arc<Mutex<Held>>,
    current: Arc<watch::Sender<Option<Mapping>>>,
    events: broadcast::Sender<LeaseEvent>,
    source: AddressSource,
) {
    let mut warned: Option<String> = None;
    loop {
        tokio::time::sleep_until(watch.due()).await;
        let read = source.clone();
        let old = watch.held();
        let (host, kernel_source) = match tokio::task::spawn_blocking(move || read()).await {
            Ok(read) => read,
            // A bug in reading the address table: said, and tried at the next look.
            Err(e) if e.is_panic() => {
                watch.skip(Instant::now());
                let error = Arc::new(RenumberError::ReadPanicked(e));
                tracing::error!(%old, %error, "the IPv6 address watch");
                let _ = events.send(LeaseEvent::RenumberFailed { old, error });
                continue;
            }
            Err(_) => return, // the runtime is shutting down
        };
        let new = match watch.look(
            Instant::now(),
            host.as_ref().map(Vec::as_slice),
            kernel_source,
        ) {
            Renumbering::Held => continue,
            Renumbering::Move(new) => new,
            Renumbering::NoReplacement(e) => {
                let error = Arc::new(RenumberError::NoReplacement(e));
                warn_once(&mut warned, old, &error);
                let _ = events.send(LeaseEvent::RenumberFailed { old, error });
                continue;
            }
        };
        let moved = MappingRequest {
            internal: SocketAddr::new(new.address.into(), request.internal.port()),
            ..request.clone()
        };
        let (id, mapping) = match keeper.add(moved).await {
            Ok(granted) => granted,
            Err(natkit_core::Error::KeeperClosed) => return,
            Err(source) => {
                let error = Arc::new(RenumberError::Open {
                    address: new.address,
                    source,
                });
                warn_once(&mut warned, old, &error);
                let _ = events.send(LeaseEvent::RenumberFailed { old, error });
                continue;
            }
        };
        let old_id = {
            let mut h = held
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let old_id = h.id;
            h.id = id;
            h.ipv6 = Some(new.clone());
            old_id
        };
        watch.moved(new.address);
        warned = None;
        current.send_replace(Some(mapping.clone()));
        let old_deleted = keeper.remove(old_id).await;
        match &old_deleted {
            Ok(()) => tracing::info!(%old, new = %new, "IPv6 prefix changed: pinhole moved"),
            Err(e) => tracing::info!(%old, new = %new, error = %e,
                "IPv6 prefix changed: pinhole moved; the old one lapses at the end of its lease"),
        }
        let _ = events.send(LeaseEvent::Renumbered {
            old,
            new: Box::new(new),
            mapping: Box::new(mapping),
            old_deleted,
        });
    }
}

/// Logs a failure to move the pinhole from `old`: a warning the first time,
/// and at debug level while the same failure comes back at each later look (an
/// address with no successor for hours); `warned` is the last one warned of.
fn warn_once(warned: &mut Option<String>, old: Ipv6Addr, error: &RenumberError) {
    let text = error.to_string();
    if warned.as_ref() == Some(&text) {
        tracing::debug!(%old, %error, "the IPv6 pinhole's address is gone (still)");
    } else {
        tracing::warn!(%old, %error, "the IPv6 pinhole's address is gone");
        *warned = Some(text);
    }
}

/// Where the kernel's source address is looked up: the gateway's global IPv6
/// address when it has one, else the default route.
pub(crate) fn toward_v6(gateway: &Gateway) -> Ipv6Addr {
    gateway
        .address_v6
        .filter(|a| AddressScope::of(IpAddr::V6(*a)).is_global())
        .unwrap_or(ROUTE_LOOKUP_V6)
}

/// This host's addresses, and the kernel's source towards `toward`.
pub(crate) fn host_source(toward: Ipv6Addr) -> AddressSource {
    Arc::new(move || {
        (
            host_ipv6_addresses(),
            kernel_source_v6(toward).ok().flatten(),
        )
    })
}

/// A task that ends with its handle.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many unread [`LeaseEvent`]s a listener may fall behind by; they come once
/// per prefix change, so only a listener that never reads loses any.
pub(crate) const LEASE_EVENT_CAPACITY: usize = 16;

/// Moves an IPv6 pinhole that a [`LeaseKeeper`] of your own keeps to this host's
/// new stable address when the LAN's prefix changes, as a
/// [`PortLease`](crate::PortLease) does for its pinhole; for programs that run
/// the keeper themselves (`natkit map --ipv6` does).
///
/// Every check interval it reads this host's addresses. When the pinhole's
/// address is gone, or deprecated with another stable address in its place, it
/// asks the keeper for a pinhole for the new address, then removes the old one.
/// The router may refuse that deletion (UPnP's DeletePinhole must come from the
/// pinhole's own address, which the host no longer has): the old pinhole then
/// lapses at the end of its lease. Each move, or each failed try, is a
/// [`LeaseEvent`]. It stops when [`stop`](Self::stop)ped or dropped, or when the
/// keeper stops.
#[derive(Debug)]
pub struct PinholeFollower {
    task: AbortOnDrop,
    held: Arc<Mutex<Held>>,
    events: broadcast::Sender<LeaseEvent>,
}

impl PinholeFollower {
    /// Follows the pinhole `id` that `keeper` made from `request` for `address`
    /// (this host's stable address, from
    /// [`stable_ipv6_for`](natkit_core::stable_ipv6_for)), looking every `every`
    /// (the default [`ADDRESS_CHECK_INTERVAL`]). `gateway`, when known, steers
    /// the kernel's source lookup as it steered the first choice. Runs on the
    /// current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(
        keeper: Arc<LeaseKeeper>,
        id: MappingId,
        request: MappingRequest,
        address: StableIpv6,
        gateway: Option<&Gateway>,
        every: Duration,
    ) -> PinholeFollower {
        let toward = gateway.map_or(ROUTE_LOOKUP_V6, toward_v6);
        Self::start(keeper, id, request, address, every, host_source(toward))
    }

    /// [`spawn`](Self::spawn), reading the host's addresses from `source`.
    pub(crate) fn start(
        keeper: Arc<LeaseKeeper>,
        id: MappingId,
        request: MappingRequest,
        address: StableIpv6,
        every: Duration,
        source: AddressSource,
    ) -> PinholeFollower {
        let watch = AddressWatch::new(
            address.address,
            address.interface.clone(),
            every,
            Instant::now(),
        );
        let held = Arc::new(Mutex::new(Held {
            id,
            ipv6: Some(address),
        }));
        let (events, _) = broadcast::channel(LEASE_EVENT_CAPACITY);
        // The pinhole in force travels in each event; this watch has no reader.
        let (current, _) = watch::channel(None);
        Self::run(
            watch,
            source,
            request,
            keeper,
            held,
            Arc::new(current),
            events,
        )
    }

    /// Runs `watch` (reading `source`) for the lease whose state is `held`
    /// (first request `request`), keeping `current` up to date and sending
    /// `events`: shared with a [`PortLease`](crate::PortLease) that follows the
    /// same keeper.
    pub(crate) fn run(
        watch: AddressWatch,
        source: AddressSource,
        request: MappingRequest,
        keeper: Arc<LeaseKeeper>,
        held: Arc<Mutex<Held>>,
        current: Arc<watch::Sender<Option<Mapping>>>,
        events: broadcast::Sender<LeaseEvent>,
    ) -> PinholeFollower {
        let task = AbortOnDrop(tokio::spawn(keep_address(
            watch,
            request,
            keeper,
            held.clone(),
            current,
            events.clone(),
            source,
        )));
        PinholeFollower { task, held, events }
    }

    /// What it does from now on.
    pub fn events(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    /// The keeper's id of the pinhole now in force.
    pub fn id(&self) -> MappingId {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).id
    }

    /// The address the pinhole now in force is for, and why it was chosen.
    pub fn address(&self) -> Option<StableIpv6> {
        (self.held.lock().unwrap_or_else(PoisonError::into_inner))
            .ipv6
            .clone()
    }

    /// Stops following, and waits until the task has let go of the keeper (so
    /// that the caller's `Arc` is the last one and the keeper can shut down).
    pub async fn stop(self) {
        let mut task = self.task;
        task.0.abort();
        let _ = (&mut task.0).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use async_trait::async_trait;
    use natkit_core::addresses::Ipv6Flags;
    use natkit_core::{
        FailureKind, Gateway, KeeperConfig, Mechanism, PortMapper, Protocol, StableReason,
    };

    use super::*;
    use crate::PortLease;

    const IFACE: &str = "eth0";
    const OLD: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x77, 0, 0, 0, 2);
    const NEW: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x78, 0, 0, 0, 2);
    const TEMP: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x78, 0x1234, 0, 0, 9);
    const EVERY: Duration = Duration::from_secs(15);

    fn addr(address: Ipv6Addr, flags: u8) -> HostIpv6 {
        let flags = Some(Ipv6Flags(flags));
        HostIpv6 {
            address,
            prefix_len: 64,
            interface: Some(IFACE.into()),
            if_index: 2,
            kind: Ipv6Kind::of(address, flags),
            flags,
        }
    }

    fn stable(address: Ipv6Addr) -> HostIpv6 {
        addr(address, Ipv6Flags::PERMANENT)
    }

    fn look(host: &[HostIpv6]) -> Renumbering {
        let mut w = AddressWatch::new(OLD, IFACE.into(), EVERY, Instant::now());
        w.look(Instant::now(), Ok(host), None)
    }

    #[test]
    fn the_address_is_replaced_only_when_gone_or_deprecated_with_a_successor() {
        assert!(matches!(
            look(&[stable(OLD), stable(NEW)]),
            Renumbering::Held
        ));
        let Renumbering::Move(to) = look(&[stable(NEW), addr(TEMP, Ipv6Flags::TEMPORARY)]) else {
            panic!("gone: moves")
        };
        assert_eq!((to.address, to.reason), (NEW, StableReason::Static));
        // The old prefix deprecated (preferred lifetime 0), the new one there.
        let old_deprecated = addr(OLD, Ipv6Flags::PERMANENT | Ipv6Flags::DEPRECATED);
        assert!(matches!(
            look(&[old_deprecated.clone(), stable(NEW)]),
            Renumbering::Move(StableIpv6 { address: NEW, .. })
        ));
        // Deprecated with nothing to take its place: it still receives; keep it.
        assert!(matches!(
            look(std::slice::from_ref(&old_deprecated)),
            Renumbering::Held
        ));
        // Gone, and only a temporary address: never a pinhole for that.
        assert!(matches!(
            look(&[addr(TEMP, Ipv6Flags::TEMPORARY)]),
            Renumbering::NoReplacement(Ipv6AddressError::NoStableAddress { temporary: 1, .. })
        ));
        // A failed read is no reason to move.
        let mut w = AddressWatch::new(OLD, IFACE.into(), EVERY, Instant::now());
        let e = Ipv6AddressError::Io(std::io::Error::other("read"));
        assert!(matches!(
            w.look(Instant::now(), Err(&e), None),
            Renumbering::Held
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn looks_come_every_interval_from_the_last() {
        let t0 = Instant::now();
        let mut w = AddressWatch::new(OLD, IFACE.into(), EVERY, t0);
        assert_eq!(w.due(), t0 + EVERY);
        let late = t0 + EVERY + Duration::from_secs(4);
        w.look(late, Ok(&[stable(OLD)]), None);
        assert_eq!(w.due(), late + EVERY);
    }

    /// A router that, like miniupnpd, takes a pinhole's deletion only from the
    /// pinhole's own address: one the host no longer has is refused.
    #[derive(Default)]
    struct Router {
        host: Mutex<Vec<HostIpv6>>,
        /// How many reads of the host's addresses panic, as a bug would.
        panicking_reads: Mutex<u32>,
        log: Mutex<Vec<(&'static str, Ipv6Addr, Duration)>>,
        t0: Mutex<Option<Instant>>,
    }

    impl Router {
        fn note(&self, op: &'static str, m: SocketAddr) -> Ipv6Addr {
            let IpAddr::V6(a) = m.ip() else {
                panic!("a pinhole: {m}")
            };
            let t0 = self.t0.lock().unwrap().expect("started");
            self.log.lock().unwrap().push((op, a, Instant::now() - t0));
            a
        }

        fn has(&self, a: Ipv6Addr) -> bool {
            self.host.lock().unwrap().iter().any(|h| h.address == a)
        }

        fn ops(&self, op: &str, a: Ipv6Addr) -> Vec<Duration> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(o, x, _)| *o == op && *x == a)
                .map(|(_, _, t)| *t)
                .collect()
        }
    }

    fn grant(request: &MappingRequest) -> Mapping {
        Mapping::pinhole(
            Mechanism::Upnp,
            request.protocol,
            request.internal,
            request.lifetime,
            Instant::now().into_std(),
        )
    }

    /// The keeper's handle on the router.
    struct Mapper(Arc<Router>);

    #[async_trait]
    impl PortMapper for Mapper {
        fn mechanism(&self) -> Mechanism {
            Mechanism::Upnp
        }
        async fn external_address(&self) -> natkit_core::Result<IpAddr> {
            Ok(IpAddr::V4(Ipv4Addr::new(88, 77, 66, 2)))
        }
        async fn map(&self, request: &MappingRequest) -> natkit_core::Result<Mapping> {
            self.0.note("map", request.internal);
            Ok(grant(request))
        }
        async fn renew(
            &self,
            request: &MappingRequest,
            _current: &Mapping,
        ) -> natkit_core::Result<Mapping> {
            self.0.note("renew", request.internal);
            Ok(grant(request))
        }
        async fn unmap(&self, mapping: &Mapping) -> natkit_core::Result<()> {
            let a = self.0.note("unmap", mapping.internal);
            if self.0.has(a) {
                Ok(())
            } else {
                Err(natkit_core::Error::mechanism(
                    Mechanism::Upnp,
                    FailureKind::Refused,
                    "DeletePinhole: UPnP error 606 Action not authorized",
                ))
            }
        }
    }

    async fn lease_on(router: &Arc<Router>) -> PortLease {
        *router.t0.lock().unwrap() = Some(Instant::now());
        let request = MappingRequest::new(Protocol::Tcp, SocketAddr::new(OLD.into(), 8080))
            .with_lifetime(Duration::from_secs(120));
        let reader = router.clone();
        let source: AddressSource = Arc::new(move || {
            let panics = {
                let mut left = reader.panicking_reads.lock().unwrap();
                let panics = *left > 0;
                *left = left.saturating_sub(1);
                panics
            };
            assert!(!panics, "a bug in reading the addresses");
            (Ok(reader.host.lock().unwrap().clone()), None)
        });
        let choice = choose_stable_ipv6(&router.host.lock().unwrap(), IFACE, None).expect("stable");
        assert_eq!(choice.address, OLD);
        let watch = AddressWatch::new(OLD, IFACE.into(), EVERY, Instant::now());
        let gateway = Gateway {
            interface: IFACE.into(),
            address: Ipv4Addr::new(192, 168, 77, 1),
            local_address: Ipv4Addr::new(192, 168, 77, 2),
            prefix_len: 24,
            address_v6: None,
            local_v6: vec![OLD],
        };
        PortLease::start(
            Arc::new(Mapper(router.clone())),
            KeeperConfig::default(),
            request,
            gateway,
            Some(choice),
            Some((watch, source)),
        )
        .await
        .expect("opened")
    }

    /// The ISP moves the LAN from 2a0d:88:77:77::/64 to 2a0d:88:77:78::/64 8 s
    /// after the lease opened. At the next look (15 s) the lease opens a pinhole for
    /// the new stable address, tries to delete the old one (refused: the host no
    /// longer has its address) and says so; from then on only the new one is
    /// renewed, and closing deletes it.
    #[tokio::test(start_paused = true)]
    async fn a_new_prefix_moves_the_pinhole_at_the_next_look() {
        let router = Arc::new(Router::default());
        *router.host.lock().unwrap() = vec![stable(OLD), addr(TEMP, Ipv6Flags::TEMPORARY)];
        let lease = lease_on(&router).await;
        let mut events = lease.events();
        tokio::time::sleep(Duration::from_secs(8)).await;
        *router.host.lock().unwrap() = vec![stable(NEW), addr(TEMP, Ipv6Flags::TEMPORARY)];
        let event = events.recv().await.expect("an event");
        let LeaseEvent::Renumbered {
            old,
            new,
            mapping,
            old_deleted,
        } = event
        else {
            panic!("renumbered: {event:?}")
        };
        assert_eq!((old, new.address), (OLD, NEW));
        assert_eq!(mapping.internal, SocketAddr::new(NEW.into(), 8080));
        let refused = old_deleted.as_ref().expect_err("refused");
        assert_eq!(refused.failure_kind(), Some(FailureKind::Refused));
        assert!(refused.to_string().contains("606"), "{refused}");
        assert_eq!(router.ops("map", NEW), [EVERY]);
        assert_eq!(router.ops("unmap", OLD), [EVERY]);
        assert_eq!(
            lease.external().expect("in force").internal,
            mapping.internal
        );
        assert_eq!(lease.ipv6_address().expect("choice").address, NEW);

        // Renewed at half the 120 s lease: the new pinhole only.
        tokio::time::sleep(Duration::from_secs(130)).await;
        assert!(router.ops("renew", OLD).is_empty());
        assert_eq!(
            router.ops("renew", NEW),
            [
                EVERY + Duration::from_secs(60),
                EVERY + Duration::from_secs(120)
            ]
        );
        lease.close().await.expect("closed");
        assert_eq!(router.ops("unmap", NEW).len(), 1);
    }

    /// A keeper of the caller's own (as `natkit map` runs one) with a
    /// `PinholeFollower`: the same move at the next look, the follower's id and
    /// address follow it, and once stopped the caller holds the keeper alone and
    /// its shutdown deletes the new pinhole only.
    #[tokio::test(start_paused = true)]
    async fn a_follower_moves_a_pinhole_of_the_callers_keeper() {
        let router = Arc::new(Router::default());
        *router.t0.lock().unwrap() = Some(Instant::now());
        *router.host.lock().unwrap() = vec![stable(OLD)];
        let (keeper, _keeper_events) =
            LeaseKeeper::new(Arc::new(Mapper(router.clone())), KeeperConfig::default());
        let request = MappingRequest::new(Protocol::Udp, SocketAddr::new(OLD.into(), 4500))
            .with_lifetime(Duration::from_secs(120));
        let (id, _) = keeper.add(request.clone()).await.expect("mapped");
        let keeper = Arc::new(keeper);
        let reader = router.clone();
        let source: AddressSource =
            Arc::new(move || (Ok(reader.host.lock().unwrap().clone()), None));
        let choice = choose_stable_ipv6(&router.host.lock().unwrap(), IFACE, None).expect("stable");
        let follower = PinholeFollower::start(keeper.clone(), id, request, choice, EVERY, source);
        let mut events = follower.events();
        tokio::time::sleep(Duration::from_secs(3)).await;
        *router.host.lock().unwrap() = vec![stable(NEW)];
        let LeaseEvent::Renumbered { mapping, .. } = events.recv().await.expect("an event") else {
            panic!("renumbered")
        };
        assert_eq!(mapping.internal, SocketAddr::new(NEW.into(), 4500));
        assert_eq!(router.ops("map", NEW), [EVERY]);
        assert_ne!(follower.id(), id);
        assert_eq!(follower.address().expect("choice").address, NEW);
        let now_id = follower.id();
        follower.stop().await;
        let keeper = Arc::try_unwrap(keeper).expect("the follower let go of the keeper");
        let report = keeper.shutdown().await;
        assert_eq!(report.released, [now_id]);
        assert_eq!(router.ops("unmap", NEW).len(), 1);
    }

    /// The old prefix deprecated first (the usual renumbering: the router
    /// advertises it with a preferred lifetime of 0), the new one beside it: the
    /// host still has the old address, so its pinhole is deleted for good.
    #[tokio::test(start_paused = true)]
    async fn a_deprecated_prefix_moves_and_the_old_pinhole_is_deleted() {
        let router = Arc::new(Router::default());
        *router.host.lock().unwrap() = vec![stable(OLD)];
        let lease = lease_on(&router).await;
        let mut events = lease.events();
        // No successor yet: nothing moves, nothing said.
        *router.host.lock().unwrap() =
            vec![addr(OLD, Ipv6Flags::PERMANENT | Ipv6Flags::DEPRECATED)];
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(matches!(
            events.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        router.host.lock().unwrap().push(stable(NEW));
        let LeaseEvent::Renumbered { old_deleted, .. } = events.recv().await.expect("event") else {
            panic!("renumbered")
        };
        assert!(old_deleted.is_ok(), "{old_deleted:?}");
        assert_eq!(router.ops("map", NEW), [EVERY * 3]);
        lease.close().await.expect("closed");
    }

    /// A read of the addresses that panics is said, and the next look (an
    /// interval later, not at once) moves the pinhole.
    #[tokio::test(start_paused = true)]
    async fn a_read_that_panics_is_said_and_the_next_look_moves() {
        let router = Arc::new(Router::default());
        *router.host.lock().unwrap() = vec![stable(OLD)];
        let lease = lease_on(&router).await;
        let mut events = lease.events();
        *router.panicking_reads.lock().unwrap() = 1;
        *router.host.lock().unwrap() = vec![stable(NEW)];
        let event = events.recv().await.expect("event");
        let LeaseEvent::RenumberFailed { old: OLD, error } = &event else {
            panic!("renumber failed: {event:?}")
        };
        assert!(
            matches!(&**error, RenumberError::ReadPanicked(e) if e.is_panic()),
            "{error}"
        );
        let event = events.recv().await.expect("event");
        assert!(
            matches!(&event, LeaseEvent::Renumbered { old: OLD, new, .. } if new.address == NEW),
            "{event:?}"
        );
        assert_eq!(router.ops("map", NEW), [EVERY * 2]);
        lease.close().await.ok();
    }

    /// The address gone and no stable one in its place (only a temporary one):
    /// the lease says so at each look and keeps the old pinhole until one comes.
    #[tokio::test(start_paused = true)]
    async fn no_stable_successor_is_reported_and_retried() {
        let router = Arc::new(Router::default());
        *router.host.lock().unwrap() = vec![stable(OLD)];
        let lease = lease_on(&router).await;
        let mut events = lease.events();
        *router.host.lock().unwrap() = vec![addr(TEMP, Ipv6Flags::TEMPORARY)];
        for _ in 0..2 {
            let event = events.recv().await.expect("event");
            let LeaseEvent::RenumberFailed { old: OLD, error } = &event else {
                panic!("renumber failed: {event:?}")
            };
            assert!(
                matches!(
                    **error,
                    RenumberError::NoReplacement(Ipv6AddressError::NoStableAddress {
                        temporary: 1,
                        ..
                    })
                ),
                "{error}"
            );
        }
        assert!(router.ops("map", TEMP).is_empty());
        assert_eq!(
            lease.external().expect("in force").internal.ip(),
            IpAddr::V6(OLD)
        );
        lease.close().await.ok();
    }
}
