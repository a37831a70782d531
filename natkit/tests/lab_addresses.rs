//! `natkit::AddressQuery::run_both` (what `external_addresses()` runs) in the lab:
//! natkit's `stun-server` in the wan node on STUN1/STUN2 and, in a dual-stack lab,
//! STUN1_6/STUN2_6; miniupnpd on the router (UPnP, NAT-PMP and PCP report its
//! external address). A helper in the LAN host asks a name with an A and an AAAA
//! record, STUN2 and STUN2_6, and the router:
//!
//! - dual-stack: the IPv4 address is the NAT's public one, agreed by both STUN
//!   servers' IPv4 addresses and the router, no IPv6 server among its evidence;
//!   the IPv6 address is one of the LAN host's own (no NAT), agreed by both IPv6
//!   servers;
//! - IPv4-only lab: the same IPv4 answer, and IPv6 "no IPv6 on this host" from a
//!   route lookup, not a timeout.
//!
//! Root only; fails, never skips, without it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use natkit::AddressQuery;
use natkit::stun::client::NoAddress;
use natkit_lab::{Lab, LabChild, NatKind, Node, Proto};

const HELPER: &str = "lan_side_addresses";
const MARK: &str = "NKADDR ";
const PORT: u16 = 4478;
const ALT_PORT: u16 = 4479;
/// A name with an A record (STUN1) and, in the dual-stack lab, an AAAA (STUN1_6).
const DUAL_NAME: &str = "stun.natkit-lab.test";
/// STUN2_6, also asked where the lab has no IPv6.
const STUN2_6: &str = "2a0d:88:77:66::11";

#[test]
#[ignore = "helper: runs inside the lab's LAN host, started by the lab_addresses tests"]
fn lan_side_addresses() {
    let a = natkit_lab::helper_addrs(HELPER)
        .expect("lab env")
        .expect("in the lab");
    let servers = [
        format!("{DUAL_NAME}:{PORT}"),
        SocketAddr::from((a.stun2, PORT)).to_string(),
        SocketAddr::from((STUN2_6.parse::<Ipv6Addr>().expect("ip"), PORT)).to_string(),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let both = rt.block_on(AddressQuery::new().servers(servers).run_both());
    match &both.ipv4 {
        Ok(v4) => {
            for e in &v4.evidence {
                println!("{MARK}v4-evidence {e}");
            }
            println!("{MARK}v4 {} {}", v4.ip, v4.agreeing().count());
        }
        Err(e) => println!("{MARK}v4-none {e}"),
    }
    match &both.ipv6 {
        Ok(v6) => println!("{MARK}v6 {} {}", v6.ip, v6.agreeing().count()),
        Err(NoAddress::NoRoute { error, .. }) => println!("{MARK}v6-no-route {error}"),
        Err(e) => println!("{MARK}v6-none {e}"),
    }
    println!("{MARK}ms {}", both.elapsed.as_millis());
}

/// natkit's `stun-server` in wan, on both families where the lab has them.
fn start_server(lab: &Lab) -> LabChild {
    let a = *lab.addrs();
    let mut cmd = lab.command(Node::Wan, natkit_lab::natkit_bin());
    cmd.arg("stun-server")
        .args(["--bind", &SocketAddr::from((a.stun1, PORT)).to_string()])
        .args([
            "--alternate",
            &SocketAddr::from((a.stun2, ALT_PORT)).to_string(),
        ]);
    if let Some(v6) = a.v6 {
        cmd.args(["--bind", &SocketAddr::from((v6.stun1, PORT)).to_string()])
            .args([
                "--alternate",
                &SocketAddr::from((v6.stun2, ALT_PORT)).to_string(),
            ]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start natkit's stun-server");
    lab.wait_listening(Node::Wan, Proto::Udp, ALT_PORT, Duration::from_secs(10))
        .expect("natkit's stun-server listens");
    child
}

/// The helper's lines: (what, the rest).
fn ask(lab: &Lab) -> Vec<(String, String)> {
    let lines = lab.helper_lines(Node::Lan, HELPER, MARK);
    for l in &lines {
        println!("helper: {l}");
    }
    lines
        .iter()
        .map(|l| {
            let (what, rest) = l.split_once(' ').unwrap_or((l, ""));
            (what.to_owned(), rest.to_owned())
        })
        .collect()
}

fn line<'a>(lines: &'a [(String, String)], what: &str) -> &'a str {
    lines
        .iter()
        .find(|(w, _)| w == what)
        .map(|(_, rest)| rest.as_str())
        .unwrap_or_else(|| panic!("no {what} line: {lines:?}"))
}

/// The IPv4 answer both labs must give: the NAT's public address, agreed by the
/// two IPv4 STUN addresses and the router's three protocols, no IPv6 server voting.
fn assert_ipv4(lab: &Lab, lines: &[(String, String)]) {
    let public = lab.addrs().public;
    let v4 = line(lines, "v4");
    assert_eq!(v4, format!("{public} 5"), "{lines:?}");
    let evidence: Vec<&str> = lines
        .iter()
        .filter(|(w, _)| w == "v4-evidence")
        .map(|(_, r)| r.as_str())
        .collect();
    assert_eq!(evidence.len(), 5, "{evidence:?}");
    assert!(
        evidence.iter().all(|e| !e.contains(STUN2_6)),
        "an IPv6 server voted on the IPv4 address: {evidence:?}"
    );
    for m in ["stun", "upnp", "natpmp", "pcp"] {
        assert!(
            evidence.iter().any(|e| e.starts_with(&format!("{m} "))),
            "{m}: {evidence:?}"
        );
    }
}

#[test]
fn both_families_side_by_side() {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .ipv6(true)
        .dns([(DUAL_NAME, std::net::Ipv4Addr::new(88, 77, 66, 10))])
        .dns_aaaa([(DUAL_NAME, "2a0d:88:77:66::10".parse().expect("ipv6"))])
        .up();
    let _server = start_server(&lab);
    let lines = ask(&lab);
    assert_ipv4(&lab, &lines);
    let v6 = lab.addrs().v6.expect("dual-stack");
    let (ip, agreeing) = line(&lines, "v6")
        .split_once(' ')
        .unwrap_or_else(|| panic!("{lines:?}"));
    let ip: IpAddr = ip.parse().expect("an IPv6 address");
    // No NAT: the address the servers see is one of the LAN host's own, the one it
    // sends from (with use_tempaddr=2, the temporary one).
    let own = [v6.lan, v6.lan_slaac, v6.lan_temp];
    assert!(
        matches!(ip, IpAddr::V6(six) if own.contains(&six)),
        "{ip} not in {own:?}"
    );
    assert_eq!(agreeing, "2", "{lines:?}");
}

#[test]
fn an_ipv4_only_lab_says_no_ipv6_at_once() {
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .miniupnpd(true)
        .dns([(DUAL_NAME, std::net::Ipv4Addr::new(88, 77, 66, 10))])
        .up();
    assert!(lab.addrs().v6.is_none());
    let _server = start_server(&lab);
    let lines = ask(&lab);
    assert_ipv4(&lab, &lines);
    // A route lookup says it, not a timeout: no IPv6 server was waited for.
    let why = line(&lines, "v6-no-route");
    assert!(why.contains("IPv6"), "{why}");
}
