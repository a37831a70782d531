//! The classifier in the NAT lab. For each NAT kind, natkit's classifier runs in the
//! LAN against stund and against natkit's own server (both in the wan node, on the two
//! STUN addresses), [`RUNS`] times each through the `classify` API and twice each
//! through `natkit nat-type`, and must give the kind's legacy type every
//! time — and agree with stund's own client, also run [`RUNS`] times. With 30 %
//! loss at the router the answer is right or inconclusive, never wrong; with the
//! server unreachable it is "UDP blocked" within the classifier's timeout; the binding
//! lifetime comes out as the router's conntrack UDP timeout. Needs root; fails (never
//! skips) without it.
//!
//! The `natkit` binary (crate natkit-cli) is built up to date by
//! `natkit_lab::natkit_bin` on first use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use natkit_core::{Connectivity, FilteringBehaviour, LegacyNatType, MappingBehaviour};
use natkit_lab::{Lab, LabChild, Link, NatKind, Node, Proto, helper_addrs, require_root};
use natkit_stun::classify::{Classification, ClassifyConfig, ServerFlavor, classify};
use natkit_stun::client::RtoPlan;
use natkit_stun::server::{Server, ServerConfig};
use serde_json::Value;

/// Where natkit's own server listens in the wan node (stund has 3478/3479).
const OUR_PORT: u16 = 4478;
const OUR_ALT_PORT: u16 = 4479;
/// The env vars telling the LAN helper which servers to classify against, how often.
const TARGETS_ENV: &str = "NATKIT_STUN_LAB_TARGETS";
const RUNS_ENV: &str = "NATKIT_STUN_LAB_RUNS";
/// The line prefix the LAN helper prints each classification after.
const MARK: &str = "NATKIT_CLASSIFICATION ";
/// Runs per NAT kind and server.
const RUNS: usize = 10;
/// Runs per NAT kind and server with 30 % loss.
const LOSS_RUNS: usize = 5;

#[test]
#[ignore = "helper: run inside the lab's wan node by the lab tests"]
fn wan_server_helper() {
    let Some(addrs) = helper_addrs("wan_server_helper").expect("lab env") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = ServerConfig::with_alternate(
            SocketAddr::from((addrs.stun1, OUR_PORT)),
            SocketAddr::from((addrs.stun2, OUR_ALT_PORT)),
        );
        // The tests classify 10 times back to back from the one public address (up to
        // ~40 requests each, ~400/s); the default per-source refill (20/s) is for the
        // internet and would throttle them (they then come out inconclusive, never
        // wrong — see the classifier's rate-limit tests). The default burst stays.
        cfg.rate_limit.per_second = 1000.0;
        let server = Server::bind(cfg).await.expect("bind in wan");
        println!("serving on {:?}", server.local_addrs());
        server.run().await.expect("serve");
    });
}

#[test]
#[ignore = "helper: run inside the lab's LAN node by the lab tests"]
fn lan_classify_helper() {
    if helper_addrs("lan_classify_helper")
        .expect("lab env")
        .is_none()
    {
        return;
    }
    let targets = std::env::var(TARGETS_ENV).expect("targets");
    let runs: usize = std::env::var(RUNS_ENV)
        .expect("runs")
        .parse()
        .expect("a number");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Alternate between the servers so neither sees a burst of one client's runs.
    for _ in 0..runs {
        for target in targets.split(',') {
            let mut config = ClassifyConfig::new([target]);
            config.plan = RtoPlan::LAB;
            config.hairpinning = true;
            let c = rt.block_on(classify(config)).expect("classify");
            println!("{MARK}{}", serde_json::to_string(&c).expect("json"));
        }
    }
}

/// The env var telling the LAN padding helper the request's PADDING length.
const PAD_ENV: &str = "NATKIT_STUN_LAB_PAD";
/// The line prefix the LAN padding helper prints its result after.
const PAD_MARK: &str = "NATKIT_PADDED ";

#[test]
#[ignore = "helper: run inside the lab's LAN node by the lab tests"]
fn lan_padding_helper() {
    use natkit_stun::attr::{Padding, XorMappedAddress};
    use natkit_stun::{Class, Message, MessageBuilder, Method, TransactionId};
    if helper_addrs("lan_padding_helper")
        .expect("lab env")
        .is_none()
    {
        return;
    }
    let target: SocketAddr = std::env::var(TARGETS_ENV)
        .expect("target")
        .parse()
        .expect("an address");
    let pad: u16 = std::env::var(PAD_ENV)
        .expect("pad")
        .parse()
        .expect("a number");
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut req = vec![0u8; 9000];
    let t = TransactionId::new(rand::random());
    let mut b = MessageBuilder::new(&mut req, Class::Request, Method::BINDING, t).expect("hdr");
    b.add_attr(&Padding(pad)).expect("padding");
    let len = b.finish_with_fingerprint().expect("fingerprint");
    let mut buf = vec![0u8; 9000];
    // Three tries: the lab is loss-free, but a first fragmented datagram may race ARP.
    for _ in 0..3 {
        sock.send_to(&req[..len], target).expect("send");
        let Ok(n) = sock.recv(&mut buf) else { continue };
        let msg = Message::new_checked(&buf[..n]).expect("a STUN message");
        assert_eq!(msg.transaction_id(), t);
        assert_eq!(msg.class(), Class::SuccessResponse);
        msg.check_fingerprint().expect("fingerprint");
        let mapped = msg.get::<XorMappedAddress>().expect("decodes");
        let padding = msg.get::<Padding>().expect("decodes").map_or(0, |p| p.0);
        println!(
            "{PAD_MARK}request {len} response {n} padding {padding} mapped {:?}",
            mapped.map(|m| m.0)
        );
        return;
    }
    println!("{PAD_MARK}request {len} no answer");
}

/// The `natkit` binary, built up to date on first use.
fn natkit_bin() -> PathBuf {
    natkit_lab::natkit_bin()
}

/// Runs `natkit nat-type ARGS` in the LAN; returns its output and wall time.
fn nat_type(lab: &Lab, args: &[String]) -> (Output, Duration) {
    // Built (or found current) before the clock starts: the build may wait for
    // cargo's lock while other tests build.
    let natkit = natkit_bin();
    let t = Instant::now();
    let out = lab
        .command(Node::Lan, natkit)
        .arg("nat-type")
        .args(args)
        .output()
        .expect("run nat_type in the LAN");
    (out, t.elapsed())
}

/// `nat_type --json` against `server`, checked to exit 0 with one JSON document.
fn nat_type_json(lab: &Lab, server: SocketAddr, extra: &[&str]) -> Value {
    let mut args = vec!["--stun".to_owned(), server.to_string(), "--json".into()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let (out, _) = nat_type(lab, &args);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", natkit_lab::dump_output(&out)))
}

/// The legacy type stund's client reports on its "Primary:" line.
fn stund_verdict(lab: &Lab) -> (LegacyNatType, Option<bool>, String) {
    let server = lab.addrs().stun1.to_string();
    let out = lab
        .exec(Node::Lan, &["stun", server.as_str(), "-v"])
        .expect("stun");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let primary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Primary: "))
        .unwrap_or_else(|| panic!("no verdict from stun:\n{stdout}"))
        .trim()
        .to_owned();
    let legacy = if primary.starts_with("Open") {
        LegacyNatType::Open
    } else if primary.starts_with("Dependent Mapping") {
        LegacyNatType::Symmetric
    } else if primary.contains("Independent Filter") {
        LegacyNatType::FullCone
    } else if primary.contains("Address Dependent Filter") {
        LegacyNatType::RestrictedCone
    } else if primary.contains("Port Dependent Filter") {
        LegacyNatType::PortRestrictedCone
    } else {
        panic!("unknown stun verdict {primary:?}")
    };
    let hairpin = if primary.contains("no hairpin") {
        Some(false)
    } else if primary.contains("will hairpin") {
        Some(true)
    } else {
        None
    };
    (legacy, hairpin, primary)
}

fn stund_addr(lab: &Lab) -> SocketAddr {
    SocketAddr::from((lab.addrs().stun1, 3478))
}

fn our_addr(lab: &Lab) -> SocketAddr {
    SocketAddr::from((lab.addrs().stun1, OUR_PORT))
}

/// Runs natkit's classifier in the LAN `runs` times against stund and natkit's
/// server (alternating); returns the classifications, stund's first.
fn classify_in_lan(lab: &Lab, runs: usize) -> Vec<Classification> {
    let out = lab
        .test_helper(Node::Lan, "lan_classify_helper")
        .expect("helper")
        .env(
            TARGETS_ENV,
            format!("{},{}", stund_addr(lab), our_addr(lab)),
        )
        .env(RUNS_ENV, runs.to_string())
        .output()
        .expect("run the classifier in the LAN");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "helper failed: {}",
        natkit_lab::dump_output(&out)
    );
    let results: Vec<Classification> = stdout
        .lines()
        .filter_map(|l| l.split_once(MARK).map(|(_, json)| json))
        .map(|j| serde_json::from_str(j).expect("classification json"))
        .collect();
    assert_eq!(results.len(), 2 * runs, "{stdout}");
    results
}

fn lab_with_stund(kind: NatKind) -> Lab {
    Lab::builder()
        .nat(kind)
        .stund(true)
        .build()
        .expect("lab up")
}

/// Runs `check` for every (kind, answer) in its own lab, all at once
/// ([`natkit_lab::all_at_once`]); fails with every failure's message.
fn for_each_kind_at_once<T: Send + 'static>(
    kinds: &[(NatKind, LegacyNatType)],
    check: fn(NatKind, LegacyNatType) -> T,
) -> Vec<T> {
    natkit_lab::all_at_once(
        kinds
            .iter()
            .map(|&(kind, want)| (kind.to_string(), move || check(kind, want)))
            .collect(),
    )
}

/// Starts natkit's server in the wan node (killed when the returned child drops).
fn start_our_server(lab: &Lab) -> LabChild {
    let mut cmd = lab
        .test_helper(Node::Wan, "wan_server_helper")
        .expect("helper");
    cmd.stdout(std::process::Stdio::null());
    let child = LabChild::spawn(&mut cmd).expect("start our server");
    lab.wait_listening(Node::Wan, Proto::Udp, OUR_ALT_PORT, Duration::from_secs(10))
        .expect("our server listens");
    child
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One NAT kind: stund's client, the classify API and the nat_type binary, all
/// against both servers, all [`RUNS`] times (the binary twice per server).
fn check_kind(kind: NatKind, want: LegacyNatType) -> String {
    let lab = lab_with_stund(kind);
    let _server = start_our_server(&lab);

    let mut stund_hairpin = None;
    for run in 0..RUNS {
        let (says, hairpin, line) = stund_verdict(&lab);
        assert_eq!(says, want, "{kind}, stund's client run {run}: {line:?}");
        stund_hairpin = hairpin;
    }

    let results = classify_in_lan(&lab, RUNS);
    let conn = if kind == NatKind::Open {
        Connectivity::NoNat
    } else {
        Connectivity::Nat
    };
    let mut times = [Vec::new(), Vec::new()];
    for (i, c) in results.iter().enumerate() {
        let (server, flavor) = [
            ("stund", ServerFlavor::Rfc3489),
            ("natkit", ServerFlavor::Rfc5780),
        ][i % 2];
        let what = format!("{kind} against {server}, run {}: {c:#?}", i / 2);
        assert_eq!(c.legacy, want, "{what}");
        assert_eq!(c.servers[0].flavor, flavor, "{what}");
        let external = c.external.expect("external address");
        assert_eq!(
            external.ip(),
            std::net::IpAddr::V4(lab.addrs().public),
            "{what}"
        );
        assert_eq!(c.behaviour.connectivity, conn, "{what}");
        // stund's client says "no hairpin" for every lab NAT; ours must agree
        // whenever it concluded (it may not, for open: there is no NAT to test).
        if let (Some(ours), Some(theirs)) = (c.behaviour.hairpinning, stund_hairpin) {
            assert_eq!(ours, theirs, "hairpinning disagrees with stund's: {what}");
        }
        // A miss proves "no hairpinning" only where the looped-back request would
        // pass the filter: through the same mapping (endpoint-independent mapping) or
        // a filter open to all. On the symmetric NAT it says why it cannot tell.
        let b = c.behaviour;
        if conn == Connectivity::Nat
            && (b.mapping == MappingBehaviour::EndpointIndependent
                || b.filtering == FilteringBehaviour::EndpointIndependent)
        {
            assert!(b.hairpinning.is_some(), "{what}");
        } else if conn == Connectivity::Nat && b.hairpinning.is_none() {
            assert!(
                c.notes.iter().any(|n| n.starts_with("hairpinning")),
                "{what}"
            );
        }
        times[i % 2].push(c.elapsed);
    }

    // `natkit nat-type`, twice per server, --json, once with --hairpinning.
    for server in [stund_addr(&lab), our_addr(&lab)] {
        for extra in [&[][..], &["--hairpinning"][..]] {
            let doc = nat_type_json(&lab, server, extra);
            let what = format!("{kind}, nat_type --stun {server} {extra:?}: {doc:#}");
            assert_eq!(
                doc["legacy_type"],
                serde_json::to_value(want).expect("json"),
                "{what}"
            );
            let ext: SocketAddr = doc["external_address"]
                .as_str()
                .expect("external_address")
                .parse()
                .expect("an address");
            assert_eq!(ext.ip(), std::net::IpAddr::V4(lab.addrs().public), "{what}");
            assert_eq!(
                doc.get("hairpinning").is_some(),
                !extra.is_empty(),
                "{what}"
            );
            assert!(doc.get("binding_lifetime").is_none(), "{what}");
        }
    }
    let [stund_times, our_times] = times;
    format!(
        "{kind}: {RUNS}× {want} from stund's client, {RUNS}× against stund (median {:?}), \
         {RUNS}× against natkit's server (median {:?}), nat_type binary 4×",
        median(stund_times),
        median(our_times)
    )
}

/// Every NAT kind, each in its own lab, all at once (they are independent).
#[test]
fn lab_every_kind_ten_runs_agreeing_with_stund() {
    require_root();
    let kinds = [
        (NatKind::Open, LegacyNatType::Open),
        (NatKind::FullCone, LegacyNatType::FullCone),
        (NatKind::RestrictedCone, LegacyNatType::RestrictedCone),
        (NatKind::PortRestricted, LegacyNatType::PortRestrictedCone),
        (NatKind::Symmetric, LegacyNatType::Symmetric),
    ];
    for summary in for_each_kind_at_once(&kinds, check_kind) {
        println!("{summary}");
    }
}

/// 30 % loss at the router on either side (a round trip through it loses about
/// half): right or inconclusive, never a wrong type. Restricted cone is the kind
/// most at risk (its verdict rests on answers that loss could hide), port-restricted
/// the one the speed target is about.
fn check_loss(kind: NatKind, want: LegacyNatType) -> (NatKind, usize, usize) {
    let runs = LOSS_RUNS;
    let lab = Lab::builder()
        .nat(kind)
        .stund(true)
        .loss(30)
        .build()
        .expect("lab up");
    let _server = start_our_server(&lab);
    let results = classify_in_lan(&lab, runs);
    let mut right = 0;
    for (i, c) in results.iter().enumerate() {
        println!(
            "{kind} with 30 % loss, run {}, server {:?}: {} in {:?}; notes {:?}",
            i / 2,
            c.behaviour_server,
            c.legacy,
            c.elapsed,
            c.notes
        );
        assert!(
            c.legacy == want || c.legacy == LegacyNatType::Inconclusive,
            "{kind} with loss: {c:#?}"
        );
        assert!(
            matches!(
                c.behaviour.connectivity,
                Connectivity::Nat | Connectivity::Inconclusive
            ),
            "{c:#?}"
        );
        if c.legacy == want {
            right += 1;
        }
    }
    // The binary under loss too.
    for server in [stund_addr(&lab), our_addr(&lab)] {
        let doc = nat_type_json(&lab, server, &[]);
        let got = &doc["legacy_type"];
        assert!(
            *got == serde_json::to_value(want).expect("json")
                || *got == serde_json::to_value(LegacyNatType::Inconclusive).expect("json"),
            "{kind} with loss, nat_type: {doc:#}"
        );
    }
    (kind, right, results.len())
}

#[test]
fn lab_thirty_percent_loss_is_never_wrong() {
    require_root();
    let kinds = [
        (NatKind::PortRestricted, LegacyNatType::PortRestrictedCone),
        (NatKind::RestrictedCone, LegacyNatType::RestrictedCone),
    ];
    for (kind, right, total) in for_each_kind_at_once(&kinds, check_loss) {
        println!("{kind} with 30 % loss: {right} of {total} right, the rest inconclusive");
    }
}

/// The router loses its uplink: no server answers, and nat_type says so (UDP
/// blocked, exit 1) within the classifier's timeout: three rounds of test I on the
/// default plan (RTO 100 ms, 4 sends, 1.5 s each).
#[test]
fn lab_unreachable_server_is_udp_blocked_in_time() {
    require_root();
    let lab = lab_with_stund(NatKind::PortRestricted);
    lab.set_link(Link::RtrWan, false).expect("uplink down");
    let limit = RtoPlan::FAST.give_up_after() * 3;
    for json in [false, true] {
        let mut args = vec!["--stun".to_owned(), stund_addr(&lab).to_string()];
        if json {
            args.push("--json".into());
        }
        let (out, took) = nat_type(&lab, &args);
        println!(
            "unreachable, json {json}: exit {:?} after {took:?}",
            out.status
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            natkit_lab::dump_output(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("no STUN server answered"),
            "{}",
            natkit_lab::dump_output(&out)
        );
        if json {
            let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
            assert_eq!(doc["legacy_type"], "udp_blocked", "{doc:#}");
            assert_eq!(doc["connectivity"], "udp_blocked", "{doc:#}");
        } else {
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("udp_blocked"),
                "{}",
                natkit_lab::dump_output(&out)
            );
        }
        // The rule itself is proven exactly on tokio's paused clock
        // (`nothing_answering_is_udp_blocked_after_three_rounds_of_test_i` in
        // tests/loopback.rs); here the whole process is timed. Process start and the
        // lab's `ip netns exec` on a busy machine: 1 s slack.
        assert!(
            took >= limit && took < limit + Duration::from_secs(1),
            "took {took:?}, the timeout is {limit:?}"
        );
    }
}

/// RFC 5780 §7.6: a request padded past the link MTU arrives in fragments, and the
/// answer (PADDING echoed up to the request's size) must leave the server in fragments
/// too. The server sends short replies with DF and no fragmentation (IP_PMTUDISC_PROBE);
/// this proves the long ones still take the fragmenting path. The lab's links are
/// 1500-byte veths, so 1400 bytes go whole and 1900 bytes in two fragments each way,
/// through the router's NAT (the server reads datagrams up to 2048 bytes).
#[test]
fn lab_padded_request_past_the_mtu_is_answered_in_fragments() {
    require_root();
    let lab = lab_with_stund(NatKind::PortRestricted);
    let _server = start_our_server(&lab);
    for pad in [1400u16, 1900] {
        let out = lab
            .test_helper(Node::Lan, "lan_padding_helper")
            .expect("helper")
            .env(TARGETS_ENV, our_addr(&lab).to_string())
            .env(PAD_ENV, pad.to_string())
            .output()
            .expect("run the padding helper in the LAN");
        assert!(
            out.status.success(),
            "helper failed: {}",
            natkit_lab::dump_output(&out)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout
            .lines()
            .find_map(|l| l.split_once(PAD_MARK).map(|(_, r)| r.to_owned()))
            .unwrap_or_else(|| panic!("no result: {}", natkit_lab::dump_output(&out)));
        println!("padding {pad}: {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words.get(2),
            Some(&"response"),
            "no answer to {pad}: {line}"
        );
        let req: usize = words[1].parse().expect("request length");
        let resp: usize = words[3].parse().expect("response length");
        let echoed: usize = words[5].parse().expect("padding length");
        // Echoed up to the request's size, never past it.
        assert!(resp <= req && resp + 64 > req, "{line}");
        assert!(echoed + 64 > usize::from(pad), "{line}");
        assert!(line.contains(&lab.addrs().public.to_string()), "{line}");
    }
}

/// Binding lifetime discovery against a known lifetime: the router's conntrack UDP
/// timeout set to 3 s (per namespace). A request and its answer within 2 s leave a
/// UDP conntrack entry on `nf_conntrack_udp_timeout`, not the longer
/// `_timeout_stream`, and the entry is the binding. Probed up to 6 s in 12 steps,
/// the bracket must hold 3 s within one step. stund cannot do it (no RESPONSE-PORT).
#[test]
fn lab_binding_lifetime_is_the_conntrack_timeout() {
    require_root();
    let lab = lab_with_stund(NatKind::PortRestricted);
    let _server = start_our_server(&lab);
    lab.exec_ok(
        Node::Rtr,
        &["sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=3"],
    )
    .expect("set the conntrack UDP timeout");
    // Built (or found up to date) before the clock starts: only the run is timed.
    natkit_bin();
    let t = Instant::now();
    let doc = nat_type_json(
        &lab,
        our_addr(&lab),
        &["--lifetime", "6", "--lifetime-steps", "12"],
    );
    let took = t.elapsed();
    println!(
        "binding lifetime in {took:?}: {:#}",
        doc["binding_lifetime"]
    );
    assert_eq!(doc["legacy_type"], "port_restricted_cone", "{doc:#}");
    let l = &doc["binding_lifetime"];
    assert_eq!(l["conclusive"], true, "{l:#}");
    let at_least = l["at_least_s"].as_f64().expect("at_least_s");
    let less_than = l["less_than_s"].as_f64().expect("less_than_s");
    // Steps of 0.5 s: alive at 2.5 s (3.0 s is on the edge either way), gone by 3.5 s.
    assert!((2.5..=3.0).contains(&at_least), "{l:#}");
    assert!((3.0..=3.5).contains(&less_than), "{l:#}");
    assert_eq!(l["steps"].as_array().map(Vec::len), Some(13), "{l:#}");
    // Bounded: about the maximum asked for (6 s), not a sum of waits (0.5 + 1 + … + 6 =
    // 39 s); exactly the maximum on tokio's paused clock
    // (`binding_lifetime_steps_run_at_once` in tests/loopback.rs). The slack covers process start-up while the other lab tests load the
    // machine (9 s was once exceeded with every lab test running at once).
    assert!(took < Duration::from_secs(15), "took {took:?}");

    // stund has no RESPONSE-PORT: not measured, with a note saying why.
    let doc = nat_type_json(&lab, stund_addr(&lab), &["--lifetime", "2"]);
    assert!(doc["binding_lifetime"].is_null(), "{doc:#}");
    assert!(
        doc["notes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n.as_str().is_some_and(|s| s.contains("RESPONSE-PORT")))),
        "{doc:#}"
    );
}
