//! What every STUN decoder test asks of a message that passed
//! `Message::new_checked`: the fuzz target `stun_message` and natkit-stun's
//! property tests run the same checks.

use natkit_stun::attr::*;
use natkit_stun::{Message, MessageBuilder};

/// Calls every accessor and typed attribute getter of `msg` (none may panic),
/// and round-trips every attribute that decodes: re-encoded alone in a
/// message with the same type, cookie and transaction id (so XOR-ed
/// addresses keep their key), it decodes to the same value. Returns how many
/// attributes decoded.
///
/// # Panics
///
/// When a check fails: that is the finding.
pub fn exercise(msg: &Message<'_>) -> usize {
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
    let _ = msg.get::<Username<'_>>();
    let _ = msg.get::<Software<'_>>();
    let _ = msg.get::<Realm<'_>>();
    let _ = msg.get::<Nonce<'_>>();
    let _ = msg
        .get::<UnknownAttributes<'_>>()
        .map(|u| u.map(|u| u.iter().count()));
    let _ = msg.get::<MessageIntegrity>();
    let _ = msg.get::<MessageIntegritySha256>();
    let _ = msg.get::<Fingerprint>();
    let _ = msg.get::<ChangeRequest>();
    let _ = msg.get::<ResponsePort>();
    let _ = msg.get::<Padding>();
    let _ = msg.get::<AlternateServer>();
    let _ = msg.get::<ResponseOrigin>();
    let _ = msg.get::<OtherAddress>();
    let _ = msg.get::<ChangedAddress>();
    let _ = msg.get::<SourceAddress>();
    assert!(msg.attributes().count() <= msg.raw_attributes().count());

    let ctx = msg.context();
    let mut decoded = 0;
    for raw in msg.raw_attributes() {
        assert!(raw.offset() + 4 + raw.value().len() <= msg.as_bytes().len());
        let Ok(attr) = Attribute::decode(raw, &ctx) else {
            continue;
        };
        decoded += 1;
        if let Attribute::UnknownAttributes(u) = &attr {
            assert_eq!(u.iter().count(), u.len());
        }
        let mut framed = vec![0u8; 20 + attr.buffer_len()];
        let mut b = MessageBuilder::with_cookie(
            &mut framed,
            msg.message_type(),
            msg.cookie(),
            msg.transaction_id(),
        )
        .expect("a header and one attribute fit");
        b.add_attr(&attr).expect("a decoded attribute re-encodes");
        assert_eq!(b.finish(), framed.len());
        let again = Message::new_checked(&framed).expect("valid framing");
        let back = again.raw_attributes().next().expect("one attribute");
        assert_eq!(Attribute::decode(back, &again.context()), Ok(attr));
    }
    decoded
}
