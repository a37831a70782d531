//! Property tests over whole messages: building and decoding round-trips, and no input
//! (random bytes, or well-framed messages with random attribute values) panics the
//! decoder or any accessor of a message that passed `new_checked`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use natkit_stun::attr::*;
use natkit_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};
use natkit_testkit::stun::exercise;
use proptest::prelude::*;

/// An owned attribute, so proptest can generate it; `as_attr` borrows it as an [`Attribute`].
#[derive(Debug, Clone)]
enum Owned {
    Mapped(SocketAddr),
    Xor(SocketAddr),
    XorLegacy(SocketAddr),
    Username(String),
    ErrorCode(u16, String),
    Unknown(Vec<AttrType>),
    Software(String),
    Alternate(SocketAddr),
    Realm(String),
    Nonce(String),
    Change(bool, bool),
    Origin(SocketAddr),
    Other(SocketAddr),
    Port(u16),
    Padding(u16),
    Changed(SocketAddr),
    Source(SocketAddr),
    Raw(u16, Vec<u8>),
}

impl Owned {
    fn as_attr(&self) -> Attribute<'_> {
        match self {
            Owned::Mapped(a) => Attribute::MappedAddress(MappedAddress(*a)),
            Owned::Xor(a) => Attribute::XorMappedAddress(XorMappedAddress(*a)),
            Owned::XorLegacy(a) => Attribute::XorMappedAddressLegacy(XorMappedAddress(*a)),
            Owned::Username(s) => Attribute::Username(Username::new(s).expect("generated valid")),
            Owned::ErrorCode(c, r) => {
                Attribute::ErrorCode(ErrorCode::new(*c, r).expect("generated valid"))
            }
            Owned::Unknown(t) => Attribute::UnknownAttributes(UnknownAttributes::new(t)),
            Owned::Software(s) => Attribute::Software(Software::new(s).expect("generated valid")),
            Owned::Alternate(a) => Attribute::AlternateServer(AlternateServer(*a)),
            Owned::Realm(s) => Attribute::Realm(Realm::new(s).expect("generated valid")),
            Owned::Nonce(s) => Attribute::Nonce(Nonce::new(s).expect("generated valid")),
            Owned::Change(change_ip, change_port) => Attribute::ChangeRequest(ChangeRequest {
                change_ip: *change_ip,
                change_port: *change_port,
            }),
            Owned::Origin(a) => Attribute::ResponseOrigin(ResponseOrigin(*a)),
            Owned::Other(a) => Attribute::OtherAddress(OtherAddress(*a)),
            Owned::Port(p) => Attribute::ResponsePort(ResponsePort(*p)),
            Owned::Padding(n) => Attribute::Padding(Padding(*n)),
            Owned::Changed(a) => Attribute::ChangedAddress(ChangedAddress(*a)),
            Owned::Source(a) => Attribute::SourceAddress(SourceAddress(*a)),
            Owned::Raw(t, v) => Attribute::Unknown(raw(*t, v)),
        }
    }
}

/// A raw attribute, built the only public way: by decoding a one-attribute message.
fn raw(ty: u16, value: &[u8]) -> RawAttribute<'_> {
    // Leaking is fine in tests; it gives the 'static buffer the borrow needs.
    let mut buf = vec![0u8; 24 + value.len() + 3];
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::Request,
        Method::BINDING,
        TransactionId::default(),
    )
    .expect("fits");
    b.add_raw(AttrType(ty), value).expect("fits");
    let n = b.finish();
    buf.truncate(n);
    let buf: &'static [u8] = Vec::leak(buf);
    let msg = Message::new_checked(buf).expect("valid");
    msg.raw_attributes().next().expect("one attribute")
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,40}"
}

fn owned() -> impl Strategy<Value = Owned> {
    // Unknown types: never one this crate knows, and never the three "ending" attributes.
    let unknown_type = any::<u16>().prop_filter("unknown type", |t| !AttrType(*t).is_known());
    prop_oneof![
        addr().prop_map(Owned::Mapped),
        addr().prop_map(Owned::Xor),
        addr().prop_map(Owned::XorLegacy),
        text().prop_map(Owned::Username),
        (300u16..700, text()).prop_map(|(c, r)| Owned::ErrorCode(c, r)),
        proptest::collection::vec(any::<u16>().prop_map(AttrType), 0..8).prop_map(Owned::Unknown),
        text().prop_map(Owned::Software),
        addr().prop_map(Owned::Alternate),
        text().prop_map(Owned::Realm),
        text().prop_map(Owned::Nonce),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Owned::Change(a, b)),
        addr().prop_map(Owned::Origin),
        addr().prop_map(Owned::Other),
        any::<u16>().prop_map(Owned::Port),
        (0u16..64).prop_map(Owned::Padding),
        addr().prop_map(Owned::Changed),
        addr().prop_map(Owned::Source),
        (unknown_type, proptest::collection::vec(any::<u8>(), 0..24))
            .prop_map(|(t, v)| Owned::Raw(t, v)),
    ]
}

/// A well-framed message with random attribute types (biased to known ones) and values.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    let known = [
        0x0001u16, 0x0003, 0x0004, 0x0005, 0x0006, 0x0008, 0x0009, 0x000a, 0x0014, 0x0015, 0x001c,
        0x0020, 0x0026, 0x0027, 0x8020, 0x8022, 0x8023, 0x8028, 0x802b, 0x802c,
    ];
    let ty = prop_oneof![proptest::sample::select(known.to_vec()), any::<u16>()];
    let attr = (ty, proptest::collection::vec(any::<u8>(), 0..40));
    (
        any::<u16>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(attr, 0..8),
    )
        .prop_map(|(ty, cookie, id, attrs)| {
            let mut v = Vec::new();
            v.extend_from_slice(&(ty & 0x3fff).to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            v.extend_from_slice(&id);
            if cookie {
                v[4..8].copy_from_slice(&natkit_stun::MAGIC_COOKIE.to_be_bytes());
            }
            for (t, val) in attrs {
                v.extend_from_slice(&t.to_be_bytes());
                v.extend_from_slice(&(val.len() as u16).to_be_bytes());
                v.extend_from_slice(&val);
                v.resize((v.len() + 3) & !3, 0);
            }
            let len = (v.len() - 20) as u16;
            v[2..4].copy_from_slice(&len.to_be_bytes());
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn whole_messages_round_trip(
        class in 0u16..4,
        method in 0u16..=0xfff,
        tid in any::<[u8; 12]>(),
        attrs in proptest::collection::vec(owned(), 0..10),
        integrity in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        sha256 in any::<bool>(),
        fingerprint in any::<bool>(),
    ) {
        let ty = MessageType::new(Class::from_bits(class), Method::new(method).expect("12 bits"));
        let tid = TransactionId::new(tid);
        let mut buf = vec![0u8; 4096];
        let mut b = MessageBuilder::new(&mut buf, ty.class(), ty.method(), tid).expect("fits");
        for a in &attrs {
            b.add_attr(&a.as_attr()).expect("fits");
        }
        if let Some(key) = &integrity {
            b.add_message_integrity(key).expect("fits");
            if sha256 {
                b.add_message_integrity_sha256(key).expect("fits");
            }
        }
        let len = if fingerprint { b.finish_with_fingerprint().expect("fits") } else { b.finish() };
        let msg = Message::new_checked(&buf[..len]).expect("what we build decodes");
        prop_assert_eq!(msg.message_type(), ty);
        prop_assert_eq!(msg.transaction_id(), tid);
        prop_assert!(msg.has_magic_cookie());
        let decoded: Vec<Attribute<'_>> = msg
            .decoded_attributes()
            .collect::<Result<_, _>>()
            .expect("what we build decodes");
        let body: Vec<Attribute<'_>> = decoded
            .iter()
            .copied()
            .filter(|a| !matches!(a, Attribute::MessageIntegrity(_) | Attribute::MessageIntegritySha256(_) | Attribute::Fingerprint(_)))
            .collect();
        let expected: Vec<Attribute<'_>> = attrs.iter().map(Owned::as_attr).collect();
        prop_assert_eq!(body, expected);
        if let Some(key) = &integrity {
            prop_assert_eq!(msg.check_integrity(key), Ok(()));
            if sha256 {
                prop_assert_eq!(msg.check_integrity_sha256(key), Ok(()));
            }
        }
        prop_assert_eq!(msg.check_fingerprint().is_ok(), fingerprint);
        prop_assert_eq!(exercise(&msg), msg.raw_attributes().count());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(msg) = Message::new_checked(&bytes) {
            exercise(&msg);
        }
        let _ = Message::is_stun(&bytes);
        let _ = Message::frame_len(&bytes);
    }

    #[test]
    fn framed_garbage_never_panics(bytes in framed_garbage()) {
        let msg = Message::new_checked(&bytes).expect("framing is valid by construction");
        exercise(&msg);
    }

    #[test]
    fn corrupted_messages_never_panic(
        attrs in proptest::collection::vec(owned(), 0..6),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = vec![0u8; 2048];
        let mut b = MessageBuilder::new(&mut buf, Class::SuccessResponse, Method::BINDING, TransactionId::new([1; 12]))
            .expect("fits");
        for a in &attrs {
            b.add_attr(&a.as_attr()).expect("fits");
        }
        b.add_message_integrity(b"key").expect("fits");
        let len = b.finish_with_fingerprint().expect("fits");
        buf.truncate(len);
        for (i, x) in &flips {
            let i = i.index(len);
            buf[i] ^= x;
        }
        if let Ok(msg) = Message::new_checked(&buf) {
            exercise(&msg);
        }
        let cut = cut.index(len + 1);
        if let Ok(msg) = Message::new_checked(&buf[..cut]) {
            exercise(&msg);
        }
    }
}
