//! The tokio side of HTTP: one request per connection, every byte counted
//! and the whole exchange under one deadline, so a router that trickles or
//! floods cannot hold natkit up or make it allocate without bound.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::http::{Framing, HttpError, MAX_HEAD, decode_chunked, parse_head};
use crate::url::HttpUrl;

/// A complete response.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// The status code.
    pub(crate) status: u16,
    /// The body (de-chunked).
    pub(crate) body: Vec<u8>,
    /// This host's address on the connection: what the router sees.
    pub(crate) local: SocketAddr,
}

/// `GET url`; only status 200 is accepted.
pub(crate) async fn get(url: &HttpUrl, limit: usize, time: Duration) -> Result<Fetched, HttpError> {
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: natkit UPnP/1.1\r\n\r\n",
        url.path, url.addr
    );
    let fetched = exchange(url, head.into_bytes(), limit, time).await?;
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
    time: Duration,
) -> Result<Fetched, HttpError> {
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: natkit UPnP/1.1\r\n\
         Content-Type: text/xml; charset=\"utf-8\"\r\nSOAPAction: {soap_action}\r\nContent-Length: {}\r\n\r\n",
        url.path,
        url.addr,
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    let fetched = exchange(url, req, limit, time).await?;
    if fetched.status != 200 && fetched.status != 500 {
        return Err(HttpError::Status(fetched.status));
    }
    Ok(fetched)
}

async fn exchange(
    url: &HttpUrl,
    request: Vec<u8>,
    limit: usize,
    time: Duration,
) -> Result<Fetched, HttpError> {
    let ms = u64::try_from(time.as_millis()).unwrap_or(u64::MAX);
    tokio::time::timeout(time, exchange_unbounded_in_time(url, request, limit))
        .await
        .map_err(|_| HttpError::Timeout { ms })?
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
async fn connect(addr: SocketAddr) -> Result<TcpStream, HttpError> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next), if attempts.len() < CONNECT_RACE_MAX => {
                attempts.spawn(TcpStream::connect(addr));
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

async fn exchange_unbounded_in_time(
    url: &HttpUrl,
    request: Vec<u8>,
    limit: usize,
) -> Result<Fetched, HttpError> {
    let io = |e: std::io::Error| HttpError::Io { kind: e.kind() };
    let mut stream = connect(SocketAddr::V4(url.addr)).await?;
    let local = stream.local_addr().map_err(io)?;
    stream.write_all(&request).await.map_err(io)?;
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
                        });
                    }
                }
                Framing::Chunked => {
                    if let Some(body) = decode_chunked(raw, limit)? {
                        return Ok(Fetched {
                            status: h.status,
                            body,
                            local,
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
                }),
                _ => Err(HttpError::Truncated),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
