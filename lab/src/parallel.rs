//! Independent lab checks run side by side, each in its own lab.

use std::thread;

/// Runs every job on its own thread, all at once, and returns their results in the
/// jobs' order. Every job runs to its end even when others fail.
///
/// # Panics
/// When any job panicked, with every failed job's name and message, so one run of
/// the test shows all the topologies that failed, not only the first.
pub fn all_at_once<T, F>(jobs: Vec<(String, F)>) -> Vec<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|(name, job)| (name, thread::spawn(job)))
        .collect();
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for (name, handle) in handles {
        match handle.join() {
            Ok(t) => done.push(t),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("{name}: {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    done
}
