//! The duplicate local hostname check: does another device on the LAN answer
//! mDNS (RFC 6762) for this host's `.local` name? Apple: "If two of your
//! computers are configured with the same Local Hostname…" one of them is
//! renamed, or the name reaches the wrong machine.
//!
//! The query is a one-shot "legacy unicast" query (RFC 6762 §5.1, §6.7): sent to
//! 224.0.0.251:5353 from an ephemeral port, so responders (Avahi, mDNSResponder)
//! answer by unicast to that port. A and AAAA for `<hostname>.local`, sent twice
//! 250 ms apart (multicast is lossy), answers collected for 1 s.
//!
//! Some responders answer every query by multicast, and a device that takes the
//! name announces it to the group unasked. So for the same second the check also
//! listens on 5353 in the group, sharing the port with the host's own responder
//! (SO_REUSEADDR, and SO_REUSEPORT where it exists, as mDNSResponder and Avahi
//! set them). Where the port can't be shared, or the reachability check
//! listens on 5353/udp itself, the report says so (`group_listener: false`)
//! and only unicast answers count.
//!
//! An answer from an address that is not one of this host's own, giving an
//! address that is not this host's own, is another device claiming the name.
//! An answer from elsewhere that only repeats this host's own addresses is a
//! reflector or sleep proxy speaking for this host (an Avahi reflector or a mesh
//! Wi-Fi node re-sends answers from its own address), not a duplicate. The
//! check can miss a duplicate that stays silent for the whole second, never
//! invent one.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::findings::FindingCode;

mod wire;
use crate::report::{Finding, Report, Severity};
use wire::{Answers, BadHostname, TYPE_A, TYPE_AAAA, build_query, parse_answers};

/// The mDNS group.
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The mDNS group and port.
const MDNS: SocketAddr = SocketAddr::new(IpAddr::V4(GROUP), 5353);
/// How long answers are collected.
const LISTEN: Duration = Duration::from_millis(1000);
/// When the queries are sent again.
const RESEND: Duration = Duration::from_millis(250);
/// A larger mDNS message than this is not read (RFC 6762 §17: 9000 octets).
const MAX_MESSAGE: usize = 9000;

/// What the duplicate hostname check found.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct LocalNameReport {
    /// The name asked for, `<hostname>.local`; `None` when the host's name is
    /// unknown.
    pub name: Option<String>,
    /// Whether the query went out; when not, `not_checked` says why.
    pub checked: bool,
    /// Why the check did not run: `platform` (no way to read the host's name
    /// here), `no_hostname` (empty or not a DNS label), `socket` (no socket).
    pub not_checked: Option<&'static str>,
    /// This host's own addresses, whose answers are not claims.
    pub own_addresses: Vec<IpAddr>,
    /// Whether answers sent to the group on 5353 were heard too; false where
    /// the port could not be shared with the host's own responder, or when
    /// the reachability check (`--dialback`) listens on 5353/udp itself, so
    /// only answers by unicast to the query counted.
    pub group_listener: bool,
    /// Other devices that answered for the name.
    pub claims: Vec<NameClaim>,
}

/// How an answer arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Heard {
    /// By unicast, to the query's own port (legacy unicast).
    Unicast,
    /// To the mDNS group on 5353: an answer or an unasked announcement.
    Multicast,
}

/// One other device answering for this host's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NameClaim {
    /// The address the answer came from.
    pub from: IpAddr,
    /// The addresses it gave for the name (none of them this host's own).
    pub addresses: Vec<IpAddr>,
    /// How its answers arrived.
    pub via: Vec<Heard>,
}

/// Why this host's mDNS name cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoHostname {
    /// The platform's name is not read (or its source failed).
    Platform,
    /// The host has no usable name.
    Unset,
}

impl NoHostname {
    /// The report's `not_checked` code.
    fn code(self) -> &'static str {
        match self {
            NoHostname::Platform => "platform",
            NoHostname::Unset => "no_hostname",
        }
    }
}

/// This host's name as mDNS announces it: the first label of the kernel's host
/// name, or why it can't be had.
fn hostname() -> Result<String, NoHostname> {
    #[cfg(target_os = "linux")]
    {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_err(|_| NoHostname::Platform)?;
        label_of(&raw).ok_or(NoHostname::Unset)
    }
    // macOS announces its LocalHostName (System Settings > General > Sharing),
    // which can differ from gethostname's; scutil prints it.
    #[cfg(target_os = "macos")]
    {
        let out = std::process::Command::new("/usr/sbin/scutil")
            .args(["--get", "LocalHostName"])
            .output()
            .map_err(|_| NoHostname::Platform)?;
        scutil_label(out.status.success(), &out.stdout)
    }
    // Elsewhere the name mDNS announces is not read: "not checked" rather than
    // a guess.
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        Err(NoHostname::Platform)
    }
}

/// The label in `scutil --get LocalHostName`'s output. It fails ("LocalHostName:
/// not set") on a Mac that never had one: no name to check.
#[cfg_attr(not(any(target_os = "macos", test)), allow(dead_code))]
fn scutil_label(success: bool, stdout: &[u8]) -> Result<String, NoHostname> {
    if !success {
        return Err(NoHostname::Unset);
    }
    let text = std::str::from_utf8(stdout).map_err(|_| NoHostname::Unset)?;
    label_of(text).ok_or(NoHostname::Unset)
}

/// The first label of a host name, when it is a usable DNS label.
fn label_of(raw: &str) -> Option<String> {
    let first = raw.trim().split('.').next()?;
    let ok = !first.is_empty()
        && first.len() <= 63
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| first.to_ascii_lowercase())
}

/// Every address of every interface of this host.
fn own_addresses() -> BTreeSet<IpAddr> {
    netdev::get_interfaces()
        .iter()
        .flat_map(|i| {
            let v4 = i.ipv4.iter().map(|n| IpAddr::V4(n.addr()));
            let v6 = i.ipv6.iter().map(|n| IpAddr::V6(n.addr()));
            v4.chain(v6).collect::<Vec<_>>()
        })
        .collect()
}

/// Folds the answers for `name` into claims by other devices: one per source
/// address not in `own`, its addresses that are not in `own` in order, each
/// once. A unicast answer counts only with one of the queries' `ids`; an answer
/// to the group carries id 0 or any id (RFC 6762 §18.1) and counts as heard.
pub(crate) fn claims(
    name: &str,
    ids: &[u16],
    own: &BTreeSet<IpAddr>,
    received: &[(IpAddr, Heard, Answers)],
) -> Vec<NameClaim> {
    let mut out: Vec<NameClaim> = Vec::new();
    for (from, heard, a) in received {
        let ours = *heard == Heard::Multicast || ids.contains(&a.id);
        if !a.is_response || !ours || own.contains(from) {
            continue;
        }
        let addrs = a
            .addresses
            .iter()
            .filter(|(n, ip)| n == name && !own.contains(ip))
            .map(|&(_, ip)| ip);
        for ip in addrs {
            let i = match out.iter().position(|c| c.from == *from) {
                Some(i) => i,
                None => {
                    out.push(NameClaim {
                        from: *from,
                        addresses: Vec::new(),
                        via: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let c = &mut out[i];
            if !c.addresses.contains(&ip) {
                c.addresses.push(ip);
            }
            if !c.via.contains(heard) {
                c.via.push(*heard);
                c.via.sort();
            }
        }
    }
    out
}

fn not_checked(name: Option<String>, why: &'static str) -> LocalNameReport {
    LocalNameReport {
        name,
        checked: false,
        not_checked: Some(why),
        own_addresses: Vec::new(),
        group_listener: false,
        claims: Vec::new(),
    }
}

/// Asks the LAN, from `local` (the default route's interface address: binding
/// to it sends the multicast out of that interface), who answers for this
/// host's name, listening in the group too when `listen_group`. Takes about 1 s.
pub(crate) async fn check(local: Ipv4Addr, listen_group: bool) -> LocalNameReport {
    let label = match hostname() {
        Ok(l) => l,
        Err(why) => return not_checked(None, why.code()),
    };
    let name = format!("{label}.local");
    // Ids from the clock's low bits: a late answer to an earlier run is ignored.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x4D44, |d| d.subsec_nanos() as u16);
    let ids = [base, base.wrapping_add(1)];
    let queries: Vec<Vec<u8>> = match [TYPE_A, TYPE_AAAA]
        .iter()
        .zip(ids)
        .map(|(&t, id)| build_query(id, &name, t))
        .collect()
    {
        Ok(q) => q,
        Err(BadHostname) => return not_checked(Some(name), "no_hostname"),
    };
    let Ok(sock) = UdpSocket::bind(SocketAddr::new(IpAddr::V4(local), 0)).await else {
        return not_checked(Some(name), "socket");
    };
    // RFC 6762 §11: mDNS goes out with TTL 255 (receivers may check it).
    let _ = sock.set_multicast_ttl_v4(255);
    let group = if listen_group {
        group_listener(local)
    } else {
        None
    };
    let own = own_addresses();
    let mut received = Vec::new();
    let start = Instant::now();
    let mut next_send = Some(start);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut group_buf = vec![0u8; MAX_MESSAGE];
    loop {
        let now = Instant::now();
        if next_send.is_some_and(|t| t <= now) {
            for q in &queries {
                if let Err(e) = sock.send_to(q, MDNS).await {
                    tracing::debug!("mDNS query not sent: {e}");
                }
            }
            next_send = (now < start + RESEND).then_some(start + RESEND);
        }
        let until = next_send.unwrap_or(start + LISTEN).min(start + LISTEN);
        let got = tokio::time::timeout_at(until, async {
            tokio::select! {
                r = sock.recv_from(&mut buf) => (Heard::Unicast, r),
                r = recv_group(group.as_ref(), &mut group_buf) => (Heard::Multicast, r),
            }
        })
        .await;
        match got {
            Ok((heard, Ok((n, from)))) => {
                let m = match heard {
                    Heard::Unicast => &buf[..n],
                    Heard::Multicast => &group_buf[..n],
                };
                match parse_answers(m) {
                    Ok(a) => received.push((from.ip(), heard, a)),
                    Err(e) => tracing::debug!("mDNS answer from {from}: {e}"),
                }
            }
            Ok((_, Err(e))) => tracing::debug!("mDNS receive: {e}"),
            Err(_) if next_send.is_none() => break,
            Err(_) => {}
        }
        if Instant::now() >= start + LISTEN {
            break;
        }
    }
    LocalNameReport {
        claims: claims(&name, &ids, &own, &received),
        name: Some(name),
        checked: true,
        not_checked: None,
        own_addresses: own.into_iter().collect(),
        group_listener: group.is_some(),
    }
}

/// A socket in the mDNS group on 5353 on `local`'s interface, sharing the port
/// with the host's responder; `None` when the port can't be shared.
fn group_listener(local: Ipv4Addr) -> Option<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = || -> std::io::Result<UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        // mDNSResponder binds 5353 with SO_REUSEPORT: on macOS and the BSDs a
        // second socket must set it too. Linux shares the port on
        // SO_REUSEADDR alone when every holder set it (Avahi does).
        #[cfg(all(
            unix,
            not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
        ))]
        s.set_reuse_port(true)?;
        s.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), MDNS.port()).into())?;
        s.join_multicast_v4(&GROUP, &local)?;
        s.set_nonblocking(true)?;
        UdpSocket::from_std(s.into())
    };
    open()
        .map_err(|e| tracing::debug!("mDNS group listener not opened: {e}"))
        .ok()
}

/// The next datagram to the group, or never when there is no group listener.
async fn recv_group(
    group: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match group {
        Some(g) => g.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Starts the check on its own task.
pub(crate) fn start(local: Ipv4Addr, listen_group: bool) -> JoinHandle<LocalNameReport> {
    tokio::spawn(check(local, listen_group))
}

/// The check's result (`None` when not run or cancelled).
pub(crate) async fn finish(
    started: Option<JoinHandle<LocalNameReport>>,
) -> Option<LocalNameReport> {
    crate::section(started?).await
}

/// One line for the text report: the name and who else answers for it.
pub(crate) fn describe(l: &LocalNameReport) -> String {
    let name = l.name.as_deref().unwrap_or("this host's .local name");
    if let Some(why) = l.not_checked {
        return format!("{name}: not checked ({why})");
    }
    if l.claims.is_empty() {
        return format!("{name}: no other device answers for it");
    }
    let others: Vec<String> = l.claims.iter().map(|c| c.from.to_string()).collect();
    format!("{name}: also answered by {}", others.join(", "))
}

/// The `duplicate_hostname` finding, when another device answered for the name.
pub(crate) fn findings(r: &Report) -> Option<Finding> {
    let l = r.local_name.as_ref()?;
    let name = l.name.as_deref()?;
    if l.claims.is_empty() {
        return None;
    }
    let list = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(", ");
    let who = list(&mut l.claims.iter().map(|c| {
        let addrs = list(&mut c.addresses.iter().map(ToString::to_string));
        format!("{} (as {addrs})", c.from)
    }));
    Some(crate::findings::finding(
        FindingCode::DuplicateHostname,
        Severity::Warning,
        format!(
            "another device on the LAN answers for this host's name {name}: {who}; \
             connections to {name} may reach it instead of this host"
        ),
        "give one of the two another local hostname (on a Mac: System Settings > General > \
         Sharing > Local hostname; on Linux: hostnamectl set-hostname), then connect again",
    ))
}

#[cfg(test)]
mod tests {
    use super::wire::parse_answers;
    use super::wire::tests::response;
    use super::*;

    #[test]
    fn only_other_hosts_answers_for_the_name_are_claims() {
        let own: BTreeSet<IpAddr> = ["192.168.77.2".parse().expect("ip")].into();
        let other: IpAddr = "192.168.77.3".parse().expect("ip");
        let p = |id, name| parse_answers(&response(id, name)).expect("p");
        let rx = vec![
            (
                own.iter().next().copied().expect("own"),
                Heard::Unicast,
                p(5, "box.local"),
            ),
            (other, Heard::Unicast, p(5, "box.local")),
            (other, Heard::Unicast, p(5, "box.local")),
            // A stale id, another name: not claims.
            (other, Heard::Unicast, p(99, "box.local")),
            (
                "192.168.77.4".parse().expect("ip"),
                Heard::Unicast,
                p(6, "cat.local"),
            ),
        ];
        let c = claims("box.local", &[5, 6], &own, &rx);
        assert_eq!(
            c,
            [NameClaim {
                from: other,
                addresses: vec![
                    "192.168.77.3".parse().expect("ip"),
                    "fe80::3".parse().expect("ip")
                ],
                via: vec![Heard::Unicast],
            }]
        );
        let mut r = Report::empty();
        r.local_name = Some(LocalNameReport {
            name: Some("box.local".into()),
            checked: true,
            not_checked: None,
            own_addresses: own.iter().copied().collect(),
            group_listener: true,
            claims: c,
        });
        let line = describe(r.local_name.as_ref().expect("set"));
        assert_eq!(line, "box.local: also answered by 192.168.77.3");
        let f = findings(&r).expect("finding");
        assert_eq!(f.code, FindingCode::DuplicateHostname);
        assert!(
            f.message.starts_with(
                "another device on the LAN answers for this host's name box.local: \
                 192.168.77.3 (as 192.168.77.3, fe80::3);"
            ),
            "{}",
            f.message
        );
        r.local_name.as_mut().expect("set").claims.clear();
        assert!(findings(&r).is_none());
        let line = describe(r.local_name.as_ref().expect("set"));
        assert_eq!(line, "box.local: no other device answers for it");
        let line = describe(&not_checked(None, "platform"));
        assert_eq!(line, "this host's .local name: not checked (platform)");
    }

    /// Answers to the group count whatever their id; an answer from another
    /// address that gives only this host's own addresses is a reflector or a
    /// sleep proxy, not a claim.
    #[test]
    fn group_answers_count_and_reflected_answers_do_not() {
        let mine: IpAddr = "192.168.77.3".parse().expect("ip");
        let own: BTreeSet<IpAddr> = [mine, "fe80::3".parse().expect("ip")].into();
        let reflector: IpAddr = "192.168.77.9".parse().expect("ip");
        let other: IpAddr = "192.168.77.4".parse().expect("ip");
        let p = |id| parse_answers(&response(id, "box.local")).expect("p");
        let rx = vec![
            (reflector, Heard::Multicast, p(0)),
            (reflector, Heard::Unicast, p(5)),
            (other, Heard::Multicast, p(0)),
        ];
        // `response` gives 192.168.77.3 and fe80::3: from `other` with this
        // host's own addresses, so not a claim either.
        assert_eq!(claims("box.local", &[5], &own, &rx), []);
        let own_other: BTreeSet<IpAddr> = ["192.168.77.2".parse().expect("ip")].into();
        let c = claims(
            "box.local",
            &[5],
            &own_other,
            &[
                (other, Heard::Multicast, p(0)),
                (other, Heard::Unicast, p(5)),
                (other, Heard::Multicast, p(77)),
            ],
        );
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].from, other);
        assert_eq!(c[0].via, [Heard::Unicast, Heard::Multicast]);
        // A query (QR clear) heard in the group is never a claim.
        let mut q = p(0);
        q.is_response = false;
        assert_eq!(
            claims(
                "box.local",
                &[5],
                &own_other,
                &[(other, Heard::Multicast, q)]
            ),
            []
        );
    }

    #[test]
    fn the_macos_local_host_name() {
        assert_eq!(
            scutil_label(true, b"Kims-MacBook-Pro\n"),
            Ok("kims-macbook-pro".into())
        );
        assert_eq!(scutil_label(false, b""), Err(NoHostname::Unset));
        assert_eq!(scutil_label(true, b"\xff\xfe"), Err(NoHostname::Unset));
    }

    #[test]
    fn the_hostname_label() {
        assert_eq!(label_of("Box-2.example.org\n"), Some("box-2".into()));
        assert_eq!(label_of("\n"), None);
        assert_eq!(label_of("b\u{e9}b\u{e9}"), None);
    }
}
