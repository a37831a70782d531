//! The SIP side of the ALG check, sans-IO: the request the client sends, the
//! echo server's rule for what it echoes, and the comparison of what came back
//! with what was sent.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// The largest SIP message the echo server reads or echoes, in bytes. The
/// check's OPTIONS is about 600 bytes; 4 KiB leaves room for an ALG that
/// lengthens it, and bounds what one source can make the server hold or send.
pub const MAX_SIP_LEN: usize = 4096;

/// The port SIP ALGs act on, and so the port the check uses.
pub const SIP_PORT: u16 = 5060;

/// How a SIP message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SipTransport {
    /// One request per datagram.
    Udp,
    /// A byte stream, framed by `Content-Length`.
    Tcp,
}

impl SipTransport {
    /// `UDP` or `TCP`, as in a Via header.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "UDP",
            SipTransport::Tcp => "TCP",
        }
    }
}

/// The OPTIONS request of the check: it carries `local` (this host's own
/// address and port, private behind a NAT) in Via, From, Contact, Call-ID and
/// the SDP body's `o=`, `c=` and `m=` lines — every place a SIP ALG rewrites.
/// `token` makes the branch, tag and Call-ID unique to one check.
///
/// OPTIONS, because it is the one request a SIP device answers without side
/// effects (no call, no registration), and the only method the echo server
/// accepts (see [`echoable_datagram`]).
pub fn options_request(
    transport: SipTransport,
    local: SocketAddr,
    server: SocketAddr,
    token: &str,
) -> Vec<u8> {
    let (family, host) = match local.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let port = local.port();
    let mut body = String::new();
    // The session id is the token's digits, so it stays numeric as SDP wants.
    let session: u64 = token.bytes().fold(0u64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u64::from(b)) % 1_000_000_000
    });
    let _ = write!(
        body,
        "v=0\r\no=natkit {session} 1 IN {family} {host}\r\ns=natkit\r\nc=IN {family} {host}\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP 0\r\n"
    );
    let contact_param = match transport {
        SipTransport::Udp => "",
        SipTransport::Tcp => ";transport=tcp",
    };
    let mut m = String::new();
    let _ = write!(
        m,
        "OPTIONS sip:natkit-echo@{server} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {local};branch=z9hG4bK{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:natkit@{local}>;tag={token}\r\n\
         To: <sip:natkit-echo@{server}>\r\n\
         Call-ID: {token}@{host}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:natkit@{local}{contact_param}>\r\n\
         User-Agent: natkit sip-alg-check\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{body}",
        t = transport.as_str(),
        len = body.len(),
    );
    m.into_bytes()
}

/// Why the echo server does not echo a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotEchoed {
    /// Longer than [`MAX_SIP_LEN`].
    TooLong,
    /// Not an `OPTIONS sip:… SIP/2.0` request with a complete header section.
    NotOptions,
    /// (TCP) `Content-Length` is missing or not a number.
    BadLength,
}

/// Whether the echo server echoes this datagram (all of it): an `OPTIONS`
/// request line, printable header lines and the blank line that ends them,
/// at most [`MAX_SIP_LEN`] bytes. The body is not checked: an ALG that
/// garbles it is what the check is looking for.
///
/// Why so strict: a UDP echo is a reflector for anyone who forges a source
/// address. Echoing only OPTIONS means the victim of a forged source receives
/// a SIP capabilities query from us — never a call (INVITE), a registration
/// or the bytes of another protocol — and never more bytes than the forger
/// sent (see [`crate::sip`]).
pub fn echoable_datagram(d: &[u8]) -> Result<(), NotEchoed> {
    if d.len() > MAX_SIP_LEN {
        return Err(NotEchoed::TooLong);
    }
    header_end(d)
        .filter(|_| request_line_ok(d))
        .map(|_| ())
        .ok_or(NotEchoed::NotOptions)
}

/// What the TCP echo has of a request so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A complete request of this many bytes is at the start of the buffer.
    Complete(usize),
    /// Not yet complete; read more.
    Incomplete,
    /// Never going to be echoed; close.
    Rejected(NotEchoed),
}

/// Frames a request on a TCP stream (RFC 3261 §18.3: `Content-Length` is
/// mandatory there) from the bytes read so far.
pub fn frame_stream(buf: &[u8]) -> Framing {
    const METHOD: &[u8] = b"OPTIONS sip";
    // Reject early what cannot become an OPTIONS request.
    let n = buf.len().min(METHOD.len());
    if buf[..n] != METHOD[..n] {
        return Framing::Rejected(NotEchoed::NotOptions);
    }
    let Some(end) = header_end(buf) else {
        return if buf.len() >= MAX_SIP_LEN {
            Framing::Rejected(NotEchoed::TooLong)
        } else {
            Framing::Incomplete
        };
    };
    if !request_line_ok(buf) {
        return Framing::Rejected(NotEchoed::NotOptions);
    }
    let Some(len) = content_length(&buf[..end]) else {
        return Framing::Rejected(NotEchoed::BadLength);
    };
    let total = end.saturating_add(len);
    if total > MAX_SIP_LEN {
        Framing::Rejected(NotEchoed::TooLong)
    } else if buf.len() < total {
        Framing::Incomplete
    } else {
        Framing::Complete(total)
    }
}

/// The index just past the blank line that ends the header section, if the
/// header lines up to it are printable ASCII.
fn header_end(d: &[u8]) -> Option<usize> {
    let end = d.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    d[..end]
        .iter()
        .all(|&b| b == b'\r' || b == b'\n' || b == b'\t' || (0x20..0x7f).contains(&b))
        .then_some(end)
}

fn request_line_ok(d: &[u8]) -> bool {
    let Some(eol) = d.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    let line = &d[..eol];
    (line.starts_with(b"OPTIONS sip:") || line.starts_with(b"OPTIONS sips:"))
        && line.ends_with(b" SIP/2.0")
        && line.iter().filter(|&&b| b == b' ').count() == 2
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l"))
            .then(|| value.trim().parse().ok())?
    })
}

/// One line that differs between what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SipChange {
    /// Where: `request line`, a header name as sent (`Via`, `Contact` …),
    /// `SDP c=` for a body line, or `message` for a change outside lines
    /// (line endings, trailing bytes).
    pub part: String,
    /// The line as sent (without its name); `None` if it was added.
    pub sent: Option<String>,
    /// The line as it came back; `None` if it was removed.
    pub received: Option<String>,
}

impl std::fmt::Display for SipChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.sent, &self.received) {
            (Some(s), Some(r)) => write!(f, "{}: {s:?} → {r:?}", self.part),
            (Some(s), None) => write!(f, "{}: {s:?} removed", self.part),
            (None, Some(r)) => write!(f, "{}: {r:?} added", self.part),
            (None, None) => write!(f, "{}", self.part),
        }
    }
}

/// A line's place in a message: which part, and which occurrence of it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    key: String,
    label: String,
    nth: usize,
    value: String,
}

/// Compact header forms (RFC 3261 §7.3.3) under their long names, so a
/// rewrite from `Via:` to `v:` reads as the same header.
fn long_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let long = match lower.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "m" => "contact",
        "i" => "call-id",
        "l" => "content-length",
        "c" => "content-type",
        "k" => "supported",
        "s" => "subject",
        "e" => "content-encoding",
        other => other,
    };
    long.to_owned()
}

fn lines(msg: &[u8]) -> Vec<Line> {
    let text = String::from_utf8_lossy(msg);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut out: Vec<Line> = Vec::new();
    let mut push = |key: String, label: String, value: String| {
        let nth = out.iter().filter(|l| l.key == key).count();
        out.push(Line {
            key,
            label,
            nth,
            value,
        });
    };
    for (i, line) in head.split("\r\n").enumerate() {
        if i == 0 {
            push("request line".into(), "request line".into(), line.into());
        } else if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            push(long_name(name), name.to_owned(), value.trim().to_owned());
        } else {
            push("line".into(), "line".into(), line.into());
        }
    }
    for line in body.split("\r\n").filter(|l| !l.is_empty()) {
        let (kind, value) = line.split_once('=').unwrap_or(("?", line));
        let label = format!("SDP {kind}=");
        push(label.clone(), label, value.to_owned());
    }
    out
}

/// The lines that differ between `sent` and `received`, in the order of the
/// sent message (then lines that only came back). Lines are matched by part
/// and occurrence (the second Via with the second Via), so a reordering is not
/// a change but a rewrite, removal or addition is. Empty when the bytes are
/// equal.
pub fn compare(sent: &[u8], received: &[u8]) -> Vec<SipChange> {
    if sent == received {
        return Vec::new();
    }
    let a = lines(sent);
    let b = lines(received);
    let find = |set: &[Line], l: &Line| {
        set.iter()
            .find(|x| x.key == l.key && x.nth == l.nth)
            .cloned()
    };
    let mut out = Vec::new();
    for l in &a {
        match find(&b, l) {
            Some(r) if r.value == l.value => {}
            Some(r) => out.push(SipChange {
                part: l.label.clone(),
                sent: Some(l.value.clone()),
                received: Some(r.value),
            }),
            None => out.push(SipChange {
                part: l.label.clone(),
                sent: Some(l.value.clone()),
                received: None,
            }),
        }
    }
    for r in &b {
        if find(&a, r).is_none() {
            out.push(SipChange {
                part: r.label.clone(),
                sent: None,
                received: Some(r.value.clone()),
            });
        }
    }
    if out.is_empty() {
        out.push(SipChange {
            part: "message".into(),
            sent: Some(format!("{} bytes", sent.len())),
            received: Some(format!(
                "{} bytes, same lines (line endings or bytes outside lines differ)",
                received.len()
            )),
        });
    }
    out
}

/// Whether the changes replace `local`'s address (or its port) with something
/// else: the signature of a NAT-aware SIP ALG, as opposed to a middlebox that
/// garbles the message.
pub fn replaces_local_address(changes: &[SipChange], local: SocketAddr) -> bool {
    let ip = local.ip().to_string();
    let port = local.port().to_string();
    changes.iter().any(|c| match (&c.sent, &c.received) {
        (Some(s), Some(r)) => {
            (s.contains(&ip) && !r.contains(&ip)) || (s.contains(&port) && !r.contains(&port))
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "192.168.77.2:34588";
    const SERVER: &str = "88.77.66.20:5060";

    fn request(t: SipTransport) -> Vec<u8> {
        options_request(t, LOCAL.parse().unwrap(), SERVER.parse().unwrap(), "a1b2c3")
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn request_carries_the_local_address_everywhere_an_alg_looks() {
        let m = text(&request(SipTransport::Udp));
        assert!(m.starts_with("OPTIONS sip:natkit-echo@88.77.66.20:5060 SIP/2.0\r\n"));
        for line in [
            "Via: SIP/2.0/UDP 192.168.77.2:34588;branch=z9hG4bKa1b2c3;rport",
            "From: <sip:natkit@192.168.77.2:34588>;tag=a1b2c3",
            "Contact: <sip:natkit@192.168.77.2:34588>",
            "Call-ID: a1b2c3@192.168.77.2",
            "c=IN IP4 192.168.77.2",
            "m=audio 34588 RTP/AVP 0",
        ] {
            assert!(m.contains(&format!("{line}\r\n")), "{line} missing in\n{m}");
        }
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let tcp = text(&request(SipTransport::Tcp));
        assert!(tcp.contains("Via: SIP/2.0/TCP "));
        assert!(tcp.contains(";transport=tcp>"));
        let v6 = text(&options_request(
            SipTransport::Udp,
            "[fd00::2]:5000".parse().unwrap(),
            SERVER.parse().unwrap(),
            "x",
        ));
        assert!(v6.contains("c=IN IP6 fd00::2\r\n"));
        assert!(v6.contains("Via: SIP/2.0/UDP [fd00::2]:5000;"));
    }

    #[test]
    fn the_echo_takes_only_options_requests() {
        assert_eq!(echoable_datagram(&request(SipTransport::Udp)), Ok(()));
        let not = Err(NotEchoed::NotOptions);
        for bad in [
            &b""[..],
            b"hello",
            b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n",
            b"REGISTER sip:a@b SIP/2.0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n",
            b"OPTIONS sip:a@b HTTP/1.1\r\n\r\n",
            b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n",
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: \x00\x01\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(echoable_datagram(bad), not, "{:?}", text(bad));
        }
        let mut long = request(SipTransport::Udp);
        long.resize(MAX_SIP_LEN + 1, b'a');
        assert_eq!(echoable_datagram(&long), Err(NotEchoed::TooLong));
        // The body is not checked: a garbled body is what the check looks for.
        let mut garbled = request(SipTransport::Udp);
        garbled.extend_from_slice(&[0, 0xff, 0x80]);
        assert_eq!(echoable_datagram(&garbled), Ok(()));
    }

    #[test]
    fn tcp_framing_by_content_length() {
        let m = request(SipTransport::Tcp);
        for cut in [0, 1, 5, 30, m.len() - 10, m.len() - 1] {
            assert_eq!(frame_stream(&m[..cut]), Framing::Incomplete, "cut {cut}");
        }
        assert_eq!(frame_stream(&m), Framing::Complete(m.len()));
        // Pipelined bytes after the request are not part of it.
        let mut more = m.clone();
        more.extend_from_slice(b"OPTIONS sip:x SIP/2.0\r\n");
        assert_eq!(frame_stream(&more), Framing::Complete(m.len()));
        assert_eq!(
            frame_stream(b"GET / HTTP/1.1\r\n"),
            Framing::Rejected(NotEchoed::NotOptions)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"),
            Framing::Rejected(NotEchoed::BadLength)
        );
        assert_eq!(
            frame_stream(b"OPTIONS sip:a@b SIP/2.0\r\nl: 99999\r\n\r\n"),
            Framing::Rejected(NotEchoed::TooLong)
        );
        // Compact form.
        let compact = b"OPTIONS sip:a@b SIP/2.0\r\nl: 2\r\n\r\nab";
        assert_eq!(frame_stream(compact), Framing::Complete(compact.len()));
        assert_eq!(
            frame_stream(&compact[..compact.len() - 1]),
            Framing::Incomplete
        );
        // Headers that never end.
        let mut endless = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        endless.resize(MAX_SIP_LEN, b'a');
        assert_eq!(
            frame_stream(&endless),
            Framing::Rejected(NotEchoed::TooLong)
        );
    }

    /// What Linux's nf_nat_sip did to the request in the lab (captured at the
    /// client): Via rewritten to the router's address on the way out and not
    /// restored on the way back.
    #[test]
    fn a_rewritten_via_is_named_with_both_values() {
        let sent = request(SipTransport::Udp);
        let back = text(&sent).replace(
            "Via: SIP/2.0/UDP 192.168.77.2:34588",
            "Via: SIP/2.0/UDP 88.77.66.2:34588",
        );
        let changes = compare(&sent, back.as_bytes());
        assert_eq!(
            changes,
            [SipChange {
                part: "Via".into(),
                sent: Some("SIP/2.0/UDP 192.168.77.2:34588;branch=z9hG4bKa1b2c3;rport".into()),
                received: Some("SIP/2.0/UDP 88.77.66.2:34588;branch=z9hG4bKa1b2c3;rport".into()),
            }]
        );
        assert!(replaces_local_address(&changes, LOCAL.parse().unwrap()));
        assert!(changes[0].to_string().starts_with("Via: \"SIP/2.0/UDP 192"));
    }

    #[test]
    fn sdp_port_removal_addition_and_compact_forms() {
        let sent = request(SipTransport::Udp);
        let back = text(&sent)
            .replace("m=audio 34588 ", "m=audio 1024 ")
            .replace("User-Agent: natkit sip-alg-check\r\n", "")
            .replace("Contact: ", "m: ")
            .replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nX-Alg: 1\r\n");
        let changes = compare(&sent, back.as_bytes());
        let parts: Vec<_> = changes.iter().map(|c| c.part.as_str()).collect();
        assert_eq!(parts, ["User-Agent", "SDP m=", "X-Alg"]);
        assert_eq!(changes[0].received, None);
        assert_eq!(changes[1].received.as_deref(), Some("audio 1024 RTP/AVP 0"));
        assert_eq!(changes[2].sent, None);
        assert!(replaces_local_address(&changes, LOCAL.parse().unwrap()));
    }

    #[test]
    fn identical_and_invisible_changes() {
        let sent = request(SipTransport::Udp);
        assert!(compare(&sent, &sent).is_empty());
        let mut trailing = sent.clone();
        trailing.extend_from_slice(b"\r\n");
        let c = compare(&sent, &trailing);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].part, "message");
        assert!(!replaces_local_address(&c, LOCAL.parse().unwrap()));
        // Garbage back is a list of changes, not a panic.
        let c = compare(&sent, &[0xff, 0, 13, 10, 13, 10, 61]);
        assert!(!c.is_empty());
        let c = compare(&sent, b"");
        assert!(c.iter().all(|c| c.sent.is_some()));
    }
}
