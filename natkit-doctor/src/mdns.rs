//! The duplicate local hostname check: does another device on the LAN answer
//! mDNS (RFC 6762) for this host's `.local` name? Apple: "If two of your
//! computers are configured with the same Local Hostname…" one of them is
//! renamed, or the name reaches the wrong machine.
//!
//! The query is a one-shot "legacy unicast" query (RFC 6762 §5.1, §6.7): sent to
//! 224.0.0.251:5353 from an ephemeral port, so responders (Avahi, mDNSResponder)
//! answer by unicast to that port and nothing has to share port 5353 with the
//! host's own responder. A and AAAA for `<hostname>.local`, sent twice 250 ms
//! apart (multicast is lossy), answers collected for 1 s. An answer from an
//! address that is not one of this host's own is another device claiming the
//! name. A responder that answers legacy queries only by multicast is not seen:
//! the check can miss a duplicate, never invent one.
//!
//! The DNS codec below is sans-IO and only as big as this needs: one question
//! out; questions skipped and A/AAAA answers read back, names with compression
//! pointers, bounded, a typed error for anything malformed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::findings::FindingCode;
use crate::report::{Finding, Report, Severity};

/// The mDNS group and port.
const MDNS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353);
/// How long answers are collected.
const LISTEN: Duration = Duration::from_millis(1000);
/// When the queries are sent again.
const RESEND: Duration = Duration::from_millis(250);
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// A DNS name is at most 255 octets on the wire (RFC 1035 §3.1).
const MAX_NAME: usize = 255;
/// More compression pointers than this in one name is a loop.
const MAX_JUMPS: usize = 16;
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
    /// Other devices that answered for the name.
    pub claims: Vec<NameClaim>,
}

/// One other device answering for this host's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NameClaim {
    /// The address the answer came from.
    pub from: IpAddr,
    /// The addresses it gave for the name.
    pub addresses: Vec<IpAddr>,
}

/// A malformed DNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The message ends inside a header, name or record.
    #[error("the message is truncated")]
    Truncated,
    /// A name is longer than 255 octets or its pointers loop.
    #[error("a name is too long or its compression pointers loop")]
    BadName,
    /// A label type other than a plain label or a pointer (RFC 6891 §5).
    #[error("a reserved label type")]
    BadLabel,
}

/// A host name that cannot be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHostname;

/// The question for `name` of type `qtype`, id 0 is allowed but a legacy
/// unicast query carries a real id (RFC 6762 §6.7).
pub(crate) fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, BadHostname> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    // Flags 0 (a standard query), one question, no records.
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let start = m.len();
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len()).map_err(|_| BadHostname)?;
        if len == 0 || len > 63 {
            return Err(BadHostname);
        }
        m.push(len);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    if m.len() - start > MAX_NAME {
        return Err(BadHostname);
    }
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// A response's A and AAAA records: (owner name in lower case, address).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Answers {
    pub id: u16,
    pub is_response: bool,
    pub addresses: Vec<(String, IpAddr)>,
}

fn take<'a>(m: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], WireError> {
    let end = at.checked_add(n).ok_or(WireError::Truncated)?;
    let s = m.get(*at..end).ok_or(WireError::Truncated)?;
    *at = end;
    Ok(s)
}

fn u16_at(m: &[u8], at: &mut usize) -> Result<u16, WireError> {
    let b = take(m, at, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads the name at `*at` (advancing past it, not past what pointers reach),
/// lower-cased and dot-separated; non-ASCII octets read as `?`.
fn read_name(m: &[u8], at: &mut usize) -> Result<String, WireError> {
    let mut name = String::new();
    let mut wire_len = 0usize;
    let mut pos = *at;
    let mut jumped = false;
    let mut jumps = 0usize;
    loop {
        let len = *m.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                if !jumped {
                    *at = pos + 1;
                }
                return Ok(name);
            }
            0x00 => {
                let label = m
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(WireError::Truncated)?;
                wire_len += 1 + label.len();
                if wire_len + 1 > MAX_NAME {
                    return Err(WireError::BadName);
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.extend(label.iter().map(|&b| {
                    if b.is_ascii() {
                        char::from(b.to_ascii_lowercase())
                    } else {
                        '?'
                    }
                }));
                pos += 1 + label.len();
            }
            0xC0 => {
                let low = *m.get(pos + 1).ok_or(WireError::Truncated)?;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(WireError::BadName);
                }
                if !jumped {
                    *at = pos + 2;
                    jumped = true;
                }
                pos = usize::from(u16::from_be_bytes([len & 0x3F, low]));
            }
            _ => return Err(WireError::BadLabel),
        }
    }
}

/// Parses a response: the questions are skipped, every record's A or AAAA
/// address is read (answers and additional records alike: a responder may put
/// the address in either).
pub(crate) fn parse_answers(m: &[u8]) -> Result<Answers, WireError> {
    let mut at = 0;
    let id = u16_at(m, &mut at)?;
    let flags = u16_at(m, &mut at)?;
    let qd = u16_at(m, &mut at)?;
    let counts = [
        u16_at(m, &mut at)?,
        u16_at(m, &mut at)?,
        u16_at(m, &mut at)?,
    ];
    for _ in 0..qd {
        read_name(m, &mut at)?;
        take(m, &mut at, 4)?;
    }
    let mut addresses = Vec::new();
    for _ in 0..counts.iter().map(|&c| u32::from(c)).sum::<u32>() {
        let owner = read_name(m, &mut at)?;
        let rtype = u16_at(m, &mut at)?;
        // The class's top bit is mDNS's cache-flush bit (RFC 6762 §10.2).
        let class = u16_at(m, &mut at)? & 0x7FFF;
        take(m, &mut at, 4)?;
        let rdlen = u16_at(m, &mut at)?;
        let data = take(m, &mut at, usize::from(rdlen))?;
        let ip = match (class, rtype, data.len()) {
            (CLASS_IN, TYPE_A, 4) => IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (CLASS_IN, TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => continue,
        };
        addresses.push((owner, ip));
    }
    Ok(Answers {
        id,
        is_response: flags & 0x8000 != 0,
        addresses,
    })
}

/// This host's name as mDNS announces it: the first label of the kernel's host
/// name, or why it can't be had.
fn hostname() -> Result<String, &'static str> {
    #[cfg(target_os = "linux")]
    {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").map_err(|_| "platform")?;
        label_of(&raw).ok_or("no_hostname")
    }
    // macOS announces its LocalHostName (scutil), not gethostname; elsewhere the
    // name is not read: "not checked" rather than a guess.
    #[cfg(not(target_os = "linux"))]
    {
        Err("platform")
    }
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
/// address not in `own`, its addresses in order, each once.
pub(crate) fn claims(
    name: &str,
    ids: &[u16],
    own: &BTreeSet<IpAddr>,
    received: &[(IpAddr, Answers)],
) -> Vec<NameClaim> {
    let mut out: Vec<NameClaim> = Vec::new();
    for (from, a) in received {
        if !a.is_response || !ids.contains(&a.id) || own.contains(from) {
            continue;
        }
        let addrs = a
            .addresses
            .iter()
            .filter(|(n, _)| n == name)
            .map(|&(_, ip)| ip);
        for ip in addrs {
            let i = match out.iter().position(|c| c.from == *from) {
                Some(i) => i,
                None => {
                    out.push(NameClaim {
                        from: *from,
                        addresses: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            if !out[i].addresses.contains(&ip) {
                out[i].addresses.push(ip);
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
        claims: Vec::new(),
    }
}

/// Asks the LAN, from `local` (the default route's interface address: binding
/// to it sends the multicast out of that interface), who answers for this
/// host's name. Takes about 1 s.
pub(crate) async fn check(local: Ipv4Addr) -> LocalNameReport {
    let label = match hostname() {
        Ok(l) => l,
        Err(why) => return not_checked(None, why),
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
    let own = own_addresses();
    let mut received = Vec::new();
    let start = Instant::now();
    let mut next_send = Some(start);
    let mut buf = vec![0u8; MAX_MESSAGE];
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
        match tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => match parse_answers(&buf[..n]) {
                Ok(a) => received.push((from.ip(), a)),
                Err(e) => tracing::debug!("mDNS answer from {from}: {e}"),
            },
            Ok(Err(e)) => tracing::debug!("mDNS receive: {e}"),
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
    }
}

/// Starts the check on its own task.
pub(crate) fn start(local: Ipv4Addr) -> JoinHandle<LocalNameReport> {
    tokio::spawn(check(local))
}

/// The check's result (`None` when its task died).
pub(crate) async fn finish(
    started: Option<JoinHandle<LocalNameReport>>,
) -> Option<LocalNameReport> {
    started?.await.ok()
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
    use super::*;

    /// A response as a responder writes it: the question echoed, then one A
    /// record whose owner is a pointer to the question's name, then an AAAA in
    /// the additional section with the name spelled out.
    fn response(id: u16, name: &str) -> Vec<u8> {
        let mut m = build_query(id, name, TYPE_A).expect("query");
        m[2] = 0x84; // QR, AA
        m[7] = 1; // one answer
        m[11] = 1; // one additional
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0x80, 1, 0, 0, 0, 10, 0, 4, 192, 168, 77, 3]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.to_ascii_uppercase().as_bytes());
        }
        m.extend_from_slice(&[0, 0, 28, 0, 1, 0, 0, 0, 10, 0, 16]);
        m.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3).octets());
        m
    }

    #[test]
    fn a_query_is_one_question_for_the_name() {
        let q = build_query(0x1234, "box.local", TYPE_AAAA).expect("query");
        assert_eq!(
            q,
            [
                0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'b', b'o', b'x', 5, b'l', b'o', b'c',
                b'a', b'l', 0, 0, 28, 0, 1
            ]
        );
        assert_eq!(build_query(1, "a..local", TYPE_A), Err(BadHostname));
        assert_eq!(build_query(1, &"x".repeat(64), TYPE_A), Err(BadHostname));
        let long = vec!["y".repeat(63); 4].join(".");
        assert_eq!(build_query(1, &long, TYPE_A), Err(BadHostname));
    }

    #[test]
    fn answers_through_pointers_in_any_case_and_section() {
        let a = parse_answers(&response(7, "box.local")).expect("parse");
        assert_eq!(a.id, 7);
        assert!(a.is_response);
        assert_eq!(
            a.addresses,
            [
                ("box.local".to_owned(), "192.168.77.3".parse().expect("ip")),
                ("box.local".to_owned(), "fe80::3".parse().expect("ip")),
            ]
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let good = response(7, "box.local");
        for n in 0..good.len() {
            assert_eq!(
                parse_answers(&good[..n]),
                Err(WireError::Truncated),
                "at {n}"
            );
        }
        // A pointer to itself loops.
        let mut looped = good.clone();
        let at = good.len() - 10 - 11 - 16; // the additional record's name
        looped.splice(at.., [0xC0, at as u8]);
        assert_eq!(parse_answers(&looped), Err(WireError::BadName));
        let mut reserved = good.clone();
        reserved[12] = 0x43;
        assert_eq!(parse_answers(&reserved), Err(WireError::BadLabel));
        // 200 one-octet labels: longer than 255 octets.
        let mut long = vec![0, 0, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..200 {
            long.extend_from_slice(&[1, b'a']);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_answers(&long), Err(WireError::BadName));
    }

    /// Random bytes and random mutations of a real response never panic, and
    /// every read stays inside the message.
    #[test]
    fn random_bytes_never_panic() {
        let good = response(9, "box.local");
        // xorshift: deterministic, so a failure reproduces.
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..20_000 {
            let mut m = if next() % 2 == 0 {
                good.clone()
            } else {
                (0..next() % 300).map(|_| next() as u8).collect()
            };
            for _ in 0..next() % 6 {
                if !m.is_empty() {
                    let i = (next() as usize) % m.len();
                    m[i] = next() as u8;
                }
            }
            let _ = parse_answers(&m);
        }
    }

    #[test]
    fn only_other_hosts_answers_for_the_name_are_claims() {
        let own: BTreeSet<IpAddr> = ["192.168.77.2".parse().expect("ip")].into();
        let other: IpAddr = "192.168.77.3".parse().expect("ip");
        let rx = vec![
            (
                own.iter().next().copied().expect("own"),
                parse_answers(&response(5, "box.local")).expect("p"),
            ),
            (other, parse_answers(&response(5, "box.local")).expect("p")),
            (other, parse_answers(&response(5, "box.local")).expect("p")),
            // A stale id, another name: not claims.
            (other, parse_answers(&response(99, "box.local")).expect("p")),
            (
                "192.168.77.4".parse().expect("ip"),
                parse_answers(&response(6, "cat.local")).expect("p"),
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
            }]
        );
        let mut r = Report::empty();
        r.local_name = Some(LocalNameReport {
            name: Some("box.local".into()),
            checked: true,
            not_checked: None,
            own_addresses: own.iter().copied().collect(),
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

    #[test]
    fn the_hostname_label() {
        assert_eq!(label_of("Box-2.example.org\n"), Some("box-2".into()));
        assert_eq!(label_of("\n"), None);
        assert_eq!(label_of("b\u{e9}b\u{e9}"), None);
    }
}
