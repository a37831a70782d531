//! `natkit`: why can't the internet reach this machine, and the tools to fix it.
//!
//! One binary with a subcommand per job: `doctor` (the diagnosis), `map`,
//! `external-ip`, `nat-type`, `probe`, and the two servers that run outside,
//! `stun-server` and `dialback-server`. Every subcommand prints a human report by
//! default and JSON with `--json`, logs on stderr under `-v`, and exits with the
//! codes of [`EXIT_CODES`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[macro_use]
mod common;
mod cmd;
mod notify;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::common::Output;

/// The exit codes, once for every subcommand (the README shows the same table).
const EXIT_CODES: &str = "\
Exit status:
  0    ok: the subcommand did its job (doctor: the diagnosis ran, whatever else it
       found; map: the mapping was made and deleted again; a server: stopped by a signal)
  1    a failure the subcommand names on stderr: doctor: no network, no internet or
       no DNS (the report's first finding, on stdout); map: no
       mechanism could map, or the deletion failed; external-ip: no source saw an
       address; nat-type: no STUN server answered; probe, servers: a local error
  2    bad usage (an unknown flag, a value out of range)
  130  interrupted (doctor: Ctrl-C or SIGTERM; its trial mappings were deleted)";

/// natkit: why can't the internet reach this machine?
#[derive(Parser, Debug)]
#[command(name = "natkit", version, about, after_long_help = EXIT_CODES)]
#[command(long_about = "natkit: why can't the internet reach this machine?\n\n\
    Start with `natkit doctor` (add `--profile NAME` or `--ports SPEC` for a service). \
    Colour only on a terminal, never with NO_COLOR set.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print JSON instead of the human report.
    #[arg(long, global = true)]
    json: bool,
    /// More logging on stderr (-v, -vv, -vvv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Diagnose why a service on this machine is unreachable from outside.
    Doctor(cmd::doctor::Args),
    /// Map a port on the router for this host and keep it until stopped.
    Map(cmd::map::Args),
    /// Find this host's public address: STUN servers and the router, compared.
    ExternalIp(cmd::external_ip::Args),
    /// Classify the NAT between this host and the internet with STUN.
    NatType(cmd::nat_type::Args),
    /// Probe the TCP and UDP ports of a host, or check them from outside.
    Probe(cmd::probe::Args),
    /// The router's forwarding table with what each port is for; export, re-create.
    Forwards(cmd::forwards::Args),
    /// Run a STUN server (RFC 8489, RFC 5780 with --alternate, RFC 3489 clients too).
    StunServer(cmd::stun_server::Args),
    /// Run a dial-back server (outside-in reachability checks).
    DialbackServer(cmd::dialback_server::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match common::parse_args::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "natkit", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    common::init_logging(cli.verbose);
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return common::fail(&e),
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Doctor(a) => cmd::doctor::run(a, out).await,
            Command::Map(a) => cmd::map::run(a, out).await,
            Command::ExternalIp(a) => cmd::external_ip::run(a, out).await,
            Command::NatType(a) => cmd::nat_type::run(a, out).await,
            Command::Probe(a) => cmd::probe::run(a, out).await,
            Command::Forwards(a) => cmd::forwards::run(a, out).await,
            Command::StunServer(a) => cmd::stun_server::run(a, out).await,
            Command::DialbackServer(a) => cmd::dialback_server::run(a, out).await,
            Command::Completions { .. } => ExitCode::SUCCESS,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn json_and_verbose_go_anywhere() {
        let a = Cli::try_parse_from(["natkit", "doctor", "--json", "-vv"]).expect("parses");
        assert!(a.json);
        assert_eq!(a.verbose, 2);
        let b = Cli::try_parse_from(["natkit", "--json", "nat-type"]).expect("parses");
        assert!(b.json);
    }

    /// The README tables of the exit codes say what `--help` says.
    #[test]
    fn the_readmes_show_the_exit_codes_of_help() {
        let mut rows: Vec<(String, String)> = Vec::new();
        for line in EXIT_CODES.lines().skip(1) {
            let line = line.trim();
            match line.split_once(' ') {
                Some((code, text)) if code.parse::<u8>().is_ok() => {
                    rows.push((code.to_owned(), text.trim().to_owned()));
                }
                _ => {
                    let last = rows.last_mut().expect("a code first");
                    last.1.push(' ');
                    last.1.push_str(line);
                }
            }
        }
        assert_eq!(rows.len(), 4);
        for (name, readme) in [
            ("README.md", include_str!("../../README.md")),
            ("natkit-cli/README.md", include_str!("../README.md")),
        ] {
            for (code, text) in &rows {
                let row = format!("| {code} | {text} |");
                assert!(readme.contains(&row), "{name} lacks {row}");
            }
        }
    }

    #[test]
    fn completions_name_every_subcommand() {
        let mut script = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "natkit",
            &mut script,
        );
        let script = String::from_utf8(script).expect("utf-8");
        for sub in [
            "doctor",
            "map",
            "external-ip",
            "nat-type",
            "probe",
            "forwards",
            "stun-server",
            "dialback-server",
        ] {
            assert!(script.contains(sub), "{sub} missing from the completions");
        }
    }
}
