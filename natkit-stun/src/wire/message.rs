//! [`Message`]: a checked, zero-copy view of a STUN message.

use std::net::SocketAddr;

use crate::attr::{
    ATTR_HEADER_LEN, AttrType, Attribute, Context, DecodeAttribute, ErrorCode, MappedAddress,
    RawAttribute, XorMappedAddress, padded_len,
};
use crate::fingerprint::fingerprint;
use crate::integrity::{sha1_verify, sha256_verify};
use crate::{Class, Error, HEADER_LEN, MAGIC_COOKIE, MessageType, Method, TransactionId};

/// A STUN message borrowed from a buffer, validated once by [`Message::new_checked`].
///
/// `new_checked` checks the header (two zero bits, length a multiple of 4 and equal to the
/// buffer's size) and that the attributes exactly tile the body (each header and padded
/// value inside the message). After that no accessor can panic, and none allocates.
/// Attribute *values* are validated when decoded ([`Message::get`] and friends).
///
/// Messages without the magic cookie (RFC 3489) are accepted; see
/// [`Message::has_magic_cookie`] and [`Message::legacy_transaction_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    buf: &'a [u8],
    /// Offset of the last attribute's header, or 0 if there are no attributes.
    last_attr: usize,
}

/// The message length field (bytes 2..4) of a buffer that holds at least a header.
#[inline]
fn header_u16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

impl<'a> Message<'a> {
    /// Validates `buf` as exactly one STUN message (header and attribute framing).
    #[inline]
    pub fn new_checked(buf: &'a [u8]) -> Result<Message<'a>, Error> {
        if buf.len() < HEADER_LEN {
            return Err(Error::TooShort { len: buf.len() });
        }
        if buf[0] & 0xc0 != 0 {
            return Err(Error::NotStun);
        }
        let length = header_u16(buf, 2);
        if !length.is_multiple_of(4) {
            return Err(Error::UnalignedLength(length));
        }
        let declared = HEADER_LEN + usize::from(length);
        if declared != buf.len() {
            return Err(Error::LengthMismatch {
                declared,
                actual: buf.len(),
            });
        }
        let mut pos = HEADER_LEN;
        let mut last_attr = 0;
        while pos < buf.len() {
            // `buf.len() - pos` is a positive multiple of 4, so the header fits.
            let value_len = usize::from(header_u16(buf, pos + 2));
            let next = pos + ATTR_HEADER_LEN + padded_len(value_len);
            if next > buf.len() {
                return Err(Error::AttributeOverrun { offset: pos });
            }
            last_attr = pos;
            pos = next;
        }
        Ok(Message { buf, last_attr })
    }

    /// Whether `buf` looks like a STUN message with the magic cookie: the quick test used
    /// to demultiplex STUN from other traffic on one socket (RFC 7983). Cheaper than, and
    /// implied by, a successful [`new_checked`](Self::new_checked) with the cookie.
    pub fn is_stun(buf: &[u8]) -> bool {
        buf.len() >= HEADER_LEN
            && buf[0] & 0xc0 == 0
            && buf[4..8] == MAGIC_COOKIE.to_be_bytes()
            && usize::from(header_u16(buf, 2)) + HEADER_LEN == buf.len()
    }

    /// Size of the whole message whose header starts `buf` (for stream transports), or
    /// `None` if fewer than 4 bytes are available.
    pub fn frame_len(buf: &[u8]) -> Option<usize> {
        match buf.get(2..4) {
            Some(&[a, b]) => Some(HEADER_LEN + usize::from(u16::from_be_bytes([a, b]))),
            _ => None,
        }
    }

    /// The whole message.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The message type (class and method).
    #[inline]
    pub fn message_type(&self) -> MessageType {
        MessageType::from_u16(header_u16(self.buf, 0))
    }

    /// The class.
    #[inline]
    pub fn class(&self) -> Class {
        self.message_type().class()
    }

    /// The method.
    #[inline]
    pub fn method(&self) -> Method {
        self.message_type().method()
    }

    /// The message length field: the size of the body after the 20-byte header.
    pub fn length(&self) -> u16 {
        header_u16(self.buf, 2)
    }

    /// The 32 bits after the length: [`MAGIC_COOKIE`] for RFC 5389/8489 messages.
    pub fn cookie(&self) -> u32 {
        let mut b = [0; 4];
        if let Some(c) = self.buf.get(4..8) {
            b.copy_from_slice(c);
        }
        u32::from_be_bytes(b)
    }

    /// Whether the message carries the magic cookie (RFC 5389/8489) rather than being an
    /// RFC 3489 message.
    pub fn has_magic_cookie(&self) -> bool {
        self.cookie() == MAGIC_COOKIE
    }

    /// The 96-bit transaction id.
    #[inline]
    pub fn transaction_id(&self) -> TransactionId {
        let mut b = [0; 12];
        if let Some(t) = self.buf.get(8..20) {
            b.copy_from_slice(t);
        }
        TransactionId::new(b)
    }

    /// The 128-bit transaction id of RFC 3489: cookie field and transaction id together.
    pub fn legacy_transaction_id(&self) -> [u8; 16] {
        *self.context().xor_key()
    }

    /// What attribute codecs need from this message (cookie field and transaction id).
    #[inline]
    pub fn context(&self) -> Context {
        let mut b = [0; 16];
        if let Some(t) = self.buf.get(4..20) {
            b.copy_from_slice(t);
        }
        Context::from_header_bytes(b)
    }

    /// Every attribute on the wire, in order, including those RFC 8489 says to ignore.
    #[inline]
    pub fn raw_attributes(&self) -> RawAttributes<'a> {
        RawAttributes {
            buf: self.buf,
            pos: HEADER_LEN,
        }
    }

    /// The attributes that count, in order: after MESSAGE-INTEGRITY only
    /// MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, after MESSAGE-INTEGRITY-SHA256 only
    /// FINGERPRINT, and nothing after FINGERPRINT (RFC 8489 §14.5–14.7).
    #[inline]
    pub fn attributes(&self) -> Attributes<'a> {
        Attributes {
            raw: self.raw_attributes(),
            state: State::Open,
        }
    }

    /// The attributes that count ([`attributes`](Self::attributes)), decoded.
    pub fn decoded_attributes(&self) -> impl Iterator<Item = Result<Attribute<'a>, Error>> + 'a {
        let ctx = self.context();
        self.attributes()
            .map(move |raw| Attribute::decode(raw, &ctx))
    }

    /// The first counting attribute of type `ty`.
    #[inline]
    pub fn raw_attribute(&self, ty: AttrType) -> Option<RawAttribute<'a>> {
        self.attributes().find(|a| a.attr_type() == ty)
    }

    /// Decodes the first counting attribute of type `T::TYPE`, if present.
    #[inline]
    pub fn get<T: DecodeAttribute<'a>>(&self) -> Result<Option<T>, Error> {
        match self.raw_attribute(T::TYPE) {
            Some(raw) => T::decode(raw.value(), &self.context()).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes the first counting attribute of type `T::TYPE`; absent is an error.
    #[inline]
    pub fn require<T: DecodeAttribute<'a>>(&self) -> Result<T, Error> {
        self.get::<T>()?.ok_or(Error::MissingAttribute(T::TYPE))
    }

    /// XOR-MAPPED-ADDRESS, if present.
    #[inline]
    pub fn xor_mapped_address(&self) -> Result<Option<SocketAddr>, Error> {
        Ok(self.get::<XorMappedAddress>()?.map(|a| a.0))
    }

    /// MAPPED-ADDRESS, if present.
    #[inline]
    pub fn mapped_address(&self) -> Result<Option<SocketAddr>, Error> {
        Ok(self.get::<MappedAddress>()?.map(|a| a.0))
    }

    /// The reflexive transport address, whichever way the server sent it:
    /// XOR-MAPPED-ADDRESS, else the pre-RFC 5389 0x8020 XOR-MAPPED-ADDRESS of classic
    /// servers, else MAPPED-ADDRESS.
    pub fn reflexive_address(&self) -> Result<Option<SocketAddr>, Error> {
        if let Some(a) = self.xor_mapped_address()? {
            return Ok(Some(a));
        }
        if let Some(raw) = self.raw_attribute(AttrType::XOR_MAPPED_ADDRESS_LEGACY) {
            // Same codec, legacy type number: reuse the typed decoder for the value.
            return match Attribute::decode(raw, &self.context())? {
                Attribute::XorMappedAddressLegacy(a) => Ok(Some(a.0)),
                _ => Ok(None),
            };
        }
        self.mapped_address()
    }

    /// ERROR-CODE, if present.
    pub fn error_code(&self) -> Result<Option<ErrorCode<'a>>, Error> {
        self.get::<ErrorCode<'a>>()
    }

    /// The counting comprehension-required attributes this crate does not understand: a
    /// server answers a request that has any with 420 and UNKNOWN-ATTRIBUTES listing them.
    pub fn unknown_comprehension_required(&self) -> impl Iterator<Item = AttrType> + 'a {
        self.attributes()
            .map(|a| a.attr_type())
            .filter(|t| t.is_comprehension_required() && !t.is_known())
    }

    /// The last attribute on the wire, if any.
    #[inline]
    fn last_attribute(&self) -> Option<RawAttribute<'a>> {
        if self.last_attr == 0 {
            return None;
        }
        RawAttributes {
            buf: self.buf,
            pos: self.last_attr,
        }
        .next()
    }

    /// Whether the message ends with a FINGERPRINT attribute.
    #[inline]
    pub fn has_fingerprint(&self) -> bool {
        self.last_attribute()
            .is_some_and(|a| a.attr_type() == AttrType::FINGERPRINT)
    }

    /// Checks FINGERPRINT, which must be the last attribute.
    #[inline]
    pub fn check_fingerprint(&self) -> Result<(), Error> {
        let last = match self.last_attribute() {
            Some(a) if a.attr_type() == AttrType::FINGERPRINT => a,
            _ if self
                .raw_attributes()
                .any(|a| a.attr_type() == AttrType::FINGERPRINT) =>
            {
                return Err(Error::FingerprintNotLast);
            }
            _ => return Err(Error::MissingAttribute(AttrType::FINGERPRINT)),
        };
        let received = last.decode::<crate::attr::Fingerprint>(&self.context())?.0;
        let covered = self.buf.get(..last.offset()).unwrap_or_default();
        let computed = fingerprint(covered);
        if received == computed {
            Ok(())
        } else {
            Err(Error::FingerprintMismatch { received, computed })
        }
    }

    /// The bytes a MAC covers when its attribute starts at `offset` with a value of
    /// `value_len` bytes: header type, adjusted length, and the rest up to the attribute.
    fn mac_input(&self, attr: &RawAttribute<'a>) -> ([u8; 2], &'a [u8], &'a [u8]) {
        let end = attr.offset() + ATTR_HEADER_LEN + padded_len(attr.value().len());
        let adjusted = u16::try_from(end - HEADER_LEN)
            .unwrap_or(u16::MAX)
            .to_be_bytes();
        let ty = self.buf.get(..2).unwrap_or_default();
        let rest = self.buf.get(4..attr.offset()).unwrap_or_default();
        (adjusted, ty, rest)
    }

    /// Checks MESSAGE-INTEGRITY (HMAC-SHA1) against `key` (see [`crate::integrity`] for
    /// short- and long-term keys). The comparison is constant-time.
    pub fn check_integrity(&self, key: &[u8]) -> Result<(), Error> {
        let attr = AttrType::MESSAGE_INTEGRITY;
        let raw = self
            .raw_attribute(attr)
            .ok_or(Error::MissingAttribute(attr))?;
        let tag = raw.decode::<crate::attr::MessageIntegrity>(&self.context())?;
        let (len, ty, rest) = self.mac_input(&raw);
        if sha1_verify(key, &[ty, &len, rest], &tag.0) {
            Ok(())
        } else {
            Err(Error::IntegrityMismatch { attr })
        }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, possibly truncated) against `key`.
    /// The comparison is constant-time.
    pub fn check_integrity_sha256(&self, key: &[u8]) -> Result<(), Error> {
        let attr = AttrType::MESSAGE_INTEGRITY_SHA256;
        let raw = self
            .raw_attribute(attr)
            .ok_or(Error::MissingAttribute(attr))?;
        let tag = raw.decode::<crate::attr::MessageIntegritySha256>(&self.context())?;
        let (len, ty, rest) = self.mac_input(&raw);
        if sha256_verify(key, &[ty, &len, rest], tag.mac()) {
            Ok(())
        } else {
            Err(Error::IntegrityMismatch { attr })
        }
    }
}

impl<'a> TryFrom<&'a [u8]> for Message<'a> {
    type Error = Error;
    fn try_from(buf: &'a [u8]) -> Result<Self, Error> {
        Message::new_checked(buf)
    }
}

/// Iterator over every attribute of a [`Message`] ([`Message::raw_attributes`]).
#[derive(Debug, Clone)]
pub struct RawAttributes<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = RawAttribute<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawAttribute<'a>> {
        // The framing was validated by `new_checked`; the `get`s only keep this panic-free.
        let pos = self.pos;
        let ty = AttrType(u16::from_be_bytes([
            *self.buf.get(pos)?,
            *self.buf.get(pos + 1)?,
        ]));
        let len = usize::from(u16::from_be_bytes([
            *self.buf.get(pos + 2)?,
            *self.buf.get(pos + 3)?,
        ]));
        let start = pos + ATTR_HEADER_LEN;
        let value = self.buf.get(start..start + len)?;
        self.pos = start + padded_len(len);
        Some(RawAttribute::new(ty, value, pos))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    AfterIntegrity,
    AfterIntegritySha256,
    Done,
}

/// Iterator over the attributes of a [`Message`] that count ([`Message::attributes`]).
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    raw: RawAttributes<'a>,
    state: State,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = RawAttribute<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawAttribute<'a>> {
        loop {
            if self.state == State::Done {
                return None;
            }
            let attr = self.raw.next()?;
            let ty = attr.attr_type();
            let counts = match (self.state, ty) {
                (_, AttrType::FINGERPRINT) => {
                    self.state = State::Done;
                    true
                }
                (State::Open, AttrType::MESSAGE_INTEGRITY) => {
                    self.state = State::AfterIntegrity;
                    true
                }
                (State::Open | State::AfterIntegrity, AttrType::MESSAGE_INTEGRITY_SHA256) => {
                    self.state = State::AfterIntegritySha256;
                    true
                }
                (State::Open, _) => true,
                _ => false,
            };
            if counts {
                return Some(attr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Software;

    fn msg_with(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut v = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        v.extend_from_slice(&[9; 12]);
        for (ty, val) in attrs {
            v.extend_from_slice(&ty.to_be_bytes());
            v.extend_from_slice(&(val.len() as u16).to_be_bytes());
            v.extend_from_slice(val);
            v.resize(padded_len(v.len()), 0);
        }
        let len = (v.len() - HEADER_LEN) as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn header_checks() {
        assert_eq!(
            Message::new_checked(&[0; 19]),
            Err(Error::TooShort { len: 19 })
        );
        let mut m = msg_with(&[]);
        assert!(Message::new_checked(&m).is_ok());
        m[0] = 0x40;
        assert_eq!(Message::new_checked(&m), Err(Error::NotStun));
        m[0] = 0;
        m[3] = 2;
        assert_eq!(Message::new_checked(&m), Err(Error::UnalignedLength(2)));
        m[3] = 4;
        assert_eq!(
            Message::new_checked(&m),
            Err(Error::LengthMismatch {
                declared: 24,
                actual: 20
            })
        );
        m.extend_from_slice(&[0, 0, 0, 0]);
        assert!(Message::new_checked(&m).is_ok());
        m.extend_from_slice(&[0; 4]);
        assert!(
            Message::new_checked(&m).is_err(),
            "trailing bytes are rejected"
        );
    }

    #[test]
    fn attribute_overrun() {
        let mut m = msg_with(&[(0x8022, b"abcd")]);
        m[22..24].copy_from_slice(&5u16.to_be_bytes());
        assert_eq!(
            Message::new_checked(&m),
            Err(Error::AttributeOverrun { offset: 20 })
        );
    }

    #[test]
    fn rfc3489_message_without_cookie() {
        let mut m = msg_with(&[(0x0001, &[0, 1, 0x0d, 0x96, 192, 0, 2, 1])]);
        m[4..8].copy_from_slice(&[1, 2, 3, 4]);
        let msg = Message::new_checked(&m).expect("legacy messages are accepted");
        assert!(!msg.has_magic_cookie());
        assert_eq!(msg.legacy_transaction_id()[..4], [1, 2, 3, 4]);
        assert_eq!(
            msg.reflexive_address(),
            Ok(Some("192.0.2.1:3478".parse().expect("addr")))
        );
    }

    #[test]
    fn ignores_attributes_after_integrity_and_fingerprint() {
        let m = msg_with(&[
            (0x8022, b"one"),
            (0x0008, &[0; 20]),
            (0x8022, b"two"), // ignored: after MESSAGE-INTEGRITY
            (0x001c, &[0; 32]),
            (0x0008, &[0; 20]), // ignored: after MESSAGE-INTEGRITY-SHA256
            (0x8028, &[0; 4]),
            (0x0001, &[0; 8]), // ignored: after FINGERPRINT
        ]);
        let msg = Message::new_checked(&m).expect("valid framing");
        let types: Vec<u16> = msg.attributes().map(|a| a.attr_type().0).collect();
        assert_eq!(types, [0x8022, 0x0008, 0x001c, 0x8028]);
        assert_eq!(msg.raw_attributes().count(), 7);
        assert_eq!(
            msg.get::<Software<'_>>().map(|s| s.map(|s| s.as_str())),
            Ok(Some("one"))
        );
        assert_eq!(msg.check_fingerprint(), Err(Error::FingerprintNotLast));
    }

    #[test]
    fn unknown_comprehension_required() {
        let m = msg_with(&[
            (0x7001, b""),
            (0xc001, b"x"),
            (0x0006, b"user"),
            (0x0002, b""),
        ]);
        let msg = Message::new_checked(&m).expect("valid");
        let unknown: Vec<AttrType> = msg.unknown_comprehension_required().collect();
        assert_eq!(unknown, [AttrType(0x7001), AttrType(0x0002)]);
    }

    #[test]
    fn missing_and_framing_helpers() {
        let m = msg_with(&[(0x8022, b"abc")]);
        let msg = Message::new_checked(&m).expect("valid");
        assert_eq!(
            msg.check_fingerprint(),
            Err(Error::MissingAttribute(AttrType::FINGERPRINT))
        );
        assert_eq!(
            msg.check_integrity(b"k"),
            Err(Error::MissingAttribute(AttrType::MESSAGE_INTEGRITY))
        );
        assert_eq!(
            msg.require::<XorMappedAddress>(),
            Err(Error::MissingAttribute(AttrType::XOR_MAPPED_ADDRESS))
        );
        assert!(Message::is_stun(&m));
        assert_eq!(Message::frame_len(&m), Some(m.len()));
        assert_eq!(Message::frame_len(&m[..3]), None);
    }
}
