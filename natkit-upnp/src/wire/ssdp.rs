//! SSDP (UPnP discovery) messages, sans-IO: M-SEARCH requests out, checked
//! parsing of the unicast answers in.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The SSDP multicast group and port.
pub const SSDP_MULTICAST: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);

/// The SSDP port devices listen on.
pub const SSDP_PORT: u16 = 1900;

/// The largest SSDP answer accepted, in bytes. Real answers are a few
/// hundred bytes; anything larger than this is not an IGD talking.
pub const MAX_SSDP_RESPONSE: usize = 4096;

/// The most header lines accepted in one answer.
pub const MAX_SSDP_HEADERS: usize = 32;

pub use crate::decide::search::SEARCH_TARGETS;

/// Whether an answer's search target is one natkit can use: an IGD device
/// type or a WAN connection service of any version, in the UPnP Forum's or
/// the Broadband Forum's namespace (case-insensitive). Devices should echo
/// the target searched for, but some answer with their own type, e.g.
/// `InternetGatewayDevice:2` to a search for `…:1`.
pub fn is_igd_target(st: &str) -> bool {
    if crate::wire::wan::WanServiceKind::parse(st).is_some() {
        return true;
    }
    let mut parts = st.trim().split(':');
    let ok = |p: Option<&str>, want: &[&str]| {
        p.is_some_and(|p| want.iter().any(|w| p.eq_ignore_ascii_case(w)))
    };
    ok(parts.next(), &["urn"])
        && ok(parts.next(), &["schemas-upnp-org", "dslforum-org"])
        && ok(parts.next(), &["device"])
        && ok(parts.next(), &["InternetGatewayDevice"])
        && parts
            .next()
            .is_some_and(|v| !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none()
}

/// An `M-SEARCH` request for `target` sent to `host`.
///
/// `mx` is the number of seconds a device may wait before answering; it is
/// required for multicast and omitted for unicast searches (UDA 1.1 §1.3.3),
/// where the device answers at once.
pub fn search_request(host: SocketAddrV4, target: &str, mx: Option<u8>) -> String {
    let mut req = format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {host}\r\nMAN: \"ssdp:discover\"\r\nST: {target}\r\n"
    );
    if let Some(mx) = mx {
        req.push_str(&format!("MX: {}\r\n", mx.clamp(1, 5)));
    }
    req.push_str("USER-AGENT: natkit UPnP/1.1\r\n\r\n");
    req
}

/// Why an SSDP answer was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SsdpError {
    /// Longer than [`MAX_SSDP_RESPONSE`].
    #[error("SSDP answer of {len} bytes is longer than {MAX_SSDP_RESPONSE}")]
    TooLong {
        /// The datagram's length.
        len: usize,
    },
    /// Not valid UTF-8.
    #[error("SSDP answer is not UTF-8 text")]
    NotText,
    /// The first line is not an HTTP/1.x status line.
    #[error("SSDP datagram is not an HTTP response")]
    NotAResponse,
    /// The status was not 200.
    #[error("SSDP answer has status {0}")]
    Status(u16),
    /// A header line without a colon or with an empty name.
    #[error("SSDP answer has a malformed header line")]
    MalformedHeader,
    /// More than [`MAX_SSDP_HEADERS`] header lines.
    #[error("SSDP answer has more than {MAX_SSDP_HEADERS} header lines")]
    TooManyHeaders,
    /// A required header is absent or empty.
    #[error("SSDP answer has no {0} header")]
    MissingHeader(&'static str),
}

/// A checked view of an SSDP search answer; borrows from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsdpResponse<'a> {
    /// The device description URL (`LOCATION`), not yet validated.
    pub location: &'a str,
    /// The search target answered (`ST`).
    pub st: &'a str,
    /// The unique service name (`USN`), if sent.
    pub usn: Option<&'a str>,
    /// The device's `SERVER` string, e.g. `Debian/12 UPnP/1.1 MiniUPnPd/2.3.3`.
    pub server: Option<&'a str>,
}

impl<'a> SsdpResponse<'a> {
    /// Parses and checks one datagram. Header names are case-insensitive;
    /// lines may end in CRLF or LF.
    pub fn parse(datagram: &'a [u8]) -> Result<SsdpResponse<'a>, SsdpError> {
        if datagram.len() > MAX_SSDP_RESPONSE {
            return Err(SsdpError::TooLong {
                len: datagram.len(),
            });
        }
        let text = std::str::from_utf8(datagram).map_err(|_| SsdpError::NotText)?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let status = lines.next().ok_or(SsdpError::NotAResponse)?;
        let mut parts = status.split_ascii_whitespace();
        let version = parts.next().ok_or(SsdpError::NotAResponse)?;
        if !version.starts_with("HTTP/1.") {
            return Err(SsdpError::NotAResponse);
        }
        let code: u16 = parts
            .next()
            .and_then(|c| c.parse().ok())
            .ok_or(SsdpError::NotAResponse)?;
        if code != 200 {
            return Err(SsdpError::Status(code));
        }
        let (mut location, mut st, mut usn, mut server) = (None, None, None, None);
        let mut count = 0;
        for line in lines {
            if line.is_empty() {
                break;
            }
            count += 1;
            if count > MAX_SSDP_HEADERS {
                return Err(SsdpError::TooManyHeaders);
            }
            let (name, value) = line.split_once(':').ok_or(SsdpError::MalformedHeader)?;
            let name = name.trim();
            if name.is_empty() {
                return Err(SsdpError::MalformedHeader);
            }
            let value = value.trim();
            let slot = if name.eq_ignore_ascii_case("location") {
                &mut location
            } else if name.eq_ignore_ascii_case("st") {
                &mut st
            } else if name.eq_ignore_ascii_case("usn") {
                &mut usn
            } else if name.eq_ignore_ascii_case("server") {
                &mut server
            } else {
                continue;
            };
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value);
            }
        }
        Ok(SsdpResponse {
            location: location.ok_or(SsdpError::MissingHeader("LOCATION"))?,
            st: st.ok_or(SsdpError::MissingHeader("ST"))?,
            usn,
            server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINIUPNPD: &str = "HTTP/1.1 200 OK\r\n\
        CACHE-CONTROL: max-age=120\r\n\
        ST: urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\
        USN: uuid:2b2561a2-1c2d-4f6e-8f4b-0f2a3d4e5f60::urn:schemas-upnp-org:device:InternetGatewayDevice:2\r\n\
        EXT:\r\n\
        SERVER: Debian/12 UPnP/1.1 MiniUPnPd/2.3.3\r\n\
        LOCATION: http://192.168.77.1:5000/rootDesc.xml\r\n\
        OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n\
        01-NLS: 1700000000\r\n\
        BOOTID.UPNP.ORG: 1700000000\r\n\
        CONFIGID.UPNP.ORG: 1337\r\n\r\n";

    #[test]
    fn parses_a_miniupnpd_answer() {
        let r = SsdpResponse::parse(MINIUPNPD.as_bytes()).unwrap();
        assert_eq!(r.location, "http://192.168.77.1:5000/rootDesc.xml");
        assert_eq!(r.st, "urn:schemas-upnp-org:device:InternetGatewayDevice:2");
        assert!(r.usn.unwrap().starts_with("uuid:2b2561a2"));
        assert_eq!(r.server, Some("Debian/12 UPnP/1.1 MiniUPnPd/2.3.3"));
        assert!(is_igd_target(r.st));
    }

    #[test]
    fn headers_are_case_insensitive_and_lf_is_enough() {
        let msg = "HTTP/1.1 200 OK\nlocation:http://10.0.0.138:80/IGD.xml\nSt:  urn:schemas-upnp-org:service:WANPPPConnection:1 \n\n";
        let r = SsdpResponse::parse(msg.as_bytes()).unwrap();
        assert_eq!(r.location, "http://10.0.0.138:80/IGD.xml");
        assert_eq!(r.st, "urn:schemas-upnp-org:service:WANPPPConnection:1");
        assert_eq!(r.usn, None);
        assert!(is_igd_target(
            "URN:SCHEMAS-UPNP-ORG:SERVICE:WANIPCONNECTION:1"
        ));
        assert!(!is_igd_target("upnp:rootdevice"));
        assert!(is_igd_target(
            "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
        ));
        assert!(is_igd_target(
            "urn:dslforum-org:device:InternetGatewayDevice:1"
        ));
        assert!(is_igd_target(
            "urn:schemas-upnp-org:service:WANPPPConnection:2"
        ));
        assert!(!is_igd_target(
            "urn:schemas-upnp-org:device:InternetGatewayDevice:"
        ));
        assert!(!is_igd_target(
            "urn:schemas-upnp-org:device:InternetGatewayDevice:1:x"
        ));
        assert!(!is_igd_target("urn:schemas-upnp-org:device:MediaServer:1"));
    }

    #[test]
    fn rejects_what_is_not_an_answer() {
        let notify = "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n";
        assert_eq!(
            SsdpResponse::parse(notify.as_bytes()),
            Err(SsdpError::NotAResponse)
        );
        assert_eq!(
            SsdpResponse::parse(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(SsdpError::Status(404))
        );
        assert_eq!(
            SsdpResponse::parse(b"HTTP/1.1 200 OK\r\nST: x\r\n\r\n"),
            Err(SsdpError::MissingHeader("LOCATION"))
        );
        assert_eq!(
            SsdpResponse::parse(b"HTTP/1.1 200 OK\r\nLOCATION:\r\nST: x\r\n\r\n"),
            Err(SsdpError::MissingHeader("LOCATION"))
        );
        assert_eq!(
            SsdpResponse::parse(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"),
            Err(SsdpError::MalformedHeader)
        );
        assert_eq!(SsdpResponse::parse(&[0xff, 0xfe]), Err(SsdpError::NotText));
        let big = vec![b'a'; MAX_SSDP_RESPONSE + 1];
        assert_eq!(
            SsdpResponse::parse(&big),
            Err(SsdpError::TooLong { len: big.len() })
        );
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "X: y\r\n".repeat(40));
        assert_eq!(
            SsdpResponse::parse(many.as_bytes()),
            Err(SsdpError::TooManyHeaders)
        );
    }

    #[test]
    fn search_requests() {
        let m = search_request(SSDP_MULTICAST, SEARCH_TARGETS[0], Some(9));
        assert!(m.starts_with("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"));
        assert!(m.contains("MAN: \"ssdp:discover\"\r\n"));
        assert!(m.contains("MX: 5\r\n"));
        assert!(m.ends_with("\r\n\r\n"));
        let u = search_request("192.168.1.1:1900".parse().unwrap(), SEARCH_TARGETS[0], None);
        assert!(!u.contains("MX:"));
        assert!(u.contains("ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = SsdpResponse::parse(&bytes);
        }

        #[test]
        fn arbitrary_headers_never_panic(head in "HTTP/1.1 200 OK\r\n[ -~\r\n]{0,600}") {
            let _ = SsdpResponse::parse(head.as_bytes());
        }
    }
}
