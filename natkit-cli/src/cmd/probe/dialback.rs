//! `--dialback`: the outside-in check through natkit's dial-back server.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use natkit_probe::dialback::{
    CheckPort, ClientConfig, DialbackClient, DialbackError, RefusalCode, canonical,
};

use super::{Args, Failure, Request, Sink};
use crate::common;

/// `--dialback HOST:PORT` to the server's address: a literal as is
/// (`[2001:db8::7]:7007` for IPv6), a name through the system resolver,
/// filtered by -4/-6, the first address.
pub(super) async fn dialback_address(args: &Args, text: &str) -> Result<SocketAddr, Failure> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return family_ok(args, addr).then_some(addr).ok_or_else(|| {
            Failure::Usage(format!(
                "--dialback {text}: not of the family -4/-6 asks for"
            ))
        });
    }
    let shape = || {
        Failure::Usage(format!(
            "--dialback {text:?}: give HOST:PORT, e.g. 192.0.2.7:7007, \
             [2001:db8::7]:7007 or dialback.example.net:7007"
        ))
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(shape)?;
    if host.is_empty() || host.contains([':', '[', ']', '/', ' ']) {
        return Err(shape());
    }
    let port: u16 = match port.parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(Failure::Usage(format!(
                "--dialback {text:?}: {port:?} is not a port (1-65535)"
            )));
        }
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::Run(format!("cannot resolve the dial-back server {host:?}: {e}")))?
        .find(|&a| family_ok(args, a))
        .ok_or_else(|| {
            let family = if args.ipv4 { "IPv4" } else { "IPv6" };
            Failure::Run(format!(
                "the dial-back server {host:?} has no {family} address"
            ))
        })
}

pub(super) fn family_ok(args: &Args, addr: SocketAddr) -> bool {
    (!args.ipv4 || addr.is_ipv4()) && (!args.ipv6 || addr.is_ipv6())
}

/// Asks the dial-back server at `server` to check `request`'s ports from
/// outside (the request sent from `source`, when given) and hands the
/// report to `sink`. A `--target` (the addresses in `request`) must name
/// the public address the server saw.
pub(super) async fn run_dialback(
    server: SocketAddr,
    source: Option<IpAddr>,
    request: &Request,
    sink: &mut dyn Sink,
) -> Result<(), Failure> {
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() != server.is_ipv4()) {
        return Err(Failure::Usage(format!(
            "--source {ip}: not of the dial-back server {server}'s family"
        )));
    }
    let ports: Vec<CheckPort> = request
        .pairs
        .iter()
        .map(|&(port, protocol)| CheckPort::new(port, protocol))
        .collect();
    let started = Instant::now();
    let mut config = ClientConfig::new(server);
    config.source_ip = source;
    let report = DialbackClient::new(config)
        .check(&ports)
        .await
        .map_err(|e| Failure::Run(dialback_failure(&e)))?;
    let elapsed = started.elapsed();
    let public = canonical(report.observed.ip());
    if !request.addresses.is_empty() && !request.addresses.iter().any(|&a| canonical(a) == public) {
        return Err(Failure::Usage(format!(
            "--target {}: the dial-back server {server} saw this host as {public} and dials \
             only that address; give --target {public} or leave --target out",
            request.host
        )));
    }
    sink.reachability(request, &report, elapsed);
    Ok(())
}

/// A failed check in one line; a refusal names the server's reason code.
pub(super) fn dialback_failure(e: &DialbackError) -> String {
    match e {
        DialbackError::Connect { server, source } => {
            format!("cannot reach the dial-back server {server}: {source}")
        }
        DialbackError::Refused { server, reason } => {
            let code = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{reason:?}"));
            let hint = match reason {
                RefusalCode::RateLimited | RefusalCode::Busy => "; try again in a few seconds",
                RefusalCode::TooManyPorts => {
                    "; ask for fewer ports (each request also carries one control port per \
                     protocol)"
                }
                RefusalCode::PortNotAllowed => "; it dials only the ports its operator allows",
                RefusalCode::TargetNotAllowed => {
                    "; it saw a private or reserved source address (a lab server needs \
                     --allow-private)"
                }
                _ => "",
            };
            format!("the dial-back server {server} refused the check: {code} ({reason}){hint}")
        }
        other => common::error_line(other),
    }
}
