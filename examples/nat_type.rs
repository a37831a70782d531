//! What kind of NAT is in the way, with natkit-stun's classifier: RFC 5780
//! behaviour tests (RFC 3489's against servers like stund), mapping and filtering
//! behaviour, the classic name, and the evidence. The full tool is
//! `natkit nat-type`.
//!
//! ```text
//! cargo run --example nat_type -- [HOST:PORT ...]   # STUN servers; default: natkit's list
//! ```

use std::process::ExitCode;

use natkit_stun::classify::{ClassifyConfig, classify};

#[tokio::main]
async fn main() -> ExitCode {
    let mut servers: Vec<String> = std::env::args().skip(1).collect();
    if servers.is_empty() {
        servers = natkit_stun::default_servers();
    }
    let mut config = ClassifyConfig::new(servers);
    config.hairpinning = true;
    let c = match classify(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With no NAT in the way (IPv6, a public IPv4 host) the tests measure a firewall.
    let what = if c.firewall.is_some() {
        "firewall"
    } else {
        "NAT type"
    };
    println!("{what:<14}{}: {}", c.kind(), c.meaning());
    println!("mapping       {}", c.mapping_name());
    println!("filtering     {}", c.behaviour.filtering);
    if let Some(h) = c.behaviour.hairpinning {
        println!("hairpinning   {}", if h { "yes" } else { "no" });
    }
    if let Some(ext) = c.external {
        println!("external      {ext}");
    }
    if let Some(server) = c.behaviour_server {
        println!("tested with   {server}");
    }
    for note in &c.notes {
        println!("note          {note}");
    }
    ExitCode::SUCCESS
}
