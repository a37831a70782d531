//! The DNS codec of the duplicate hostname check: sans-IO and only as big as
//! this needs: one question out; questions skipped and A/AAAA answers read back,
//! names with compression pointers, bounded, a typed error for anything malformed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) const TYPE_A: u16 = 1;
pub(crate) const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// A DNS name is at most 255 octets on the wire (RFC 1035 §3.1).
const MAX_NAME: usize = 255;
/// More compression pointers than this in one name is a loop.
const MAX_JUMPS: usize = 16;

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A response as a responder writes it: the question echoed, then one A
    /// record whose owner is a pointer to the question's name, then an AAAA in
    /// the additional section with the name spelled out.
    pub(crate) fn response(id: u16, name: &str) -> Vec<u8> {
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
}
