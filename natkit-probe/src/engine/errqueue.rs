//! The socket error queue (Linux `IP_RECVERR`/`IPV6_RECVERR`): the ICMP
//! error behind an `ECONNREFUSED` or `EHOSTUNREACH`, with its type, code and
//! sender. Read through `nix`, so the crate needs no `unsafe` of its own.
//! Elsewhere the queue does not exist and these calls report nothing.

use std::io;
use std::os::fd::AsFd;

use crate::icmp::IcmpReport;

/// One entry of the error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// An ICMP error.
    Icmp(IcmpReport),
    /// An error the local stack raised (no ICMP involved).
    Local {
        /// The errno.
        errno: i32,
    },
    /// Something else (timestamps, zero-copy notices): ignored.
    Other,
}

/// Turns on error queueing for `fd` (`IP_RECVERR` or `IPV6_RECVERR`).
#[cfg(target_os = "linux")]
pub(crate) fn enable<F: AsFd>(fd: &F, ipv6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if ipv6 {
        setsockopt(fd, sockopt::Ipv6RecvErr, &true)?;
    } else {
        setsockopt(fd, sockopt::Ipv4RecvErr, &true)?;
    }
    Ok(())
}

/// Takes the oldest entry off the queue, if any (never blocks).
#[cfg(target_os = "linux")]
pub(crate) fn take<F: AsFd>(fd: &F) -> io::Result<Option<Queued>> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::libc;
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

    // The offending packet's head is returned as data; it is not needed.
    let mut data = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut cmsg = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let msg = match recvmsg::<()>(fd.as_fd().as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
        Ok(m) => m,
        Err(Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    for c in msg.cmsgs()? {
        let (ee, offender) = match c {
            ControlMessageOwned::Ipv4RecvErr(ee, addr) => (
                ee,
                addr.filter(|a| i32::from(a.sin_family) == libc::AF_INET)
                    .map(|a| {
                        std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                            a.sin_addr.s_addr,
                        )))
                    }),
            ),
            ControlMessageOwned::Ipv6RecvErr(ee, addr) => (
                ee,
                addr.filter(|a| i32::from(a.sin6_family) == libc::AF_INET6)
                    .map(|a| {
                        std::net::IpAddr::V6(std::net::Ipv6Addr::from(a.sin6_addr.s6_addr))
                            .to_canonical()
                    }),
            ),
            _ => continue,
        };
        return Ok(Some(from_raw(
            ee.ee_origin,
            ee.ee_type,
            ee.ee_code,
            ee.ee_errno,
            offender,
        )));
    }
    Ok(Some(Queued::Other))
}

/// Builds a [`Queued`] from the fields of a `sock_extended_err`.
fn from_raw(
    origin: u8,
    icmp_type: u8,
    icmp_code: u8,
    errno: u32,
    offender: Option<std::net::IpAddr>,
) -> Queued {
    use crate::icmp::IcmpKind;
    /// `SO_EE_ORIGIN_LOCAL`, `_ICMP`, `_ICMP6` from `<linux/errqueue.h>`.
    const ORIGIN_LOCAL: u8 = 1;
    const ORIGIN_ICMP: u8 = 2;
    const ORIGIN_ICMP6: u8 = 3;
    let errno = i32::try_from(errno).unwrap_or(i32::MAX);
    let kind = match origin {
        ORIGIN_ICMP => IcmpKind::v4(icmp_type, icmp_code),
        ORIGIN_ICMP6 => IcmpKind::v6(icmp_type, icmp_code),
        ORIGIN_LOCAL => return Queued::Local { errno },
        _ => return Queued::Other,
    };
    Queued::Icmp(IcmpReport {
        kind,
        offender,
        errno,
    })
}

/// No error queue on this platform: nothing to enable.
#[cfg(not(target_os = "linux"))]
pub(crate) fn enable<F: AsFd>(_fd: &F, _ipv6: bool) -> io::Result<()> {
    Ok(())
}

/// No error queue on this platform: never anything to take.
#[cfg(not(target_os = "linux"))]
pub(crate) fn take<F: AsFd>(_fd: &F) -> io::Result<Option<Queued>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::icmp::IcmpKind;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn raw_fields_map_to_entries() {
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            from_raw(2, 3, 3, 111, lo),
            Queued::Icmp(IcmpReport {
                kind: IcmpKind::v4(3, 3),
                offender: lo,
                errno: 111
            })
        );
        assert!(matches!(
            from_raw(3, 1, 4, 111, None),
            Queued::Icmp(IcmpReport { kind, .. }) if kind == IcmpKind::v6(1, 4)
        ));
        assert_eq!(from_raw(1, 0, 0, 90, None), Queued::Local { errno: 90 });
        assert_eq!(from_raw(4, 0, 0, 0, None), Queued::Other);
    }

    /// Sends one datagram from a socket with the error queue on to a port
    /// of `lo` that was just free, and returns the queue's first entry.
    #[cfg(target_os = "linux")]
    fn port_unreachable_on(lo: IpAddr) -> Queued {
        use std::net::UdpSocket;
        use std::time::{Duration, Instant};
        // A port that was just free: bind, note, close.
        let port = UdpSocket::bind((lo, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = UdpSocket::bind((lo, 0)).unwrap();
        enable(&s, lo.is_ipv6()).unwrap();
        s.connect((lo, port)).unwrap();
        s.send(b"x").unwrap();
        // Loopback ICMP is delivered before send returns, but give a loaded
        // machine time without asserting on it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let entry = loop {
            if let Some(e) = take(&s).unwrap() {
                break e;
            }
            assert!(Instant::now() < deadline, "no ICMP error queued");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(take(&s).unwrap(), None, "one error, one entry");
        entry
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_port_unreachable_names_the_target() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let Queued::Icmp(report) = port_unreachable_on(lo) else {
            panic!("expected an ICMP entry");
        };
        assert_eq!(report.kind, IcmpKind::v4(3, 3));
        assert!(report.kind.is_port_unreachable());
        assert_eq!(report.offender, Some(lo));
        assert_eq!(report.errno, nix::errno::Errno::ECONNREFUSED as i32);
    }

    /// The IPv6 twin: `IPV6_RECVERR` queues the ICMPv6 destination
    /// unreachable (type 1) with code 4, port unreachable, and its sender.
    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_icmpv6_port_unreachable_names_the_target() {
        let lo = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
        let Queued::Icmp(report) = port_unreachable_on(lo) else {
            panic!("expected an ICMPv6 entry");
        };
        assert_eq!(report.kind, IcmpKind::v6(1, 4));
        assert!(report.kind.is_port_unreachable());
        assert_eq!(report.offender, Some(lo));
        assert_eq!(report.errno, nix::errno::Errno::ECONNREFUSED as i32);
        let c = report.conclude(lo).expect("a conclusion");
        assert_eq!(c.state, crate::PortState::Closed);
    }
}
