//! The small subset of HTTP URLs UPnP needs: `http://IPv4[:port]/path`.
//!
//! LOCATION headers and control URLs come from untrusted devices; only
//! literal IPv4 hosts are accepted (an IGD on the LAN has no reason to send
//! a name, and resolving one would let a device point us anywhere).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 1024;

/// An `http://` URL with a literal IPv4 host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl {
    /// Host address and port (80 when the URL has none).
    pub addr: SocketAddrV4,
    /// Path and query, always starting with `/`.
    pub path: String,
}

/// Why a URL was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Empty, or longer than [`MAX_URL_LEN`].
    #[error("URL is empty or longer than {MAX_URL_LEN} bytes")]
    Length,
    /// Not an `http://` URL (https and other schemes are not used by IGDs).
    #[error("URL scheme is not http")]
    NotHttp,
    /// The host is not a literal IPv4 address.
    #[error("URL host is not a literal IPv4 address")]
    HostNotIpv4,
    /// The port is not a number from 1 to 65535.
    #[error("URL port is invalid")]
    BadPort,
    /// Whitespace, control characters, user info or a fragment.
    #[error("URL contains characters or parts that are not allowed")]
    BadCharacters,
}

impl HttpUrl {
    /// Parses an absolute `http://a.b.c.d[:port][/path]` URL.
    pub fn parse(s: &str) -> Result<HttpUrl, UrlError> {
        check_chars(s)?;
        let rest = strip_prefix_ignore_case(s, "http://").ok_or(UrlError::NotHttp)?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || path.contains('#') {
            return Err(UrlError::BadCharacters);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => {
                let port: u16 = p.parse().map_err(|_| UrlError::BadPort)?;
                if port == 0 || p.starts_with('+') {
                    return Err(UrlError::BadPort);
                }
                (h, port)
            }
            None => (authority, 80),
        };
        let ip: Ipv4Addr = host.parse().map_err(|_| UrlError::HostNotIpv4)?;
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        HttpUrl {
            addr: SocketAddrV4::new(ip, port),
            path,
        }
        .bounded()
    }

    /// Resolves `reference` (an absolute URL, an absolute path or a path
    /// relative to this URL's directory) against this URL.
    pub fn join(&self, reference: &str) -> Result<HttpUrl, UrlError> {
        check_chars(reference)?;
        if strip_prefix_ignore_case(reference, "http://").is_some() {
            return HttpUrl::parse(reference);
        }
        if reference.contains("://") || reference.starts_with("//") {
            return Err(UrlError::NotHttp);
        }
        if reference.contains('#') {
            return Err(UrlError::BadCharacters);
        }
        let path = if reference.starts_with('/') {
            reference.to_owned()
        } else {
            let dir_end = self.path.split(['?']).next().unwrap_or("/");
            let dir = &dir_end[..dir_end.rfind('/').map_or(0, |i| i + 1)];
            let joined = format!("{dir}{reference}");
            if joined.len() > MAX_URL_LEN {
                return Err(UrlError::Length);
            }
            joined
        };
        HttpUrl {
            addr: self.addr,
            path,
        }
        .bounded()
    }

    /// Refuses a URL whose printed form (with the port and leading `/` filled in)
    /// exceeds [`MAX_URL_LEN`]: it is handed on as text (to igd-next) and parsed
    /// again, and must not fail there after passing here.
    fn bounded(self) -> Result<HttpUrl, UrlError> {
        let printed = "http://".len() + self.addr.to_string().len() + self.path.len();
        if printed > MAX_URL_LEN {
            return Err(UrlError::Length);
        }
        Ok(self)
    }

    /// The host address.
    pub fn ip(&self) -> Ipv4Addr {
        *self.addr.ip()
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.addr, self.path)
    }
}

fn check_chars(s: &str) -> Result<(), UrlError> {
    if s.is_empty() || s.len() > MAX_URL_LEN {
        return Err(UrlError::Length);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlError::BadCharacters);
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_location() {
        let u = HttpUrl::parse("http://192.168.77.1:5000/rootDesc.xml").unwrap();
        assert_eq!(u.addr, "192.168.77.1:5000".parse().unwrap());
        assert_eq!(u.path, "/rootDesc.xml");
        assert_eq!(u.to_string(), "http://192.168.77.1:5000/rootDesc.xml");
        let u = HttpUrl::parse("HTTP://10.0.0.1").unwrap();
        assert_eq!(u.addr.port(), 80);
        assert_eq!(u.path, "/");
        let u = HttpUrl::parse("http://10.0.0.1:49152?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
    }

    #[test]
    fn refuses_what_an_igd_never_needs() {
        assert_eq!(HttpUrl::parse("https://10.0.0.1/"), Err(UrlError::NotHttp));
        assert_eq!(
            HttpUrl::parse("http://router.lan/"),
            Err(UrlError::HostNotIpv4)
        );
        assert_eq!(
            HttpUrl::parse("http://[fe80::1]:80/"),
            Err(UrlError::HostNotIpv4)
        );
        assert_eq!(HttpUrl::parse("http://10.0.0.1:0/"), Err(UrlError::BadPort));
        assert_eq!(
            HttpUrl::parse("http://10.0.0.1:99999/"),
            Err(UrlError::BadPort)
        );
        assert_eq!(
            HttpUrl::parse("http://u@10.0.0.1/"),
            Err(UrlError::BadCharacters)
        );
        assert_eq!(
            HttpUrl::parse("http://10.0.0.1/a b"),
            Err(UrlError::BadCharacters)
        );
        assert_eq!(HttpUrl::parse(""), Err(UrlError::Length));
        let long = format!("http://10.0.0.1/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(HttpUrl::parse(&long), Err(UrlError::Length));
    }

    #[test]
    fn printed_urls_parse_again() {
        // A URL is refused unless its printed form (with the host) fits the limit:
        // igd-next re-parses the printed control URL, and every action on one over
        // the limit would fail. (A fuzz finding: a relative URL that joined to a path
        // just under the limit.)
        let base = HttpUrl::parse("http://192.168.77.1:2869/rootDesc.xml").unwrap();
        let long = "c".repeat(MAX_URL_LEN - 20);
        assert_eq!(base.join(&long), Err(UrlError::Length));
        let no_port = format!("http://192.168.77.1/{}", "p".repeat(MAX_URL_LEN - 20));
        assert_eq!(HttpUrl::parse(&no_port), Err(UrlError::Length));
        let fits = base.join(&"c".repeat(MAX_URL_LEN - 40)).unwrap();
        assert_eq!(HttpUrl::parse(&fits.to_string()), Ok(fits));
    }

    #[test]
    fn joins_control_urls() {
        let base = HttpUrl::parse("http://192.168.1.1:5000/dev/rootDesc.xml").unwrap();
        assert_eq!(base.join("/ctl/IPConn").unwrap().path, "/ctl/IPConn");
        assert_eq!(base.join("ctl/IPConn").unwrap().path, "/dev/ctl/IPConn");
        let abs = base.join("http://192.168.1.1:5001/ctl").unwrap();
        assert_eq!(abs.addr.port(), 5001);
        assert_eq!(base.join("ftp://x/"), Err(UrlError::NotHttp));
        assert_eq!(base.join("//evil/x"), Err(UrlError::NotHttp));
    }
}
