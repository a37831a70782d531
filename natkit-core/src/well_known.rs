//! What a port is usually for: the names behind a router's forwarding table.
//!
//! A forwarding table lists bare numbers ("548 and 5900, what were those?").
//! [`purpose`] names them: first from natkit's own [`PROFILES`] (the ports Apple's
//! services use, with the profile's wording), then from a short list of common
//! IANA registrations and de-facto ports that home routers are asked to forward.
//! The list is kept modest on purpose: a wrong name is worse than none.

use crate::Protocol;
use crate::ports::Protocols;
use crate::profiles::PROFILES;

/// One well-known port range outside the profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WellKnownPort {
    /// The first port.
    pub first: u16,
    /// The last port (equal to `first` for a single port).
    pub last: u16,
    /// The protocols it is registered (or commonly used) for.
    pub protocols: Protocols,
    /// What it is for, in a few words.
    pub purpose: &'static str,
}

const fn wk(first: u16, last: u16, protocols: Protocols, purpose: &'static str) -> WellKnownPort {
    WellKnownPort {
        first,
        last,
        protocols,
        purpose,
    }
}

use Protocols::{Both, Tcp, Udp};

/// Common ports people forward, beyond the profiles: IANA's service names
/// (described in natkit's words) and a few de-facto ports of popular software
/// (marked as such where IANA registers the number to something else or to
/// nothing). Sorted by port; no two rows overlap for the same protocol.
pub const WELL_KNOWN: &[WellKnownPort] = &[
    wk(20, 20, Tcp, "FTP data"),
    wk(21, 21, Tcp, "FTP control (file transfer)"),
    wk(22, 22, Tcp, "SSH remote login"),
    wk(23, 23, Tcp, "Telnet remote login (unencrypted)"),
    wk(25, 25, Tcp, "SMTP mail transfer"),
    wk(53, 53, Both, "DNS name server"),
    wk(67, 68, Udp, "DHCP (BOOTP)"),
    wk(69, 69, Udp, "TFTP file transfer"),
    wk(80, 80, Tcp, "HTTP web server"),
    wk(110, 110, Tcp, "POP3 mail retrieval"),
    wk(123, 123, Udp, "NTP time"),
    wk(143, 143, Tcp, "IMAP mail access"),
    wk(161, 161, Udp, "SNMP network management"),
    wk(443, 443, Tcp, "HTTPS web server (HTTP over TLS)"),
    wk(443, 443, Udp, "HTTP/3 (QUIC)"),
    wk(445, 445, Tcp, "SMB Windows file sharing"),
    wk(500, 500, Udp, "IPsec IKE key exchange"),
    wk(548, 548, Tcp, "AFP Apple file sharing"),
    wk(554, 554, Both, "RTSP media streaming"),
    wk(587, 587, Tcp, "SMTP mail submission"),
    wk(631, 631, Tcp, "IPP printing"),
    wk(993, 993, Tcp, "IMAP over TLS"),
    wk(995, 995, Tcp, "POP3 over TLS"),
    wk(1194, 1194, Both, "OpenVPN"),
    wk(1701, 1701, Udp, "L2TP VPN"),
    wk(1723, 1723, Tcp, "PPTP VPN"),
    wk(1900, 1900, Udp, "SSDP (UPnP discovery)"),
    wk(3074, 3074, Both, "Xbox Live"),
    wk(3283, 3283, Both, "Apple Remote Desktop reporting"),
    wk(3389, 3389, Both, "RDP Windows Remote Desktop"),
    wk(3478, 3479, Both, "STUN/TURN NAT traversal"),
    wk(4500, 4500, Udp, "IPsec NAT traversal (IKE)"),
    wk(5060, 5060, Both, "SIP voice/video calls"),
    wk(5061, 5061, Tcp, "SIP over TLS"),
    wk(5349, 5349, Tcp, "STUN/TURN over TLS"),
    wk(5351, 5351, Udp, "NAT-PMP/PCP port mapping"),
    wk(5353, 5353, Udp, "mDNS (Bonjour)"),
    wk(5900, 5900, Tcp, "VNC screen sharing"),
    wk(8080, 8080, Tcp, "HTTP alternate (proxies, web UIs)"),
    wk(8443, 8443, Tcp, "HTTPS alternate (web UIs)"),
    wk(25565, 25565, Tcp, "Minecraft Java server (de facto)"),
    wk(32400, 32400, Tcp, "Plex Media Server (de facto)"),
    wk(51820, 51820, Udp, "WireGuard VPN (de facto default)"),
];

/// What `port`/`proto` is usually for: a profile's purpose when a natkit profile
/// uses it (named after the profile), else a common registration from
/// [`WELL_KNOWN`], else `None`.
pub fn purpose(port: u16, proto: Protocol) -> Option<&'static str> {
    PROFILES
        .iter()
        .find_map(|p| p.purpose_of(port, proto))
        .or_else(|| {
            WELL_KNOWN
                .iter()
                .find(|w| w.first <= port && port <= w.last && w.protocols.contains(proto))
                .map(|w| w.purpose)
        })
}

/// The profile (its title) whose ports include `port`/`proto`, if any.
pub fn profile_of(port: u16, proto: Protocol) -> Option<&'static str> {
    PROFILES
        .iter()
        .find(|p| p.purpose_of(port, proto).is_some())
        .map(|p| p.title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ichat_notes_ports_have_names() {
        // The seed's question: "548 and 5900, what were those?"
        assert_eq!(
            purpose(548, Protocol::Tcp),
            Some("Apple Filing Protocol over TCP")
        );
        assert_eq!(
            purpose(5900, Protocol::Tcp),
            Some("VNC / Apple Remote Desktop screen sharing")
        );
        assert_eq!(profile_of(548, Protocol::Tcp), Some("File sharing (AFP)"));
        assert_eq!(profile_of(5900, Protocol::Udp), None);
    }

    #[test]
    fn profiles_come_before_the_iana_list() {
        for p in PROFILES {
            for (port, proto) in p.port_spec().pairs() {
                let first = PROFILES
                    .iter()
                    .find_map(|q| q.purpose_of(port, proto))
                    .expect("in a profile");
                assert_eq!(purpose(port, proto), Some(first), "{port}/{proto}");
            }
        }
    }

    #[test]
    fn common_ports_are_named_by_protocol() {
        let cases = [
            (21, Protocol::Tcp, "FTP control (file transfer)"),
            (25, Protocol::Tcp, "SMTP mail transfer"),
            (53, Protocol::Udp, "DNS name server"),
            (53, Protocol::Tcp, "DNS name server"),
            (443, Protocol::Udp, "HTTP/3 (QUIC)"),
            (500, Protocol::Udp, "IPsec IKE key exchange"),
            (1194, Protocol::Udp, "OpenVPN"),
            (3074, Protocol::Udp, "Xbox Live"),
            (3389, Protocol::Tcp, "RDP Windows Remote Desktop"),
            (3478, Protocol::Udp, "STUN/TURN NAT traversal"),
            (3479, Protocol::Tcp, "STUN/TURN NAT traversal"),
            (25565, Protocol::Tcp, "Minecraft Java server (de facto)"),
            (32400, Protocol::Tcp, "Plex Media Server (de facto)"),
            (51820, Protocol::Udp, "WireGuard VPN (de facto default)"),
        ];
        for (port, proto, want) in cases {
            assert_eq!(purpose(port, proto), Some(want), "{port}/{proto}");
        }
        // Registered for one protocol only: the other is not guessed.
        assert_eq!(purpose(51820, Protocol::Tcp), None);
        assert_eq!(purpose(25, Protocol::Udp), None);
        assert_eq!(purpose(3480, Protocol::Udp), None);
        assert_eq!(purpose(0, Protocol::Tcp), None);
        assert_eq!(purpose(65535, Protocol::Udp), None);
    }

    #[test]
    fn the_table_is_sorted_without_overlaps() {
        for w in WELL_KNOWN {
            assert!(w.first <= w.last && !w.purpose.is_empty(), "{w:?}");
        }
        for pair in WELL_KNOWN.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a.first <= b.first, "not sorted: {a:?} {b:?}");
            let shared = Protocol::ALL
                .iter()
                .any(|p| a.protocols.contains(*p) && b.protocols.contains(*p));
            assert!(
                a.last < b.first || !shared,
                "overlap for one protocol: {a:?} {b:?}"
            );
        }
    }
}
