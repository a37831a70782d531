//! The sans-IO server: one datagram in, at most one datagram out.

use std::net::SocketAddr;
use std::time::Instant;

use super::config::ServerConfig;
use super::counters::ServerCounters;
use super::rate_limit::RateLimiter;
use super::sockets::{SocketIndex, SocketMap};
use crate::attr::{
    ATTR_HEADER_LEN, AttrType, ChangeRequest, ChangedAddress, EncodeAttribute, ErrorCode,
    MappedAddress, OtherAddress, Padding, ResponseOrigin, ResponsePort, Software, SourceAddress,
    UnknownAttributes, XorMappedAddress,
};
use crate::{Class, Error, Message, MessageBuilder, Method};

/// Most attribute types listed in one UNKNOWN-ATTRIBUTES.
const MAX_UNKNOWN: usize = 16;
/// Size of FINGERPRINT on the wire.
const FINGERPRINT_LEN: usize = ATTR_HEADER_LEN + 4;

/// The STUN server's protocol core: answers Binding requests, sans-IO.
///
/// [`handle`](Self::handle) takes a datagram received on one of the server's sockets and
/// writes the answer, if any, into the caller's buffer, saying which socket must send it
/// and to whom. It never panics and never answers:
/// - anything that is not a well-formed Binding request, or whose attributes do not
///   decode, or whose FINGERPRINT is wrong;
/// - a source over its rate limit.
///
/// A request with unknown comprehension-required attributes, or asking for a change the
/// server cannot make (no alternate address), gets 420 (Unknown Attribute). A response
/// is never larger than its request plus the attributes the RFCs require in it
/// (mapped address, OTHER-ADDRESS / RESPONSE-ORIGIN or CHANGED-ADDRESS / SOURCE-ADDRESS,
/// FINGERPRINT when the request had one): SOFTWARE is added only within that budget,
/// and PADDING is echoed only up to the request's own size.
#[derive(Debug, Clone)]
pub struct ServerCore {
    map: SocketMap,
    software: Option<String>,
    limiter: RateLimiter,
    counters: ServerCounters,
}

/// What to send: from which socket, to whom, how many bytes of the output buffer.
pub type Reply = (SocketIndex, SocketAddr, usize);

impl ServerCore {
    /// A core for sockets laid out as `map` (after binding: the real ports).
    pub fn new(config: &ServerConfig, map: SocketMap) -> Result<ServerCore, Error> {
        config.validate()?;
        Ok(ServerCore {
            map,
            software: config.software.clone(),
            limiter: RateLimiter::new(config.rate_limit),
            counters: ServerCounters::default(),
        })
    }

    /// The socket layout.
    pub fn sockets(&self) -> &SocketMap {
        &self.map
    }

    /// What the server saw so far.
    pub fn counters(&self) -> ServerCounters {
        self.counters
    }

    /// Handles `bytes` received from `src` on socket `local`; writes the answer into
    /// `out` (1500 bytes is plenty unless PADDING is echoed) and returns the socket to
    /// send it from, the destination and its length — or `None` to send nothing.
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketIndex,
        src: SocketAddr,
        bytes: &[u8],
        out: &mut [u8],
    ) -> Option<Reply> {
        self.counters.received += 1;
        let reply = self.judge(now, local, src, bytes, out);
        match reply {
            Ok(r) => Some(r),
            Err(drop) => {
                let c = &mut self.counters;
                match drop {
                    Drop::Malformed => c.dropped_malformed += 1,
                    Drop::NotBindingRequest => c.dropped_not_binding_request += 1,
                    Drop::BadFingerprint => c.dropped_bad_fingerprint += 1,
                    Drop::RateLimited => c.dropped_rate_limited += 1,
                    Drop::Other => c.dropped_other += 1,
                }
                None
            }
        }
    }

    fn judge(
        &mut self,
        now: Instant,
        local: SocketIndex,
        src: SocketAddr,
        bytes: &[u8],
        out: &mut [u8],
    ) -> Result<Reply, Drop> {
        if local >= self.map.len() {
            return Err(Drop::Other);
        }
        let msg = Message::new_checked(bytes).map_err(|_| Drop::Malformed)?;
        if msg.class() != Class::Request || msg.method() != Method::BINDING {
            return Err(Drop::NotBindingRequest);
        }
        // One walk over the attributes that count; decoding waits for the FINGERPRINT
        // check, so a corrupted datagram counts as that and not as malformed.
        let mut has_fingerprint = false;
        let (mut change, mut response_port, mut padding) = (None, None, None);
        let mut unknown = [AttrType(0); MAX_UNKNOWN];
        let mut n_unknown = 0;
        for a in msg.attributes() {
            match a.attr_type() {
                AttrType::FINGERPRINT => has_fingerprint = true,
                AttrType::CHANGE_REQUEST => {
                    change.get_or_insert(a);
                }
                AttrType::RESPONSE_PORT => {
                    response_port.get_or_insert(a);
                }
                AttrType::PADDING => {
                    padding.get_or_insert(a);
                }
                t if t.is_comprehension_required()
                    && !t.is_known()
                    && n_unknown < MAX_UNKNOWN
                    && !unknown[..n_unknown].contains(&t) =>
                {
                    unknown[n_unknown] = t;
                    n_unknown += 1;
                }
                _ => {}
            }
        }
        if has_fingerprint && msg.check_fingerprint().is_err() {
            return Err(Drop::BadFingerprint);
        }
        let ctx = msg.context();
        let change = change
            .map(|a| a.decode::<ChangeRequest>(&ctx))
            .transpose()
            .map_err(|_| Drop::Malformed)?;
        let response_port = response_port
            .map(|a| a.decode::<ResponsePort>(&ctx))
            .transpose()
            .map_err(|_| Drop::Malformed)?;
        if response_port.is_some_and(|p| p.0 == 0) {
            return Err(Drop::Malformed);
        }
        let padding = padding
            .map(|a| a.decode::<Padding>(&ctx))
            .transpose()
            .map_err(|_| Drop::Malformed)?;
        if !self.limiter.allow(src.ip(), now) {
            return Err(Drop::RateLimited);
        }
        let fp = if has_fingerprint { FINGERPRINT_LEN } else { 0 };
        if n_unknown > 0 {
            let len = error_420(&msg, out, &unknown[..n_unknown], has_fingerprint)
                .map_err(|_| Drop::Other)?;
            self.counters.unknown_attribute_errors += 1;
            return Ok((local, src, len));
        }
        let change = change.unwrap_or_default();
        let Some(reply_from) = self
            .map
            .changed(local, change.change_ip, change.change_port)
        else {
            let len = error_420(&msg, out, &[AttrType::CHANGE_REQUEST], has_fingerprint)
                .map_err(|_| Drop::Other)?;
            self.counters.unknown_attribute_errors += 1;
            return Ok((local, src, len));
        };
        let dst = response_port.map_or(src, |p| SocketAddr::new(src.ip(), p.0));
        let origin = self.map.advertised(reply_from).ok_or(Drop::Other)?;
        let other = self.map.other_of(local);
        let len = self
            .success(&msg, out, src, origin, other, padding, fp, bytes.len())
            .map_err(|_| Drop::Other)?;
        self.counters.answered += 1;
        if reply_from != local || dst != src {
            self.counters.answered_changed += 1;
        }
        Ok((reply_from, dst, len))
    }

    /// Writes a success response; returns its length.
    #[allow(clippy::too_many_arguments)]
    fn success(
        &self,
        req: &Message<'_>,
        out: &mut [u8],
        src: SocketAddr,
        origin: SocketAddr,
        other: Option<SocketAddr>,
        padding: Option<Padding>,
        fp: usize,
        request_len: usize,
    ) -> Result<usize, Error> {
        let capacity = out.len();
        let mut b = MessageBuilder::response_to(out, req, Class::SuccessResponse)?;
        if req.has_magic_cookie() {
            b.add_attr(&XorMappedAddress(src))?;
            if let Some(o) = other {
                b.add_attr(&OtherAddress(o))?;
                b.add_attr(&ResponseOrigin(origin))?;
            }
        } else {
            b.add_attr(&MappedAddress(src))?;
            b.add_attr(&SourceAddress(origin))?;
            if let Some(o) = other {
                b.add_attr(&ChangedAddress(o))?;
            }
        }
        // Everything so far (and FINGERPRINT) is required; the rest must fit the budget.
        let budget = request_len + (b.len() - crate::HEADER_LEN) + fp;
        if let Some(sw) = self.software.as_deref().and_then(|s| Software::new(s).ok())
            && b.len() + sw.buffer_len() + fp <= budget
        {
            b.add_attr(&sw)?;
        }
        if padding.is_some() {
            // Echo PADDING only up to the request's own size (RFC 5780 §7.6 asks for
            // fragmentation tests, not for amplification).
            let room = request_len
                .saturating_sub(b.len() + fp + ATTR_HEADER_LEN)
                .min(capacity.saturating_sub(b.len() + fp + ATTR_HEADER_LEN));
            let pad = u16::try_from(room & !3).unwrap_or(0);
            if pad > 0 {
                b.add_attr(&Padding(pad))?;
            }
        }
        if fp > 0 {
            b.finish_with_fingerprint()
        } else {
            Ok(b.finish())
        }
    }
}

/// Writes a 420 (Unknown Attribute) error response listing `unknown`.
fn error_420(
    req: &Message<'_>,
    out: &mut [u8],
    unknown: &[AttrType],
    fingerprint: bool,
) -> Result<usize, Error> {
    let mut b = MessageBuilder::response_to(out, req, Class::ErrorResponse)?;
    b.add_attr(&ErrorCode::new(420, "Unknown Attribute")?)?;
    b.add_attr(&UnknownAttributes::new(unknown))?;
    if fingerprint {
        b.finish_with_fingerprint()
    } else {
        Ok(b.finish())
    }
}

/// Why a datagram got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drop {
    Malformed,
    NotBindingRequest,
    BadFingerprint,
    RateLimited,
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::BindingRequest;
    use crate::{MAGIC_COOKIE, MessageType, TransactionId};
    use proptest::prelude::*;
    use std::net::SocketAddr;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    const CLIENT: &str = "198.51.100.7:40000";

    fn four() -> ServerCore {
        let cfg = ServerConfig::with_alternate(sa("10.0.0.1:3478"), sa("10.0.0.2:3479"));
        let map = SocketMap::four(
            cfg.primary,
            sa("10.0.0.2:3479"),
            Some("203.0.113.1".parse().expect("ip")),
            Some("203.0.113.2".parse().expect("ip")),
        );
        ServerCore::new(&cfg, map).expect("core")
    }

    fn single() -> ServerCore {
        let cfg = ServerConfig::new(sa("10.0.0.1:3478"));
        ServerCore::new(&cfg, SocketMap::single(cfg.primary, None)).expect("core")
    }

    /// An RFC 5780 server on two IPv6 addresses (the lab's STUN1_6 and STUN2_6).
    fn four6() -> ServerCore {
        let (p, a) = (
            sa("[2a0d:88:77:66::10]:3478"),
            sa("[2a0d:88:77:66::11]:3479"),
        );
        let cfg = ServerConfig::with_alternate(p, a);
        ServerCore::new(&cfg, SocketMap::four(p, a, None, None)).expect("core")
    }

    const CLIENT6: &str = "[2a0d:88:77:77::2]:40000";

    fn req(r: &BindingRequest) -> Vec<u8> {
        r.encode(TransactionId::new([4; 12]), 0x0102_0304)
            .expect("encode")
    }

    /// The attribute types a 420 answer lists as unknown.
    fn unknown_listed(m: &Message<'_>) -> Vec<AttrType> {
        m.get::<UnknownAttributes<'_>>()
            .expect("ok")
            .expect("present")
            .iter()
            .collect()
    }

    /// `resp` is a valid success response.
    fn assert_success(resp: &[u8]) {
        assert_eq!(
            Message::new_checked(resp).expect("valid").class(),
            Class::SuccessResponse
        );
    }

    fn ask(core: &mut ServerCore, local: usize, bytes: &[u8]) -> Option<(Reply, Vec<u8>)> {
        let mut out = vec![0u8; 1500];
        let now = Instant::now();
        core.handle(now, local, sa(CLIENT), bytes, &mut out)
            .map(|r| (r, out[..r.2].to_vec()))
    }

    #[test]
    fn plain_server_answers_with_xor_mapped_address_and_fingerprint() {
        let mut core = single();
        let ((from, to, _), resp) =
            ask(&mut core, 0, &req(&BindingRequest::new())).expect("answer");
        assert_eq!((from, to), (0, sa(CLIENT)));
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(m.message_type(), MessageType::BINDING_SUCCESS);
        assert_eq!(m.transaction_id(), TransactionId::new([4; 12]));
        assert_eq!(m.xor_mapped_address(), Ok(Some(sa(CLIENT))));
        assert_eq!(m.check_fingerprint(), Ok(()));
        assert_eq!(m.get::<OtherAddress>(), Ok(None));
        assert_eq!(m.mapped_address(), Ok(None));
        // No FINGERPRINT asked, none given.
        let ((_, _, _), resp) = ask(
            &mut core,
            0,
            &req(&BindingRequest {
                no_fingerprint: true,
                ..BindingRequest::new()
            }),
        )
        .expect("answer");
        assert!(
            !Message::new_checked(&resp)
                .expect("valid")
                .has_fingerprint()
        );
        assert_eq!(core.counters().answered, 2);
    }

    #[test]
    fn change_request_picks_the_socket_and_attributes_advertise() {
        let mut core = four();
        for (local, ip, port, want) in [
            (0, false, false, 0),
            (0, true, true, 3),
            (0, false, true, 1),
            (0, true, false, 2),
            (3, true, true, 0),
            (1, true, false, 3),
        ] {
            let ((from, to, _), resp) = ask(
                &mut core,
                local,
                &req(&BindingRequest::with_change(ip, port)),
            )
            .expect("answer");
            assert_eq!(
                (from, to),
                (want, sa(CLIENT)),
                "local {local} change {ip}/{port}"
            );
            let m = Message::new_checked(&resp).expect("valid");
            assert_eq!(
                m.get::<ResponseOrigin>().expect("ok").map(|a| a.0),
                core.sockets().advertised(want)
            );
            assert_eq!(
                m.get::<OtherAddress>().expect("ok").map(|a| a.0),
                core.sockets().other_of(local)
            );
        }
        let ((_, _, _), resp) = ask(&mut core, 0, &req(&BindingRequest::new())).expect("answer");
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(
            m.get::<OtherAddress>(),
            Ok(Some(OtherAddress(sa("203.0.113.2:3479"))))
        );
        assert_eq!(
            m.get::<ResponseOrigin>(),
            Ok(Some(ResponseOrigin(sa("203.0.113.1:3478"))))
        );
        assert_eq!(core.counters().answered_changed, 5);
    }

    #[test]
    fn ipv6_change_request_and_address_families() {
        let mut core = four6();
        let mut out = vec![0u8; 1500];
        for (local, ip, port, want) in [
            (0, false, false, 0),
            (0, true, true, 3),
            (0, false, true, 1),
            (0, true, false, 2),
            (2, true, true, 1),
        ] {
            let r = req(&BindingRequest::with_change(ip, port));
            let (from, to, n) = core
                .handle(Instant::now(), local, sa(CLIENT6), &r, &mut out)
                .expect("answer");
            assert_eq!((from, to), (want, sa(CLIENT6)), "local {local} {ip}/{port}");
            let m = Message::new_checked(&out[..n]).expect("valid");
            // Family 0x02 on the wire for all three addresses, XORed with the cookie
            // and the transaction id for the mapped one.
            assert_eq!(m.xor_mapped_address(), Ok(Some(sa(CLIENT6))));
            let origin = m.get::<ResponseOrigin>().expect("ok").map(|a| a.0);
            assert_eq!(origin, core.sockets().advertised(want));
            let other = m.get::<OtherAddress>().expect("ok").map(|a| a.0);
            assert_eq!(other, core.sockets().other_of(local));
            assert!(origin.is_some_and(|a| a.is_ipv6()) && other.is_some_and(|a| a.is_ipv6()));
            for a in m.attributes() {
                if [
                    AttrType::XOR_MAPPED_ADDRESS,
                    AttrType::OTHER_ADDRESS,
                    AttrType::RESPONSE_ORIGIN,
                ]
                .contains(&a.attr_type())
                {
                    assert_eq!(a.value().len(), 20);
                    assert_eq!(a.value()[1], 0x02);
                }
            }
        }
        assert_eq!(
            core.sockets().other_of(0),
            Some(sa("[2a0d:88:77:66::11]:3479"))
        );
        // A classic RFC 3489 client over IPv6: MAPPED-ADDRESS and CHANGED-ADDRESS in
        // the IPv6 family too.
        let r = req(&BindingRequest {
            rfc3489: true,
            ..BindingRequest::with_change(true, false)
        });
        let (from, _, n) = core
            .handle(Instant::now(), 0, sa(CLIENT6), &r, &mut out)
            .expect("answer");
        assert_eq!(from, 2);
        let m = Message::new_checked(&out[..n]).expect("valid");
        assert_eq!(m.mapped_address(), Ok(Some(sa(CLIENT6))));
        assert_eq!(
            m.get::<ChangedAddress>(),
            Ok(Some(ChangedAddress(sa("[2a0d:88:77:66::11]:3479"))))
        );
    }

    #[test]
    fn rfc3489_clients_get_mapped_source_and_changed_address() {
        let mut core = four();
        let r = req(&BindingRequest {
            rfc3489: true,
            ..BindingRequest::with_change(false, true)
        });
        let ((from, _, _), resp) = ask(&mut core, 0, &r).expect("answer");
        assert_eq!(from, 1);
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(m.cookie(), 0x0102_0304);
        assert_eq!(
            m.legacy_transaction_id(),
            Message::new_checked(&r)
                .expect("req")
                .legacy_transaction_id()
        );
        assert_eq!(m.mapped_address(), Ok(Some(sa(CLIENT))));
        assert_eq!(m.xor_mapped_address(), Ok(None));
        assert_eq!(
            m.get::<SourceAddress>(),
            Ok(Some(SourceAddress(sa("203.0.113.1:3479"))))
        );
        assert_eq!(
            m.get::<ChangedAddress>(),
            Ok(Some(ChangedAddress(sa("203.0.113.2:3479"))))
        );
        assert!(!m.has_fingerprint());
    }

    #[test]
    fn response_port_redirects_the_answer() {
        let mut core = four();
        let r = req(&BindingRequest {
            response_port: Some(5555),
            ..BindingRequest::new()
        });
        let ((from, to, _), resp) = ask(&mut core, 0, &r).expect("answer");
        assert_eq!((from, to), (0, sa("198.51.100.7:5555")));
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(m.xor_mapped_address(), Ok(Some(sa(CLIENT))));
        let zero = req(&BindingRequest {
            response_port: Some(0),
            ..BindingRequest::new()
        });
        assert!(ask(&mut core, 0, &zero).is_none());
    }

    #[test]
    fn unknown_comprehension_required_attributes_get_420() {
        let mut core = four();
        let mut buf = [0u8; 128];
        let mut b = MessageBuilder::new(
            &mut buf,
            Class::Request,
            Method::BINDING,
            TransactionId::new([5; 12]),
        )
        .expect("fits");
        b.add_raw(AttrType(0x7f01), &[1, 2, 3]).expect("fits");
        b.add_raw(AttrType(0x7f01), &[1]).expect("fits");
        b.add_raw(AttrType(0x0002), &[0; 8]).expect("fits"); // RESPONSE-ADDRESS: not served
        b.add_raw(AttrType(0xc001), &[9]).expect("fits"); // optional: ignored
        let n = b.finish_with_fingerprint().expect("fits");
        let ((from, to, _), resp) = ask(&mut core, 2, &buf[..n]).expect("answer");
        assert_eq!((from, to), (2, sa(CLIENT)));
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(m.message_type(), MessageType::BINDING_ERROR);
        assert_eq!(m.error_code().expect("ok").map(|e| e.code()), Some(420));
        let listed = unknown_listed(&m);
        assert_eq!(listed, [AttrType(0x7f01), AttrType(0x0002)]);
        assert_eq!(m.check_fingerprint(), Ok(()));

        // Only optional unknowns: answered.
        let mut b = MessageBuilder::new(
            &mut buf,
            Class::Request,
            Method::BINDING,
            TransactionId::new([5; 12]),
        )
        .expect("fits");
        b.add_raw(AttrType(0xc001), &[9]).expect("fits");
        let n = b.finish();
        let (_, resp) = ask(&mut core, 0, &buf[..n]).expect("answer");
        assert_success(&resp);
    }

    #[test]
    fn change_without_alternate_is_420() {
        let mut core = single();
        let (_, resp) = ask(
            &mut core,
            0,
            &req(&BindingRequest::with_change(true, false)),
        )
        .expect("answer");
        let m = Message::new_checked(&resp).expect("valid");
        assert_eq!(m.error_code().expect("ok").map(|e| e.code()), Some(420));
        let listed = unknown_listed(&m);
        assert_eq!(listed, [AttrType::CHANGE_REQUEST]);
        // Flags 0 is no change: answered.
        let (_, resp) = ask(
            &mut core,
            0,
            &req(&BindingRequest::with_change(false, false)),
        )
        .expect("answer");
        assert_success(&resp);
    }

    #[test]
    fn bad_input_gets_no_answer_and_is_counted() {
        let mut core = four();
        let good = req(&BindingRequest::new());
        assert!(ask(&mut core, 0, b"").is_none());
        assert!(ask(&mut core, 0, &good[..good.len() - 1]).is_none());
        let mut bad_fp = good.clone();
        let last = bad_fp.len() - 1;
        bad_fp[last] ^= 1;
        assert!(ask(&mut core, 0, &bad_fp).is_none());
        // A response, an indication, another method.
        for ty in [
            MessageType::BINDING_SUCCESS,
            MessageType::BINDING_INDICATION,
            MessageType::new(Class::Request, Method::SHARED_SECRET),
        ] {
            let mut buf = [0u8; 20];
            let n = MessageBuilder::with_cookie(
                &mut buf,
                ty,
                MAGIC_COOKIE,
                TransactionId::new([1; 12]),
            )
            .expect("fits")
            .finish();
            assert!(ask(&mut core, 0, &buf[..n]).is_none());
        }
        // CHANGE-REQUEST with a bad length.
        let mut buf = [0u8; 64];
        let mut b = MessageBuilder::new(
            &mut buf,
            Class::Request,
            Method::BINDING,
            TransactionId::new([5; 12]),
        )
        .expect("fits");
        b.add_raw(AttrType::CHANGE_REQUEST, &[0, 0, 6])
            .expect("fits");
        let n = b.finish();
        assert!(ask(&mut core, 0, &buf[..n]).is_none());
        // A socket index the server does not have.
        assert!(ask(&mut core, 4, &good).is_none());
        assert!(ask(&mut single(), 1, &good).is_none());
        let c = core.counters();
        assert_eq!(
            (
                c.dropped_malformed,
                c.dropped_bad_fingerprint,
                c.dropped_not_binding_request,
                c.dropped_other
            ),
            (3, 1, 3, 1)
        );
        assert_eq!(c.answered, 0);
    }

    #[test]
    fn rate_limit_per_source() {
        let mut cfg = ServerConfig::new(sa("10.0.0.1:3478"));
        cfg.rate_limit.burst = 2;
        cfg.rate_limit.per_second = 1.0;
        let mut core = ServerCore::new(&cfg, SocketMap::single(cfg.primary, None)).expect("core");
        let r = req(&BindingRequest::new());
        let t0 = Instant::now();
        let mut out = [0u8; 256];
        let mut answered = |core: &mut ServerCore, src: &str, t| {
            core.handle(t, 0, sa(src), &r, &mut out).is_some()
        };
        assert!(answered(&mut core, CLIENT, t0));
        assert!(answered(&mut core, CLIENT, t0));
        assert!(!answered(&mut core, CLIENT, t0));
        assert!(
            answered(&mut core, "198.51.100.8:1", t0),
            "another source has its own bucket"
        );
        assert!(answered(
            &mut core,
            CLIENT,
            t0 + std::time::Duration::from_secs(1)
        ));
        assert_eq!(core.counters().dropped_rate_limited, 1);
    }

    #[test]
    fn padding_is_echoed_only_up_to_the_request_size() {
        let mut core = four();
        let r = req(&BindingRequest {
            padding: Some(1000),
            ..BindingRequest::new()
        });
        let (_, resp) = ask(&mut core, 0, &r).expect("answer");
        assert!(resp.len() <= r.len(), "{} > {}", resp.len(), r.len());
        assert!(
            resp.len() + 8 >= r.len(),
            "padded to about the request's size"
        );
        let m = Message::new_checked(&resp).expect("valid");
        assert!(m.get::<Padding>().expect("ok").is_some());
        assert_eq!(m.check_fingerprint(), Ok(()));
    }

    /// Size of the attributes the RFCs require in a response to a request.
    fn required(cookie: bool, alternate: bool, fingerprint: bool, v6: bool) -> usize {
        let addr = if v6 { 24 } else { 12 };
        let n = if cookie {
            if alternate { 3 } else { 1 }
        } else if alternate {
            3
        } else {
            2
        };
        n * addr + if fingerprint { 8 } else { 0 }
    }

    proptest! {
        #[test]
        fn responses_are_never_much_larger_than_requests(
            padding in proptest::option::of(0u16..1400),
            software in proptest::option::of("[a-z]{0,40}"),
            change_ip in any::<bool>(), change_port in any::<bool>(),
            rfc3489 in any::<bool>(), no_fp in any::<bool>(), alternate in any::<bool>(),
            local in 0usize..4, v6 in any::<bool>(),
        ) {
            let mut core = match (alternate, v6) {
                (true, false) => four(),
                (true, true) => four6(),
                (false, _) => single(),
            };
            let client = if v6 { CLIENT6 } else { CLIENT };
            let local = if alternate { local } else { 0 };
            let r = req(&BindingRequest {
                change: Some(ChangeRequest { change_ip, change_port }),
                response_port: None, padding, software, no_fingerprint: no_fp, rfc3489,
            });
            let mut out = vec![0u8; 2048];
            if let Some((_, _, n)) = core.handle(Instant::now(), local, sa(client), &r, &mut out) {
                let m = Message::new_checked(&out[..n]).expect("valid response");
                let fp = !rfc3489 && !no_fp;
                if m.class() == Class::SuccessResponse {
                    prop_assert!(n <= r.len() + required(!rfc3489, alternate, fp, v6),
                        "response {} request {}", n, r.len());
                } else {
                    prop_assert!(!alternate && (change_ip || change_port));
                }
            } else {
                prop_assert!(false, "a valid request got no answer");
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                       local in 0usize..6) {
            let mut core = four();
            let mut out = [0u8; 512];
            let _ = core.handle(Instant::now(), local, sa(CLIENT), &bytes, &mut out);
            // A mutated valid request too.
            let mut r = req(&BindingRequest::with_change(true, true));
            for (i, b) in bytes.iter().enumerate() {
                let at = i % r.len();
                r[at] ^= b;
            }
            let _ = core.handle(Instant::now(), local, sa(CLIENT), &r, &mut out);
        }
    }
}
