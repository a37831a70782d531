//! The default server list in the NAT lab, with the lab's own DNS (root only;
//! fails, never skips, without it).
//!
//! The lab's DNS server (dnsmasq in wan, forwarding nowhere) is the LAN host's
//! only nameserver. It maps ONE of [`DEFAULT_SERVERS`]' RFC 5780 names — not
//! the first — to the lab's STUN server (stund, STUN1:3478) and answers
//! NXDOMAIN for every other name; the classifier, given the defaults and
//! nothing else, must still say port-restricted cone on the port-restricted
//! NAT, tested with that server. With no name resolving, or with a resolver
//! that never answers, it must fail with the typed resolve error in bounded
//! time. The dnsmasq log proves every query stayed in the lab. Each case runs
//! through the library (a helper in the LAN) and through `natkit nat-type`
//! with no `--stun`, as a user runs it.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use natkit_core::LegacyNatType;
use natkit_lab::{Daemon, Lab, NatKind, Node, require_root};
use natkit_stun::classify::{ClassifyConfig, classify};
use natkit_stun::client::{RESOLVE_TIMEOUT, ResolveFailure};
use natkit_stun::{DEFAULT_SERVERS, Error, default_servers};
use serde_json::{Value, json};

/// The line prefix the LAN helper prints its result after.
const MARK: &str = "NATKIT_DEFAULTS ";
/// Runs of the answering case, each on fresh NAT state.
const RUNS: usize = 5;
/// natlab.sh's STUN1, where stund listens; the DNS entry is written before the
/// lab exists (checked against the lab's env once it does).
const LAB_STUN1: Ipv4Addr = Ipv4Addr::new(88, 77, 66, 10);

#[test]
#[ignore = "helper: the classifier with the default servers in the LAN, run by the lab_defaults tests"]
fn lan_defaults_helper() {
    natkit_lab::helper_addrs("lan_defaults_helper")
        .expect("lab env")
        .expect("lan_defaults_helper runs only inside a lab, started by the lab_defaults tests");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let result = rt.block_on(classify(ClassifyConfig::new(default_servers())));
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let result = match result {
        Ok(c) => json!({ "ok": c }),
        Err(e) => {
            let resolve = match &e {
                Error::Resolve { name, failure } => {
                    json!({ "name": name, "failure": format!("{failure:?}") })
                }
                _ => Value::Null,
            };
            json!({ "err": { "message": e.to_string(), "resolve": resolve } })
        }
    };
    println!("{MARK}{}", json!({ "ms": ms, "result": result }));
    // The runtime is dropped as any program's would be: a lookup still blocked in
    // the resolver (the silent DNS case) must not hold the process's exit.
    drop(rt);
}

/// One helper run: what the classifier returned, how long it took inside, and
/// how long the whole process took.
struct Run {
    result: Value,
    classify_ms: f64,
    process_ms: f64,
}

fn run_helper(lab: &Lab) -> Run {
    let started = Instant::now();
    let lines = lab.helper_lines(Node::Lan, "lan_defaults_helper", MARK);
    let process_ms = started.elapsed().as_secs_f64() * 1000.0;
    let [line] = lines.as_slice() else {
        panic!("expected one result line: {lines:?}");
    };
    let v: Value = serde_json::from_str(line).expect("result json");
    Run {
        result: v["result"].clone(),
        classify_ms: v["ms"].as_f64().expect("ms"),
        process_ms,
    }
}

/// `natkit nat-type ARGS` in the LAN: its output and how long the process took (ms).
fn nat_type(lab: &Lab, args: &[&str]) -> (std::process::Output, f64) {
    // Built (on first use) before the clock starts.
    let bin = natkit_lab::natkit_bin();
    let started = Instant::now();
    let out = lab
        .command(Node::Lan, bin)
        .arg("nat-type")
        .args(args)
        .output()
        .expect("run natkit nat-type");
    (out, started.elapsed().as_secs_f64() * 1000.0)
}

/// `natkit nat-type` fails naming the first default name's resolve failure.
fn assert_cli_resolve_failure(lab: &Lab, failure: &[&str]) -> f64 {
    let (out, ms) = nat_type(lab, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        natkit_lab::dump_output(&out)
    );
    let first = DEFAULT_SERVERS[0].name;
    assert!(
        failure
            .iter()
            .any(|f| stderr.contains(&format!("error: cannot resolve {first}: {f}"))),
        "{}",
        natkit_lab::dump_output(&out)
    );
    println!("  natkit nat-type: {} in {ms:.0} ms", stderr.trim());
    ms
}

/// The default entry the lab maps: an RFC 5780 one, not the first.
fn mapped_entry() -> (&'static str, u16) {
    let entry = DEFAULT_SERVERS[2];
    assert!(
        entry.rfc5780,
        "{entry:?} is listed as able to test filtering"
    );
    let (host, port) = entry.name.rsplit_once(':').expect("host:port");
    (host, port.parse().expect("port"))
}

/// The dnsmasq log: every query answered locally, none forwarded.
fn dns_log(lab: &Lab) -> String {
    let log = std::fs::read_to_string(lab.run_dir().join("dnsmasq.log")).expect("dnsmasq.log");
    assert!(
        !log.contains("forwarded"),
        "a query left the lab's DNS:\n{log}"
    );
    log
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

#[test]
fn lab_defaults_answer_port_restricted_with_one_server_resolving() {
    require_root();
    let (host, port) = mapped_entry();
    assert_eq!(port, 3478, "the lab's stund listens on 3478");
    let lab = Lab::builder()
        .nat(NatKind::PortRestricted)
        .stund(true)
        .dns([(host, LAB_STUN1)])
        .up();
    let a = *lab.addrs();
    assert_eq!(a.stun1, LAB_STUN1);
    let stun = format!("{}:{port}", a.stun1);
    let mut classify_ms = Vec::new();
    let mut process_ms = Vec::new();
    for _ in 0..RUNS {
        lab.reset_nat().expect("reset-nat");
        let run = run_helper(&lab);
        let c = &run.result["ok"];
        assert!(c.is_object(), "classify failed: {}", run.result);
        assert_eq!(
            serde_json::from_value::<LegacyNatType>(c["legacy"].clone()).expect("legacy"),
            LegacyNatType::PortRestrictedCone,
            "{c}"
        );
        assert_eq!(c["behaviour_server"], json!(stun), "{c}");
        // The report names it: the server checks carry the name it was given as.
        let used: Vec<&Value> = c["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .filter(|s| s["server"] == json!(stun))
            .collect();
        assert_eq!(used.len(), 1, "{c}");
        assert_eq!(used[0]["name"], json!(format!("{host}:{port}")), "{c}");
        assert_eq!(used[0]["usable_for_behaviour"], json!(true), "{c}");
        classify_ms.push(run.classify_ms);
        process_ms.push(run.process_ms);
    }
    println!(
        "defaults, {host} -> {stun}, others NXDOMAIN: port_restricted_cone {RUNS}/{RUNS}; \
         classify ms {:?}; helper process ms {:?}",
        sorted(classify_ms),
        sorted(process_ms)
    );
    // The tool, as a user runs it.
    lab.reset_nat().expect("reset-nat");
    let (out, ms) = nat_type(&lab, &["--json"]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("nat-type json");
    assert_eq!(doc["legacy_type"], "port_restricted_cone", "{doc:#}");
    assert_eq!(doc["behaviour_server"], json!(stun), "{doc:#}");
    let named = doc["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .any(|s| s["name"] == json!(format!("{host}:{port}")) && s["server"] == json!(stun));
    assert!(named, "{doc:#}");
    println!("  natkit nat-type --json: port_restricted_cone in {ms:.0} ms");
    let log = dns_log(&lab);
    for s in DEFAULT_SERVERS {
        let name = s.name.rsplit_once(':').expect("host:port").0;
        assert!(
            log.contains(&format!("query[A] {name} ")),
            "the defaults are looked up at once; {name} was not:\n{log}"
        );
    }
    assert!(log.contains(&format!("{host} is {}", a.stun1)), "{log}");
    lab.down().expect("lab down");
}

/// Asserts a resolve failure of the first default name with one of `want`.
fn assert_resolve_failure(run: &Run, want: &[ResolveFailure]) {
    let err = &run.result["err"];
    assert!(err.is_object(), "expected an error, got {}", run.result);
    let first = DEFAULT_SERVERS[0].name;
    assert_eq!(err["resolve"]["name"], json!(first), "{err}");
    let failure = err["resolve"]["failure"].as_str().expect("failure");
    assert!(
        want.iter().any(|w| failure == format!("{w:?}")),
        "{failure} is not one of {want:?}: {err}"
    );
    let message = err["message"].as_str().expect("message");
    assert!(
        message.starts_with(&format!("cannot resolve {first}: ")),
        "{message}"
    );
}

#[test]
fn lab_defaults_fail_typed_when_no_name_resolves() {
    let lab = Lab::builder()
        .stund(true)
        .dns(Vec::<(String, _)>::new())
        .up();
    let run = run_helper(&lab);
    assert_resolve_failure(&run, &[ResolveFailure::NoSuchName]);
    println!(
        "DNS up, every name NXDOMAIN: {} in {:.1} ms (process {:.0} ms)",
        run.result["err"]["message"], run.classify_ms, run.process_ms
    );
    assert!(dns_log(&lab).contains("is NXDOMAIN"));
    assert_cli_resolve_failure(&lab, &["no such name"]);

    // The DNS server's host up, the server gone. Its host answers with ICMP port
    // unreachable, but Linux sends one host at most 6 ICMP errors at once, then one
    // a second (net.ipv4.icmp_ratelimit), and the ten names' A and AAAA queries
    // are 20 at once: most lookups hear nothing and time out like the silent case.
    // Either way the failure is typed and bounded.
    let pid = lab.daemon_pid(Daemon::Dnsmasq).expect("dnsmasq pid");
    let killed = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(killed.success());
    let run = run_helper(&lab);
    assert_resolve_failure(
        &run,
        &[ResolveFailure::DnsUnreachable, ResolveFailure::TimedOut],
    );
    let bound = RESOLVE_TIMEOUT + Duration::from_secs(1);
    assert!(
        run.classify_ms < bound.as_secs_f64() * 1000.0,
        "{} ms",
        run.classify_ms
    );
    println!(
        "DNS server stopped (port unreachable): {} in {:.1} ms (process {:.0} ms)",
        run.result["err"]["message"], run.classify_ms, run.process_ms
    );
    lab.down().expect("lab down");
}

#[test]
fn lab_defaults_fail_typed_in_bounded_time_when_dns_is_silent() {
    let lab = Lab::builder().stund(true).dns_silent().up();
    let run = run_helper(&lab);
    assert_resolve_failure(&run, &[ResolveFailure::TimedOut]);
    println!(
        "DNS silent: {} in {:.1} ms (process {:.0} ms)",
        run.result["err"]["message"], run.classify_ms, run.process_ms
    );
    // A hang guard, not a timing rule: the lookups are bounded by
    // RESOLVE_TIMEOUT, all at once.
    let bound = RESOLVE_TIMEOUT + Duration::from_secs(1);
    for (what, ms) in [
        ("classify", run.classify_ms),
        ("the helper process", run.process_ms),
    ] {
        assert!(ms < bound.as_secs_f64() * 1000.0, "{what} took {ms} ms");
    }
    // The tool too: the lookups still blocked in the resolver must not hold its
    // exit (glibc gives up only after 10 s).
    let ms = assert_cli_resolve_failure(&lab, &["the lookup took longer than 3 s"]);
    assert!(
        ms < bound.as_secs_f64() * 1000.0,
        "natkit nat-type took {ms} ms"
    );
    let dropped = lab
        .exec_ok(Node::Wan, &["nft", "list", "table", "inet", "dns_silent"])
        .expect("nft");
    assert!(
        !dropped.contains("packets 0 "),
        "no query reached the lab's DNS address:\n{dropped}"
    );
    lab.down().expect("lab down");
}
