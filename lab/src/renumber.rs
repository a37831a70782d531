//! An ISP's new IPv6 prefix for the LAN, as the lab plays it.

use std::net::Ipv6Addr;

use crate::{Lab, LabError, Node};

impl Lab {
    /// Renumbers the LAN as an ISP does: the router gets `prefix::1/64` on its
    /// LAN side beside the old prefix (and the internet a route to it); the LAN
    /// host stops taking prefixes from advertisements (the router still
    /// advertises the old one), loses every global address of the old prefix
    /// and gets `prefix::2/64`, which it returns. `prefix` is the new /64's
    /// first address.
    ///
    /// A dual-stack lab with one router only: with double NAT the ISP router
    /// would need the route too.
    pub fn renumber_lan_v6(&self, prefix: Ipv6Addr) -> Result<Ipv6Addr, LabError> {
        let Some(v6) = self.addrs().v6 else {
            return Err(LabError::InvalidSpec {
                reason: "renumbering needs a dual-stack lab",
            });
        };
        if v6.isp_lan.is_some() {
            return Err(LabError::InvalidSpec {
                reason: "renumbering is modelled without double NAT",
            });
        }
        let base = u128::from(prefix) & !u128::from(u64::MAX);
        let router = Ipv6Addr::from(base | 1);
        let host = Ipv6Addr::from(base | 2);
        let net = format!("{}/64", Ipv6Addr::from(base));
        let rtr_wan = v6.rtr_wan.to_string();
        let router_addr = format!("{router}/64");
        self.exec_ok(
            Node::Rtr,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                &router_addr,
                "dev",
                "br0",
                "nodad",
            ],
        )?;
        self.exec_ok(
            Node::Wan,
            &["ip", "-6", "route", "add", &net, "via", &rtr_wan],
        )?;
        let host_addr = format!("{host}/64");
        for argv in [
            &["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra_pinfo=0"][..],
            &[
                "ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global",
            ],
            &[
                "ip", "-6", "addr", "add", &host_addr, "dev", "eth0", "nodad",
            ],
        ] {
            self.exec_ok(Node::Lan, argv)?;
        }
        Ok(host)
    }
}
