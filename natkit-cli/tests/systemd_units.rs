//! The systemd units of the servers (dist/systemd/): `systemd-analyze verify`
//! accepts them, `systemd-analyze security` rates them, they grant nothing but
//! CAP_NET_BIND_SERVICE to a dynamic user, and the command line each one starts
//! really runs and signals readiness: the server sends `READY=1` to
//! `$NOTIFY_SOCKET` once its sockets answer, and `STOPPING=1` on SIGTERM, then
//! exits 0.
//!
//! Needs root (the units' default command lines bind 0.0.0.0 on ports below 1024
//! or not, inside a network namespace of their own made with `unshare --net`) and
//! systemd-analyze (Debian's `systemd`); fails, never skips, without them.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use natkit_lab::{LabChild, require_root};

const UNITS: [&str; 2] = [
    "natkit-stun-server.service",
    "natkit-dialback-server.service",
];

fn natkit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_natkit"))
}

fn unit_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../dist/systemd")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("natkit-units-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Every `Key=value` of the unit, in order (comments and sections left out).
fn entries(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn values<'a>(entries: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The subcommand and default arguments the unit starts natkit with: ExecStart's
/// words after the binary, with `$VAR` replaced by the words of its Environment=.
fn command_line(text: &str) -> Vec<String> {
    let e = entries(text);
    let exec = values(&e, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart");
    let mut words = exec[0].split_whitespace();
    assert_eq!(words.next(), Some("/usr/local/bin/natkit"));
    let mut out = Vec::new();
    for w in words {
        match w.strip_prefix('$') {
            Some(var) => {
                let prefix = format!("\"{var}=");
                let env = values(&e, "Environment")
                    .into_iter()
                    .find_map(|v| v.strip_prefix(&prefix)?.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("no Environment= for ${var}"));
                out.extend(env.split_whitespace().map(str::to_owned));
            }
            None => out.push(w.to_owned()),
        }
    }
    out
}

#[test]
fn units_grant_only_low_ports_to_a_dynamic_user() {
    for name in UNITS {
        let e = entries(&unit_text(name));
        let one = |key: &str| {
            let v = values(&e, key);
            assert_eq!(v.len(), 1, "{name}: {key}= once: {v:?}");
            v[0].to_owned()
        };
        assert_eq!(one("Type"), "notify", "{name}");
        assert_eq!(one("DynamicUser"), "yes", "{name}");
        assert_eq!(
            one("CapabilityBoundingSet"),
            "CAP_NET_BIND_SERVICE",
            "{name}"
        );
        assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE", "{name}");
        assert_eq!(one("NoNewPrivileges"), "yes", "{name}");
        assert_eq!(one("ProtectSystem"), "strict", "{name}");
        assert_eq!(one("PrivateTmp"), "yes", "{name}");
        assert_eq!(one("StandardError"), "journal", "{name}");
        for key in ["User", "Group", "PrivateUsers", "SupplementaryGroups"] {
            assert!(values(&e, key).is_empty(), "{name}: {key}= set");
        }
    }
}

#[test]
fn systemd_analyze_verifies_and_rates_the_units() {
    let dir = scratch("verify");
    for name in UNITS {
        // verify checks that ExecStart's binary exists: point it at the built one.
        let text = unit_text(name).replace("/usr/local/bin/natkit", &natkit().to_string_lossy());
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write the unit");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (Debian package systemd) is installed");
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "{name}: {}",
            natkit_lab::dump_output(&out)
        );
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .expect("systemd-analyze security");
        let text = String::from_utf8_lossy(&out.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no exposure level: {text}"));
        eprintln!("{name}: systemd-analyze security exposure {exposure}");
        // systemd's scale: below 2 is "OK", 10 "UNSAFE" (an unhardened service).
        assert!(exposure < 2.0, "{name}: exposure {exposure}:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `natkit ARGS` in a network namespace of its own (only `lo`, up) with
/// `NOTIFY_SOCKET` set, and returns it with the socket that hears it.
fn start_notified(dir: &Path, args: &[String]) -> (LabChild, UnixDatagram) {
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let notify = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let script = "ip link set lo up && exec \"$0\" \"$@\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "sh", "-c", script])
        .arg(natkit())
        .args(args)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = LabChild::spawn(&mut cmd).expect("start natkit");
    (child, notify)
}

fn receive(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// SIGTERM (what `systemctl stop` sends), then STOPPING=1 and exit 0.
fn stop(child: LabChild, notify: &UnixDatagram, name: &str) {
    let status = Command::new("kill")
        .args(["-TERM", &child.pid().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    assert_eq!(receive(notify), "STOPPING=1", "{name}");
    let out = child
        .wait_with_output_timeout(Duration::from_secs(10))
        .expect("the server exits after SIGTERM");
    assert!(
        out.status.success(),
        "{name}: {}",
        natkit_lab::dump_output(&out)
    );
    // Not a terminal: no colour in what goes to the journal.
    assert!(
        !out.stderr.contains(&0x1b),
        "{name}: {}",
        natkit_lab::dump_output(&out)
    );
}

#[test]
fn the_units_command_lines_signal_readiness_and_stopping() {
    require_root();
    let dir = scratch("notify");
    for name in UNITS {
        let args = command_line(&unit_text(name));
        let started = Instant::now();
        let (child, notify) = start_notified(&dir, &args);
        let ready = receive(&notify);
        eprintln!(
            "{name}: {args:?} ready after {:?}: {ready:?}",
            started.elapsed()
        );
        assert!(
            ready.starts_with("READY=1\nSTATUS=listening on "),
            "{name}: {ready:?}"
        );
        stop(child, &notify, name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// On READY=1 the STUN server answers at once: systemd may start its dependents.
#[test]
fn the_stun_server_answers_when_it_says_ready() {
    require_root();
    let dir = scratch("answers");
    // A port of the host's loopback that is free now.
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let socket_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut cmd = Command::new(natkit());
    cmd.args(["stun-server", "--bind", &bind])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = LabChild::spawn(&mut cmd).expect("start natkit stun-server");
    let ready = receive(&notify);
    assert_eq!(ready, format!("READY=1\nSTATUS=listening on {bind}/udp"));
    // The first request after READY=1 gets its answer.
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let tid = natkit_stun::TransactionId::new(*b"natkit-ready");
    let mut buf = [0u8; 64];
    let len = natkit_stun::MessageBuilder::new(
        &mut buf,
        natkit_stun::Class::Request,
        natkit_stun::Method::BINDING,
        tid,
    )
    .expect("a Binding request")
    .finish();
    let server: SocketAddr = bind.parse().expect("addr");
    client.send_to(&buf[..len], server).expect("send");
    let mut answer = [0u8; 548];
    let (n, from) = client.recv_from(&mut answer).expect("an answer");
    assert_eq!(from, server);
    let msg = natkit_stun::Message::new_checked(&answer[..n]).expect("a STUN message");
    assert_eq!(msg.class(), natkit_stun::Class::SuccessResponse);
    assert_eq!(msg.transaction_id(), tid);
    stop(child, &notify, "stun-server");
    let _ = std::fs::remove_dir_all(&dir);
}
