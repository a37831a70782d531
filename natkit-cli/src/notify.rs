//! systemd's readiness protocol (sd_notify): under a `Type=notify` unit the
//! servers say `READY=1` once their sockets are bound, so `systemctl start`
//! returns only when they answer, and `STOPPING=1` when a signal stops them.
//!
//! The protocol is one datagram of `KEY=value` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Outside systemd
//! the variable is unset and nothing is sent; on other systems this does nothing.

/// Tells systemd the service is ready, with a status line for `systemctl status`.
pub(crate) fn ready(status: &str) {
    send(&format!("READY=1\nSTATUS={}", one_line(status)));
}

/// Tells systemd the service is stopping.
fn stopping() {
    send("STOPPING=1");
}

/// On Ctrl-C or SIGTERM (what `systemctl stop` sends): tells systemd the
/// service is stopping, then calls `stop`.
pub(crate) fn stop_on_signal(
    shutdown: crate::common::Shutdown,
    stop: impl FnOnce() + Send + 'static,
) {
    tokio::spawn(async move {
        shutdown.wait().await;
        stopping();
        stop();
    });
}

fn one_line(text: &str) -> String {
    text.replace('\n', "; ")
}

#[cfg(target_os = "linux")]
fn send(message: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = linux::send_to(&socket, message.as_bytes()) {
        tracing::warn!(
            "could not notify systemd at {}: {e}",
            socket.to_string_lossy()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn send(_message: &str) {}

#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::OsStr;
    use std::io;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    /// One datagram to `socket`: a path, or `@name` for an abstract socket.
    pub(super) fn send_to(socket: &OsStr, message: &[u8]) -> io::Result<()> {
        let bytes = socket.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name)?,
            None if bytes.starts_with(b"/") => SocketAddr::from_pathname(socket)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET is neither a path nor @name",
                ));
            }
        };
        let sock = UnixDatagram::unbound()?;
        // Called from async code: never wait on a full socket buffer (systemd
        // reads these at once; a lost notification only delays the unit's start).
        sock.set_nonblocking(true)?;
        let sent = sock.send_to_addr(message, &addr)?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"))
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_path_socket_gets_the_datagram() {
            let dir = std::env::temp_dir().join(format!("natkit-notify-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join("notify.sock");
            let _ = std::fs::remove_file(&path);
            let server = UnixDatagram::bind(&path).expect("bind");
            send_to(path.as_os_str(), b"READY=1\nSTATUS=ok").expect("send");
            let mut buf = [0u8; 64];
            let n = server.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn an_abstract_socket_gets_the_datagram() {
            let name = format!("natkit-notify-test-{}", std::process::id());
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
            let server = UnixDatagram::bind_addr(&addr).expect("bind");
            send_to(OsStr::new(&format!("@{name}")), b"STOPPING=1").expect("send");
            let mut buf = [0u8; 64];
            let n = server.recv(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"STOPPING=1");
        }

        #[test]
        fn nonsense_is_an_error_not_a_panic() {
            assert!(send_to(OsStr::new("relative/path"), b"READY=1").is_err());
            assert!(send_to(OsStr::new("/nonexistent/dir/sock"), b"READY=1").is_err());
        }
    }
}
