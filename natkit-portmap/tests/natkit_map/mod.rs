//! `natkit map` running in the lab's LAN host, its stdout lines on a channel:
//! shared by the lab tests that drive the tool (`natkit_lab::natkit_bin` builds
//! it up to date).
// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use natkit_lab::{Lab, LabChild, Node};
use serde_json::Value;

/// The longest wait for a line or an exit.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A long-running `natkit map` with its stdout lines on a channel.
pub(crate) struct Running {
    pub(crate) child: LabChild,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `natkit map ARGS` in the LAN host; stdout lines are also printed.
    pub(crate) fn start(lab: &Lab, args: &[&str]) -> Running {
        let mut cmd = lab.command(Node::Lan, natkit_lab::natkit_bin());
        cmd.arg("map")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = LabChild::spawn(&mut cmd).expect("spawn natkit map");
        let out = child.child_mut().stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("natkit map: {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running { child, lines }
    }

    /// The next JSON line whose `event` is `event`, within [`WAIT`].
    pub(crate) fn event(&self, event: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no {event} line: {e}"));
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == event
            {
                return v;
            }
        }
    }

    /// Forgets the lines printed so far.
    pub(crate) fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }

    /// Sends `sig` (e.g. `TERM`, `KILL`).
    pub(crate) fn signal(&self, sig: &str) {
        // By pid: `ip netns exec` execs natkit itself, so this is its pid.
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.child.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (at most [`WAIT`]) for the exit.
    pub(crate) fn wait(mut self) -> ExitStatus {
        self.child
            .wait_timeout(WAIT)
            .expect("wait")
            .expect("natkit map ended")
    }
}
