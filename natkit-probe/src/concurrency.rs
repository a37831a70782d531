//! How many probes may be in flight: a ceiling from the file-descriptor
//! budget, cut when the system runs out of descriptors or ports, grown back
//! slowly (additive increase, multiplicative decrease, as TCP does with its
//! congestion window).

/// The in-flight limit and its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    max: usize,
    limit: usize,
    credit: usize,
    epoch: u64,
    cuts: u32,
}

impl Concurrency {
    /// Starts at `max` (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Concurrency {
            max,
            limit: max,
            credit: 0,
            epoch: 0,
            cuts: 0,
        }
    }

    /// How many probes may be in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The ceiling the limit grows back to.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether one more probe may start while `in_flight` are running.
    pub fn allows(&self, in_flight: usize) -> bool {
        in_flight < self.limit
    }

    /// The current epoch; a probe remembers the epoch it started in so that
    /// a burst of failures from one overshoot cuts the limit only once.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many times the limit was cut.
    pub fn cuts(&self) -> u32 {
        self.cuts
    }

    /// A probe started in `started_epoch` could not get a descriptor (or a
    /// local port) while `in_flight` others were running. Halves the limit
    /// to what was running, once per epoch; returns the new limit if it
    /// changed.
    pub fn on_exhausted(&mut self, started_epoch: u64, in_flight: usize) -> Option<usize> {
        if started_epoch != self.epoch {
            return None;
        }
        let new = (in_flight / 2).max(1);
        if new >= self.limit {
            return None;
        }
        self.limit = new;
        self.credit = 0;
        self.epoch += 1;
        self.cuts += 1;
        Some(new)
    }

    /// A probe ended without running out of resources: after every
    /// `limit / 4` of these (at least one) the limit grows by one, up to `max`.
    pub fn on_completed(&mut self) {
        if self.limit >= self.max {
            return;
        }
        self.credit += 1;
        if self.credit >= (self.limit / 4).max(1) {
            self.limit += 1;
            self.credit = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_max_and_allows_up_to_it() {
        let c = Concurrency::new(3);
        assert_eq!(c.limit(), 3);
        assert!(c.allows(2));
        assert!(!c.allows(3));
        assert_eq!(Concurrency::new(0).limit(), 1);
    }

    #[test]
    fn exhaustion_halves_once_per_epoch() {
        let mut c = Concurrency::new(1000);
        let e = c.epoch();
        assert_eq!(c.on_exhausted(e, 600), Some(300));
        // More failures from probes started before the cut are the same
        // overshoot: no second cut.
        assert_eq!(c.on_exhausted(e, 599), None);
        assert_eq!(c.limit(), 300);
        // A failure in the new epoch cuts again.
        assert_eq!(c.on_exhausted(c.epoch(), 300), Some(150));
        assert_eq!(c.cuts(), 2);
    }

    #[test]
    fn never_below_one() {
        let mut c = Concurrency::new(8);
        for _ in 0..10 {
            c.on_exhausted(c.epoch(), 0);
        }
        assert_eq!(c.limit(), 1);
        assert!(c.allows(0));
        // Already at one: nothing to cut.
        assert_eq!(c.on_exhausted(c.epoch(), 0), None);
    }

    #[test]
    fn grows_back_additively_to_max_and_no_further() {
        let mut c = Concurrency::new(40);
        c.on_exhausted(0, 20);
        assert_eq!(c.limit(), 10);
        let mut completions = 0;
        while c.limit() < 40 {
            let before = c.limit();
            c.on_completed();
            completions += 1;
            assert!(c.limit() - before <= 1);
        }
        // Sum of max(1, L/4) for L = 10..40: the slow way back.
        let expected: usize = (10..40).map(|l: usize| (l / 4).max(1)).sum();
        assert_eq!(completions, expected);
        for _ in 0..100 {
            c.on_completed();
        }
        assert_eq!(c.limit(), 40);
    }
}
