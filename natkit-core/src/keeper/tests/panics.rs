//! Keeper tasks that panic (a bug of this host's): told as
//! [`FailureKind::Local`] with the [`JoinError`] kept, never a hang, never
//! silence, never the router's fault.

use super::*;
use tokio::task::JoinError;

fn panicked(e: &Error) -> bool {
    e.failure_kind() == Some(FailureKind::Local)
        && e.downcast_source::<JoinError>()
            .is_some_and(JoinError::is_panic)
}

/// A mapper whose map, renew or unmap panics fails that one request; the
/// keeper goes on with the others and retries a renewal as after any
/// failure.
#[tokio::test(start_paused = true)]
async fn a_mapper_that_panics_fails_that_request_and_the_keeper_goes_on() {
    let t0 = Instant::now();
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, mut events) = keeper(&router);
    router.with(|s| s.panic_on = Some("map"));
    let e = keeper.add(request(5000, 7200)).await.expect_err("panicked");
    assert!(panicked(&e), "{e}");
    assert!(!e.is_retryable());

    router.with(|s| s.panic_on = Some("renew"));
    let (id, _) = keeper.add(request(5001, 7200)).await.expect("mapped");
    drain(&mut events);
    advance_to(t0, 60).await;
    let retry_in = match &drain(&mut events)[..] {
        [
            KeeperEvent::RenewFailed {
                id: i,
                error,
                retry_in,
            },
        ] if *i == id && panicked(error) => *retry_in,
        other => panic!("one failed renewal: {other:?}"),
    };
    router.with(|s| s.panic_on = None);
    advance_to(t0 + retry_in, 60).await;
    assert!(
        matches!(&drain(&mut events)[..], [KeeperEvent::Renewed { id: i, .. }] if *i == id),
        "renewed at the retry"
    );

    router.with(|s| s.panic_on = Some("unmap"));
    let report = keeper.shutdown().await;
    assert!(report.released.is_empty());
    assert!(!report.all_released());
    match &report.failed[..] {
        [(i, e)] if *i == id => assert!(panicked(e), "{e}"),
        other => panic!("one failed deletion: {other:?}"),
    }
}

/// The keeper's own task panicking: the request that finds it gone hears
/// of the panic, later ones that the keeper is closed, and shutdown says
/// nothing was deleted instead of an empty report.
#[tokio::test(start_paused = true)]
async fn a_keeper_task_that_panics_is_told_and_shutdown_says_nothing_was_deleted() {
    let router = FakeRouter::new(Duration::from_secs(120));
    let (keeper, _events) = keeper(&router);
    keeper.add(request(5000, 7200)).await.expect("mapped");
    let e = keeper
        .ask(|_: oneshot::Sender<()>| Command::Crash)
        .await
        .expect_err("crashed");
    assert!(panicked(&e), "{e}");
    assert!(matches!(
        keeper.add(request(5001, 7200)).await,
        Err(Error::KeeperClosed)
    ));
    let report = keeper.shutdown().await;
    assert!(!report.all_released());
    assert!(matches!(report.task_failed, Some(Error::KeeperClosed)));
    assert!(report.released.is_empty() && report.failed.is_empty());
    // Nothing deleted it: the mapping stays on the router until its lease ends.
    assert_eq!(router.calls("unmap").len(), 0);
}
