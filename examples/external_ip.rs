//! This host's public address with the `natkit` facade: STUN servers and the
//! router's own report (UPnP, NAT-PMP, PCP), asked at once, and the address most
//! of them agree on. The full tool is `natkit external-ip`.
//!
//! ```text
//! cargo run --example external_ip -- [HOST:PORT ...]   # STUN servers; default: natkit's list
//! ```

use std::process::ExitCode;

use natkit::AddressQuery;

#[tokio::main]
async fn main() -> ExitCode {
    let servers: Vec<String> = std::env::args().skip(1).collect();
    let mut query = AddressQuery::new();
    if !servers.is_empty() {
        query = query.servers(servers);
    }
    match query.run().await {
        Ok(address) => {
            println!(
                "{} ({}; {} of {} sources agree)",
                address.ip,
                natkit::AddressScope::of(address.ip).describe(),
                address.agreeing().count(),
                address.evidence.len()
            );
            for e in &address.evidence {
                println!("  {e}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
