//! What a lab consists of, and how to ask `natlab.sh` for it.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::LabError;
use crate::lab::Lab;
use crate::spec::{Ipv6Quirk, NatKind, Proto};

/// Describes a lab; [`build`](LabBuilder::build) brings it up. Start from
/// [`Lab::builder`].
///
/// ```no_run
/// use natkit_lab::{Lab, NatKind, Node};
/// let lab = Lab::builder().nat(NatKind::PortRestricted).miniupnpd(true).stund(true).build()?;
/// let out = lab.exec_ok(Node::Lan, &["upnpc", "-s"])?;
/// # Ok::<(), natkit_lab::LabError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabBuilder {
    pub(crate) nat: NatKind,
    pub(crate) miniupnpd: bool,
    pub(crate) miniupnpd_ext_ip: Option<Ipv4Addr>,
    pub(crate) stund: bool,
    pub(crate) coturn: bool,
    pub(crate) hairpin: bool,
    pub(crate) double_nat: bool,
    pub(crate) lan2: bool,
    pub(crate) loss: u8,
    pub(crate) block_inbound: Vec<(u16, Proto)>,
    pub(crate) block_outbound: Vec<(u16, Proto)>,
    pub(crate) rate_limit_kbps: u32,
    pub(crate) dns: Dns,
    pub(crate) dns_aaaa: Vec<(String, Ipv6Addr)>,
    pub(crate) sip_alg: bool,
    pub(crate) ipv6: bool,
    pub(crate) ipv6_quirk: Option<Ipv6Quirk>,
}

/// The LAN hosts' DNS ([`LabBuilder::dns`], [`LabBuilder::dns_silent`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Dns {
    /// None: the LAN hosts keep the host's resolver configuration, whose server is
    /// not in the lab (their queries die in wan, which has no route out).
    #[default]
    Off,
    /// dnsmasq in wan on `DNS_IP` (88.77.66.53), the LAN hosts' only nameserver: these
    /// names resolve to their addresses, every other name is NXDOMAIN. It forwards
    /// nowhere.
    Up(Vec<(String, Ipv4Addr)>),
    /// The LAN hosts' nameserver is `DNS_IP`, where nothing answers and queries are
    /// dropped without ICMP: a dead uplink's DNS.
    Silent,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            nat: NatKind::PortRestricted,
            miniupnpd: false,
            miniupnpd_ext_ip: None,
            stund: false,
            coturn: false,
            hairpin: false,
            double_nat: false,
            lan2: false,
            loss: 0,
            block_inbound: Vec::new(),
            block_outbound: Vec::new(),
            rate_limit_kbps: 0,
            dns: Dns::Off,
            dns_aaaa: Vec::new(),
            sip_alg: false,
            ipv6: false,
            ipv6_quirk: None,
        }
    }
}

impl LabBuilder {
    /// A port-restricted NAT with no daemons, no loss, no blocks.
    pub fn new() -> Self {
        Self::default()
    }

    /// The router's NAT behaviour (default [`NatKind::PortRestricted`]).
    pub fn nat(mut self, kind: NatKind) -> Self {
        self.nat = kind;
        self
    }

    /// Runs miniupnpd (UPnP IGD, NAT-PMP and PCP) on the router's LAN side.
    pub fn miniupnpd(mut self, on: bool) -> Self {
        self.miniupnpd = on;
        self
    }

    /// Declares miniupnpd's external address (`ext_ip`), as a user behind a
    /// carrier-grade NAT would. miniupnpd 2.3.1 refuses to forward ports while its
    /// WAN address is reserved (100.64/10 with double NAT): with the ISP's public
    /// address here it maps ports again, and those mappings reach only the ISP NAT.
    /// The address must not be reserved. Implies [`miniupnpd`](Self::miniupnpd).
    pub fn miniupnpd_ext_ip(mut self, ip: Ipv4Addr) -> Self {
        self.miniupnpd = true;
        self.miniupnpd_ext_ip = Some(ip);
        self
    }

    /// Runs stund in the wan node on `STUN1` and `STUN2`, ports 3478 and 3479.
    pub fn stund(mut self, on: bool) -> Self {
        self.stund = on;
        self
    }

    /// Runs coturn in the wan node as an RFC 5780 STUN server (`turnserver -n
    /// --stun-only`) on `STUN1` and `STUN2`, ports 5478 and 5479 (`COTURN_PORT1`,
    /// `COTURN_PORT2`).
    pub fn coturn(mut self, on: bool) -> Self {
        self.coturn = on;
        self
    }

    /// Makes the router hairpin: a LAN host's TCP/UDP packet to the router's public
    /// address comes back to the LAN host on the same port, from the router's public
    /// address. Off (the default), such a packet is for the router, where nothing
    /// listens. Only for kinds that keep ports ([`NatKind::preserves_ports`], not
    /// open) and without double NAT.
    pub fn hairpin(mut self, on: bool) -> Self {
        self.hairpin = on;
        self
    }

    /// Puts a carrier-grade NAT (the isp node, port-restricted) between the router
    /// and the internet; the router's WAN address becomes 100.64.0.2.
    pub fn double_nat(mut self, on: bool) -> Self {
        self.double_nat = on;
        self
    }

    /// Adds a second LAN host, 192.168.77.3, on the router's LAN bridge.
    pub fn lan2(mut self, on: bool) -> Self {
        self.lan2 = on;
        self
    }

    /// Drops `percent` % of the packets entering the router on either side (and of
    /// its own outgoing packets); a round trip through the router loses about
    /// `1 - (1 - p)²`. 0 turns it off.
    pub fn loss(mut self, percent: u8) -> Self {
        self.loss = percent;
        self
    }

    /// Has the ISP drop inbound traffic to `port`/`proto` (at the router's WAN
    /// device, or at the isp node with double NAT), before any DNAT. May be repeated.
    pub fn block_inbound(mut self, port: u16, proto: Proto) -> Self {
        self.block_inbound.push((port, proto));
        self
    }

    /// Has the router drop what the LAN sends to `port`/`proto` on the internet,
    /// silently (an organisation's egress firewall). May be repeated.
    pub fn block_outbound(mut self, port: u16, proto: Proto) -> Self {
        self.block_outbound.push((port, proto));
        self
    }

    /// Has the router forward at most `kbps` kbit/s each way between the LAN and
    /// the internet, dropping what is over (a slow uplink); 0 = no limit.
    pub fn rate_limit_kbps(mut self, kbps: u32) -> Self {
        self.rate_limit_kbps = kbps;
        self
    }

    /// Runs the lab's DNS server (dnsmasq in wan on `DNS_IP`, 88.77.66.53) as the
    /// LAN hosts' only nameserver: `names` resolve to their addresses, every other
    /// name is NXDOMAIN, nothing is forwarded. The LAN hosts' `resolv.conf`,
    /// `nsswitch.conf` and `hosts` come from `/etc/netns/NS/` (removed on `down`),
    /// so no lookup leaves the lab.
    pub fn dns<S: Into<String>>(mut self, names: impl IntoIterator<Item = (S, Ipv4Addr)>) -> Self {
        self.dns = Dns::Up(names.into_iter().map(|(n, ip)| (n.into(), ip)).collect());
        self
    }

    /// Adds AAAA records to the lab DNS (see [`dns`](Self::dns), which it implies
    /// when not called): `names` resolve to these IPv6 addresses, e.g. a default
    /// STUN name to `STUN1_6` of an [`ipv6`](Self::ipv6) lab. A name may have an A
    /// record from [`dns`](Self::dns) too. May be repeated; not with
    /// [`dns_silent`](Self::dns_silent).
    pub fn dns_aaaa<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = (S, Ipv6Addr)>,
    ) -> Self {
        self.dns_aaaa
            .extend(names.into_iter().map(|(n, ip)| (n.into(), ip)));
        self
    }

    /// Makes the LAN hosts' only nameserver `DNS_IP`, where nothing answers and
    /// queries are dropped without an ICMP error: a dead uplink's DNS, each lookup
    /// waits out the resolver's timeouts. Replaces [`dns`](Self::dns).
    pub fn dns_silent(mut self) -> Self {
        self.dns = Dns::Silent;
        self
    }

    /// Runs the kernel's own SIP ALG on the router (nf_conntrack_sip and nf_nat_sip
    /// through an nftables ct helper on UDP and TCP port 5060): the LAN host's
    /// address in the Via, From and Contact of a SIP request leaving the NAT is
    /// rewritten to the router's WAN address. Not with [`NatKind::Open`].
    pub fn sip_alg(mut self, on: bool) -> Self {
        self.sip_alg = on;
        self
    }

    /// Makes the lab dual-stack (`natlab.sh --ipv6`): IPv4 as without it, plus IPv6
    /// on the same links with no NAT. The LAN is `2a0d:88:77:77::/64` (router
    /// `::1`, lan `::2`, lan2 `::3`, and SLAAC stable and temporary addresses from
    /// the router's advertisements), the internet `2a0d:88:77:66::/64`; the
    /// router's stateful firewall passes outbound IPv6 and drops new inbound
    /// connections, except through miniupnpd's pinholes (UPnP
    /// WANIPv6FirewallControl, PCP MAP for IPv6). See [`LabAddrs::v6`](crate::LabAddrs::v6).
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Makes the dual-stack lab one of the real-world IPv6 networks it leaves out
    /// (`natlab.sh --ipv6-quirk`; implies [`ipv6`](Self::ipv6)). Not with
    /// [`NatKind::Open`] or [`double_nat`](Self::double_nat);
    /// [`Ipv6Quirk::MiniupnpdNoIpv6`] needs [`miniupnpd`](Self::miniupnpd).
    pub fn ipv6_quirk(mut self, quirk: Ipv6Quirk) -> Self {
        self.ipv6 = true;
        self.ipv6_quirk = Some(quirk);
        self
    }

    /// Checks combinations `natlab.sh` would refuse, without running it.
    pub fn validate(&self) -> Result<(), LabError> {
        let invalid = |reason| Err(LabError::InvalidSpec { reason });
        if self.loss > 100 {
            return invalid("loss is a percentage (0-100)");
        }
        if self.rate_limit_kbps > 9_999_999 {
            return invalid("the rate limit is at most 9999999 kbit/s");
        }
        if self
            .block_inbound
            .iter()
            .chain(&self.block_outbound)
            .any(|&(port, _)| port == 0)
        {
            return invalid("cannot block port 0");
        }
        if self.nat == NatKind::Open && self.double_nat {
            return invalid("open (no NAT) and double NAT do not combine");
        }
        if self.nat == NatKind::Open && self.miniupnpd {
            return invalid("open (no NAT) and miniupnpd do not combine");
        }
        if self.hairpin && (self.nat == NatKind::Open || !self.nat.preserves_ports()) {
            return invalid("hairpinning needs a NAT that keeps ports");
        }
        if self.nat == NatKind::Open && self.sip_alg {
            return invalid("open (no NAT) and the SIP ALG do not combine");
        }
        if let Some(q) = self.ipv6_quirk {
            if self.nat == NatKind::Open || self.double_nat {
                return invalid("an IPv6 quirk does not combine with open (no NAT) or double NAT");
            }
            if q == Ipv6Quirk::MiniupnpdNoIpv6 && !self.miniupnpd {
                return invalid("the miniupnpd-no-ipv6 quirk needs miniupnpd");
            }
        }
        if self.hairpin && self.double_nat {
            return invalid("hairpinning and double NAT do not combine");
        }
        let valid = |n: &str| {
            !n.is_empty()
                && n.len() <= 253
                && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        };
        if let Dns::Up(names) = &self.dns
            && names.iter().any(|(n, _)| !valid(n))
        {
            return invalid("a DNS name is letters, digits, dots and hyphens");
        }
        if self.dns_aaaa.iter().any(|(n, _)| !valid(n)) {
            return invalid("a DNS name is letters, digits, dots and hyphens");
        }
        if self.dns == Dns::Silent && !self.dns_aaaa.is_empty() {
            return invalid("AAAA records need the lab DNS, not a silent one");
        }
        Ok(())
    }

    /// The `natlab.sh up` arguments for this lab, without `--id`.
    pub fn script_args(&self) -> Vec<String> {
        let mut args = vec!["--nat".to_owned(), self.nat.as_arg().to_owned()];
        if self.miniupnpd {
            args.push("--miniupnpd".into());
        }
        if let Some(ip) = self.miniupnpd_ext_ip {
            args.extend(["--ext-ip".into(), ip.to_string()]);
        }
        if self.stund {
            args.push("--stund".into());
        }
        if self.coturn {
            args.push("--coturn".into());
        }
        if self.hairpin {
            args.push("--hairpin".into());
        }
        if self.double_nat {
            args.push("--double-nat".into());
        }
        if self.lan2 {
            args.push("--lan2".into());
        }
        if self.loss > 0 {
            args.extend(["--loss".into(), self.loss.to_string()]);
        }
        for (port, proto) in &self.block_inbound {
            args.extend(["--block-inbound".into(), format!("{port}/{proto}")]);
        }
        match &self.dns {
            Dns::Off if self.dns_aaaa.is_empty() => {}
            Dns::Off => args.push("--dns".into()),
            Dns::Up(names) => {
                args.push("--dns".into());
                for (name, ip) in names {
                    args.extend(["--dns-host".into(), format!("{name}={ip}")]);
                }
            }
            Dns::Silent => args.push("--dns-silent".into()),
        }
        for (name, ip) in &self.dns_aaaa {
            args.extend(["--dns-host".into(), format!("{name}={ip}")]);
        }
        if self.sip_alg {
            args.push("--sip-alg".into());
        }
        for (port, proto) in &self.block_outbound {
            args.extend(["--block-outbound".into(), format!("{port}/{proto}")]);
        }
        if self.rate_limit_kbps > 0 {
            args.extend(["--rate-limit-kbps".into(), self.rate_limit_kbps.to_string()]);
        }
        if self.ipv6 {
            args.push("--ipv6".into());
        }
        if let Some(q) = self.ipv6_quirk {
            args.extend(["--ipv6-quirk".into(), q.as_arg().into()]);
        }
        args
    }

    /// Brings the lab up under a fresh id (see [`Lab`]), after
    /// [`preflight`](crate::preflight) and [`validate`](Self::validate).
    pub fn build(self) -> Result<Lab, LabError> {
        Lab::up(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_args_follow_the_options() {
        let b = LabBuilder::new()
            .nat(NatKind::RestrictedCone)
            .stund(true)
            .coturn(true)
            .hairpin(true)
            .lan2(true)
            .loss(5)
            .block_inbound(443, Proto::Tcp)
            .block_inbound(4500, Proto::Udp);
        assert_eq!(
            b.script_args(),
            [
                "--nat",
                "restricted-cone",
                "--stund",
                "--coturn",
                "--hairpin",
                "--lan2",
                "--loss",
                "5",
                "--block-inbound",
                "443/tcp",
                "--block-inbound",
                "4500/udp"
            ]
        );
        assert_eq!(
            LabBuilder::new().script_args(),
            ["--nat", "port-restricted"]
        );
        assert_eq!(
            LabBuilder::new().sip_alg(true).script_args(),
            ["--nat", "port-restricted", "--sip-alg"]
        );
        assert_eq!(
            LabBuilder::new()
                .block_outbound(443, Proto::Tcp)
                .block_outbound(4500, Proto::Udp)
                .script_args(),
            [
                "--nat",
                "port-restricted",
                "--block-outbound",
                "443/tcp",
                "--block-outbound",
                "4500/udp"
            ]
        );
        assert_eq!(
            LabBuilder::new().rate_limit_kbps(200).script_args(),
            ["--nat", "port-restricted", "--rate-limit-kbps", "200"]
        );
        let ext = LabBuilder::new()
            .double_nat(true)
            .miniupnpd_ext_ip(Ipv4Addr::new(88, 77, 66, 2));
        assert_eq!(
            ext.script_args(),
            [
                "--nat",
                "port-restricted",
                "--miniupnpd",
                "--ext-ip",
                "88.77.66.2",
                "--double-nat"
            ]
        );
    }

    #[test]
    fn dns_options() {
        let up = LabBuilder::new().dns([("stun.example.net", Ipv4Addr::new(88, 77, 66, 10))]);
        assert_eq!(
            up.script_args(),
            [
                "--nat",
                "port-restricted",
                "--dns",
                "--dns-host",
                "stun.example.net=88.77.66.10"
            ]
        );
        assert!(up.validate().is_ok());
        assert_eq!(
            LabBuilder::new()
                .dns(Vec::<(String, _)>::new())
                .script_args(),
            ["--nat", "port-restricted", "--dns"]
        );
        assert_eq!(
            LabBuilder::new().dns_silent().script_args(),
            ["--nat", "port-restricted", "--dns-silent"]
        );
        let stun6 = "2a0d:88:77:66::10".parse().expect("ipv6");
        let both = LabBuilder::new()
            .ipv6(true)
            .dns_aaaa([("stun.example.net", stun6)])
            .dns([("stun.example.net", Ipv4Addr::new(88, 77, 66, 10))]);
        assert!(both.validate().is_ok());
        assert_eq!(
            both.script_args(),
            [
                "--nat",
                "port-restricted",
                "--dns",
                "--dns-host",
                "stun.example.net=88.77.66.10",
                "--dns-host",
                "stun.example.net=2a0d:88:77:66::10",
                "--ipv6"
            ]
        );
        assert_eq!(
            LabBuilder::new()
                .dns_aaaa([("stun.example.net", stun6)])
                .script_args(),
            [
                "--nat",
                "port-restricted",
                "--dns",
                "--dns-host",
                "stun.example.net=2a0d:88:77:66::10"
            ]
        );
        assert!(matches!(
            LabBuilder::new()
                .dns_silent()
                .dns_aaaa([("stun.example.net", stun6)])
                .validate(),
            Err(LabError::InvalidSpec { .. })
        ));
        assert!(matches!(
            LabBuilder::new().dns_aaaa([("a b", stun6)]).validate(),
            Err(LabError::InvalidSpec { .. })
        ));
        for bad in ["", "a b", "-x.example", "x=y"] {
            let b = LabBuilder::new().dns([(bad, Ipv4Addr::LOCALHOST)]);
            assert!(
                matches!(b.validate(), Err(LabError::InvalidSpec { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_what_the_script_refuses() {
        assert!(LabBuilder::new().validate().is_ok());
        for b in [
            LabBuilder::new().loss(101),
            LabBuilder::new().block_inbound(0, Proto::Tcp),
            LabBuilder::new().block_outbound(0, Proto::Udp),
            LabBuilder::new().rate_limit_kbps(10_000_000),
            LabBuilder::new().nat(NatKind::Open).double_nat(true),
            LabBuilder::new().nat(NatKind::Open).miniupnpd(true),
            LabBuilder::new().nat(NatKind::Open).hairpin(true),
            LabBuilder::new().nat(NatKind::Symmetric).hairpin(true),
            LabBuilder::new().hairpin(true).double_nat(true),
            LabBuilder::new().nat(NatKind::Open).sip_alg(true),
            LabBuilder::new()
                .nat(NatKind::Open)
                .ipv6_quirk(Ipv6Quirk::NoFirewall),
            LabBuilder::new()
                .double_nat(true)
                .ipv6_quirk(Ipv6Quirk::Nat66),
            LabBuilder::new().ipv6_quirk(Ipv6Quirk::MiniupnpdNoIpv6),
        ] {
            assert!(
                matches!(b.validate(), Err(LabError::InvalidSpec { .. })),
                "{b:?}"
            );
        }
    }

    #[test]
    fn an_ipv6_quirk_implies_the_dual_stack_lab() {
        for q in Ipv6Quirk::ALL {
            let b = LabBuilder::new().miniupnpd(true).ipv6_quirk(q);
            assert!(b.validate().is_ok(), "{q}");
            let args = b.script_args();
            assert!(args.contains(&"--ipv6".to_owned()), "{args:?}");
            let at = args
                .iter()
                .position(|a| a == "--ipv6-quirk")
                .expect("quirk");
            assert_eq!(args[at + 1], q.as_arg());
        }
    }
}
