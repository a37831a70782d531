//! The tokio driver for STUN over TCP (RFC 8489 §6.2.2): messages back to back on the
//! stream, each framed by its own header (read the 20-byte header, then its length).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::plan::RtoPlan;
use super::request::BindingRequest;
use super::response::BindingResponse;
use super::transaction::{AcceptFrom, BindingTransaction};
use crate::{Error, HEADER_LEN, Message};

/// RFC 8489 §6.2.2: a client over TCP waits Ti = 39.5 s for the answer.
pub const TCP_TIMEOUT: Duration = Duration::from_millis(39_500);

/// Reads one STUN message from a stream into `buf` (which must hold 20 + 65535 bytes)
/// and returns its length. Fails with [`Error::NotStun`] if the header cannot be STUN
/// (the stream is then out of sync and should be closed).
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
) -> Result<usize, Error> {
    let header = buf.get_mut(..HEADER_LEN).ok_or(Error::BufferTooSmall {
        needed: HEADER_LEN,
        available: 0,
    })?;
    stream
        .read_exact(header)
        .await
        .map_err(|e| Error::io("read", &e))?;
    if header[0] & 0xc0 != 0 {
        return Err(Error::NotStun);
    }
    let total = Message::frame_len(header).unwrap_or(HEADER_LEN);
    let available = buf.len();
    let body = buf
        .get_mut(HEADER_LEN..total)
        .ok_or(Error::BufferTooSmall {
            needed: total,
            available,
        })?;
    stream
        .read_exact(body)
        .await
        .map_err(|e| Error::io("read", &e))?;
    Ok(total)
}

/// One Binding transaction over a new TCP connection to `server`; the whole exchange
/// (connect included) must finish within `timeout` ([`TCP_TIMEOUT`] per the RFC).
/// Messages on the stream with other transaction ids are skipped.
pub async fn binding_tcp(
    server: SocketAddr,
    request: &BindingRequest,
    timeout: Duration,
) -> Result<BindingResponse, Error> {
    let start = tokio::time::Instant::now();
    let timed_out = || Error::Timeout {
        server,
        sends: 1,
        elapsed: start.elapsed(),
    };
    let mut t = BindingTransaction::new(
        request,
        server,
        AcceptFrom::Destination,
        RtoPlan::reliable(timeout),
        &mut rand::rng(),
    )?;
    let exchange = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|e| Error::io("connect", &e))?;
        let payload = t
            .poll_transmit(super::now())
            .map(|tx| tx.payload.to_vec())
            .unwrap_or_default();
        stream
            .write_all(&payload)
            .await
            .map_err(|e| Error::io("write", &e))?;
        let mut buf = vec![0u8; HEADER_LEN + usize::from(u16::MAX)];
        loop {
            let n = read_frame(&mut stream, &mut buf).await?;
            t.handle_input(super::now(), server, &buf[..n]);
            if let Some(outcome) = t.take_outcome() {
                return outcome;
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(timed_out()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_read_back_to_back() {
        let a = BindingRequest::new()
            .encode(crate::TransactionId::new([1; 12]), 0)
            .expect("a");
        let b = BindingRequest {
            software: Some("x".into()),
            ..BindingRequest::new()
        }
        .encode(crate::TransactionId::new([2; 12]), 0)
        .expect("b");
        let mut stream: Vec<u8> = [a.clone(), b.clone()].concat();
        stream.extend_from_slice(&[0xff; 20]);
        let mut r = &stream[..];
        let mut buf = vec![0u8; HEADER_LEN + 65535];
        let n = read_frame(&mut r, &mut buf).await.expect("first");
        assert_eq!(&buf[..n], &a[..]);
        let n = read_frame(&mut r, &mut buf).await.expect("second");
        assert_eq!(&buf[..n], &b[..]);
        assert_eq!(read_frame(&mut r, &mut buf).await, Err(Error::NotStun));
        let mut short = &a[..25];
        assert!(matches!(
            read_frame(&mut short, &mut buf).await,
            Err(Error::Io { .. })
        ));
    }
}
