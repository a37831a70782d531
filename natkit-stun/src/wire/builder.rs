//! [`MessageBuilder`]: writes a message into a caller's buffer.

use crate::attr::{
    ATTR_HEADER_LEN, AttrType, Context, EncodeAttribute, Fingerprint, MessageIntegrity,
    MessageIntegritySha256, RawAttribute,
};
use crate::fingerprint::fingerprint;
use crate::integrity::{sha1_mac, sha256_mac};
use crate::{Class, Error, HEADER_LEN, MAGIC_COOKIE, Message, MessageType, Method, TransactionId};

/// Writes a STUN message into a `&mut [u8]`, attribute by attribute, then optionally
/// MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT computed in place. Nothing is allocated.
///
/// The header's length field is kept current after every attribute, so the bytes so far are
/// always a valid message ([`as_bytes`](Self::as_bytes)).
///
/// ```
/// # use natkit_stun::{attr::{Software, XorMappedAddress}, Class, Message, MessageBuilder, Method, TransactionId};
/// let tid = TransactionId::new([7; 12]);
/// let mut buf = [0u8; 128];
/// let mut b = MessageBuilder::new(&mut buf, Class::SuccessResponse, Method::BINDING, tid)?;
/// b.add_attr(&XorMappedAddress("192.0.2.1:32853".parse().unwrap()))?;
/// b.add_attr(&Software::new("natkit")?)?;
/// let len = b.finish_with_fingerprint()?;
///
/// let msg = Message::new_checked(&buf[..len])?;
/// msg.check_fingerprint()?;
/// assert_eq!(msg.xor_mapped_address()?, Some("192.0.2.1:32853".parse().unwrap()));
/// # Ok::<(), natkit_stun::Error>(())
/// ```
#[derive(Debug)]
pub struct MessageBuilder<'b> {
    buf: &'b mut [u8],
    len: usize,
    ctx: Context,
}

impl<'b> MessageBuilder<'b> {
    /// Starts an RFC 8489 message (with the magic cookie) in `buf`.
    #[inline]
    pub fn new(
        buf: &'b mut [u8],
        class: Class,
        method: Method,
        transaction_id: TransactionId,
    ) -> Result<Self, Error> {
        Self::with_cookie(
            buf,
            MessageType::new(class, method),
            MAGIC_COOKIE,
            transaction_id,
        )
    }

    /// Starts a message whose cookie field holds `cookie`: [`MAGIC_COOKIE`] for RFC 8489,
    /// anything else for an RFC 3489 message (with a 128-bit transaction id).
    #[inline]
    pub fn with_cookie(
        buf: &'b mut [u8],
        message_type: MessageType,
        cookie: u32,
        transaction_id: TransactionId,
    ) -> Result<Self, Error> {
        let available = buf.len();
        let Some(header) = buf.get_mut(..HEADER_LEN) else {
            return Err(Error::BufferTooSmall {
                needed: HEADER_LEN,
                available,
            });
        };
        header[..2].copy_from_slice(&message_type.to_u16().to_be_bytes());
        header[2..4].fill(0);
        header[4..8].copy_from_slice(&cookie.to_be_bytes());
        header[8..].copy_from_slice(transaction_id.as_bytes());
        Ok(MessageBuilder {
            buf,
            len: HEADER_LEN,
            ctx: Context::with_cookie(cookie, transaction_id),
        })
    }

    /// Starts a response of class `class` to `request`: same method, and the same cookie
    /// field and transaction id (so RFC 3489 clients get their 128-bit id back).
    #[inline]
    pub fn response_to(
        buf: &'b mut [u8],
        request: &Message<'_>,
        class: Class,
    ) -> Result<Self, Error> {
        let ctx = request.context();
        Self::with_cookie(
            buf,
            MessageType::new(class, request.method()),
            ctx.cookie(),
            ctx.transaction_id(),
        )
    }

    /// The cookie field and transaction id, as attribute codecs see them.
    pub const fn context(&self) -> &Context {
        &self.ctx
    }

    /// Bytes written so far (header included).
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Always false: the header is written on creation. Present for API symmetry.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// The message so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Reserves `total` bytes at the end and updates the header length to include them.
    #[inline]
    fn reserve(&mut self, total: usize) -> Result<(usize, &mut [u8]), Error> {
        let start = self.len;
        let end = start + total;
        let body = end - HEADER_LEN;
        let body16 = u16::try_from(body).map_err(|_| Error::TooLong(body))?;
        if end > self.buf.len() {
            return Err(Error::BufferTooSmall {
                needed: end,
                available: self.buf.len(),
            });
        }
        self.buf[2..4].copy_from_slice(&body16.to_be_bytes());
        self.len = end;
        Ok((start, &mut self.buf[start..end]))
    }

    /// Appends an attribute.
    #[inline]
    pub fn add_attr<A: EncodeAttribute + ?Sized>(&mut self, attr: &A) -> Result<&mut Self, Error> {
        let ctx = self.ctx;
        let total = attr.buffer_len();
        let (start, out) = self.reserve(total)?;
        match attr.emit(out, &ctx) {
            Ok(_) => Ok(self),
            Err(e) => {
                self.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends an attribute given as type and raw value.
    pub fn add_raw(&mut self, attr_type: AttrType, value: &[u8]) -> Result<&mut Self, Error> {
        self.add_attr(&RawAttribute::new(attr_type, value, 0))
    }

    /// Rolls back to `len` bytes (after a failed emit).
    fn truncate(&mut self, len: usize) {
        self.len = len;
        let body = u16::try_from(len - HEADER_LEN).unwrap_or(u16::MAX);
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
    }

    /// Appends MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over the message so far, the header
    /// length counting this attribute (RFC 8489 §14.5). Only MESSAGE-INTEGRITY-SHA256 and
    /// FINGERPRINT should follow; receivers ignore anything else.
    pub fn add_message_integrity(&mut self, key: &[u8]) -> Result<&mut Self, Error> {
        let (start, _) = self.reserve(ATTR_HEADER_LEN + 20)?;
        let mac = sha1_mac(key, &[&self.buf[..start]]);
        let ctx = self.ctx;
        MessageIntegrity(mac).emit(&mut self.buf[start..self.len], &ctx)?;
        Ok(self)
    }

    /// Appends MESSAGE-INTEGRITY-SHA256 (full 32-byte HMAC-SHA256 with `key`, RFC 8489
    /// §14.6). Only FINGERPRINT should follow.
    pub fn add_message_integrity_sha256(&mut self, key: &[u8]) -> Result<&mut Self, Error> {
        let (start, _) = self.reserve(ATTR_HEADER_LEN + 32)?;
        let mac = sha256_mac(key, &[&self.buf[..start]]);
        let ctx = self.ctx;
        MessageIntegritySha256::new(&mac)?.emit(&mut self.buf[start..self.len], &ctx)?;
        Ok(self)
    }

    /// Finishes the message and returns its length.
    pub fn finish(self) -> usize {
        self.len
    }

    /// Appends FINGERPRINT (RFC 8489 §14.7), finishes the message and returns its length.
    #[inline]
    pub fn finish_with_fingerprint(mut self) -> Result<usize, Error> {
        let (start, _) = self.reserve(ATTR_HEADER_LEN + 4)?;
        let crc = fingerprint(&self.buf[..start]);
        let ctx = self.ctx;
        Fingerprint(crc).emit(&mut self.buf[start..self.len], &ctx)?;
        Ok(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{ErrorCode, Software, Username, XorMappedAddress};

    #[test]
    fn small_buffers_fail_cleanly() {
        let tid = TransactionId::new([1; 12]);
        let mut tiny = [0; 19];
        assert_eq!(
            MessageBuilder::new(&mut tiny, Class::Request, Method::BINDING, tid).err(),
            Some(Error::BufferTooSmall {
                needed: 20,
                available: 19
            })
        );
        let mut buf = [0; 28];
        let mut b =
            MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, tid).expect("fits");
        assert!(b.add_attr(&Software::new("12345").expect("ok")).is_err());
        assert_eq!(b.len(), 20);
        assert_eq!(b.as_bytes()[2..4], [0, 0], "length rolled back");
        assert!(b.add_attr(&Software::new("1234").expect("ok")).is_ok());
        assert!(b.finish_with_fingerprint().is_err());
    }

    #[test]
    fn integrity_and_fingerprint_verify() {
        let tid = TransactionId::new([3; 12]);
        let key = crate::integrity::long_term_key("user", "realm", "pass");
        let mut buf = [0u8; 256];
        let mut b =
            MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, tid).expect("fits");
        b.add_attr(&Username::new("user").expect("ok"))
            .expect("fits");
        b.add_message_integrity(&key).expect("fits");
        b.add_message_integrity_sha256(&key).expect("fits");
        let len = b.finish_with_fingerprint().expect("fits");
        let msg = Message::new_checked(&buf[..len]).expect("valid");
        assert_eq!(msg.check_integrity(&key), Ok(()));
        assert_eq!(msg.check_integrity_sha256(&key), Ok(()));
        assert_eq!(msg.check_fingerprint(), Ok(()));
        assert_eq!(
            msg.check_integrity(b"wrong"),
            Err(Error::IntegrityMismatch {
                attr: AttrType::MESSAGE_INTEGRITY
            })
        );
        assert_eq!(
            msg.check_integrity_sha256(b"wrong"),
            Err(Error::IntegrityMismatch {
                attr: AttrType::MESSAGE_INTEGRITY_SHA256
            })
        );
        // Flip one bit anywhere and both checks fail.
        for i in 0..len {
            let mut copy = buf;
            copy[i] ^= 0x01;
            let Ok(m) = Message::new_checked(&copy[..len]) else {
                continue;
            };
            assert!(
                m.check_fingerprint().is_err() || m.check_integrity(&key).is_err(),
                "bit {i}"
            );
        }
    }

    #[test]
    fn response_echoes_legacy_id() {
        let mut req = [0u8; 20];
        let tid = TransactionId::new([5; 12]);
        let n =
            MessageBuilder::with_cookie(&mut req, MessageType::BINDING_REQUEST, 0xdead_beef, tid)
                .expect("fits")
                .finish();
        let req = Message::new_checked(&req[..n]).expect("valid");
        let mut buf = [0u8; 64];
        let mut b =
            MessageBuilder::response_to(&mut buf, &req, Class::ErrorResponse).expect("fits");
        b.add_attr(&ErrorCode::new(400, "Bad Request").expect("ok"))
            .expect("fits");
        let n = b.finish();
        let resp = Message::new_checked(&buf[..n]).expect("valid");
        assert_eq!(resp.legacy_transaction_id(), req.legacy_transaction_id());
        assert_eq!(resp.message_type(), MessageType::BINDING_ERROR);
        assert_eq!(
            resp.error_code().map(|e| e.map(|e| e.code())),
            Ok(Some(400))
        );
        let _ = XorMappedAddress::from("1.2.3.4:5".parse::<std::net::SocketAddr>().expect("addr"));
    }
}
