//! The lab's env file (`/run/natlab/ID/env`, `KEY=VALUE` lines) and its addresses.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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

pub(crate) fn env_ip(env: &BTreeMap<String, String>, key: &str) -> Result<Ipv4Addr, LabError> {
    let v = env_str(env, key)?;
    v.parse().map_err(|_| LabError::BadEnv {
        key: key.to_owned(),
        value: Some(v.to_owned()),
    })
}

fn env_ip_opt(env: &BTreeMap<String, String>, key: &str) -> Result<Option<Ipv4Addr>, LabError> {
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
        env.insert("LAN2_IP".into(), "nonsense".into());
        assert!(matches!(
            LabAddrs::from_env(&env),
            Err(LabError::BadEnv { .. })
        ));
        env.remove("LAN2_IP");
        env.remove("STUN1");
        assert!(matches!(
            LabAddrs::from_env(&env),
            Err(LabError::BadEnv { value: None, .. })
        ));
    }
}
