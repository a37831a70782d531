//! A fake UPnP IGD on loopback: an SSDP responder and a tiny HTTP server
//! serving a miniupnpd-like description and the WANIPConnection SOAP actions
//! over an in-memory mapping table, with knobs for the misbehaviours natkit
//! must survive.
//!
//! Its SSDP, HTTP and SOAP are written here by hand, not with natkit-upnp's
//! parsers, so the two check each other.
// A test fixture: a failing socket or lock should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use natkit_upnp::DiscoveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

mod announce;
mod firewall;
mod soap;

use crate::loopback_gateway;
use announce::{description, ssdp_responder, type_answers};
pub use firewall::{FakeFirewall, FakePinhole};
use soap::{ok, soap};

/// A row of the fake's mapping table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `NewExternalPort`.
    pub ext_port: u16,
    /// `NewProtocol`: `TCP` or `UDP`.
    pub proto: String,
    /// `NewInternalClient`.
    pub client: String,
    /// `NewInternalPort`.
    pub int_port: u16,
    /// `NewPortMappingDescription`.
    pub desc: String,
    /// `NewLeaseDuration` as granted (0: permanent).
    pub lease: u32,
}

impl Row {
    /// A permanent entry forwarding `ext_port` to the same port on `client`.
    pub fn new(ext_port: u16, proto: &str, client: &str, desc: &str) -> Row {
        Row {
            ext_port,
            proto: proto.into(),
            client: client.into(),
            int_port: ext_port,
            desc: desc.into(),
            lease: 0,
        }
    }
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// IGD:2 (WANIPConnection:2) or IGD:1.
    pub igd2: bool,
    /// `NewConnectionStatus`.
    pub status: String,
    /// The external address reported.
    pub external_ip: Ipv4Addr,
    /// Answer 725 to any non-zero lease.
    pub only_permanent: bool,
    /// Answer 402 to leases above this.
    pub max_lease: Option<u32>,
    /// LOCATION override (default: this fake's description URL).
    pub location: Option<String>,
    /// Pad the description to this many bytes.
    pub description_size: Option<usize>,
    /// Send the description without Content-Length (read until close).
    pub no_content_length: bool,
    /// Send the description one byte per this interval.
    pub trickle: Option<Duration>,
    /// Pad SOAP answers to this many bytes.
    pub soap_size: Option<usize>,
    /// Do not answer SSDP at all.
    pub silent: bool,
    /// Further LOCATIONs announced after this fake's own.
    pub extra_locations: Vec<String>,
    /// Send the description with chunked transfer encoding (64 KiB chunks).
    pub chunked: bool,
    /// Serve this text as the description instead of the generated one.
    pub description_body: Option<String>,
    /// Answer every SOAP action with this body (HTTP 500 when it holds a Fault).
    pub soap_body: Option<String>,
    /// Send SOAP answers one byte per this interval.
    pub trickle_soap: Option<Duration>,
    /// Reset the connection (RST) instead of answering a SOAP request.
    pub reset_control: bool,
    /// Answer 718 to AddPortMapping for a port already mapped to the same
    /// client too (instead of overwriting the entry, as miniupnpd does):
    /// some routers do.
    pub conflict_on_readd: bool,
    /// The WAN connection services, each in a WANConnectionDevice of its
    /// own; empty: one WANIPConnection (`:2` or `:1` after `igd2`) at
    /// `/ctl/IPConn` with `status` and `external_ip`.
    pub wan: Vec<FakeWan>,
    /// A `<URLBase>`, `{http}` replaced by the fake's address.
    pub url_base: Option<String>,
    /// A description with no XML declaration and no namespace.
    pub bare_xml: bool,
    /// Answer any AddPortMapping with a lease other than 0 with success
    /// and drop the entry at once (a router that silently expires them).
    pub expire_nonzero_leases: bool,
    /// Answer SSDP from this address instead of the one searched (a
    /// failover pair's standby answering for the virtual gateway).
    pub ssdp_reply_from: Option<Ipv4Addr>,
    /// Offer `WANIPv6FirewallControl:1` beside the first WAN service, its
    /// HTTP served on `[::1]` too, on the same port as on 127.0.0.1.
    pub firewall: Option<FakeFirewall>,
}

/// One WAN connection service of the fake.
#[derive(Debug, Clone)]
pub struct FakeWan {
    /// Its service type, e.g. `urn:dslforum-org:service:WANPPPConnection:1`.
    pub service_type: String,
    /// Its control path.
    pub path: String,
    /// Serve it on a second port and write its control URL absolute.
    pub second_port: bool,
    /// `NewConnectionStatus`.
    pub status: String,
    /// `NewExternalIPAddress`.
    pub external_ip: Ipv4Addr,
}

impl FakeWan {
    /// A connected service of type `service_type` at control path `path`.
    pub fn new(service_type: &str, path: &str) -> FakeWan {
        FakeWan {
            service_type: service_type.into(),
            path: path.into(),
            second_port: false,
            status: "Connected".into(),
            external_ip: Ipv4Addr::new(203, 0, 113, 7),
        }
    }
}

/// What the fake does with one connection once a script is armed
/// ([`FakeIgd::arm`]); connections are taken in the order they arrive.
/// Every scripted connection is then kept open until the client closes it,
/// which is recorded ([`Conn::closed_by_client`]).
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer as usual.
    Answer,
    /// Read the request and never answer (the request or the answer lost).
    Silent,
    /// Carry the action out and never answer (the answer lost).
    ProcessSilently,
    /// Carry the action out at once, answer after this long.
    AnswerAfter(Duration),
    /// Once this many scripted connections have arrived, answer
    /// GetExternalIPAddress with this address.
    ExternalIpWhenConns(usize, Ipv4Addr),
}

/// One scripted connection, as the fake saw it.
#[derive(Debug, Clone)]
pub struct Conn {
    /// `GET` or the SOAP action.
    pub action: String,
    /// When its request was complete.
    pub at: Instant,
    /// Whether the fake wrote an answer.
    pub answered: bool,
    /// Whether the client closed the connection (EOF or reset seen).
    pub closed_by_client: bool,
    /// Whether that close was a reset (RST), not a FIN.
    pub reset_by_client: bool,
}

impl Behaviour {
    /// A router that answers 725 to any lease but 0.
    pub fn permanent_only() -> Behaviour {
        Behaviour {
            only_permanent: true,
            ..Behaviour::default()
        }
    }

    /// A LAN with no IGD: SSDP searches are counted and never answered.
    pub fn no_igd() -> Behaviour {
        Behaviour {
            silent: true,
            ..Behaviour::default()
        }
    }

    /// The WAN connection services, the default one filled in.
    pub fn wan_services(&self) -> Vec<FakeWan> {
        if !self.wan.is_empty() {
            return self.wan.clone();
        }
        let v = if self.igd2 { 2 } else { 1 };
        vec![FakeWan {
            status: self.status.clone(),
            external_ip: self.external_ip,
            ..FakeWan::new(
                &format!("urn:schemas-upnp-org:service:WANIPConnection:{v}"),
                "/ctl/IPConn",
            )
        }]
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            igd2: true,
            status: "Connected".into(),
            external_ip: Ipv4Addr::new(203, 0, 113, 7),
            only_permanent: false,
            max_lease: None,
            location: None,
            description_size: None,
            no_content_length: false,
            trickle: None,
            soap_size: None,
            silent: false,
            extra_locations: vec![],
            chunked: false,
            description_body: None,
            soap_body: None,
            trickle_soap: None,
            reset_control: false,
            conflict_on_readd: false,
            wan: vec![],
            url_base: None,
            bare_xml: false,
            expire_nonzero_leases: false,
            ssdp_reply_from: None,
            firewall: None,
        }
    }
}

/// Shared state: the table, the AddPortMapping leases asked, and every
/// request seen (`GET` or the SOAP action).
#[derive(Debug, Default)]
pub struct State {
    /// The mapping table.
    pub table: Vec<Row>,
    /// The lease each AddPortMapping asked for, in order.
    pub add_leases: Vec<u32>,
    /// Every request: `GET` or the SOAP action.
    pub actions: Vec<String>,
    /// The armed script, if any.
    pub script: Option<VecDeque<Step>>,
    /// The scripted connections, since the fake started.
    pub conns: Vec<Conn>,
    /// Where the latest script's connections start in `conns`.
    pub armed_at: usize,
    /// Every SOAP action with the control path it came to.
    pub calls: Vec<(String, String)>,
    /// Every M-SEARCH received: when, and its ST.
    pub searches: Vec<(Instant, String)>,
    /// Entries that are listed but no longer forward (until added again).
    pub not_forwarding: Vec<(u16, String)>,
    /// The IPv6 firewall's pinholes.
    pub pinholes: Vec<FakePinhole>,
    /// The next pinhole's ID (0 counts as 1).
    pub next_uid: u16,
}

/// The running fake; dropping it stops it.
pub struct FakeIgd {
    /// Where it answers M-SEARCH (unicast, 127.0.0.1).
    pub ssdp: SocketAddr,
    /// Its HTTP server: the description and the control URLs.
    pub http: SocketAddr,
    /// The second HTTP port, for control URLs on another port.
    pub http2: SocketAddr,
    /// `[::1]` on `http`'s port, when the fake has a firewall.
    pub http6: Option<SocketAddr>,
    /// What it has seen and holds.
    pub state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeIgd {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The behaviour and the addresses it is served at.
#[derive(Debug)]
struct Served {
    b: Behaviour,
    http: SocketAddr,
    http2: SocketAddr,
}

impl FakeIgd {
    /// Starts the fake on loopback, on ports the system picks.
    pub async fn start(b: Behaviour) -> FakeIgd {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (tcp, tcp6) = listeners(b.firewall.is_some()).await;
        let tcp2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ssdp = udp.local_addr().unwrap();
        let http = tcp.local_addr().unwrap();
        let http2 = tcp2.local_addr().unwrap();
        let http6 = tcp6.as_ref().map(|l| l.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let location = b
            .location
            .clone()
            .unwrap_or_else(|| format!("http://{http}/rootDesc.xml"));
        let b = Arc::new(Served { b, http, http2 });
        let reply_from = match b.b.ssdp_reply_from {
            Some(ip) => Some(UdpSocket::bind((ip, 0)).await.unwrap()),
            None => None,
        };
        let ssdp_task = tokio::spawn(ssdp_responder(
            udp,
            reply_from,
            location,
            b.clone(),
            state.clone(),
        ));
        let mut tasks = vec![ssdp_task];
        for listener in [Some(tcp), Some(tcp2), tcp6].into_iter().flatten() {
            let st = state.clone();
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((conn, peer)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(serve(conn, peer, b.clone(), st.clone()));
                }
            }));
        }
        FakeIgd {
            ssdp,
            http,
            http2,
            http6,
            state,
            tasks,
        }
    }

    /// The IPv6 firewall's pinholes.
    pub fn pinholes(&self) -> Vec<FakePinhole> {
        self.state.lock().unwrap().pinholes.clone()
    }

    /// Forgets every pinhole and starts IDs at 1 again, as a restarted
    /// miniupnpd does.
    pub fn restart_firewall(&self) {
        let mut st = self.state.lock().unwrap();
        st.pinholes.clear();
        st.next_uid = 1;
    }

    /// Counts `n` packets through pinhole `uid`.
    pub fn count_packets(&self, uid: u16, n: u32) {
        let mut st = self.state.lock().unwrap();
        for p in st.pinholes.iter_mut().filter(|p| p.uid == uid) {
            p.packets += n;
        }
    }

    /// The M-SEARCH datagrams received so far: when, and their ST.
    pub fn searches(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().searches.clone()
    }

    /// Every SOAP action so far, with the control path it came to.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Empties the mapping table, as routers that purge it periodically do.
    pub fn purge(&self) {
        self.state.lock().unwrap().table.clear();
    }

    /// Every entry stays listed but stops forwarding until it is added
    /// again (a router that lost its forwarding rules, not its table).
    pub fn break_forwarding(&self) {
        let mut st = self.state.lock().unwrap();
        st.not_forwarding = st
            .table
            .iter()
            .map(|r| (r.ext_port, r.proto.clone()))
            .collect();
    }

    /// Whether the entry for `port`/`proto` is listed and forwards.
    pub fn forwards(&self, port: u16, proto: &str) -> bool {
        let st = self.state.lock().unwrap();
        st.table
            .iter()
            .any(|r| r.ext_port == port && r.proto == proto)
            && !st
                .not_forwarding
                .iter()
                .any(|(p, q)| *p == port && q == proto)
    }

    /// A discovery config aimed at this fake only.
    pub fn config(&self) -> DiscoveryConfig {
        DiscoveryConfig {
            gateway: Some(loopback_gateway()),
            ssdp_port: self.ssdp.port(),
            multicast: false,
            allow_loopback: true,
            ..DiscoveryConfig::default()
        }
    }

    /// The mapping table now.
    pub fn table(&self) -> Vec<Row> {
        self.state.lock().unwrap().table.clone()
    }

    /// Adds an entry behind natkit's back (another host's, or a stale one).
    pub fn insert(&self, row: Row) {
        self.state.lock().unwrap().table.push(row);
    }

    /// The lease each AddPortMapping asked for so far, in order.
    pub fn add_leases(&self) -> Vec<u32> {
        self.state.lock().unwrap().add_leases.clone()
    }

    /// From now on, the next connections follow `steps` in order (then
    /// [`Step::Answer`]); [`FakeIgd::conns`] starts afresh.
    pub fn arm(&self, steps: Vec<Step>) {
        let mut st = self.state.lock().unwrap();
        st.script = Some(steps.into());
        st.armed_at = st.conns.len();
    }

    /// The connections of the latest script so far.
    pub fn conns(&self) -> Vec<Conn> {
        let st = self.state.lock().unwrap();
        st.conns[st.armed_at..].to_vec()
    }

    /// Waits (up to 5 s) until the client has closed every scripted
    /// connection; returns them.
    pub async fn all_closed(&self) -> Vec<Conn> {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let conns = self.conns();
            if conns.iter().all(|c| c.closed_by_client) || Instant::now() > end {
                return conns;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Follows `step` on connection `index`, then waits for the client to
/// close it (at most 10 s) and records that.
async fn scripted(
    mut conn: TcpStream,
    step: Step,
    index: usize,
    reply: impl FnOnce() -> (&'static str, String),
    state: Arc<Mutex<State>>,
) {
    let write = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let answer = match step {
        Step::Answer => {
            let (status, body) = reply();
            Some(write(status, &body))
        }
        Step::Silent => None,
        Step::ProcessSilently => {
            reply();
            None
        }
        Step::AnswerAfter(d) => {
            let (status, body) = reply();
            tokio::time::sleep(d).await;
            Some(write(status, &body))
        }
        Step::ExternalIpWhenConns(n, ip) => {
            while {
                let st = state.lock().unwrap();
                st.conns.len() - st.armed_at < n
            } {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let (status, body) = ok(
                "urn:schemas-upnp-org:service:WANIPConnection:2",
                "GetExternalIPAddress",
                &[("NewExternalIPAddress", ip.to_string())],
            );
            Some(write(status, &body))
        }
    };
    // A reset shows as the write's error if it came first, else the read's.
    let is_reset = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    };
    let mut reset = false;
    if let Some(a) = answer {
        match conn.write_all(a.as_bytes()).await {
            Ok(()) => state.lock().unwrap().conns[index].answered = true,
            Err(e) => reset = is_reset(&e),
        }
        // Half-close, like a server done with the exchange, but keep
        // reading so the client's own close is seen.
        let _ = conn.shutdown().await;
    }
    let mut chunk = [0u8; 1024];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match conn.read(&mut chunk).await {
                Ok(0) => return false,
                Err(e) => return is_reset(&e),
                Ok(_) => {}
            }
        }
    })
    .await;
    let mut st = state.lock().unwrap();
    st.conns[index].closed_by_client = ended.is_ok();
    st.conns[index].reset_by_client = reset || ended == Ok(true);
}

/// The HTTP listener on 127.0.0.1, and with `v6` one on `[::1]` on the
/// same port (the firewall's control URL names the IPv4 port, which natkit
/// uses over IPv6 as for miniupnpd's dual-stack socket).
async fn listeners(v6: bool) -> (TcpListener, Option<TcpListener>) {
    if !v6 {
        return (TcpListener::bind("127.0.0.1:0").await.unwrap(), None);
    }
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(tcp6) = TcpListener::bind(("::1", port)).await {
            return (tcp, Some(tcp6));
        }
    }
    panic!("no port free on both 127.0.0.1 and [::1]")
}

async fn serve(mut conn: TcpStream, peer: SocketAddr, sv: Arc<Served>, state: Arc<Mutex<State>>) {
    let b = &sv.b;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let is_get = head.starts_with("GET ");
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let service_type = header("soapaction")
        .and_then(|a| a.trim_matches('"').split('#').next().map(str::to_owned))
        .unwrap_or_default();
    let action = if is_get {
        "GET".to_owned()
    } else {
        header("soapaction")
            .and_then(|a| a.trim_matches('"').split('#').nth(1).map(str::to_owned))
            .unwrap_or_default()
    };
    let step = {
        let mut st = state.lock().unwrap();
        st.script
            .as_mut()
            .map(|s| s.pop_front().unwrap_or(Step::Answer))
    };
    if let Some(step) = step {
        let index = {
            let mut st = state.lock().unwrap();
            st.conns.push(Conn {
                action: action.clone(),
                at: Instant::now(),
                answered: false,
                closed_by_client: false,
                reset_by_client: false,
            });
            st.conns.len() - 1
        };
        let st = state.clone();
        let reply = move || {
            if is_get {
                st.lock().unwrap().actions.push(action);
                ("200 OK", description(&sv))
            } else {
                soap(&sv.b, &st, peer, &path, &service_type, &action, &body)
            }
        };
        scripted(conn, step, index, reply, state).await;
        return;
    }
    if is_get {
        state.lock().unwrap().actions.push("GET".into());
        let d = description(&sv);
        if b.chunked {
            let h =
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
            if conn.write_all(h.as_bytes()).await.is_err() {
                return;
            }
            for chunk in d.as_bytes().chunks(64 * 1024) {
                let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
                c.extend_from_slice(chunk);
                c.extend_from_slice(b"\r\n");
                if conn.write_all(&c).await.is_err() {
                    return;
                }
            }
            let _ = conn.write_all(b"0\r\n\r\n").await;
            return;
        }
        if let Some(every) = b.trickle {
            let h = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                d.len()
            );
            let _ = conn.write_all(h.as_bytes()).await;
            for byte in d.as_bytes() {
                if conn.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
            return;
        }
        let h = if b.no_content_length {
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n".to_owned()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
                d.len()
            )
        };
        let _ = conn.write_all(h.as_bytes()).await;
        let _ = conn.write_all(d.as_bytes()).await;
        return;
    }
    if b.reset_control {
        state.lock().unwrap().actions.push(action);
        // SO_LINGER 0: closing sends RST instead of FIN.
        let _ = conn.set_zero_linger();
        drop(conn);
        return;
    }
    let (status, mut reply) = match &b.soap_body {
        Some(body) => {
            state.lock().unwrap().actions.push(action);
            let status = if body.contains("Fault") {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            (status, body.clone())
        }
        None => soap(b, &state, peer, &path, &service_type, &action, &body),
    };
    if let Some(size) = b.soap_size {
        reply.push_str(&format!("<!--{}-->", "x".repeat(size)));
    }
    let h = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.len()
    );
    let _ = conn.write_all(h.as_bytes()).await;
    if let Some(every) = b.trickle_soap {
        for byte in reply.as_bytes() {
            if conn.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
        return;
    }
    let _ = conn.write_all(reply.as_bytes()).await;
}
