//! stun_load: a STUN Binding load generator over UDP.
//!
//! It sends RFC 8489 Binding requests (with FINGERPRINT, built with natkit-stun's codec) to
//! one server from `--sockets` source sockets, either as fast as the server answers
//! (closed loop: at most `--window` requests outstanding per socket) or at a fixed
//! `--rate`, optionally mixing in a fraction of malformed packets (`--malformed 0.1`).
//! Every response is validated: it must parse, be a Binding success response, carry the
//! transaction id of a request still outstanding on the socket it arrived on, pass its
//! FINGERPRINT when it has one, and its XOR-MAPPED-ADDRESS (MAPPED-ADDRESS for servers
//! that only send that) must be the socket's own address. It reports answered requests
//! per second, loss, latency percentiles and the kernel's UDP drop counters.
//!
//! ```text
//! cargo run --release -p natkit-benches --bin stun_load -- \
//!     --target 127.0.0.1:3478 --sockets 8 --window 16 --duration 10 --malformed 0.1
//! ```
//!
//! Sockets are connected to the target and use `sendmmsg`/`recvmmsg` in batches, so one
//! core of generator can keep a fast server busy. With `--check` it exits non-zero when a
//! valid request went unanswered, a response was invalid, or a malformed packet got an
//! answer. With a bounded window the server's receive queue never holds more than
//! `sockets × window` valid requests (plus the malformed ones sent alongside), so a soak
//! can run at full rate without the kernel dropping anything.

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use natkit_stun::attr::AttrType;
use natkit_stun::{Class, Message, MessageBuilder, MessageType, Method, TransactionId};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per `sendmmsg`/`recvmmsg` call.
const BATCH: usize = 32;
/// Room for one request (valid ones are 28 bytes).
const REQ_BUF: usize = 64;
/// Room for one response.
const RESP_BUF: usize = 1500;
/// Outstanding requests remembered per socket (the window can't exceed it).
const RING: usize = 1 << 16;
/// Latency histogram: 1 µs buckets up to this many µs; slower answers land in the last.
const HIST_US: usize = 100_000;

/// Load-test a STUN server with Binding requests.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The server.
    #[arg(long, value_name = "IP:PORT")]
    target: SocketAddr,
    /// Source sockets.
    #[arg(long, default_value_t = 8)]
    sockets: usize,
    /// The first source IP; with --source-ips N the sockets are spread over N consecutive
    /// IPv4 addresses from it (loopback has all of 127.0.0.0/8).
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: IpAddr,
    /// How many consecutive source IPs to use.
    #[arg(long, default_value_t = 1)]
    source_ips: u8,
    /// Valid requests per second in total; 0 sends as fast as answers come back
    /// (bounded by --window).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Valid requests outstanding per socket at most.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// A request unanswered for this long is lost.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Fraction of sent packets that are malformed (truncated, bad FINGERPRINT, not
    /// STUN, a response instead of a request, a bad CHANGE-REQUEST).
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Print one JSON object instead of the human report.
    #[arg(long)]
    json: bool,
    /// Exit 1 if any valid request went unanswered, any response was invalid or any
    /// malformed packet was answered.
    #[arg(long)]
    check: bool,
}

/// One source socket and its outstanding requests.
struct Source {
    sock: UdpSocket,
    local: SocketAddr,
    index: u16,
    next_seq: u64,
    /// Every request with a lower sequence number is resolved.
    oldest: u64,
    outstanding: usize,
    /// Send time (ns since start, + 1) by `seq % RING`; 0 when resolved.
    sent_at: Vec<u64>,
}

/// What happened, over the whole run and within the measured window.
#[derive(Debug, Default)]
struct Stats {
    sent_valid: u64,
    sent_malformed: u64,
    /// Valid requests the kernel refused to send (EAGAIN/ENOBUFS).
    send_refused: u64,
    answered: u64,
    lost: u64,
    /// Responses that did not parse, had a wrong type, FINGERPRINT or mapped address,
    /// or an unknown transaction id.
    invalid: u64,
    /// Answers to requests already resolved (timed out or answered before).
    late: u64,
    answered_malformed: u64,
    /// Answers received while measuring.
    window_answered: u64,
    /// Requests sent while measuring and their fate.
    window_sent: u64,
    window_lost: u64,
    latency_us: Vec<u64>,
}

/// Transaction-id prefix marking malformed packets (so an answer to one is recognised).
fn malformed_salt(salt: u32) -> u32 {
    !salt
}

fn tid(salt: u32, index: u16, seq: u64) -> TransactionId {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&salt.to_be_bytes());
    b[4..6].copy_from_slice(&index.to_be_bytes());
    b[6..].copy_from_slice(&seq.to_be_bytes()[2..]);
    TransactionId::new(b)
}

/// A valid Binding request with FINGERPRINT; returns its length.
fn valid_request(buf: &mut [u8], t: TransactionId) -> usize {
    MessageBuilder::new(buf, Class::Request, Method::BINDING, t)
        .and_then(|b| b.finish_with_fingerprint())
        .unwrap_or(0)
}

/// The `kind`-th sort of malformed packet (a server must not answer any of them).
fn malformed_packet(buf: &mut [u8], t: TransactionId, kind: u64) -> usize {
    match kind % 5 {
        // Truncated: the header announces more attribute bytes than there are.
        0 => valid_request(buf, t).saturating_sub(4),
        // FINGERPRINT that does not match.
        1 => {
            let n = valid_request(buf, t);
            if n > 0 {
                buf[n - 1] ^= 0x5a;
            }
            n
        }
        // Not STUN at all (the top two bits must be zero).
        2 => {
            let mut x = kind.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            for b in buf.iter_mut().take(40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            buf[0] |= 0xc0;
            40
        }
        // A well-formed Binding success response, sent to the server.
        3 => MessageBuilder::with_cookie(
            buf,
            MessageType::BINDING_SUCCESS,
            natkit_stun::MAGIC_COOKIE,
            t,
        )
        .map(|b| b.finish())
        .unwrap_or(0),
        // CHANGE-REQUEST with a 3-byte value (it must be 4).
        _ => MessageBuilder::new(buf, Class::Request, Method::BINDING, t)
            .and_then(|mut b| {
                b.add_raw(AttrType::CHANGE_REQUEST, &[0, 0, 6])?;
                Ok(b.finish())
            })
            .unwrap_or(0),
    }
}

/// The kernel's UDP counters (`/proc/net/snmp`): (InErrors, RcvbufErrors).
fn udp_drops() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return (0, 0);
    };
    let get = |name: &str| {
        names
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("InErrors"), get("RcvbufErrors"))
}

struct Generator {
    args: Args,
    salt: u32,
    t0: Instant,
    /// Measuring starts and ends (ns since start).
    warm: u64,
    end: u64,
    sources: Vec<Source>,
    stats: Stats,
    malformed_acc: f64,
    malformed_kind: u64,
    send_hdrs: MultiHeaders<SockaddrStorage>,
    recv_hdrs: MultiHeaders<SockaddrStorage>,
    req_bufs: Vec<[u8; REQ_BUF]>,
    resp_bufs: Vec<[u8; RESP_BUF]>,
}

impl Generator {
    fn now(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.warm && t < self.end
    }

    /// Sends up to `want` valid requests (plus their share of malformed packets) on
    /// source `s`; returns how many valid ones went out.
    fn send_batch(&mut self, s: usize, want: usize) -> usize {
        let mut seqs = [None::<u64>; BATCH];
        let mut lens = [0usize; BATCH];
        let mut n = 0;
        let mut valid = 0;
        let src = &self.sources[s];
        let mut next_seq = src.next_seq;
        while n < BATCH && valid < want {
            self.malformed_acc += self.args.malformed;
            let buf = &mut self.req_bufs[n];
            if self.malformed_acc >= 1.0 {
                self.malformed_acc -= 1.0;
                self.malformed_kind += 1;
                let t = tid(malformed_salt(self.salt), src.index, self.malformed_kind);
                lens[n] = malformed_packet(buf, t, self.malformed_kind);
            } else {
                lens[n] = valid_request(buf, tid(self.salt, src.index, next_seq));
                seqs[n] = Some(next_seq);
                next_seq += 1;
                valid += 1;
            }
            n += 1;
        }
        let sent = {
            let iovs: Vec<[IoSlice<'_>; 1]> = self.req_bufs[..n]
                .iter()
                .zip(&lens)
                .map(|(b, &l)| [IoSlice::new(&b[..l])])
                .collect();
            let addrs = [None::<SockaddrStorage>; BATCH];
            match sendmmsg(
                src.sock.as_raw_fd(),
                &mut self.send_hdrs,
                &iovs,
                &addrs[..n],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(r) => r.count(),
                Err(_) => 0,
            }
        };
        let now = self.now();
        let in_window = self.in_window(now);
        let src = &mut self.sources[s];
        let mut out = 0;
        for (i, seq) in seqs[..n].iter().enumerate() {
            match seq {
                Some(seq) if i < sent => {
                    src.sent_at[(*seq as usize) % RING] = now + 1;
                    src.outstanding += 1;
                    self.stats.sent_valid += 1;
                    if in_window {
                        self.stats.window_sent += 1;
                    }
                    out += 1;
                }
                Some(_) => self.stats.send_refused += 1,
                None if i < sent => self.stats.sent_malformed += 1,
                None => {}
            }
        }
        src.next_seq = next_seq;
        out
    }

    /// Receives one batch on source `s`; returns how many datagrams arrived.
    fn recv_batch(&mut self, s: usize) -> usize {
        let mut lens = [0usize; BATCH];
        let n = {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
                .resp_bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            match recvmmsg(
                self.sources[s].sock.as_raw_fd(),
                &mut self.recv_hdrs,
                &mut iovs,
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => {
                    let mut n = 0;
                    for (slot, m) in lens.iter_mut().zip(r) {
                        *slot = m.bytes;
                        n += 1;
                    }
                    n
                }
                Err(Errno::EAGAIN | Errno::ECONNREFUSED | Errno::EINTR) | Err(_) => 0,
            }
        };
        let now = self.now();
        let in_window = self.in_window(now);
        let bufs = std::mem::take(&mut self.resp_bufs);
        for (buf, &len) in bufs.iter().zip(&lens[..n]) {
            self.judge(s, &buf[..len], now, in_window);
        }
        self.resp_bufs = bufs;
        n
    }

    fn judge(&mut self, s: usize, bytes: &[u8], now: u64, in_window: bool) {
        let st = &mut self.stats;
        let Ok(m) = Message::new_checked(bytes) else {
            st.invalid += 1;
            return;
        };
        let t = m.transaction_id().to_bytes();
        let salt = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        if salt == malformed_salt(self.salt) {
            st.answered_malformed += 1;
            return;
        }
        let src = &mut self.sources[s];
        let index = u16::from_be_bytes([t[4], t[5]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes[2..].copy_from_slice(&t[6..]);
        let seq = u64::from_be_bytes(seq_bytes);
        if salt != self.salt || index != src.index || seq >= src.next_seq {
            st.invalid += 1;
            return;
        }
        let slot = (seq as usize) % RING;
        if seq < src.oldest || src.sent_at[slot] == 0 {
            st.late += 1;
            return;
        }
        let sent = src.sent_at[slot] - 1;
        src.sent_at[slot] = 0;
        src.outstanding -= 1;
        let mapped = match m.xor_mapped_address() {
            Ok(Some(a)) => Some(a),
            _ => m.mapped_address().ok().flatten(),
        };
        let ok = m.class() == Class::SuccessResponse
            && m.method() == Method::BINDING
            && (!m.has_fingerprint() || m.check_fingerprint().is_ok())
            && mapped == Some(src.local);
        if !ok {
            // A wrong answer resolves the request as lost.
            st.invalid += 1;
            st.lost += 1;
            if sent >= self.warm && sent < self.end {
                st.window_lost += 1;
            }
            return;
        }
        st.answered += 1;
        if in_window {
            st.window_answered += 1;
            let us = usize::try_from(now.saturating_sub(sent) / 1000).unwrap_or(HIST_US - 1);
            st.latency_us[us.min(HIST_US - 1)] += 1;
        }
    }

    /// Resolves requests older than the timeout as lost (all of them with `all`).
    fn expire(&mut self, s: usize, now: u64, all: bool) {
        let timeout = self.args.timeout_ms * 1_000_000;
        let (warm, end) = (self.warm, self.end);
        let src = &mut self.sources[s];
        while src.oldest < src.next_seq {
            let slot = (src.oldest as usize) % RING;
            let at = src.sent_at[slot];
            if at != 0 {
                let sent = at - 1;
                if !all && now.saturating_sub(sent) < timeout {
                    break;
                }
                src.sent_at[slot] = 0;
                src.outstanding -= 1;
                self.stats.lost += 1;
                if sent >= warm && sent < end {
                    self.stats.window_lost += 1;
                }
            }
            src.oldest += 1;
        }
    }

    fn run(&mut self) {
        let timeout = self.args.timeout_ms * 1_000_000;
        let window = self.args.window;
        let mut rr = 0;
        let mut drain_until = None;
        loop {
            let now = self.now();
            let sending = now < self.end;
            if !sending && drain_until.is_none() {
                drain_until = Some(now + timeout);
            }
            let mut busy = false;
            if sending {
                let mut budget = if self.args.rate > 0.0 {
                    let due = (self.args.rate * now as f64 / 1e9) as u64;
                    usize::try_from(
                        due.saturating_sub(self.stats.sent_valid + self.stats.send_refused),
                    )
                    .unwrap_or(usize::MAX)
                } else {
                    usize::MAX
                };
                let k = self.sources.len();
                for j in 0..k {
                    if budget == 0 {
                        break;
                    }
                    let s = (rr + j) % k;
                    let src = &self.sources[s];
                    let ring_room =
                        RING - usize::try_from(src.next_seq - src.oldest).unwrap_or(RING);
                    let room = window.saturating_sub(src.outstanding).min(ring_room);
                    let want = room.min(BATCH).min(budget);
                    if want > 0 {
                        let sent = self.send_batch(s, want);
                        budget -= want.min(budget);
                        busy |= sent > 0;
                    }
                }
                rr = (rr + 1) % k;
            }
            for s in 0..self.sources.len() {
                while self.recv_batch(s) == BATCH {
                    busy = true;
                }
                self.expire(s, now, false);
            }
            if let Some(until) = drain_until {
                let left: usize = self.sources.iter().map(|s| s.outstanding).sum();
                if left == 0 || now >= until {
                    break;
                }
            }
            if !busy {
                self.wait(now);
            }
        }
        let now = self.now();
        for s in 0..self.sources.len() {
            self.expire(s, now, true);
        }
    }

    /// Waits for a response, or until the next request is due (1 ms granularity).
    fn wait(&mut self, now: u64) {
        let ms: u16 = if self.args.rate > 0.0 && now < self.end {
            let next = ((self.stats.sent_valid + self.stats.send_refused + 1) as f64 * 1e9
                / self.args.rate) as u64;
            let ns = next.saturating_sub(now);
            if ns < 1_000_000 {
                return;
            }
            u16::try_from(ns / 1_000_000).unwrap_or(10).min(10)
        } else {
            1
        };
        let mut fds: Vec<PollFd<'_>> = self
            .sources
            .iter()
            .filter(|s| s.outstanding > 0)
            .map(|s| PollFd::new(s.sock.as_fd(), PollFlags::POLLIN))
            .collect();
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(u64::from(ms)));
        } else {
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }
}

fn percentile(hist: &[u64], total: u64, p: f64) -> u64 {
    if total == 0 {
        return 0;
    }
    let want = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (us, &c) in hist.iter().enumerate() {
        seen += c;
        if seen >= want {
            return us as u64;
        }
    }
    (hist.len() - 1) as u64
}

fn open_sources(args: &Args) -> Result<Vec<Source>, String> {
    (0..args.sockets)
        .map(|i| {
            let ip = match args.source_ip {
                IpAddr::V4(v4) if args.source_ips > 1 => {
                    let step = u32::try_from(i % usize::from(args.source_ips)).unwrap_or(0);
                    IpAddr::V4((u32::from(v4).wrapping_add(step)).into())
                }
                ip => ip,
            };
            let sock =
                UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| format!("bind {ip}: {e}"))?;
            sock.connect(args.target)
                .map_err(|e| format!("connect {}: {e}", args.target))?;
            sock.set_nonblocking(true)
                .map_err(|e| format!("nonblocking: {e}"))?;
            let local = sock
                .local_addr()
                .map_err(|e| format!("local address: {e}"))?;
            Ok(Source {
                sock,
                local,
                index: u16::try_from(i).map_err(|_| "too many sockets".to_owned())?,
                next_seq: 0,
                oldest: 0,
                outstanding: 0,
                sent_at: vec![0; RING],
            })
        })
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.sockets == 0 || args.window == 0 || args.window > RING {
        eprintln!("error: --sockets must be positive and --window within 1..={RING}");
        return ExitCode::from(2);
    }
    let rate_ok = args.rate.is_finite() && args.rate >= 0.0;
    let duration_ok = args.duration.is_finite() && args.duration > 0.0;
    if !(0.0..1.0).contains(&args.malformed) || !rate_ok || !duration_ok {
        eprintln!("error: --malformed must be in [0, 1), --rate ≥ 0, --duration > 0");
        return ExitCode::from(2);
    }
    let sources = match open_sources(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let salt = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        t ^ std::process::id().rotate_left(16) ^ 0x5354_554e
    };
    let warm = (args.warmup * 1e9) as u64;
    let end = warm + (args.duration * 1e9) as u64;
    let mut g = Generator {
        salt,
        t0: Instant::now(),
        warm,
        end,
        sources,
        stats: Stats {
            latency_us: vec![0; HIST_US],
            ..Stats::default()
        },
        malformed_acc: 0.0,
        malformed_kind: 0,
        send_hdrs: MultiHeaders::preallocate(BATCH, None),
        recv_hdrs: MultiHeaders::preallocate(BATCH, None),
        req_bufs: vec![[0; REQ_BUF]; BATCH],
        resp_bufs: vec![[0; RESP_BUF]; BATCH],
        args,
    };
    let drops_before = udp_drops();
    g.run();
    let drops_after = udp_drops();
    report(&g, drops_before, drops_after)
}

fn report(g: &Generator, before: (u64, u64), after: (u64, u64)) -> ExitCode {
    let a = &g.args;
    let st = &g.stats;
    let rps = st.window_answered as f64 / a.duration;
    let total: u64 = st.latency_us.iter().sum();
    let pct: Vec<(&str, u64)> = [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("max", 1.0),
    ]
    .iter()
    .map(|&(n, p)| (n, percentile(&st.latency_us, total, p)))
    .collect();
    let loss = if st.window_sent > 0 {
        st.window_lost as f64 / st.window_sent as f64
    } else {
        0.0
    };
    let in_errors = after.0.saturating_sub(before.0);
    let rcvbuf_errors = after.1.saturating_sub(before.1);
    let failed = st.lost > 0 || st.invalid > 0 || st.answered_malformed > 0 || st.late > 0;
    if a.json {
        let lat: Vec<String> = pct.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect();
        println!(
            "{{\"target\":\"{}\",\"sockets\":{},\"window\":{},\"rate\":{},\"duration_s\":{},\
             \"malformed_fraction\":{},\"answered_per_s\":{:.0},\"sent_valid\":{},\
             \"sent_malformed\":{},\"send_refused\":{},\"answered\":{},\"lost\":{},\
             \"window_sent\":{},\"window_lost\":{},\"loss\":{:.6},\"invalid\":{},\"late\":{},\
             \"answered_malformed\":{},\"kernel_udp_in_errors\":{},\
             \"kernel_udp_rcvbuf_errors\":{},\"latency_us\":{{{}}}}}",
            a.target,
            a.sockets,
            a.window,
            a.rate,
            a.duration,
            a.malformed,
            rps,
            st.sent_valid,
            st.sent_malformed,
            st.send_refused,
            st.answered,
            st.lost,
            st.window_sent,
            st.window_lost,
            loss,
            st.invalid,
            st.late,
            st.answered_malformed,
            in_errors,
            rcvbuf_errors,
            lat.join(",")
        );
    } else {
        let rate = if a.rate > 0.0 {
            format!("{} req/s", a.rate)
        } else {
            "max rate".to_owned()
        };
        println!(
            "stun_load -> {}: {} sockets, window {}, {rate}, {} s (+{} s warm-up), {:.1}% malformed",
            a.target,
            a.sockets,
            a.window,
            a.duration,
            a.warmup,
            a.malformed * 100.0
        );
        println!(
            "answered   {rps:.0} req/s ({} in {} s)",
            st.window_answered, a.duration
        );
        println!(
            "sent       {} valid, {} malformed, {} refused by the kernel",
            st.sent_valid, st.sent_malformed, st.send_refused
        );
        println!(
            "answered   {} of {} valid; lost {} ({:.4}% while measuring)",
            st.answered,
            st.sent_valid,
            st.lost,
            loss * 100.0
        );
        println!(
            "bad        {} invalid responses, {} late, {} answers to malformed packets",
            st.invalid, st.late, st.answered_malformed
        );
        println!("kernel     UDP InErrors +{in_errors}, RcvbufErrors +{rcvbuf_errors}");
        let lat: Vec<String> = pct.iter().map(|(n, v)| format!("{n} {v} µs")).collect();
        println!("latency    {}", lat.join(", "));
    }
    if a.check && failed {
        eprintln!(
            "check failed: lost {}, invalid {}, late {}, answered malformed {}",
            st.lost, st.invalid, st.late, st.answered_malformed
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
