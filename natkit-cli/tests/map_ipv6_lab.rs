//! `natkit map --ipv6` says whether the pinhole it opened can be reached from
//! outside at all: STUN over IPv6, asked from the pinhole's address beside the
//! mapping, sees that address where IPv6 is routed, and the router's where it
//! is translated (NAT66). Three labs at once, each with miniupnpd:
//!
//! - dual-stack, the lab DNS answering a default STUN name with natkit's STUN
//!   server on IPv6 (as in the top-level README's "Try it in the lab"): no
//!   warning, the seen address is the pinhole's, and a peer outside connects
//!   through the pinhole while `natkit map` keeps it;
//! - the same with NAT66 (`--ipv6-quirk nat66`): the warning, naming the
//!   router's address;
//! - dual-stack without the lab DNS (no STUN server answers over IPv6): the
//!   map completes, says "not checked" and why, within the check's bound.
//!
//! Root only; fails (never skips) without it.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natkit_lab::{Ipv6Quirk, Lab, LabChild, Node, Proto, all_at_once, require_root};
use serde_json::Value;

/// The default STUN name the lab DNS answers (natkit_stun::DEFAULT_SERVERS).
const STUN_NAME: &str = "stun.telnyx.com";
/// STUN1_6, natkit's STUN server.
const STUN1_6: Ipv6Addr = Ipv6Addr::new(0x2a0d, 0x88, 0x77, 0x66, 0, 0, 0, 0x10);
/// The reachability check's bound (`reach::CHECK_BOUND` in the binary).
const CHECK_BOUND_MS: u64 = 2000;

/// A dual-stack lab with miniupnpd; with `dns`, the lab DNS maps STUN_NAME to
/// STUN1_6, where natkit's STUN server listens (alternate STUN2_6:3479).
struct World {
    lab: Lab,
    _stun: Option<LabChild>,
}

fn world(quirk: Option<Ipv6Quirk>, dns: bool) -> World {
    let mut b = Lab::builder().ipv6(true).miniupnpd(true);
    if let Some(q) = quirk {
        b = b.ipv6_quirk(q);
    }
    if dns {
        b = b.dns_aaaa([(STUN_NAME, STUN1_6)]);
    }
    let lab = b.build().unwrap_or_else(|e| panic!("lab {quirk:?}: {e}"));
    let v6 = lab.addrs().v6.expect("a dual-stack lab");
    assert_eq!(v6.stun1, STUN1_6);
    let stun = dns.then(|| {
        let mut c = lab.command(Node::Wan, natkit_lab::natkit_bin());
        c.args(["stun-server", "--bind", &format!("[{}]:3478", v6.stun1)])
            .args(["--alternate", &format!("[{}]:3479", v6.stun2)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = LabChild::spawn(&mut c).expect("natkit stun-server in wan");
        lab.wait_listening(Node::Wan, Proto::Udp, 3479, Duration::from_secs(10))
            .expect("the STUN server listens");
        child
    });
    World { lab, _stun: stun }
}

impl World {
    fn v6(&self) -> natkit_lab::LabAddrs6 {
        self.lab.addrs().v6.expect("a dual-stack lab")
    }

    fn map_command(&self, port: u16, extra: &[&str]) -> std::process::Command {
        let mut c = self.lab.command(Node::Lan, natkit_lab::natkit_bin());
        c.args(["map", "--ipv6", "--protocol", "tcp"])
            .args(["--port", &port.to_string()])
            .args([
                "--journal",
                &format!("{}/journal", self.lab.run_dir().display()),
            ])
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    /// `natkit map --ipv6 --once` plus `extra`: its output and how long it
    /// took.
    fn map_once(&self, port: u16, extra: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let out = self
            .map_command(port, &[&["--once"], extra].concat())
            .output()
            .expect("run natkit map");
        (out, started.elapsed())
    }

    /// The JSON lines of a `--json --once` run, which must succeed, each
    /// with when it was printed (since the start), and how long the run took.
    fn map_json(&self, port: u16) -> (Vec<Value>, Vec<Duration>, Duration) {
        let started = Instant::now();
        let mut c = self.map_command(port, &["--once", "--json"]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut run = LabChild::spawn(&mut c).expect("natkit map");
        let stdout = run.child_mut().stdout.take().expect("stdout");
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            lines.push((started.elapsed(), line.expect("a line")));
        }
        let out = run
            .wait_with_output_timeout(Duration::from_secs(30))
            .expect("natkit map exits");
        let took = started.elapsed();
        let text: Vec<_> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert!(
            out.status.success(),
            "{text:#?}\n{}",
            natkit_lab::dump_output(&out)
        );
        let events = text
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}: {text:#?}")))
            .collect();
        (events, lines.into_iter().map(|(at, _)| at).collect(), took)
    }
}

/// The one event named `name`, and its index.
fn event<'a>(events: &'a [Value], name: &str) -> (usize, &'a Value) {
    let found: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {name} event: {events:#?}");
    found[0]
}

/// The pinhole's address from the `mapped` event, and the reachability
/// event, which comes after it.
fn reach(events: &[Value]) -> (IpAddr, Value) {
    let (mapped_at, mapped) = event(events, "mapped");
    assert_eq!(mapped["pinhole"], true, "{mapped}");
    // The whole detection report rides along under `detection`.
    assert!(mapped["detection"]["mechanisms"].is_array(), "{mapped}");
    let internal: SocketAddr = mapped["internal"]
        .as_str()
        .expect("internal")
        .parse()
        .expect("an address");
    let (at, r) = event(events, "ipv6_reachability");
    assert!(at > mapped_at, "the mapping is printed first: {events:#?}");
    assert_eq!(r["pinhole"], internal.ip().to_string(), "{r:#}");
    assert_eq!(r["port"], internal.port(), "{r:#}");
    assert_eq!(r["bound_ms"], CHECK_BOUND_MS, "{r:#}");
    let (deleted_at, _) = event(events, "deleted");
    assert!(deleted_at > at, "{events:#?}");
    (internal.ip(), r.clone())
}

fn routed() {
    let w = world(None, true);
    let v6 = w.v6();
    let (events, _, took) = w.map_json(7401);
    let (pinhole, r) = reach(&events);
    // The stable address, not the temporary one the kernel sends from.
    assert_eq!(pinhole, IpAddr::V6(v6.lan), "{events:#?}");
    assert_ne!(v6.lan, v6.lan_temp);
    assert_eq!(r["verdict"], "seen_at_pinhole", "{r:#}");
    assert_eq!(r["seen"], v6.lan.to_string(), "{r:#}");
    assert_eq!(
        r["servers"][0]["source"],
        format!("{STUN_NAME}:3478"),
        "{r:#}"
    );
    println!("routed: map --once --json took {} ms", took.as_millis());

    // Kept: the note comes while the pinhole is open, and a peer outside
    // connects through it.
    let mut c = w.map_command(7402, &[]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut run = LabChild::spawn(&mut c).expect("natkit map");
    let stdout = run.child_mut().stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("note: ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(e) => panic!("no reachability line ({e}): {seen:#?}"),
        }
    }
    let pinhole_line = format!("pinhole tcp [{}]:7402 via", v6.lan);
    assert!(
        seen.iter().any(|l| l.starts_with(&pinhole_line)),
        "{seen:#?}"
    );
    let note = seen.last().expect("the note");
    assert_eq!(
        note,
        &format!(
            "note: the internet sees this host at the pinhole's address {} \
             (STUN over IPv6: 1 of 1 servers saw {})",
            v6.lan, v6.lan
        ),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("warning")), "{seen:#?}");
    let _listener = w
        .lab
        .spawn(
            Node::Lan,
            &["nc", "-6", "-l", "-s", &v6.lan.to_string(), "-p", "7402"],
        )
        .expect("nc -l");
    w.lab
        .wait_listening(Node::Lan, Proto::Tcp, 7402, Duration::from_secs(5))
        .expect("nc listens");
    let through = w
        .lab
        .tcp_connects(Node::Wan, SocketAddr::new(IpAddr::V6(v6.lan), 7402))
        .expect("nc -z");
    assert!(through, "through the pinhole: {seen:#?}");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &run.pid().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = run
        .wait_timeout(Duration::from_secs(15))
        .expect("wait")
        .expect("natkit map exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

fn nat66() {
    let w = world(Some(Ipv6Quirk::Nat66), true);
    let v6 = w.v6();
    // The proof: outbound works (translated), nothing from outside reaches the
    // LAN host's address.
    let ping = |from, to: Ipv6Addr| {
        w.lab
            .exec(from, &["ping", "-6", "-c", "1", "-W", "1", &to.to_string()])
            .expect("ping -6")
            .status
            .success()
    };
    assert!(ping(Node::Lan, v6.peer), "out through NAT66");
    assert!(
        !ping(Node::Wan, v6.lan),
        "the LAN host reached from outside"
    );

    let (events, _, took) = w.map_json(7403);
    println!("nat66: map --once --json took {} ms", took.as_millis());
    let (pinhole, r) = reach(&events);
    assert_eq!(pinhole, IpAddr::V6(v6.lan), "{events:#?}");
    assert_eq!(r["verdict"], "translated", "{r:#}");
    assert_eq!(r["seen"], v6.rtr_wan.to_string(), "{r:#}");

    let (out, _) = w.map_once(7404, &[]);
    assert!(out.status.success(), "{}", natkit_lab::dump_output(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let warning = text
        .lines()
        .find(|l| l.starts_with("warning: this network translates IPv6"))
        .unwrap_or_else(|| panic!("no warning: {text}"));
    let says = format!(
        "the internet sees this host as {rtr}, so the pinhole at [{lan}]:7404 is not reachable \
         from outside; instead forward {rtr} port 7404 to [{lan}]:7404 in the router's IPv6 \
         port forwarding, or turn NAT66 off",
        rtr = v6.rtr_wan,
        lan = v6.lan
    );
    assert!(warning.contains(&says), "{warning}");
}

fn no_stun() {
    let w = world(None, false);
    let (events, at, took) = w.map_json(7405);
    let (_, r) = reach(&events);
    assert_eq!(r["verdict"], "not_checked", "{r:#}");
    assert_eq!(r["seen"], Value::Null, "{r:#}");
    let detail = r["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with("note: reachability from outside not checked: "),
        "{detail}"
    );
    // Without the lab DNS the LAN host's resolver is the host's, whose
    // queries die in wan (no route out): the lookups wait, the check stops at
    // its bound.
    assert_eq!(r["reason"], "timed_out", "{r:#}");
    assert_eq!(
        detail,
        "note: reachability from outside not checked: no STUN server answered over IPv6 within 2 s",
        "{r:#}"
    );
    let (mapped, _) = event(&events, "mapped");
    let (checked, _) = event(&events, "ipv6_reachability");
    println!(
        "no STUN answer: mapped at {} ms, checked at {} ms, exit at {} ms (check bound \
         {CHECK_BOUND_MS} ms)",
        at[mapped].as_millis(),
        at[checked].as_millis(),
        took.as_millis(),
    );
    // The mapping is not held back for the check, which started before it:
    // its line comes within its bound of the mapping's (with a second for a
    // loaded machine), never after the resolver's own time limits.
    assert!(
        at[checked] < at[mapped] + Duration::from_millis(CHECK_BOUND_MS + 1000),
        "{at:?}"
    );
}

#[test]
fn map_ipv6_says_whether_the_pinhole_is_reachable() {
    require_root();
    let jobs: Vec<(String, Box<dyn FnOnce() + Send>)> = vec![
        ("routed".into(), Box::new(routed)),
        ("nat66".into(), Box::new(nat66)),
        ("no STUN answer".into(), Box::new(no_stun)),
    ];
    all_at_once(jobs);
}
