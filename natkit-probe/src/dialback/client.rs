//! The dial-back client: holds responders, asks the server, decides.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use natkit_core::Protocol;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

use super::error::DialbackError;
use super::list::List;
use super::message::{DialOutcome, DialPort, DialResult, MAX_PORTS, Message, Nonce, RefusalCode};
use super::policy::canonical;
use super::reachability::{ControlEvidence, Evidence, Reachability, ResponderSaw, Why, decide};
use super::responder::{NotHeld, Responders, Seen};
use super::stream::{ReadError, read_message, write_message};

/// The most ports one [`DialbackClient::check`] takes (they are sent in
/// requests of up to [`ClientConfig::ports_per_request`]).
pub const MAX_CHECK_PORTS: usize = 1024;

/// A port to check from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CheckPort {
    /// The port on the public address the server dials.
    pub external: u16,
    /// The local port the router forwards it to, where our responder
    /// listens (the same as `external` unless a mapping moved it).
    pub local: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The caller knows the router forwards `external` to this host's
    /// `local` (e.g. it has just mapped it with UPnP/NAT-PMP/PCP): a
    /// refusal then means `closed`, silence `filtered`, never
    /// `not_forwarded`.
    pub expect_forwarded: bool,
}

impl CheckPort {
    /// `port`/`protocol`, the same port outside and in, no forward known.
    pub fn new(port: u16, protocol: Protocol) -> Self {
        CheckPort {
            external: port,
            local: port,
            protocol,
            expect_forwarded: false,
        }
    }

    /// A port the caller has mapped: `external` on the router forwards to
    /// `local` on this host.
    pub fn mapped(external: u16, local: u16, protocol: Protocol) -> Self {
        CheckPort {
            external,
            local,
            protocol,
            expect_forwarded: true,
        }
    }
}

/// How the client checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The dial-back server's control address (TCP).
    pub server: SocketAddr,
    /// For the control connection to be established.
    pub connect_timeout: Duration,
    /// For the server's answer once the request is sent (the server dials
    /// every port at once, within its own timeouts, ≈ 5 s by default).
    pub report_timeout: Duration,
    /// How long a responder waits for the probe on an accepted connection.
    pub probe_timeout: Duration,
    /// Ports per request, control ports included (at most [`MAX_PORTS`];
    /// lower it for a server with a lower cap).
    pub ports_per_request: usize,
    /// Add one unforwarded control port per protocol to each request, to
    /// learn how the path treats ports nobody forwards (see
    /// [`ControlEvidence`]).
    pub control_ports: bool,
    /// The address responders listen on; by default `source_ip` when
    /// given, else the unspecified address of the server's family.
    pub responder_ip: Option<IpAddr>,
    /// The local address the control connection comes from, and so the
    /// one address the server dials (it dials only the source of a
    /// request). By default the system picks it: for IPv6 with privacy
    /// extensions that is a temporary address, while pinholes are opened
    /// for the stable one — set it to check the stable address. The report
    /// says which was used ([`ReachabilityReport::local`]).
    pub source_ip: Option<IpAddr>,
    /// Times to wait and ask again when the server says it is rate
    /// limiting or busy.
    pub retries: u8,
    /// The wait before asking again.
    pub retry_after: Duration,
}

impl ClientConfig {
    /// Defaults for `server`.
    pub fn new(server: SocketAddr) -> Self {
        ClientConfig {
            server,
            connect_timeout: Duration::from_secs(5),
            report_timeout: Duration::from_secs(15),
            probe_timeout: Duration::from_secs(3),
            ports_per_request: MAX_PORTS,
            control_ports: true,
            responder_ip: None,
            source_ip: None,
            retries: 3,
            retry_after: Duration::from_millis(1100),
        }
    }
}

/// One port's verdict with its evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PortReachability {
    /// The port checked.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub port: CheckPort,
    /// The verdict.
    #[cfg_attr(feature = "serde", serde(rename = "state"))]
    pub verdict: Reachability,
    /// Whether the nonce proved that the dial reached this host's port
    /// (false for a `reachable` port a local service holds).
    pub proven: bool,
    /// The decision table's rule.
    pub why: Why,
    /// What the server saw.
    pub server_saw: DialOutcome,
    /// The server's round-trip time to the answer (zero on silence).
    #[cfg_attr(feature = "serde", serde(with = "crate::micros", rename = "rtt_us"))]
    pub rtt: Duration,
    /// What our responder saw.
    pub responder: ResponderSaw,
}

/// A control port's dial (one per protocol and request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ControlPort {
    /// The port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// What the server saw there.
    pub outcome: DialOutcome,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ReachabilityReport {
    /// The dial-back server.
    pub server: SocketAddr,
    /// Our end of the control connection.
    pub local: SocketAddr,
    /// Our address as the server saw it (of the first request).
    pub observed: SocketAddr,
    /// Whether the server saw another address than ours.
    pub behind_nat: bool,
    /// The control ports dialled.
    pub controls: Vec<ControlPort>,
    /// One verdict per port asked for, in the order asked.
    pub ports: Vec<PortReachability>,
}

impl ReachabilityReport {
    /// The verdict for `external`/`protocol`.
    pub fn get(&self, external: u16, protocol: Protocol) -> Option<&PortReachability> {
        self.ports
            .iter()
            .find(|p| p.port.external == external && p.port.protocol == protocol)
    }
}

/// Asks a dial-back server whether ports of this host are reachable from
/// outside.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit_probe::dialback::DialbackError> {
/// use natkit_core::Protocol;
/// use natkit_probe::dialback::{CheckPort, ClientConfig, DialbackClient};
/// let client = DialbackClient::new(ClientConfig::new("198.51.100.7:7007".parse().unwrap()));
/// let report = client
///     .check(&[CheckPort::new(443, Protocol::Tcp), CheckPort::new(4500, Protocol::Udp)])
///     .await?;
/// for p in &report.ports {
///     println!("{}/{} {} ({})", p.port.external, p.port.protocol, p.verdict, p.why);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct DialbackClient {
    config: ClientConfig,
}

impl DialbackClient {
    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Self {
        DialbackClient { config }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Checks `ports`, each request with a fresh nonce from the operating
    /// system's cryptographic random source.
    pub async fn check(&self, ports: &[CheckPort]) -> Result<ReachabilityReport, DialbackError> {
        self.check_with(ports, &mut || {
            Nonce::random().map_err(DialbackError::Random)
        })
        .await
    }

    /// Checks `ports`, taking each request's nonce from `nonces` (which
    /// must be unpredictable outside tests).
    pub async fn check_with(
        &self,
        ports: &[CheckPort],
        nonces: &mut (dyn FnMut() -> Result<Nonce, DialbackError> + Send),
    ) -> Result<ReachabilityReport, DialbackError> {
        validate(ports)?;
        let protocols = ports
            .iter()
            .map(|p| p.protocol)
            .collect::<HashSet<_>>()
            .len();
        let per = self.config.ports_per_request.clamp(1, MAX_PORTS);
        let controls = if self.config.control_ports && per > protocols {
            protocols
        } else {
            0
        };
        let chunk_len = per.saturating_sub(controls).max(1);
        let mut report: Option<ReachabilityReport> = None;
        for chunk in ports.chunks(chunk_len) {
            let nonce = nonces()?;
            let part = self.check_chunk(chunk, nonce, controls > 0).await?;
            match report.as_mut() {
                None => report = Some(part),
                Some(r) => {
                    r.controls.extend(part.controls);
                    r.ports.extend(part.ports);
                }
            }
        }
        report.ok_or(DialbackError::PortCount(0))
    }

    async fn check_chunk(
        &self,
        chunk: &[CheckPort],
        nonce: Nonce,
        with_controls: bool,
    ) -> Result<ReachabilityReport, DialbackError> {
        let c = &self.config;
        // A UDP responder on the unspecified address answers from the
        // address the system picks towards the server, which with IPv6
        // privacy addresses is the temporary one, not the `source_ip` the
        // probe came to: the server, reading only the dialled address,
        // would never see the ack. Bound to the source it answers from it.
        let ip = c.responder_ip.or(c.source_ip).unwrap_or(match c.server {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        });
        let mut locals: HashMap<(Protocol, u16), Vec<u16>> = HashMap::new();
        for p in chunk {
            locals
                .entry((p.protocol, p.local))
                .or_default()
                .push(p.external);
        }
        let controls = if with_controls {
            pick_controls(chunk, nonce, ip)
        } else {
            Vec::new()
        };
        let mut wire: Vec<DialPort> = chunk
            .iter()
            .map(|p| DialPort {
                port: p.external,
                protocol: p.protocol,
            })
            .collect();
        wire.extend(controls.iter().copied());
        let ports = List::from_slice(&wire).ok_or(DialbackError::PortCount(wire.len()))?;

        // Responders first, so that nothing the server sends finds the
        // port unattended.
        let responders = Responders::start(ip, &locals, nonce, c.probe_timeout);
        let asked = self.ask(nonce, ports).await;
        let not_held: HashMap<_, _> = chunk
            .iter()
            .filter_map(|p| {
                responders
                    .not_held(p.protocol, p.local)
                    .map(|n| ((p.protocol, p.local), n))
            })
            .collect();
        let seen = responders.finish().await;
        let (local, observed, results) = asked?;

        let behind_nat = canonical(observed.ip()) != canonical(local.ip());
        let outcome_of = |port: DialPort| {
            results
                .as_slice()
                .iter()
                .find(|r| r.port == port)
                .copied()
                .unwrap_or(DialResult {
                    port,
                    ..Default::default()
                })
        };
        let control_ports: Vec<ControlPort> = controls
            .iter()
            .map(|&d| ControlPort {
                port: d.port,
                protocol: d.protocol,
                outcome: outcome_of(d).outcome,
            })
            .collect();
        let ports = chunk
            .iter()
            .map(|p| {
                let r = outcome_of(DialPort {
                    port: p.external,
                    protocol: p.protocol,
                });
                let responder = responder_saw(p, &seen, &not_held);
                let control = control_ports
                    .iter()
                    .find(|cp| cp.protocol == p.protocol)
                    .map_or(ControlEvidence::Unknown, |cp| {
                        ControlEvidence::from_outcome(cp.port, cp.outcome)
                    });
                let (verdict, why) = decide(&Evidence {
                    server: r.outcome,
                    responder,
                    behind_nat,
                    expect_forwarded: p.expect_forwarded,
                    control,
                });
                PortReachability {
                    port: *p,
                    verdict,
                    proven: responder == ResponderSaw::Nonce,
                    why,
                    server_saw: r.outcome,
                    rtt: r.rtt,
                    responder,
                }
            })
            .collect();
        Ok(ReachabilityReport {
            server: c.server,
            local,
            observed,
            behind_nat,
            controls: control_ports,
            ports,
        })
    }

    /// One request on a fresh control connection, retried while the
    /// server is rate limiting or busy. Returns our end of the control
    /// connection, the observed address and the results.
    async fn ask(
        &self,
        nonce: Nonce,
        ports: List<DialPort>,
    ) -> Result<(SocketAddr, SocketAddr, List<DialResult>), DialbackError> {
        let c = &self.config;
        let server = c.server;
        let mut tries = 0;
        loop {
            let control = |source| DialbackError::Control { server, source };
            let mut stream = match timeout(c.connect_timeout, connect(server, c.source_ip)).await {
                Err(_) => {
                    return Err(DialbackError::Connect {
                        server,
                        source: io::ErrorKind::TimedOut.into(),
                    });
                }
                Ok(Err(source)) => return Err(DialbackError::Connect { server, source }),
                Ok(Ok(s)) => s,
            };
            let local = stream.local_addr().map_err(control)?;
            write_message(&mut stream, &Message::Request { nonce, ports })
                .await
                .map_err(control)?;
            let mut received = 0;
            let answer =
                match timeout(c.report_timeout, read_message(&mut stream, &mut received)).await {
                    Err(_) => return Err(control(io::ErrorKind::TimedOut.into())),
                    Ok(Err(ReadError::Io(e))) => return Err(control(e)),
                    Ok(Err(ReadError::Malformed { error, .. })) => {
                        return Err(DialbackError::BadAnswer {
                            server,
                            source: error,
                        });
                    }
                    Ok(Ok(m)) => m,
                };
            if answer.nonce() != nonce {
                return Err(DialbackError::Mismatch {
                    server,
                    what: "another nonce",
                });
            }
            match answer {
                Message::Report {
                    observed, results, ..
                } => {
                    let same = results.len() == ports.len()
                        && results
                            .as_slice()
                            .iter()
                            .zip(ports.as_slice())
                            .all(|(r, p)| r.port == *p);
                    if !same {
                        return Err(DialbackError::Mismatch {
                            server,
                            what: "other ports than requested",
                        });
                    }
                    return Ok((local, observed, results));
                }
                Message::Refusal { reason, .. } if reason.is_retryable() && tries < c.retries => {
                    tries += 1;
                    let wait = if reason == RefusalCode::Busy {
                        c.retry_after * 2
                    } else {
                        c.retry_after
                    };
                    tokio::time::sleep(wait).await;
                }
                Message::Refusal { reason, .. } => {
                    return Err(DialbackError::Refused { server, reason });
                }
                _ => {
                    return Err(DialbackError::Mismatch {
                        server,
                        what: "not a report or refusal",
                    });
                }
            }
        }
    }
}

/// A control connection to `server`, from `source` when given.
async fn connect(server: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(server).await;
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(server).await
}

fn validate(ports: &[CheckPort]) -> Result<(), DialbackError> {
    if ports.is_empty() || ports.len() > MAX_CHECK_PORTS {
        return Err(DialbackError::PortCount(ports.len()));
    }
    if ports.iter().any(|p| p.external == 0 || p.local == 0) {
        return Err(DialbackError::PortZero);
    }
    Ok(())
}

/// What our responders saw for `p`.
fn responder_saw(
    p: &CheckPort,
    seen: &HashMap<(Protocol, u16), Seen>,
    not_held: &HashMap<(Protocol, u16), NotHeld>,
) -> ResponderSaw {
    let own = seen.get(&(p.protocol, p.local));
    if own.is_some_and(|s| s.nonce_for.contains(&p.external)) {
        return ResponderSaw::Nonce;
    }
    // Our probe for this port at another local port's responder.
    if let Some((&(_, local), _)) = seen
        .iter()
        .find(|((proto, _), s)| *proto == p.protocol && s.nonce_for.contains(&p.external))
    {
        return ResponderSaw::NonceOnOtherPort { local };
    }
    match not_held.get(&(p.protocol, p.local)) {
        Some(NotHeld::InUse) => return ResponderSaw::HeldByLocalService,
        Some(NotHeld::Other(errno)) => return ResponderSaw::CannotBind { errno: *errno },
        None => {}
    }
    match own.map_or(0, |s| s.foreign) {
        0 => ResponderSaw::Nothing,
        count => ResponderSaw::Foreign { count },
    }
}

/// One control port per protocol in `chunk`: a pseudo-random port in the
/// dynamic range (49152–65535) derived from the nonce, not among the ports
/// checked, and free on this host (so nothing of ours answers there).
fn pick_controls(chunk: &[CheckPort], nonce: Nonce, ip: IpAddr) -> Vec<DialPort> {
    let mut out = Vec::new();
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        if !chunk.iter().any(|p| p.protocol == protocol) {
            continue;
        }
        let seed = u16::from_be_bytes([nonce.0[14], nonce.0[15]]);
        for i in 0..64u16 {
            let port = 49152 + (seed.wrapping_add(i.wrapping_mul(257))) % 16384;
            let taken = chunk
                .iter()
                .any(|p| p.protocol == protocol && (p.external == port || p.local == port));
            if !taken && port_free(ip, port, protocol) {
                out.push(DialPort { port, protocol });
                break;
            }
        }
    }
    out
}

fn port_free(ip: IpAddr, port: u16, protocol: Protocol) -> bool {
    let addr = SocketAddr::new(ip, port);
    match protocol {
        Protocol::Tcp => std::net::TcpListener::bind(addr).is_ok(),
        Protocol::Udp => std::net::UdpSocket::bind(addr).is_ok(),
    }
}
