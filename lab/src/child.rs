//! Processes started inside a lab: killed by pid when dropped, waited for with a
//! deadline.

use std::io::Read;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Output};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::error::LabError;

const POLL: Duration = Duration::from_millis(10);

/// A process running in a lab namespace (from [`Lab::spawn`](crate::Lab::spawn) or
/// [`LabChild::spawn`]). Dropping it kills it (SIGKILL to its pid) and reaps it, so a
/// test that panics leaves nothing running.
#[derive(Debug)]
pub struct LabChild {
    child: Child,
    what: String,
    /// Set once the process was reaped: nothing to kill on drop.
    exited: bool,
}

impl LabChild {
    /// Spawns `cmd` (typically from [`Lab::command`](crate::Lab::command)) as it is
    /// configured; stdio is whatever the caller set up.
    pub fn spawn(cmd: &mut Command) -> Result<Self, LabError> {
        let what = describe(cmd);
        let child = cmd
            .spawn()
            .map_err(|e| LabError::io(format!("spawning `{what}`"), e))?;
        Ok(Self {
            child,
            what,
            exited: false,
        })
    }

    /// The process id. `ip netns exec` execs the program, so this is the program's
    /// own pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The underlying [`Child`], e.g. to take its stdin.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the process has ended, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, LabError> {
        let status = self
            .child
            .try_wait()
            .map_err(|e| LabError::io(format!("waiting for `{}`", self.what), e))?;
        self.exited |= status.is_some();
        Ok(status)
    }

    /// Waits up to `timeout` for the process to end; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, LabError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// Waits up to `timeout` for the process to end and collects what it wrote to the
    /// stdout/stderr pipes (empty for streams that were not piped). On timeout the
    /// process is killed and [`LabError::Timeout`] returned.
    pub fn wait_with_output_timeout(mut self, timeout: Duration) -> Result<Output, LabError> {
        let out = self.child.stdout.take().map(read_in_thread);
        let err = self.child.stderr.take().map(read_in_thread);
        let status = self.wait_timeout(timeout)?;
        let Some(status) = status else {
            self.kill()?;
            // The pipes close with the process; join so no thread outlives us.
            let _ = join(out);
            let _ = join(err);
            return Err(LabError::Timeout {
                what: self.what.clone(),
                after: timeout,
            });
        };
        Ok(Output {
            status,
            stdout: join(out),
            stderr: join(err),
        })
    }

    /// Kills the process (SIGKILL to its pid) and reaps it. Does nothing if it has
    /// already been reaped.
    pub fn kill(&mut self) -> Result<(), LabError> {
        if self.exited {
            return Ok(());
        }
        // Killing an already-exited (zombie) child is fine; then reap it.
        let _ = self.child.kill();
        self.child
            .wait()
            .map_err(|e| LabError::io(format!("reaping `{}`", self.what), e))?;
        self.exited = true;
        Ok(())
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("natkit-lab: {e}");
        }
    }
}

enum Pipe {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl From<ChildStdout> for Pipe {
    fn from(p: ChildStdout) -> Self {
        Pipe::Out(p)
    }
}

impl From<ChildStderr> for Pipe {
    fn from(p: ChildStderr) -> Self {
        Pipe::Err(p)
    }
}

fn read_in_thread(pipe: impl Into<Pipe>) -> JoinHandle<Vec<u8>> {
    let pipe = pipe.into();
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error just ends the capture: the caller gets what arrived.
        let _ = match pipe {
            Pipe::Out(mut p) => p.read_to_end(&mut buf),
            Pipe::Err(mut p) => p.read_to_end(&mut buf),
        };
        buf
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// A command line for messages: program and arguments, space separated.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
