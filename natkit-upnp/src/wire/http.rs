//! HTTP/1.1 response framing, sans-IO: the status line and headers, and
//! chunked transfer decoding, with hard size limits.

/// The largest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
pub const MAX_HEADERS: usize = 64;

/// What can be wrong with an HTTP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The TCP connection could not be made.
    #[error("could not connect: {kind}")]
    Connect {
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// Sending or receiving failed after connecting.
    #[error("connection failed: {kind}")]
    Io {
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// The whole exchange took longer than its time limit.
    #[error("no complete answer within {ms} ms")]
    Timeout {
        /// The limit, in milliseconds.
        ms: u64,
    },
    /// The head was larger than [`MAX_HEAD`] or had more than [`MAX_HEADERS`] lines.
    #[error("response head is larger than {MAX_HEAD} bytes or {MAX_HEADERS} lines")]
    HeadTooLarge,
    /// The body was (or announced to be) larger than its limit.
    #[error("response body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The status line or a header was malformed.
    #[error("malformed response head")]
    MalformedHead,
    /// The connection closed before the announced body was complete.
    #[error("connection closed before the response was complete")]
    Truncated,
    /// The chunked encoding was malformed.
    #[error("malformed chunked encoding")]
    BadChunk,
    /// The status code was not one the caller accepts.
    #[error("HTTP status {0}")]
    Status(u16),
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body runs until the connection closes.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// How the body is delimited.
    pub framing: Framing,
    /// The length of the head including the blank line.
    pub len: usize,
}

/// Parses the head at the start of `buf`: `Ok(None)` while incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let end = match find(buf, b"\r\n\r\n") {
        Some(i) => i + 4,
        None => {
            return if buf.len() > MAX_HEAD {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(None)
            };
        }
    };
    if end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let text = std::str::from_utf8(&buf[..end - 4]).map_err(|_| HttpError::MalformedHead)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::MalformedHead)?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(HttpError::MalformedHead);
    }
    let status = parts
        .next()
        // Exactly three digits: `parse` alone would also take "+20".
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or(HttpError::MalformedHead)?;
    let mut framing = Framing::UntilClose;
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let (name, value) = line.split_once(':').ok_or(HttpError::MalformedHead)?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value
                .to_ascii_lowercase()
                .split(',')
                .any(|v| v.trim() == "chunked")
            {
                framing = Framing::Chunked;
            }
        } else if name.eq_ignore_ascii_case("content-length") && framing != Framing::Chunked {
            let len: usize = value.parse().map_err(|_| HttpError::MalformedHead)?;
            if matches!(framing, Framing::Length(other) if other != len) {
                return Err(HttpError::MalformedHead);
            }
            framing = Framing::Length(len);
        }
    }
    Ok(Some(Head {
        status,
        framing,
        len: end,
    }))
}

/// Decodes a chunked body: `Ok(None)` while incomplete, the body once the
/// last chunk has arrived. Trailers are skipped. Fails if the decoded body
/// would exceed `limit`.
pub fn decode_chunked(mut raw: &[u8], limit: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = find(raw, b"\r\n") else {
            return if raw.len() > 64 {
                Err(HttpError::BadChunk)
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&raw[..line_end]).map_err(|_| HttpError::BadChunk)?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        if size_hex.is_empty() || size_hex.len() > 8 {
            return Err(HttpError::BadChunk);
        }
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| HttpError::BadChunk)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            // Trailers end with an empty line; wait for it.
            let done = raw.starts_with(b"\r\n") || find(raw, b"\r\n\r\n").is_some();
            return Ok(done.then_some(body));
        }
        if body.len() + size > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
        if raw.len() < size + 2 {
            return Ok(None);
        }
        if &raw[size..size + 2] != b"\r\n" {
            return Err(HttpError::BadChunk);
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_heads() {
        let msg: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nCONTENT-LENGTH: 12\r\n\r\nbody";
        assert_eq!(
            parse_head(msg).unwrap(),
            Some(Head {
                status: 200,
                framing: Framing::Length(12),
                len: msg.len() - b"body".len(),
            })
        );
        let h = parse_head(b"HTTP/1.0 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.framing), (500, Framing::Chunked));
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::UntilClose);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nX: y\r\n").unwrap(), None);
    }

    #[test]
    fn rejects_bad_heads() {
        assert_eq!(
            parse_head(b"SSH-2.0-x\r\n\r\n"),
            Err(HttpError::MalformedHead)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(HttpError::MalformedHead)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HttpError::MalformedHead)
        );
        // A status code is exactly three digits: `+20` is not 20 (a fuzz finding).
        assert_eq!(
            parse_head(b"HTTP/1.1 +20 OK\r\n\r\n"),
            Err(HttpError::MalformedHead)
        );
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Err(HttpError::HeadTooLarge)
        );
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse_head(many.as_bytes()), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn decodes_chunks() {
        assert_eq!(
            decode_chunked(b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\n\r\n", 100).unwrap(),
            Some(b"Wikipedia ".to_vec())
        );
        assert_eq!(decode_chunked(b"4\r\nWi", 100).unwrap(), None);
        assert_eq!(decode_chunked(b"4\r\nWiki\r\n0\r\n", 100).unwrap(), None);
        assert_eq!(
            decode_chunked(b"4\r\nWiki\r\n0\r\nX-T: 1\r\n\r\n", 100).unwrap(),
            Some(b"Wiki".to_vec())
        );
        assert_eq!(decode_chunked(b"zz\r\n", 100), Err(HttpError::BadChunk));
        assert_eq!(
            decode_chunked(b"4\r\nWikiXX", 100),
            Err(HttpError::BadChunk)
        );
        assert_eq!(
            decode_chunked(b"ffff\r\n", 100),
            Err(HttpError::BodyTooLarge { limit: 100 })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_head(&bytes);
            let _ = decode_chunked(&bytes, 1000);
        }
    }
}
