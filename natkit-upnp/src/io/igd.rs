//! A connected UPnP Internet Gateway Device: where it is, which WAN
//! service it offers, and the plumbing for calling its actions.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::config::HttpConfig;
use crate::decide::hedge::{Exchange, Timings};
use crate::error::MAX_OFFERED;
use crate::error::{Error, Result};
use crate::io::bridge::{BoundedHttp, IgdNextGateway, MAX_SOAP_RESPONSE, standard_schema};
use crate::io::firewall::FirewallService;
use crate::io::transport::{Deadline, Plan, get, post_soap};
use crate::wire::description::Description;
use crate::wire::soap::{SoapArgs, SoapReply, parse_response, request_body, soap_action};
use crate::wire::status::{ConnectionStatus, StatusInfo};
use crate::wire::url::HttpUrl;
use crate::wire::wan::{ConnectionAnswer, WanServiceKind, choose_connection};

/// A UPnP IGD natkit can talk to: found by [`discover`](crate::discover)
/// or opened from a known description URL with [`Igd::connect`].
#[derive(Debug, Clone)]
pub struct Igd {
    location: HttpUrl,
    control: HttpUrl,
    service: WanServiceKind,
    service_type: String,
    description: Description,
    server: Option<String>,
    local_ip: Ipv4Addr,
    soap_timeout: Duration,
    hedging: Hedging,
    pub(crate) gateway: IgdNextGateway,
    /// Every WAN connection service usable from here, most preferred first
    /// (the one in use among them).
    candidates: Vec<Candidate>,
    /// The router's other WAN connections, as last seen.
    others: Vec<OtherConnection>,
    /// What GetExternalIPAddress answered when discovery checked the
    /// connection.
    discovered_ip: Option<IpAddr>,
    /// The IPv6 firewall service, when the description has one on its host.
    pub(crate) firewall: Option<FirewallService>,
    /// Where to reach the router over IPv6, when set by hand
    /// ([`Igd::with_ipv6_router`]); else the IPv6 default route's next hop.
    pub(crate) ipv6_router: Option<(Ipv6Addr, u32)>,
}

/// A WAN connection service of the description, its control URL resolved
/// and on the description's host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    kind: WanServiceKind,
    service_type: String,
    control: HttpUrl,
}

/// A WAN connection of the router that natkit does not map through
/// ([`Igd::other_connections`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherConnection {
    /// Its service kind.
    pub service: WanServiceKind,
    /// Its service type as the description writes it.
    pub service_type: String,
    /// Its control URL.
    pub control: HttpUrl,
    /// What it answered when discovery compared the connections; `None`
    /// when it was not asked (one connection was enough, or the IGD was
    /// opened with [`Igd::connect`]).
    pub answer: Option<ConnectionAnswer>,
}

/// Hedged requests to one gateway: the floor of the hedge delay and the
/// gateway's recent exchange times (shared by clones of the [`Igd`]).
#[derive(Debug, Clone)]
pub(crate) struct Hedging {
    floor: Option<Duration>,
    timings: Arc<Timings>,
}

impl Hedging {
    /// The plan for one call of the SOAP action named `action`, under
    /// `deadline`.
    pub(crate) fn plan(&self, action: &str, deadline: Deadline) -> Plan<'_> {
        Plan::new(
            Exchange::action(action),
            self.floor,
            &self.timings,
            deadline,
        )
    }

    /// The plan for fetching the device description under `deadline`.
    pub(crate) fn describe_plan(&self, deadline: Deadline) -> Plan<'_> {
        Plan::new(
            Some(Exchange::Describe),
            self.floor,
            &self.timings,
            deadline,
        )
    }
}

tokio::task_local! {
    /// The igd-next call being run by [`Igd::bounded_counting`]: its hedging,
    /// deadline and how many copies its request took. igd-next's provider
    /// is called without a `self`, so this is how it learns them.
    pub(crate) static CALL: Call;
}

/// See [`CALL`].
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) hedging: Hedging,
    pub(crate) deadline: Deadline,
    /// The most copies any exchange of the call started.
    pub(crate) copies: Arc<AtomicU8>,
}

impl Igd {
    /// Fetches and parses the description at `location` (within the
    /// limits of `http`) and picks its WAN connection service. The control
    /// URL must be on the same host as the description.
    ///
    /// This does not check the LOCATION policy: callers that got the URL
    /// from an untrusted answer use [`discover`](crate::discover).
    pub async fn connect(location: &str, http: &HttpConfig) -> Result<Igd> {
        let url = HttpUrl::parse(location).map_err(|e| Error::bad_url(location, e))?;
        Self::connect_url(url, None, http).await
    }

    pub(crate) async fn connect_url(
        location: HttpUrl,
        server: Option<String>,
        http: &HttpConfig,
    ) -> Result<Igd> {
        let hedging = Hedging {
            floor: http.hedge_after,
            timings: Arc::default(),
        };
        let deadline = Deadline::after(http.description_timeout);
        let fetched = get(
            &location,
            http.max_description,
            deadline,
            &hedging.describe_plan(deadline),
        )
        .await
        .map_err(|e| Error::http(&location, e))?;
        let description =
            Description::parse(&fetched.body).map_err(|source| Error::Description {
                location: location.to_string(),
                source,
            })?;
        let candidates = candidates(&description, &location)?;
        let firewall = firewall_service(&description, &location);
        let local_ip = match fetched.local {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let first = candidates[0].clone();
        let gateway = IgdNextGateway {
            addr: SocketAddr::V4(first.control.addr),
            root_url: location.path.clone(),
            control_url: first.control.path.clone(),
            control_schema_url: String::new(),
            control_schema: standard_schema(),
            service_type: first.service_type.clone(),
            provider: BoundedHttp,
        };
        let others = candidates[1..]
            .iter()
            .map(|c| OtherConnection {
                service: c.kind,
                service_type: c.service_type.clone(),
                control: c.control.clone(),
                answer: None,
            })
            .collect();
        Ok(Igd {
            location,
            control: first.control,
            service: first.kind,
            service_type: first.service_type,
            description,
            server,
            local_ip,
            soap_timeout: http.soap_timeout,
            hedging,
            gateway,
            candidates,
            others,
            discovered_ip: None,
            firewall,
            ipv6_router: None,
        })
    }

    /// This IGD, talking to `c` instead.
    fn using(&self, c: &Candidate) -> Igd {
        let mut igd = self.clone();
        igd.control = c.control.clone();
        igd.service = c.kind;
        igd.service_type = c.service_type.clone();
        igd.gateway.addr = SocketAddr::V4(c.control.addr);
        igd.gateway.control_url = c.control.path.clone();
        igd.gateway.service_type = c.service_type.clone();
        igd
    }

    /// The description URL.
    pub fn location(&self) -> &HttpUrl {
        &self.location
    }

    /// The WAN connection service's control URL.
    pub fn control_url(&self) -> &HttpUrl {
        &self.control
    }

    /// The WAN connection service in use.
    pub fn service(&self) -> WanServiceKind {
        self.service
    }

    /// The service type in use, exactly as the description writes it
    /// (every request is addressed to it).
    pub fn service_type(&self) -> &str {
        &self.service_type
    }

    /// The external address the WAN connection reported when
    /// [`discover`](crate::discover) checked it (asked together with its
    /// status); `None` when it was not asked or not answered. For the
    /// address now, [`Igd::external_ip`].
    pub fn discovered_external_ip(&self) -> Option<IpAddr> {
        self.discovered_ip
    }

    /// The router's other WAN connection services, not used: with several,
    /// discovery maps through the connected one with a public address
    /// ([`choose_connection`](crate::choose_connection)) and lists the
    /// others here with what they answered.
    pub fn other_connections(&self) -> &[OtherConnection] {
        &self.others
    }

    /// The device description (names, services).
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The SSDP `SERVER` header, e.g. `Debian/12 UPnP/1.1 MiniUPnPd/2.3.3`,
    /// when found by discovery.
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// This host's address as the IGD sees it (the local end of the
    /// description fetch): the internal client for mappings and the
    /// address in natkit's description tag.
    pub fn local_ip(&self) -> Ipv4Addr {
        self.local_ip
    }

    /// The time limit for one SOAP action.
    pub(crate) fn soap_timeout(&self) -> Duration {
        self.soap_timeout
    }

    /// The gateway's hedging (shared by its clones and its firewall).
    pub(crate) fn hedging(&self) -> &Hedging {
        &self.hedging
    }

    /// The IGD's WAN connection state (`GetStatusInfo`).
    pub async fn status(&self) -> Result<StatusInfo> {
        const A: &str = "GetStatusInfo";
        let args = self.call(A, &[]).await?;
        let status = args
            .get("NewConnectionStatus")
            .map(ConnectionStatus::parse)
            .ok_or(Error::BadArgument {
                action: A,
                argument: "NewConnectionStatus",
                value: String::new(),
            })?;
        Ok(StatusInfo {
            status,
            last_error: args
                .get("NewLastConnectionError")
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(64).collect()),
            // Huawei's libupnp answers `NewUpTime` (tailscale's capture).
            uptime_secs: args
                .get("NewUptime")
                .or_else(|| args.get("NewUpTime"))
                .and_then(|s| s.parse().ok()),
        })
    }

    /// The router's external address (`GetExternalIPAddress`).
    pub async fn external_ip(&self) -> Result<IpAddr> {
        let url = self.control.to_string();
        self.bounded(self.gateway.get_external_ip())
            .await?
            .map_err(|e| crate::io::bridge::from_external_ip(&url, e))
    }

    /// Checks that the WAN side is connected. Where `GetStatusInfo` itself
    /// fails, an external address that is not `0.0.0.0` counts as
    /// connected. With several WAN connection services, all are asked at
    /// once and the one [`choose_connection`] picks is used.
    pub(crate) async fn require_connected(self) -> Result<Igd> {
        if self.candidates.len() > 1 {
            return self.choose_among_candidates().await;
        }
        // Both at once: under loss each exchange can take a second or more,
        // and the caller wants the external address next anyway.
        let (status, ip) = tokio::join!(self.status(), self.external_ip());
        let mut igd = self;
        igd.discovered_ip = ip.as_ref().ok().copied();
        let status = match status {
            Ok(info) => info.status,
            Err(Error::Upnp { .. } | Error::Soap { .. } | Error::BadArgument { .. }) => match ip {
                Ok(ip) if !ip.is_unspecified() => return Ok(igd),
                _ => ConnectionStatus::Unrecognised("no status, no external address".into()),
            },
            Err(e) => return Err(e),
        };
        if status.is_connected() {
            Ok(igd)
        } else {
            Err(igd.not_connected(status))
        }
    }

    fn not_connected(&self, status: ConnectionStatus) -> Error {
        Error::NotConnected {
            location: self.location.to_string(),
            device: self.display_name().to_owned(),
            status,
        }
    }

    async fn choose_among_candidates(self) -> Result<Igd> {
        let asked = self.candidates.iter().map(|c| {
            let igd = self.using(c);
            async move {
                let (status, ip) = tokio::join!(igd.status(), igd.external_ip());
                ConnectionAnswer {
                    status: status.ok().map(|s| s.status),
                    external_ip: ip.ok(),
                }
            }
        });
        let answers: Vec<ConnectionAnswer> = join_all(asked).await;
        let Some(chosen) = choose_connection(&answers) else {
            let status = answers[0].status.clone().unwrap_or_else(|| {
                ConnectionStatus::Unrecognised("no status, no external address".into())
            });
            return Err(self.not_connected(status));
        };
        let mut igd = self.using(&self.candidates[chosen]);
        igd.discovered_ip = answers[chosen].external_ip;
        igd.others = self
            .candidates
            .iter()
            .zip(answers)
            .enumerate()
            .filter(|(i, _)| *i != chosen)
            .map(|(_, (c, answer))| OtherConnection {
                service: c.kind,
                service_type: c.service_type.clone(),
                control: c.control.clone(),
                answer: Some(answer),
            })
            .collect();
        if !igd.others.is_empty() {
            tracing::info!(chosen = %igd.control, others = igd.others.len(),
                "several WAN connections; mapping through the connected one with the best address");
        }
        Ok(igd)
    }

    /// A human name for the device.
    pub fn display_name(&self) -> &str {
        self.description.display_name().unwrap_or("UPnP IGD")
    }

    /// Calls an action natkit builds itself (those igd-next lacks).
    pub(crate) async fn call(
        &self,
        action: &'static str,
        args: &[(&str, &str)],
    ) -> Result<SoapArgs> {
        let service_type = self.service_type.as_str();
        let body = request_body(service_type, action, args);
        let deadline = Deadline::after(self.soap_timeout);
        let fetched = post_soap(
            &self.control,
            &soap_action(service_type, action),
            &body,
            MAX_SOAP_RESPONSE,
            deadline,
            &self.hedging.plan(action, deadline),
        )
        .await
        .map_err(|e| Error::http(&self.control, e))?;
        match parse_response(&fetched.body, action)
            .map_err(|source| Error::Soap { action, source })?
        {
            SoapReply::Ok(args) => Ok(args),
            SoapReply::Fault { code, description } => Err(Error::Upnp {
                action,
                code,
                description,
            }),
        }
    }

    /// Runs an igd-next call under the SOAP timeout.
    pub(crate) async fn bounded<T>(&self, fut: impl Future<Output = T>) -> Result<T> {
        Ok(self.bounded_counting(fut).await?.0)
    }

    /// Runs an igd-next call under the SOAP timeout, with this gateway's
    /// hedging; also returns how many copies of the request were started
    /// (more than 1: a fault may be the answer to our own duplicate).
    pub(crate) async fn bounded_counting<T>(
        &self,
        fut: impl Future<Output = T>,
    ) -> Result<(T, u8)> {
        let deadline = Deadline::after(self.soap_timeout);
        let call = Call {
            hedging: self.hedging.clone(),
            deadline,
            copies: Arc::default(),
        };
        let copies = Arc::clone(&call.copies);
        // The provider's exchange has the same deadline and is polled first,
        // so it ends it (with a held-back fault, if any); this is the backstop.
        let out = tokio::time::timeout_at(deadline.at, CALL.scope(call, fut))
            .await
            .map_err(|_| {
                Error::http(
                    &self.control,
                    crate::wire::http::HttpError::Timeout { ms: deadline.ms },
                )
            })?;
        Ok((out, copies.load(Ordering::Relaxed)))
    }
}

impl fmt::Display for OtherConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.service, self.control.path)?;
        match &self.answer {
            None => f.write_str(" (not asked)"),
            Some(p) => {
                match &p.status {
                    Some(s) => write!(f, " ({s}")?,
                    None => f.write_str(" (no status")?,
                }
                match p.external_ip {
                    Some(ip) => write!(f, ", {ip})"),
                    None => f.write_str(", no external address)"),
                }
            }
        }
    }
}

impl fmt::Display for Igd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} at {} ({}, control {})",
            self.display_name(),
            self.location,
            self.service,
            self.control.path
        )
    }
}

/// Polls every future to completion, in order of the input.
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// The description's WAN connection services whose control URLs natkit may
/// use, most preferred first.
///
/// Control URLs resolve against `URLBase` when it is a usable URL on the
/// description's own host, else against the LOCATION: `URLBase` is
/// deprecated since UDA 1.1, and routers have been seen sending it as an
/// unfilled template (`http://%s:%d`) or with a stale address. A control
/// URL may name another port of the same host (a D-Link DIR-655 serves
/// its description on port 80 and its control URLs on 4444 and 8832), but
/// never another host: a device on the LAN must not be able to make natkit
/// send requests elsewhere.
fn candidates(description: &Description, location: &HttpUrl) -> Result<Vec<Candidate>> {
    let wan = description.wan_services();
    if wan.is_empty() {
        return Err(Error::NoWanService {
            location: location.to_string(),
            device: description.display_name().unwrap_or("?").to_owned(),
            offered: description
                .services
                .iter()
                .take(MAX_OFFERED)
                .cloned()
                .collect(),
        });
    }
    let base = base_url(description, location);
    let mut refused = None;
    let mut found = Vec::new();
    for (kind, entry) in wan {
        match base.join(&entry.control_url) {
            Ok(control) if control.ip() == location.ip() => found.push(Candidate {
                kind,
                service_type: entry.service_type.clone(),
                control,
            }),
            Ok(control) => {
                refused.get_or_insert(Error::ControlUrlElsewhere {
                    location: location.to_string(),
                    control: control.to_string(),
                });
            }
            Err(e) => {
                refused.get_or_insert(Error::bad_url(&entry.control_url, e));
            }
        }
    }
    match refused {
        Some(e) if found.is_empty() => Err(e),
        _ => Ok(found),
    }
}

/// What control URLs resolve against: `URLBase` when it is a usable URL on
/// the description's own host, else the LOCATION (see [`candidates`]).
fn base_url(description: &Description, location: &HttpUrl) -> HttpUrl {
    description
        .url_base
        .as_deref()
        .and_then(|b| HttpUrl::parse(b).ok())
        .filter(|b| b.ip() == location.ip())
        .unwrap_or_else(|| location.clone())
}

/// The description's IPv6 firewall service, its control URL resolved as
/// the WAN services' are and on the description's host; `None` when it has
/// none or names another host (never followed, as for the WAN services).
fn firewall_service(description: &Description, location: &HttpUrl) -> Option<FirewallService> {
    let entry = description.firewall_service()?;
    match base_url(description, location).join(&entry.control_url) {
        Ok(control) if control.ip() == location.ip() => Some(FirewallService {
            service_type: entry.service_type.clone(),
            control,
        }),
        _ => {
            tracing::info!(control = %entry.control_url,
                "the IPv6 firewall service's control URL is unusable or on another host; ignored");
            None
        }
    }
}
