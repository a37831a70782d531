//! loopback_listeners: TCP listeners on loopback for the port sweep
//! comparison (`benches/probe_vs_nmap.sh`).
//!
//! ```text
//! loopback_listeners [--random N] [--seed S] [--ip 127.0.0.1] [PORT ...]
//! ```
//!
//! Binds a listener on each PORT given and on N more ports drawn at random
//! from 1024–65535 (a port already taken is skipped and another drawn),
//! prints the bound ports, sorted, comma-separated, on one line, and serves
//! until stdin closes. Every connection is accepted and dropped at once, so
//! the accept queue never fills: a full queue makes the kernel drop SYNs,
//! and a scanner would rightly see the port as filtered.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::ExitCode;

/// SplitMix64: enough to pick ports.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Args {
    ip: IpAddr,
    random: usize,
    seed: u64,
    ports: Vec<u16>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        random: 0,
        seed: 0,
        ports: Vec::new(),
    };
    let mut seeded = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--random" => args.random = value()?.parse().map_err(|e| format!("--random: {e}"))?,
            "--seed" => {
                args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                seeded = true;
            }
            "--ip" => args.ip = value()?.parse().map_err(|e| format!("--ip: {e}"))?,
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ => match a.parse::<u16>() {
                Ok(p) if p != 0 => args.ports.push(p),
                _ => return Err(format!("{a:?} is not a port (1-65535)")),
            },
        }
    }
    if args.random > 1000 {
        return Err("--random: at most 1000".into());
    }
    if !seeded {
        args.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    }
    Ok(args)
}

fn serve(listener: TcpListener) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            // Accept and drop: the scanner's connection closes at once.
            drop(conn);
        }
    });
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut bound = Vec::new();
    for &port in &args.ports {
        match TcpListener::bind(SocketAddr::new(args.ip, port)) {
            Ok(l) => {
                serve(l);
                bound.push(port);
            }
            Err(e) => {
                eprintln!("error: cannot listen on {}:{port}: {e}", args.ip);
                return ExitCode::FAILURE;
            }
        }
    }
    let mut state = args.seed;
    let mut draws = 0;
    let wanted = bound.len() + args.random;
    while bound.len() < wanted {
        draws += 1;
        if draws > 100_000 {
            eprintln!("error: no free ports left to draw");
            return ExitCode::FAILURE;
        }
        let port = 1024 + (next(&mut state) % (65536 - 1024)) as u16;
        if bound.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(SocketAddr::new(args.ip, port)) {
            serve(l);
            bound.push(port);
        }
    }
    bound.sort_unstable();
    let line: Vec<String> = bound.iter().map(u16::to_string).collect();
    let mut out = std::io::stdout();
    if writeln!(out, "{}", line.join(",")).is_err() || out.flush().is_err() {
        return ExitCode::FAILURE;
    }
    // Serve until whoever started us closes our stdin (or ends us).
    let mut sink = [0u8; 64];
    while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
    ExitCode::SUCCESS
}
