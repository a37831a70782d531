//! Attributes: the type registry, the raw TLV view, the codec traits and typed attributes.
//!
//! Every typed attribute is a small owned (or borrowing, for text) representation with
//! [`DecodeAttribute::decode`] (validate a value, never panic, never allocate) and
//! [`EncodeAttribute::emit_value`]/[`EncodeAttribute::value_len`].

mod address;
mod any;
mod change_request;
mod error_code;
mod fingerprint;
mod integrity;
mod padding;
mod response_port;
mod text;
mod unknown;
mod xor_address;

pub use address::{
    AlternateServer, ChangedAddress, MappedAddress, OtherAddress, ResponseOrigin, SourceAddress,
};
pub use any::Attribute;
pub use change_request::ChangeRequest;
pub use error_code::ErrorCode;
pub use fingerprint::Fingerprint;
pub use integrity::{MessageIntegrity, MessageIntegritySha256};
pub use padding::Padding;
pub use response_port::ResponsePort;
pub use text::{Nonce, Realm, Software, Username};
pub use unknown::{UnknownAttributes, UnknownAttributesIter};
pub use xor_address::XorMappedAddress;

use crate::{Error, MAGIC_COOKIE, TransactionId};

/// Size of an attribute header (type and length).
pub const ATTR_HEADER_LEN: usize = 4;

/// A 16-bit attribute type.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u16);

impl AttrType {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    pub const MAPPED_ADDRESS: AttrType = AttrType(0x0001);
    /// CHANGE-REQUEST (RFC 5780 §7.2; RFC 3489 §11.2.4).
    pub const CHANGE_REQUEST: AttrType = AttrType(0x0003);
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5; replaced by RESPONSE-ORIGIN).
    pub const SOURCE_ADDRESS: AttrType = AttrType(0x0004);
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3; replaced by OTHER-ADDRESS).
    pub const CHANGED_ADDRESS: AttrType = AttrType(0x0005);
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: AttrType = AttrType(0x0006);
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: AttrType = AttrType(0x0008);
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: AttrType = AttrType(0x0009);
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub const UNKNOWN_ATTRIBUTES: AttrType = AttrType(0x000a);
    /// REALM (RFC 8489 §14.9).
    pub const REALM: AttrType = AttrType(0x0014);
    /// NONCE (RFC 8489 §14.10).
    pub const NONCE: AttrType = AttrType(0x0015);
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: AttrType = AttrType(0x001c);
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: AttrType = AttrType(0x0020);
    /// PADDING (RFC 5780 §7.6).
    pub const PADDING: AttrType = AttrType(0x0026);
    /// RESPONSE-PORT (RFC 5780 §7.5).
    pub const RESPONSE_PORT: AttrType = AttrType(0x0027);
    /// XOR-MAPPED-ADDRESS as numbered by pre-RFC 5389 drafts (0x8020), still sent by
    /// classic RFC 3489 servers such as stund. Same encoding as [`Self::XOR_MAPPED_ADDRESS`].
    pub const XOR_MAPPED_ADDRESS_LEGACY: AttrType = AttrType(0x8020);
    /// SOFTWARE (RFC 8489 §14.14).
    pub const SOFTWARE: AttrType = AttrType(0x8022);
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    pub const ALTERNATE_SERVER: AttrType = AttrType(0x8023);
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: AttrType = AttrType(0x8028);
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: AttrType = AttrType(0x802b);
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: AttrType = AttrType(0x802c);

    /// Whether an agent that does not understand this attribute must reject the message
    /// (types 0x0000..=0x7fff are comprehension-required, RFC 8489 §14).
    pub const fn is_comprehension_required(self) -> bool {
        self.0 < 0x8000
    }

    /// Whether this crate understands the attribute (has a typed codec for it).
    pub const fn is_known(self) -> bool {
        matches!(
            self,
            AttrType::MAPPED_ADDRESS
                | AttrType::CHANGE_REQUEST
                | AttrType::SOURCE_ADDRESS
                | AttrType::CHANGED_ADDRESS
                | AttrType::USERNAME
                | AttrType::MESSAGE_INTEGRITY
                | AttrType::ERROR_CODE
                | AttrType::UNKNOWN_ATTRIBUTES
                | AttrType::REALM
                | AttrType::NONCE
                | AttrType::MESSAGE_INTEGRITY_SHA256
                | AttrType::XOR_MAPPED_ADDRESS
                | AttrType::PADDING
                | AttrType::RESPONSE_PORT
                | AttrType::XOR_MAPPED_ADDRESS_LEGACY
                | AttrType::SOFTWARE
                | AttrType::ALTERNATE_SERVER
                | AttrType::FINGERPRINT
                | AttrType::RESPONSE_ORIGIN
                | AttrType::OTHER_ADDRESS
        )
    }

    /// The registered name of a known attribute.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            AttrType::MAPPED_ADDRESS => "MAPPED-ADDRESS",
            AttrType::CHANGE_REQUEST => "CHANGE-REQUEST",
            AttrType::SOURCE_ADDRESS => "SOURCE-ADDRESS",
            AttrType::CHANGED_ADDRESS => "CHANGED-ADDRESS",
            AttrType::USERNAME => "USERNAME",
            AttrType::MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            AttrType::ERROR_CODE => "ERROR-CODE",
            AttrType::UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            AttrType::REALM => "REALM",
            AttrType::NONCE => "NONCE",
            AttrType::MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            AttrType::XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            AttrType::PADDING => "PADDING",
            AttrType::RESPONSE_PORT => "RESPONSE-PORT",
            AttrType::XOR_MAPPED_ADDRESS_LEGACY => "XOR-MAPPED-ADDRESS(0x8020)",
            AttrType::SOFTWARE => "SOFTWARE",
            AttrType::ALTERNATE_SERVER => "ALTERNATE-SERVER",
            AttrType::FINGERPRINT => "FINGERPRINT",
            AttrType::RESPONSE_ORIGIN => "RESPONSE-ORIGIN",
            AttrType::OTHER_ADDRESS => "OTHER-ADDRESS",
            _ => return None,
        })
    }
}

impl core::fmt::Display for AttrType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:#06x}", self.0),
        }
    }
}

impl core::fmt::Debug for AttrType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AttrType({self})")
    }
}

/// What an attribute codec may need from the enclosing message: the 32-bit magic-cookie
/// field and the 96-bit transaction id, which XOR-MAPPED-ADDRESS is XORed with.
///
/// For RFC 5389/8489 messages the cookie field is [`MAGIC_COOKIE`]. For RFC 3489 messages it
/// holds the first 32 bits of the 128-bit transaction id, and classic servers (stund) XOR
/// with those bits instead; using the field as found covers both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    key: [u8; 16],
}

impl Context {
    /// The context of an RFC 5389/8489 message with this transaction id.
    pub const fn new(transaction_id: TransactionId) -> Context {
        Context::with_cookie(MAGIC_COOKIE, transaction_id)
    }

    /// The context of a message whose cookie field holds `cookie`.
    pub const fn with_cookie(cookie: u32, transaction_id: TransactionId) -> Context {
        let mut key = [0; 16];
        let c = cookie.to_be_bytes();
        let t = transaction_id.to_bytes();
        let mut i = 0;
        while i < 4 {
            key[i] = c[i];
            i += 1;
        }
        while i < 16 {
            key[i] = t[i - 4];
            i += 1;
        }
        Context { key }
    }

    /// The context from the 16 header bytes after the length (cookie field + transaction id).
    #[inline]
    pub(crate) const fn from_header_bytes(key: [u8; 16]) -> Context {
        Context { key }
    }

    /// The cookie field.
    pub const fn cookie(&self) -> u32 {
        u32::from_be_bytes([self.key[0], self.key[1], self.key[2], self.key[3]])
    }

    /// The transaction id.
    pub const fn transaction_id(&self) -> TransactionId {
        let k = &self.key;
        TransactionId::new([
            k[4], k[5], k[6], k[7], k[8], k[9], k[10], k[11], k[12], k[13], k[14], k[15],
        ])
    }

    /// The 16 bytes (cookie field followed by transaction id) an address is XORed with.
    #[inline]
    pub(crate) const fn xor_key(&self) -> &[u8; 16] {
        &self.key
    }
}

/// One attribute as found on the wire: type and (unpadded) value.
///
/// Equality compares type and value, not where in a message the attribute was found.
#[derive(Debug, Clone, Copy)]
pub struct RawAttribute<'a> {
    attr_type: AttrType,
    value: &'a [u8],
    offset: usize,
}

impl<'a> RawAttribute<'a> {
    #[inline]
    pub(crate) const fn new(attr_type: AttrType, value: &'a [u8], offset: usize) -> Self {
        RawAttribute {
            attr_type,
            value,
            offset,
        }
    }

    /// The attribute type.
    pub const fn attr_type(&self) -> AttrType {
        self.attr_type
    }

    /// The value, without padding.
    pub const fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Byte offset of the attribute's header from the start of the message.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// Decodes the value as attribute `T` (which must have this attribute's type to make
    /// sense; the type is not checked, so legacy type numbers can share a codec).
    #[inline]
    pub fn decode<T: DecodeAttribute<'a>>(&self, ctx: &Context) -> Result<T, Error> {
        T::decode(self.value, ctx)
    }
}

impl PartialEq for RawAttribute<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.attr_type == other.attr_type && self.value == other.value
    }
}

impl Eq for RawAttribute<'_> {}

/// A typed attribute that can be decoded from a value borrowed from the message.
pub trait DecodeAttribute<'a>: Sized {
    /// The attribute type this codec reads.
    const TYPE: AttrType;

    /// Validates and decodes an attribute value (without padding). Never panics and never
    /// allocates; the result may borrow from `value`.
    fn decode(value: &'a [u8], ctx: &Context) -> Result<Self, Error>;
}

/// A typed attribute that can be written into a message.
pub trait EncodeAttribute {
    /// The attribute type written.
    fn attr_type(&self) -> AttrType;

    /// Length of the value in bytes, without padding.
    fn value_len(&self) -> usize;

    /// Writes the value into `out`, which is exactly [`value_len`](Self::value_len) bytes.
    fn emit_value(&self, out: &mut [u8], ctx: &Context);

    /// Length of the whole attribute on the wire: header, value and padding.
    #[inline]
    fn buffer_len(&self) -> usize {
        ATTR_HEADER_LEN + padded_len(self.value_len())
    }

    /// Writes the whole attribute (header, value, zero padding) at the start of `out` and
    /// returns the number of bytes written, [`buffer_len`](Self::buffer_len).
    #[inline]
    fn emit(&self, out: &mut [u8], ctx: &Context) -> Result<usize, Error> {
        let value_len = self.value_len();
        let len16 = u16::try_from(value_len).map_err(|_| Error::TooLong(value_len))?;
        let total = self.buffer_len();
        let Some(out) = out.get_mut(..total) else {
            return Err(Error::BufferTooSmall {
                needed: total,
                available: out.len(),
            });
        };
        let (header, rest) = out.split_at_mut(ATTR_HEADER_LEN);
        header[..2].copy_from_slice(&self.attr_type().0.to_be_bytes());
        header[2..].copy_from_slice(&len16.to_be_bytes());
        let (value, padding) = rest.split_at_mut(value_len);
        self.emit_value(value, ctx);
        padding.fill(0);
        Ok(total)
    }
}

/// `len` rounded up to a multiple of 4.
pub const fn padded_len(len: usize) -> usize {
    (len + 3) & !3
}

/// Checks that a value has exactly `expected` bytes.
#[inline]
pub(crate) fn expect_len(attr: AttrType, value: &[u8], expected: usize) -> Result<(), Error> {
    if value.len() == expected {
        Ok(())
    } else {
        Err(Error::InvalidLength {
            attr,
            len: value.len(),
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Emits `attr`, checks the wire layout, decodes it back and returns the value.
    pub(crate) fn round_trip<'a, T>(attr: &T, buf: &'a mut [u8], ctx: &Context) -> T
    where
        T: EncodeAttribute + DecodeAttribute<'a> + core::fmt::Debug + PartialEq,
    {
        let n = attr.emit(buf, ctx).expect("emit");
        assert_eq!(n, attr.buffer_len());
        assert_eq!(n % 4, 0);
        let buf: &'a [u8] = buf;
        assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), T::TYPE.0);
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        assert_eq!(len, attr.value_len());
        assert!(buf[4 + len..n].iter().all(|&b| b == 0), "padding is zero");
        T::decode(&buf[4..4 + len], ctx).expect("decode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comprehension_ranges_and_names() {
        assert!(AttrType::USERNAME.is_comprehension_required());
        assert!(!AttrType::SOFTWARE.is_comprehension_required());
        assert_eq!(
            AttrType::XOR_MAPPED_ADDRESS.to_string(),
            "XOR-MAPPED-ADDRESS"
        );
        assert_eq!(AttrType(0x7777).to_string(), "0x7777");
        assert!(!AttrType(0x7777).is_known());
        assert!(AttrType::OTHER_ADDRESS.is_known());
    }

    #[test]
    fn context_parts() {
        let tid = TransactionId::new([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let ctx = Context::new(tid);
        assert_eq!(ctx.cookie(), MAGIC_COOKIE);
        assert_eq!(ctx.transaction_id(), tid);
        assert_eq!(&ctx.xor_key()[..4], &MAGIC_COOKIE.to_be_bytes());
        assert_eq!(Context::with_cookie(7, tid).cookie(), 7);
    }

    #[test]
    fn padding() {
        assert_eq!(padded_len(0), 0);
        assert_eq!(padded_len(1), 4);
        assert_eq!(padded_len(4), 4);
        assert_eq!(padded_len(9), 12);
    }
}
