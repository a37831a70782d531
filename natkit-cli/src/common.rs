//! One style for every subcommand: a human report by default, JSON with
//! `--json`, tracing logs on stderr under `-v`, colour only on a terminal and
//! never with `NO_COLOR`, and a failure as one clear `error: …` line.

use std::fmt::Display;
use std::io::IsTerminal;
use std::process::ExitCode;

pub(crate) use natkit_core::error_line;

/// `println!` that never panics: when stdout is a closed pipe (`natkit … | head`)
/// the rest of the output is dropped and the command ends as it would have.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// What every subcommand is told about its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    /// `--json`: machine output on stdout.
    pub(crate) json: bool,
}

/// Whether the user asked for no colour (<https://no-color.org>: `NO_COLOR`
/// set and not empty).
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether stdout gets colour: a terminal, and no `NO_COLOR`.
pub(crate) fn colour_stdout() -> bool {
    std::io::stdout().is_terminal() && !no_color()
}

/// Sets up tracing on stderr: warnings by default, `-v` info, `-vv` debug,
/// `-vvv` trace; `RUST_LOG` overrides. ANSI colours only when stderr is a
/// terminal and `NO_COLOR` is not set (under systemd stderr goes to the journal).
pub(crate) fn init_logging(verbose: u8) {
    let level = match verbose {
        // `natkit map` prints what the IPv6 pinhole's follower does itself.
        0 => "warn,natkit::renumber=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color())
        .try_init();
}

/// Prints `error: …` (see [`error_line`]) and returns the failure exit code.
pub(crate) fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("error: {}", error_line(error));
    ExitCode::FAILURE
}

/// Prints `error: {message}` and returns the failure exit code.
pub(crate) fn fail_msg(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Prints `error: {message}` and returns the usage exit code (2).
pub(crate) fn usage(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Parses the command line like `T::parse()`, except that a usage error is
/// printed as one line (`error: …`, clap's message without the usage block)
/// and handed back as exit code 2. `--help` and `--version` print as usual and
/// exit 0.
pub(crate) fn parse_args<T: clap::Parser>() -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = e.print();
                if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                }
            }
            _ => {
                eprintln!("{}", usage_error_line(&e.to_string()));
                ExitCode::from(2)
            }
        }
    })
}

/// The first paragraph of a clap error message on one line: clap puts a list
/// (e.g. the missing arguments) on the lines after the first, and the usage
/// after a blank line.
pub(crate) fn usage_error_line(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is made: a server
/// makes it before it tells systemd it is ready, so a `systemctl stop` right after
/// the start is a clean stop, not the default action of the signal.
pub(crate) struct Shutdown {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Shutdown {
    /// Starts catching the signals.
    pub(crate) fn listen() -> std::io::Result<Shutdown> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Shutdown {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Shutdown {})
        }
    }

    /// Waits for either signal.
    pub(crate) async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Prints a value as one line of JSON on stdout.
pub(crate) fn print_json(value: &serde_json::Value) {
    outln!("{value}");
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
}
