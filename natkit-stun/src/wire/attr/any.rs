//! [`Attribute`]: any attribute, typed when this crate knows it.

use super::*;

/// Any attribute of a message, decoded to its typed form when its type is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS.
    MappedAddress(MappedAddress),
    /// XOR-MAPPED-ADDRESS.
    XorMappedAddress(XorMappedAddress),
    /// XOR-MAPPED-ADDRESS with the pre-RFC 5389 type 0x8020 (classic servers).
    XorMappedAddressLegacy(XorMappedAddress),
    /// USERNAME.
    Username(Username<'a>),
    /// MESSAGE-INTEGRITY.
    MessageIntegrity(MessageIntegrity),
    /// MESSAGE-INTEGRITY-SHA256.
    MessageIntegritySha256(MessageIntegritySha256),
    /// FINGERPRINT.
    Fingerprint(Fingerprint),
    /// ERROR-CODE.
    ErrorCode(ErrorCode<'a>),
    /// UNKNOWN-ATTRIBUTES.
    UnknownAttributes(UnknownAttributes<'a>),
    /// SOFTWARE.
    Software(Software<'a>),
    /// ALTERNATE-SERVER.
    AlternateServer(AlternateServer),
    /// REALM.
    Realm(Realm<'a>),
    /// NONCE.
    Nonce(Nonce<'a>),
    /// CHANGE-REQUEST.
    ChangeRequest(ChangeRequest),
    /// RESPONSE-ORIGIN.
    ResponseOrigin(ResponseOrigin),
    /// OTHER-ADDRESS.
    OtherAddress(OtherAddress),
    /// RESPONSE-PORT.
    ResponsePort(ResponsePort),
    /// PADDING.
    Padding(Padding),
    /// CHANGED-ADDRESS.
    ChangedAddress(ChangedAddress),
    /// SOURCE-ADDRESS.
    SourceAddress(SourceAddress),
    /// An attribute this crate does not know, kept raw.
    Unknown(RawAttribute<'a>),
}

impl<'a> Attribute<'a> {
    /// Decodes a raw attribute to its typed form (or [`Attribute::Unknown`]).
    pub fn decode(raw: RawAttribute<'a>, ctx: &Context) -> Result<Self, Error> {
        let v = raw.value();
        Ok(match raw.attr_type() {
            AttrType::MAPPED_ADDRESS => Attribute::MappedAddress(MappedAddress::decode(v, ctx)?),
            AttrType::XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(XorMappedAddress::decode(v, ctx)?)
            }
            AttrType::XOR_MAPPED_ADDRESS_LEGACY => Attribute::XorMappedAddressLegacy(
                XorMappedAddress::decode(v, ctx).map_err(|e| match e {
                    Error::InvalidLength { len, .. } => Error::InvalidLength {
                        attr: AttrType::XOR_MAPPED_ADDRESS_LEGACY,
                        len,
                    },
                    Error::UnknownAddressFamily { family, .. } => Error::UnknownAddressFamily {
                        attr: AttrType::XOR_MAPPED_ADDRESS_LEGACY,
                        family,
                    },
                    other => other,
                })?,
            ),
            AttrType::USERNAME => Attribute::Username(Username::decode(v, ctx)?),
            AttrType::MESSAGE_INTEGRITY => {
                Attribute::MessageIntegrity(MessageIntegrity::decode(v, ctx)?)
            }
            AttrType::MESSAGE_INTEGRITY_SHA256 => {
                Attribute::MessageIntegritySha256(MessageIntegritySha256::decode(v, ctx)?)
            }
            AttrType::FINGERPRINT => Attribute::Fingerprint(Fingerprint::decode(v, ctx)?),
            AttrType::ERROR_CODE => Attribute::ErrorCode(ErrorCode::decode(v, ctx)?),
            AttrType::UNKNOWN_ATTRIBUTES => {
                Attribute::UnknownAttributes(UnknownAttributes::decode(v, ctx)?)
            }
            AttrType::SOFTWARE => Attribute::Software(Software::decode(v, ctx)?),
            AttrType::ALTERNATE_SERVER => {
                Attribute::AlternateServer(AlternateServer::decode(v, ctx)?)
            }
            AttrType::REALM => Attribute::Realm(Realm::decode(v, ctx)?),
            AttrType::NONCE => Attribute::Nonce(Nonce::decode(v, ctx)?),
            AttrType::CHANGE_REQUEST => Attribute::ChangeRequest(ChangeRequest::decode(v, ctx)?),
            AttrType::RESPONSE_ORIGIN => Attribute::ResponseOrigin(ResponseOrigin::decode(v, ctx)?),
            AttrType::OTHER_ADDRESS => Attribute::OtherAddress(OtherAddress::decode(v, ctx)?),
            AttrType::RESPONSE_PORT => Attribute::ResponsePort(ResponsePort::decode(v, ctx)?),
            AttrType::PADDING => Attribute::Padding(Padding::decode(v, ctx)?),
            AttrType::CHANGED_ADDRESS => Attribute::ChangedAddress(ChangedAddress::decode(v, ctx)?),
            AttrType::SOURCE_ADDRESS => Attribute::SourceAddress(SourceAddress::decode(v, ctx)?),
            _ => Attribute::Unknown(raw),
        })
    }

    /// The typed attribute as an encoder.
    fn encoder(&self) -> &dyn EncodeAttribute {
        match self {
            Attribute::MappedAddress(a) => a,
            Attribute::XorMappedAddress(a) | Attribute::XorMappedAddressLegacy(a) => a,
            Attribute::Username(a) => a,
            Attribute::MessageIntegrity(a) => a,
            Attribute::MessageIntegritySha256(a) => a,
            Attribute::Fingerprint(a) => a,
            Attribute::ErrorCode(a) => a,
            Attribute::UnknownAttributes(a) => a,
            Attribute::Software(a) => a,
            Attribute::AlternateServer(a) => a,
            Attribute::Realm(a) => a,
            Attribute::Nonce(a) => a,
            Attribute::ChangeRequest(a) => a,
            Attribute::ResponseOrigin(a) => a,
            Attribute::OtherAddress(a) => a,
            Attribute::ResponsePort(a) => a,
            Attribute::Padding(a) => a,
            Attribute::ChangedAddress(a) => a,
            Attribute::SourceAddress(a) => a,
            Attribute::Unknown(raw) => raw,
        }
    }
}

impl EncodeAttribute for Attribute<'_> {
    fn attr_type(&self) -> AttrType {
        match self {
            Attribute::XorMappedAddressLegacy(_) => AttrType::XOR_MAPPED_ADDRESS_LEGACY,
            other => other.encoder().attr_type(),
        }
    }

    fn value_len(&self) -> usize {
        self.encoder().value_len()
    }

    fn emit_value(&self, out: &mut [u8], ctx: &Context) {
        self.encoder().emit_value(out, ctx)
    }
}

impl EncodeAttribute for RawAttribute<'_> {
    fn attr_type(&self) -> AttrType {
        RawAttribute::attr_type(self)
    }

    fn value_len(&self) -> usize {
        self.value().len()
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        out.copy_from_slice(self.value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;

    #[test]
    fn legacy_xor_keeps_its_type() {
        let ctx = Context::new(TransactionId::new([7; 12]));
        let addr = "198.51.100.7:3478".parse().expect("addr");
        let a = Attribute::XorMappedAddressLegacy(XorMappedAddress(addr));
        let mut buf = [0; 12];
        a.emit(&mut buf, &ctx).expect("emit");
        assert_eq!(&buf[..2], &[0x80, 0x20]);
        let raw = RawAttribute::new(AttrType::XOR_MAPPED_ADDRESS_LEGACY, &buf[4..], 20);
        assert_eq!(Attribute::decode(raw, &ctx), Ok(a));
    }

    #[test]
    fn unknown_kept_raw() {
        let ctx = Context::new(TransactionId::default());
        let raw = RawAttribute::new(AttrType(0x7f00), &[1, 2, 3], 20);
        let a = Attribute::decode(raw, &ctx).expect("decode");
        assert_eq!(a, Attribute::Unknown(raw));
        let mut buf = [0xff; 8];
        assert_eq!(a.emit(&mut buf, &ctx), Ok(8));
        assert_eq!(buf, [0x7f, 0, 0, 3, 1, 2, 3, 0]);
    }
}
