//! SIP `OPTIONS` request (RFC 3261 §11), the "are you there" of SIP.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::order::SplitMix64;

/// A host as SIP writes it: IPv6 in brackets.
fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

fn hex(rng: &mut SplitMix64) -> String {
    format!("{:016x}", rng.next_u64())
}

/// An `OPTIONS` request from `local` to `target`. The Via carries `rport`
/// (RFC 3581) so the answer comes back to the probe's own port, not 5060.
pub(super) fn options(local: SocketAddr, target: SocketAddr, rng: &mut SplitMix64) -> Vec<u8> {
    let branch = hex(rng);
    let tag = hex(rng);
    let call_id = hex(rng);
    let to = host(target.ip());
    let from = host(local.ip());
    let mut m = String::with_capacity(400);
    // Writing to a String cannot fail.
    let _ = write!(
        m,
        "OPTIONS sip:{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from}:{lport};rport;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:natkit@{from}>;tag={tag}\r\n\
         To: <sip:{to}>\r\n\
         Call-ID: {call_id}@{from}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:natkit@{from}:{lport}>\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        lport = local.port(),
    );
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn options_request_is_well_formed() {
        let local: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let target: SocketAddr = "198.51.100.9:5060".parse().unwrap();
        let text = String::from_utf8(options(local, target, &mut SplitMix64::new(4))).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "OPTIONS sip:198.51.100.9 SIP/2.0");
        assert!(lines[1].starts_with("Via: SIP/2.0/UDP 192.0.2.1:40000;rport;branch=z9hG4bK"));
        assert!(lines.contains(&"CSeq: 1 OPTIONS"));
        assert!(lines.contains(&"To: <sip:198.51.100.9>"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let local = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40000);
        let target = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5060);
        let text = String::from_utf8(options(local, target, &mut SplitMix64::new(4))).unwrap();
        assert!(text.starts_with("OPTIONS sip:[::1] SIP/2.0\r\n"));
        assert!(text.contains("Via: SIP/2.0/UDP [::1]:40000;rport;"));
    }
}
