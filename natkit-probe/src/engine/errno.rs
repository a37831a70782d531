//! Sorting OS errors from socket calls into what they mean for a probe.

use std::io;

use nix::errno::Errno;

/// What an OS error from a socket call means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Out of descriptors, buffers or local ports: retry later.
    Exhausted(i32),
    /// `ECONNREFUSED`: a reset, or an ICMP port unreachable.
    Refused,
    /// The kernel gave up waiting (its own SYN retries ran out).
    TimedOut,
    /// Anything else: this host would not (or could not) send the probe.
    Local(i32),
}

/// The class of `err`.
pub(crate) fn classify(err: &io::Error) -> ErrorClass {
    let Some(code) = err.raw_os_error() else {
        return ErrorClass::Local(Errno::EIO as i32);
    };
    match Errno::from_raw(code) {
        Errno::EMFILE
        | Errno::ENFILE
        | Errno::ENOBUFS
        | Errno::ENOMEM
        | Errno::EADDRNOTAVAIL
        | Errno::EAGAIN
        | Errno::ENOSPC => ErrorClass::Exhausted(code),
        Errno::ECONNREFUSED => ErrorClass::Refused,
        Errno::ETIMEDOUT => ErrorClass::TimedOut,
        _ => ErrorClass::Local(code),
    }
}

/// Whether `err` is `EINPROGRESS` (a non-blocking connect under way).
pub(crate) fn in_progress(err: &io::Error) -> bool {
    err.raw_os_error() == Some(Errno::EINPROGRESS as i32)
}

/// Whether `err` is `ENOTCONN`.
pub(crate) fn not_connected(err: &io::Error) -> bool {
    err.raw_os_error() == Some(Errno::ENOTCONN as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e as i32)
    }

    #[test]
    fn classes() {
        assert_eq!(
            classify(&os(Errno::EMFILE)),
            ErrorClass::Exhausted(Errno::EMFILE as i32)
        );
        assert_eq!(
            classify(&os(Errno::EADDRNOTAVAIL)),
            ErrorClass::Exhausted(Errno::EADDRNOTAVAIL as i32)
        );
        assert_eq!(classify(&os(Errno::ECONNREFUSED)), ErrorClass::Refused);
        assert_eq!(classify(&os(Errno::ETIMEDOUT)), ErrorClass::TimedOut);
        assert_eq!(
            classify(&os(Errno::ENETUNREACH)),
            ErrorClass::Local(Errno::ENETUNREACH as i32)
        );
        assert_eq!(
            classify(&io::Error::other("no errno")),
            ErrorClass::Local(Errno::EIO as i32)
        );
        assert!(in_progress(&os(Errno::EINPROGRESS)));
        assert!(not_connected(&os(Errno::ENOTCONN)));
    }
}
