//! The human report: a progress bar while probing (on a terminal), then a table
//! and a summary.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use natkit_probe::dialback::{Reachability, ReachabilityReport, canonical};
use natkit_probe::{Backoff, PortState, PortVerdict, Reason, Stats};

use super::json::{count, reach_rtt, report_backoff};
use super::{Request, Sink, short};

/// What was seen, in words: the `reason` of the table and of JSON.
pub(super) fn describe(v: &PortVerdict) -> String {
    let target = v.probe.addr.ip();
    match v.reason {
        Reason::Connected { rtt } => format!("connected in {}", short(rtt)),
        Reason::Reset { rtt } => format!("TCP reset from {target} after {}", short(rtt)),
        Reason::Reply { rtt, bytes } => format!("{bytes}-byte reply after {}", short(rtt)),
        Reason::Icmp {
            report,
            from_target,
            rtt,
        } => {
            let from = match report.offender {
                Some(o) if from_target => format!("from {o} (the target)"),
                Some(o) => format!("from {o} (not the target)"),
                None => "from an unknown sender".to_string(),
            };
            format!(
                "ICMP {} (type {} code {}) {from} after {}",
                report.kind.describe(),
                report.kind.icmp_type,
                report.kind.icmp_code,
                short(rtt)
            )
        }
        Reason::Refused { rtt } => format!("refused (no ICMP details) after {}", short(rtt)),
        Reason::Silence { tries, waited } => {
            let word = if tries == 1 { "try" } else { "tries" };
            format!("no answer to {tries} {word} in {}", short(waited))
        }
        other => other.to_string(),
    }
}

/// The human report: a progress bar while probing (on a terminal), then a
/// table of the ports that are not closed (all with `--all`) and a summary.
pub(super) struct Human {
    progress: ProgressBar,
    rows: Vec<PortVerdict>,
    closed: ClosedTally,
    show_closed: bool,
}

/// How the closed ports that are not listed were found closed.
#[derive(Default)]
pub(super) struct ClosedTally {
    reset: usize,
    icmp: usize,
    other: usize,
}

impl Human {
    pub(super) fn new(total: usize, show_closed: bool) -> Self {
        let bar = progress(
            Some(total as u64),
            "{bar:40.cyan/blue} {pos}/{len} ports  {per_sec}  {msg}",
        );
        Human::with(bar, show_closed)
    }

    /// For `--dialback`: a spinner while the server dials (one answer
    /// comes for all ports at once, so there is nothing to count).
    pub(super) fn checking(server: SocketAddr, ports: usize) -> Self {
        let spinner = progress(None, "{spinner} {msg} {elapsed}");
        spinner.set_message(format!(
            "the dial-back server {server} is dialling {ports} port{}",
            if ports == 1 { "" } else { "s" }
        ));
        spinner.enable_steady_tick(Duration::from_millis(100));
        Human::with(spinner, true)
    }

    fn with(progress: ProgressBar, show_closed: bool) -> Self {
        Human {
            progress,
            rows: Vec::new(),
            closed: ClosedTally::default(),
            show_closed,
        }
    }
}

/// A progress bar (`len` steps) or spinner (`None`) on stderr, drawn only
/// when both stdout and stderr are terminals.
pub(super) fn progress(len: Option<u64>, template: &str) -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr_with_hz(10));
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
impl Sink for Human {
    fn verdict(&mut self, _request: &Request, v: PortVerdict) {
        self.progress.inc(1);
        if v.state == PortState::Open {
            self.progress.set_message(format!("open: {}", v.probe));
        }
        if v.state == PortState::Closed && !self.show_closed {
            match v.reason {
                Reason::Reset { .. } => self.closed.reset += 1,
                Reason::Icmp { .. } => self.closed.icmp += 1,
                _ => self.closed.other += 1,
            }
        } else {
            self.rows.push(v);
        }
    }

    fn backoff(&mut self, b: Backoff) {
        self.progress.suspend(|| report_backoff(b));
    }

    fn finish(&mut self, request: &Request, stats: &Stats) {
        self.progress.finish_and_clear();
        self.rows.sort_by_key(|v| v.probe);
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let _ = print_table(&mut out, request, &self.rows, &self.closed, stats);
        let _ = writeln!(
            out,
            "{} probes in {}: {} open, {} closed, {} filtered, {} open_filtered \
             ({} tries, up to {} at once{})",
            stats.probes,
            short(stats.elapsed),
            stats.counts.open,
            stats.counts.closed,
            stats.counts.filtered,
            stats.counts.open_filtered,
            stats.attempts,
            stats.concurrency_max,
            if stats.backoffs > 0 {
                format!(", {} back-offs", stats.backoffs)
            } else {
                String::new()
            }
        );
        let _ = out.flush();
    }

    fn reachability(&mut self, request: &Request, report: &ReachabilityReport, elapsed: Duration) {
        self.progress.finish_and_clear();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let _ = print_reachability(&mut out, request, report, elapsed);
        let _ = out.flush();
    }
}

/// The `--dialback` table: every port checked, in the order asked.
pub(super) fn print_reachability(
    out: &mut impl Write,
    request: &Request,
    report: &ReachabilityReport,
    elapsed: Duration,
) -> std::io::Result<()> {
    let public = canonical(report.observed.ip());
    let nat = if report.behind_nat {
        format!("behind a NAT: this end is {}", report.local)
    } else {
        "no NAT in between".to_owned()
    };
    writeln!(
        out,
        "dial-back check by {} of {public} (seen as {}; {nat}): {} port{}",
        report.server,
        report.observed,
        report.ports.len(),
        if report.ports.len() == 1 { "" } else { "s" }
    )?;
    writeln!(
        out,
        "{:<11} {:<13} {:<6} {:<9} WHY{}",
        "PORT",
        "VERDICT",
        "PROVEN",
        "RTT",
        if request.profile.is_some() {
            "  (PURPOSE)"
        } else {
            ""
        }
    )?;
    for p in &report.ports {
        let port = format!("{}/{}", p.port.external, p.port.protocol);
        let mut line = format!(
            "{port:<11} {:<13} {:<6} {:<9} {}",
            p.verdict.as_str(),
            if p.proven { "yes" } else { "no" },
            reach_rtt(p).map_or_else(|| "-".to_owned(), short),
            p.why
        );
        if let Some(purpose) = request.purpose(p.port.external, p.port.protocol) {
            line.push_str(&format!("  ({purpose})"));
        }
        writeln!(out, "{line}")?;
    }
    if !report.controls.is_empty() {
        let controls: Vec<String> = report
            .controls
            .iter()
            .map(|c| format!("{}/{} {}", c.port, c.protocol, c.outcome.as_str()))
            .collect();
        writeln!(
            out,
            "unforwarded control ports (nothing of ours listens): {}",
            controls.join(", ")
        )?;
    }
    let counts: Vec<String> = Reachability::ALL
        .iter()
        .map(|&v| format!("{} {v}", count(report, v)))
        .collect();
    writeln!(
        out,
        "{} ports checked in {}: {}",
        report.ports.len(),
        short(elapsed),
        counts.join(", ")
    )
}

pub(super) fn print_table(
    out: &mut impl Write,
    request: &Request,
    rows: &[PortVerdict],
    closed: &ClosedTally,
    stats: &Stats,
) -> std::io::Result<()> {
    let addresses: Vec<String> = request.addresses.iter().map(IpAddr::to_string).collect();
    writeln!(
        out,
        "probe of {} ({}): {} ports",
        request.host,
        addresses.join(", "),
        stats.probes
    )?;
    let many_targets = request.addresses.len() > 1;
    if !rows.is_empty() {
        let mut header = String::new();
        if many_targets {
            header.push_str(&format!("{:<40} ", "ADDRESS"));
        }
        header.push_str(&format!(
            "{:<11} {:<13} {:<5} REASON",
            "PORT", "STATE", "TRIES"
        ));
        if request.profile.is_some() {
            header.push_str("  (PURPOSE)");
        }
        writeln!(out, "{header}")?;
    }
    for v in rows {
        let mut line = String::new();
        if many_targets {
            line.push_str(&format!("{:<40} ", v.probe.addr.ip()));
        }
        let port = format!("{}/{}", v.probe.addr.port(), v.probe.protocol);
        line.push_str(&format!(
            "{port:<11} {:<13} {:<5} {}",
            v.state.as_str(),
            v.tries,
            describe(v)
        ));
        if let Some(p) = v.payload {
            line.push_str(&format!(" ({p} payload)"));
        }
        if let Some(purpose) = request.purpose(v.probe.addr.port(), v.probe.protocol) {
            line.push_str(&format!("  ({purpose})"));
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    let hidden = closed.reset + closed.icmp + closed.other;
    if hidden > 0 {
        let mut how = Vec::new();
        if closed.reset > 0 {
            how.push(format!("{} answered with a TCP reset", closed.reset));
        }
        if closed.icmp > 0 {
            how.push(format!(
                "{} with an ICMP port unreachable from the target",
                closed.icmp
            ));
        }
        if closed.other > 0 {
            how.push(format!("{} refused", closed.other));
        }
        writeln!(
            out,
            "{hidden} closed ports not shown ({}; --all lists them)",
            how.join(", ")
        )?;
    }
    Ok(())
}
