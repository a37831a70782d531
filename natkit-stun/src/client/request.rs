//! What a Binding request asks for, and its encoding.

use crate::attr::{ChangeRequest, Padding, ResponsePort, Software};
use crate::{Error, MAGIC_COOKIE, MessageBuilder, MessageType, TransactionId};

/// The contents of a Binding request.
///
/// The default is a plain RFC 8489 request with FINGERPRINT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingRequest {
    /// CHANGE-REQUEST (RFC 5780 §7.2): ask the server to answer from its other address
    /// and/or port. `None` sends no CHANGE-REQUEST.
    pub change: Option<ChangeRequest>,
    /// RESPONSE-PORT (RFC 5780 §7.5): ask for the answer on this port.
    pub response_port: Option<u16>,
    /// PADDING of this many bytes (RFC 5780 §7.6).
    pub padding: Option<u16>,
    /// SOFTWARE to send, if any.
    pub software: Option<String>,
    /// Omit FINGERPRINT (sent by default).
    pub no_fingerprint: bool,
    /// Send an RFC 3489 request: no magic cookie (a random 128-bit transaction id) and
    /// no FINGERPRINT, for servers that predate RFC 5389.
    pub rfc3489: bool,
}

impl BindingRequest {
    /// A plain Binding request.
    pub fn new() -> Self {
        Self::default()
    }

    /// A request with CHANGE-REQUEST.
    pub fn with_change(change_ip: bool, change_port: bool) -> Self {
        BindingRequest {
            change: Some(ChangeRequest {
                change_ip,
                change_port,
            }),
            ..Self::default()
        }
    }

    /// Writes the request with transaction id `tid` and, for RFC 3489 requests, the
    /// first 32 bits of the 128-bit id `legacy_cookie`; returns the encoded bytes.
    pub fn encode(&self, tid: TransactionId, legacy_cookie: u32) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; self.upper_bound()];
        let cookie = if self.rfc3489 {
            legacy_cookie
        } else {
            MAGIC_COOKIE
        };
        let mut b =
            MessageBuilder::with_cookie(&mut buf, MessageType::BINDING_REQUEST, cookie, tid)?;
        if let Some(change) = self.change {
            b.add_attr(&change)?;
        }
        if let Some(port) = self.response_port {
            b.add_attr(&ResponsePort(port))?;
        }
        if let Some(sw) = &self.software {
            b.add_attr(&Software::new(sw)?)?;
        }
        if let Some(n) = self.padding {
            b.add_attr(&Padding(n))?;
        }
        let len = if self.rfc3489 || self.no_fingerprint {
            b.finish()
        } else {
            b.finish_with_fingerprint()?
        };
        buf.truncate(len);
        Ok(buf)
    }

    fn upper_bound(&self) -> usize {
        let sw = self.software.as_ref().map_or(0, |s| 4 + s.len() + 3);
        let pad = self.padding.map_or(0, |n| 4 + usize::from(n) + 3);
        20 + 8 + 8 + sw + pad + 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::AttrType;
    use crate::{Class, Message, Method};

    #[test]
    fn plain_request_has_fingerprint() {
        let tid = TransactionId::new([9; 12]);
        let bytes = BindingRequest::new().encode(tid, 0).expect("encode");
        let m = Message::new_checked(&bytes).expect("valid");
        assert_eq!((m.class(), m.method()), (Class::Request, Method::BINDING));
        assert!(m.has_magic_cookie());
        assert_eq!(m.transaction_id(), tid);
        assert_eq!(m.check_fingerprint(), Ok(()));
        assert_eq!(bytes.len(), 28);
    }

    #[test]
    fn every_option_is_encoded() {
        let req = BindingRequest {
            change: Some(ChangeRequest {
                change_ip: true,
                change_port: false,
            }),
            response_port: Some(4242),
            padding: Some(5),
            software: Some("natkit test".into()),
            no_fingerprint: false,
            rfc3489: false,
        };
        let bytes = req.encode(TransactionId::new([1; 12]), 0).expect("encode");
        let m = Message::new_checked(&bytes).expect("valid");
        assert_eq!(
            m.get::<ChangeRequest>().expect("ok").map(|c| c.change_ip),
            Some(true)
        );
        assert_eq!(m.get::<ResponsePort>(), Ok(Some(ResponsePort(4242))));
        assert_eq!(m.get::<Padding>(), Ok(Some(Padding(5))));
        assert!(m.raw_attribute(AttrType::SOFTWARE).is_some());
        assert_eq!(m.check_fingerprint(), Ok(()));
    }

    #[test]
    fn rfc3489_request_has_no_cookie() {
        let req = BindingRequest {
            rfc3489: true,
            ..BindingRequest::new()
        };
        let bytes = req
            .encode(TransactionId::new([2; 12]), 0xdead_beef)
            .expect("encode");
        let m = Message::new_checked(&bytes).expect("valid");
        assert!(!m.has_magic_cookie());
        assert_eq!(m.cookie(), 0xdead_beef);
        assert!(!m.has_fingerprint());
    }
}
