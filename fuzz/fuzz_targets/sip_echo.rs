//! Arbitrary bytes at the SIP echo (natkit-probe's SIP ALG check): the datagram and
//! stream rules must never let more than MAX_SIP_LEN bytes or anything but an OPTIONS
//! request through, a frame must be stable (the frame alone frames the same), and the
//! client's comparison of arbitrary bytes with its request must be empty exactly when
//! they are equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_probe::sip::{
    Framing, MAX_SIP_LEN, SipTransport, compare, echoable_datagram, frame_stream,
    options_request,
};

fuzz_target!(|data: &[u8]| {
    if echoable_datagram(data).is_ok() {
        assert!(data.len() <= MAX_SIP_LEN);
        assert!(data.starts_with(b"OPTIONS sip"));
    }
    match frame_stream(data) {
        Framing::Complete(n) => {
            assert!(n <= data.len() && n <= MAX_SIP_LEN);
            assert!(data.starts_with(b"OPTIONS sip"));
            assert_eq!(frame_stream(&data[..n]), Framing::Complete(n));
            assert!(echoable_datagram(&data[..n]).is_ok());
        }
        Framing::Incomplete => assert!(data.len() < MAX_SIP_LEN),
        Framing::Rejected(_) => {}
    }
    let request = options_request(
        SipTransport::Udp,
        "192.168.77.2:40000".parse().expect("addr"),
        "88.77.66.20:5060".parse().expect("addr"),
        "fuzz",
    );
    let changes = compare(&request, data);
    assert_eq!(changes.is_empty(), data == request.as_slice());
});
