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

/// Looks `host` up with the system resolver on a thread of its own. Not on tokio's
/// blocking pool: a runtime waits for its blocking tasks when it is dropped, so a lookup
/// that outlives [`RESOLVE_TIMEOUT`] would hold a program's exit until the resolver
/// gives up (glibc waits 5 s × 2 for a silent server: `natkit nat-type` printed its
/// error at 3 s and exited at 10 s). A detached thread ends with the process.
fn lookup(
    host: String,
    port: u16,
) -> std::io::Result<tokio::sync::oneshot::Receiver<std::io::Result<Vec<SocketAddr>>>> {
    use std::net::ToSocketAddrs;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("natkit-resolve".into())
        .spawn(move || {
            let found = (host.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect);
            // The caller may have timed out and gone: nothing to tell then.
            let _ = tx.send(found);
        })?;
    Ok(rx)
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
    let other = |message: String| failed(ResolveFailure::Other { message });
    let pending =
        lookup(host, port).map_err(|e| other(format!("cannot start the lookup thread: {e}")))?;
    let all = match tokio::time::timeout(RESOLVE_TIMEOUT, pending).await {
        Err(_) => return Err(failed(ResolveFailure::TimedOut)),
        Ok(Err(_)) => return Err(other("the lookup thread ended without an answer".into())),
        Ok(Ok(Err(e))) => return Err(failed(classify_failure(&e))),
        Ok(Ok(Ok(addrs))) => addrs,
    };
    // IPv4 first: NATs, and so everything natkit measures with STUN, are IPv4; a
    // dual-stack resolver may list the IPv6 address first.
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
