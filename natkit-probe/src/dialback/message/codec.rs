//! Dial-back messages: parsing and emitting, bounds-checked.

use super::*;

/// Bounds-checked reads over a message.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.at.saturating_add(n);
        let s = self.buf.get(self.at..end).ok_or(WireError::Truncated {
            needed: end,
            got: self.buf.len(),
        })?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn reserved(&mut self) -> Result<(), WireError> {
        let at = self.at;
        if self.u8()? != 0 {
            return Err(WireError::Reserved(at));
        }
        Ok(())
    }

    fn port(&mut self) -> Result<DialPort, WireError> {
        let port = self.u16()?;
        let protocol = match self.u8()? {
            PROTO_TCP => Protocol::Tcp,
            PROTO_UDP => Protocol::Udp,
            other => return Err(WireError::BadProtocol(other)),
        };
        self.reserved()?;
        if port == 0 {
            return Err(WireError::PortZero);
        }
        Ok(DialPort { port, protocol })
    }

    fn count(&mut self) -> Result<usize, WireError> {
        let n = usize::from(self.u8()?);
        self.reserved()?;
        if n == 0 || n > MAX_PORTS {
            return Err(WireError::BadPortCount(n));
        }
        Ok(n)
    }
}

fn proto_byte(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

impl Message {
    /// The message's nonce.
    pub fn nonce(&self) -> Nonce {
        match *self {
            Message::Request { nonce, .. }
            | Message::Probe { nonce, .. }
            | Message::ProbeAck { nonce, .. }
            | Message::Report { nonce, .. }
            | Message::Refusal { nonce, .. } => nonce,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Message::Request { .. } => KIND_REQUEST,
            Message::Probe { .. } => KIND_PROBE,
            Message::ProbeAck { .. } => KIND_PROBE_ACK,
            Message::Report { .. } => KIND_REPORT,
            Message::Refusal { .. } => KIND_REFUSAL,
        }
    }

    /// Parses exactly one message filling all of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
        let mut r = Reader { buf, at: 0 };
        if r.take(4)? != MAGIC {
            return Err(WireError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        let kind = r.u8()?;
        let declared = usize::from(r.u16()?);
        if declared != buf.len() {
            return Err(WireError::LengthMismatch {
                declared,
                actual: buf.len(),
            });
        }
        let mut nonce = Nonce::default();
        nonce.0.copy_from_slice(r.take(NONCE_LEN)?);
        let message = match kind {
            KIND_REQUEST => {
                let n = r.count()?;
                let mut ports = List::new();
                for _ in 0..n {
                    // Cannot overflow: n ≤ MAX_PORTS was checked.
                    let _ = ports.push(r.port()?);
                }
                Message::Request { nonce, ports }
            }
            KIND_PROBE => Message::Probe {
                nonce,
                port: r.port()?,
            },
            KIND_PROBE_ACK => Message::ProbeAck {
                nonce,
                port: r.port()?,
            },
            KIND_REPORT => {
                let family = r.u8()?;
                r.reserved()?;
                let port = r.u16()?;
                let ip = match family {
                    4 => {
                        let b = r.take(4)?;
                        IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                    }
                    6 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(r.take(16)?);
                        IpAddr::V6(Ipv6Addr::from(a))
                    }
                    other => return Err(WireError::BadFamily(other)),
                };
                let n = r.count()?;
                let mut results = List::new();
                for _ in 0..n {
                    let port_no = r.u16()?;
                    let protocol = match r.u8()? {
                        PROTO_TCP => Protocol::Tcp,
                        PROTO_UDP => Protocol::Udp,
                        other => return Err(WireError::BadProtocol(other)),
                    };
                    if port_no == 0 {
                        return Err(WireError::PortZero);
                    }
                    let outcome = DialOutcome::from_code(r.u8()?)?;
                    let rtt = Duration::from_micros(u64::from(r.u32()?));
                    let _ = results.push(DialResult {
                        port: DialPort {
                            port: port_no,
                            protocol,
                        },
                        outcome,
                        rtt,
                    });
                }
                Message::Report {
                    nonce,
                    observed: SocketAddr::new(ip, port),
                    results,
                }
            }
            KIND_REFUSAL => {
                let reason = RefusalCode::from_code(r.u16()?)?;
                r.reserved()?;
                r.reserved()?;
                Message::Refusal { nonce, reason }
            }
            other => return Err(WireError::UnknownKind(other)),
        };
        // The declared length matched the buffer, so anything left over
        // means the counts and the length disagree.
        if r.at != buf.len() {
            return Err(WireError::LengthMismatch {
                declared,
                actual: r.at,
            });
        }
        Ok(message)
    }

    /// The number of bytes [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Message::Request { ports, .. } => 2 + ports.len() * PORT_LEN,
                Message::Probe { .. } | Message::ProbeAck { .. } => PORT_LEN,
                Message::Report {
                    observed, results, ..
                } => {
                    let addr = if observed.is_ipv4() { 4 } else { 16 };
                    4 + addr + 2 + results.len() * RESULT_LEN
                }
                Message::Refusal { .. } => 4,
            }
    }

    /// Writes the message to the start of `buf`; returns its length.
    /// Refuses lists that are empty (a request or report needs a port) and
    /// port 0, so everything emitted parses back.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.buffer_len();
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(WireError::BufferTooSmall { needed: len, got })?;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let check_port = |p: &DialPort| {
            if p.port == 0 {
                Err(WireError::PortZero)
            } else {
                Ok(())
            }
        };
        let check_count = |n: usize| {
            if n == 0 || n > MAX_PORTS {
                Err(WireError::BadPortCount(n))
            } else {
                Ok(())
            }
        };
        match self {
            Message::Request { ports, .. } => {
                check_count(ports.len())?;
                ports.as_slice().iter().try_for_each(check_port)?;
            }
            Message::Probe { port, .. } | Message::ProbeAck { port, .. } => check_port(port)?,
            Message::Report { results, .. } => {
                check_count(results.len())?;
                results
                    .as_slice()
                    .iter()
                    .try_for_each(|r| check_port(&r.port))?;
            }
            Message::Refusal { .. } => {}
        }
        put(&MAGIC);
        put(&[VERSION, self.kind()]);
        // len ≤ MAX_MESSAGE_LEN, far below u16::MAX.
        put(&(len as u16).to_be_bytes());
        put(&self.nonce().0);
        let port_bytes = |p: &DialPort| {
            let b = p.port.to_be_bytes();
            [b[0], b[1], proto_byte(p.protocol), 0]
        };
        match self {
            Message::Request { ports, .. } => {
                put(&[ports.len() as u8, 0]);
                for p in ports.as_slice() {
                    put(&port_bytes(p));
                }
            }
            Message::Probe { port, .. } | Message::ProbeAck { port, .. } => {
                put(&port_bytes(port));
            }
            Message::Report {
                observed, results, ..
            } => {
                let family = if observed.is_ipv4() { 4 } else { 6 };
                put(&[family, 0]);
                put(&observed.port().to_be_bytes());
                match observed.ip() {
                    IpAddr::V4(a) => put(&a.octets()),
                    IpAddr::V6(a) => put(&a.octets()),
                }
                put(&[results.len() as u8, 0]);
                for r in results.as_slice() {
                    let p = r.port.port.to_be_bytes();
                    put(&[p[0], p[1], proto_byte(r.port.protocol), r.outcome.code()]);
                    let us = u32::try_from(r.rtt.as_micros()).unwrap_or(u32::MAX);
                    put(&us.to_be_bytes());
                }
            }
            Message::Refusal { reason, .. } => {
                put(&reason.code().to_be_bytes());
                put(&[0, 0]);
            }
        }
        Ok(len)
    }
}
