//! A conversation with a test helper running in a node: the outer test writes
//! command lines to its stdin and waits for tagged lines on its stdout.
//!
//! This is for helpers that must live through several steps (a mapper that
//! holds nonces, a lease keeper that renews in the background) while the outer
//! test acts on the lab between them (restarts miniupnpd, sends traffic from the
//! wan peer).

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::child::LabChild;
use crate::error::LabError;
use crate::lab::Lab;
use crate::spec::Node;

/// A running helper (see [`Lab::helper_session`]); killed on drop.
#[derive(Debug)]
pub struct HelperSession {
    child: LabChild,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Lab {
    /// Starts the test helper `test_name` in `node` (as
    /// [`test_helper`](Lab::test_helper)) with `env` set, stdin and stdout piped
    /// (stderr inherited, so its panics show in the test's output).
    pub fn helper_session(
        &self,
        node: Node,
        test_name: &str,
        env: &[(&str, &str)],
    ) -> Result<HelperSession, LabError> {
        let mut cmd = self.test_helper(node, test_name)?;
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = LabChild::spawn(&mut cmd)?;
        let stdout = child.child_mut().stdout.take().ok_or_else(|| {
            LabError::io(
                "taking the helper's stdout",
                std::io::ErrorKind::Other.into(),
            )
        })?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        Ok(HelperSession {
            child,
            lines,
            seen: Vec::new(),
        })
    }
}

impl HelperSession {
    /// Waits up to `timeout` for the next line containing `tag` and returns the
    /// text after the tag (trimmed) and when the line arrived. Lines before it are
    /// kept for [`transcript`](Self::transcript). The tag may be anywhere in the
    /// line: the test harness prints `test NAME ... ` before the helper's first line.
    pub fn expect(&mut self, tag: &str, timeout: Duration) -> Result<(String, Instant), LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) => {
                    self.seen.push(line.clone());
                    if let Some(i) = line.find(tag) {
                        return Ok((line[i + tag.len()..].trim().to_owned(), at));
                    }
                }
                Err(_) => {
                    return Err(LabError::Timeout {
                        what: format!(
                            "a {tag:?} line from the helper; it said:\n{}",
                            self.transcript()
                        ),
                        after: timeout,
                    });
                }
            }
        }
    }

    /// Sends one command line to the helper's stdin.
    pub fn send(&mut self, line: &str) -> Result<(), LabError> {
        let stdin =
            self.child.child_mut().stdin.as_mut().ok_or_else(|| {
                LabError::io("helper stdin", std::io::ErrorKind::BrokenPipe.into())
            })?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| LabError::io(format!("sending {line:?} to the helper"), e))
    }

    /// Every line the helper printed so far (that the session has read).
    pub fn transcript(&self) -> String {
        self.seen.join("\n")
    }

    /// Closes the helper's stdin and waits up to `timeout` for it to exit;
    /// `Ok(true)` when it exited successfully.
    pub fn finish(mut self, timeout: Duration) -> Result<bool, LabError> {
        drop(self.child.child_mut().stdin.take());
        let status = self.child.wait_timeout(timeout)?;
        Ok(status.is_some_and(|s| s.success()))
    }
}
