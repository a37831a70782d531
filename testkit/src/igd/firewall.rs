//! The fake IGD's `WANIPv6FirewallControl:1`: pinholes in memory, with
//! miniupnpd 2.3.1's checks in its order (`upnpsoap.c`), including the rule
//! that only a pinhole's own internal client, asking over IPv6 from that
//! very address (compared as text, as 2.3.1 does), may add, renew, check or
//! delete it, and only for ports from 1024 (606 otherwise).

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use super::State;
use super::soap::{arg, fault, ok};

/// The service type the fake announces.
pub(super) const FIREWALL_TYPE: &str = "urn:schemas-upnp-org:service:WANIPv6FirewallControl:1";
/// Its control path (miniupnpd's).
pub(super) const FIREWALL_PATH: &str = "/ctl/IP6FCtl";

/// How the fake's firewall behaves.
#[derive(Debug, Clone)]
pub struct FakeFirewall {
    /// `FirewallEnabled`; when false the pinhole actions answer 702.
    pub enabled: bool,
    /// `InboundPinholeAllowed`; when false they answer 703.
    pub inbound_allowed: bool,
    /// GetOutboundPinholeTimeout's answer; `None`: 501, as miniupnpd.
    pub outbound_timeout: Option<u32>,
    /// The most pinholes; one more is 701 PinholeSpaceExhausted.
    pub max_pinholes: usize,
    /// Answer 402 instead of 704 for an ID it does not have, as miniupnpd
    /// 2.3.1's nftables backend does (its lookup never fails, and the check
    /// of the sender then fails on an empty address).
    pub missing_id_is_402: bool,
    /// AddPinhole for an existing flow sets a lease of decades, as
    /// miniupnpd 2.3.1 does (it passes the expiry time as the lease).
    pub readd_sets_far_expiry: bool,
}

impl Default for FakeFirewall {
    fn default() -> Self {
        FakeFirewall {
            enabled: true,
            inbound_allowed: true,
            outbound_timeout: None,
            max_pinholes: 64,
            missing_id_is_402: false,
            readd_sets_far_expiry: false,
        }
    }
}

/// A pinhole of the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePinhole {
    /// `UniqueID`.
    pub uid: u16,
    /// `RemoteHost`, as sent.
    pub remote_host: String,
    /// `RemotePort` (0: any).
    pub remote_port: u16,
    /// `InternalClient`, as text.
    pub client: String,
    /// `InternalPort`.
    pub port: u16,
    /// `Protocol`, the IANA number.
    pub proto: u8,
    /// `LeaseTime` in seconds.
    pub lease: u32,
    /// The packets counted through it (`GetPinholePackets`).
    pub packets: u32,
}

/// miniupnpd's PinholeVerification: the sender must be `client` (as text)
/// over IPv6, and the port at least 1024.
fn verify(peer: SocketAddr, client: &str, port: u16) -> Result<(), (&'static str, String)> {
    let sender = match peer.ip() {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => a.to_string(),
        // An IPv4 client's IPv6 address is all zeros in miniupnpd.
        _ => "::".to_owned(),
    };
    if sender != client || port < 1024 {
        return Err(fault(606, "Action not authorized"));
    }
    Ok(())
}

fn uid_arg(body: &str) -> Option<u16> {
    arg(body, "UniqueID").trim().parse().ok()
}

pub(super) fn firewall_soap(
    fw: &FakeFirewall,
    st: &Mutex<State>,
    peer: SocketAddr,
    action: &str,
    body: &str,
) -> (&'static str, String) {
    let ok = |args: &[(&str, String)]| ok(FIREWALL_TYPE, action, args);
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut st = st.lock().unwrap();
    let status = if !fw.enabled {
        Err(fault(702, "FirewallDisabled"))
    } else if !fw.inbound_allowed {
        Err(fault(703, "InboundPinholeNotAllowed"))
    } else {
        Ok(())
    };
    let found =
        |st: &State| uid_arg(body).and_then(|u| st.pinholes.iter().position(|p| p.uid == u));
    let result = (|| -> Result<(&'static str, String), (&'static str, String)> {
        match action {
            "GetFirewallStatus" => Ok(ok(&[
                ("FirewallEnabled", flag(fw.enabled)),
                ("InboundPinholeAllowed", flag(fw.inbound_allowed)),
            ])),
            "GetOutboundPinholeTimeout" => {
                if !fw.enabled {
                    return Err(fault(702, "FirewallDisabled"));
                }
                match fw.outbound_timeout {
                    Some(t) => Ok(ok(&[("OutboundPinholeTimeout", t.to_string())])),
                    None => Err(fault(501, "Action Failed")),
                }
            }
            "AddPinhole" => {
                status?;
                let proto: i64 = arg(body, "Protocol").trim().parse().unwrap_or(-1);
                if !(0..=65535).contains(&proto) {
                    return Err(fault(402, "Invalid Args"));
                }
                let port: u16 = arg(body, "InternalPort").trim().parse().unwrap_or(0);
                if port == 0 {
                    return Err(fault(706, "InternalPortWilcardingNotAllowed"));
                }
                let client = arg(body, "InternalClient");
                if client.is_empty() || client == "*" {
                    return Err(fault(708, "WildCardNotPermittedInSrcIP"));
                }
                if proto == 65535 {
                    return Err(fault(707, "ProtocolWilcardingNotAllowed"));
                }
                if proto != 6 && proto != 17 {
                    return Err(fault(705, "ProtocolNotSupported"));
                }
                let lease: i64 = arg(body, "LeaseTime").trim().parse().unwrap_or(-1);
                if !(1..=86_400).contains(&lease) {
                    return Err(fault(402, "Invalid Args"));
                }
                verify(peer, &client, port)?;
                let hole = FakePinhole {
                    uid: 0,
                    remote_host: arg(body, "RemoteHost"),
                    remote_port: arg(body, "RemotePort").trim().parse().unwrap_or(0),
                    client,
                    port,
                    proto: proto as u8,
                    lease: lease as u32,
                    packets: 0,
                };
                // The same flow again extends the existing pinhole.
                if let Some(p) = st.pinholes.iter_mut().find(|p| {
                    (&p.remote_host, p.remote_port, &p.client, p.port, p.proto)
                        == (
                            &hole.remote_host,
                            hole.remote_port,
                            &hole.client,
                            hole.port,
                            hole.proto,
                        )
                }) {
                    p.lease = if fw.readd_sets_far_expiry {
                        u32::MAX
                    } else {
                        hole.lease
                    };
                    return Ok(ok(&[("UniqueID", p.uid.to_string())]));
                }
                if st.pinholes.len() >= fw.max_pinholes {
                    return Err(fault(701, "PinholeSpaceExhausted"));
                }
                st.next_uid = st.next_uid.max(1);
                let uid = st.next_uid;
                st.next_uid = st.next_uid.wrapping_add(1);
                st.pinholes.push(FakePinhole { uid, ..hole });
                Ok(ok(&[("UniqueID", uid.to_string())]))
            }
            "UpdatePinhole" | "DeletePinhole" | "CheckPinholeWorking" | "GetPinholePackets" => {
                status?;
                if uid_arg(body).is_none() {
                    return Err(fault(402, "Invalid Args"));
                }
                let lease: i64 = arg(body, "NewLeaseTime").trim().parse().unwrap_or(-1);
                if action == "UpdatePinhole" && !(1..=86_400).contains(&lease) {
                    return Err(fault(402, "Invalid Args"));
                }
                let Some(i) = found(&st) else {
                    if action == "GetPinholePackets" {
                        // miniupnpd answers 0 for an ID it does not have.
                        return Ok(ok(&[("PinholePackets", "0".into())]));
                    }
                    if fw.missing_id_is_402 {
                        return Err(fault(402, "Invalid Args"));
                    }
                    return Err(fault(704, "NoSuchEntry"));
                };
                let (client, port) = (st.pinholes[i].client.clone(), st.pinholes[i].port);
                verify(peer, &client, port)?;
                match action {
                    "UpdatePinhole" => {
                        st.pinholes[i].lease = lease as u32;
                        Ok(ok(&[]))
                    }
                    "DeletePinhole" => {
                        st.pinholes.remove(i);
                        Ok(ok(&[]))
                    }
                    "CheckPinholeWorking" if st.pinholes[i].packets == 0 => {
                        Err(fault(709, "NoTrafficReceived"))
                    }
                    "CheckPinholeWorking" => Ok(ok(&[("IsWorking", "1".into())])),
                    _ => Ok(ok(&[(
                        "PinholePackets",
                        st.pinholes[i].packets.to_string(),
                    )])),
                }
            }
            _ => Err(fault(401, "Invalid Action")),
        }
    })();
    result.unwrap_or_else(|f| f)
}
