//! Looking STUN server names up: every name at once, each lookup bounded, so a dead
//! resolver costs one timeout, not one per server, and one name that does not
//! resolve never hides the others.

use super::RESOLVE_TIMEOUT;
use super::family::IpFamily;
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

/// Every address of one server name (one lookup, A and AAAA at once), within
/// [`RESOLVE_TIMEOUT`], in the resolver's order.
pub async fn resolve_every(name: &str) -> Result<Vec<SocketAddr>, Error> {
    let failed = |failure| Error::Resolve {
        name: name.to_owned(),
        failure,
    };
    let (host, port) = match ServerName::parse(name).map_err(failed)? {
        ServerName::Addr(a) => return Ok(vec![a]),
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
    if all.is_empty() {
        return Err(failed(ResolveFailure::NoAddress));
    }
    Ok(all)
}

/// Resolves one server name to an address (its first IPv4 one if it has any), within
/// [`RESOLVE_TIMEOUT`].
pub async fn resolve(name: &str) -> Result<SocketAddr, Error> {
    let all = resolve_every(name).await?;
    // IPv4 first when no family is asked for: most NATs, and so most of what natkit
    // measures with STUN, are IPv4; a dual-stack resolver may list IPv6 first.
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| Error::Resolve {
            name: name.to_owned(),
            failure: ResolveFailure::NoAddress,
        })
}

/// Resolves one server name to its first address of `family`.
pub async fn resolve_in(name: &str, family: IpFamily) -> Result<SocketAddr, Error> {
    pick(name, &resolve_every(name).await?, family)
}

/// The first of `all` (the addresses of `name`) in `family`.
fn pick(name: &str, all: &[SocketAddr], family: IpFamily) -> Result<SocketAddr, Error> {
    all.iter()
        .find(|a| family.has(a))
        .copied()
        .ok_or_else(|| Error::Resolve {
            name: name.to_owned(),
            failure: ResolveFailure::NoAddressInFamily { family },
        })
}

/// Resolves every name at once; one result per name, in order.
pub async fn resolve_all(names: &[String]) -> Vec<Result<SocketAddr, Error>> {
    resolve_all_in(names, None).await
}

/// Resolves every name at once to an address of `family` (`None`: IPv4 first, as
/// [`resolve`]); one result per name, in order.
pub async fn resolve_all_in(
    names: &[String],
    family: Option<IpFamily>,
) -> Vec<Result<SocketAddr, Error>> {
    let every = resolve_all_every(names).await;
    names
        .iter()
        .zip(every)
        .map(|(name, all)| {
            let all = all?;
            match family {
                Some(f) => pick(name, &all, f),
                None => pick(name, &all, IpFamily::V4).or_else(|_| pick(name, &all, IpFamily::V6)),
            }
        })
        .collect()
}

/// Every address of every name, all looked up at once (each name once, for both
/// families); one result per name, in order.
pub async fn resolve_all_every(names: &[String]) -> Vec<Result<Vec<SocketAddr>, Error>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.clone();
        tasks.spawn(async move { (i, resolve_every(&name).await) });
    }
    let mut out: Vec<Option<Result<Vec<SocketAddr>, Error>>> = vec![None; names.len()];
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
        assert_eq!(
            resolve_in("[::1]:9", IpFamily::V6).await,
            Ok("[::1]:9".parse().expect("addr"))
        );
        assert!(matches!(
            resolve_in("127.0.0.1", IpFamily::V6).await,
            Err(Error::Resolve {
                failure: ResolveFailure::NoAddressInFamily {
                    family: IpFamily::V6
                },
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_family_is_picked_from_one_lookup_per_name() {
        let names = vec!["127.0.0.1:1".to_owned(), "[::1]:2".to_owned()];
        let v4 = resolve_all_in(&names, Some(IpFamily::V4)).await;
        assert_eq!(v4[0], Ok("127.0.0.1:1".parse().expect("addr")));
        assert!(v4[1].is_err());
        let v6 = resolve_all_in(&names, Some(IpFamily::V6)).await;
        assert!(v6[0].is_err());
        assert_eq!(v6[1], Ok("[::1]:2".parse().expect("addr")));
        let any = resolve_all_in(&names, None).await;
        assert!(any.iter().all(Result::is_ok));
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
