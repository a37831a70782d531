//! The vocabulary of a lab: NAT kinds, nodes, links, protocols, daemons.

use std::fmt;

/// The NAT behaviour the router implements (see `natlab.sh --nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Plain `masquerade`: endpoint-independent mapping, address-and-port-dependent
    /// filtering. What most home routers do.
    PortRestricted,
    /// `masquerade fully-random`: a new external port for every destination.
    Symmetric,
    /// `snat` to the WAN address plus `dnat` of every inbound TCP/UDP flow to the LAN
    /// host: anyone may send to a mapping.
    FullCone,
    /// Like full cone, but a mapping admits only remote addresses it has sent to.
    RestrictedCone,
    /// Like full cone, but the filter is kept per internal host, as RFC 3489 words
    /// restricted cone: a remote address may send to the LAN host once the host sent
    /// to that address from any of its ports.
    RestrictedConePerHost,
    /// Like full cone, with a per-host filter keyed by remote address and port: a
    /// remote endpoint may send once the LAN host sent to it from any of its ports.
    PortRestrictedPerHost,
    /// Address-dependent mapping: one external port per internal endpoint and remote
    /// address, whatever the remote port (a port range per remote address); filtering
    /// by conntrack (address and port dependent).
    AddressDependentMapping,
    /// Endpoint-independent mapping that never keeps the internal port (snat to a
    /// port range that excludes it), address-and-port-dependent filtering.
    PortRestrictedNoPreserve,
    /// No NAT: the LAN is a public /24 routed through the router, no firewall.
    Open,
}

impl NatKind {
    /// Every kind, in the order above.
    pub const ALL: [NatKind; 9] = [
        NatKind::PortRestricted,
        NatKind::Symmetric,
        NatKind::FullCone,
        NatKind::RestrictedCone,
        NatKind::RestrictedConePerHost,
        NatKind::PortRestrictedPerHost,
        NatKind::AddressDependentMapping,
        NatKind::PortRestrictedNoPreserve,
        NatKind::Open,
    ];

    /// The `natlab.sh --nat` argument, e.g. `port-restricted`.
    pub fn as_arg(self) -> &'static str {
        match self {
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
            NatKind::FullCone => "full-cone",
            NatKind::RestrictedCone => "restricted-cone",
            NatKind::RestrictedConePerHost => "restricted-cone-per-host",
            NatKind::PortRestrictedPerHost => "port-restricted-per-host",
            NatKind::AddressDependentMapping => "address-dependent-mapping",
            NatKind::PortRestrictedNoPreserve => "port-restricted-no-preserve",
            NatKind::Open => "open",
        }
    }
}

impl NatKind {
    /// Whether the NAT keeps a flow's internal port as its external port (when free).
    /// Hairpinning needs it: the router sends a hairpinned packet to the LAN host on
    /// the port it was sent to.
    pub fn preserves_ports(self) -> bool {
        !matches!(
            self,
            NatKind::Symmetric
                | NatKind::AddressDependentMapping
                | NatKind::PortRestrictedNoPreserve
        )
    }
}

impl fmt::Display for NatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_arg())
    }
}

/// A machine of the lab, i.e. one network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// The LAN host, 192.168.77.2.
    Lan,
    /// The second LAN host, 192.168.77.3 (only with [`lan2`](crate::LabBuilder::lan2)).
    Lan2,
    /// The home router: NAT, firewall, miniupnpd.
    Rtr,
    /// The carrier-grade NAT between router and internet (only with
    /// [`double_nat`](crate::LabBuilder::double_nat)).
    Isp,
    /// "The internet": the STUN server's two addresses, outside peers.
    Wan,
}

impl Node {
    /// The role part of the namespace name (`nk-ID-<role>`).
    pub fn role(self) -> &'static str {
        match self {
            Node::Lan => "lan",
            Node::Lan2 => "lan2",
            Node::Rtr => "rtr",
            Node::Isp => "isp",
            Node::Wan => "wan",
        }
    }
}

/// A transport protocol, for port blocks and port checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A router link that [`Lab::set_link`](crate::Lab::set_link) can take down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// The router's LAN side (its bridge `br0`): from the LAN the router disappears.
    RtrLan,
    /// The router's uplink (`wan0`): the router loses the internet. Bringing it up
    /// again restores the default route.
    RtrWan,
}

impl Link {
    /// The `natlab.sh link` argument.
    pub fn as_arg(self) -> &'static str {
        match self {
            Link::RtrLan => "rtr-lan",
            Link::RtrWan => "rtr-wan",
        }
    }
}

/// A daemon the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Daemon {
    /// miniupnpd in the router (UPnP IGD, NAT-PMP, PCP).
    Miniupnpd,
    /// stund in the wan (RFC 3489 STUN with two addresses and two ports).
    Stund,
    /// coturn in the wan as an RFC 5780 STUN server (`turnserver -n --stun-only`).
    Coturn,
    /// dnsmasq in the wan, the LAN hosts' DNS server (with
    /// [`LabBuilder::dns`](crate::LabBuilder::dns)).
    Dnsmasq,
}

impl Daemon {
    /// The daemon's name, also the base name of its log file in the run directory.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Miniupnpd => "miniupnpd",
            Daemon::Stund => "stund",
            Daemon::Coturn => "coturn",
            Daemon::Dnsmasq => "dnsmasq",
        }
    }

    pub(crate) fn pid_key(self) -> &'static str {
        match self {
            Daemon::Miniupnpd => "MINIUPNPD_PID",
            Daemon::Stund => "STUND_PID",
            Daemon::Coturn => "COTURN_PID",
            Daemon::Dnsmasq => "DNSMASQ_PID",
        }
    }
}

/// A real-world IPv6 network the plain dual-stack lab leaves out
/// (`natlab.sh --ipv6-quirk`, [`LabBuilder::ipv6_quirk`](crate::LabBuilder::ipv6_quirk)):
/// one change to its router or LAN host, applied once the lab is up. Not with
/// [`NatKind::Open`] or double NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ipv6Quirk {
    /// The router's IPv6 firewall is off: new inbound IPv6 is forwarded to the LAN
    /// (miniupnpd still says its firewall is on).
    NoFirewall,
    /// The firewall rejects new inbound IPv6 instead of dropping it: TCP reset,
    /// everything else ICMPv6 administratively prohibited; pinholes still pass.
    Reject,
    /// The LAN host's only preferred addresses are temporary: its static address is
    /// removed and its stable SLAAC address deprecated (`preferred_lft 0`).
    TemporaryOnly,
    /// The LAN has a unique local prefix (`fd00:88:77:77::/64`) and no global one;
    /// the internet has no route to it.
    UlaOnly,
    /// The LAN host hears no router advertisements: link-local address only, no
    /// IPv6 default route.
    LinkLocalOnly,
    /// The ISP's IPv6 is dead while IPv4 works: the internet drops every IPv6 packet
    /// on the router's link, silently; the router still advertises itself.
    DeadUplink,
    /// The router's WAN has no IPv6 (no address, no default route) while it
    /// advertises its LAN prefix: it answers ICMPv6 no route.
    NoUpstream,
    /// NAT66: the router masquerades the LAN's IPv6 to its WAN address, and the
    /// internet has no route to the LAN /64.
    Nat66,
    /// miniupnpd runs with `ipv6_disable=yes`: IPv4 UPnP, NAT-PMP and PCP work, no
    /// IPv6 pinholes (needs miniupnpd).
    MiniupnpdNoIpv6,
}

impl Ipv6Quirk {
    /// Every quirk.
    pub const ALL: [Ipv6Quirk; 9] = [
        Ipv6Quirk::NoFirewall,
        Ipv6Quirk::Reject,
        Ipv6Quirk::TemporaryOnly,
        Ipv6Quirk::UlaOnly,
        Ipv6Quirk::LinkLocalOnly,
        Ipv6Quirk::DeadUplink,
        Ipv6Quirk::NoUpstream,
        Ipv6Quirk::Nat66,
        Ipv6Quirk::MiniupnpdNoIpv6,
    ];

    /// The `natlab.sh --ipv6-quirk` value.
    pub fn as_arg(self) -> &'static str {
        match self {
            Ipv6Quirk::NoFirewall => "no-firewall",
            Ipv6Quirk::Reject => "reject",
            Ipv6Quirk::TemporaryOnly => "temporary-only",
            Ipv6Quirk::UlaOnly => "ula-only",
            Ipv6Quirk::LinkLocalOnly => "link-local-only",
            Ipv6Quirk::DeadUplink => "dead-uplink",
            Ipv6Quirk::NoUpstream => "no-upstream",
            Ipv6Quirk::Nat66 => "nat66",
            Ipv6Quirk::MiniupnpdNoIpv6 => "miniupnpd-no-ipv6",
        }
    }
}

impl fmt::Display for Ipv6Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_arg())
    }
}
