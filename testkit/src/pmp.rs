//! A fake NAT-PMP/PCP server on loopback.
//!
//! Its encoding is written here by hand from RFC 6886 and RFC 6887, not
//! with natkit-pmp's codec, so the two check each other.
// A test fixture: a failing socket or lock should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
// The test's clock: on a paused clock the epoch moves with the timers.
use tokio::time::Instant;

/// What the fake does.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answers NAT-PMP (version 0) requests.
    pub natpmp: bool,
    /// Answers PCP version 2; otherwise a version-2 packet gets the
    /// NAT-PMP "unsupported version" answer (if `natpmp`) or nothing.
    pub pcp: bool,
    /// The external address it reports.
    pub external_ip: Ipv4Addr,
    /// Its epoch (seconds since start of epoch) when it starts.
    pub epoch: u32,
    /// Grants this external port whatever was suggested.
    pub substitute_port: Option<u16>,
    /// Before every real answer, sends a forged copy (with external port
    /// 6666) from another port on the same address and from 127.0.0.2.
    pub spoof_first: bool,
    /// Before every real PCP MAP answer, sends one with another nonce (and
    /// external port 7777) from the real address and port.
    pub wrong_nonce_first: bool,
    /// Ignores this many requests before answering.
    pub drop_first: usize,
    /// Counts only requests of this version (0 NAT-PMP, 2 PCP) towards
    /// `drop_first`; `None`: every request.
    pub drop_version: Option<u8>,
    /// Answers every request with this result code instead.
    pub force_result: Option<u8>,
    /// Acts on this many requests but loses their answers (an answer
    /// dropped on the way back).
    pub lose_answers: usize,
    /// miniupnpd 2.3.1: a PCP delete of a mapping it does not hold is
    /// answered NO_RESOURCES (8), not SUCCESS as RFC 6887 §15 asks.
    pub miniupnpd_delete: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            natpmp: true,
            pcp: true,
            external_ip: Ipv4Addr::new(198, 51, 100, 77),
            epoch: 10_000,
            substitute_port: None,
            spoof_first: false,
            wrong_nonce_first: false,
            drop_first: 0,
            drop_version: None,
            force_result: None,
            lose_answers: 0,
            miniupnpd_delete: false,
        }
    }
}

/// A mapping the fake holds: external port, lifetime, PCP nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The external port granted.
    pub external_port: u16,
    /// The lifetime asked for, in seconds.
    pub lifetime: u32,
    /// The PCP MAP nonce (`None` for a NAT-PMP mapping).
    pub nonce: Option<[u8; 12]>,
}

#[derive(Debug)]
struct Shared {
    behaviour: Behaviour,
    /// (protocol number, internal port) → mapping.
    mappings: HashMap<(u8, u16), Held>,
    /// Epoch base and when it was set.
    epoch: (u32, Instant),
    /// Every datagram received, with its source.
    requests: Vec<(SocketAddr, Vec<u8>)>,
}

/// A running fake server.
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a fake on `ip` (127.0.0.1 or ::1), random port.
    pub async fn start(ip: IpAddr, behaviour: Behaviour) -> FakeServer {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            epoch: (behaviour.epoch, Instant::now()),
            behaviour,
            mappings: HashMap::new(),
            requests: Vec::new(),
        }));
        let spoof_same_ip = UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap();
        let spoof_other_ip = match ip {
            IpAddr::V4(_) => UdpSocket::bind("127.0.0.2:0").await.ok(),
            IpAddr::V6(_) => None,
        };
        let task = tokio::spawn(serve(socket, spoof_same_ip, spoof_other_ip, shared.clone()));
        FakeServer { addr, shared, task }
    }

    /// Starts a fake on 127.0.0.1.
    pub async fn v4(behaviour: Behaviour) -> FakeServer {
        Self::start(IpAddr::V4(Ipv4Addr::LOCALHOST), behaviour).await
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Restarts the epoch at `seconds` (a simulated router reboot); the
    /// mappings are lost as on a real reboot.
    pub fn reboot(&self, seconds: u32) {
        let mut s = self.shared.lock().unwrap();
        s.epoch = (seconds, Instant::now());
        s.mappings.clear();
    }

    /// The mappings it holds, by (IP protocol number, internal port).
    pub fn mappings(&self) -> HashMap<(u8, u16), Held> {
        self.shared.lock().unwrap().mappings.clone()
    }

    /// Every datagram it received so far, with its source.
    pub fn requests(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Changes its behaviour from the next request on.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.shared.lock().unwrap().behaviour);
    }
}

impl Shared {
    /// Holds a mapping for `key` (protocol number, internal port) and returns
    /// the external port granted: the substitute, else the suggested port,
    /// else the internal one.
    fn grant(
        &mut self,
        key: (u8, u16),
        suggested: u16,
        lifetime: u32,
        nonce: Option<[u8; 12]>,
    ) -> u16 {
        let wanted = if suggested == 0 { key.1 } else { suggested };
        let external_port = self.behaviour.substitute_port.unwrap_or(wanted);
        self.mappings.insert(
            key,
            Held {
                external_port,
                lifetime,
                nonce,
            },
        );
        external_port
    }
}

fn epoch_now(s: &Shared) -> u32 {
    s.epoch.0 + s.epoch.1.elapsed().as_secs() as u32
}

async fn serve(
    socket: UdpSocket,
    spoof_same_ip: UdpSocket,
    spoof_other_ip: Option<UdpSocket>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let req = buf[..n].to_vec();
        let replies = {
            let mut s = shared.lock().unwrap();
            s.requests.push((from, req.clone()));
            let counted = s
                .behaviour
                .drop_version
                .is_none_or(|v| req.first() == Some(&v));
            if counted && s.behaviour.drop_first > 0 {
                s.behaviour.drop_first -= 1;
                continue;
            }
            let replies = answer(&mut s, from, &req);
            if s.behaviour.lose_answers > 0 {
                s.behaviour.lose_answers -= 1;
                continue;
            }
            replies
        };
        let spoof = shared.lock().unwrap().behaviour.spoof_first;
        for reply in replies {
            if spoof && reply.real {
                let forged = forge_port(&reply.bytes, 6666);
                spoof_same_ip.send_to(&forged, from).await.unwrap();
                if let Some(s) = &spoof_other_ip {
                    s.send_to(&forged, from).await.unwrap();
                }
            }
            socket.send_to(&reply.bytes, from).await.unwrap();
        }
    }
}

struct Reply {
    bytes: Vec<u8>,
    /// False for decoys sent by the real socket (wrong nonce).
    real: bool,
}

/// Rewrites the external port of a mapping answer (either protocol).
fn forge_port(reply: &[u8], port: u16) -> Vec<u8> {
    let mut f = reply.to_vec();
    match (f[0], f.len()) {
        (0, 16) => f[10..12].copy_from_slice(&port.to_be_bytes()),
        (2, 60..) => f[42..44].copy_from_slice(&port.to_be_bytes()),
        _ => {}
    }
    f
}

fn answer(s: &mut Shared, from: SocketAddr, req: &[u8]) -> Vec<Reply> {
    if req.len() < 2 {
        return vec![];
    }
    if req[0] == 0 {
        if !s.behaviour.natpmp {
            return vec![];
        }
        return natpmp_answer(s, req)
            .map(|bytes| vec![Reply { bytes, real: true }])
            .unwrap_or_default();
    }
    if !s.behaviour.pcp {
        if !s.behaviour.natpmp {
            return vec![];
        }
        // RFC 6886 §3.5: unsupported version.
        let mut r = vec![0, 128 + (req[1] & 0x7f), 0, 1];
        r.extend(epoch_now(s).to_be_bytes());
        return vec![Reply {
            bytes: r,
            real: true,
        }];
    }
    pcp_answer(s, from, req)
}

fn natpmp_answer(s: &mut Shared, req: &[u8]) -> Option<Vec<u8>> {
    let op = req[1];
    let epoch = epoch_now(s);
    let mut r = vec![0, 128 + op];
    if let Some(code) = s.behaviour.force_result {
        r.extend(u16::from(code).to_be_bytes());
        r.extend(epoch.to_be_bytes());
        return Some(r);
    }
    match op {
        0 => {
            r.extend([0, 0]);
            r.extend(epoch.to_be_bytes());
            r.extend(s.behaviour.external_ip.octets());
        }
        1 | 2 if req.len() >= 12 => {
            let internal = u16::from_be_bytes([req[4], req[5]]);
            let suggested = u16::from_be_bytes([req[6], req[7]]);
            let lifetime = u32::from_be_bytes([req[8], req[9], req[10], req[11]]);
            let proto = if op == 1 { 17 } else { 6 };
            let (ext, granted) = if lifetime == 0 {
                s.mappings.remove(&(proto, internal));
                (0, 0)
            } else {
                let ext = s.grant((proto, internal), suggested, lifetime, None);
                (ext, lifetime)
            };
            r.extend([0, 0]);
            r.extend(epoch.to_be_bytes());
            r.extend(internal.to_be_bytes());
            r.extend(ext.to_be_bytes());
            r.extend(granted.to_be_bytes());
        }
        _ => {
            r.extend(5u16.to_be_bytes());
            r.extend(epoch.to_be_bytes());
        }
    }
    Some(r)
}

fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn pcp_header(op: u8, result: u8, lifetime: u32, epoch: u32) -> Vec<u8> {
    let mut r = vec![2, 0x80 | op, 0, result];
    r.extend(lifetime.to_be_bytes());
    r.extend(epoch.to_be_bytes());
    r.extend([0u8; 12]);
    r
}

fn pcp_answer(s: &mut Shared, from: SocketAddr, req: &[u8]) -> Vec<Reply> {
    let epoch = epoch_now(s);
    let one = |bytes| vec![Reply { bytes, real: true }];
    if req.len() < 24 {
        return one(pcp_header(req[1] & 0x7f, 3, 0, epoch));
    }
    if req[0] != 2 {
        let mut h = pcp_header(req[1] & 0x7f, 1, 0, epoch);
        h[0] = 2;
        return one(h);
    }
    let op = req[1] & 0x7f;
    let lifetime = u32::from_be_bytes([req[4], req[5], req[6], req[7]]);
    let mut client = [0u8; 16];
    client.copy_from_slice(&req[8..24]);
    if client != mapped(from.ip()) {
        let mut h = pcp_header(op, 12, 0, epoch);
        h.extend(&req[24..]);
        return one(h);
    }
    match op {
        0 => one(pcp_header(
            0,
            s.behaviour.force_result.unwrap_or(0),
            0,
            epoch,
        )),
        1 if req.len() >= 60 => {
            let d = &req[24..60];
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&d[0..12]);
            let proto = d[12];
            let internal = u16::from_be_bytes([d[16], d[17]]);
            let suggested = u16::from_be_bytes([d[18], d[19]]);
            let key = (proto, internal);
            let reply =
                |result: u8, granted: u32, ext_port: u16, ext_ip: IpAddr, nonce: [u8; 12]| {
                    let mut r = pcp_header(1, result, granted, epoch);
                    r.extend(nonce);
                    r.extend([proto, 0, 0, 0]);
                    r.extend(internal.to_be_bytes());
                    r.extend(ext_port.to_be_bytes());
                    r.extend(mapped(ext_ip));
                    r
                };
            let ext_ip = match from.ip() {
                IpAddr::V4(_) => IpAddr::V4(s.behaviour.external_ip),
                // An IPv6 PCP firewall: the external address is the host's.
                IpAddr::V6(v6) => IpAddr::V6(v6),
            };
            if let Some(code) = s.behaviour.force_result {
                return one(reply(code, 30, 0, ext_ip, nonce));
            }
            if let Some(held) = s.mappings.get(&key)
                && held.nonce.is_some_and(|n| n != nonce)
            {
                return one(reply(2, 30, 0, ext_ip, nonce));
            }
            let mut out = Vec::new();
            if s.behaviour.wrong_nonce_first {
                let mut other = nonce;
                other[0] ^= 0xff;
                out.push(Reply {
                    bytes: reply(0, lifetime, 7777, ext_ip, other),
                    real: false,
                });
            }
            if lifetime == 0 {
                let held = s.mappings.remove(&key).is_some();
                let code = if !held && s.behaviour.miniupnpd_delete {
                    8
                } else {
                    0
                };
                out.push(Reply {
                    bytes: reply(code, 0, 0, ext_ip, nonce),
                    real: true,
                });
            } else {
                let ext = s.grant(key, suggested, lifetime, Some(nonce));
                out.push(Reply {
                    bytes: reply(0, lifetime, ext, ext_ip, nonce),
                    real: true,
                });
            }
            out
        }
        _ => one(pcp_header(op, 4, 0, epoch)),
    }
}

/// A UDP socket that receives and never answers: a router without
/// NAT-PMP/PCP.
pub async fn silent() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// `::1`, where a fake for the IPv6 tests listens.
pub const LOCALHOST_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
