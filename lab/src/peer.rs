//! Traffic through a mapping: echo servers for a test helper inside a node, and
//! the outside peer's side of a TCP or UDP exchange (with `nc`, run in any node).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::thread;
use std::time::Duration;

use crate::error::LabError;
use crate::lab::Lab;
use crate::spec::{Node, Proto};

/// The echo server answers this prefix followed by what it received, so an
/// answer cannot be mistaken for the request bouncing back elsewhere.
pub const ECHO_PREFIX: &str = "echo:";

/// Echo servers started by [`spawn_echo`]: they run on threads until the process
/// exits (they are for test helper processes, which end with the test).
#[derive(Debug)]
pub struct EchoServers {
    /// The bound TCP port.
    pub tcp_port: u16,
    /// The bound UDP port.
    pub udp_port: u16,
}

/// Binds a TCP and a UDP echo server on `0.0.0.0` (port 0: any free port) and
/// serves them on background threads. Each answer is [`ECHO_PREFIX`] + the
/// request; a TCP request ends when the client shuts down its sending side.
/// Every exchange is printed to stdout as `ECHOED <tcp|udp> <from> <bytes>`, so
/// the outer test can see who reached the helper.
pub fn spawn_echo(tcp_port: u16, udp_port: u16) -> Result<EchoServers, LabError> {
    let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, tcp_port))
        .map_err(|e| LabError::io(format!("binding TCP echo port {tcp_port}"), e))?;
    let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, udp_port))
        .map_err(|e| LabError::io(format!("binding UDP echo port {udp_port}"), e))?;
    let servers = EchoServers {
        tcp_port: local_port(tcp.local_addr())?,
        udp_port: local_port(udp.local_addr())?,
    };
    thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let from = stream.peer_addr().ok();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while request.len() < 64 * 1024 {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                let mut answer = ECHO_PREFIX.as_bytes().to_vec();
                answer.extend_from_slice(&request);
                let _ = stream.write_all(&answer);
                report(Proto::Tcp, from, &request);
            });
        }
    });
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf) else {
                continue;
            };
            let mut answer = ECHO_PREFIX.as_bytes().to_vec();
            answer.extend_from_slice(&buf[..n]);
            let _ = udp.send_to(&answer, from);
            report(Proto::Udp, Some(from), &buf[..n]);
        }
    });
    Ok(servers)
}

fn local_port(addr: std::io::Result<SocketAddr>) -> Result<u16, LabError> {
    addr.map(|a| a.port())
        .map_err(|e| LabError::io("reading an echo socket's port", e))
}

fn report(proto: Proto, from: Option<SocketAddr>, request: &[u8]) {
    let from = from.map_or_else(|| "?".to_owned(), |a| a.to_string());
    println!(
        "ECHOED {proto} {from} {}",
        String::from_utf8_lossy(request).trim()
    );
    let _ = std::io::stdout().flush();
}

impl Lab {
    /// From `node`, sends `payload` to `to` over `proto` with `nc` and returns what
    /// came back (empty when nothing did). TCP: connect, send, shut down the sending
    /// side, read until the server closes (at most 3 s of silence). UDP: one datagram,
    /// then whatever arrives within 1 s. A refused or unanswered exchange is not an
    /// error: the answer is just empty.
    pub fn exchange(
        &self,
        node: Node,
        proto: Proto,
        to: SocketAddr,
        payload: &str,
    ) -> Result<String, LabError> {
        let flags = match proto {
            Proto::Tcp => "-N -w 3",
            Proto::Udp => "-u -w 1",
        };
        // The payload and address are positional parameters, never parsed by sh.
        let script = format!("printf '%s' \"$1\" | nc -n {flags} \"$2\" \"$3\"");
        let ip = to.ip().to_string();
        let port = to.port().to_string();
        let out = self.exec_timeout(
            node,
            &["sh", "-c", script.as_str(), "sh", payload, &ip, &port],
            Duration::from_secs(15),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether a TCP connection from `node` to `to` is accepted within 2 s (`nc
    /// -z`): a listener behind an open pinhole or forward says yes; refused,
    /// dropped or unrouted says no.
    pub fn tcp_connects(&self, node: Node, to: SocketAddr) -> Result<bool, LabError> {
        let (ip, port) = (to.ip().to_string(), to.port().to_string());
        let out = self.exec(node, &["nc", "-n", "-z", "-w", "2", &ip, &port])?;
        Ok(out.status.success())
    }
}
