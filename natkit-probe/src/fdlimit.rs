//! The file-descriptor budget: every probe in flight holds one socket.

/// The process's soft and hard limits on open files (`RLIMIT_NOFILE`), if
/// the platform can tell.
pub fn nofile_limits() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit};
        getrlimit(Resource::RLIMIT_NOFILE).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (what nmap does before
/// a large scan) and returns the new soft limit. Opt-in: the engine never
/// changes process limits by itself.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
        if soft < hard {
            setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        }
        Ok(hard.max(soft))
    }
    #[cfg(not(unix))]
    {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

/// How many descriptors the process has open now (Linux: `/proc/self/fd`;
/// elsewhere unknown, so 0).
pub fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// How many probes may be in flight: the soft limit, minus what is already
/// open, minus `headroom` for the rest of the program; at least 1. `None`
/// when the platform cannot tell its limit.
pub fn descriptor_budget(headroom: usize) -> Option<usize> {
    let (soft, _) = nofile_limits()?;
    Some(budget_from(soft, open_descriptors(), headroom))
}

/// The arithmetic of [`descriptor_budget`].
fn budget_from(soft: u64, open: usize, headroom: usize) -> usize {
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    soft.saturating_sub(open).saturating_sub(headroom).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_headroom_and_never_hits_zero() {
        assert_eq!(budget_from(1024, 10, 64), 950);
        assert_eq!(budget_from(64, 40, 64), 1);
        assert_eq!(budget_from(u64::MAX, 0, 0), usize::MAX);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_reports_limits_and_open_descriptors() {
        let (soft, hard) = nofile_limits().unwrap();
        assert!(soft >= 1 && soft <= hard);
        // stdin/stdout/stderr at least.
        assert!(open_descriptors() >= 3);
        assert!(descriptor_budget(0).unwrap() >= 1);
    }
}
