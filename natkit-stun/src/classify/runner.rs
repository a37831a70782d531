//! The tokio runner of the test plan. Its clock is tokio's (`crate::client::now`):
//! on a paused clock a whole classification runs in simulated time.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::config::ClassifyConfig;
use super::evidence::{Classification, ServerFlavor};
use super::lifetime::{self, BindingLifetime, LifetimeConfig, LifetimeStep};
use super::plan::{TestPlan, TestRequest, no_answer_plan};
use super::ports;
use crate::Error;
use crate::client::{
    AcceptFrom, BindingRequest, BindingTransaction, RtoPlan, binding_on, resolve_all_in,
    run_transactions,
};

/// Classifies the NAT between this host and the configured servers: runs the
/// [`TestPlan`] with real sockets (one fresh UDP socket per test group, every
/// independent test at once).
///
/// Fails only on a bad configuration, servers that do not resolve, or a local socket
/// error; a NAT that cannot be told is an [`Ok`] with inconclusive axes and notes.
pub async fn classify(config: ClassifyConfig) -> Result<Classification, Error> {
    let started = tokio::time::Instant::now();
    config.validate()?;
    let mut servers = Vec::with_capacity(config.servers.len());
    let mut unresolved = Vec::new();
    for (name, r) in config
        .servers
        .iter()
        .zip(resolve_all_in(&config.servers, config.family).await)
    {
        match r {
            Ok(addr) => servers.push((name.clone(), addr)),
            Err(e) => unresolved.push(e),
        }
    }
    // One family: the sockets are bound to the address that routes to the first.
    if let Some(family) = servers.first().map(|(_, a)| a.is_ipv4()) {
        servers.retain(|(_, a)| a.is_ipv4() == family);
    }
    let Some(&(_, first)) = servers.first() else {
        return Err(unresolved
            .into_iter()
            .next()
            .unwrap_or(Error::InvalidConfig {
                reason: "no STUN servers to classify against",
            }));
    };
    let local_ip = match config.bind_ip {
        Some(ip) if ip.is_ipv4() != first.is_ipv4() => {
            return Err(Error::InvalidConfig {
                reason: "bind_ip is not of the servers' address family",
            });
        }
        Some(ip) => ip,
        // Without an address or route of the servers' family (IPv6 on an IPv4-only
        // network) this fails at once, with no packet sent.
        None => route_source(first).await?,
    };
    let lifetime = config.lifetime;
    let plan_config = config.clone();
    let mut plan = TestPlan::new(config, servers)?;
    let mut sockets: BTreeMap<u32, Arc<UdpSocket>> = BTreeMap::new();
    let mut unplaced = false;
    while !plan.is_done() {
        let wave = plan.poll_requests();
        if wave.is_empty() {
            break;
        }
        let mut groups: BTreeMap<u32, Vec<TestRequest>> = BTreeMap::new();
        for p in wave {
            groups.entry(p.group).or_default().push(p);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (group, requests) in groups {
            let socket = match sockets.get(&group) {
                Some(s) => s.clone(),
                None => {
                    // Filtering sockets on ephemeral ports, every other socket (those
                    // that send to the alternate address) outside that range, so no
                    // later run's filtering socket inherits a mapping opened here.
                    let filtering = requests.iter().all(|p| p.test.is_filtering());
                    let placed = if filtering {
                        None
                    } else {
                        let placed = ports::bind_outside_ephemeral(local_ip).await?;
                        unplaced |= placed.is_none();
                        placed
                    };
                    let s = match placed {
                        Some(s) => s,
                        None => UdpSocket::bind(SocketAddr::new(local_ip, 0))
                            .await
                            .map_err(|e| Error::io("bind", &e))?,
                    };
                    let s = Arc::new(s);
                    sockets.insert(group, s.clone());
                    s
                }
            };
            let mut txns = Vec::with_capacity(requests.len());
            {
                let mut rng = rand::rng();
                for p in &requests {
                    let t = if p.hairpin {
                        BindingTransaction::hairpin(p.destination, p.plan, &mut rng)?
                    } else {
                        BindingTransaction::new(
                            &p.request,
                            p.destination,
                            AcceptFrom::Only(p.accept.clone()),
                            p.plan,
                            &mut rng,
                        )?
                    };
                    txns.push(t);
                }
            }
            tasks.spawn(async move {
                let local = socket.local_addr().ok();
                let r = run_transactions(&socket, &mut txns).await;
                (requests, txns, local, r)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (requests, mut txns, local, r) = joined.map_err(|_| Error::Panicked {
                what: "a classifier task",
            })?;
            r?;
            for (p, t) in requests.iter().zip(txns.iter_mut()) {
                plan.handle_transaction(p.id, local, t);
            }
        }
    }
    let mut c = plan.classification();
    c.notes
        .extend(unresolved.iter().map(Classification::not_asked_note));
    c.not_asked = unresolved;
    if unplaced {
        c.notes.push(
            "no port outside the system's ephemeral range was free for the mapping tests' \
             socket: a run of this host shortly after might find its filter opened by them"
                .into(),
        );
    }
    if let Some(lifetime) = lifetime {
        let target = c
            .behaviour_server
            .and_then(|s| c.servers.iter().find(|check| check.server == s));
        match target {
            Some(check) if check.flavor == ServerFlavor::Rfc5780 => {
                let wait = no_answer_plan(&plan_config, c.rtt);
                let server = LifetimeServer {
                    primary: check.server,
                    other: check.other.unwrap_or(check.server),
                };
                c.binding_lifetime = Some(
                    discover_lifetime(local_ip, server, lifetime, plan_config.plan, wait).await?,
                );
            }
            _ => c.notes.push(
                "binding lifetime not measured: it needs an RFC 5780 server (one that honours \
                 RESPONSE-PORT) that passed the checks"
                    .into(),
            ),
        }
    }
    c.elapsed = started.elapsed();
    Ok(c)
}

/// The addresses of the server a binding lifetime is measured against.
#[derive(Debug, Clone, Copy)]
struct LifetimeServer {
    /// Where each binding is made, and where the probe's answer must come from.
    primary: SocketAddr,
    /// Where the probe goes (OTHER-ADDRESS).
    other: SocketAddr,
}

/// Binding lifetime discovery ([`lifetime`](super::lifetime)): every step and the
/// control at once, each on fresh sockets.
async fn discover_lifetime(
    local_ip: IpAddr,
    server: LifetimeServer,
    config: LifetimeConfig,
    bind_plan: RtoPlan,
    wait: RtoPlan,
) -> Result<BindingLifetime, Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for idle in std::iter::once(Duration::ZERO).chain(config.idle_times()) {
        tasks.spawn(lifetime_step(local_ip, server, idle, bind_plan, wait));
    }
    let mut steps = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        steps.push(joined.map_err(|_| Error::Panicked {
            what: "a binding lifetime task",
        })??);
    }
    steps.sort_by_key(|p| p.idle);
    // Never empty: the control (idle zero) is always spawned, and every task either
    // pushed its step or returned above. Sorted, the control is first.
    let control = steps.remove(0);
    Ok(lifetime::decide(server.primary, config.max, control, steps))
}

/// Makes a binding from a fresh socket X to the server's primary address, leaves it
/// idle for `idle`, then asks the server from another fresh socket Y to answer to X's
/// public port (RESPONSE-PORT) from that primary address.
///
/// Y sends to the server's *other* address with CHANGE-REQUEST (change IP and port),
/// not to the primary as RFC 5780 has it: a NAT that keeps its filter per host
/// would take Y's request to the primary as this host contacting it again, reopen the
/// filter entry that X's idle binding had let lapse, and the lifetime would read as
/// long as the mapping lives. Y's request touches neither the primary IP nor its
/// port, so the answer gets in only on what X left behind.
async fn lifetime_step(
    local_ip: IpAddr,
    server: LifetimeServer,
    idle: Duration,
    bind_plan: RtoPlan,
    wait: RtoPlan,
) -> Result<LifetimeStep, Error> {
    let bind = || async {
        UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(|e| Error::io("bind", &e))
    };
    // Y sends to the other address: outside the ephemeral range, like the mapping
    // tests' socket (see `ports`).
    let x = bind().await?;
    let y = match ports::bind_outside_ephemeral(local_ip).await? {
        Some(y) => y,
        None => bind().await?,
    };
    let mut step = LifetimeStep {
        idle,
        local: x.local_addr().ok(),
        mapped: None,
        alive: None,
        answered_to_sender: false,
    };
    match binding_on(&x, server.primary, &BindingRequest::new(), bind_plan).await {
        Ok(r) => step.mapped = r.mapped,
        Err(Error::Timeout { .. }) => return Ok(step),
        Err(e) => return Err(e),
    }
    let Some(mapped) = step.mapped else {
        return Ok(step);
    };
    tokio::time::sleep(idle).await;
    let request = BindingRequest {
        response_port: Some(mapped.port()),
        ..BindingRequest::with_change(true, true)
    };
    let mut t = BindingTransaction::new(
        &request,
        server.other,
        AcceptFrom::Only(vec![server.primary]),
        wait,
        &mut rand::rng(),
    )?;
    let mut bx = vec![0u8; 2048];
    let mut by = vec![0u8; 2048];
    loop {
        let now = crate::client::now();
        t.handle_timeout(now);
        while let Some(tx) = t.poll_transmit(now) {
            let (dest, payload) = (tx.destination, tx.payload.to_vec());
            if let Err(e) = y.send_to(&payload, dest).await {
                t.abort(Error::io("send", &e));
            }
        }
        let Some(deadline) = t.poll_timeout() else {
            break;
        };
        tokio::select! {
            Ok((n, from)) = x.recv_from(&mut bx) => {
                if t.matches_id(&bx[..n]) {
                    t.handle_input(crate::client::now(), from, &bx[..n]);
                }
            }
            Ok((n, _)) = y.recv_from(&mut by) => {
                if t.matches_id(&by[..n]) {
                    step.answered_to_sender = true;
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
    step.alive = Some(matches!(t.outcome(), Some(Ok(_))));
    Ok(step)
}

/// The local IP the host would send from to reach `server` (no packet is sent);
/// [`Error::NoRoute`] at once without an address or route of its family.
async fn route_source(server: SocketAddr) -> Result<IpAddr, Error> {
    crate::client::route_to(server)
        .await?
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| Error::io("route lookup", &e))
}
