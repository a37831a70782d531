//! Running out of file descriptors: the engine backs off and still gives
//! every port its verdict. Its own test binary, so lowering this process's
//! `RLIMIT_NOFILE` affects no other test.
// Test helpers outside #[test] functions may panic on setup failures too.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_probe::fdlimit::{nofile_limits, open_descriptors};
use natkit_probe::{
    PortOrder, PortProbe, PortState, ProbeConfig, ProbePlan, Prober, Reason, RttConfig,
};
use nix::sys::resource::{Resource, setrlimit};
use socket2::{Domain, Socket, Type};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Bound but not listening: the kernel resets connections to its port.
fn bound_not_listening() -> Socket {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(V4, 0).into()).unwrap();
    s
}

/// A listener whose accept queue is full (backlog 0, one connection never
/// accepted): the kernel drops further SYNs, so a connect waits in vain and
/// holds its socket until the probe's timeout.
fn full_listener() -> (Socket, TcpStream) {
    let s = bound_not_listening();
    s.listen(0).unwrap();
    let filler = TcpStream::connect(s.local_addr().unwrap().as_socket().unwrap()).unwrap();
    (s, filler)
}

fn addr(s: &Socket) -> SocketAddr {
    s.local_addr().unwrap().as_socket().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn out_of_descriptors_backs_off_and_finishes() {
    let open_listeners: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind((V4, 0)).unwrap())
        .collect();
    let closed_sockets: Vec<Socket> = (0..100).map(|_| bound_not_listening()).collect();
    let full: Vec<(Socket, TcpStream)> = (0..60).map(|_| full_listener()).collect();
    let tcp = |addr| PortProbe {
        addr,
        protocol: Protocol::Tcp,
    };
    let open: Vec<PortProbe> = open_listeners
        .iter()
        .map(|l| tcp(l.local_addr().unwrap()))
        .collect();
    let closed: Vec<PortProbe> = closed_sockets.iter().map(|s| tcp(addr(s))).collect();
    let silent: Vec<PortProbe> = full.iter().map(|(s, _)| tcp(addr(s))).collect();
    let all: Vec<PortProbe> = open.iter().chain(&closed).chain(&silent).copied().collect();
    let plan = ProbePlan::from_probes(all.iter().copied()).unwrap();
    assert_eq!(plan.len(), 162);

    // Leave room for 20 sockets, and ask for 500 at once: the silent ports
    // hold theirs until they time out, so descriptors run out.
    let (soft, hard) = nofile_limits().unwrap();
    let low = (open_descriptors() + 20) as u64;
    setrlimit(Resource::RLIMIT_NOFILE, low, hard).unwrap();
    let config = ProbeConfig {
        tries: 1,
        max_concurrency: 500,
        ignore_fd_limit: true,
        order: PortOrder::Shuffled { seed: 3 },
        rtt: RttConfig {
            initial_rto: Duration::from_millis(200),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_millis(400),
            ..RttConfig::default()
        },
        ..ProbeConfig::default()
    };
    let result = Prober::new(config).unwrap().run(plan).await;
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
    let summary = result.unwrap();

    assert!(!summary.backoffs.is_empty(), "no back-off happened");
    for b in &summary.backoffs {
        assert_eq!(b.errno, nix::errno::Errno::EMFILE as i32);
    }
    // A cut halves what was in flight; the cuts go on until the limit fits
    // in the 20 free descriptors.
    let lowest = summary.backoffs.iter().map(|b| b.limit).min().unwrap();
    assert!(
        lowest <= 20,
        "the limit never came down to what fits: {lowest}"
    );
    assert!(summary.stats.concurrency_limit < 500);
    assert_eq!(summary.verdicts.len(), all.len());
    for p in &open {
        let v = summary.get(p.addr, p.protocol).unwrap();
        assert_eq!(v.state, PortState::Open, "{v}");
    }
    for p in &closed {
        let v = summary.get(p.addr, p.protocol).unwrap();
        assert_eq!(v.state, PortState::Closed, "{v}");
        assert!(matches!(v.reason, Reason::Reset { .. }), "{v}");
    }
    for p in &silent {
        let v = summary.get(p.addr, p.protocol).unwrap();
        assert_eq!(v.state, PortState::Filtered, "{v}");
        assert!(matches!(v.reason, Reason::Silence { tries: 1, .. }), "{v}");
    }
    // A try that found no descriptor is retried, not counted.
    assert!(summary.verdicts.iter().all(|v| v.tries == 1));
    assert_eq!(summary.stats.attempts, all.len() as u64);
    drop((closed_sockets, full, open_listeners));
}
