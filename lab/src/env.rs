//! The lab's env file (`/run/natlab/ID/env`, `KEY=VALUE` lines) and its addresses.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::LabError;

/// Parses `KEY=VALUE` lines; blank lines and `#` comments are skipped, a line
/// without `=` is ignored.
pub(crate) fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub(crate) fn env_str<'a>(
    env: &'a BTreeMap<String, String>,
    key: &str,
) -> Result<&'a str, LabError> {
    env.get(key)
        .map(String::as_str)
        .ok_or_else(|| LabError::BadEnv {
            key: key.to_owned(),
            value: None,
        })
}

/// The value of `key` parsed as an address of either family.
pub(crate) fn env_ip<A: FromStr>(env: &BTreeMap<String, String>, key: &str) -> Result<A, LabError> {
    let v = env_str(env, key)?;
    v.parse().map_err(|_| LabError::BadEnv {
        key: key.to_owned(),
        value: Some(v.to_owned()),
    })
}

fn env_ip_opt<A: FromStr>(
    env: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<A>, LabError> {
    match env.get(key) {
        None => Ok(None),
        Some(_) => env_ip(env, key).map(Some),
    }
}

/// The addresses of a lab, as `natlab.sh up` wrote them (env keys in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LabAddrs {
    /// The LAN host (`LAN_IP`): 192.168.77.2, or 88.77.67.2 with [`NatKind::Open`](crate::NatKind::Open).
    pub lan: Ipv4Addr,
    /// The second LAN host (`LAN2_IP`), with `lan2` only.
    pub lan2: Option<Ipv4Addr>,
    /// The router's LAN address (`RTR_LAN_IP`), the LAN hosts' gateway.
    pub rtr_lan: Ipv4Addr,
    /// The router's WAN address (`RTR_WAN_IP`): 88.77.66.2, or 100.64.0.2 behind the
    /// carrier-grade NAT.
    pub rtr_wan: Ipv4Addr,
    /// The ISP NAT's inside address (`ISP_LAN_IP`, 100.64.0.1), with double NAT only.
    pub isp_lan: Option<Ipv4Addr>,
    /// The ISP NAT's public address (`ISP_WAN_IP`, 88.77.66.2), with double NAT only.
    pub isp_wan: Option<Ipv4Addr>,
    /// The address the internet sees for the LAN host's traffic (`PUBLIC_IP`): the
    /// outermost NAT's address, or the LAN host's own with `Open`.
    pub public: Ipv4Addr,
    /// The internet side's gateway address (`WAN_GW`, 88.77.66.1), in the wan node.
    pub wan_gw: Ipv4Addr,
    /// The STUN server's primary address (`STUN1`, 88.77.66.10; ports 3478 and 3479).
    pub stun1: Ipv4Addr,
    /// The STUN server's alternate address (`STUN2`, 88.77.66.11).
    pub stun2: Ipv4Addr,
    /// An outside peer (`PEER_IP`, 88.77.66.20): the wan node's primary address, so
    /// programs in wan that do not bind use it.
    pub peer: Ipv4Addr,
    /// A second outside peer (`PEER2_IP`, 88.77.66.21).
    pub peer2: Ipv4Addr,
    /// The IPv6 addresses, in a dual-stack lab ([`LabBuilder::ipv6`](crate::LabBuilder::ipv6),
    /// env `IPV6=1`) only.
    pub v6: Option<LabAddrs6>,
}

/// The IPv6 addresses of a dual-stack lab (`natlab.sh up --ipv6`; env keys in
/// brackets). No NAT on IPv6: the router routes the LAN /64, and the LAN hosts'
/// addresses are what the internet sees. The "global" space is made up
/// (2a0d:88:77::/48) and exists only inside the lab; it is not documentation space
/// (2001:db8::/32, 3fff::/20), which natkit's scope rules treat as non-global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LabAddrs6 {
    /// The LAN prefix (`LAN_NET6`, 2a0d:88:77:77::/64): its first address; the length
    /// is always 64.
    pub lan_net: Ipv6Addr,
    /// The LAN host's static stable address (`LAN_IP6`, 2a0d:88:77:77::2).
    pub lan: Ipv6Addr,
    /// The LAN host's stable SLAAC address (`LAN_SLAAC_IP6`, EUI-64 from its MAC;
    /// `mngtmpaddr` in `ip -6 addr`).
    pub lan_slaac: Ipv6Addr,
    /// The LAN host's temporary (privacy, RFC 8981) address when the lab came up
    /// (`LAN_TEMP_IP6`). With `use_tempaddr=2` it is the source of the host's
    /// outgoing connections and datagrams unless a program binds another address.
    pub lan_temp: Ipv6Addr,
    /// The second LAN host's static address (`LAN2_IP6`, 2a0d:88:77:77::3), with
    /// `lan2` only.
    pub lan2: Option<Ipv6Addr>,
    /// The second LAN host's stable SLAAC address (`LAN2_SLAAC_IP6`), with `lan2`.
    pub lan2_slaac: Option<Ipv6Addr>,
    /// The second LAN host's temporary address (`LAN2_TEMP_IP6`), with `lan2`.
    pub lan2_temp: Option<Ipv6Addr>,
    /// The router's LAN address (`RTR_LAN_IP6`, 2a0d:88:77:77::1); the LAN hosts'
    /// default route is its link-local address, learnt from its advertisements.
    pub rtr_lan: Ipv6Addr,
    /// The router's WAN address (`RTR_WAN_IP6`): 2a0d:88:77:66::2, or
    /// 2a0d:88:77:65::2 on the ISP link with double NAT.
    pub rtr_wan: Ipv6Addr,
    /// The ISP router's inside address (`ISP_LAN_IP6`, 2a0d:88:77:65::1), with
    /// double NAT only (the ISP routes IPv6, it does not translate it).
    pub isp_lan: Option<Ipv6Addr>,
    /// The ISP router's outside address (`ISP_WAN_IP6`, 2a0d:88:77:66::2), with
    /// double NAT only.
    pub isp_wan: Option<Ipv6Addr>,
    /// The internet side's gateway (`WAN_GW6`, 2a0d:88:77:66::1).
    pub wan_gw: Ipv6Addr,
    /// The STUN server's primary IPv6 address (`STUN1_6`, 2a0d:88:77:66::10).
    pub stun1: Ipv6Addr,
    /// The STUN server's alternate IPv6 address (`STUN2_6`, 2a0d:88:77:66::11).
    pub stun2: Ipv6Addr,
    /// An outside peer (`PEER_IP6`, 2a0d:88:77:66::20): the wan node's preferred
    /// IPv6 source, so programs in wan that do not bind use it.
    pub peer: Ipv6Addr,
    /// A second outside peer (`PEER2_IP6`, 2a0d:88:77:66::21).
    pub peer2: Ipv6Addr,
}

impl LabAddrs6 {
    fn from_env(env: &BTreeMap<String, String>) -> Result<Option<Self>, LabError> {
        if env.get("IPV6").is_none_or(|v| v != "1") {
            return Ok(None);
        }
        let lan_net = env_str(env, "LAN_NET6")?;
        let lan_net = lan_net
            .strip_suffix("/64")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| LabError::BadEnv {
                key: "LAN_NET6".to_owned(),
                value: Some(lan_net.to_owned()),
            })?;
        Ok(Some(Self {
            lan_net,
            lan: env_ip(env, "LAN_IP6")?,
            lan_slaac: env_ip(env, "LAN_SLAAC_IP6")?,
            lan_temp: env_ip(env, "LAN_TEMP_IP6")?,
            lan2: env_ip_opt(env, "LAN2_IP6")?,
            lan2_slaac: env_ip_opt(env, "LAN2_SLAAC_IP6")?,
            lan2_temp: env_ip_opt(env, "LAN2_TEMP_IP6")?,
            rtr_lan: env_ip(env, "RTR_LAN_IP6")?,
            rtr_wan: env_ip(env, "RTR_WAN_IP6")?,
            isp_lan: env_ip_opt(env, "ISP_LAN_IP6")?,
            isp_wan: env_ip_opt(env, "ISP_WAN_IP6")?,
            wan_gw: env_ip(env, "WAN_GW6")?,
            stun1: env_ip(env, "STUN1_6")?,
            stun2: env_ip(env, "STUN2_6")?,
            peer: env_ip(env, "PEER_IP6")?,
            peer2: env_ip(env, "PEER2_IP6")?,
        }))
    }
}

impl LabAddrs {
    pub(crate) fn from_env(env: &BTreeMap<String, String>) -> Result<Self, LabError> {
        Ok(Self {
            lan: env_ip(env, "LAN_IP")?,
            lan2: env_ip_opt(env, "LAN2_IP")?,
            rtr_lan: env_ip(env, "RTR_LAN_IP")?,
            rtr_wan: env_ip(env, "RTR_WAN_IP")?,
            isp_lan: env_ip_opt(env, "ISP_LAN_IP")?,
            isp_wan: env_ip_opt(env, "ISP_WAN_IP")?,
            public: env_ip(env, "PUBLIC_IP")?,
            wan_gw: env_ip(env, "WAN_GW")?,
            stun1: env_ip(env, "STUN1")?,
            stun2: env_ip(env, "STUN2")?,
            peer: env_ip(env, "PEER_IP")?,
            peer2: env_ip(env, "PEER2_IP")?,
            v6: LabAddrs6::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_lines() {
        let env = parse_env("A=1\n\n# c\nB = x=y \nnoequals\nEMPTY=\n");
        assert_eq!(env.get("A").map(String::as_str), Some("1"));
        assert_eq!(env.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(env.get("EMPTY").map(String::as_str), Some(""));
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn addrs_need_the_mandatory_keys() {
        let mut env = parse_env(
            "LAN_IP=192.168.77.2\nRTR_LAN_IP=192.168.77.1\nRTR_WAN_IP=88.77.66.2\n\
             PUBLIC_IP=88.77.66.2\nWAN_GW=88.77.66.1\nSTUN1=88.77.66.10\n\
             STUN2=88.77.66.11\nPEER_IP=88.77.66.20\nPEER2_IP=88.77.66.21\n",
        );
        let addrs = LabAddrs::from_env(&env).expect("complete env");
        assert_eq!(addrs.stun2, Ipv4Addr::new(88, 77, 66, 11));
        assert_eq!(addrs.lan2, None);
        assert_eq!(addrs.v6, None);
        env.insert("IPV6".into(), "0".into());
        assert_eq!(LabAddrs::from_env(&env).expect("v4 env").v6, None);
        env.insert("LAN2_IP".into(), "nonsense".into());
        assert!(matches!(
            LabAddrs::from_env(&env),
            Err(LabError::BadEnv { .. })
        ));
        env.remove("LAN2_IP");
        let v6_env = parse_env(
            "IPV6=1\nLAN_NET6=2a0d:88:77:77::/64\nLAN_IP6=2a0d:88:77:77::2\n\
             LAN_SLAAC_IP6=2a0d:88:77:77:1:2ff:fe03:405\nLAN_TEMP_IP6=2a0d:88:77:77:9:8:7:6\n\
             RTR_LAN_IP6=2a0d:88:77:77::1\nRTR_WAN_IP6=2a0d:88:77:66::2\n\
             WAN_GW6=2a0d:88:77:66::1\nSTUN1_6=2a0d:88:77:66::10\nSTUN2_6=2a0d:88:77:66::11\n\
             PEER_IP6=2a0d:88:77:66::20\nPEER2_IP6=2a0d:88:77:66::21\n",
        );
        let mut dual = env.clone();
        dual.extend(v6_env);
        let v6 = LabAddrs::from_env(&dual)
            .expect("dual-stack env")
            .v6
            .expect("v6 addresses");
        assert_eq!(v6.lan_net, "2a0d:88:77:77::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.peer, "2a0d:88:77:66::20".parse::<Ipv6Addr>().unwrap());
        assert_eq!((v6.lan2, v6.isp_wan), (None, None));
        dual.insert("LAN_NET6".into(), "2a0d:88:77:77::/48".into());
        assert!(matches!(
            LabAddrs::from_env(&dual),
            Err(LabError::BadEnv { .. })
        ));
        dual.insert("LAN_NET6".into(), "2a0d:88:77:77::/64".into());
        dual.remove("LAN_TEMP_IP6");
        assert!(matches!(
            LabAddrs::from_env(&dual),
            Err(LabError::BadEnv { value: None, .. })
        ));
        env.remove("STUN1");
        assert!(matches!(
            LabAddrs::from_env(&env),
            Err(LabError::BadEnv { value: None, .. })
        ));
    }
}
