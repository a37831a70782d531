//! The server's sockets: primary/alternate IP × primary/alternate port.

use std::net::{IpAddr, SocketAddr};

/// Which of the (up to) four sockets: bit 1 set for the alternate IP, bit 0 for the
/// alternate port. Index 0 is the primary IP and port; 3 is the other address
/// (OTHER-ADDRESS / CHANGED-ADDRESS).
pub type SocketIndex = usize;

/// The primary IP and port.
pub const PRIMARY: SocketIndex = 0;
/// The alternate IP and port.
pub const OTHER: SocketIndex = 3;

/// The addresses of a server's sockets and the addresses it advertises for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketMap {
    ips: [IpAddr; 2],
    ports: [u16; 2],
    advertised: [IpAddr; 2],
    has_alternate: bool,
}

impl SocketMap {
    /// A single-socket map (no alternate).
    pub fn single(primary: SocketAddr, advertised: Option<IpAddr>) -> Self {
        let adv = advertised.unwrap_or(primary.ip());
        SocketMap {
            ips: [primary.ip(); 2],
            ports: [primary.port(); 2],
            advertised: [adv; 2],
            has_alternate: false,
        }
    }

    /// A four-socket map.
    pub fn four(
        primary: SocketAddr,
        alternate: SocketAddr,
        advertised_primary: Option<IpAddr>,
        advertised_alternate: Option<IpAddr>,
    ) -> Self {
        SocketMap {
            ips: [primary.ip(), alternate.ip()],
            ports: [primary.port(), alternate.port()],
            advertised: [
                advertised_primary.unwrap_or(primary.ip()),
                advertised_alternate.unwrap_or(alternate.ip()),
            ],
            has_alternate: true,
        }
    }

    /// How many sockets: 1 or 4.
    pub fn len(&self) -> usize {
        if self.has_alternate { 4 } else { 1 }
    }

    /// Always false: there is at least the primary socket.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether there is an alternate address.
    pub fn has_alternate(&self) -> bool {
        self.has_alternate
    }

    /// The local address of socket `i`.
    pub fn local(&self, i: SocketIndex) -> Option<SocketAddr> {
        (i < self.len()).then(|| SocketAddr::new(self.ips[i >> 1], self.ports[i & 1]))
    }

    /// The address socket `i` is known by from outside.
    pub fn advertised(&self, i: SocketIndex) -> Option<SocketAddr> {
        (i < self.len()).then(|| SocketAddr::new(self.advertised[i >> 1], self.ports[i & 1]))
    }

    /// The socket that answers a request received on `i` with these change flags;
    /// `None` if a change is asked of a server without an alternate.
    pub fn changed(
        &self,
        i: SocketIndex,
        change_ip: bool,
        change_port: bool,
    ) -> Option<SocketIndex> {
        if !self.has_alternate && (change_ip || change_port) {
            return None;
        }
        Some(i ^ (usize::from(change_ip) << 1) ^ usize::from(change_port))
    }

    /// The other address of socket `i`: alternate IP and alternate port relative to it
    /// (OTHER-ADDRESS, RFC 5780 §7.4; CHANGED-ADDRESS, RFC 3489 §11.2.3).
    pub fn other_of(&self, i: SocketIndex) -> Option<SocketAddr> {
        if !self.has_alternate {
            return None;
        }
        self.advertised(i ^ OTHER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_sockets_and_changes() {
        let m = SocketMap::four(
            "10.0.0.1:3478".parse().expect("a"),
            "10.0.0.2:3479".parse().expect("a"),
            Some("198.51.100.1".parse().expect("ip")),
            None,
        );
        let l: Vec<String> = (0..4).map(|i| m.local(i).expect("s").to_string()).collect();
        assert_eq!(
            l,
            [
                "10.0.0.1:3478",
                "10.0.0.1:3479",
                "10.0.0.2:3478",
                "10.0.0.2:3479"
            ]
        );
        assert_eq!(m.changed(0, true, true), Some(3));
        assert_eq!(m.changed(0, false, true), Some(1));
        assert_eq!(m.changed(0, true, false), Some(2));
        assert_eq!(m.changed(3, true, false), Some(1));
        assert_eq!(
            m.advertised(1).map(|a| a.to_string()),
            Some("198.51.100.1:3479".into())
        );
        assert_eq!(
            m.other_of(0).map(|a| a.to_string()),
            Some("10.0.0.2:3479".into())
        );
        assert_eq!(
            m.other_of(3).map(|a| a.to_string()),
            Some("198.51.100.1:3478".into())
        );
        assert_eq!(m.local(4), None);
    }

    #[test]
    fn single_socket_cannot_change() {
        let m = SocketMap::single("10.0.0.1:3478".parse().expect("a"), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.changed(0, false, false), Some(0));
        assert_eq!(m.changed(0, false, true), None);
        assert_eq!(m.other_of(0), None);
    }
}
