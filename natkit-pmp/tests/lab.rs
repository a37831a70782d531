//! NAT-PMP and PCP against miniupnpd in the NAT lab (needs root and the lab
//! packages; see lab/README.md — like every lab test these fail, never
//! skip, without them).
//!
//! The outer test builds a lab (port-restricted NAT, miniupnpd, a second
//! LAN host) and re-runs this test binary inside the LAN namespace as the
//! helper `lan_side`, which holds a mapper, two listeners and the mappings,
//! and takes commands on stdin (`renew`, `delete`) so that the nonce-owning
//! PCP mapper lives through map, renew and delete. The outer test plays the
//! internet (a peer in `wan` connects through the mappings), reboots the
//! router (`restart_miniupnpd`) and checks miniupnpd's own list with
//! `upnpc -l`.
//!
//! miniupnpd quirks this relies on are documented on the mappers
//! (`natpmp::NatPmpMapper`, `pcp::PcpMapper` module docs).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use natkit_core::{Mapping, MappingRequest, Mechanism, PortMapper, Protocol};
use natkit_lab::{Lab, LabChild, NatKind, Node};
use natkit_pmp::RetransmitPlan;
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};

/// The LAN host's ports; TCP is also held by the second LAN host, so the
/// router must substitute it.
const TCP_PORT: u16 = 18_443;
const UDP_PORT: u16 = 14_500;

// ------------------------------------------------------------- LAN helper

fn mapper(mech: &str, gateway: Ipv4Addr) -> Box<dyn PortMapper> {
    match mech {
        "natpmp" => Box::new(NatPmpMapper::new(
            gateway,
            NatPmpConfig {
                retransmit: RetransmitPlan::fast(),
                ..NatPmpConfig::default()
            },
        )),
        "pcp" => Box::new(PcpMapper::new(
            gateway,
            PcpConfig {
                retransmit: RetransmitPlan::fast(),
                fallback_to_natpmp: false,
                ..PcpConfig::default()
            },
        )),
        other => panic!("unknown mechanism {other}"),
    }
}

fn describe(kind: &str, m: &Mapping, req: &MappingRequest) -> String {
    format!(
        "{kind} {} {} {} substituted={} lifetime={} mechanism={} epoch={}",
        m.protocol,
        m.external,
        m.internal,
        m.port_substituted(req),
        m.lifetime.as_secs(),
        m.mechanism,
        m.epoch.map(|e| e.server_seconds).unwrap_or(u32::MAX),
    )
}

#[test]
#[ignore = "helper process body; natpmp_/pcp_through_miniupnpd run it in the LAN"]
fn lan_side() {
    let (addrs, rt) = natkit_testkit::lab_helper("lan_side");
    let mech = std::env::var("MECH").expect("MECH");
    let m = mapper(&mech, addrs.rtr_lan);
    // Listeners first, so the peer's traffic has somewhere to go.
    rt.block_on(async {
        let tcp = tokio::net::TcpListener::bind(("0.0.0.0", TCP_PORT))
            .await
            .expect("tcp listener");
        let udp = tokio::net::UdpSocket::bind(("0.0.0.0", UDP_PORT))
            .await
            .expect("udp socket");
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            loop {
                let (mut s, from) = tcp.accept().await.expect("accept");
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                println!("GOT tcp {from} {}", String::from_utf8_lossy(&buf).trim());
            }
        });
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let (n, from) = udp.recv_from(&mut buf).await.expect("recv");
                println!(
                    "GOT udp {from} {}",
                    String::from_utf8_lossy(&buf[..n]).trim()
                );
            }
        });
    });
    let available = rt.block_on(async {
        match &*mech {
            "natpmp" => {
                NatPmpMapper::new(addrs.rtr_lan, NatPmpConfig::default())
                    .is_available()
                    .await
            }
            _ => {
                PcpMapper::new(addrs.rtr_lan, PcpConfig::default())
                    .is_available()
                    .await
            }
        }
    });
    println!("AVAILABLE {available}");
    let external = rt.block_on(m.external_address()).expect("external address");
    println!("EXTERNAL {external}");

    let unspecified = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let reqs = [
        MappingRequest::new(Protocol::Tcp, SocketAddr::new(unspecified, TCP_PORT))
            .with_lifetime(Duration::from_secs(600)),
        MappingRequest::new(Protocol::Udp, SocketAddr::new(unspecified, UDP_PORT))
            .with_lifetime(Duration::from_secs(600)),
    ];
    let mut held: Vec<Mapping> = reqs
        .iter()
        .map(|r| {
            let m = rt.block_on(m.map(r)).expect("map");
            println!("{}", describe("MAPPED", &m, r));
            m
        })
        .collect();
    std::io::stdout().flush().expect("flush");

    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match line.trim() {
            "renew" => {
                for (r, h) in reqs.iter().zip(held.iter_mut()) {
                    let renewed = rt.block_on(m.renew(r, h)).expect("renew");
                    let continued = match (h.epoch, renewed.epoch) {
                        (Some(a), Some(b)) => a.is_continued_by(&b),
                        _ => false,
                    };
                    println!("{} continued={continued}", describe("RENEWED", &renewed, r));
                    *h = renewed;
                }
            }
            "delete" => {
                for h in &held {
                    rt.block_on(m.unmap(h)).expect("unmap");
                }
                println!("DELETED");
            }
            "exit" => break,
            other => panic!("unknown command {other:?}"),
        }
        std::io::stdout().flush().expect("flush");
    }
}

// ------------------------------------------------------------ outer tests

/// The helper's prefixed output lines, with a deadline per line.
struct Helper {
    child: LabChild,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Helper {
    fn start(lab: &Lab, mech: &str) -> Helper {
        let mut cmd = lab.test_helper(Node::Lan, "lan_side").expect("helper");
        cmd.env("MECH", mech)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = LabChild::spawn(&mut cmd).expect("spawn helper");
        let stdout = child.child_mut().stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Helper {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The rest of the next line tagged with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    // The test harness prints "test lan_side ... " on the
                    // helper's first line, so look for the tag anywhere.
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_owned();
                    }
                }
                Err(e) => panic!(
                    "helper gave no {prefix:?} line ({e}); it said:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.child.child_mut().stdin.as_mut().expect("stdin");
        writeln!(stdin, "{command}").expect("write to helper");
        stdin.flush().expect("flush");
    }
}

/// A parsed MAPPED/RENEWED line.
#[derive(Debug)]
struct Reported {
    protocol: String,
    external: SocketAddr,
    internal: SocketAddr,
    fields: Vec<(String, String)>,
}

impl Reported {
    fn parse(line: &str) -> Reported {
        let mut words = line.split_whitespace();
        let protocol = words.next().expect("protocol").to_owned();
        let external = words.next().expect("external").parse().expect("external");
        let internal = words.next().expect("internal").parse().expect("internal");
        let fields = words
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Reported {
            protocol,
            external,
            internal,
            fields,
        }
    }

    fn get(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {key} in {self:?}"))
    }
}

/// miniupnpd's own list of mappings, from the reference client.
fn upnpc_list(lab: &Lab) -> String {
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    let out = lab
        .exec(Node::Lan, &["upnpc", "-u", url.as_str(), "-l"])
        .expect("upnpc");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// upnpc -l lines for `protocol` external `port` to `internal`.
fn listed(list: &str, protocol: &str, port: u16, internal: SocketAddr) -> bool {
    let needle = format!("{port}->{internal}");
    list.lines()
        .any(|l| l.contains(&protocol.to_uppercase()) && l.contains(&needle))
}

/// A peer in `wan` sends `payload` to `to`; the helper must report it.
fn reach(lab: &Lab, helper: &mut Helper, protocol: &str, to: SocketAddr, payload: &str) {
    let script = match protocol {
        "tcp" => format!("echo {payload} | nc -N -w 3 {} {}", to.ip(), to.port()),
        _ => format!("echo {payload} | nc -u -w 1 {} {}", to.ip(), to.port()),
    };
    let out = lab
        .exec(Node::Wan, &["sh", "-c", script.as_str()])
        .expect("nc");
    assert!(
        out.status.success(),
        "peer could not send: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = helper.expect(&format!("GOT {protocol}"));
    // "GOT tcp <from> <payload>": the payload came from the wan peer.
    let (from, text) = got.split_once(' ').expect("from and payload");
    let from: SocketAddr = from.parse().expect("source");
    assert_eq!(from.ip(), IpAddr::V4(lab.addrs().peer), "{got}");
    assert_eq!(text, payload);
}

fn through_miniupnpd(mech: &str) {
    natkit_lab::require_root();
    let mut lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .lan2(true)
        .build()
        .expect("lab up");
    let a = *lab.addrs();
    let lan2 = a.lan2.expect("lan2");
    // The second LAN host holds TCP_PORT, so ours must be substituted.
    let port = TCP_PORT.to_string();
    let gw = a.rtr_lan.to_string();
    lab.exec_ok(
        Node::Lan2,
        &[
            "natpmpc",
            "-g",
            gw.as_str(),
            "-a",
            &port,
            &port,
            "tcp",
            "600",
        ],
    )
    .expect("lan2 holds the port");

    let mut h = Helper::start(&lab, mech);
    assert_eq!(h.expect("AVAILABLE"), "true");
    assert_eq!(h.expect("EXTERNAL"), a.rtr_wan.to_string());
    let tcp = Reported::parse(&h.expect("MAPPED"));
    let udp = Reported::parse(&h.expect("MAPPED"));
    assert_eq!(
        (tcp.protocol.as_str(), udp.protocol.as_str()),
        ("tcp", "udp")
    );
    for r in [&tcp, &udp] {
        assert_eq!(r.external.ip(), IpAddr::V4(a.rtr_wan));
        assert_eq!(r.internal.ip(), IpAddr::V4(a.lan));
        assert_eq!(r.get("lifetime"), "600");
        let expected = if mech == "pcp" {
            Mechanism::Pcp
        } else {
            Mechanism::NatPmp
        };
        assert_eq!(r.get("mechanism"), expected.as_str());
        assert_ne!(r.get("epoch"), u32::MAX.to_string());
    }
    assert_eq!(tcp.internal.port(), TCP_PORT);
    assert_ne!(tcp.external.port(), TCP_PORT, "lan2 holds {TCP_PORT}");
    assert_eq!(tcp.get("substituted"), "true");
    assert_eq!(udp.external.port(), UDP_PORT);
    assert_eq!(udp.get("substituted"), "false");

    let list = upnpc_list(&lab);
    assert!(
        listed(&list, "tcp", tcp.external.port(), tcp.internal),
        "{list}"
    );
    assert!(
        listed(&list, "udp", udp.external.port(), udp.internal),
        "{list}"
    );
    // lan2's mapping is untouched.
    assert!(
        listed(
            &list,
            "tcp",
            TCP_PORT,
            SocketAddr::new(IpAddr::V4(lan2), TCP_PORT)
        ),
        "{list}"
    );

    // The internet reaches the LAN host through the granted ports.
    reach(&lab, &mut h, "tcp", tcp.external, &format!("tcp-{mech}-1"));
    reach(&lab, &mut h, "udp", udp.external, &format!("udp-{mech}-1"));

    // Renew: same ports, same epoch. Wait first: miniupnpd's epoch counts
    // seconds since it started, and the RFC 6887 §8.5 rule tolerates the
    // server clock going back by one second and 2 s of drift, so a restart
    // can only be told from the epoch once the old one has passed ~2 s.
    std::thread::sleep(Duration::from_secs(3));
    h.send("renew");
    for before in [&tcp, &udp] {
        let r = Reported::parse(&h.expect("RENEWED"));
        assert_eq!(r.external, before.external);
        assert_eq!(r.get("continued"), "true");
        let epoch: u32 = r.get("epoch").parse().expect("epoch");
        assert!(epoch >= 3, "miniupnpd epoch {epoch} s after 3 s");
    }

    // Router reboot: miniupnpd restarts with an empty rule set and a new
    // epoch. The mappings are gone until renewed; the renewal sees the reset.
    lab.restart_miniupnpd().expect("restart miniupnpd");
    let list = upnpc_list(&lab);
    assert!(
        !listed(&list, "udp", udp.external.port(), udp.internal),
        "{list}"
    );
    h.send("renew");
    let tcp2 = Reported::parse(&h.expect("RENEWED"));
    let udp2 = Reported::parse(&h.expect("RENEWED"));
    assert_eq!(tcp2.get("continued"), "false", "epoch reset not seen");
    assert_eq!(udp2.get("continued"), "false", "epoch reset not seen");
    // lan2's hold on TCP_PORT was lost in the reboot too, so the TCP renewal
    // (which suggests the port we held) may get it or keep ours; either
    // way the report is what the router granted.
    let list = upnpc_list(&lab);
    assert!(
        listed(&list, "tcp", tcp2.external.port(), tcp2.internal),
        "{list}"
    );
    assert!(
        listed(&list, "udp", udp2.external.port(), udp2.internal),
        "{list}"
    );
    reach(&lab, &mut h, "tcp", tcp2.external, &format!("tcp-{mech}-2"));
    reach(&lab, &mut h, "udp", udp2.external, &format!("udp-{mech}-2"));

    // Delete: miniupnpd no longer lists them.
    h.send("delete");
    h.expect("DELETED");
    let list = upnpc_list(&lab);
    assert!(
        !listed(&list, "tcp", tcp2.external.port(), tcp2.internal),
        "{list}"
    );
    assert!(
        !listed(&list, "udp", udp2.external.port(), udp2.internal),
        "{list}"
    );
    h.send("exit");
    let status = h
        .child
        .wait_timeout(Duration::from_secs(10))
        .expect("wait helper");
    assert!(status.is_some_and(|s| s.success()), "helper: {status:?}");
}

#[test]
fn natpmp_through_miniupnpd() {
    through_miniupnpd("natpmp");
}

#[test]
fn pcp_through_miniupnpd() {
    through_miniupnpd("pcp");
}
