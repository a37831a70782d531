//! The sub-checks: the router's mapping protocols, STUN, the NAT type.
//! Each is bounded in time and never fails the whole run: a check that
//! cannot finish reports what it saw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use natkit_core::{Evidence, Gateway, Outcome, PortMapper};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpAvailability, PcpConfig, PcpMapper};
use natkit_stun::classify::{Classification, ClassifyConfig, classify};
use natkit_stun::client::StunDiscoverer;
use natkit_upnp::{DiscoveryConfig, Igd, PortMappingEntry, UpnpMapper};

use crate::report::{NatReport, ProtocolState, Status, StunAnswer};

/// How long each kind of check may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// SSDP discovery of the IGD (plus its HTTP exchanges).
    pub(crate) upnp: Duration,
    /// Any one check as a whole.
    pub(crate) check: Duration,
}

impl Timeouts {
    pub(crate) fn new(check: Duration) -> Timeouts {
        Timeouts {
            upnp: check.min(Duration::from_millis(1500)),
            check,
        }
    }
}

/// The plan for NAT-PMP/PCP requests made by the doctor: 250 ms doubling,
/// three sends (gives up after 1.75 s). The RFC plans wait minutes.
fn pmp_plan() -> natkit_pmp::RetransmitPlan {
    natkit_pmp::RetransmitPlan {
        max_sends: Some(3),
        ..natkit_pmp::RetransmitPlan::fast()
    }
}

/// What the UPnP check found.
pub(crate) struct UpnpFound {
    pub(crate) state: ProtocolState,
    /// A mapper over the connected IGD.
    pub(crate) mapper: Option<Arc<UpnpMapper>>,
    /// The router's port forwarding table, when it could be read.
    pub(crate) entries: Option<Vec<PortMappingEntry>>,
}

/// Looks for a UPnP IGD on the gateway, asks for its external address and
/// reads its forwarding table (also from an IGD that is not connected).
pub(crate) async fn check_upnp(gateway: &Gateway, t: Timeouts) -> UpnpFound {
    let config = DiscoveryConfig {
        gateway: Some(gateway.clone()),
        timeout: t.upnp,
        ..DiscoveryConfig::default()
    };
    let http = config.http.clone();
    let found = tokio::time::timeout(t.check, natkit_upnp::discover(&config)).await;
    let found = match found {
        Ok(r) => r,
        Err(_) => {
            return UpnpFound {
                state: state(Status::Absent, None, Some("discovery timed out".into())),
                mapper: None,
                entries: None,
            };
        }
    };
    match found {
        Ok(igd) => {
            let external = tokio::time::timeout(t.check, igd.external_ip()).await;
            let (status, external, detail) = match external {
                Ok(Ok(ip)) if !ip.is_unspecified() => {
                    (Status::Available, Some(ip), igd.display_name().to_owned())
                }
                Ok(Ok(_)) => (
                    Status::NotConnected,
                    None,
                    format!("{} reports external address 0.0.0.0", igd.display_name()),
                ),
                // miniupnpd with a reserved WAN address answers GetStatusInfo
                // "Connected" but an empty NewExternalIPAddress (which does
                // not parse): upnpc calls that "(not connected?) IGD", and so
                // do we — mappings on it fail with 501.
                Ok(Err(e)) if e.failure_kind() == natkit_core::FailureKind::Protocol => {
                    (Status::NotConnected, None, {
                        tracing::debug!("GetExternalIPAddress: {}", one_line(&e));
                        format!(
                            "{} gives no external address (GetExternalIPAddress)",
                            igd.display_name()
                        )
                    })
                }
                Ok(Err(e)) => (
                    Status::Failing,
                    None,
                    format!("{}: {}", igd.display_name(), one_line(&e)),
                ),
                Err(_) => (
                    Status::Failing,
                    None,
                    format!("{}: GetExternalIPAddress timed out", igd.display_name()),
                ),
            };
            let detail = format!("{detail} at {}", igd.location());
            let entries = list(&igd, t).await;
            let mapper = (status == Status::Available).then(|| Arc::new(UpnpMapper::new(igd)));
            UpnpFound {
                state: state(status, external, Some(detail)),
                mapper,
                entries,
            }
        }
        Err(e @ natkit_upnp::Error::NotConnected { .. }) => {
            let entries = match &e {
                natkit_upnp::Error::NotConnected { location, .. } => {
                    match tokio::time::timeout(t.check, Igd::connect(location, &http)).await {
                        Ok(Ok(igd)) => list(&igd, t).await,
                        _ => None,
                    }
                }
                _ => None,
            };
            UpnpFound {
                state: state(Status::NotConnected, None, Some(one_line(&e))),
                mapper: None,
                entries,
            }
        }
        Err(e) => UpnpFound {
            state: state(Status::Absent, None, Some(one_line(&e))),
            mapper: None,
            entries: None,
        },
    }
}

async fn list(igd: &Igd, t: Timeouts) -> Option<Vec<PortMappingEntry>> {
    match tokio::time::timeout(t.check, igd.list_entries()).await {
        Ok(Ok(entries)) => Some(entries),
        Ok(Err(e)) => {
            tracing::info!("cannot list the IGD's port mappings: {}", one_line(&e));
            None
        }
        Err(_) => {
            tracing::info!("listing the IGD's port mappings timed out");
            None
        }
    }
}

/// What the NAT-PMP check found.
pub(crate) struct PmpFound {
    pub(crate) state: ProtocolState,
    pub(crate) mapper: Option<Arc<dyn PortMapper>>,
}

/// Asks the gateway for its external address over NAT-PMP (RFC 6886).
pub(crate) async fn check_natpmp(gateway: &Gateway, t: Timeouts) -> PmpFound {
    bounded(t, natpmp(gateway)).await
}

/// `check` within the time limit; a check that overruns is "absent".
async fn bounded(t: Timeouts, check: impl Future<Output = PmpFound>) -> PmpFound {
    tokio::time::timeout(t.check, check)
        .await
        .unwrap_or_else(|_| PmpFound {
            state: state(Status::Absent, None, Some("timed out".into())),
            mapper: None,
        })
}

async fn natpmp(gateway: &Gateway) -> PmpFound {
    let config = NatPmpConfig {
        retransmit: pmp_plan(),
        probe: pmp_plan(),
        local_address: Some(gateway.local_address),
        ..NatPmpConfig::default()
    };
    let mapper = NatPmpMapper::new(gateway.address, config);
    match mapper.probe().await {
        Ok(answer) => PmpFound {
            state: state(
                Status::Available,
                Some(IpAddr::V4(answer.address)),
                Some(format!("{} answered", mapper.server())),
            ),
            mapper: Some(Arc::new(mapper)),
        },
        Err(e) => PmpFound {
            state: pmp_error_state(&e),
            mapper: None,
        },
    }
}

/// Probes PCP (RFC 6887) with ANNOUNCE, then learns the external address
/// with a short MAP that the mapper deletes at once.
pub(crate) async fn check_pcp(gateway: &Gateway, t: Timeouts) -> PmpFound {
    bounded(t, pcp(gateway)).await
}

async fn pcp(gateway: &Gateway) -> PmpFound {
    let config = PcpConfig {
        retransmit: pmp_plan(),
        probe: pmp_plan(),
        fallback_to_natpmp: false,
        local_address: Some(IpAddr::V4(gateway.local_address)),
        ..PcpConfig::default()
    };
    let mapper = PcpMapper::new(gateway.address, config);
    match mapper.probe().await {
        Ok(PcpAvailability::Pcp { .. }) => {}
        Ok(PcpAvailability::NatPmpOnly { .. }) => {
            return PmpFound {
                state: state(
                    Status::Unsupported,
                    None,
                    Some("the router answered that it speaks only NAT-PMP".into()),
                ),
                mapper: None,
            };
        }
        Err(e) => {
            return PmpFound {
                state: pmp_error_state(&e),
                mapper: None,
            };
        }
    }
    match mapper.public_address().await {
        Ok(ip) => PmpFound {
            state: state(
                Status::Available,
                Some(ip),
                Some(format!("{} answered", mapper.server())),
            ),
            mapper: Some(Arc::new(mapper)),
        },
        Err(e) => PmpFound {
            state: pmp_error_state(&e),
            mapper: None,
        },
    }
}

fn pmp_error_state(e: &natkit_pmp::Error) -> ProtocolState {
    use natkit_pmp::Error as E;
    let status = match e {
        E::Timeout { .. } | E::Io { .. } => Status::Absent,
        E::UnsupportedServerVersion { .. } => Status::Unsupported,
        _ => Status::Failing,
    };
    state(status, None, Some(one_line(e)))
}

fn state(
    status: Status,
    external_address: Option<IpAddr>,
    detail: Option<String>,
) -> ProtocolState {
    ProtocolState {
        status,
        external_address,
        detail,
    }
}

/// Asks every STUN server which address it sees.
pub(crate) async fn check_stun(servers: &[String]) -> (Vec<StunAnswer>, Option<SocketAddr>) {
    let evidence = match StunDiscoverer::new(servers.iter().cloned()).observe().await {
        Ok(e) => e,
        Err(e) => {
            let answers = servers
                .iter()
                .map(|s| StunAnswer {
                    server: s.clone(),
                    outcome: "failed",
                    address: None,
                    detail: Some(one_line(&e)),
                })
                .collect();
            return (answers, None);
        }
    };
    let answers = evidence.iter().map(stun_answer).collect();
    let consensus =
        natkit_core::consensus(evidence).map(|c| SocketAddr::new(c.ip, c.port.unwrap_or(0)));
    (answers, consensus)
}

fn stun_answer(e: &Evidence) -> StunAnswer {
    let (outcome, address, detail) = match &e.outcome {
        Outcome::SawEndpoint(sa) => ("saw", Some(*sa), None),
        Outcome::SawAddress(ip) => ("saw", Some(SocketAddr::new(*ip, 0)), None),
        Outcome::TimedOut => ("timed_out", None, None),
        Outcome::Failed(why) => ("failed", None, Some(why.clone())),
    };
    StunAnswer {
        server: e.source.clone(),
        outcome,
        address,
        detail,
    }
}

/// Classifies the NAT (RFC 5780 / 3489 behaviour tests).
pub(crate) async fn check_nat(servers: &[String]) -> Result<Classification, String> {
    classify(ClassifyConfig::new(servers.iter().cloned()))
        .await
        .map_err(|e| one_line(&e))
}

/// The report's view of a classification.
pub(crate) fn nat_report(c: &Classification) -> NatReport {
    let b = c.behaviour;
    NatReport {
        mapping: b.mapping.as_str(),
        filtering: b.filtering.as_str(),
        legacy_type: c.legacy.as_str(),
        meaning: c.legacy.meaning(),
        port_preservation: b.port_preservation,
        hairpinning: b.hairpinning,
        tested_with: c.behaviour_server,
        rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1000.0),
        notes: c.notes.clone(),
    }
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    natkit_examples::error_line(e)
}
