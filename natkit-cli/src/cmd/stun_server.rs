//! `natkit stun-server`: natkit's STUN server (the SNATMAP role: "which address did
//! you come from?"), with RFC 5780 behaviour discovery when given a second
//! address.
//!
//! ```text
//! natkit stun-server --bind 88.77.66.10:3478 --alternate 88.77.66.11:3479
//! natkit stun-server --bind 88.77.66.10:3478 --alternate 88.77.66.11:3479 \
//!     --bind '[2a0d:88:77:66::10]:3478' --alternate '[2a0d:88:77:66::11]:3479'
//! ```
//!
//! Dual-stack: one --bind (and --alternate) per address family, served at once,
//! each family with its own RFC 5780 addresses.
//!
//! Ctrl-C (or SIGTERM) stops it and prints its counters.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use natkit_stun::server::{Server, ServerConfig};

use crate::common::{self, Output};

/// Run a STUN server (RFC 8489, RFC 5780 with --alternate, RFC 3489 clients too).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The primary address and port, e.g. `0.0.0.0:3478` is NOT enough for
    /// RFC 5780: give a concrete IP. Once per address family (an IPv4 and an
    /// IPv6 one for a dual-stack server).
    #[arg(long, value_name = "IP:PORT", required = true)]
    bind: Vec<SocketAddr>,
    /// A second IP and port for RFC 5780 / RFC 3489 behaviour tests
    /// (both must differ from the --bind of its family); once per family.
    #[arg(long, value_name = "IP:PORT")]
    alternate: Vec<SocketAddr>,
    /// For a server behind 1:1 NAT: the public IP of --bind, then of
    /// --alternate (what OTHER-ADDRESS and RESPONSE-ORIGIN say), by family.
    #[arg(long, value_name = "IP", num_args = 1..=2)]
    advertise: Vec<IpAddr>,
    /// Requests per second allowed from one source IP (one /64 for IPv6).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Requests one source IP may send at once.
    #[arg(long, default_value_t = 128)]
    burst: u32,
    /// Turn the per-source rate limit off (benchmarks and soaks on loopback, where
    /// every request comes from one IP). Never on a public address.
    #[arg(long, conflicts_with_all = ["rate", "burst"])]
    no_rate_limit: bool,
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    let configs = match configs(&args) {
        Ok(c) => c,
        Err(why) => return common::usage(why),
    };
    let server = match Server::bind_many(configs).await {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    let addrs = server.local_addrs();
    let listening: Vec<String> = addrs.iter().map(|a| format!("{a}/udp")).collect();
    // Caught before READY=1: a stop right after the start is a clean one.
    let shutdown = match common::Shutdown::listen() {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    crate::notify::ready(&format!("listening on {}", listening.join(", ")));
    if out.json {
        common::print_json(&serde_json::json!({ "listening": addrs }));
    } else {
        for a in &addrs {
            outln!("listening on {a}/udp");
        }
    }
    let stop = server.stop_handle();
    crate::notify::stop_on_signal(shutdown, move || stop.stop());
    match server.run().await {
        Ok(counters) => {
            if out.json {
                common::print_json(&serde_json::json!({ "stopped": counters }));
            } else {
                outln!("stopped: {counters}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => common::fail(&e),
    }
}

/// One server configuration per address family of --bind, with that family's
/// --alternate and --advertise addresses.
fn configs(args: &Args) -> Result<Vec<ServerConfig>, &'static str> {
    let mut configs = Vec::new();
    for (i, &bind) in args.bind.iter().enumerate() {
        let same = |ip: IpAddr| ip.is_ipv4() == bind.is_ipv4();
        if args.bind[..i].iter().any(|b| same(b.ip())) {
            return Err("one --bind per address family (an IPv4 one and an IPv6 one)");
        }
        let mut alternates = args.alternate.iter().filter(|a| same(a.ip()));
        let mut config = ServerConfig::new(bind);
        config.alternate = alternates.next().copied();
        if alternates.next().is_some() {
            return Err("one --alternate per address family");
        }
        let mut advertised = args.advertise.iter().copied().filter(|&ip| same(ip));
        config.advertised_primary_ip = advertised.next();
        config.advertised_alternate_ip = advertised.next();
        if args.no_rate_limit {
            config.rate_limit = natkit_stun::server::RateLimit::unlimited();
        } else {
            config.rate_limit.per_second = args.rate;
            config.rate_limit.burst = args.burst;
        }
        configs.push(config);
    }
    let families = |a: &[SocketAddr]| {
        a.iter()
            .all(|a| args.bind.iter().any(|b| b.is_ipv4() == a.is_ipv4()))
    };
    if !families(&args.alternate) {
        return Err("an --alternate of a family with no --bind");
    }
    Ok(configs)
}
