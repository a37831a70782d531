//! Open a port on the router with the `natkit` facade, keep it until Ctrl-C,
//! then delete it: `PortLease` detects PCP, NAT-PMP and UPnP IGD at once, maps
//! through the best one, renews it, and cleans up what a killed earlier run left.
//! The full tool is `natkit map`.
//!
//! ```text
//! cargo run --example map_port -- [tcp|udp] [PORT]
//! ```

use std::process::ExitCode;

use natkit::{PortLease, Protocol};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let protocol = match args.next().as_deref() {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some(other) => return usage(&format!("{other:?} is not tcp or udp")),
    };
    let port = match args.next().map(|p| p.parse::<u16>()) {
        None => 8080,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => return usage("the port must be 1-65535"),
    };
    let lease = match PortLease::open(protocol, port).await {
        Ok(lease) => lease,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(m) = lease.external() {
        println!(
            "mapped {} {} -> {} via {} (lease {} s); Ctrl-C deletes it",
            m.protocol,
            m.external,
            m.internal,
            m.mechanism.display_name(),
            m.lifetime.as_secs()
        );
    }
    // The lease's state is a watch: renewals, re-mappings after a router reboot.
    let mut watch = lease.watch();
    let mut shown = lease.external().map(|m| (m.external, m.lifetime));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = watch.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = watch.borrow_and_update().as_ref().map(|m| (m.external, m.lifetime));
                if now != shown {
                    match now {
                        Some((external, lease)) => {
                            println!("now {external} (lease {} s)", lease.as_secs());
                        }
                        None => println!("the mapping is lost; natkit keeps trying"),
                    }
                    shown = now;
                }
            }
        }
    }
    match lease.close().await {
        Ok(()) => {
            println!("deleted");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: deleting the mapping: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("error: {why}; usage: map_port [tcp|udp] [PORT]");
    ExitCode::from(2)
}
