//! Binding lifetime discovery (RFC 5780): how long a NAT keeps an idle UDP mapping.
//!
//! The RFC's procedure: a request from socket X creates a binding (public port `Pp`);
//! after an idle time T a request from another socket Y, to the same server address,
//! carries RESPONSE-PORT = `Pp`, so the server answers to the NAT's public address at
//! `Pp` from the address X talked to. The answer reaches X only while X's binding
//! lives (and the reply lets it live on, so a binding that answered cannot be probed
//! again with a longer T). The RFC searches T one binding at a time; here every step
//! gets its own fresh X (and Y) at once and is probed once, at its own T, so the
//! whole search takes the caller's maximum, not a sum of waits:
//!
//! - `steps` bindings made together, probed at `max × i / steps` (i = 1 … steps);
//! - a control binding probed at once (T ≈ 0): its answer proves the server honours
//!   RESPONSE-PORT and the path works; without it nothing is concluded;
//! - the answer is a bracket: alive after `at_least`, gone after `less_than`.
//!
//! Y's request goes to the server's other address with CHANGE-REQUEST (change IP and
//! port), so that the answer still comes from the address X talked to while Y itself
//! never sends there: a NAT that keeps its filter per host would otherwise count Y's
//! request as this host contacting that address again and let the answer in after
//! X's own filter entry had lapsed.
//!
//! A probe that is not answered is sent several times (the no-answer plan of the
//! filtering tests). Binding lifetimes are not monotone under packet loss, so a probe
//! that went unanswered at a *shorter* T than one that was answered makes the result
//! inconclusive (the bracket keeps only the positive evidence).

use std::net::SocketAddr;
use std::time::Duration;

use crate::Error;

/// The most steps (bindings, two sockets each) of one lifetime search.
pub const MAX_LIFETIME_STEPS: u8 = 32;
/// The longest lifetime that can be asked for.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// How the binding lifetime is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifetimeConfig {
    /// The longest idle time probed; the search takes about this long.
    pub max: Duration,
    /// How many idle times are probed, evenly spaced up to [`max`](Self::max): the
    /// answer is known to within `max / steps`.
    pub steps: u8,
}

impl LifetimeConfig {
    /// Probes idle times up to `max` in 10 steps.
    pub fn new(max: Duration) -> Self {
        LifetimeConfig { max, steps: 10 }
    }

    /// Checks the bounds: `max` between 1 s and an hour, 1 to
    /// [`MAX_LIFETIME_STEPS`] steps.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.max < Duration::from_secs(1) || self.max > MAX_LIFETIME {
            return invalid("the binding lifetime maximum must be between 1 s and 1 hour");
        }
        if self.steps == 0 || self.steps > MAX_LIFETIME_STEPS {
            return invalid("binding lifetime steps must be between 1 and 32");
        }
        Ok(())
    }

    /// The idle times probed, shortest first.
    pub fn idle_times(&self) -> Vec<Duration> {
        let steps = u32::from(self.steps);
        (1..=steps).map(|i| self.max * i / steps).collect()
    }
}

/// One probe of a binding after an idle time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LifetimeStep {
    /// How long the binding was idle when probed (zero for the control).
    pub idle: Duration,
    /// The binding's local socket (X).
    pub local: Option<SocketAddr>,
    /// Its public address, from the request that made it.
    pub mapped: Option<SocketAddr>,
    /// Whether the server's answer to the RESPONSE-PORT request reached X; `None` if
    /// the binding could not be made (its first request went unanswered).
    pub alive: Option<bool>,
    /// Whether an answer came to the sending socket (Y) instead: the server ignored
    /// RESPONSE-PORT.
    pub answered_to_sender: bool,
}

/// What the binding lifetime search found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BindingLifetime {
    /// The longest idle time after which the binding still let the server's answer in
    /// (`None`: no probe was answered).
    pub at_least: Option<Duration>,
    /// The shortest idle time, above `at_least`, after which it did not (`None`: it was
    /// alive at every probe, up to `max`).
    pub less_than: Option<Duration>,
    /// The longest idle time probed.
    pub max: Duration,
    /// Whether the bracket is backed by a working control and consistent probes.
    pub conclusive: bool,
    /// The server probed (its primary address).
    pub server: SocketAddr,
    /// The control step (idle ≈ 0) and every other step, shortest idle first.
    pub steps: Vec<LifetimeStep>,
    /// Why it is inconclusive, if it is.
    pub notes: Vec<String>,
}

/// Decides the bracket from the control and the steps (shortest idle first).
// Sans-IO like the plan; only the tokio runner drives it today.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) fn decide(
    server: SocketAddr,
    max: Duration,
    control: LifetimeStep,
    steps: Vec<LifetimeStep>,
) -> BindingLifetime {
    let mut notes = Vec::new();
    let control_ok = control.alive == Some(true);
    if !control_ok {
        notes.push(if control.answered_to_sender {
            "the server answered the RESPONSE-PORT request to its sender: it ignores \
             RESPONSE-PORT, so binding lifetimes cannot be measured with it"
                .to_owned()
        } else {
            "the control (a RESPONSE-PORT request at once after making the binding) got no \
             answer: the server does not honour RESPONSE-PORT, or packets were lost"
                .to_owned()
        });
    }
    let at_least = steps
        .iter()
        .filter(|p| p.alive == Some(true))
        .map(|p| p.idle)
        .max();
    let less_than = steps
        .iter()
        .filter(|p| p.alive == Some(false) && at_least.is_none_or(|a| p.idle > a))
        .map(|p| p.idle)
        .min();
    let contradicted = steps
        .iter()
        .filter(|p| p.alive == Some(false) && at_least.is_some_and(|a| p.idle < a))
        .map(|p| p.idle)
        .min();
    if let (Some(dead), Some(alive)) = (contradicted, at_least) {
        notes.push(format!(
            "the binding let no answer in after {dead:?} idle but did after {alive:?}: \
             packet loss, or a NAT that drops bindings under load"
        ));
    }
    if steps.iter().any(|p| p.alive.is_none()) {
        notes.push("some bindings could not be made (their first request went unanswered)".into());
    }
    let conclusive = control_ok
        && contradicted.is_none()
        && steps.iter().all(|p| p.alive.is_some())
        && (at_least.is_some() || less_than.is_some());
    let mut all = Vec::with_capacity(steps.len() + 1);
    all.push(control);
    all.extend(steps);
    BindingLifetime {
        at_least: if control_ok { at_least } else { None },
        less_than: if control_ok { less_than } else { None },
        max,
        conclusive,
        server,
        steps: all,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(idle_s: u64, alive: Option<bool>) -> LifetimeStep {
        LifetimeStep {
            idle: Duration::from_secs(idle_s),
            local: None,
            mapped: None,
            alive,
            answered_to_sender: false,
        }
    }

    fn server() -> SocketAddr {
        "192.0.2.1:3478".parse().expect("addr")
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn idle_times_are_evenly_spaced_up_to_max() {
        let c = LifetimeConfig {
            max: S(10),
            steps: 5,
        };
        assert_eq!(c.idle_times(), [2, 4, 6, 8, 10].map(S).to_vec());
        assert_eq!(c.validate(), Ok(()));
        assert!(
            LifetimeConfig {
                max: S(10),
                steps: 0
            }
            .validate()
            .is_err()
        );
        assert!(
            LifetimeConfig {
                max: S(10),
                steps: 33
            }
            .validate()
            .is_err()
        );
        assert!(
            LifetimeConfig::new(Duration::from_millis(10))
                .validate()
                .is_err()
        );
        assert!(LifetimeConfig::new(S(7200)).validate().is_err());
    }

    #[test]
    fn the_bracket_is_between_the_last_answer_and_the_first_silence() {
        let steps = vec![
            step(2, Some(true)),
            step(4, Some(true)),
            step(6, Some(false)),
            step(8, Some(false)),
        ];
        let l = decide(server(), S(8), step(0, Some(true)), steps);
        assert_eq!((l.at_least, l.less_than), (Some(S(4)), Some(S(6))));
        assert!(l.conclusive, "{l:?}");
        assert!(l.notes.is_empty());
        assert_eq!(l.steps.len(), 5);

        let all_alive = vec![step(2, Some(true)), step(4, Some(true))];
        let l = decide(server(), S(4), step(0, Some(true)), all_alive);
        assert_eq!((l.at_least, l.less_than), (Some(S(4)), None));
        assert!(l.conclusive);

        let all_dead = vec![step(2, Some(false)), step(4, Some(false))];
        let l = decide(server(), S(4), step(0, Some(true)), all_dead);
        assert_eq!((l.at_least, l.less_than), (None, Some(S(2))));
        assert!(l.conclusive);
    }

    #[test]
    fn no_conclusion_without_a_control_or_with_contradictions() {
        let steps = vec![step(2, Some(false)), step(4, Some(false))];
        let l = decide(server(), S(4), step(0, Some(false)), steps);
        assert!(!l.conclusive);
        assert_eq!((l.at_least, l.less_than), (None, None));
        assert!(l.notes[0].contains("RESPONSE-PORT"));

        let mut ignored = step(0, Some(false));
        ignored.answered_to_sender = true;
        let l = decide(server(), S(4), ignored, vec![step(2, Some(true))]);
        assert!(!l.conclusive);
        assert!(l.notes[0].contains("ignores"));

        // Silence at 2 s but an answer at 4 s: loss, not a lifetime.
        let steps = vec![
            step(2, Some(false)),
            step(4, Some(true)),
            step(6, Some(false)),
        ];
        let l = decide(server(), S(6), step(0, Some(true)), steps);
        assert!(!l.conclusive);
        assert_eq!((l.at_least, l.less_than), (Some(S(4)), Some(S(6))));

        let steps = vec![step(2, None), step(4, Some(false))];
        let l = decide(server(), S(4), step(0, Some(true)), steps);
        assert!(!l.conclusive);
    }
}
