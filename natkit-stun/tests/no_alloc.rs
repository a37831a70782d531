//! Decoding allocates nothing: a counting global allocator watches the decoding thread
//! while it validates, walks, decodes and verifies messages.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use natkit_stun::attr::*;
use natkit_stun::integrity::long_term_key;
use natkit_stun::{Class, Message, MessageBuilder, Method, TransactionId};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// Reads everything a client or server would read from `bytes`.
fn decode_everything(bytes: &[u8], key: &[u8]) -> usize {
    let msg = Message::new_checked(bytes).expect("valid");
    let ctx = msg.context();
    let mut n = 0;
    for raw in msg.raw_attributes() {
        if let Ok(a) = Attribute::decode(raw, &ctx) {
            n += 1;
            if let Attribute::UnknownAttributes(u) = a {
                n += u.iter().count();
            }
        }
    }
    n += msg.decoded_attributes().filter(Result::is_ok).count();
    n += msg.unknown_comprehension_required().count();
    let _ = msg.reflexive_address().expect("decodes");
    let _ = msg.get::<Software<'_>>().expect("decodes");
    let _ = msg.error_code().expect("decodes");
    msg.check_fingerprint().expect("fingerprint");
    msg.check_integrity(key).expect("integrity");
    msg.check_integrity_sha256(key).expect("integrity");
    n
}

#[test]
fn decoding_allocates_nothing() {
    let key = long_term_key("user", "realm", "pass");
    let types = [AttrType(0x7001), AttrType(0x0002)];
    let mut buf = [0u8; 512];
    let mut b = MessageBuilder::new(
        &mut buf,
        Class::ErrorResponse,
        Method::BINDING,
        TransactionId::new([9; 12]),
    )
    .expect("fits");
    b.add_attr(&XorMappedAddress(
        "[2001:db8::1]:4242".parse().expect("addr"),
    ))
    .expect("fits");
    b.add_attr(&MappedAddress("192.0.2.1:3478".parse().expect("addr")))
        .expect("fits");
    b.add_attr(&ErrorCode::new(420, "Unknown Attribute").expect("valid"))
        .expect("fits");
    b.add_attr(&UnknownAttributes::new(&types)).expect("fits");
    b.add_attr(&Software::new("natkit test").expect("valid"))
        .expect("fits");
    b.add_attr(&Realm::new("realm").expect("valid"))
        .expect("fits");
    b.add_attr(&Nonce::new("nonce").expect("valid"))
        .expect("fits");
    b.add_attr(&OtherAddress("198.51.100.2:3479".parse().expect("addr")))
        .expect("fits");
    b.add_raw(AttrType(0x7001), b"unknown, required")
        .expect("fits");
    b.add_message_integrity(&key).expect("fits");
    b.add_message_integrity_sha256(&key).expect("fits");
    let len = b.finish_with_fingerprint().expect("fits");
    let bytes = &buf[..len];

    // Warm up lazily initialised state (CPU feature detection) outside the measurement.
    let expected = decode_everything(bytes, &key);
    assert!(expected > 10);
    let mut seen = 0;
    let allocs = allocations_during(|| seen = decode_everything(bytes, &key));
    assert_eq!(seen, expected);
    assert_eq!(allocs, 0, "decoding allocated {allocs} times");

    // And encoding into a caller's buffer allocates nothing either.
    let allocs = allocations_during(|| {
        let mut out = [0u8; 128];
        let mut b = MessageBuilder::new(
            &mut out,
            Class::SuccessResponse,
            Method::BINDING,
            TransactionId::new([1; 12]),
        )
        .expect("fits");
        b.add_attr(&XorMappedAddress("192.0.2.1:32853".parse().expect("addr")))
            .expect("fits");
        b.add_message_integrity(&key).expect("fits");
        b.finish_with_fingerprint().expect("fits");
    });
    assert_eq!(allocs, 0, "encoding allocated {allocs} times");
}

#[test]
fn the_counter_counts() {
    let allocs = allocations_during(|| drop(std::hint::black_box(vec![1u8; 10])));
    assert_eq!(allocs, 1);
}
