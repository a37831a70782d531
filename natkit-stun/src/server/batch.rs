//! Batched datagram I/O for the server's socket threads: `recvmmsg`/`sendmmsg` on Linux
//! (one system call per batch, buffers allocated once per thread), one datagram per call
//! elsewhere.

use std::io;
use std::net::{SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Instant;

use super::core::ServerCore;
use super::sockets::SocketIndex;

/// Datagrams per system call.
pub(super) const BATCH: usize = 32;
/// Receive buffer per datagram: a longer datagram is truncated, then dropped as
/// malformed. Also the room for one reply (PADDING is echoed only up to the request's
/// size, so a reply never needs more).
pub(super) const BUF: usize = 2048;

/// The longest reply sent with DF set and no fragmentation allowed: 576 (the datagram
/// every IPv4 path must carry) less a 60-byte IP header and the UDP header. Every reply
/// but an echoed PADDING is far below it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DF_REPLY_MAX: usize = 576 - 60 - 8;

/// Puts an IPv4 server socket in `IP_PMTUDISC_PROBE`: DF set on every reply and no
/// fragmentation, whatever path MTU the kernel has cached (a spoofed ICMP "fragmentation
/// needed" cannot change it). Replies up to [`DF_REPLY_MAX`] bytes fit any IPv4 path,
/// so for them this changes nothing on the wire but the IP ID: with DF the kernel writes
/// 0 instead of drawing one from its hashed ID generator, which was ~3 % of the server's
/// CPU under load. Longer replies (echoed PADDING, RFC 5780 §7.6: the point is to be
/// fragmented) go out with the kernel's default, see `linux::send_fragmentable`.
/// Best effort: a socket left in the default only costs that 3 %.
///
/// IPv6 sockets are left alone: the IPv6 header has no ID to draw and no router
/// fragments, and the kernel fragments at the source only past the path MTU (at least
/// 1280), which no reply but echoed PADDING reaches.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn set_dont_fragment(sock: &UdpSocket) {
    if sock.local_addr().is_ok_and(|a| a.is_ipv4()) {
        let _ = rustix::net::sockopt::set_ip_mtu_discover(
            sock,
            rustix::net::sockopt::Ipv4PathMtuDiscovery::PROBE,
        );
    }
}

/// One reply waiting to be sent: the socket to send it from, where to, and its length in
/// the reply buffer of the same slot.
#[derive(Debug, Clone, Copy)]
struct Pending {
    from: SocketIndex,
    to: SocketAddr,
    len: usize,
}

/// A thread's buffers: up to [`BATCH`] datagrams in, their replies out.
pub(super) struct Batch {
    bufs: Vec<[u8; BUF]>,
    outs: Vec<[u8; BUF]>,
    lens: [usize; BATCH],
    srcs: [Option<SocketAddr>; BATCH],
    replies: [Option<Pending>; BATCH],
    n: usize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    mmsg: linux::Headers,
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            bufs: vec![[0; BUF]; BATCH],
            outs: vec![[0; BUF]; BATCH],
            lens: [0; BATCH],
            srcs: [None; BATCH],
            replies: [None; BATCH],
            n: 0,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            mmsg: linux::Headers::new(),
        }
    }

    /// Receives at least one datagram (waiting up to the socket's read timeout) and
    /// whatever else is queued, up to [`BATCH`]. Returns how many; 0 after a timeout or
    /// an ICMP error reported on the socket.
    pub(super) fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.n = 0;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let r = linux::recv(
            sock,
            &mut self.mmsg,
            &mut self.bufs,
            &mut self.lens,
            &mut self.srcs,
        );
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let r = sock.recv_from(&mut self.bufs[0]).map(|(len, src)| {
            self.lens[0] = len;
            self.srcs[0] = Some(canonical(src));
            1
        });
        match r {
            Ok(n) => {
                self.n = n;
                Ok(n)
            }
            Err(e) if quiet(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Runs the received datagrams through `core` (arrived on socket `local`).
    pub(super) fn handle(&mut self, core: &mut ServerCore, local: SocketIndex) {
        // The server's one clock is std's: its sockets are served by plain threads,
        // not tokio tasks, and the core (rate limit, sweeps) only compares instants
        // taken here. Its timing rules are tested on `Instant` arithmetic.
        let now = Instant::now();
        for k in 0..self.n {
            self.replies[k] = self.srcs[k].and_then(|src| {
                let (from, to, len) = core.handle(
                    now,
                    local,
                    src,
                    &self.bufs[k][..self.lens[k]],
                    &mut self.outs[k],
                )?;
                Some(Pending { from, to, len })
            });
        }
    }

    /// Sends the replies that go out of socket `index` (`sock`, an IPv6 socket if
    /// `v6`). A reply that cannot be sent (no route to a spoofed source, …) is skipped:
    /// it is not the server's problem.
    pub(super) fn send_from(&mut self, sock: &UdpSocket, index: SocketIndex, v6: bool) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        linux::send(
            sock,
            &mut self.mmsg,
            &self.outs,
            &self.replies[..self.n],
            index,
            v6,
        );
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        for (out, p) in self.outs.iter().zip(&self.replies[..self.n]) {
            if let Some(p) = p.filter(|p| p.from == index) {
                let _ = sock.send_to(&out[..p.len], on_socket(p.to, v6));
            }
        }
    }
}

/// A source as the core must see it: an IPv4 client reaching a socket bound to `[::]`
/// arrives as a v4-mapped IPv6 address (`::ffff:a.b.c.d`), and its XOR-MAPPED-ADDRESS
/// must say IPv4 (family 0x01) with that address, which is what it sent from.
pub(super) fn canonical(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

/// A destination as an IPv6 socket takes it: an IPv4 one in its v4-mapped form (the
/// reverse of [`canonical`]).
pub(super) fn on_socket(to: SocketAddr, v6_socket: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if v6_socket => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => to,
    }
}

/// Errors that just mean "nothing this time": the read timeout, an interrupted call, an
/// ICMP error from an earlier send reported on the socket.
fn quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::io::{self, IoSlice, IoSliceMut};
    use std::net::{SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};
    use nix::sys::socket::{recvmmsg, sendmmsg};

    use super::{BATCH, BUF, DF_REPLY_MAX, Pending, SocketIndex, on_socket};

    /// Serialises [`send_fragmentable`]: one socket at a time is out of
    /// `IP_PMTUDISC_PROBE`.
    static FRAGMENTABLE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Sends one reply longer than [`DF_REPLY_MAX`] with the kernel's default
    /// (`IP_PMTUDISC_WANT`: fragmented to the route's MTU when longer, as without
    /// [`super::set_dont_fragment`]), then puts the socket back. Only echoed PADDING is
    /// this long, so the two extra system calls are rare. Another thread's reply sent
    /// from the same socket meanwhile also gets the default, which is harmless.
    fn send_fragmentable(sock: &UdpSocket, buf: &[u8], to: SocketAddr) {
        use rustix::net::sockopt::{Ipv4PathMtuDiscovery, set_ip_mtu_discover};
        let v4 = sock.local_addr().is_ok_and(|a| a.is_ipv4());
        let _guard = FRAGMENTABLE.lock().unwrap_or_else(|p| p.into_inner());
        if v4 {
            let _ = set_ip_mtu_discover(sock, Ipv4PathMtuDiscovery::WANT);
        }
        let _ = sock.send_to(buf, to);
        if v4 {
            let _ = set_ip_mtu_discover(sock, Ipv4PathMtuDiscovery::PROBE);
        }
    }

    /// The `mmsghdr` arrays, allocated once per thread.
    pub(super) struct Headers {
        recv: MultiHeaders<SockaddrStorage>,
        send: MultiHeaders<SockaddrStorage>,
    }

    impl Headers {
        pub(super) fn new() -> Headers {
            Headers {
                recv: MultiHeaders::preallocate(BATCH, None),
                send: MultiHeaders::preallocate(BATCH, None),
            }
        }
    }

    fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
        if let Some(v4) = a.as_sockaddr_in() {
            return Some(SocketAddr::V4((*v4).into()));
        }
        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
    }

    /// One `recvmmsg` with MSG_WAITFORONE: blocks (up to the socket's read timeout) for
    /// the first datagram, then takes what is queued.
    pub(super) fn recv(
        sock: &UdpSocket,
        h: &mut Headers,
        bufs: &mut [[u8; BUF]],
        lens: &mut [usize; BATCH],
        srcs: &mut [Option<SocketAddr>; BATCH],
    ) -> io::Result<usize> {
        let mut it = bufs.iter_mut();
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                it.next().map_or(&mut [][..], |b| &mut b[..]),
            )]
        });
        let got = recvmmsg(
            sock.as_raw_fd(),
            &mut h.recv,
            &mut iovs,
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for ((len, src), m) in lens.iter_mut().zip(srcs.iter_mut()).zip(got) {
            *len = m.bytes;
            *src = m.address.as_ref().and_then(std_addr).map(super::canonical);
            n += 1;
        }
        Ok(n)
    }

    /// `sendmmsg` of the replies that go out of socket `index` (an IPv6 socket if
    /// `v6`), retrying the rest after a partial send and skipping a datagram the kernel
    /// refuses.
    pub(super) fn send(
        sock: &UdpSocket,
        h: &mut Headers,
        outs: &[[u8; BUF]],
        replies: &[Option<Pending>],
        index: SocketIndex,
        v6: bool,
    ) {
        let mut slots = [0usize; BATCH];
        let mut n = 0;
        for (k, r) in replies.iter().enumerate() {
            match r {
                Some(p) if p.from == index && p.len > DF_REPLY_MAX => {
                    send_fragmentable(sock, &outs[k][..p.len], on_socket(p.to, v6));
                }
                Some(p) if p.from == index => {
                    slots[n] = k;
                    n += 1;
                }
                _ => {}
            }
        }
        let mut done = 0;
        while done < n {
            let todo = &slots[done..n];
            let mut addrs = [None::<SockaddrStorage>; BATCH];
            let mut it = todo.iter();
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSlice::new(it.next().map_or(&[][..], |&k| {
                    let len = replies[k].map_or(0, |p| p.len);
                    &outs[k][..len]
                }))]
            });
            for (a, &k) in addrs.iter_mut().zip(todo) {
                *a = replies[k].map(|p| SockaddrStorage::from(on_socket(p.to, v6)));
            }
            match sendmmsg(
                sock.as_raw_fd(),
                &mut h.send,
                &iovs[..todo.len()],
                &addrs[..todo.len()],
                [],
                MsgFlags::empty(),
            ) {
                Ok(sent) => done += sent.count().max(1),
                Err(Errno::EINTR) => {}
                // The first datagram was refused (EPERM, ENETUNREACH, EAGAIN, …).
                Err(_) => done += 1,
            }
        }
    }
}
