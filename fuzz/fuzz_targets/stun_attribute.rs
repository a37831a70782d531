//! Decodes arbitrary bytes with every typed STUN attribute codec directly, without a
//! message around them (so lengths and families the message-level target rarely reaches
//! are hit). Input: 16 bytes of context (cookie field + transaction id), then the value.
//! Whatever decodes must re-encode to a well-formed attribute (right type, right length,
//! zero padding) that decodes to the same value under the same context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_stun::TransactionId;
use natkit_stun::attr::*;

macro_rules! round_trip {
    ($ty:ident, $value:expr, $ctx:expr) => {{
        if let Ok(a) = $ty::decode($value, $ctx) {
            let mut buf = vec![0xaau8; a.buffer_len()];
            let n = a.emit(&mut buf, $ctx).expect("a decoded attribute emits");
            assert_eq!(n, buf.len());
            assert_eq!(n % 4, 0);
            assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), $ty::TYPE.0);
            let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
            assert_eq!(len, a.value_len());
            assert!(buf[4 + len..].iter().all(|&b| b == 0), "padding is zero");
            let back = $ty::decode(&buf[4..4 + len], $ctx).expect("re-encoded value decodes");
            assert_eq!(back, a);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let Some((head, value)) = data.split_first_chunk::<16>() else {
        return;
    };
    let cookie = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&head[4..]);
    let ctx = Context::with_cookie(cookie, TransactionId::new(tid));

    round_trip!(MappedAddress, value, &ctx);
    round_trip!(XorMappedAddress, value, &ctx);
    round_trip!(AlternateServer, value, &ctx);
    round_trip!(ChangedAddress, value, &ctx);
    round_trip!(OtherAddress, value, &ctx);
    round_trip!(ResponseOrigin, value, &ctx);
    round_trip!(SourceAddress, value, &ctx);
    round_trip!(ChangeRequest, value, &ctx);
    round_trip!(ErrorCode, value, &ctx);
    round_trip!(Fingerprint, value, &ctx);
    round_trip!(MessageIntegrity, value, &ctx);
    round_trip!(MessageIntegritySha256, value, &ctx);
    round_trip!(Padding, value, &ctx);
    round_trip!(ResponsePort, value, &ctx);
    round_trip!(Username, value, &ctx);
    round_trip!(Realm, value, &ctx);
    round_trip!(Nonce, value, &ctx);
    round_trip!(Software, value, &ctx);
    round_trip!(UnknownAttributes, value, &ctx);
    if let Ok(u) = UnknownAttributes::decode(value, &ctx) {
        assert_eq!(u.iter().count(), u.len());
    }
    if let Ok(e) = ErrorCode::decode(value, &ctx) {
        let _ = format!("{e:?}");
    }
});
