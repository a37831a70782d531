//! The tokio engine: runs the [`Scheduler`]'s tries on real sockets and
//! streams what it concludes.

mod errno;
mod errqueue;
mod tcp;
mod udp;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use natkit_core::Protocol;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::config::ProbeConfig;
use crate::error::Error;
use crate::event::{ProbeEvent, Summary};
use crate::plan::ProbePlan;
use crate::scheduler::{Action, AttemptId, AttemptOutcome, Scheduler};
use crate::verdict::PortProbe;

/// Probes ports over TCP and UDP, IPv4 and IPv6, without privileges.
///
/// ```no_run
/// # async fn demo() -> Result<(), natkit_probe::Error> {
/// use natkit_probe::{ProbeConfig, ProbePlan, Prober};
/// let spec = "22,80,443/tcp,53/udp".parse().expect("a valid spec");
/// let plan = ProbePlan::from_spec(&["127.0.0.1".parse().expect("an address")], &spec)?;
/// let summary = Prober::new(ProbeConfig::default())?.run(plan).await?;
/// for v in &summary.verdicts {
///     println!("{v}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Prober {
    config: ProbeConfig,
}

impl Prober {
    /// A prober with `config`, checked.
    pub fn new(config: ProbeConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Prober { config })
    }

    /// The configuration.
    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Starts probing `plan` on the current tokio runtime (which needs I/O
    /// and time enabled) and streams the events. Dropping the stream stops
    /// the run and closes its sockets.
    pub fn start(&self, plan: ProbePlan) -> Result<ProbeStream, Error> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let ceiling = self.config.concurrency_ceiling();
        let (tx, rx) = mpsc::channel(self.config.event_buffer.max(1));
        let config = self.config.clone();
        let task = handle.spawn(drive(config, plan.into_probes(), ceiling, tx));
        Ok(ProbeStream {
            rx,
            task,
            done: false,
        })
    }

    /// Probes `plan` to the end and returns every verdict.
    pub async fn run(&self, plan: ProbePlan) -> Result<Summary, Error> {
        self.start(plan)?.summary().await
    }
}

type Item = Result<ProbeEvent, Error>;

/// The events of a run, as they come: verdicts, back-off notices, then
/// [`ProbeEvent::Finished`] (or one error) and the end.
#[derive(Debug)]
pub struct ProbeStream {
    rx: mpsc::Receiver<Item>,
    task: JoinHandle<()>,
    done: bool,
}

impl ProbeStream {
    /// The next event, or `None` after the last.
    pub async fn next(&mut self) -> Option<Item> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Collects the rest of the run into a [`Summary`].
    pub async fn summary(mut self) -> Result<Summary, Error> {
        let mut verdicts = Vec::new();
        let mut backoffs = Vec::new();
        while let Some(item) = self.next().await {
            match item? {
                ProbeEvent::Verdict(v) => verdicts.push(v),
                ProbeEvent::Backoff(b) => backoffs.push(b),
                ProbeEvent::Finished(stats) => {
                    verdicts.sort_by_key(|v| v.probe);
                    return Ok(Summary {
                        verdicts,
                        backoffs,
                        stats,
                    });
                }
            }
        }
        Err(Error::ProbeTaskFailed)
    }
}

impl Stream for ProbeStream {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => {
                if matches!(item, Ok(ProbeEvent::Finished(_)) | Err(_)) {
                    self.done = true;
                }
                Poll::Ready(Some(item))
            }
            // The engine ended without finishing: it panicked or was
            // stopped from outside.
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Some(Err(Error::ProbeTaskFailed)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Feeds one finished try to the scheduler; `false` ends the run.
async fn settle(
    sched: &mut Scheduler,
    done: Result<(AttemptId, AttemptOutcome), JoinError>,
    tx: &mpsc::Sender<Item>,
) -> bool {
    let result = match done {
        Ok((id, outcome)) => sched.on_outcome(id, outcome, Instant::now()),
        Err(_) => Err(Error::ProbeTaskFailed),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            false
        }
    }
}

async fn drive(
    config: ProbeConfig,
    probes: Vec<PortProbe>,
    ceiling: usize,
    tx: mpsc::Sender<Item>,
) {
    let tcp_icmp = config.tcp_icmp_details;
    let mut sched = Scheduler::new(config, probes, ceiling, Instant::now());
    let mut tasks: JoinSet<(AttemptId, AttemptOutcome)> = JoinSet::new();
    loop {
        while let Some(done) = tasks.try_join_next() {
            if !settle(&mut sched, done, &tx).await {
                return;
            }
        }
        while let Some(event) = sched.poll_event(Instant::now()) {
            let last = matches!(event, ProbeEvent::Finished(_));
            if tx.send(Ok(event)).await.is_err() || last {
                return;
            }
        }
        match sched.poll(Instant::now()) {
            Action::Launch(launch) => match launch.probe.protocol {
                Protocol::Tcp => match tcp::begin(&launch, tcp_icmp) {
                    // Answered already: no task, no reactor registration.
                    Ok(outcome) => {
                        if !settle(&mut sched, Ok((launch.id, outcome)), &tx).await {
                            return;
                        }
                    }
                    Err(connecting) => {
                        tasks.spawn(
                            async move { (launch.id, tcp::finish(launch, connecting).await) },
                        );
                    }
                },
                Protocol::Udp => {
                    tasks.spawn(async move { (launch.id, udp::attempt(launch).await) });
                }
            },
            Action::WaitUntil(at) => {
                let at = tokio::time::Instant::from_std(at);
                tokio::select! {
                    done = tasks.join_next(), if !tasks.is_empty() => {
                        if let Some(done) = done
                            && !settle(&mut sched, done, &tx).await
                        {
                            return;
                        }
                    }
                    () = tokio::time::sleep_until(at) => {}
                }
            }
            Action::WaitForOutcome => match tasks.join_next().await {
                Some(done) => {
                    if !settle(&mut sched, done, &tx).await {
                        return;
                    }
                }
                None => {
                    // The scheduler waits for a try that is not running: a bug.
                    let _ = tx.send(Err(Error::ProbeTaskFailed)).await;
                    return;
                }
            },
            // The Finished event comes out of poll_event on the next turn.
            Action::Done => {}
        }
    }
}
