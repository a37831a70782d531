//! Decodes arbitrary bytes as a STUN message. Whatever passes `Message::new_checked` must:
//! answer every accessor without panicking; have every attribute that decodes re-encode
//! and decode to the same value; and re-build, attribute by attribute, into a message with
//! the same header and attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_stun::attr::*;
use natkit_stun::{Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let _ = Message::is_stun(data);
    let _ = Message::frame_len(data);
    let Ok(msg) = Message::new_checked(data) else {
        return;
    };

    // Every accessor.
    let _ = (
        msg.message_type(),
        msg.class(),
        msg.method(),
        msg.length(),
        msg.cookie(),
    );
    let _ = (
        msg.has_magic_cookie(),
        msg.transaction_id(),
        msg.legacy_transaction_id(),
    );
    let _ = (
        msg.xor_mapped_address(),
        msg.mapped_address(),
        msg.reflexive_address(),
    );
    let _ = (
        msg.error_code(),
        msg.has_fingerprint(),
        msg.check_fingerprint(),
    );
    let _ = (
        msg.check_integrity(b"key"),
        msg.check_integrity_sha256(b"key"),
    );
    let _ = msg.unknown_comprehension_required().count();
    let _ = msg.decoded_attributes().count();
    assert!(msg.attributes().count() <= msg.raw_attributes().count());

    // Every attribute: decode, re-encode, decode again.
    let ctx = msg.context();
    for raw in msg.raw_attributes() {
        assert!(raw.offset() + 4 + raw.value().len() <= data.len());
        let Ok(attr) = Attribute::decode(raw, &ctx) else {
            continue;
        };
        if let Attribute::UnknownAttributes(u) = &attr {
            assert_eq!(u.iter().count(), u.len());
        }
        // Frame the re-encoded attribute in a message with the same cookie and id.
        let mut framed = vec![0u8; 20 + attr.buffer_len()];
        let mut b = MessageBuilder::with_cookie(
            &mut framed,
            msg.message_type(),
            msg.cookie(),
            msg.transaction_id(),
        )
        .expect("fits");
        b.add_attr(&attr).expect("a decoded attribute re-encodes");
        let n = b.finish();
        assert_eq!(n, framed.len());
        let again = Message::new_checked(&framed).expect("valid");
        let back = again.raw_attributes().next().expect("one attribute");
        assert_eq!(Attribute::decode(back, &again.context()), Ok(attr));
    }

    // The whole message: rebuild it from its header and raw attributes.
    let mut out = vec![0u8; data.len()];
    let mut b = MessageBuilder::with_cookie(
        &mut out,
        msg.message_type(),
        msg.cookie(),
        msg.transaction_id(),
    )
    .expect("a header fits");
    for raw in msg.raw_attributes() {
        b.add_attr(&raw)
            .expect("the same attributes fit in the same size");
    }
    let n = b.finish();
    assert_eq!(n, data.len());
    let rebuilt = Message::new_checked(&out[..n]).expect("a rebuilt message is valid");
    assert_eq!(rebuilt.message_type(), msg.message_type());
    assert_eq!(rebuilt.legacy_transaction_id(), msg.legacy_transaction_id());
    assert!(rebuilt.raw_attributes().eq(msg.raw_attributes()));
});
