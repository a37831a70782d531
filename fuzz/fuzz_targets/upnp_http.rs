//! Parses arbitrary bytes as an HTTP/1.1 response the way natkit-upnp's bounded
//! transport does: the head, then the body by its framing (Content-Length, chunked or
//! until close), and the control/description URLs it is given. Invariants: a head is
//! never longer than MAX_HEAD and lies inside the input, its status is three digits; a decoded chunked body never
//! exceeds its limit and is never longer than its encoding; a URL that parses or joins
//! prints back to a URL that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natkit_upnp::HttpUrl;
use natkit_upnp::http::{Framing, HttpError, MAX_HEAD, decode_chunked, parse_head};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limit = 1usize << (selector % 17);
    match parse_head(input) {
        Ok(Some(head)) => {
            assert!(head.len <= MAX_HEAD && head.len <= input.len());
            // The status is the three digits of the status line, nothing looser.
            let digits = format!(" {:03}", head.status);
            assert!(head.status < 1000);
            assert!(
                input[..head.len].windows(4).any(|w| w == digits.as_bytes()),
                "status {} is not written as three digits",
                head.status
            );
            let raw = &input[head.len..];
            if head.framing == Framing::Chunked {
                check_chunked(raw, limit);
            }
        }
        Ok(None) => assert!(input.len() <= MAX_HEAD),
        Err(_) => {}
    }
    // The same bytes as a chunked body on their own.
    check_chunked(input, limit);

    // And as a URL, absolute and relative to a description URL.
    if let Ok(text) = std::str::from_utf8(input) {
        if let Ok(url) = HttpUrl::parse(text) {
            assert_eq!(HttpUrl::parse(&url.to_string()), Ok(url));
        }
        let base = HttpUrl::parse("http://192.168.77.1:2869/rootDesc.xml").unwrap();
        if let Ok(joined) = base.join(text) {
            assert!(joined.path.starts_with('/'));
            assert_eq!(HttpUrl::parse(&joined.to_string()), Ok(joined));
        }
    }
});

fn check_chunked(raw: &[u8], limit: usize) {
    match decode_chunked(raw, limit) {
        Ok(Some(body)) => {
            assert!(body.len() <= limit);
            assert!(body.len() <= raw.len());
        }
        Ok(None) => {}
        Err(HttpError::BodyTooLarge { limit: l }) => assert_eq!(l, limit),
        Err(_) => {}
    }
}
