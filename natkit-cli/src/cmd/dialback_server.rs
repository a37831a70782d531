//! `natkit dialback-server`: natkit's dial-back server, the outside half of "can
//! the internet reach port X on my machine?". A client behind a NAT asks
//! it to connect back (TCP) or send back (UDP) to the client's public
//! address on a list of ports; it dials, sends the request's nonce and
//! reports what it saw per port.
//!
//! ```text
//! natkit dialback-server --bind 88.77.66.30:7007
//! natkit dialback-server --bind [::]:7007      # IPv4 and IPv6 clients
//! ```
//!
//! It dials only the address a request comes from, and only global
//! addresses unless `--allow-private` (labs) or `--allow PREFIX`; for IPv6
//! that excludes unique local, link-local, documentation and the IPv6
//! spellings of non-global IPv4 (mapped, NAT64, 6to4). Ctrl-C
//! (or SIGTERM) stops it and prints its counters.
//!
//! `--sip-echo` adds the SIP echo of the doctor's SIP ALG check: UDP and TCP
//! on 5060, UDP on the control port's number (see `natkit_probe::sip`).
//! `--outbound-ports` adds the echo of the doctor's outbound check on a port
//! set (see `natkit_probe::outbound`). `--bandwidth` adds the bandwidth
//! check's server on the control port + 1 (see `natkit_probe::bandwidth`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use natkit_core::PortSpec;
use natkit_probe::RateLimit;
use natkit_probe::bandwidth::{BandwidthServer, BandwidthServerConfig};
use natkit_probe::dialback::{DialbackServer, DialbackServerConfig, IpPrefix, MAX_PORTS};
use natkit_probe::outbound::{OutboundEcho, OutboundEchoConfig};
use natkit_probe::sip::{SIP_PORT, SipEcho, SipEchoConfig};

use crate::common::{self, Output};

/// Run a dial-back server (outside-in reachability checks).
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The TCP address for control connections. `[::]:7007` serves IPv4
    /// and IPv6 clients alike; a specific address its own family only.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:7007")]
    bind: SocketAddr,
    /// Dial private, shared (CGNAT), loopback and other non-global
    /// addresses too. For labs only: on the internet this would let anyone
    /// on the server's own network use it against that network.
    #[arg(long)]
    allow_private: bool,
    /// A non-global prefix to dial anyway (repeatable), e.g. 100.64.0.0/10.
    #[arg(long, value_name = "PREFIX")]
    allow: Vec<IpPrefix>,
    /// Dial only these ports, e.g. `443/tcp,4500/udp,1024-65535`.
    #[arg(long, value_name = "SPEC")]
    ports: Option<PortSpec>,
    /// Ports dialled for one request.
    #[arg(long, default_value_t = MAX_PORTS)]
    max_ports: usize,
    /// Requests per second allowed from one source address (IPv6: per /64).
    #[arg(long, default_value_t = 1)]
    rate: u32,
    /// Requests one source may make back to back.
    #[arg(long, default_value_t = 4)]
    burst: u32,
    /// Requests dialled at once, from everyone.
    #[arg(long, default_value_t = 32)]
    max_in_flight: usize,
    /// Control connections open at once.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Milliseconds for a TCP dial to connect.
    #[arg(long, default_value_t = 3000)]
    connect_timeout_ms: u64,
    /// Also echo SIP OPTIONS requests for the doctor's SIP ALG check: UDP and
    /// TCP on PORT (5060 if not given: the port ALGs act on), UDP on the
    /// control port's number. Echoes never exceed what was received, 10/s per
    /// source (burst 30), 200/s in all; UDP echoes go only to the addresses
    /// this server would dial.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "5060")]
    sip_echo: Option<u16>,
    /// Also answer the doctor's outbound check on these ports, e.g.
    /// `443/tcp,4500/udp,5353/udp,5354/tcp` (at most 64): a 16-byte request
    /// gets a 16-byte reply, 20/s per source (burst 40), 400/s in all; UDP
    /// replies go only to the addresses this server would dial.
    #[arg(long, value_name = "SPEC")]
    outbound_ports: Option<PortSpec>,
    /// Also serve the doctor's bandwidth check over TCP on the control port's
    /// number + 1: per request at most 256 KiB and 1.5 s each way, 1 request/s
    /// per source (burst 4), 20/s in all, 16 at once.
    #[arg(long)]
    bandwidth: bool,
}

pub(crate) async fn run(args: Args, out: Output) -> ExitCode {
    if args.max_ports == 0 || args.max_ports > MAX_PORTS {
        return common::fail_msg(format!("--max-ports must be 1..={MAX_PORTS}"));
    }
    if args.rate == 0 || args.burst == 0 {
        return common::fail_msg("--rate and --burst must be at least 1");
    }
    let mut config = DialbackServerConfig::new(args.bind);
    config.limits.targets = config_targets(&args);
    config.limits.ports.only = args.ports.clone();
    config.limits.max_ports = args.max_ports;
    config.limits.per_source = RateLimit {
        per_second: args.rate,
        burst: args.burst,
    };
    config.limits.max_in_flight = args.max_in_flight;
    config.max_connections = args.max_connections;
    config.timeouts.connect = Duration::from_millis(args.connect_timeout_ms);
    let server = match DialbackServer::bind(config).await {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    let addr = server.local_addr();
    let echo = match args.sip_echo {
        Some(port) => {
            let mut c = SipEchoConfig::new(addr.ip(), Some(addr));
            c.sip.set_port(port);
            c.targets = config_targets(&args);
            match SipEcho::bind(c).await {
                Ok(e) => Some(e),
                Err(e) => return common::fail(&e),
            }
        }
        None => None,
    };
    let outbound = match &args.outbound_ports {
        Some(spec) => {
            let mut c = OutboundEchoConfig::new(addr.ip(), spec.pairs());
            c.targets = config_targets(&args);
            match OutboundEcho::bind(c).await {
                Ok(e) => Some(e),
                Err(e) => return common::fail(&e),
            }
        }
        None => None,
    };
    let bandwidth = match bandwidth_server(&args, addr).await {
        Ok(b) => b,
        Err(e) => return common::fail(&e),
    };
    // Caught before READY=1: a stop right after the start is a clean one.
    let shutdown = match common::Shutdown::listen() {
        Ok(s) => s,
        Err(e) => return common::fail(&e),
    };
    crate::notify::ready(&format!("listening on {addr}/tcp"));
    let targets = if args.allow_private {
        "any unicast address (--allow-private: lab only)".to_owned()
    } else if args.allow.is_empty() {
        "global addresses only".to_owned()
    } else {
        let list: Vec<String> = args.allow.iter().map(ToString::to_string).collect();
        format!("global addresses and {}", list.join(", "))
    };
    if out.json {
        common::print_json(&serde_json::json!({
            "listening": addr,
            "allow_private": args.allow_private,
            "allow": args.allow.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "max_ports": args.max_ports,
            "rate": args.rate,
            "burst": args.burst,
            "sip_echo": echo.as_ref().map(SipEcho::sip_addr),
            "outbound_ports": args.outbound_ports.as_ref().map(ToString::to_string),
        }));
    } else {
        outln!("listening on {addr}/tcp");
        outln!("dials      {targets}");
        outln!(
            "limits     {} ports/request, {}/s per source (burst {}), {} requests at once",
            args.max_ports,
            args.rate,
            args.burst,
            args.max_in_flight
        );
    }
    if let Some(e) = echo.as_ref().filter(|_| !out.json) {
        let sip = e.sip_addr();
        let note = if sip.port() == SIP_PORT {
            ""
        } else {
            " (not 5060: ALGs will not see it)"
        };
        outln!("sip echo   {sip}/udp+tcp{note}, control {addr}/udp");
    }
    if let Some(spec) = args.outbound_ports.as_ref().filter(|_| !out.json) {
        outln!("outbound   {spec} on {}", addr.ip());
    }
    if let Some(b) = bandwidth.as_ref().filter(|_| !out.json) {
        outln!("bandwidth  {}/tcp", b.local_addr().unwrap_or(addr));
    }
    let stop = server.stop_handle();
    let stop_echo = echo.as_ref().map(SipEcho::stop_handle);
    let stop_outbound = outbound.as_ref().map(OutboundEcho::stop_handle);
    let stop_bandwidth = bandwidth.as_ref().map(BandwidthServer::stop_handle);
    crate::notify::stop_on_signal(shutdown, move || {
        stop.stop();
        for s in stop_echo
            .iter()
            .chain(&stop_outbound)
            .chain(&stop_bandwidth)
        {
            s.stop();
        }
    });
    let outbound_run = outbound.map(|e| tokio::spawn(e.run()));
    let bandwidth_run = bandwidth.map(|b| tokio::spawn(b.run()));
    let echo_run = echo.map(|e| tokio::spawn(e.run()));
    let result = server.run().await;
    if let Some(run) = echo_run
        && let Ok(c) = run.await
    {
        if out.json {
            common::print_json(&serde_json::json!({ "sip_echo_stopped": c }));
        } else {
            outln!(
                "sip echo stopped: {} echoed ({} bytes in, {} out), {} not echoed, {} rate \
                 limited, {} refused sources",
                c.echoed,
                c.bytes_in,
                c.bytes_out,
                c.not_echoed,
                c.rate_limited,
                c.refused_source
            );
        }
    }
    if let Some(run) = outbound_run
        && let Ok(c) = run.await
    {
        if out.json {
            common::print_json(&serde_json::json!({ "outbound_stopped": c }));
        } else {
            outln!(
                "outbound stopped: {} answered ({} bytes in, {} out), {} not answered, {} rate \
                 limited, {} refused sources",
                c.answered,
                c.bytes_in,
                c.bytes_out,
                c.not_answered,
                c.rate_limited,
                c.refused_source
            );
        }
    }
    if let Some(run) = bandwidth_run
        && let Ok(c) = run.await
    {
        if out.json {
            common::print_json(&serde_json::json!({ "bandwidth_stopped": c }));
        } else {
            outln!(
                "bandwidth stopped: {} served ({} bytes in, {} out), {} bad requests, {} rate \
                 limited",
                c.served,
                c.bytes_in,
                c.bytes_out,
                c.bad_request,
                c.rate_limited
            );
        }
    }
    match result {
        Ok(c) => {
            if out.json {
                common::print_json(&serde_json::json!({ "stopped": c }));
            } else {
                outln!(
                    "stopped: {} connections, {} served, {} dials, refused: {} rate limited, \
                     {} busy, {} too many ports, {} port not allowed, {} target not allowed, \
                     {} bad request; {} closed unanswered",
                    c.connections,
                    c.served,
                    c.dials,
                    c.refused_rate_limited,
                    c.refused_busy,
                    c.refused_too_many_ports,
                    c.refused_port_not_allowed,
                    c.refused_target_not_allowed,
                    c.refused_bad_request,
                    c.closed_unanswered
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => common::fail(&e),
    }
}

fn config_targets(args: &Args) -> natkit_probe::dialback::TargetPolicy {
    natkit_probe::dialback::TargetPolicy {
        allow_non_global: args.allow_private,
        allow: args.allow.clone(),
    }
}

/// The bandwidth server on the control port's number + 1, with `--bandwidth`.
async fn bandwidth_server(
    args: &Args,
    control: SocketAddr,
) -> Result<Option<BandwidthServer>, natkit_probe::dialback::DialbackError> {
    if !args.bandwidth {
        return Ok(None);
    }
    let port = control.port().checked_add(1).unwrap_or(control.port());
    let bind = SocketAddr::new(control.ip(), port);
    BandwidthServer::bind(BandwidthServerConfig::new(bind))
        .await
        .map(Some)
}
