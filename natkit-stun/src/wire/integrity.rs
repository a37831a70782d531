//! MESSAGE-INTEGRITY keys and MACs (RFC 8489 §9, §14.5, §14.6).
//!
//! * Short-term credentials: the key is the password, OpaqueString-prepared (RFC 8265;
//!   SASLprep under RFC 5389). This crate does not apply the preparation: pass the
//!   password's bytes, which is exact for the ASCII passwords ICE and most servers use.
//! * Long-term credentials: the key is `MD5(username ":" realm ":" password)`
//!   ([`long_term_key`]), or with PASSWORD-ALGORITHM SHA-256 `SHA-256(...)`
//!   ([`long_term_key_sha256`]).
//!
//! MACs are compared in constant time.

use hmac::{KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

type HmacSha1 = hmac::Hmac<Sha1>;
type HmacSha256 = hmac::Hmac<Sha256>;

/// The long-term credential key `MD5(username ":" realm ":" password)` (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    for part in [username, ":", realm, ":", password] {
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// The long-term credential key for PASSWORD-ALGORITHM SHA-256:
/// `SHA-256(username ":" realm ":" password)` (RFC 8489 §9.2.2).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [username, ":", realm, ":", password] {
        Digest::update(&mut h, part.as_bytes());
    }
    h.finalize().into()
}

fn hmac_sha1(key: &[u8]) -> HmacSha1 {
    match <HmacSha1 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// HMAC-SHA1 of the concatenated `parts`.
pub(crate) fn sha1_mac(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac = hmac_sha1(key);
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn sha256_mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = hmac_sha256(key);
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `tag` is the HMAC-SHA1 of `parts` (constant-time comparison).
pub(crate) fn sha1_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = hmac_sha1(key);
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(tag).is_ok()
}

/// Whether `tag` is the HMAC-SHA256 of `parts`, possibly truncated to its leftmost bytes
/// (constant-time comparison).
pub(crate) fn sha256_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    let mut mac = hmac_sha256(key);
    for p in parts {
        mac.update(p);
    }
    mac.verify_truncated_left(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_rfc2202_case_2() {
        let mac = sha1_mac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac,
            [
                0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
                0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79
            ]
        );
        assert!(sha1_verify(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &mac
        ));
        assert!(!sha1_verify(
            b"Jefe",
            &[b"what do ya want for nothing!"],
            &mac
        ));
        assert!(!sha1_verify(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &mac[..19]
        ));
    }

    #[test]
    fn hmac_sha256_truncation() {
        let mac = sha256_mac(b"key", &[b"data"]);
        assert!(sha256_verify(b"key", &[b"data"], &mac));
        assert!(sha256_verify(b"key", &[b"data"], &mac[..16]));
        assert!(!sha256_verify(b"key", &[b"data"], &mac[1..17]));
    }

    #[test]
    fn long_term_keys() {
        // Expected digests computed independently (Python hashlib).
        assert_eq!(
            long_term_key("user", "realm", "pass"),
            [
                0x84, 0x93, 0xfb, 0xc5, 0x3b, 0xa5, 0x82, 0xfb, 0x4c, 0x04, 0x4c, 0x45, 0x6b, 0xdc,
                0x40, 0xeb
            ]
        );
        assert_eq!(
            long_term_key_sha256("user", "realm", "pass")[..8],
            [0x07, 0xe9, 0x34, 0x11, 0x7a, 0xbd, 0x40, 0x83]
        );
    }
}
