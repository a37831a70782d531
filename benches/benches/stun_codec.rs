//! STUN codec: natkit-stun side by side with `stun_codec`, `stun-rs` and `stun-types`.
//!
//! Input: one Binding success response with XOR-MAPPED-ADDRESS (IPv4), SOFTWARE and
//! FINGERPRINT. Every library gets the same bytes and does the same work:
//! * decode: validate the message, verify FINGERPRINT, read XOR-MAPPED-ADDRESS;
//! * encode: write that message (header, XOR-MAPPED-ADDRESS, SOFTWARE, FINGERPRINT) from
//!   its values. Setup checks that every peer produces natkit's bytes exactly and decodes
//!   natkit's bytes to the same address, and that a corrupted FINGERPRINT is rejected by all.
//!
//! Run: `cargo bench -p natkit-benches --bench stun_codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};

const TID: [u8; 12] = [
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
];
const SOFTWARE: &str = "natkit benchmark server";

fn addr() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 32853))
}

mod natkit {
    use super::*;
    use natkit_stun::attr::{Software, XorMappedAddress};
    use natkit_stun::{Class, Message, MessageBuilder, Method, TransactionId};

    pub(crate) fn decode(bytes: &[u8]) -> Option<SocketAddr> {
        let msg = Message::new_checked(bytes).ok()?;
        msg.check_fingerprint().ok()?;
        msg.xor_mapped_address().ok()?
    }

    pub(crate) fn encode(out: &mut [u8], addr: SocketAddr) -> usize {
        let tid = TransactionId::new(TID);
        let mut b = MessageBuilder::new(out, Class::SuccessResponse, Method::BINDING, tid)
            .expect("buffer fits a header");
        b.add_attr(&XorMappedAddress(addr)).expect("fits");
        b.add_attr(&Software::new(SOFTWARE).expect("short"))
            .expect("fits");
        b.finish_with_fingerprint().expect("fits")
    }
}

mod stun_types_peer {
    use super::*;
    use stun_types::attribute::{Software, XorMappedAddress};
    use stun_types::message::{
        BINDING, Message, MessageClass, MessageType, MessageWriteMutSlice, TransactionId,
    };
    use stun_types::prelude::*;

    fn tid() -> TransactionId {
        let mut t = [0u8; 16];
        t[4..].copy_from_slice(&TID);
        TransactionId::from(u128::from_be_bytes(t))
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<SocketAddr> {
        // from_bytes validates the message and verifies FINGERPRINT when present.
        let msg = Message::from_bytes(bytes).ok()?;
        let xor = msg.attribute::<XorMappedAddress>().ok()?;
        Some(xor.addr(msg.transaction_id()))
    }

    pub(crate) fn encode(out: &mut [u8], addr: SocketAddr) -> usize {
        let tid = tid();
        let ty = MessageType::from_class_method(MessageClass::Success, BINDING);
        let mut msg = Message::builder(ty, tid, MessageWriteMutSlice::new(out));
        msg.add_attribute(&XorMappedAddress::new(addr, tid))
            .expect("fits");
        msg.add_attribute(&Software::new(SOFTWARE).expect("short"))
            .expect("fits");
        msg.add_fingerprint().expect("fits");
        msg.finish()
    }
}

mod stun_rs_peer {
    use super::*;
    use stun_rs::attributes::stun::{Fingerprint, Software, XorMappedAddress};
    use stun_rs::methods::BINDING;
    use stun_rs::{
        DecoderContextBuilder, MessageClass, MessageDecoder, MessageDecoderBuilder, MessageEncoder,
        MessageEncoderBuilder, StunMessageBuilder, TransactionId,
    };

    pub(crate) fn decoder() -> MessageDecoder {
        // With validation, the decoder verifies FINGERPRINT.
        let ctx = DecoderContextBuilder::default().with_validation().build();
        MessageDecoderBuilder::default().with_context(ctx).build()
    }

    pub(crate) fn encoder() -> MessageEncoder {
        MessageEncoderBuilder::default().build()
    }

    pub(crate) fn decode(decoder: &MessageDecoder, bytes: &[u8]) -> Option<SocketAddr> {
        let (msg, _) = decoder.decode(bytes).ok()?;
        let xor = msg
            .get::<XorMappedAddress>()?
            .as_xor_mapped_address()
            .ok()?;
        Some(*xor.socket_address())
    }

    pub(crate) fn encode(encoder: &MessageEncoder, out: &mut [u8], addr: SocketAddr) -> usize {
        let msg = StunMessageBuilder::new(BINDING, MessageClass::SuccessResponse)
            .with_transaction_id(TransactionId::from(TID))
            .with_attribute(XorMappedAddress::from(addr))
            .with_attribute(Software::new(SOFTWARE).expect("short"))
            .with_attribute(Fingerprint::default())
            .build();
        encoder.encode(out, &msg).expect("fits")
    }
}

mod stun_codec_peer {
    use super::*;
    use bytecodec::{DecodeExt, EncodeExt};
    use stun_codec::rfc5389::attributes::{Fingerprint, Software, XorMappedAddress};
    use stun_codec::rfc5389::{Attribute, methods::BINDING};
    use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};

    pub(crate) fn decode(bytes: &[u8]) -> Option<SocketAddr> {
        // The FINGERPRINT attribute is verified while decoding (after_decode).
        let mut decoder = MessageDecoder::<Attribute>::new();
        let msg = decoder.decode_from_bytes(bytes).ok()?.ok()?;
        Some(msg.get_attribute::<XorMappedAddress>()?.address())
    }

    pub(crate) fn encode(out: &mut [u8], addr: SocketAddr) -> usize {
        let mut msg = Message::<Attribute>::new(
            MessageClass::SuccessResponse,
            BINDING,
            TransactionId::new(TID),
        );
        msg.add_attribute(XorMappedAddress::new(addr));
        msg.add_attribute(Software::new(SOFTWARE.to_owned()).expect("short"));
        let fingerprint = Fingerprint::new(&msg).expect("computable");
        msg.add_attribute(fingerprint);
        let bytes = MessageEncoder::new()
            .encode_into_bytes(msg)
            .expect("encodes");
        out[..bytes.len()].copy_from_slice(&bytes);
        bytes.len()
    }
}

/// Checks that every library does the same work on the same bytes; returns the input.
fn input() -> Vec<u8> {
    let mut buf = [0u8; 256];
    let len = natkit::encode(&mut buf, addr());
    let bytes = buf[..len].to_vec();

    let (dec, enc) = (stun_rs_peer::decoder(), stun_rs_peer::encoder());
    let mut out = [0u8; 256];
    let n = stun_types_peer::encode(&mut out, addr());
    assert_eq!(&out[..n], &bytes[..], "stun-types encodes the same bytes");
    let n = stun_rs_peer::encode(&enc, &mut out, addr());
    assert_eq!(&out[..n], &bytes[..], "stun-rs encodes the same bytes");
    let n = stun_codec_peer::encode(&mut out, addr());
    assert_eq!(&out[..n], &bytes[..], "stun_codec encodes the same bytes");

    assert_eq!(natkit::decode(&bytes), Some(addr()));
    assert_eq!(stun_types_peer::decode(&bytes), Some(addr()));
    assert_eq!(stun_rs_peer::decode(&dec, &bytes), Some(addr()));
    assert_eq!(stun_codec_peer::decode(&bytes), Some(addr()));

    let mut bad = bytes.clone();
    *bad.last_mut().expect("non-empty") ^= 1;
    assert_eq!(natkit::decode(&bad), None, "natkit verifies FINGERPRINT");
    assert_eq!(
        stun_types_peer::decode(&bad),
        None,
        "stun-types verifies FINGERPRINT"
    );
    assert_eq!(
        stun_rs_peer::decode(&dec, &bad),
        None,
        "stun-rs verifies FINGERPRINT"
    );
    assert_eq!(
        stun_codec_peer::decode(&bad),
        None,
        "stun_codec verifies FINGERPRINT"
    );
    bytes
}

fn decode(c: &mut Criterion) {
    let bytes = input();
    let dec = stun_rs_peer::decoder();
    let mut g = c.benchmark_group("stun_decode_binding_success");
    g.bench_function("natkit-stun", |b| {
        b.iter(|| natkit::decode(black_box(&bytes)))
    });
    g.bench_function("stun-types", |b| {
        b.iter(|| stun_types_peer::decode(black_box(&bytes)))
    });
    g.bench_function("stun-rs", |b| {
        b.iter(|| stun_rs_peer::decode(&dec, black_box(&bytes)))
    });
    g.bench_function("stun_codec", |b| {
        b.iter(|| stun_codec_peer::decode(black_box(&bytes)))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let _ = input();
    let enc = stun_rs_peer::encoder();
    let mut out = [0u8; 256];
    let mut g = c.benchmark_group("stun_encode_binding_success");
    g.bench_function("natkit-stun", |b| {
        b.iter(|| natkit::encode(&mut out, black_box(addr())))
    });
    g.bench_function("stun-types", |b| {
        b.iter(|| stun_types_peer::encode(&mut out, black_box(addr())))
    });
    g.bench_function("stun-rs", |b| {
        b.iter(|| stun_rs_peer::encode(&enc, &mut out, black_box(addr())))
    });
    g.bench_function("stun_codec", |b| {
        b.iter(|| stun_codec_peer::encode(&mut out, black_box(addr())))
    });
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
