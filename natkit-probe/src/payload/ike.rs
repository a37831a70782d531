//! IKEv2 `IKE_SA_INIT` request (RFC 7296 §1.2, §3): header, one proposal,
//! a key exchange and a nonce. Responders answer it (with their own
//! `IKE_SA_INIT`, or `INVALID_KE_PAYLOAD`/`NO_PROPOSAL_CHOSEN`), while a bare
//! header is usually dropped; any answer shows the port open.

use crate::order::SplitMix64;

const PAYLOAD_NONE: u8 = 0;
const PAYLOAD_SA: u8 = 33;
const PAYLOAD_KE: u8 = 34;
const PAYLOAD_NONCE: u8 = 40;
const EXCHANGE_IKE_SA_INIT: u8 = 34;
const FLAG_INITIATOR: u8 = 0x08;
const VERSION_2_0: u8 = 0x20;
const PROTOCOL_IKE: u8 = 1;
/// Diffie-Hellman group 14: 2048-bit MODP (RFC 3526).
const DH_GROUP_14: u16 = 14;
const DH_14_LEN: usize = 256;
const NONCE_LEN: usize = 32;

/// One transform: (type, id, key length attribute).
const TRANSFORMS: [(u8, u16, Option<u16>); 4] = [
    (1, 12, Some(128)), // ENCR_AES_CBC, 128-bit key
    (2, 5, None),       // PRF_HMAC_SHA2_256
    (3, 12, None),      // AUTH_HMAC_SHA2_256_128
    (4, DH_GROUP_14, None),
];

fn push_u16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// Writes a big-endian u16 length at `at`.
fn patch_len(v: &mut [u8], at: usize, len: usize) {
    let len = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    v[at..at + 2].copy_from_slice(&len);
}

fn proposal() -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 1, PROTOCOL_IKE, 0, TRANSFORMS.len() as u8];
    for (i, (ttype, id, key_len)) in TRANSFORMS.iter().enumerate() {
        let start = p.len();
        let last = i + 1 == TRANSFORMS.len();
        p.extend_from_slice(&[if last { 0 } else { 3 }, 0, 0, 0, *ttype, 0]);
        push_u16(&mut p, *id);
        if let Some(bits) = key_len {
            // Attribute Key Length (14) in TV format.
            push_u16(&mut p, 0x8000 | 14);
            push_u16(&mut p, *bits);
        }
        let len = p.len() - start;
        patch_len(&mut p, start + 2, len);
    }
    let len = p.len();
    patch_len(&mut p, 2, len);
    p
}

/// The request, SPI and nonces from `rng`.
pub(super) fn sa_init(rng: &mut SplitMix64) -> Vec<u8> {
    let mut m = Vec::with_capacity(400);
    // Header: initiator SPI (never zero), responder SPI zero.
    let spi = rng.next_u64() | 1;
    m.extend_from_slice(&spi.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[
        PAYLOAD_SA,
        VERSION_2_0,
        EXCHANGE_IKE_SA_INIT,
        FLAG_INITIATOR,
    ]);
    m.extend_from_slice(&[0; 4]); // message id 0
    m.extend_from_slice(&[0; 4]); // length, patched below

    // SA payload.
    let proposal = proposal();
    let sa_start = m.len();
    m.extend_from_slice(&[PAYLOAD_KE, 0, 0, 0]);
    m.extend_from_slice(&proposal);
    let sa_len = m.len() - sa_start;
    patch_len(&mut m, sa_start + 2, sa_len);

    // KE payload: a public value in [2^2046, 2^2047), below the group 14
    // prime (which starts with 64 one bits) and far from 0 and 1.
    let ke_start = m.len();
    m.extend_from_slice(&[PAYLOAD_NONCE, 0, 0, 0]);
    push_u16(&mut m, DH_GROUP_14);
    push_u16(&mut m, 0);
    let mut ke = [0u8; DH_14_LEN];
    rng.fill(&mut ke);
    ke[0] = (ke[0] & 0x3F) | 0x40;
    m.extend_from_slice(&ke);
    let ke_len = m.len() - ke_start;
    patch_len(&mut m, ke_start + 2, ke_len);

    // Nonce payload.
    let nonce_start = m.len();
    m.extend_from_slice(&[PAYLOAD_NONE, 0, 0, 0]);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce);
    m.extend_from_slice(&nonce);
    let nonce_len = m.len() - nonce_start;
    patch_len(&mut m, nonce_start + 2, nonce_len);

    let total = u32::try_from(m.len()).unwrap_or(u32::MAX).to_be_bytes();
    m[24..28].copy_from_slice(&total);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(m: &[u8], at: usize) -> usize {
        usize::from(u16::from_be_bytes([m[at], m[at + 1]]))
    }

    #[test]
    fn header_and_payload_chain_are_consistent() {
        let m = sa_init(&mut SplitMix64::new(11));
        assert_eq!(m.len(), 28 + 48 + 264 + 36);
        assert_ne!(&m[..8], &[0; 8], "initiator SPI");
        assert_eq!(&m[8..16], &[0; 8], "responder SPI");
        assert_eq!(m[17], 0x20, "version 2.0");
        assert_eq!(m[18], 34, "IKE_SA_INIT");
        assert_eq!(m[19], 0x08, "initiator flag");
        assert_eq!(
            u32::from_be_bytes([m[24], m[25], m[26], m[27]]) as usize,
            m.len()
        );
        // Walk the payload chain: SA → KE → Nonce → none, lengths adding up.
        let mut next = m[16];
        let mut at = 28;
        let mut seen = Vec::new();
        while next != 0 {
            seen.push(next);
            let len = u16_at(&m, at + 2);
            next = m[at];
            at += len;
        }
        assert_eq!(seen, [33, 34, 40]);
        assert_eq!(at, m.len());
    }

    #[test]
    fn proposal_lists_four_transforms() {
        let p = proposal();
        assert_eq!(p.len(), 44);
        assert_eq!(u16_at(&p, 2), 44);
        assert_eq!((p[4], p[5], p[6], p[7]), (1, PROTOCOL_IKE, 0, 4));
        let mut at = 8;
        let mut types = Vec::new();
        loop {
            types.push(p[at + 4]);
            let last = p[at] == 0;
            at += u16_at(&p, at + 2);
            if last {
                break;
            }
        }
        assert_eq!(types, [1, 2, 3, 4]);
        assert_eq!(at, p.len());
    }

    #[test]
    fn key_exchange_names_group_14_and_stays_below_the_prime() {
        let m = sa_init(&mut SplitMix64::new(12));
        let ke = 28 + 48;
        assert_eq!(m[ke], 40);
        assert_eq!(u16_at(&m, ke + 4), 14);
        assert_eq!(m[ke + 8] & 0xC0, 0x40);
    }
}
