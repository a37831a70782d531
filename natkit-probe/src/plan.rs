//! What to probe: target addresses × ports, from a port spec or a service
//! profile.

use std::net::{IpAddr, SocketAddr};

use natkit_core::{PortSpec, Protocol, ServiceProfile};

use crate::error::Error;
use crate::port_verdict::PortProbe;

/// The most probes one run takes: every port of both protocols on 256 hosts.
pub const MAX_PROBES: usize = 256 * 65535 * 2;

/// The list of ports to probe, in plan order (the engine applies the
/// configured [`PortOrder`](crate::PortOrder) on top).
///
/// A plan of targets × ports is kept as the two lists, not as one entry
/// per probe: a full sweep of 65535 ports costs 256 KiB of port list, and
/// the engine's memory stays flat as plans grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePlan {
    probes: Probes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Probes {
    /// Every pair on every target, first target first.
    Grid {
        targets: Vec<IpAddr>,
        pairs: Vec<(u16, Protocol)>,
    },
    /// Explicit probes.
    List(Vec<PortProbe>),
}

impl Default for ProbePlan {
    fn default() -> Self {
        ProbePlan {
            probes: Probes::List(Vec::new()),
        }
    }
}

impl ProbePlan {
    /// Every (port, protocol) of `spec` on every target, first target first,
    /// ports in spec order, duplicates removed.
    pub fn from_spec(targets: &[IpAddr], spec: &PortSpec) -> Result<Self, Error> {
        Self::from_pairs(targets, &spec.pairs())
    }

    /// Every port of a service profile on every target.
    pub fn from_profile(targets: &[IpAddr], profile: &ServiceProfile) -> Result<Self, Error> {
        Self::from_spec(targets, &profile.port_spec())
    }

    /// Every (port, protocol) pair on every target.
    pub fn from_pairs(targets: &[IpAddr], pairs: &[(u16, Protocol)]) -> Result<Self, Error> {
        if targets.is_empty() {
            return Err(Error::NoTargets);
        }
        if pairs.is_empty() {
            return Err(Error::NoPorts);
        }
        let mut unique: Vec<IpAddr> = Vec::with_capacity(targets.len());
        for t in targets {
            if !unique.contains(t) {
                unique.push(*t);
            }
        }
        let count = unique.len().saturating_mul(pairs.len());
        if count > MAX_PROBES {
            return Err(Error::TooManyProbes {
                count,
                max: MAX_PROBES,
            });
        }
        Ok(ProbePlan {
            probes: Probes::Grid {
                targets: unique,
                pairs: pairs.to_vec(),
            },
        })
    }

    /// A plan of explicit probes: entries for port 0 are dropped, duplicates
    /// keep their first place; [`Error::NoPorts`] if nothing is left.
    pub fn from_probes(list: impl IntoIterator<Item = PortProbe>) -> Result<Self, Error> {
        let mut seen = std::collections::HashSet::new();
        let probes: Vec<PortProbe> = list
            .into_iter()
            .filter(|p| p.addr.port() != 0 && seen.insert(*p))
            .collect();
        if probes.is_empty() {
            return Err(Error::NoPorts);
        }
        if probes.len() > MAX_PROBES {
            return Err(Error::TooManyProbes {
                count: probes.len(),
                max: MAX_PROBES,
            });
        }
        Ok(ProbePlan {
            probes: Probes::List(probes),
        })
    }

    /// A plan of exactly `probes`, unchecked (the scheduler's own tests and
    /// callers of [`Scheduler::new`](crate::Scheduler::new)).
    pub(crate) fn from_vec(probes: Vec<PortProbe>) -> Self {
        ProbePlan {
            probes: Probes::List(probes),
        }
    }

    /// The probe at `index` in plan order.
    pub fn get(&self, index: usize) -> Option<PortProbe> {
        match &self.probes {
            Probes::Grid { targets, pairs } => {
                let (port, protocol) = *pairs.get(index % pairs.len().max(1))?;
                let ip = *targets.get(index / pairs.len().max(1))?;
                Some(PortProbe {
                    addr: SocketAddr::new(ip, port),
                    protocol,
                })
            }
            Probes::List(list) => list.get(index).copied(),
        }
    }

    /// The probes, in plan order.
    pub fn iter(&self) -> impl Iterator<Item = PortProbe> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// How many probes.
    pub fn len(&self) -> usize {
        match &self.probes {
            Probes::Grid { targets, pairs } => targets.len() * pairs.len(),
            Probes::List(list) => list.len(),
        }
    }

    /// Whether the plan is empty (only a `Default` plan is).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    #[test]
    fn spec_times_targets_in_order() {
        let spec: PortSpec = "22/tcp,53".parse().unwrap();
        let plan = ProbePlan::from_spec(&[V4, V6, V4], &spec).unwrap();
        let got: Vec<String> = plan.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:22/tcp",
                "127.0.0.1:53/tcp",
                "127.0.0.1:53/udp",
                "[::1]:22/tcp",
                "[::1]:53/tcp",
                "[::1]:53/udp"
            ]
        );
    }

    #[test]
    fn grid_plans_index_like_their_list() {
        let spec: PortSpec = "7,9/udp,20-22/tcp".parse().unwrap();
        let plan = ProbePlan::from_spec(&[V6, V4], &spec).unwrap();
        let mut list = Vec::new();
        for ip in [V6, V4] {
            for (port, protocol) in spec.pairs() {
                list.push(PortProbe {
                    addr: SocketAddr::new(ip, port),
                    protocol,
                });
            }
        }
        assert_eq!(plan.len(), list.len());
        assert_eq!(plan.iter().collect::<Vec<_>>(), list);
        for (i, p) in list.iter().enumerate() {
            assert_eq!(plan.get(i), Some(*p));
        }
        assert_eq!(plan.get(list.len()), None);
        assert_eq!(ProbePlan::default().get(0), None);
        assert!(ProbePlan::default().is_empty());
    }

    #[test]
    fn profile_plans_use_the_profile_ports() {
        let btmm = ServiceProfile::by_name("back-to-my-mac").unwrap();
        let plan = ProbePlan::from_profile(&[V4], btmm).unwrap();
        assert_eq!(plan.len(), 4);
        assert!(plan.iter().any(|p| p
            == PortProbe {
                addr: SocketAddr::new(V4, 4500),
                protocol: Protocol::Udp
            }));
    }

    #[test]
    fn empty_inputs_are_typed_errors() {
        let spec: PortSpec = "22".parse().unwrap();
        assert!(matches!(
            ProbePlan::from_spec(&[], &spec),
            Err(Error::NoTargets)
        ));
        assert!(matches!(
            ProbePlan::from_spec(&[V4], &PortSpec::default()),
            Err(Error::NoPorts)
        ));
        let zero = PortProbe {
            addr: SocketAddr::new(V4, 0),
            protocol: Protocol::Tcp,
        };
        assert!(matches!(
            ProbePlan::from_probes([zero]),
            Err(Error::NoPorts)
        ));
    }

    #[test]
    fn explicit_probes_drop_duplicates() {
        let p = PortProbe {
            addr: SocketAddr::new(V4, 80),
            protocol: Protocol::Tcp,
        };
        let plan = ProbePlan::from_probes([p, p]).unwrap();
        assert_eq!(plan.iter().collect::<Vec<_>>(), [p]);
        assert_eq!(plan.get(1), None);
    }

    #[test]
    fn too_many_probes_is_refused_before_allocating() {
        let targets: Vec<IpAddr> = (0..=300u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let spec: PortSpec = "1-65535".parse().unwrap();
        assert!(matches!(
            ProbePlan::from_spec(&targets, &spec),
            Err(Error::TooManyProbes { count, .. }) if count == 301 * 65535 * 2
        ));
    }
}
