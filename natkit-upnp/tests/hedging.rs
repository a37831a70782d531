//! Hedged requests against a scripted fake IGD on loopback: a request whose
//! connection goes unanswered is sent again on a fresh connection within the
//! same time limit; the first usable answer wins and every other connection
//! is closed; AddAnyPortMapping is never repeated; the limit still holds when
//! nothing answers; and a 718 or 714 that our own duplicate caused is not
//! reported as a failure.
//!
//! On tokio's paused clock, so each timing rule is checked exactly: time
//! moves only when every task waits on a timer, and loopback TCP delivers a
//! segment before the send call returns, so the clock never runs past an
//! answer in flight. The real-network timing is the lab's
//! (`tests/lab_loss.rs`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use natkit_core::Protocol;
use natkit_testkit::igd::{Behaviour, Conn, FakeIgd, Row, Step};
use natkit_upnp::{
    ConnectionStatus, Error, HttpConfig, HttpError, Igd, PortMappingRequest, UpnpErrorCode,
};
use tokio::time::Instant;

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;
const HEDGE: Duration = Duration::from_millis(500);

fn http(soap_timeout: Duration) -> HttpConfig {
    HttpConfig {
        soap_timeout,
        hedge_after: Some(HEDGE),
        ..HttpConfig::default()
    }
}

async fn connect(fake: &FakeIgd, http: &HttpConfig) -> Igd {
    let location = format!("http://{}/rootDesc.xml", fake.http);
    match Igd::connect(&location, http).await {
        Ok(igd) => igd,
        Err(e) => panic!("connect to the fake at {location}: {e}"),
    }
}

fn request(port: u16) -> PortMappingRequest {
    PortMappingRequest {
        protocol: Protocol::Tcp,
        external_port: port,
        internal: SocketAddrV4::new(LO, port),
        lease_secs: 3600,
        description: "hedge".into(),
    }
}

/// `err` is the typed time limit of `ms`.
fn assert_timeout(err: &Error, ms: u64) {
    assert!(
        matches!(err, Error::Http { source: HttpError::Timeout { ms: m }, .. } if *m == ms),
        "{err:?}"
    );
    assert_eq!(
        err.failure_kind(),
        natkit_core::FailureKind::Timeout,
        "{err}"
    );
}

fn actions(conns: &[Conn]) -> Vec<&str> {
    conns.iter().map(|c| c.action.as_str()).collect()
}

/// Waits for natkit to close every connection of the armed script, and
/// checks that they carried `expected` and were all closed.
async fn closed(fake: &FakeIgd, expected: &[&str]) -> Vec<Conn> {
    let conns = fake.all_closed().await;
    assert_eq!(actions(&conns), expected);
    assert!(conns.iter().all(|c| c.closed_by_client), "{conns:?}");
    conns
}

#[tokio::test(start_paused = true)]
async fn unanswered_first_connection_is_hedged() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let config = http(Duration::from_secs(3));
    let igd = connect(&fake, &config).await;

    // Through igd-next's provider (GetExternalIPAddress)…
    fake.arm(vec![Step::Silent]);
    let start = Instant::now();
    let ip = igd.external_ip().await.unwrap();
    let took = start.elapsed();
    assert_eq!(ip, Ipv4Addr::new(203, 0, 113, 7));
    // The copy is answered at once: the call ends when the copy went out,
    // at the hedge delay, not before and not after.
    assert_eq!(took, HEDGE);
    let conns = closed(&fake, &["GetExternalIPAddress", "GetExternalIPAddress"]).await;
    assert!(!conns[0].answered && conns[1].answered);
    // The unanswered first connection was closed by natkit, not left open.
    assert!(conns.iter().all(|c| c.closed_by_client), "{conns:?}");

    // …and through natkit's own SOAP calls (GetStatusInfo).
    fake.arm(vec![Step::Silent]);
    let start = Instant::now();
    assert_eq!(
        igd.status().await.unwrap().status,
        ConnectionStatus::Connected
    );
    assert_eq!(start.elapsed(), HEDGE);
    closed(&fake, &["GetStatusInfo", "GetStatusInfo"]).await;
}

#[tokio::test(start_paused = true)]
async fn unanswered_description_fetch_is_hedged() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    fake.arm(vec![Step::Silent]);
    let start = Instant::now();
    let igd = connect(&fake, &http(Duration::from_secs(3))).await;
    assert_eq!(start.elapsed(), HEDGE);
    assert_eq!(igd.display_name(), "Fake router");
    closed(&fake, &["GET", "GET"]).await;
}

#[tokio::test(start_paused = true)]
async fn two_answers_one_is_used_and_both_connections_closed() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let igd = connect(&fake, &http(Duration::from_secs(3))).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let (a, b) = (
        Ipv4Addr::new(198, 51, 100, 1),
        Ipv4Addr::new(198, 51, 100, 2),
    );
    // Both connections are answered at once, when the hedge has arrived.
    fake.arm(vec![
        Step::ExternalIpWhenConns(2, a),
        Step::ExternalIpWhenConns(2, b),
    ]);
    let ip = igd.external_ip().await.unwrap();
    assert!(ip == a || ip == b, "{ip}");
    let conns = fake.all_closed().await;
    assert_eq!(conns.len(), 2, "no third copy after an answer: {conns:?}");
    // The copy not used is reset as soon as the other answer is taken, so
    // the fake's answer to it may no longer be written.
    assert!(conns.iter().any(|c| c.answered), "{conns:?}");
    assert!(conns.iter().all(|c| c.closed_by_client), "{conns:?}");
    // Reset, not closed: a request still in the send queue (retransmitted
    // under loss) is thrown away, never delivered after natkit moved on.
    assert!(conns.iter().all(|c| c.reset_by_client), "{conns:?}");
    // Nothing natkit started is left running: the copies are futures of the
    // call itself, and the fake's connection tasks end once closed.
    let end = Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() > tasks_before && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), tasks_before);
}

#[tokio::test(start_paused = true)]
async fn add_any_port_mapping_is_never_repeated() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let limit = Duration::from_millis(1600);
    let igd = connect(&fake, &http(limit)).await;
    fake.arm(vec![Step::Silent; 4]);
    let start = Instant::now();
    let err = igd.add_any_port_mapping(&request(6000)).await.unwrap_err();
    let took = start.elapsed();
    assert_timeout(&err, 1600);
    assert_eq!(took, limit);
    closed(&fake, &["AddAnyPortMapping"]).await;
    assert!(fake.table().is_empty());
}

#[tokio::test(start_paused = true)]
async fn time_limit_holds_when_nothing_answers() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let limit = Duration::from_millis(3600);
    let igd = connect(&fake, &http(limit)).await;
    fake.arm(vec![Step::Silent; 8]);
    let start = Instant::now();
    let err = igd.external_ip().await.unwrap_err();
    let took = start.elapsed();
    assert_timeout(&err, 3600);
    assert_eq!(took, limit);
    // Copies at 0, 500, … 2500 ms (six at most: none at 3000 ms although
    // the limit leaves room), all closed at the limit.
    closed(&fake, &["GetExternalIPAddress"; 6]).await;

    // natkit's own actions likewise; a shorter limit cuts the copies short.
    let igd = connect(&fake, &http(Duration::from_millis(1600))).await;
    fake.arm(vec![Step::Silent; 8]);
    let err = igd.status().await.unwrap_err();
    assert_timeout(&err, 1600);
    // At 0, 500, 1000 and 1500 ms.
    assert_eq!(fake.all_closed().await.len(), 4);
}

/// Under loss one answer may come late because its copy waited out a lost
/// segment: that one answer is not the router's pace. The next request of
/// the same kind, unanswered, is still hedged at the floor, not four times
/// later (which would leave it one copy within its limit).
#[tokio::test(start_paused = true)]
async fn one_slow_answer_does_not_hold_back_the_next_copies() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let igd = connect(&fake, &http(Duration::from_secs(3))).await;
    fake.arm(vec![Step::AnswerAfter(Duration::from_millis(450))]);
    igd.external_ip().await.unwrap();
    closed(&fake, &["GetExternalIPAddress"]).await;

    fake.arm(vec![Step::Silent]);
    let start = Instant::now();
    igd.external_ip().await.unwrap();
    assert_eq!(start.elapsed(), HEDGE);
    closed(&fake, &["GetExternalIPAddress"; 2]).await;
}

#[tokio::test(start_paused = true)]
async fn hedging_off_sends_one_copy() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let config = HttpConfig {
        hedge_after: None,
        ..http(Duration::from_millis(1200))
    };
    let igd = connect(&fake, &config).await;
    fake.arm(vec![Step::Silent; 4]);
    assert!(igd.external_ip().await.is_err());
    assert_eq!(fake.all_closed().await.len(), 1);
}

/// A router that answers 718 to a client re-adding its own mapping.
fn readd_718() -> Behaviour {
    Behaviour {
        conflict_on_readd: true,
        ..Behaviour::default()
    }
}

/// A hedged AddPortMapping and the read-back of the grant.
const ADD_TWICE_AND_READ_BACK: [&str; 3] = [
    "AddPortMapping",
    "AddPortMapping",
    "GetSpecificPortMappingEntry",
];

/// On a [`readd_718`] router the first copy made the mapping and its answer
/// was lost; the hedge got 718.
#[tokio::test(start_paused = true)]
async fn add_whose_duplicate_got_718_is_confirmed_ours() {
    let fake = FakeIgd::start(readd_718()).await;
    let limit = Duration::from_millis(1600);
    let igd = connect(&fake, &http(limit)).await;
    fake.arm(vec![Step::ProcessSilently, Step::Answer]);
    let start = Instant::now();
    let grant = igd.add_port_mapping(&request(6100)).await.unwrap();
    // The 718 was held back until the first copy's time ran out.
    assert_eq!(start.elapsed(), limit);
    assert_eq!(grant.external_port, 6100);
    let back = grant.read_back.expect("read back");
    assert_eq!(back.internal_client, "127.0.0.1");
    assert_eq!(back.description, "natkit 127.0.0.1 hedge");
    assert_eq!(fake.table().len(), 1);
    closed(&fake, &ADD_TWICE_AND_READ_BACK).await;
    // Sent once, the same 718 is this router refusing to renew in place:
    // a conflict (naming ourselves), not a grant.
    let once = connect(
        &fake,
        &HttpConfig {
            hedge_after: None,
            ..http(limit)
        },
    )
    .await;
    fake.arm(vec![]);
    let err = once.add_port_mapping(&request(6100)).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { holder: Some(h), .. } if h.internal_client == "127.0.0.1"),
        "{err:?}"
    );
}

/// Same router; this time the first copy's answer is only late: its success
/// is taken over the duplicate's earlier 718, without waiting for the limit.
#[tokio::test(start_paused = true)]
async fn add_success_is_preferred_to_the_duplicates_718() {
    let fake = FakeIgd::start(readd_718()).await;
    let igd = connect(&fake, &http(Duration::from_secs(3))).await;
    fake.arm(vec![Step::AnswerAfter(Duration::from_millis(900))]);
    let start = Instant::now();
    let grant = igd.add_port_mapping(&request(6200)).await.unwrap();
    let took = start.elapsed();
    // The 718 came at 500 ms; the success at 900 ms was waited for.
    assert_eq!(took, Duration::from_millis(900));
    assert_eq!(grant.external_port, 6200);
    let conns = closed(&fake, &ADD_TWICE_AND_READ_BACK).await;
    assert!(conns.iter().all(|c| c.answered));
}

/// A real conflict stays one, hedged or not.
#[tokio::test(start_paused = true)]
async fn hedged_add_against_another_holder_is_a_conflict() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    fake.insert(Row::new(6300, "TCP", "192.168.77.9", "someone else"));
    let igd = connect(&fake, &http(Duration::from_millis(1600))).await;
    fake.arm(vec![Step::Silent, Step::Answer]);
    let err = igd.add_port_mapping(&request(6300)).await.unwrap_err();
    let Error::Conflict {
        holder: Some(holder),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(holder.internal_client, "192.168.77.9");
    assert_eq!(fake.table().len(), 1);
}

/// The first DeletePortMapping deleted the entry and its answer was lost;
/// the hedge's 714 means it is gone, which is what was asked.
#[tokio::test(start_paused = true)]
async fn delete_whose_duplicate_got_714_is_done() {
    let fake = FakeIgd::start(Behaviour::default()).await;
    let igd = connect(&fake, &http(Duration::from_millis(1600))).await;
    igd.add_port_mapping(&request(6400)).await.unwrap();
    fake.arm(vec![Step::ProcessSilently, Step::Answer]);
    igd.delete(Protocol::Tcp, 6400).await.unwrap();
    assert!(fake.table().is_empty());
    assert_eq!(
        actions(&fake.all_closed().await),
        ["DeletePortMapping", "DeletePortMapping"]
    );
    // Unhedged, a delete of an entry that is gone is still 714.
    fake.arm(vec![]);
    let err = igd.delete(Protocol::Tcp, 6400).await.unwrap_err();
    assert_eq!(err.upnp_code(), Some(UpnpErrorCode::NoSuchEntryInArray));
}
