//! A running lab: its namespaces, addresses and daemons; torn down on drop.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::builder::LabBuilder;
use crate::child::{LabChild, describe};
use crate::env::{LabAddrs, LabAddrs6, env_ip, env_str, parse_env};
use crate::error::LabError;
use crate::preflight::{preflight, script_path, tool_path};
use crate::spec::{Daemon, Link, NatKind, Node, Proto};

/// How long [`Lab::exec`] and [`Lab::exec_ok`] let a command run.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `natlab.sh` itself may take (up waits up to 5 s per daemon).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);
static GC: Once = Once::new();

/// A NAT lab that is up: network namespaces `nk-ID-lan`, `nk-ID-rtr`, `nk-ID-wan`
/// (and `nk-ID-lan2`, `nk-ID-isp`), the NAT, the daemons.
///
/// Dropping it runs `natlab.sh down --id ID`, which kills the lab's daemons and
/// every process left in its namespaces (by pid) and deletes the namespaces; this
/// also happens while a failing test unwinds.
///
/// Ids are `<pid>x<n>`: the test process's pid and a per-process counter, so labs of
/// parallel tests and of concurrent test processes never collide. A leftover lab with
/// the same id can only come from a dead process that had our pid; it is torn down
/// before the new one is built. The first lab of a process also runs `natlab.sh gc`,
/// which tears down the labs of test processes that died without dropping theirs.
#[derive(Debug)]
pub struct Lab {
    id: String,
    spec: LabBuilder,
    env: BTreeMap<String, String>,
    addrs: LabAddrs,
    down: bool,
}

impl Lab {
    /// A builder for a port-restricted lab with no daemons.
    pub fn builder() -> LabBuilder {
        LabBuilder::new()
    }

    pub(crate) fn up(spec: LabBuilder) -> Result<Self, LabError> {
        preflight()?;
        spec.validate()?;
        // Once per process: labs whose test process died without dropping them.
        GC.call_once(|| {
            if let Err(e) = run_script(&["gc"]) {
                eprintln!("natkit-lab: collecting orphaned labs: {e}");
            }
        });
        let id = format!(
            "{}x{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        // Any lab with this id belongs to a dead process that had our pid.
        run_script(&["down", "--id", &id])?;
        let mut args = vec!["up".to_owned(), "--id".to_owned(), id.clone()];
        args.extend(spec.script_args());
        let built = run_script(&args).and_then(|stdout| {
            let env = parse_env(&stdout);
            let addrs = LabAddrs::from_env(&env)?;
            Ok((env, addrs))
        });
        match built {
            Ok((env, addrs)) => Ok(Self {
                id,
                spec,
                env,
                addrs,
                down: false,
            }),
            Err(e) => {
                // A failed `up` tears itself down, but not if it was killed on timeout,
                // and not if its output was unusable.
                if let Err(down) = run_script(&["down", "--id", &id]) {
                    eprintln!("natkit-lab: tearing down lab {id}: {down}");
                }
                Err(e)
            }
        }
    }

    /// The lab id (`natlab.sh --id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the lab was built from.
    pub fn spec(&self) -> &LabBuilder {
        &self.spec
    }

    /// The router's NAT kind.
    pub fn nat(&self) -> NatKind {
        self.spec.nat
    }

    /// The lab's addresses.
    pub fn addrs(&self) -> &LabAddrs {
        &self.addrs
    }

    /// The lab's IPv6 addresses; an error (`IPV6` missing from its env) unless
    /// it was built with [`ipv6`](LabBuilder::ipv6).
    pub fn addrs6(&self) -> Result<LabAddrs6, LabError> {
        self.addrs.v6.ok_or_else(|| LabError::BadEnv {
            key: "IPV6".to_owned(),
            value: None,
        })
    }

    /// Every `KEY=VALUE` of the lab's env file (see README: `LAN_IP`, `STUN1`, …).
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// One env value, e.g. `lab.get("RTR_WAN_IF")`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// An address from the env file by key, e.g. `lab.addr("STUN1")`.
    pub fn addr(&self, key: &str) -> Result<Ipv4Addr, LabError> {
        env_ip(&self.env, key)
    }

    /// An IPv6 address from the env file by key, e.g. `lab.addr6("STUN1_6")` in a
    /// dual-stack lab ([`LabBuilder::ipv6`]).
    pub fn addr6(&self, key: &str) -> Result<Ipv6Addr, LabError> {
        env_ip(&self.env, key)
    }

    /// The lab's run directory (`/run/natlab/ID`: env, configs, rulesets, logs).
    pub fn run_dir(&self) -> PathBuf {
        self.env
            .get("RUN_DIR")
            .map_or_else(|| Path::new("/run/natlab").join(&self.id), PathBuf::from)
    }

    /// Whether this lab has `node` (`Lan2` and `Isp` are optional).
    pub fn has(&self, node: Node) -> bool {
        match node {
            Node::Lan | Node::Rtr | Node::Wan => true,
            Node::Lan2 => self.spec.lan2,
            Node::Isp => self.spec.double_nat,
        }
    }

    /// The namespace name of `node`, `nk-ID-<role>` (whether or not it exists, see
    /// [`has`](Self::has)).
    pub fn ns(&self, node: Node) -> String {
        format!("nk-{}-{}", self.id, node.role())
    }

    /// The LAN host's namespace name.
    pub fn lan_ns(&self) -> String {
        self.ns(Node::Lan)
    }

    /// A [`Command`] that runs `program` inside `node`: `ip netns exec <ns> program`.
    /// Add arguments and stdio as usual. Works for any program, e.g. a test binary
    /// running itself (`std::env::current_exe()`) as a helper inside the LAN.
    pub fn command(&self, node: Node, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(tool_path("ip").unwrap_or_else(|| PathBuf::from("ip")));
        cmd.arg("netns").arg("exec").arg(self.ns(node)).arg(program);
        cmd
    }

    /// A [`Command`] that re-runs the current test binary inside `node`, running only
    /// the test `test_name` (`--exact NAME --include-ignored --nocapture`), with
    /// [`HELPER_TEST_ENV`](crate::HELPER_TEST_ENV) and
    /// [`HELPER_LAB_ENV`](crate::HELPER_LAB_ENV) set so that the helper test finds
    /// out it is one and learns the lab's addresses with
    /// [`helper_addrs`](crate::helper_addrs). Add arguments, env and stdio as usual.
    pub fn test_helper(&self, node: Node, test_name: &str) -> Result<Command, LabError> {
        if !self.has(node) {
            return Err(LabError::NoSuchNode(node));
        }
        let exe = std::env::current_exe()
            .map_err(|e| LabError::io("finding the current test binary", e))?;
        let mut cmd = self.command(node, exe);
        cmd.args([
            "--exact",
            test_name,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(crate::HELPER_TEST_ENV, test_name)
        .env(crate::HELPER_LAB_ENV, self.run_dir().join("env"));
        Ok(cmd)
    }

    fn command_argv<S: AsRef<OsStr>>(&self, node: Node, argv: &[S]) -> Result<Command, LabError> {
        if !self.has(node) {
            return Err(LabError::NoSuchNode(node));
        }
        let Some((program, args)) = argv.split_first() else {
            return Err(LabError::InvalidSpec {
                reason: "empty command line",
            });
        };
        let mut cmd = self.command(node, program);
        cmd.args(args);
        Ok(cmd)
    }

    /// Runs `argv` inside `node` and returns its output whatever its exit status;
    /// stdin is empty. Killed after [`DEFAULT_EXEC_TIMEOUT`].
    pub fn exec<S: AsRef<OsStr>>(&self, node: Node, argv: &[S]) -> Result<Output, LabError> {
        self.exec_timeout(node, argv, DEFAULT_EXEC_TIMEOUT)
    }

    /// Like [`exec`](Self::exec) with a deadline of your choice
    /// ([`LabError::Timeout`] after it).
    pub fn exec_timeout<S: AsRef<OsStr>>(
        &self,
        node: Node,
        argv: &[S],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        output(&mut self.command_argv(node, argv)?, timeout)
    }

    /// Runs `argv` inside `node` and returns its stdout; a non-zero exit is
    /// [`LabError::CommandFailed`] with both streams. Killed after
    /// [`DEFAULT_EXEC_TIMEOUT`].
    pub fn exec_ok<S: AsRef<OsStr>>(&self, node: Node, argv: &[S]) -> Result<String, LabError> {
        let mut cmd = self.command_argv(node, argv)?;
        let out = output(&mut cmd, DEFAULT_EXEC_TIMEOUT)?;
        if !out.status.success() {
            return Err(failed(&cmd, &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `argv` inside `node` in the background, stdin empty, stdout and stderr
    /// piped. The returned [`LabChild`] kills it (by pid) when dropped.
    pub fn spawn<S: AsRef<OsStr>>(&self, node: Node, argv: &[S]) -> Result<LabChild, LabError> {
        let mut cmd = self.command_argv(node, argv)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        LabChild::spawn(&mut cmd)
    }

    /// Waits until something in `node` listens on `port`/`proto` (any address), e.g.
    /// a listener just spawned. [`LabError::Timeout`] if not within `timeout`.
    pub fn wait_listening(
        &self,
        node: Node,
        proto: Proto,
        port: u16,
        timeout: Duration,
    ) -> Result<(), LabError> {
        let flag = match proto {
            Proto::Tcp => "-Hltn",
            Proto::Udp => "-Hlun",
        };
        let filter = format!("sport = :{port}");
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.exec_timeout(node, &["ss", flag, &filter], Duration::from_secs(10))?;
            if out.status.success() && !out.stdout.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("a {proto} listener on port {port} in {node:?}"),
                    after: timeout,
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes `node` (a LAN host) send what goes to `dst` from `src`, one of its
    /// own IPv6 addresses, when the program does not bind:
    /// `ip -6 route add DST/128 dev eth0 src SRC`. A dual-stack lab's LAN hosts
    /// send from their temporary address by default; miniupnpd refuses (606) a
    /// pinhole for any address but the one its SOAP request comes from, so a test
    /// that has `upnpc -6` open a pinhole for the stable address routes the
    /// router's address (`LabAddrs6::rtr_lan`) from it first.
    pub fn prefer_source6(&self, node: Node, dst: Ipv6Addr, src: Ipv6Addr) -> Result<(), LabError> {
        let dst = format!("{dst}/128");
        let src = src.to_string();
        self.exec_ok(
            node,
            &["ip", "-6", "route", "add", &dst, "dev", "eth0", "src", &src],
        )
        .map(drop)
    }

    /// The pid of a daemon the lab runs, `None` if it does not run it.
    pub fn daemon_pid(&self, daemon: Daemon) -> Option<u32> {
        self.env.get(daemon.pid_key()).and_then(|p| p.parse().ok())
    }

    /// miniupnpd's pid (it changes with [`restart_miniupnpd`](Self::restart_miniupnpd)).
    pub fn miniupnpd_pid(&self) -> Option<u32> {
        self.daemon_pid(Daemon::Miniupnpd)
    }

    /// stund's pid.
    pub fn stund_pid(&self) -> Option<u32> {
        self.daemon_pid(Daemon::Stund)
    }

    /// coturn's pid.
    pub fn coturn_pid(&self) -> Option<u32> {
        self.daemon_pid(Daemon::Coturn)
    }

    /// Forgets every NAT binding and filter entry of the router (and of the ISP NAT):
    /// `natlab.sh reset-nat`, i.e. `conntrack -F` and every dynamic nft set flushed.
    /// The NAT then behaves as freshly booted, without rebuilding the lab; port
    /// mappings made with miniupnpd stay. For tests whose runs must not see each
    /// other's state (a per-host filter remembers every address the host sent to).
    pub fn reset_nat(&self) -> Result<(), LabError> {
        run_script(&["reset-nat", "--id", &self.id]).map(drop)
    }

    /// What a daemon logged so far (its stdout and stderr; miniupnpd runs with `-d`,
    /// so that is its debug log).
    pub fn daemon_log(&self, daemon: Daemon) -> Result<String, LabError> {
        let path = self.run_dir().join(format!("{}.log", daemon.name()));
        fs::read_to_string(&path)
            .map_err(|e| LabError::io(format!("reading {}", path.display()), e))
    }

    /// Simulates a router reboot: stops miniupnpd, forgets every mapping (its nft
    /// chains and lease file are emptied) and starts it again, so the NAT-PMP/PCP
    /// epoch starts over. Returns the new pid.
    pub fn restart_miniupnpd(&mut self) -> Result<u32, LabError> {
        if !self.spec.miniupnpd {
            return Err(LabError::NoMiniupnpd);
        }
        run_script(&["restart-miniupnpd", "--id", &self.id])?;
        self.reload_env()?;
        let pid = env_str(&self.env, Daemon::Miniupnpd.pid_key())?;
        pid.parse().map_err(|_| LabError::BadEnv {
            key: Daemon::Miniupnpd.pid_key().to_owned(),
            value: Some(pid.to_owned()),
        })
    }

    /// Takes a router link down (`up == false`) or brings it back.
    pub fn set_link(&self, link: Link, up: bool) -> Result<(), LabError> {
        let state = if up { "up" } else { "down" };
        run_script(&["link", "--id", &self.id, link.as_arg(), state]).map(drop)
    }

    fn reload_env(&mut self) -> Result<(), LabError> {
        let path = self.run_dir().join("env");
        let text = fs::read_to_string(&path)
            .map_err(|e| LabError::io(format!("reading {}", path.display()), e))?;
        self.env = parse_env(&text);
        Ok(())
    }

    /// Tears the lab down now and reports a failure (dropping does the same but can
    /// only print it).
    pub fn down(mut self) -> Result<(), LabError> {
        self.down = true;
        run_script(&["down", "--id", &self.id]).map(drop)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        if let Err(e) = run_script(&["down", "--id", &self.id]) {
            eprintln!("natkit-lab: tearing down lab {}: {e}", self.id);
        }
    }
}

/// Runs `bash natlab.sh ARGS…` and returns its stdout; a failure carries its stderr.
fn run_script<S: AsRef<OsStr>>(args: &[S]) -> Result<String, LabError> {
    let mut cmd = Command::new(tool_path("bash").unwrap_or_else(|| PathBuf::from("bash")));
    cmd.arg(script_path()).args(args);
    let out = output(&mut cmd, SCRIPT_TIMEOUT)?;
    if !out.status.success() {
        return Err(failed(&cmd, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd` with empty stdin, collecting stdout and stderr, killed after `timeout`.
fn output(cmd: &mut Command, timeout: Duration) -> Result<Output, LabError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    LabChild::spawn(cmd)?.wait_with_output_timeout(timeout)
}

fn failed(cmd: &Command, out: &Output) -> LabError {
    LabError::CommandFailed {
        command: describe(cmd),
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
