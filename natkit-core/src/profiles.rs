//! Service port profiles: which ports a service needs open, and why.
//!
//! The lists come from Apple's documentation of the ports its services use
//! (Back to My Mac, iChat) and from the services' own standards.

use crate::error::Error;
use crate::ports::{PortRange, PortSpec, Protocols};

/// A port (range) a service needs, and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfilePort {
    /// The port range and its protocols.
    pub range: PortRange,
    /// One line on what the port is for.
    pub purpose: &'static str,
}

/// A named set of ports a service needs reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceProfile {
    /// The machine name used on the command line, e.g. `back-to-my-mac`.
    pub name: &'static str,
    /// A human title, e.g. "Back to My Mac".
    pub title: &'static str,
    /// The ports.
    pub ports: &'static [ProfilePort],
}

const fn port(first: u16, last: u16, protocols: Protocols, purpose: &'static str) -> ProfilePort {
    ProfilePort {
        range: PortRange {
            first,
            last,
            protocols,
        },
        purpose,
    }
}

use Protocols::{Both, Tcp, Udp};

/// Every profile natkit knows.
pub const PROFILES: &[ServiceProfile] = &[
    ServiceProfile {
        name: "back-to-my-mac",
        title: "Back to My Mac",
        ports: &[
            port(
                443,
                443,
                Tcp,
                "TLS tunnel carrying Back to My Mac connections",
            ),
            port(
                4500,
                4500,
                Udp,
                "IKE/IPsec NAT traversal for the secure tunnel",
            ),
            port(5353, 5353, Udp, "multicast DNS (Bonjour) service discovery"),
            port(
                5354,
                5354,
                Tcp,
                "mDNSResponder wide-area Bonjour (DNS long-lived queries)",
            ),
        ],
    },
    ServiceProfile {
        name: "ichat",
        title: "iChat / Messages audio and video",
        ports: &[
            port(
                5060,
                5060,
                Udp,
                "SIP session initiation for audio and video chats",
            ),
            port(
                5190,
                5190,
                Both,
                "AIM/OSCAR login, instant messages and file transfer",
            ),
            port(5297, 5297, Tcp, "Bonjour (local network) messaging"),
            port(
                5298,
                5298,
                Both,
                "Bonjour (local network) presence and messaging",
            ),
            port(5678, 5678, Udp, "SNATMAP: learning the external address"),
            port(16384, 16403, Udp, "RTP/RTCP audio and video streams"),
        ],
    },
    ServiceProfile {
        name: "jabber",
        title: "Jabber (XMPP) messaging",
        ports: &[
            port(5220, 5220, Tcp, "Jabber/XMPP (Apple iChat Server)"),
            port(5222, 5222, Tcp, "XMPP client connections"),
            port(5223, 5223, Tcp, "XMPP client connections over legacy TLS"),
        ],
    },
    ServiceProfile {
        name: "file-sharing",
        title: "File sharing (AFP)",
        ports: &[port(548, 548, Tcp, "Apple Filing Protocol over TCP")],
    },
    ServiceProfile {
        name: "screen-sharing",
        title: "Screen sharing (VNC)",
        ports: &[port(
            5900,
            5900,
            Tcp,
            "VNC / Apple Remote Desktop screen sharing",
        )],
    },
    ServiceProfile {
        name: "ssh",
        title: "Remote login (SSH)",
        ports: &[port(
            22,
            22,
            Tcp,
            "Secure Shell remote login and file transfer",
        )],
    },
    ServiceProfile {
        name: "web",
        title: "Web server",
        ports: &[port(80, 80, Tcp, "HTTP"), port(443, 443, Tcp, "HTTPS")],
    },
];

impl ServiceProfile {
    /// Every known profile.
    pub fn all() -> &'static [ServiceProfile] {
        PROFILES
    }

    /// The profile called `name` (case-insensitive).
    pub fn by_name(name: &str) -> Result<&'static ServiceProfile, Error> {
        PROFILES
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::UnknownProfile {
                name: name.chars().take(64).collect(),
                known: PROFILES
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The profile's ports as a port spec.
    pub fn port_spec(&self) -> PortSpec {
        PortSpec {
            ranges: self.ports.iter().map(|p| p.range).collect(),
        }
    }

    /// The purpose of `port`/`protocol` in this profile, if it is part of it.
    pub fn purpose_of(&self, port: u16, protocol: crate::Protocol) -> Option<&'static str> {
        self.ports
            .iter()
            .find(|p| {
                p.range.first <= port
                    && port <= p.range.last
                    && p.range.protocols.contains(protocol)
            })
            .map(|p| p.purpose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    #[test]
    fn profiles_match_the_design() {
        let spec = |n: &str| ServiceProfile::by_name(n).unwrap().port_spec().to_string();
        assert_eq!(spec("back-to-my-mac"), "443/tcp,4500/udp,5353/udp,5354/tcp");
        assert_eq!(
            spec("ichat"),
            "5060/udp,5190,5297/tcp,5298,5678/udp,16384-16403/udp"
        );
        assert_eq!(spec("jabber"), "5220/tcp,5222/tcp,5223/tcp");
        assert_eq!(spec("file-sharing"), "548/tcp");
        assert_eq!(spec("screen-sharing"), "5900/tcp");
        assert_eq!(spec("SSH"), "22/tcp");
        assert_eq!(spec("web"), "80/tcp,443/tcp");
    }

    #[test]
    fn every_profile_spec_round_trips_and_has_purposes() {
        for p in ServiceProfile::all() {
            let spec = p.port_spec();
            assert_eq!(spec.to_string().parse::<crate::PortSpec>().unwrap(), spec);
            for (port, proto) in spec.pairs() {
                assert!(!p.purpose_of(port, proto).unwrap().is_empty());
            }
        }
        let ichat = ServiceProfile::by_name("ichat").unwrap();
        assert_eq!(
            ichat.purpose_of(16390, Protocol::Udp),
            Some("RTP/RTCP audio and video streams")
        );
        assert_eq!(ichat.purpose_of(16390, Protocol::Tcp), None);
    }

    #[test]
    fn unknown_profile_lists_known_ones() {
        let e = ServiceProfile::by_name("quake").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"quake\""), "{msg}");
        assert!(
            msg.contains("back-to-my-mac") && msg.contains("web"),
            "{msg}"
        );
    }
}
