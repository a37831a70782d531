//! Whether an IPv6 pinhole can be reached from outside at its address at all.
//!
//! A pinhole opens the router's firewall for this host's own address, which
//! helps only where IPv6 is not translated. Behind NAT66 (OpenWrt's `masq6`)
//! or NPTv6 the internet sees the router's address (or a rewritten prefix)
//! instead, and nothing from outside can address the pinhole. So `natkit map`
//! asks STUN servers over IPv6, from a socket bound to the pinhole's own
//! address, which address they see: the same one means no translation on the
//! way; another means the pinhole is out of reach. The question is asked from
//! the pinhole's address rather than the kernel's choice because outbound
//! traffic normally leaves from a temporary (privacy) address while the
//! pinhole is for the stable one, and an NPTv6 translator rewrites each source
//! address on its own.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use natkit_core::{Evidence, ExternalAddress, Mechanism, Outcome};
use natkit_stun::client::{BindingRequest, IpFamily, RtoPlan, binding_on, resolve_all_in};
use serde_json::{Value, json};

/// The longest the check may take, name lookups included. Runs beside the
/// cleanup and the mapping, so on a network that answers it costs nothing;
/// `--once` waits for it at most this long after the mapping is printed.
/// [`RtoPlan::FAST`] gives up on a silent server after 1.5 s, which leaves
/// room for the lookups.
pub(super) const CHECK_BOUND: Duration = Duration::from_secs(2);

/// Why the address the internet sees for the pinhole is not known.
#[derive(Debug)]
pub(super) enum NotChecked {
    /// No server name has an IPv6 address (each one's lookup as evidence).
    NoServer { evidence: Vec<Evidence> },
    /// This host cannot send from the pinhole's address.
    NoSocket { error: natkit_stun::Error },
    /// Every server with an IPv6 address was asked and none answered.
    NoAnswer { evidence: Vec<Evidence> },
    /// Not finished within the bound.
    TimedOut { bound: Duration },
}

impl NotChecked {
    fn code(&self) -> &'static str {
        match self {
            NotChecked::NoServer { .. } => "no_server",
            NotChecked::NoSocket { .. } => "no_socket",
            NotChecked::NoAnswer { .. } => "no_answer",
            NotChecked::TimedOut { .. } => "timed_out",
        }
    }

    fn evidence(&self) -> &[Evidence] {
        match self {
            NotChecked::NoServer { evidence } | NotChecked::NoAnswer { evidence } => evidence,
            NotChecked::NoSocket { .. } | NotChecked::TimedOut { .. } => &[],
        }
    }
}

impl std::fmt::Display for NotChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotChecked::NoServer { evidence } => write!(
                f,
                "none of the {} STUN servers has an IPv6 address ({})",
                evidence.len(),
                outcomes(evidence)
            ),
            NotChecked::NoSocket { error } => {
                write!(f, "cannot send from the pinhole's address: {error}")
            }
            NotChecked::NoAnswer { evidence } => write!(
                f,
                "no STUN server answered over IPv6 ({})",
                outcomes(evidence)
            ),
            NotChecked::TimedOut { bound } => write!(
                f,
                "no STUN server answered over IPv6 within {} s",
                bound.as_secs_f64()
            ),
        }
    }
}

fn outcomes(evidence: &[Evidence]) -> String {
    evidence
        .iter()
        .map(|e| format!("{}: {}", e.source, e.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the check concludes about the pinhole at `pinhole`.
#[derive(Debug)]
pub(super) enum Reachability {
    /// The servers see this host at the pinhole's own address: no translation.
    SeenAtPinhole {
        pinhole: SocketAddr,
        seen: ExternalAddress,
    },
    /// The servers see another address: a NAT66 or NPTv6 router translates,
    /// and the pinhole's address cannot be reached from outside.
    Translated {
        pinhole: SocketAddr,
        seen: ExternalAddress,
    },
    /// Unknown, and why.
    NotChecked {
        pinhole: SocketAddr,
        why: NotChecked,
    },
}

/// The conclusion about the pinhole at `pinhole` (address and port) from
/// what the servers said (their consensus, or why there is none).
pub(super) fn decide(
    pinhole: SocketAddr,
    seen: Result<ExternalAddress, NotChecked>,
) -> Reachability {
    match seen {
        Ok(seen) if seen.ip == pinhole.ip() => Reachability::SeenAtPinhole { pinhole, seen },
        Ok(seen) => Reachability::Translated { pinhole, seen },
        Err(why) => Reachability::NotChecked { pinhole, why },
    }
}

impl Reachability {
    /// The text line: a warning when the pinhole is out of reach, else a note.
    pub(super) fn line(&self) -> String {
        match self {
            Reachability::SeenAtPinhole { pinhole, seen } => format!(
                "note: the internet sees this host at the pinhole's address {} \
                 (STUN over IPv6: {})",
                pinhole.ip(),
                agreement(seen)
            ),
            Reachability::Translated { pinhole, seen } => format!(
                "warning: this network translates IPv6 (NAT66 or NPTv6): the internet sees \
                 this host as {}, so the pinhole at {pinhole} is not reachable from outside; \
                 instead forward {} port {} to {pinhole} in the router's IPv6 port \
                 forwarding, or turn NAT66 off on the router (STUN over IPv6: {})",
                seen.ip,
                seen.ip,
                pinhole.port(),
                agreement(seen)
            ),
            Reachability::NotChecked { why, .. } => {
                format!("note: reachability from outside not checked: {why}")
            }
        }
    }

    /// The `ipv6_reachability` JSON event.
    pub(super) fn json(&self) -> Value {
        let (verdict, pinhole, seen, reason, evidence) = match self {
            Reachability::SeenAtPinhole { pinhole, seen } => (
                "seen_at_pinhole",
                pinhole,
                Some(seen),
                None,
                &seen.evidence[..],
            ),
            Reachability::Translated { pinhole, seen } => {
                ("translated", pinhole, Some(seen), None, &seen.evidence[..])
            }
            Reachability::NotChecked { pinhole, why } => {
                ("not_checked", pinhole, None, Some(why), why.evidence())
            }
        };
        json!({
            "event": "ipv6_reachability",
            "verdict": verdict,
            "pinhole": pinhole.ip(),
            "port": pinhole.port(),
            "seen": seen.map(|s| s.ip),
            "agreeing": seen.map(|s| s.agreeing().count()),
            "reason": reason.map(NotChecked::code),
            "detail": self.line(),
            "bound_ms": CHECK_BOUND.as_millis(),
            "servers": evidence
                .iter()
                .map(|e| json!({ "source": e.source, "outcome": e.outcome.to_string() }))
                .collect::<Vec<_>>(),
        })
    }
}

fn agreement(seen: &ExternalAddress) -> String {
    format!(
        "{} of {} servers saw {}",
        seen.agreeing().count(),
        seen.evidence.len(),
        seen.ip
    )
}

/// Asks `servers` over IPv6 from `pinhole` which address they see, within
/// [`CHECK_BOUND`].
pub(super) async fn check(pinhole: SocketAddr, servers: Vec<String>) -> Reachability {
    decide(
        pinhole,
        bounded(CHECK_BOUND, ask(pinhole.ip(), servers)).await,
    )
}

/// `work`, or [`NotChecked::TimedOut`] once `bound` has passed.
async fn bounded(
    bound: Duration,
    work: impl Future<Output = Result<ExternalAddress, NotChecked>>,
) -> Result<ExternalAddress, NotChecked> {
    tokio::time::timeout(bound, work)
        .await
        .unwrap_or(Err(NotChecked::TimedOut { bound }))
}

/// Each server with an IPv6 address asked from its own socket bound to the
/// pinhole's address, all at once; their consensus.
async fn ask(pinhole: IpAddr, servers: Vec<String>) -> Result<ExternalAddress, NotChecked> {
    let resolved = resolve_all_in(&servers, Some(IpFamily::V6)).await;
    let mut unresolved = Vec::new();
    let mut asked = tokio::task::JoinSet::new();
    for (i, (name, r)) in servers.iter().zip(resolved).enumerate() {
        let server = match r {
            Ok(server) => server,
            Err(e) => {
                unresolved.push(stun_evidence(name, e.to_outcome()));
                continue;
            }
        };
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(pinhole, 0))
            .await
            .map_err(|e| NotChecked::NoSocket {
                error: natkit_stun::Error::io("bind", &e),
            })?;
        asked.spawn(async move {
            let answer = binding_on(&socket, server, &BindingRequest::new(), RtoPlan::FAST).await;
            let outcome = match answer.and_then(|r| r.mapped_or_error()) {
                Ok(mapped) => Outcome::SawEndpoint(mapped),
                Err(e) => e.to_outcome(),
            };
            (i, outcome)
        });
    }
    if asked.is_empty() {
        return Err(NotChecked::NoServer {
            evidence: unresolved,
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = asked.join_next().await {
        match done {
            Ok(answer) => answers.push(answer),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    answers.sort_by_key(|(i, _)| *i);
    let evidence: Vec<Evidence> = answers
        .into_iter()
        .map(|(i, outcome)| stun_evidence(&servers[i], outcome))
        .collect();
    natkit_core::consensus(evidence.clone()).ok_or(NotChecked::NoAnswer { evidence })
}

fn stun_evidence(source: &str, outcome: Outcome) -> Evidence {
    Evidence {
        mechanism: Mechanism::Stun,
        source: source.to_owned(),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINHOLE: &str = "2a0d:88:77:77::2";
    const ROUTER: &str = "2a0d:88:77:66::2";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    /// The pinhole at port 7000.
    fn at(s: &str) -> SocketAddr {
        SocketAddr::new(ip(s), 7000)
    }

    /// What two servers said: each saw one of `ips` at port 40000.
    fn seen(ips: &[&str]) -> ExternalAddress {
        let evidence = ips
            .iter()
            .enumerate()
            .map(|(i, a)| {
                stun_evidence(
                    &format!("stun{i}:3478"),
                    Outcome::SawEndpoint(SocketAddr::new(ip(a), 40000)),
                )
            })
            .collect();
        natkit_core::consensus(evidence).expect("an address")
    }

    #[test]
    fn the_pinholes_own_address_seen_is_no_translation() {
        let r = decide(at(PINHOLE), Ok(seen(&[PINHOLE, PINHOLE])));
        assert!(matches!(r, Reachability::SeenAtPinhole { .. }), "{r:?}");
        let line = r.line();
        assert!(
            line.starts_with(
                "note: the internet sees this host at the pinhole's address 2a0d:88:77:77::2"
            ),
            "{line}"
        );
        assert!(line.contains("2 of 2 servers"), "{line}");
        let v = r.json();
        assert_eq!(v["verdict"], "seen_at_pinhole");
        assert_eq!(v["seen"], PINHOLE);
        assert_eq!(v["pinhole"], PINHOLE);
        assert_eq!(v["reason"], Value::Null);
    }

    #[test]
    fn another_address_seen_is_a_translator_and_names_it() {
        let r = decide(at(PINHOLE), Ok(seen(&[ROUTER, ROUTER])));
        assert!(matches!(r, Reachability::Translated { .. }), "{r:?}");
        let line = r.line();
        assert!(
            line.starts_with("warning: this network translates IPv6"),
            "{line}"
        );
        assert!(
            line.contains("sees this host as 2a0d:88:77:66::2, so the pinhole at [2a0d:88:77:77::2]:7000 is not reachable from outside; \
                 instead forward 2a0d:88:77:66::2 port 7000 to [2a0d:88:77:77::2]:7000"),
            "{line}"
        );
        assert!(
            line.contains("port forwarding") && line.contains("NAT66 off"),
            "{line}"
        );
        let v = r.json();
        assert_eq!(v["verdict"], "translated");
        assert_eq!(v["seen"], ROUTER);
        assert_eq!(v["agreeing"], 2);
    }

    #[test]
    fn the_majority_decides_when_servers_disagree() {
        // One server seeing the pinhole's address does not outvote two that see
        // the translator.
        let r = decide(at(PINHOLE), Ok(seen(&[PINHOLE, ROUTER, ROUTER])));
        assert!(matches!(r, Reachability::Translated { .. }), "{r:?}");
        assert!(r.line().contains("2 of 3 servers saw 2a0d:88:77:66::2"));
    }

    #[test]
    fn no_answer_is_not_checked_with_why() {
        let evidence = vec![stun_evidence("stun0:3478", Outcome::TimedOut)];
        let r = decide(at(PINHOLE), Err(NotChecked::NoAnswer { evidence }));
        let line = r.line();
        assert_eq!(
            line,
            "note: reachability from outside not checked: no STUN server answered over IPv6 (stun0:3478: timed out)"
        );
        let v = r.json();
        assert_eq!(v["verdict"], "not_checked");
        assert_eq!(v["reason"], "no_answer");
        assert_eq!(v["seen"], Value::Null);
        assert_eq!(v["servers"][0]["outcome"], "timed out");

        let r = decide(
            at(PINHOLE),
            Err(NotChecked::TimedOut { bound: CHECK_BOUND }),
        );
        assert_eq!(r.json()["reason"], "timed_out");
        assert!(r.line().ends_with("within 2 s"), "{}", r.line());
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_never_ends_stops_at_the_bound() {
        let started = tokio::time::Instant::now();
        let r = bounded(CHECK_BOUND, std::future::pending()).await;
        assert!(
            matches!(r, Err(NotChecked::TimedOut { bound }) if bound == CHECK_BOUND),
            "{r:?}"
        );
        assert_eq!(started.elapsed(), CHECK_BOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_within_the_bound_is_kept() {
        let started = tokio::time::Instant::now();
        let late = async {
            tokio::time::sleep(CHECK_BOUND - Duration::from_millis(1)).await;
            Ok(seen(&[PINHOLE]))
        };
        let r = bounded(CHECK_BOUND, late).await;
        assert_eq!(r.expect("answered").ip, ip(PINHOLE));
        assert!(started.elapsed() < CHECK_BOUND);
    }

    /// natkit's STUN server on `[::1]`, served until the test ends.
    async fn loopback_server() -> SocketAddr {
        let config = natkit_stun::server::ServerConfig::new("[::1]:0".parse().expect("addr"));
        let server = natkit_stun::server::Server::bind(config)
            .await
            .expect("a STUN server on [::1]");
        let addr = server.local_addrs()[0];
        tokio::spawn(server.run());
        addr
    }

    #[tokio::test]
    async fn a_server_sees_the_pinholes_own_address_on_loopback() {
        let server = loopback_server().await;
        let r = check(at("::1"), vec![server.to_string()]).await;
        assert!(matches!(r, Reachability::SeenAtPinhole { .. }), "{r:?}");
        let v = r.json();
        assert_eq!(v["seen"], "::1", "{v}");
        assert_eq!(v["servers"][0]["source"], server.to_string(), "{v}");
    }

    #[tokio::test]
    async fn a_pinhole_address_this_host_lacks_is_not_checked() {
        // Binding fails before anything is sent.
        let server = loopback_server().await;
        let r = check(at(PINHOLE), vec![server.to_string()]).await;
        let v = r.json();
        assert_eq!(v["reason"], "no_socket", "{v}");
        assert!(
            r.line()
                .contains("not checked: cannot send from the pinhole's address"),
            "{}",
            r.line()
        );
    }

    #[tokio::test]
    async fn no_server_with_an_ipv6_address_is_not_checked() {
        // An IPv4 literal has no IPv6 address: no lookup, nothing sent.
        let r = check(at("::1"), vec!["127.0.0.1:9".into()]).await;
        let v = r.json();
        assert_eq!(v["reason"], "no_server", "{v}");
        assert_eq!(v["servers"][0]["source"], "127.0.0.1:9", "{v}");
    }
}
