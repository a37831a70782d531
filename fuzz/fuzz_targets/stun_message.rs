//! Decodes arbitrary bytes as a STUN message. Whatever passes `Message::new_checked` must:
//! answer every accessor without panicking; have every attribute that decodes re-encode
//! and decode to the same value; and re-build, attribute by attribute, into a message with
//! the same header and attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_stun::{Message, MessageBuilder};

fuzz_target!(|data: &[u8]| {
    let _ = Message::is_stun(data);
    let _ = Message::frame_len(data);
    let Ok(msg) = Message::new_checked(data) else {
        return;
    };

    // Every accessor; every attribute decoded, re-encoded and decoded again.
    natkit_testkit::stun::exercise(&msg);

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
