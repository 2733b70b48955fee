//! Log lines for refusals anyone can cause at will (wrong API keys, throttled logins, a busy hasher, connection
//! caps) are sampled: of each kind, the first in every second is written, saying how many of that kind were left
//! out since the last one. A flood of 64 000 wrong keys a second used to write a line each (31 MiB in 5 s).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How often a line of one kind may be written.
const EVERY: Duration = Duration::from_secs(1);

/// Per kind: when its last line was written, and how many were left out since.
#[derive(Default)]
pub(crate) struct Sampler(Mutex<HashMap<&'static str, (Instant, u64)>>);

impl Sampler {
    /// `Some(left out since the last line)` when a line of this kind may be written at `now`; `None` to leave it
    /// out.
    pub(crate) fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kinds.get_mut(kind) {
            Some((last, left_out)) if now.saturating_duration_since(*last) < EVERY => {
                *left_out += 1;
                None
            }
            Some((last, left_out)) => {
                *last = now;
                Some(std::mem::take(left_out))
            }
            None => {
                kinds.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

static SAMPLER: LazyLock<Sampler> = LazyLock::new(Sampler::default);

/// Logs a refusal of `kind` (a fixed sentence) of a request from `address`, sampled (see above).
pub(crate) fn refused(kind: &'static str, address: IpAddr) {
    if let Some(left_out) = SAMPLER.admit(kind, Instant::now()) {
        tracing::warn!(%address, left_out, "{kind}");
    }
}

/// Logs a failure of `kind` (a fixed sentence) with what caused it, sampled like [`refused`]: a visitor can cause
/// these at will too (a session bridge whose site is down fails for every sign-in).
pub(crate) fn failed(kind: &'static str, cause: &dyn std::fmt::Display) {
    if let Some(left_out) = SAMPLER.admit(kind, Instant::now()) {
        tracing::warn!(left_out, "{kind}: {cause}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_second_counting_the_rest() {
        let sampler = Sampler::default();
        let start = Instant::now();
        assert_eq!(sampler.admit("wrong key", start), Some(0));
        let within: Vec<_> = (1..=999)
            .map(|ms| sampler.admit("wrong key", start + Duration::from_millis(ms)))
            .collect();
        assert!(
            within.iter().all(Option::is_none),
            "nothing more within the second"
        );
        assert_eq!(
            sampler.admit("throttled", start),
            Some(0),
            "kinds are sampled apart"
        );
        assert_eq!(
            sampler.admit("wrong key", start + Duration::from_secs(1)),
            Some(999),
            "the next line says how many were left out"
        );
        assert_eq!(
            sampler.admit("wrong key", start + Duration::from_secs(3)),
            Some(0)
        );
    }
}
