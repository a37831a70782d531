//! natkit-stun's server: "which address did you come from?", with RFC 5780
//! behaviour discovery when given a second address. The full tool, with rate
//! limits, 1:1 NAT addresses and systemd readiness, is `natkit stun-server`.
//!
//! ```text
//! cargo run --example stun_server -- IP:PORT [IP2:PORT2]
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use natkit_stun::server::{Server, ServerConfig};

#[tokio::main]
async fn main() -> ExitCode {
    let addrs: Result<Vec<SocketAddr>, _> = std::env::args().skip(1).map(|a| a.parse()).collect();
    let (primary, alternate) = match addrs.as_deref() {
        Ok([p]) => (*p, None),
        Ok([p, a]) => (*p, Some(*a)),
        _ => {
            eprintln!("error: usage: stun_server IP:PORT [IP2:PORT2]");
            return ExitCode::from(2);
        }
    };
    let mut config = ServerConfig::new(primary);
    config.alternate = alternate;
    let server = match Server::bind(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    for a in server.local_addrs() {
        println!("listening on {a}/udp; Ctrl-C stops");
    }
    let stop = server.stop_handle();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.stop();
    });
    match server.run().await {
        Ok(counters) => {
            println!("stopped: {counters:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
