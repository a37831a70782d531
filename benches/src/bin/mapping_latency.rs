//! Time from start to a usable port mapping, natkit side by side with the
//! reference clients, in the NAT lab (real miniupnpd: UPnP IGD, NAT-PMP, PCP).
//!
//! ```sh
//! cargo build --release -p natkit-benches --bin mapping_latency
//! sudo target/release/mapping_latency --runs 15
//! ```
//!
//! It builds a lab (port-restricted NAT, miniupnpd), re-runs itself inside the
//! LAN namespace (`--inner`) and there, round-robin so that machine load hits
//! every contender alike, times N runs of:
//! - natkit UPnP: default-gateway lookup, SSDP discovery (unicast to the
//!   gateway and multicast, IGD:1/IGD:2), description, GetStatusInfo,
//!   GetExternalIPAddress, AddPortMapping and its read-back — in this process,
//!   and as a fresh process (`--once upnp`);
//! - `upnpc -r PORT tcp` (discovery and mapping, as a process);
//! - natkit NAT-PMP (gateway lookup, public address, map) in-process and as a
//!   fresh process, and `natpmpc -a PORT PORT tcp 3600` (finds the gateway itself);
//! - natkit PCP (gateway lookup, one MAP) in-process and as a fresh process.
//!
//! "Usable" means the router has granted the mapping (the call returned or the
//! process exited successfully). Each mapping is deleted again, untimed, with
//! `upnpc -d` on the IGD's URL, and the router's list must be empty at the end.
//! Processes are started from inside the namespace, so no `ip netns exec`
//! cost is counted for anyone. Prints medians, quartiles and ratios.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use natkit_core::{MappingRequest, PortMapper, Protocol, default_gateway};
use natkit_lab::{Lab, Node};
use natkit_pmp::natpmp::{NatPmpConfig, NatPmpMapper};
use natkit_pmp::pcp::{PcpConfig, PcpMapper};
use natkit_upnp::{DiscoveryConfig, UpnpMapper};

/// The first port used; every run of every contender maps its own port.
const BASE_PORT: u16 = 30_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let result = if let Some(mech) = flag("--once") {
        let port = flag("--port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(BASE_PORT);
        once(&mech, port)
    } else if args.iter().any(|a| a == "--inner") {
        let runs = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(15);
        let url = flag("--url").unwrap_or_default();
        inner(runs, &url)
    } else {
        let runs = flag("--runs").and_then(|r| r.parse().ok()).unwrap_or(15);
        outer(runs)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mapping_latency: {e}");
            ExitCode::FAILURE
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Builds the lab and runs the comparison inside its LAN.
fn outer(runs: usize) -> Result<(), BoxError> {
    natkit_lab::preflight()?;
    let lab = Lab::builder().miniupnpd(true).build()?;
    let url = format!("http://{}:2869/rootDesc.xml", lab.addrs().rtr_lan);
    println!("lab {} up; load average before: {}", lab.id(), loadavg());
    let exe = std::env::current_exe()?;
    let status = lab
        .command(Node::Lan, exe)
        .args(["--inner", "--runs", &runs.to_string(), "--url", &url])
        .status()?;
    println!("load average after: {}", loadavg());
    let left = lab.router_mappings()?;
    lab.down()?;
    if !status.success() {
        return Err(format!("inner run failed: {status}").into());
    }
    if !left.is_empty() {
        return Err(format!("mappings left on the router: {left:?}").into());
    }
    Ok(())
}

fn request(port: u16) -> MappingRequest {
    MappingRequest::new(
        Protocol::Tcp,
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
    )
    .with_lifetime(Duration::from_secs(3600))
    .with_description("latency")
}

/// Maps `port` with `mech` the way an application starting up would, from
/// nothing: gateway lookup, discovery, mapping. Returns the mapper's answer.
async fn map_from_scratch(mech: &str, port: u16) -> Result<String, BoxError> {
    let mut req = request(port);
    let mapper: Box<dyn PortMapper> = match mech {
        "upnp" => {
            let upnp = UpnpMapper::discover(&DiscoveryConfig::default()).await?;
            req.internal = SocketAddr::from((upnp.igd().local_ip(), port));
            Box::new(upnp)
        }
        "natpmp" => {
            let gw = default_gateway()?;
            req.internal = SocketAddr::from((gw.local_address, port));
            Box::new(NatPmpMapper::new(gw.address, NatPmpConfig::default()))
        }
        "pcp" => {
            let gw = default_gateway()?;
            req.internal = SocketAddr::from((gw.local_address, port));
            Box::new(PcpMapper::new(gw.address, PcpConfig::default()))
        }
        other => return Err(format!("unknown mechanism {other}").into()),
    };
    let m = mapper.map(&req).await?;
    Ok(format!("{} {} -> {}", m.mechanism, m.external, m.internal))
}

/// `--once MECH --port P`: one mapping from a fresh process, left in place
/// (the caller deletes it).
fn once(mech: &str, port: u16) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!("{}", rt.block_on(map_from_scratch(mech, port))?);
    Ok(())
}

/// Times a process to its successful exit.
fn time_process(cmd: &mut Command, expect: &str) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let out = cmd.output()?;
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains(expect) {
        return Err(format!(
            "{cmd:?} failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(took)
}

struct Contender {
    name: &'static str,
    samples: Vec<Duration>,
}

fn inner(runs: usize, url: &str) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let exe = std::env::current_exe()?;
    let names = [
        "natkit upnp (in-process)",
        "natkit upnp (fresh process)",
        "upnpc -r PORT tcp",
        "natkit natpmp (in-process)",
        "natkit natpmp (fresh process)",
        "natpmpc -a PORT PORT tcp 3600",
        "natkit pcp (in-process)",
        "natkit pcp (fresh process)",
    ];
    let mut contenders: Vec<Contender> = names
        .iter()
        .map(|&name| Contender {
            name,
            samples: Vec::new(),
        })
        .collect();
    let mut port = BASE_PORT;
    for _run in 0..runs {
        for (i, c) in contenders.iter_mut().enumerate() {
            port += 1;
            let p = port.to_string();
            let took = match i {
                0 | 3 | 6 => {
                    let mech = ["upnp", "natpmp", "pcp"][i / 3];
                    let start = Instant::now();
                    rt.block_on(map_from_scratch(mech, port))?;
                    start.elapsed()
                }
                1 | 4 | 7 => {
                    let mech = ["upnp", "natpmp", "pcp"][i / 3];
                    time_process(
                        Command::new(&exe).args(["--once", mech, "--port", &p]),
                        &format!(":{port}"),
                    )?
                }
                2 => time_process(
                    Command::new("upnpc").args(["-r", &p, "tcp"]),
                    "is redirected to internal",
                )?,
                _ => time_process(
                    Command::new("natpmpc").args(["-a", &p, &p, "tcp", "3600"]),
                    "Mapped public port",
                )?,
            };
            c.samples.push(took);
            // Untimed: delete it again (UPnP deletes NAT-PMP and PCP entries too).
            time_process(Command::new("upnpc").args(["-u", url, "-d", &p, "tcp"]), "")?;
        }
    }
    report(&mut contenders);
    Ok(())
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn report(contenders: &mut [Contender]) {
    println!(
        "{:<32} {:>4} {:>9} {:>9} {:>9} {:>9}",
        "contender", "runs", "p25 ms", "median", "p75 ms", "min ms"
    );
    let mut medians = Vec::new();
    for c in contenders.iter_mut() {
        c.samples.sort();
        let median = quantile(&c.samples, 0.5);
        medians.push(median);
        println!(
            "{:<32} {:>4} {:>9} {:>9} {:>9} {:>9}",
            c.name,
            c.samples.len(),
            ms(quantile(&c.samples, 0.25)),
            ms(median),
            ms(quantile(&c.samples, 0.75)),
            ms(c.samples[0]),
        );
    }
    let ratio = |peer: usize, ours: usize| {
        medians[peer].as_secs_f64() / medians[ours].as_secs_f64().max(1e-9)
    };
    println!("ratios of medians (peer / natkit; > 1: natkit faster):");
    println!(
        "  upnpc / natkit upnp: in-process {:.1}x, fresh process {:.1}x",
        ratio(2, 0),
        ratio(2, 1)
    );
    println!(
        "  natpmpc / natkit natpmp: in-process {:.1}x, fresh process {:.1}x",
        ratio(5, 3),
        ratio(5, 4)
    );
    println!(
        "  natpmpc / natkit pcp: in-process {:.1}x, fresh process {:.1}x",
        ratio(5, 6),
        ratio(5, 7)
    );
}
