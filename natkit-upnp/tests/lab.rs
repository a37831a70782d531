//! natkit-upnp against the real miniupnpd in the NAT lab (root only; fails,
//! never skips, without it). natkit's code runs inside the LAN namespace as a
//! helper process (this test binary re-run by `Lab::test_helper`); the
//! outer test checks the result with the reference client `upnpc` and with
//! real traffic from the wan peer.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use natkit_core::{Mapping, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_lab::{Lab, LabError, Node, Proto, require_root};
use natkit_upnp::{
    DiscoveryConfig, Error, Igd, LeaseOutcome, PortMappingRequest, UpnpMapper, WanServiceKind,
    discover,
};

const LAN2_DESCRIPTION: &str = "lan2 web server";
const OTHER_NATKIT: &str = "natkit 192.168.77.3 lan2 natkit";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn upnpc(lab: &Lab, node: Node, args: &[&str]) -> String {
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    let mut argv = vec!["upnpc", "-u", url.as_str()];
    argv.extend_from_slice(args);
    let out = lab.exec(node, &argv).expect("run upnpc");
    text(&out.stdout) + &text(&out.stderr)
}

/// Runs `phase` of the LAN-side helper and returns its stdout.
fn helper(lab: &Lab, phase: &str) -> String {
    let out = lab
        .test_helper(Node::Lan, "lan_side")
        .expect("helper command")
        .env("PHASE", phase)
        .output()
        .expect("run helper");
    assert!(
        out.status.success(),
        "helper {phase}: {}",
        natkit_lab::dump_output(&out)
    );
    println!("helper {phase}:\n{}", text(&out.stdout));
    text(&out.stdout)
}

/// Does `payload` sent by the wan peer to the router's `ext_port` reach a
/// listener on the LAN host's `port`?
fn delivered(lab: &Lab, proto: Proto, port: u16, ext_port: u16, payload: &str) -> Option<String> {
    let port_s = port.to_string();
    let argv: Vec<&str> = match proto {
        Proto::Tcp => vec!["nc", "-n", "-l", "-p", &port_s],
        Proto::Udp => vec!["nc", "-n", "-u", "-l", "-W", "1", "-p", &port_s],
    };
    let listener = lab.spawn(Node::Lan, &argv).expect("spawn listener");
    lab.wait_listening(Node::Lan, proto, port, Duration::from_secs(5))
        .expect("listener up");
    let flags = if proto == Proto::Udp {
        "-u -w 1"
    } else {
        "-N -w 2"
    };
    let script = format!(
        "printf '%s' '{payload}' | nc -n {flags} {} {ext_port}",
        lab.addrs().public
    );
    let sent = lab
        .exec(Node::Wan, &["sh", "-c", script.as_str()])
        .expect("run nc");
    match listener.wait_with_output_timeout(Duration::from_secs(4)) {
        Ok(out) => {
            assert!(sent.status.success(), "{}", natkit_lab::dump_output(&sent));
            Some(text(&out.stdout))
        }
        Err(LabError::Timeout { .. }) => None,
        Err(e) => panic!("listener: {e}"),
    }
}

/// The lease natkit reports is what the router reads back: the *remaining*
/// lease, which may already be a second or two below what was asked.
fn assert_lease(got: Duration, asked: Duration) {
    assert!(
        got <= asked && got + Duration::from_secs(2) >= asked,
        "lease {got:?} for {asked:?} asked"
    );
}

fn tcp_request(lan: Ipv4Addr) -> MappingRequest {
    MappingRequest::new(Protocol::Tcp, SocketAddr::from((lan, 8080)))
        .with_external_port(Some(40080))
        .with_lifetime(Duration::from_secs(3600))
        .with_description("lab tcp")
}

fn udp_request(lan: Ipv4Addr) -> MappingRequest {
    MappingRequest::new(Protocol::Udp, SocketAddr::from((lan, 9001)))
        .with_external_port(Some(41001))
        .with_lifetime(Duration::from_secs(3600))
        .with_description("lab udp")
}

#[test]
fn maps_through_miniupnpd_from_the_lan() {
    require_root();
    let lab = Lab::builder()
        .miniupnpd(true)
        .lan2(true)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    let lan2 = a.lan2.expect("lan2").to_string();

    // Another host already forwards 443/tcp, and another natkit host has a mapping.
    let out = upnpc(
        &lab,
        Node::Lan2,
        &["-e", LAN2_DESCRIPTION, "-a", &lan2, "443", "443", "TCP"],
    );
    assert!(out.contains("is redirected to internal"), "{out}");
    let out = upnpc(
        &lab,
        Node::Lan2,
        &["-e", OTHER_NATKIT, "-a", &lan2, "7000", "47000", "UDP"],
    );
    assert!(out.contains("is redirected to internal"), "{out}");

    let out = helper(&lab, "map");
    assert!(out.contains("MAPPED tcp"), "{out}");

    // upnpc sees natkit's entries, tagged.
    let list = upnpc(&lab, Node::Lan, &["-l"]);
    let lan = a.lan.to_string();
    assert!(list.contains(&format!("TCP 40080->{lan}:8080")), "{list}");
    assert!(list.contains(&format!("UDP 41001->{lan}:9001")), "{list}");
    assert!(list.contains(&format!("'natkit {lan} lab tcp'")), "{list}");
    // Through the router to the LAN host, from the internet side.
    let payload = format!("natkit-tcp-{}", lab.id());
    assert_eq!(
        delivered(&lab, Proto::Tcp, 8080, 40080, &payload).as_deref(),
        Some(payload.as_str())
    );
    let payload = format!("natkit-udp-{}", lab.id());
    assert_eq!(
        delivered(&lab, Proto::Udp, 9001, 41001, &payload).as_deref(),
        Some(payload.as_str())
    );

    let out = helper(&lab, "renew_unmap_cleanup");
    assert!(out.contains("CLEANED"), "{out}");

    let list = upnpc(&lab, Node::Lan, &["-l"]);
    assert!(
        !list.contains(&format!("natkit {lan}")),
        "ours left behind: {list}"
    );
    // Exactly the other host's two entries are left, untouched.
    assert!(
        list.contains(&format!("TCP   443->{lan2}:443   '{LAN2_DESCRIPTION}'")),
        "{list}"
    );
    assert!(
        list.contains(&format!("UDP 47000->{lan2}:7000  '{OTHER_NATKIT}'")),
        "{list}"
    );
    let rows = list
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|i| i.parse::<u32>().is_ok())
        })
        .count();
    assert_eq!(rows, 2, "{list}");
    assert_eq!(delivered(&lab, Proto::Tcp, 8080, 40080, "x"), None);
}

/// The LAN side of `maps_through_miniupnpd_from_the_lan`, one phase per run.
#[tokio::test]
#[ignore = "helper process body; maps_through_miniupnpd_from_the_lan runs it in the LAN"]
async fn lan_side() {
    let Some(a) = natkit_lab::helper_addrs("lan_side").expect("lab env") else {
        return;
    };
    let phase = std::env::var("PHASE").expect("PHASE");
    // The real defaults: default gateway lookup, unicast + multicast, gateway only.
    let start = Instant::now();
    let igd = discover(&DiscoveryConfig::default())
        .await
        .expect("discover");
    println!(
        "IGD {igd} server={:?} found in {:?}",
        igd.server(),
        start.elapsed()
    );
    assert_eq!(igd.location().ip(), a.rtr_lan);
    assert_eq!(igd.local_ip(), a.lan);
    assert_eq!(igd.service(), WanServiceKind::WAN_IP2);
    assert!(igd.status().await.expect("status").status.is_connected());
    match phase.as_str() {
        "map" => map_phase(igd, a.lan, a.public, a.lan2.expect("lan2")).await,
        "renew_unmap_cleanup" => renew_phase(igd, a.lan, a.public).await,
        other => panic!("unknown phase {other}"),
    }
}

async fn map_phase(igd: Igd, lan: Ipv4Addr, public: Ipv4Addr, lan2: Ipv4Addr) {
    let mapper = UpnpMapper::new(igd.clone());
    assert_eq!(mapper.external_address().await.expect("external"), public);
    for req in [tcp_request(lan), udp_request(lan)] {
        let m = mapper.map(&req).await.expect("map");
        println!("MAPPED {} {m:?}", req.protocol);
        assert_eq!(
            m.external,
            SocketAddr::from((public, req.external_port.unwrap_or(0)))
        );
        assert_eq!(m.internal, req.internal);
        assert_lease(m.lifetime, req.lifetime);
        assert_eq!(m.mechanism, Mechanism::Upnp);
    }

    // 443 is lan2's: a typed conflict naming it.
    let want_443 = PortMappingRequest {
        protocol: Protocol::Tcp,
        external_port: 443,
        internal: SocketAddrV4::new(lan, 443),
        lease_secs: 3600,
        description: "web".into(),
    };
    let err = igd
        .add_port_mapping(&want_443)
        .await
        .expect_err("443 is taken");
    println!("CONFLICT {err}");
    match &err {
        Error::Conflict {
            holder: Some(h), ..
        } => {
            assert_eq!(h.internal_client, lan2.to_string());
            assert_eq!(h.description, LAN2_DESCRIPTION);
        }
        other => panic!("expected a conflict naming lan2, got {other:?}"),
    }

    // Lease handling of miniupnpd (IGD:2): what it grants for long and
    // permanent requests.
    for asked in [1_000_000, 0] {
        let g = igd
            .add_port_mapping(&PortMappingRequest {
                protocol: Protocol::Udp,
                external_port: 40090,
                internal: SocketAddrV4::new(lan, 40090),
                lease_secs: asked,
                description: "lease probe".into(),
            })
            .await
            .expect("lease probe");
        println!(
            "LEASE asked={asked} granted={} outcome={:?}",
            g.lease_secs, g.lease
        );
        // Observed: no 402/725, a silent clamp to the IGD:2 maximum.
        // (The read-back lease is the remaining one: a second may be gone.)
        assert!(g.read_back.is_some());
        let LeaseOutcome::Shortened {
            requested,
            accepted,
        } = g.lease
        else {
            panic!("expected a clamped lease, got {:?}", g.lease)
        };
        assert_eq!(requested, asked);
        assert!((604_798..=604_800).contains(&accepted), "{accepted}");
        assert_eq!(g.lease_secs, accepted);
        igd.delete(Protocol::Udp, 40090)
            .await
            .expect("delete probe");
    }

    // A "stale" mapping from an earlier run, for cleanup to find.
    igd.add_port_mapping(&PortMappingRequest {
        protocol: Protocol::Udp,
        external_port: 40999,
        internal: SocketAddrV4::new(lan, 40999),
        lease_secs: 3600,
        description: "stale".into(),
    })
    .await
    .expect("stale mapping");
}

async fn renew_phase(igd: Igd, lan: Ipv4Addr, public: Ipv4Addr) {
    let mapper = UpnpMapper::new(igd.clone());
    for req in [tcp_request(lan), udp_request(lan)] {
        let current = Mapping::new(
            Mechanism::Upnp,
            req.protocol,
            SocketAddr::from((public, req.external_port.unwrap_or(0))),
            req.internal,
            req.lifetime,
            std::time::Instant::now(),
        );
        let renewed = mapper.renew(&req, &current).await.expect("renew");
        assert_eq!(renewed.external, current.external);
        assert_lease(renewed.lifetime, req.lifetime);
        mapper.unmap(&renewed).await.expect("unmap");
        // Already gone: still fine.
        mapper.unmap(&renewed).await.expect("unmap again");
    }
    let report = igd.cleanup(lan).await.expect("cleanup");
    println!("CLEANED {report:?}");
    let removed: Vec<(u16, Protocol)> = report
        .removed
        .iter()
        .map(|e| (e.external_port, e.protocol))
        .collect();
    assert_eq!(removed, [(40999, Protocol::Udp)]);
    assert!(report.failed.is_empty());
    assert_eq!(report.others, 2, "lan2's two entries");
    let left = igd.list_entries().await.expect("list");
    assert!(left.iter().all(|e| !e.is_natkit_entry_of(lan)), "{left:?}");
    assert_eq!(left.len(), 2);
}
