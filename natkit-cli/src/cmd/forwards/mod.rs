//! `natkit forwards`: the router's whole forwarding table, with what each port is
//! for; exported to a file, and re-created on another router.
//!
//! ```text
//! natkit forwards [--json]                    list the table (UPnP IGD)
//! natkit forwards export FILE                 write it to FILE (JSON)
//! natkit forwards import FILE [--dry-run]     re-create this host's entries
//! ```
//!
//! Import re-creates the entries that forwarded to the exporting host, for this
//! host (whatever address the new LAN gives it): UPnP lets a client map ports only
//! to itself, so another host's entries are skipped with that reason. The entries
//! are stored with their own descriptions, without natkit's tag, so that no natkit
//! clean-up takes them for a dead run's mappings.
//!
//! Exit status: 0 when the table was listed or written, or every entry to
//! re-create was; 1 when no IGD answered, an entry failed, or on a local error; 2
//! on bad usage or a file that is not a valid forwards file.

mod file;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use natkit_upnp::{DiscoveryConfig, Error as UpnpError, Igd, PortMappingEntry, PortMappingRequest};
use serde_json::json;

use crate::common::{self, Output};
use file::{ForwardEntry, ForwardsFile, Step};

/// The router's forwarding table: list it, export it, re-create it elsewhere.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// The longest to wait for the router to be found, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, global = true)]
    timeout: f64,
}

#[derive(clap::Subcommand, Debug)]
enum Action {
    /// List the table with what each port is for (the default).
    List,
    /// Write the table to FILE as JSON.
    Export {
        /// The file to write.
        file: PathBuf,
    },
    /// Re-create this host's entries of an exported table on this router.
    Import {
        /// The file `natkit forwards export` wrote.
        file: PathBuf,
        /// Print what would be done; change nothing on the router.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    if !(args.timeout.is_finite() && (0.5..=60.0).contains(&args.timeout)) {
        return common::usage("--timeout must be between 0.5 and 60 seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    match args.action.unwrap_or(Action::List) {
        Action::List => match read_table(timeout).await {
            Ok((igd, entries)) => {
                list(&igd, &entries, out);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Action::Export { file } => match read_table(timeout).await {
            Ok((igd, entries)) => export(&igd, &entries, &file, out),
            Err(code) => code,
        },
        Action::Import { file, dry_run } => import(&file, dry_run, timeout, out).await,
    }
}

async fn find_igd(timeout: Duration) -> Result<Igd, ExitCode> {
    let config = DiscoveryConfig::default();
    match tokio::time::timeout(timeout, natkit_upnp::discover(&config)).await {
        Ok(Ok(igd)) => Ok(igd),
        Ok(Err(e)) => Err(common::fail_msg(format!(
            "no UPnP IGD to read the forwarding table from: {}",
            common::error_line(&e)
        ))),
        Err(_) => Err(common::fail_msg(format!(
            "no UPnP IGD answered within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

async fn read_table(timeout: Duration) -> Result<(Igd, Vec<PortMappingEntry>), ExitCode> {
    let igd = find_igd(timeout).await?;
    match igd.list_entries().await {
        Ok(entries) => Ok((igd, entries)),
        Err(e) => Err(common::fail_msg(format!(
            "the router did not list its forwarding table: {}",
            common::error_line(&e)
        ))),
    }
}

fn lease_text(secs: u32) -> String {
    if secs == 0 {
        "permanent".into()
    } else {
        format!("{secs} s left")
    }
}

fn list(igd: &Igd, entries: &[PortMappingEntry], out: Output) {
    let local = igd.local_ip();
    let this_host = |e: &PortMappingEntry| e.internal_client.parse::<Ipv4Addr>() == Ok(local);
    if out.json {
        let rows: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "protocol": e.protocol,
                    "external_port": e.external_port,
                    "internal_host": e.internal_client,
                    "internal_port": e.internal_port,
                    "this_host": this_host(e),
                    "description": e.description,
                    "lease_secs": e.lease_secs,
                    "enabled": e.enabled,
                    "remote_host": e.remote_host,
                    "purpose": natkit_core::purpose(e.external_port, e.protocol),
                })
            })
            .collect();
        common::print_json(&json!({
            "router": igd.display_name(),
            "local_address": local,
            "entries": rows,
        }));
        return;
    }
    outln!("Router: {} (this host is {local})", igd.display_name());
    if entries.is_empty() {
        outln!("No forwards.");
        return;
    }
    for (title, mine) in [("To this host", true), ("To other hosts", false)] {
        let mut rows: Vec<_> = entries.iter().filter(|e| this_host(e) == mine).collect();
        rows.sort_by_key(|e| (e.external_port, e.protocol));
        if rows.is_empty() {
            continue;
        }
        outln!("{title}:");
        for e in rows {
            let purpose = natkit_core::purpose(e.external_port, e.protocol).unwrap_or("unknown");
            let disabled = if e.enabled { "" } else { ", disabled" };
            outln!(
                "  {:>9}  -> {:<21} {:<42} {:?} ({}{disabled})",
                format!("{}/{}", e.external_port, e.protocol),
                format!("{}:{}", e.internal_client, e.internal_port),
                purpose,
                e.description,
                lease_text(e.lease_secs),
            );
        }
    }
}

fn export(igd: &Igd, entries: &[PortMappingEntry], path: &Path, out: Output) -> ExitCode {
    let file = ForwardsFile::new(igd.local_ip(), igd.display_name(), entries);
    let left_out = entries.len() - file.entries.len();
    let text = match serde_json::to_string_pretty(&file) {
        Ok(t) => t,
        Err(e) => return common::fail(&e),
    };
    if let Err(e) = std::fs::write(path, text + "\n") {
        return common::fail_msg(format!("writing {}: {e}", path.display()));
    }
    if out.json {
        common::print_json(&json!({
            "file": path.display().to_string(),
            "entries": file.entries.len(),
            "left_out": left_out,
        }));
    } else {
        outln!(
            "Wrote {} entries of {} to {}.",
            file.entries.len(),
            igd.display_name(),
            path.display()
        );
        if left_out > 0 {
            outln!("Left out {left_out} entries whose host the router names by name, not address.");
        }
    }
    ExitCode::SUCCESS
}

/// What came of one entry on import.
fn result_json(e: &ForwardEntry, result: &str, detail: &str) -> serde_json::Value {
    json!({
        "protocol": e.protocol,
        "external_port": e.external_port,
        "internal_host": e.internal_host,
        "internal_port": e.internal_port,
        "description": e.description,
        "result": result,
        "detail": detail,
    })
}

async fn import(path: &Path, dry_run: bool, timeout: Duration, out: Output) -> ExitCode {
    let text = match read_limited(path) {
        Ok(t) => t,
        Err(msg) => return common::usage(msg),
    };
    let file = match ForwardsFile::parse(&text) {
        Ok(f) => f,
        Err(e) => return common::usage(format!("{}: {e}", path.display())),
    };
    // A dry run asks the router nothing: this host's address comes from the route.
    let (igd, local) = if dry_run {
        match tokio::task::spawn_blocking(natkit_core::default_gateway).await {
            Ok(Ok(gw)) => (None, gw.local_address),
            Ok(Err(e)) => return common::fail(&e),
            Err(e) => return common::fail(&e),
        }
    } else {
        match find_igd(timeout).await {
            Ok(igd) => {
                let local = igd.local_ip();
                (Some(igd), local)
            }
            Err(code) => return code,
        }
    };
    let steps = file::plan(&file, local);
    let mut rows = Vec::new();
    let mut failed = 0usize;
    let wanted = steps.iter().filter(|s| **s == Step::Recreate).count();
    if !out.json {
        outln!(
            "Re-creating the forwards of {} (exported by {}) for this host, {local}{}:",
            if file.router.is_empty() {
                "the old router"
            } else {
                &file.router
            },
            file.exported_by,
            if dry_run { " (dry run)" } else { "" }
        );
    }
    for (e, step) in file.entries.iter().zip(steps) {
        let (result, detail) = match (step, &igd) {
            (Step::Skip(why), _) => ("skipped", why),
            (Step::Recreate, None) => (
                "would_create",
                format!(
                    "{}/{} -> {local}:{}",
                    e.external_port, e.protocol, e.internal_port
                ),
            ),
            (Step::Recreate, Some(igd)) => match recreate(igd, e, local).await {
                Ok(detail) => ("created", detail),
                Err(detail) => {
                    failed += 1;
                    ("failed", detail)
                }
            },
        };
        if !out.json {
            let purpose = natkit_core::purpose(e.external_port, e.protocol).unwrap_or("unknown");
            outln!(
                "  {:>5}/{} {:?} ({purpose}): {}: {detail}",
                e.external_port,
                e.protocol,
                e.description,
                result.replace('_', " "),
            );
        }
        rows.push(result_json(e, result, &detail));
    }
    if out.json {
        common::print_json(&json!({
            "local_address": local,
            "dry_run": dry_run,
            "entries": rows,
        }));
    }
    if failed > 0 {
        common::fail_msg(format!(
            "{failed} of the {wanted} entries for this host could not be re-created"
        ))
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads the file, refusing one larger than any export.
fn read_limited(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > file::MAX_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes is larger than any forwards file ({} at most)",
            path.display(),
            meta.len(),
            file::MAX_FILE_BYTES
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Maps one entry to this host; the line to print either way.
async fn recreate(igd: &Igd, e: &ForwardEntry, local: Ipv4Addr) -> Result<String, String> {
    let request = PortMappingRequest {
        protocol: e.protocol,
        external_port: e.external_port,
        internal: SocketAddrV4::new(local, e.internal_port),
        lease_secs: e.lease_secs,
        description: file::description_for(e),
    };
    match igd.add_port_mapping_untagged(&request).await {
        Ok(g) => Ok(format!(
            "{}/{} -> {}, {}",
            g.external_port,
            g.protocol,
            g.internal,
            if g.lease_secs == 0 {
                "permanent".to_owned()
            } else {
                format!("lease {} s", g.lease_secs)
            }
        )),
        Err(UpnpError::Conflict {
            holder: Some(h), ..
        }) => Err(format!(
            "the port is already forwarded to {}:{} ({:?})",
            h.internal_client, h.internal_port, h.description
        )),
        Err(err) => Err(common::error_line(&err)),
    }
}
