//! doctor: why can't the internet reach this machine?
//!
//! This is the first cut of natkit's main job. It reports what natkit-core
//! can already tell on its own: the path from this host to its default
//! gateway, the scope of each address on it, and the ports a service
//! profile needs. The router's mapping protocols, the NAT type and the
//! outside-in port checks join as their crates land (see the issues).

use std::net::IpAddr;
use std::process::ExitCode;

use clap::Parser;
use natkit_core::{AddressScope, Gateway, PortSpec, ServiceProfile, default_gateway};
use serde_json::json;

/// Diagnose why a service on this machine is unreachable from outside.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A service profile: back-to-my-mac, ichat, jabber, file-sharing,
    /// screen-sharing, ssh, web.
    #[arg(long, conflicts_with = "ports")]
    profile: Option<String>,
    /// Ports to check, e.g. `443/tcp,4500/udp,16384-16403/udp,5298`
    /// (no protocol = both).
    #[arg(long)]
    ports: Option<String>,
    #[command(flatten)]
    common: natkit_examples::CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    natkit_examples::init_logging(args.common.verbose);

    let (profile, spec) = match (&args.profile, &args.ports) {
        (Some(name), _) => match ServiceProfile::by_name(name) {
            Ok(p) => (Some(p), Some(p.port_spec())),
            Err(e) => return natkit_examples::fail(&e),
        },
        (None, Some(text)) => match text.parse::<PortSpec>() {
            Ok(spec) => (None, Some(spec)),
            Err(e) => return natkit_examples::fail(&e),
        },
        (None, None) => (None, None),
    };

    let gateway = default_gateway();
    if args.common.json {
        print_json(&gateway, profile, spec.as_ref());
    } else {
        print_human(&gateway, profile, spec.as_ref());
    }
    match gateway {
        Ok(_) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn scope_line(ip: IpAddr) -> String {
    let scope = AddressScope::of(ip);
    format!("{ip} ({})", scope.describe())
}

fn print_human(
    gateway: &Result<Gateway, natkit_core::Error>,
    profile: Option<&ServiceProfile>,
    spec: Option<&PortSpec>,
) {
    match gateway {
        Ok(gw) => {
            println!("Path");
            println!(
                "  this host {}  ──{}──▶  router {}  ──▶  internet",
                gw.local_address, gw.interface, gw.address
            );
            println!();
            println!("Addresses");
            println!(
                "  local address   {}/{} ({})",
                gw.local_address,
                gw.prefix_len,
                AddressScope::of(gw.local_address.into()).describe()
            );
            println!("  default gateway {}", scope_line(gw.address.into()));
            for v6 in &gw.local_v6 {
                println!("  IPv6 address    {}", scope_line((*v6).into()));
            }
            if AddressScope::of(gw.local_address.into()).is_global() {
                println!("\n  This host has a public address: no NAT between it and its gateway.");
            } else {
                println!(
                    "\n  This host has a {}: a NAT between it and the internet must forward \
                     ports for services here to be reachable from outside.",
                    AddressScope::of(gw.local_address.into()).describe()
                );
            }
        }
        Err(e) => {
            println!("No network: {e}");
            println!("  fix: connect to a network (this host has no default route).");
        }
    }
    if let Some(spec) = spec {
        println!();
        match profile {
            Some(p) => println!("Ports needed by {} ({})", p.title, spec),
            None => println!("Ports to check ({spec})"),
        }
        for (port, proto) in spec.pairs() {
            let purpose = profile
                .and_then(|p| p.purpose_of(port, proto))
                .unwrap_or("");
            println!("  {:>5}/{:<3}  {purpose}", port, proto);
        }
    }
    println!();
    println!(
        "Not yet checked by this build: the router's mapping protocols (UPnP, NAT-PMP, PCP), \
         its external address, the NAT type and reachability from outside."
    );
}

fn print_json(
    gateway: &Result<Gateway, natkit_core::Error>,
    profile: Option<&ServiceProfile>,
    spec: Option<&PortSpec>,
) {
    let ports: Vec<_> = spec
        .map(|s| s.pairs())
        .unwrap_or_default()
        .into_iter()
        .map(|(port, protocol)| {
            json!({
                "port": port,
                "protocol": protocol,
                "purpose": profile.and_then(|p| p.purpose_of(port, protocol)),
            })
        })
        .collect();
    let doc = match gateway {
        Ok(gw) => json!({
            "gateway": gw.address,
            "interface": gw.interface,
            "local_address": gw.local_address,
            "local_address_scope": AddressScope::of(gw.local_address.into()),
            "gateway_scope": AddressScope::of(gw.address.into()),
            "ports": ports,
            "findings": [],
        }),
        Err(e) => json!({
            "gateway": null,
            "local_address": null,
            "ports": ports,
            "findings": [{
                "code": "no_network",
                "message": e.to_string(),
                "fix": "connect to a network: this host has no default route",
            }],
        }),
    };
    natkit_examples::print_json(&doc);
}
