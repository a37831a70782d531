//! Reading and writing one dial-back message on a TCP stream, bounded.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::WireError;
use super::message::{HEADER_LEN, MAGIC, MAX_MESSAGE_LEN, Message, Nonce, VERSION};

/// Why no message could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream failed or ended early.
    Io(io::Error),
    /// The bytes are not a valid message.
    Malformed {
        /// What was wrong.
        error: WireError,
        /// The nonce, if the bytes got that far.
        nonce: Option<Nonce>,
    },
}

/// One message read from `stream`, and how many bytes it took. Reads the
/// 8-byte header first and never more than [`MAX_MESSAGE_LEN`] in all; a
/// header that is not a dial-back header stops the read at once.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    received: &mut usize,
) -> Result<Message, ReadError> {
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let header = buf
        .get_mut(..8)
        .ok_or(ReadError::Io(io::ErrorKind::Other.into()))?;
    read_counted(stream, header, received).await?;
    let malformed = |error| ReadError::Malformed { error, nonce: None };
    if buf[..4] != MAGIC {
        return Err(malformed(WireError::BadMagic));
    }
    if buf[4] != VERSION {
        return Err(malformed(WireError::UnsupportedVersion(buf[4])));
    }
    let declared = usize::from(u16::from_be_bytes([buf[6], buf[7]]));
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&declared) {
        return Err(malformed(WireError::LengthMismatch {
            declared,
            actual: declared.clamp(HEADER_LEN, MAX_MESSAGE_LEN),
        }));
    }
    let rest = buf
        .get_mut(8..declared)
        .ok_or(ReadError::Io(io::ErrorKind::Other.into()))?;
    read_counted(stream, rest, received).await?;
    let bytes = buf.get(..declared).unwrap_or(&[]);
    Message::parse(bytes).map_err(|error| {
        let mut nonce = Nonce::default();
        nonce.0.copy_from_slice(&bytes[8..HEADER_LEN]);
        ReadError::Malformed {
            error,
            nonce: Some(nonce),
        }
    })
}

async fn read_counted<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
    received: &mut usize,
) -> Result<(), ReadError> {
    let mut at = 0;
    while at < buf.len() {
        let n = stream.read(&mut buf[at..]).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        at += n;
        *received += n;
    }
    Ok(())
}

/// Writes `message` to `stream`; returns the bytes written.
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    stream: &mut W,
    message: &Message,
) -> io::Result<usize> {
    let mut buf = [0u8; MAX_MESSAGE_LEN];
    let n = message
        .emit(&mut buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    stream.write_all(&buf[..n]).await?;
    stream.flush().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialback::{DialPort, List};
    use natkit_core::Protocol;

    fn probe() -> Message {
        Message::Probe {
            nonce: Nonce([3; 16]),
            port: DialPort {
                port: 443,
                protocol: Protocol::Tcp,
            },
        }
    }

    #[tokio::test]
    async fn reads_what_was_written_and_counts_bytes() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let n = write_message(&mut a, &probe()).await.unwrap();
        let mut got = 0;
        assert_eq!(read_message(&mut b, &mut got).await.unwrap(), probe());
        assert_eq!(got, n);
    }

    #[tokio::test]
    async fn stops_at_a_bad_header_and_reports_nonce_of_a_bad_body() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut got = 0;
        assert!(matches!(
            read_message(&mut b, &mut got).await,
            Err(ReadError::Malformed {
                error: WireError::BadMagic,
                nonce: None
            })
        ));
        assert_eq!(got, 8, "reads only the header of garbage");

        // A request header with a zero port count.
        let req = Message::Request {
            nonce: Nonce([9; 16]),
            ports: List::from_slice(&[DialPort {
                port: 1,
                protocol: Protocol::Udp,
            }])
            .unwrap(),
        };
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let n = req.emit(&mut buf).unwrap();
        buf[24] = 0;
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&buf[..n]).await.unwrap();
        let mut got = 0;
        match read_message(&mut b, &mut got).await {
            Err(ReadError::Malformed { error, nonce }) => {
                assert_eq!(error, WireError::BadPortCount(0));
                assert_eq!(nonce, Some(Nonce([9; 16])));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got, n);
    }

    #[tokio::test]
    async fn refuses_oversized_lengths_and_early_ends() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(&[VERSION, 1, 0xff, 0xff]);
        a.write_all(&h).await.unwrap();
        let mut got = 0;
        assert!(matches!(
            read_message(&mut b, &mut got).await,
            Err(ReadError::Malformed {
                error: WireError::LengthMismatch { .. },
                ..
            })
        ));
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&MAGIC).await.unwrap();
        drop(a);
        assert!(matches!(
            read_message(&mut b, &mut 0).await,
            Err(ReadError::Io(_))
        ));
    }
}
