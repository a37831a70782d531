//! The tokio side of HTTP: one request per connection, every byte counted
//! and the whole exchange under one deadline, so a router that trickles or
//! floods cannot hold natkit up or make it allocate without bound. Within
//! the deadline, an unanswered request may be hedged: sent again on a fresh
//! connection ([`crate::decide::hedge`]).

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::decide::hedge::{Exchange, OnAnswer, OnFailure, Race, Timings, hedge_delay};
use crate::wire::http::{Framing, HttpError, MAX_HEAD, decode_chunked, parse_head};
use crate::wire::soap::{SoapReply, parse_response};
use crate::wire::url::HttpUrl;

/// A complete response.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// The status code.
    pub(crate) status: u16,
    /// The body (de-chunked).
    pub(crate) body: Vec<u8>,
    /// This host's address on the connection: what the router sees.
    pub(crate) local: SocketAddr,
    /// How many copies of the request were started (1 unless hedged).
    pub(crate) copies: u8,
}

/// When an exchange must be over, and the limit to name if it is not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// The instant.
    pub(crate) at: Instant,
    /// The whole limit, in milliseconds, for [`HttpError::Timeout`].
    pub(crate) ms: u64,
}

impl Deadline {
    /// `time` from now.
    pub(crate) fn after(time: Duration) -> Deadline {
        Deadline {
            at: Instant::now() + time,
            ms: u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// How one exchange may be repeated (see [`crate::decide::hedge`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan<'a> {
    /// What is exchanged (`None`: an action natkit has no rules for).
    pub(crate) exchange: Option<Exchange>,
    /// When the first hedge goes; each further one (up to
    /// [`MAX_COPIES`](crate::decide::hedge::MAX_COPIES) in all) as long after the
    /// previous. `None`: one copy only.
    pub(crate) hedge_after: Option<Duration>,
    /// Where the answering copy's time is recorded.
    pub(crate) timings: Option<&'a Timings>,
}

impl<'a> Plan<'a> {
    /// The plan for an exchange under `deadline` with a hedge floor
    /// (`None`: no hedging) and the gateway's timings.
    pub(crate) fn new(
        exchange: Option<Exchange>,
        floor: Option<Duration>,
        timings: &'a Timings,
        deadline: Deadline,
    ) -> Self {
        let limit = Duration::from_millis(deadline.ms);
        Plan {
            exchange,
            hedge_after: hedge_delay(exchange, floor, timings, limit),
            timings: Some(timings),
        }
    }

    /// One copy, nothing recorded.
    pub(crate) fn single() -> Self {
        Plan {
            exchange: None,
            hedge_after: None,
            timings: None,
        }
    }
}

/// `GET url`; only status 200 is accepted.
pub(crate) async fn get(
    url: &HttpUrl,
    limit: usize,
    deadline: Deadline,
    plan: &Plan<'_>,
) -> Result<Fetched, HttpError> {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: natkit UPnP/1.1\r\n\r\n",
        url.path, url.addr
    );
    let fetched = exchange(&Target::from(url), head.into_bytes(), limit, deadline, plan).await?;
    if fetched.status != 200 {
        return Err(HttpError::Status(fetched.status));
    }
    Ok(fetched)
}

/// `POST url` with a SOAP body; status 200 and 500 (which carries UPnP
/// faults) are accepted.
pub(crate) async fn post_soap(
    url: &HttpUrl,
    soap_action: &str,
    body: &str,
    limit: usize,
    deadline: Deadline,
    plan: &Plan<'_>,
) -> Result<Fetched, HttpError> {
    let host = url.addr.to_string();
    let soap = Soap {
        host: &host,
        path: &url.path,
        soap_action,
        body,
    };
    post_soap_to(&Target::from(url), &soap, limit, deadline, plan).await
}

/// A SOAP request: the `Host` header, the control path, the `SOAPAction`
/// header and the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Soap<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a str,
    pub(crate) soap_action: &'a str,
    pub(crate) body: &'a str,
}

/// [`post_soap`] to `target`, which may be an IPv6 address reached from a
/// given local address.
pub(crate) async fn post_soap_to(
    target: &Target,
    soap: &Soap<'_>,
    limit: usize,
    deadline: Deadline,
    plan: &Plan<'_>,
) -> Result<Fetched, HttpError> {
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: natkit UPnP/1.1\r\n\
         Content-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: {}\r\nContent-Length: {}\r\n\r\n",
        soap.path,
        soap.host,
        soap.soap_action,
        soap.body.len()
    )
    .into_bytes();
    req.extend_from_slice(soap.body.as_bytes());
    let fetched = exchange(target, req, limit, deadline, plan).await?;
    if fetched.status != 200 && fetched.status != 500 {
        return Err(HttpError::Status(fetched.status));
    }
    Ok(fetched)
}

/// Where an exchange connects to, and from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// The server (a link-local IPv6 address carries its scope).
    pub(crate) remote: SocketAddr,
    /// The local address to connect from (`None`: the kernel's choice).
    pub(crate) bind: Option<IpAddr>,
}

impl From<&HttpUrl> for Target {
    fn from(url: &HttpUrl) -> Target {
        Target {
            remote: SocketAddr::V4(url.addr),
            bind: None,
        }
    }
}

/// The exchange under its deadline. A fault that our own duplicate may have
/// caused, held back while another copy was in flight, is the answer if
/// nothing better came in time.
async fn exchange(
    target: &Target,
    request: Vec<u8>,
    limit: usize,
    deadline: Deadline,
    plan: &Plan<'_>,
) -> Result<Fetched, HttpError> {
    let mut held = None;
    let raced = tokio::time::timeout_at(
        deadline.at,
        hedged(target, &request, limit, deadline.at, plan, &mut held),
    )
    .await;
    match raced {
        Ok(r) => r,
        Err(_) => held.ok_or(HttpError::Timeout { ms: deadline.ms }),
    }
}

type Copy<'a> = Pin<Box<dyn Future<Output = (Result<Fetched, HttpError>, Duration)> + Send + 'a>>;

/// Sends the request, and again on a fresh connection when the plan's
/// [`Race`] says (see [`crate::decide::hedge`]), and returns the answer it takes.
/// A fault held back while other copies were in flight goes to `held`.
///
/// The copies are futures inside this one, not tasks: returning (or being
/// dropped at the deadline) drops the others, which closes their
/// connections at once.
async fn hedged<'a>(
    target: &'a Target,
    request: &'a [u8],
    limit: usize,
    deadline: Instant,
    plan: &Plan<'_>,
    held: &mut Option<Fetched>,
) -> Result<Fetched, HttpError> {
    let copy = move || -> Copy<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let r = exchange_unbounded_in_time(target, request, limit).await;
            (r, started.elapsed())
        })
    };
    let name = plan.exchange.map_or("SOAP action", Exchange::name);
    let mut race = Race::new(plan.exchange, plan.hedge_after, Instant::now(), deadline);
    let mut copies: Vec<Copy<'a>> = vec![copy()];
    loop {
        let hedge_at = race.hedge_at();
        let (i, result, took) = tokio::select! {
            (i, (result, took)) = first_done(&mut copies) => (i, result, took),
            () = tokio::time::sleep_until(hedge_at.unwrap_or(deadline)), if hedge_at.is_some() => {
                race.hedged();
                tracing::debug!(kind = name, copy = race.sent(), "no answer yet: hedging on a fresh connection");
                copies.push(copy());
                continue;
            }
        };
        // Dropping the copy closes its connection.
        drop(copies.swap_remove(i));
        match result {
            Ok(mut fetched) => {
                fetched.copies = race.sent();
                if let (Some(t), Some(e)) = (plan.timings, plan.exchange) {
                    t.record(e, took);
                }
                let fault = || match parse_response(&fetched.body, name) {
                    Ok(SoapReply::Fault { code, .. }) => Some(code),
                    _ => None,
                };
                match race.answered(fault) {
                    // Returning drops the other copies and their connections.
                    OnAnswer::Take => return Ok(fetched),
                    OnAnswer::Hold => {
                        held.get_or_insert(fetched);
                    }
                }
            }
            Err(e) => match race.failed() {
                OnFailure::Over => {
                    return match held.take() {
                        Some(f) => Ok(f),
                        None => Err(e),
                    };
                }
                OnFailure::Wait => {
                    tracing::debug!(kind = name, error = %e, "one copy failed; others still in flight");
                }
            },
        }
    }
}

/// The first of `copies` to finish, with its index. Pending while empty.
async fn first_done<T>(copies: &mut [Pin<Box<dyn Future<Output = T> + Send + '_>>]) -> (usize, T) {
    poll_fn(|cx| {
        for (i, c) in copies.iter_mut().enumerate() {
            if let Poll::Ready(v) = c.as_mut().poll(cx) {
                return Poll::Ready((i, v));
            }
        }
        Poll::Pending
    })
    .await
}

/// A new connection attempt starts this often while none has completed.
const CONNECT_RACE_INTERVAL: Duration = Duration::from_millis(500);
/// The most connection attempts in flight for one exchange.
const CONNECT_RACE_MAX: usize = 8;

/// Connects to `addr`, starting a fresh attempt every [`CONNECT_RACE_INTERVAL`] until
/// one completes (the caller's deadline bounds the whole). On a lossy link a lost SYN
/// or SYN-ACK otherwise costs the kernel's 1 s, then 3 s retransmission, which does
/// not fit the description and SOAP time limits: in the NAT lab with 30 % loss on the
/// router, single attempts failed most UPnP mappings. A refusal or any other error
/// ends it at once: the router answered.
async fn connect(target: Target) -> Result<TcpStream, HttpError> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next), if attempts.len() < CONNECT_RACE_MAX => {
                attempts.spawn(open(target));
                next += CONNECT_RACE_INTERVAL;
            }
            Some(done) = attempts.join_next() => match done {
                // Dropping the set aborts the other attempts (and closes them).
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => return Err(HttpError::Connect { kind: e.kind() }),
                Err(_) => {}
            },
        }
    }
}

/// One connection to `target`, from its local address if it names one.
/// Binding makes the router see that address: miniupnpd lets only a
/// pinhole's own address add, renew or delete it.
async fn open(target: Target) -> std::io::Result<TcpStream> {
    let Some(local) = target.bind else {
        return TcpStream::connect(target.remote).await;
    };
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(target.remote).await
}

async fn exchange_unbounded_in_time(
    target: &Target,
    request: &[u8],
    limit: usize,
) -> Result<Fetched, HttpError> {
    let io = |e: std::io::Error| HttpError::Io { kind: e.kind() };
    let mut stream = connect(*target).await?;
    // Closing sends RST, which also throws away whatever of the request
    // the kernel still holds. A hedged copy dropped because another
    // answered may have its request in the send queue, retransmitted under
    // loss: delivered late, an AddPortMapping copy made the mapping again
    // after the program had deleted it and exited (seen once in 60 runs of
    // natkit-portmap's lab_loss_all). Every exchange is `Connection: close`
    // and over once its answer is read, so nothing else is lost.
    let _ = stream.set_zero_linger();
    let local = stream.local_addr().map_err(io)?;
    stream.write_all(request).await.map_err(io)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut head = None;
    // Raw chunked bodies may carry framing overhead; allow some, not unbounded.
    let raw_cap = MAX_HEAD + limit.saturating_mul(2) + 1024;
    loop {
        if head.is_none() {
            head = parse_head(&buf)?;
        }
        if let Some(h) = head {
            let raw = &buf[h.len..];
            match h.framing {
                Framing::Length(n) => {
                    if n > limit {
                        return Err(HttpError::BodyTooLarge { limit });
                    }
                    if raw.len() >= n {
                        return Ok(Fetched {
                            status: h.status,
                            body: raw[..n].to_vec(),
                            local,
                            copies: 1,
                        });
                    }
                }
                Framing::Chunked => {
                    if let Some(body) = decode_chunked(raw, limit)? {
                        return Ok(Fetched {
                            status: h.status,
                            body,
                            local,
                            copies: 1,
                        });
                    }
                }
                Framing::UntilClose => {
                    if raw.len() > limit {
                        return Err(HttpError::BodyTooLarge { limit });
                    }
                }
            }
        }
        if buf.len() > raw_cap {
            return Err(HttpError::BodyTooLarge { limit });
        }
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return match head {
                Some(h) if h.framing == Framing::UntilClose => Ok(Fetched {
                    status: h.status,
                    body: buf[h.len..].to_vec(),
                    local,
                    copies: 1,
                }),
                _ => Err(HttpError::Truncated),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
