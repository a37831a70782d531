//! Parses arbitrary bytes as a dial-back message (natkit-probe's outside-in protocol).
//! The format is canonical, so a message that parses must emit back to exactly the same
//! bytes, and parse again to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_probe::dialback::{MAX_MESSAGE_LEN, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = Message::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_MESSAGE_LEN);
    assert_eq!(msg.buffer_len(), data.len());
    let mut out = vec![0u8; msg.buffer_len()];
    let n = msg.emit(&mut out).expect("a parsed message emits");
    assert_eq!(&out[..n], data, "parse then emit gives the same bytes");
    assert_eq!(Message::parse(&out[..n]), Ok(msg));
    let _ = msg.nonce();
});
