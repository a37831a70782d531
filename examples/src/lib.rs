//! Shared helpers for the natkit examples: one style for every tool.
//!
//! Every example uses clap for arguments, prints human output by default and
//! JSON with `--json`, logs with tracing under `-v`, and prints a failure
//! as one clear line on stderr with a non-zero exit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::fmt::Display;
use std::process::ExitCode;

/// The flags every example shares: `--json` and `-v`.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct CommonArgs {
    /// Print JSON instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// More logging on stderr (-v, -vv, -vvv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Sets up tracing on stderr: warnings by default, `-v` info, `-vv` debug,
/// `-vvv` trace. `RUST_LOG` overrides.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The error and its whole source chain as one line, each cause once.
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    line
}

/// Prints `error: …` (see [`error_line`]) and returns the failure exit code.
pub fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {}", error_line(error));
    ExitCode::FAILURE
}

/// Parses the command line like `T::parse()`, except that a usage error is
/// printed as one line (`error: …`, clap's message without the usage
/// block) and handed back as exit code 2. `--help` and `--version` print as
/// usual and exit 0.
pub fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{}", usage_error_line(&e.to_string()));
                ExitCode::from(2)
            }
        }
    })
}

/// The first paragraph of a clap error message on one line: clap puts a
/// list (e.g. the missing arguments) on the lines after the first, and the
/// usage after a blank line.
pub fn usage_error_line(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints `error: {message}` and returns the failure exit code.
pub fn fail_msg(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_fit_on_one_line() {
        let clap_text = "error: the following required arguments were not provided:\n  \
                         --target <HOST>\n\nUsage: probe --target <HOST>\n\n\
                         For more information, try '--help'.\n";
        assert_eq!(
            usage_error_line(clap_text),
            "error: the following required arguments were not provided: --target <HOST>"
        );
        assert_eq!(
            usage_error_line("error: unexpected argument '--x' found\n\n  tip: …\n"),
            "error: unexpected argument '--x' found"
        );
    }

    #[test]
    fn error_line_joins_causes_once() {
        let e = natkit_core::Error::mechanism(
            natkit_core::Mechanism::Pcp,
            natkit_core::FailureKind::Timeout,
            std::io::Error::other("no answer from 192.168.77.1:5351"),
        );
        assert_eq!(
            error_line(&e),
            "pcp: timed out: no answer from 192.168.77.1:5351"
        );
    }
}
