//! DNS and mDNS queries (RFC 1035 §4.1, RFC 6762 §6.7).

use crate::order::SplitMix64;

const TYPE_NS: u16 = 2;
const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;
/// The "unicast response" bit of an mDNS question's class (RFC 6762 §5.4).
const UNICAST_RESPONSE: u16 = 0x8000;

fn query(id: u16, recursion_desired: bool, labels: &[&str], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = if recursion_desired { 0x0100 } else { 0 };
    v.extend_from_slice(&flags.to_be_bytes());
    // QDCOUNT 1, ANCOUNT/NSCOUNT/ARCOUNT 0.
    v.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in labels {
        // Labels here are compile-time constants well under 63 bytes.
        v.push(label.len() as u8);
        v.extend_from_slice(label.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&qclass.to_be_bytes());
    v
}

/// `. IN NS`, recursion desired: every resolver and authoritative server
/// answers it (with the root servers, a referral, or at least REFUSED).
pub(super) fn root_ns_query(rng: &mut SplitMix64) -> Vec<u8> {
    query(rng.next_u64() as u16, true, &[], TYPE_NS, CLASS_IN)
}

/// `_services._dns-sd._udp.local. IN PTR`, unicast response requested. Sent
/// from a port other than 5353 it is a legacy unicast query, which a
/// responder answers directly to the sender with the query's id.
pub(super) fn mdns_services_query(rng: &mut SplitMix64) -> Vec<u8> {
    query(
        rng.next_u64() as u16,
        false,
        &["_services", "_dns-sd", "_udp", "local"],
        TYPE_PTR,
        CLASS_IN | UNICAST_RESPONSE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ns_query_layout() {
        let q = root_ns_query(&mut SplitMix64::new(1));
        assert_eq!(q.len(), 12 + 1 + 4);
        assert_eq!(&q[2..4], &[0x01, 0x00], "RD set, a standard query");
        assert_eq!(&q[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], &[0, 0, 2, 0, 1]);
    }

    #[test]
    fn mdns_query_layout() {
        let q = mdns_services_query(&mut SplitMix64::new(1));
        let name = b"\x09_services\x07_dns-sd\x04_udp\x05local\x00";
        assert_eq!(&q[2..4], &[0, 0]);
        assert_eq!(&q[12..12 + name.len()], name);
        assert_eq!(&q[12 + name.len()..], &[0, 12, 0x80, 1]);
    }
}
