//! UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).

use super::{AttrType, Context, DecodeAttribute, EncodeAttribute};
use crate::Error;

/// UNKNOWN-ATTRIBUTES: the comprehension-required attribute types a 420 (Unknown
/// Attribute) error response reports.
///
/// Decoding borrows the list from the message; for sending, build it from a slice with
/// [`UnknownAttributes::new`].
#[derive(Debug, Clone, Copy)]
pub struct UnknownAttributes<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    /// Big-endian u16s as found on the wire (even length).
    Wire(&'a [u8]),
    /// Types given by the caller.
    Types(&'a [AttrType]),
}

impl<'a> UnknownAttributes<'a> {
    /// The attribute for sending this list of types.
    pub const fn new(types: &'a [AttrType]) -> Self {
        UnknownAttributes(Repr::Types(types))
    }

    /// The attribute types listed.
    pub fn iter(&self) -> UnknownAttributesIter<'a> {
        UnknownAttributesIter(match self.0 {
            Repr::Wire(bytes) => IterRepr::Wire(bytes.chunks_exact(2)),
            Repr::Types(types) => IterRepr::Types(types.iter()),
        })
    }

    /// How many types are listed.
    pub const fn len(&self) -> usize {
        match self.0 {
            Repr::Wire(bytes) => bytes.len() / 2,
            Repr::Types(types) => types.len(),
        }
    }

    /// Whether the list is empty.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for UnknownAttributes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for UnknownAttributes<'_> {}

impl<'a> IntoIterator for &UnknownAttributes<'a> {
    type Item = AttrType;
    type IntoIter = UnknownAttributesIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the types of an [`UnknownAttributes`].
#[derive(Debug, Clone)]
pub struct UnknownAttributesIter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Wire(core::slice::ChunksExact<'a, u8>),
    Types(core::slice::Iter<'a, AttrType>),
}

impl Iterator for UnknownAttributesIter<'_> {
    type Item = AttrType;

    fn next(&mut self) -> Option<AttrType> {
        match &mut self.0 {
            IterRepr::Wire(chunks) => chunks.next().map(|c| match c {
                [a, b] => AttrType(u16::from_be_bytes([*a, *b])),
                _ => AttrType(0), // chunks_exact(2) only yields 2-byte chunks
            }),
            IterRepr::Types(types) => types.next().copied(),
        }
    }
}

impl<'a> DecodeAttribute<'a> for UnknownAttributes<'a> {
    const TYPE: AttrType = AttrType::UNKNOWN_ATTRIBUTES;

    fn decode(value: &'a [u8], _ctx: &Context) -> Result<Self, Error> {
        if !value.len().is_multiple_of(2) {
            return Err(Error::InvalidLength {
                attr: Self::TYPE,
                len: value.len(),
            });
        }
        Ok(UnknownAttributes(Repr::Wire(value)))
    }
}

impl EncodeAttribute for UnknownAttributes<'_> {
    fn attr_type(&self) -> AttrType {
        AttrType::UNKNOWN_ATTRIBUTES
    }

    fn value_len(&self) -> usize {
        2 * self.len()
    }

    fn emit_value(&self, out: &mut [u8], _ctx: &Context) {
        for (chunk, ty) in out.chunks_exact_mut(2).zip(self.iter()) {
            chunk.copy_from_slice(&ty.0.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransactionId;
    use crate::attr::test_util::round_trip;
    use proptest::prelude::*;

    #[test]
    fn odd_length_rejected() {
        let ctx = Context::new(TransactionId::default());
        assert!(UnknownAttributes::decode(&[0, 1, 0], &ctx).is_err());
        let u = UnknownAttributes::decode(&[0, 1, 0x7f, 0xff], &ctx).expect("decode");
        assert_eq!(
            u.iter().collect::<Vec<_>>(),
            vec![AttrType(1), AttrType(0x7fff)]
        );
    }

    proptest! {
        #[test]
        fn round_trips(types in proptest::collection::vec(any::<u16>().prop_map(AttrType), 0..40)) {
            let ctx = Context::new(TransactionId::default());
            let mut buf = [0u8; 128];
            let u = UnknownAttributes::new(&types);
            let back = round_trip(&u, &mut buf, &ctx);
            prop_assert_eq!(back, u);
            prop_assert_eq!(back.len(), types.len());
        }
    }
}
