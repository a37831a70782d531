//! The tokio engine: runs the [`Scheduler`]'s tries on real sockets and
//! streams what it concludes.

pub(crate) mod errno;
pub(crate) mod errqueue;
#[cfg(target_os = "linux")]
pub(crate) mod hops;
pub(crate) mod tcp;
pub(crate) mod udp;

use std::collections::VecDeque;
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
use crate::scheduler::{Action, AttemptId, AttemptOutcome, Launch, Scheduler};

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
        let (tx, rx) = mpsc::channel(self.config.event_buffer.div_ceil(MAX_BATCH).max(1));
        let config = self.config.clone();
        let task = handle.spawn(drive(config, plan, ceiling, tx));
        Ok(ProbeStream {
            rx,
            ready: VecDeque::new(),
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

/// Events travel to the stream in batches of up to this many: one wake-up
/// of the reader per batch instead of per verdict (on a loopback sweep the
/// per-verdict wake-ups cost more than the probes). A batch is sent as soon
/// as the engine has nothing else to do, so nothing waits in it.
const MAX_BATCH: usize = 256;

/// The events of a run, as they come: verdicts, back-off notices, then
/// [`ProbeEvent::Finished`] (or one error) and the end.
#[derive(Debug)]
pub struct ProbeStream {
    rx: mpsc::Receiver<Vec<Item>>,
    ready: VecDeque<Item>,
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
        loop {
            if let Some(item) = self.ready.pop_front() {
                if matches!(item, Ok(ProbeEvent::Finished(_)) | Err(_)) {
                    self.done = true;
                    self.ready.clear();
                }
                return Poll::Ready(Some(item));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.ready.extend(batch),
                // The engine ended without finishing: it panicked or was
                // stopped from outside.
                Poll::Ready(None) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Error::ProbeTaskFailed)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a task hands back.
enum TaskOutput {
    /// One try's outcome.
    One(AttemptId, AttemptOutcome),
    /// A batch of TCP tries begun on a helper thread: each answered
    /// already, or a connect under way; and the helper's spare sockets.
    Begun(Vec<(Launch, Begun)>, tcp::Spares),
}

type Begun = Result<AttemptOutcome, tcp::Connecting>;
type Done = Result<TaskOutput, JoinError>;

/// TCP tries are gathered up to this many before they start (a large
/// batch makes the helper's hand-overs, each a thread wake-up, rare: on a
/// loaded 2-core machine a loopback sweep took 0.23 s with 1024 against
/// 0.30 s with 128; the same 0.11 s when idle)…
const LAUNCH_BATCH: usize = 1024;
/// …and from this many on, half of them start on a helper thread, so that
/// a fast target (loopback, a LAN host) keeps both cores busy with the
/// kernel's work instead of one…
const MIN_OFFLOAD: usize = 16;
/// …while this thread starts at most this many at a time before it looks
/// again whether the helper is free: this thread also runs the scheduler,
/// so the helper, taking half of what is staged whenever it is idle, ends
/// up with its fair share.
const LOCAL_CHUNK: usize = 32;

/// The run's state: the scheduler, the tries in flight, the events not yet
/// sent.
struct Driver {
    sched: Scheduler,
    tasks: JoinSet<TaskOutput>,
    tx: mpsc::Sender<Vec<Item>>,
    batch: Vec<Item>,
    staged: Vec<Launch>,
    /// Spare sockets for the tries started here…
    spares: tcp::Spares,
    /// …and for the helper thread's, while it is idle (`None` while busy).
    helper_spares: Option<tcp::Spares>,
    /// The time, read once per turn of the loop: the scheduler's
    /// bookkeeping needs no finer clock (each try times itself).
    now: Instant,
}

impl Driver {
    /// Feeds one try's outcome to the scheduler; `false` ends the run (the
    /// error is queued for the reader).
    fn settle(&mut self, id: AttemptId, outcome: AttemptOutcome) -> bool {
        match self.sched.on_outcome(id, outcome, self.now) {
            Ok(()) => true,
            Err(e) => {
                self.batch.push(Err(e));
                false
            }
        }
    }

    /// Handles a finished task.
    fn finished(&mut self, done: Done) -> bool {
        match done {
            Ok(TaskOutput::One(id, outcome)) => self.settle(id, outcome),
            Ok(TaskOutput::Begun(list, spares)) => {
                self.helper_spares = Some(spares);
                list.into_iter()
                    .all(|(launch, begun)| self.begun(launch, begun))
            }
            Err(_) => {
                self.batch.push(Err(Error::ProbeTaskFailed));
                false
            }
        }
    }

    /// Settles a TCP try that was answered at once, or waits for it.
    fn begun(&mut self, launch: Launch, begun: Begun) -> bool {
        match begun {
            Ok(outcome) => self.settle(launch.id, outcome),
            Err(connecting) => {
                self.tasks.spawn(async move {
                    TaskOutput::One(launch.id, tcp::finish(launch, connecting).await)
                });
                true
            }
        }
    }

    /// Moves the scheduler's events into the batch; `true` once the run's
    /// last event is in it.
    fn collect(&mut self) -> bool {
        while let Some(event) = self.sched.poll_event(self.now) {
            let last = matches!(event, ProbeEvent::Finished(_));
            self.batch.push(Ok(event));
            if last {
                return true;
            }
        }
        false
    }

    /// Sends the batch; `false` when the reader is gone.
    async fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH));
        self.tx.send(batch).await.is_ok()
    }

    /// Starts one try: TCP tries are staged, UDP tries get their task.
    fn launch(&mut self, launch: Launch) -> bool {
        match launch.probe.protocol {
            Protocol::Tcp => {
                self.staged.push(launch);
                self.staged.len() < LAUNCH_BATCH || self.dispatch()
            }
            Protocol::Udp => {
                self.tasks
                    .spawn(async move { TaskOutput::One(launch.id, udp::attempt(launch).await) });
                true
            }
        }
    }

    /// Starts staged TCP tries: half of them on the helper thread when
    /// enough are staged and it is idle, then up to [`LOCAL_CHUNK`] here
    /// (the rest stay staged for the next call). Answers already in are
    /// settled on the spot: no task, no reactor registration.
    fn dispatch(&mut self) -> bool {
        let mut staged = std::mem::take(&mut self.staged);
        if staged.len() >= MIN_OFFLOAD
            && let Some(mut spares) = self.helper_spares.take()
        {
            let offload = staged.split_off(staged.len() / 2);
            self.tasks.spawn_blocking(move || {
                let begun = offload
                    .into_iter()
                    .map(|launch| (launch, tcp::begin(&launch, &mut spares)))
                    .collect();
                TaskOutput::Begun(begun, spares)
            });
        }
        let mut ok = true;
        let here = staged.len().min(LOCAL_CHUNK);
        for launch in staged.drain(..here) {
            if ok {
                let begun = tcp::begin(&launch, &mut self.spares);
                ok = self.begun(launch, begun);
            }
        }
        self.staged = staged;
        self.now = Instant::now();
        ok
    }

    async fn run(&mut self) {
        loop {
            self.now = Instant::now();
            while let Some(done) = self.tasks.try_join_next() {
                if !self.finished(done) {
                    return;
                }
            }
            if self.collect() {
                return;
            }
            if self.batch.len() >= MAX_BATCH && !self.flush().await {
                return;
            }
            match self.sched.poll(self.now) {
                Action::Launch(launch) => {
                    if !self.launch(launch) {
                        return;
                    }
                    continue;
                }
                // The Finished event comes out of collect() on the next turn.
                Action::Done => continue,
                Action::WaitUntil(_) | Action::WaitForOutcome => {}
            }
            // Nothing more to start now: start what is staged first.
            if !self.staged.is_empty() {
                if !self.dispatch() {
                    return;
                }
                continue;
            }
            // About to wait: nothing may sit in the batch meanwhile.
            if !self.flush().await {
                return;
            }
            let done = match self.sched.poll(Instant::now()) {
                Action::WaitUntil(at) => {
                    let at = tokio::time::Instant::from_std(at);
                    tokio::select! {
                        done = self.tasks.join_next(), if !self.tasks.is_empty() => done,
                        () = tokio::time::sleep_until(at) => None,
                    }
                }
                Action::WaitForOutcome => match self.tasks.join_next().await {
                    Some(done) => Some(done),
                    None => {
                        // The scheduler waits for a try that is not running: a bug.
                        self.batch.push(Err(Error::ProbeTaskFailed));
                        return;
                    }
                },
                Action::Launch(launch) => {
                    if !self.launch(launch) {
                        return;
                    }
                    None
                }
                Action::Done => None,
            };
            self.now = Instant::now();
            if let Some(done) = done
                && !self.finished(done)
            {
                return;
            }
        }
    }
}

async fn drive(config: ProbeConfig, plan: ProbePlan, ceiling: usize, tx: mpsc::Sender<Vec<Item>>) {
    let tcp_icmp = config.tcp_icmp_details;
    let mut driver = Driver {
        sched: Scheduler::for_plan(config, plan, ceiling, Instant::now()),
        tasks: JoinSet::new(),
        tx,
        batch: Vec::with_capacity(MAX_BATCH),
        staged: Vec::with_capacity(LAUNCH_BATCH),
        spares: tcp::Spares::new(tcp_icmp),
        helper_spares: Some(tcp::Spares::new(tcp_icmp)),
        now: Instant::now(),
    };
    driver.run().await;
    // The last events (the finish, or the error that ended the run).
    driver.flush().await;
}
