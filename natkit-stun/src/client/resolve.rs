//! Looking STUN server names up: every name at once, each lookup bounded, so a dead
//! resolver costs one timeout, not one per server, and one name that does not
//! resolve never hides the others.

use super::RESOLVE_TIMEOUT;
use super::name::{ResolveFailure, ServerName};
use crate::Error;
use std::net::SocketAddr;

/// What the system's `getaddrinfo` message means. std gives no code for resolver
/// failures (they are all `ErrorKind::Uncategorized`), only glibc's or the platform's
/// text, so the common ones are recognised by it and the rest kept as said.
fn classify_failure(e: &std::io::Error) -> ResolveFailure {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("temporary failure in name resolution")
        || lower.contains("nodename nor servname provided, or not known")
            && lower.contains("try again")
    {
        ResolveFailure::DnsUnreachable
    } else if lower.contains("name or service not known")
        || lower.contains("nodename nor servname provided")
        || lower.contains("no such host")
    {
        ResolveFailure::NoSuchName
    } else if lower.contains("no address associated") {
        ResolveFailure::NoAddress
    } else {
        ResolveFailure::Other { message: text }
    }
}

/// Resolves one server name to an address (its first IPv4 one if it has any), within
/// [`RESOLVE_TIMEOUT`].
pub async fn resolve(name: &str) -> Result<SocketAddr, Error> {
    let failed = |failure| Error::Resolve {
        name: name.to_owned(),
        failure,
    };
    let (host, port) = match ServerName::parse(name).map_err(failed)? {
        ServerName::Addr(a) => return Ok(a),
        ServerName::Host(host, port) => (host, port),
    };
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let mut addrs = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Err(_) => return Err(failed(ResolveFailure::TimedOut)),
        Ok(Err(e)) => return Err(failed(classify_failure(&e))),
        Ok(Ok(addrs)) => addrs,
    };
    // IPv4 first: NATs, and so everything natkit measures with STUN, are IPv4; a
    // dual-stack resolver may list the IPv6 address first.
    let all: Vec<SocketAddr> = addrs.by_ref().collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| failed(ResolveFailure::NoAddress))
}

/// Resolves every name at once; one result per name, in order.
pub async fn resolve_all(names: &[String]) -> Vec<Result<SocketAddr, Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.clone();
        tasks.spawn(async move { (i, resolve(&name).await) });
    }
    let mut out: Vec<Option<Result<SocketAddr, Error>>> = vec![None; names.len()];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = Some(r);
        }
    }
    out.into_iter()
        .zip(names)
        .map(|(r, name)| {
            r.unwrap_or_else(|| {
                Err(Error::Resolve {
                    name: name.clone(),
                    failure: ResolveFailure::Other {
                        message: "the lookup task ended without an answer".into(),
                    },
                })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ResolveFailure;

    #[test]
    fn resolver_messages_become_failures() {
        let e = |m: &str| std::io::Error::other(m.to_owned());
        assert_eq!(
            classify_failure(&e(
                "failed to lookup address information: Temporary failure in name resolution"
            )),
            ResolveFailure::DnsUnreachable
        );
        assert_eq!(
            classify_failure(&e(
                "failed to lookup address information: Name or service not known"
            )),
            ResolveFailure::NoSuchName
        );
        assert!(matches!(
            classify_failure(&e("something new")),
            ResolveFailure::Other { message } if message == "something new"
        ));
    }

    #[tokio::test]
    async fn names_resolve_with_a_default_port() {
        // Addresses and /etc/hosts only: no query leaves the machine.
        assert_eq!(
            resolve("127.0.0.1").await,
            Ok("127.0.0.1:3478".parse().expect("addr"))
        );
        assert_eq!(resolve("localhost:9").await.map(|a| a.port()), Ok(9));
    }

    #[tokio::test]
    async fn addresses_need_no_resolver_and_bad_names_fail_alone() {
        let names = vec!["127.0.0.1:3478".to_owned(), "not a name".to_owned()];
        let r = resolve_all(&names).await;
        assert_eq!(r[0], Ok("127.0.0.1:3478".parse().expect("addr")));
        assert!(matches!(
            &r[1],
            Err(Error::Resolve { name, failure: ResolveFailure::BadName }) if name == "not a name"
        ));
    }
}
