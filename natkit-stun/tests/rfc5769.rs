//! RFC 5769 test vectors: every sample message decodes, its FINGERPRINT and
//! MESSAGE-INTEGRITY check out, and the encoder reproduces them.
//!
//! The byte arrays are RFC 5769 §2.1–2.4 as published (with the errata-corrected
//! long-term vector).

use std::net::SocketAddr;

use natkit_stun::attr::{
    AttrType, Fingerprint, MessageIntegrity, Nonce, Realm, Software, Username, XorMappedAddress,
};
use natkit_stun::integrity::long_term_key;
use natkit_stun::{Class, Error, Message, MessageBuilder, Method, TransactionId};

const VECTOR_1: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, // Request type message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // } Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x10, // SOFTWARE header
    0x53, 0x54, 0x55, 0x4e, //   }
    0x20, 0x74, 0x65, 0x73, //   }  User-agent...
    0x74, 0x20, 0x63, 0x6c, //   }  ...name
    0x69, 0x65, 0x6e, 0x74, //   }
    0x00, 0x24, 0x00, 0x04, // PRIORITY header
    0x6e, 0x00, 0x01, 0xff, //   PRIORITY value
    0x80, 0x29, 0x00, 0x08, // ICE_CONTROLLED header
    0x93, 0x2f, 0xf9, 0xb1, //   Pseudo random number
    0x51, 0x26, 0x3b, 0x36, //   ... for tie breaker
    0x00, 0x06, 0x00, 0x09, // USERNAME header
    0x65, 0x76, 0x74, 0x6a, //   Username value
    0x3a, 0x68, 0x36, 0x76, //   (9 bytes)
    0x59, 0x20, 0x20, 0x20, //   (3 bytes padding)
    0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY header
    0x9a, 0xea, 0xa7, 0x0c, //   }
    0xbf, 0xd8, 0xcb, 0x56, //   }
    0x78, 0x1e, 0xf2, 0xb5, //   } HMAC-SHA1 fingerprint
    0xb2, 0xd3, 0xf2, 0x49, //   }
    0xc1, 0xb5, 0x71, 0xa2, //   }
    0x80, 0x28, 0x00, 0x04, // FINGERPRINT header
    0xe5, 0x7a, 0x3b, 0xcf, //   CRC32 fingerprint
];
const VECTOR_2: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, // Response type message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x0b, // SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74, //   }
    0x20, 0x76, 0x65, 0x63, //   }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20, //   }
    0x00, 0x20, 0x00, 0x08, // XOR-MAPPED-ADDRESS attribute header
    0x00, 0x01, 0xa1, 0x47, //   Address family (IPv4) and xor'd mapped port number
    0xe1, 0x12, 0xa6, 0x43, //   Xor'd mapped IPv4 address
    0x00, 0x08, 0x00, 0x14, //   MESSAGE-INTEGRITY attribute header
    0x2b, 0x91, 0xf5, 0x99, // }
    0xfd, 0x9e, 0x90, 0xc3, // }
    0x8c, 0x74, 0x89, 0xf9, // }  HMAC-SHA1 fingerprint
    0x2a, 0xf9, 0xba, 0x53, // }
    0xf0, 0x6b, 0xe7, 0xd7, // }
    0x80, 0x28, 0x00, 0x04, //  FINGERPRINT attribute header
    0xc0, 0x7d, 0x4c, 0x96, //  CRC32 fingerprint
];
const VECTOR_3: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, // Response type and message length
    0x21, 0x12, 0xa4, 0x42, // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01, // }
    0xbc, 0x34, 0xd6, 0x86, // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae, // }
    0x80, 0x22, 0x00, 0x0b, //    SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74, // }
    0x20, 0x76, 0x65, 0x63, // }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20, // }
    0x00, 0x20, 0x00, 0x14, //    XOR-MAPPED-ADDRESS attribute header
    0x00, 0x02, 0xa1, 0x47, //    Address family (IPv6) and xor'd mapped port number
    0x01, 0x13, 0xa9, 0xfa, // }
    0xa5, 0xd3, 0xf1, 0x79, // }  Xor'd mapped IPv6 address
    0xbc, 0x25, 0xf4, 0xb5, // }
    0xbe, 0xd2, 0xb9, 0xd9, // }
    0x00, 0x08, 0x00, 0x14, //    MESSAGE-INTEGRITY attribute header
    0xa3, 0x82, 0x95, 0x4e, // }
    0x4b, 0xe6, 0x7b, 0xf1, // }
    0x17, 0x84, 0xc9, 0x7c, // }  HMAC-SHA1 fingerprint
    0x82, 0x92, 0xc2, 0x75, // }
    0xbf, 0xe3, 0xed, 0x41, // }
    0x80, 0x28, 0x00, 0x04, //    FINGERPRINT attribute header
    0xc8, 0xfb, 0x0b, 0x4c, //    CRC32 fingerprint
];
const VECTOR_4: [u8; 116] = [
    0x00, 0x01, 0x00, 0x60, //    Request type and message length
    0x21, 0x12, 0xa4, 0x42, //    Magic cookie
    0x78, 0xad, 0x34, 0x33, // }
    0xc6, 0xad, 0x72, 0xc0, // }  Transaction ID
    0x29, 0xda, 0x41, 0x2e, // }
    0x00, 0x06, 0x00, 0x12, //    USERNAME attribute header
    0xe3, 0x83, 0x9e, 0xe3, // }
    0x83, 0x88, 0xe3, 0x83, // }
    0xaa, 0xe3, 0x83, 0x83, // }  Username value (18 bytes) and padding (2 bytes)
    0xe3, 0x82, 0xaf, 0xe3, // }
    0x82, 0xb9, 0x00, 0x00, // }
    0x00, 0x15, 0x00, 0x1c, //    NONCE attribute header
    0x66, 0x2f, 0x2f, 0x34, // }
    0x39, 0x39, 0x6b, 0x39, // }
    0x35, 0x34, 0x64, 0x36, // }
    0x4f, 0x4c, 0x33, 0x34, // }  Nonce value
    0x6f, 0x4c, 0x39, 0x46, // }
    0x53, 0x54, 0x76, 0x79, // }
    0x36, 0x34, 0x73, 0x41, // }
    0x00, 0x14, 0x00, 0x0b, //    REALM attribute header
    0x65, 0x78, 0x61, 0x6d, // }
    0x70, 0x6c, 0x65, 0x2e, // }  Realm value (11 bytes) and padding (1 byte)
    0x6f, 0x72, 0x67, 0x00, // }
    0x00, 0x08, 0x00, 0x14, //    MESSAGE-INTEGRITY attribute header
    0xf6, 0x70, 0x24, 0x65, // }
    0x6d, 0xd6, 0x4a, 0x3e, // }
    0x02, 0xb8, 0xe0, 0x71, // }  HMAC-SHA1 fingerprint
    0x2e, 0x85, 0xc9, 0xa2, // }
    0x8c, 0xa8, 0x96, 0x66, // }
];

/// Short-term password of vectors 1–3.
const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

fn tid(bytes: &[u8]) -> TransactionId {
    let mut t = [0; 12];
    t.copy_from_slice(&bytes[8..20]);
    TransactionId::new(t)
}

#[test]
fn sample_request() {
    let msg = Message::new_checked(&VECTOR_1).expect("valid");
    assert_eq!(msg.class(), Class::Request);
    assert_eq!(msg.method(), Method::BINDING);
    assert!(msg.has_magic_cookie());
    assert_eq!(
        msg.transaction_id().as_bytes(),
        &[
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae
        ]
    );
    assert_eq!(
        msg.get::<Software<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some("STUN test client"))
    );
    assert_eq!(
        msg.get::<Username<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some("evtj:h6vY"))
    );
    assert_eq!(msg.check_fingerprint(), Ok(()));
    assert_eq!(msg.check_integrity(PASSWORD), Ok(()));
    assert_eq!(
        msg.check_integrity(b"VOkJxbRl1RmTxUk/WvJxBu"),
        Err(Error::IntegrityMismatch {
            attr: AttrType::MESSAGE_INTEGRITY
        })
    );
    // PRIORITY (0x0024) is an ICE attribute: comprehension-required and unknown to plain STUN.
    let unknown: Vec<AttrType> = msg.unknown_comprehension_required().collect();
    assert_eq!(unknown, [AttrType(0x0024)]);
    // Every attribute decodes.
    assert_eq!(msg.decoded_attributes().filter(|a| a.is_err()).count(), 0);
    assert_eq!(msg.attributes().count(), 6);
}

fn check_response(bytes: &[u8], expected: &str) {
    let msg = Message::new_checked(bytes).expect("valid");
    let addr: SocketAddr = expected.parse().expect("addr");
    assert_eq!(msg.class(), Class::SuccessResponse);
    assert_eq!(msg.method(), Method::BINDING);
    assert_eq!(msg.xor_mapped_address(), Ok(Some(addr)));
    assert_eq!(msg.reflexive_address(), Ok(Some(addr)));
    assert_eq!(
        msg.get::<Software<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some("test vector"))
    );
    assert_eq!(msg.check_fingerprint(), Ok(()));
    assert_eq!(msg.check_integrity(PASSWORD), Ok(()));
    assert_eq!(msg.unknown_comprehension_required().count(), 0);

    // Re-encode. The RFC pads SOFTWARE with a space where this encoder writes zero, and the
    // MAC and CRC cover padding, so compare everything else and check our MAC and CRC.
    let mut buf = [0u8; 128];
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::SuccessResponse,
        Method::BINDING,
        tid(bytes),
    )
    .expect("fits");
    b.add_attr(&Software::new("test vector").expect("ok"))
        .expect("fits");
    b.add_attr(&XorMappedAddress(addr)).expect("fits");
    b.add_message_integrity(PASSWORD).expect("fits");
    let len = b.finish_with_fingerprint().expect("fits");
    assert_eq!(len, bytes.len());
    let ours = &buf[..len];
    let mi = len - 32; // MESSAGE-INTEGRITY header offset
    for (i, (a, b)) in ours[..mi].iter().zip(&bytes[..mi]).enumerate() {
        if i == 35 {
            assert_eq!((*a, *b), (0x00, 0x20), "padding after SOFTWARE");
        } else {
            assert_eq!(a, b, "byte {i}");
        }
    }
    let msg = Message::new_checked(ours).expect("valid");
    assert_eq!(msg.check_integrity(PASSWORD), Ok(()));
    assert_eq!(msg.check_fingerprint(), Ok(()));
}

#[test]
fn sample_ipv4_response() {
    check_response(&VECTOR_2, "192.0.2.1:32853");
}

#[test]
fn sample_ipv6_response() {
    check_response(&VECTOR_3, "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
}

#[test]
fn sample_request_with_long_term_authentication() {
    let msg = Message::new_checked(&VECTOR_4).expect("valid");
    let username = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    assert_eq!(
        msg.get::<Username<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some(username))
    );
    assert_eq!(
        msg.get::<Nonce<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some("f//499k954d6OL34oL9FSTvy64sA"))
    );
    assert_eq!(
        msg.get::<Realm<'_>>().map(|s| s.map(|s| s.as_str())),
        Ok(Some("example.org"))
    );
    // The password "The<U+00AD>M<U+00AA>tr<U+2168>" is "TheMatrIX" after SASLprep.
    let key = long_term_key(username, "example.org", "TheMatrIX");
    assert_eq!(msg.check_integrity(&key), Ok(()));
    assert_eq!(
        msg.check_integrity(&long_term_key(username, "example.org", "TheMatrix")),
        Err(Error::IntegrityMismatch {
            attr: AttrType::MESSAGE_INTEGRITY
        })
    );
    assert_eq!(
        msg.check_fingerprint(),
        Err(Error::MissingAttribute(AttrType::FINGERPRINT))
    );

    // This vector pads with zeros, so the encoder reproduces it byte for byte.
    let mut buf = [0u8; 128];
    let mut b = MessageBuilder::new(&mut buf, Class::Request, Method::BINDING, tid(&VECTOR_4))
        .expect("fits");
    b.add_attr(&Username::new(username).expect("ok"))
        .expect("fits");
    b.add_attr(&Nonce::new("f//499k954d6OL34oL9FSTvy64sA").expect("ok"))
        .expect("fits");
    b.add_attr(&Realm::new("example.org").expect("ok"))
        .expect("fits");
    b.add_message_integrity(&key).expect("fits");
    let len = b.finish();
    assert_eq!(&buf[..len], &VECTOR_4[..]);
}

#[test]
fn typed_values_of_the_vectors() {
    let msg = Message::new_checked(&VECTOR_1).expect("valid");
    assert_eq!(msg.get::<Fingerprint>(), Ok(Some(Fingerprint(0xe57a_3bcf))));
    let mi = msg.require::<MessageIntegrity>().expect("present");
    assert_eq!(mi.0[..4], [0x9a, 0xea, 0xa7, 0x0c]);
}
