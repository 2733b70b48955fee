//! Readiness (`GET /readyz`): whether this replica can serve logins now. The user database answers, Redis answers
//! (with `--throttle`), and the identity provider's keys are known (with `--oidc-issuer`); the secret is loaded before
//! the service listens, so it always is when anything answers.
//!
//! Every check has a deadline ([`CHECK_WAIT`]): a database or a Redis that hangs makes the answer `503`, never a
//! hung probe. Checks run at most once per [`CACHED_FOR`], however many probes come (one at a time; the others
//! take its answer), so a flood of probes is not a flood of database queries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::state::AppState;

/// How long one check may take before it counts as failed.
pub const CHECK_WAIT: Duration = Duration::from_secs(2);

/// How long an answer is given again without checking anew.
pub const CACHED_FOR: Duration = Duration::from_secs(1);

/// What the checks found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What is wrong; empty when ready.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether the replica can serve logins.
    pub fn ready(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One failed check: which, and a fixed sentence (the detail goes to the log, never to the caller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `database`, `throttle` (Redis) or `identity_provider`.
    pub check: &'static str,
    /// What is wrong, in words that hold no address, path or password.
    pub error: &'static str,
    /// What the check said, for the log only.
    #[serde(skip)]
    pub detail: String,
}

/// The last report and the check under way; one per service.
#[derive(Debug, Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Arc<Report>)>>,
    /// Held by the one check under way.
    checking: tokio::sync::Mutex<()>,
}

impl Readiness {
    /// The replica's readiness: the last report when it is younger than [`CACHED_FOR`], else a new one.
    pub async fn report(&self, state: &AppState) -> Arc<Report> {
        if let Some(report) = self.fresh() {
            return report;
        }
        let _checking = self.checking.lock().await;
        // Checked by another probe while this one waited.
        if let Some(report) = self.fresh() {
            return report;
        }
        let report = Arc::new(check(state).await);
        let previous = self
            .lock()
            .replace((Instant::now(), Arc::clone(&report)))
            .map(|(_, previous)| previous);
        if previous.as_deref() != Some(&report) {
            if report.ready() {
                tracing::info!(
                    "ready: the database, Redis and the identity provider's keys answer as configured"
                );
            } else {
                for problem in &report.problems {
                    tracing::warn!(check = problem.check, error = %problem.detail, "NOT ready");
                }
            }
        }
        report
    }

    fn fresh(&self) -> Option<Arc<Report>> {
        self.lock()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CACHED_FOR)
            .map(|(_, report)| Arc::clone(report))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Report>)>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs every configured check at once, each within [`CHECK_WAIT`].
async fn check(state: &AppState) -> Report {
    async fn within(
        check: &'static str,
        work: impl Future<Output = Result<(), String>>,
    ) -> Option<(&'static str, String)> {
        match tokio::time::timeout(CHECK_WAIT, work).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some((check, err)),
            Err(_) => Some((check, "no answer in time".to_owned())),
        }
    }
    let database = within("database", async {
        state.users.ping().await.map_err(|err| err.to_string())
    });
    let throttle = within("throttle", async {
        match state.throttle.shared() {
            Some(shared) => shared.ping().await,
            None => Ok(()),
        }
    });
    let identity_provider = within("identity_provider", async {
        match &state.oidc {
            Some(bridge) => bridge.keys_known().await.map(drop).map_err(|err| err.to_string()),
            None => Ok(()),
        }
    });
    let (database, throttle, identity_provider) = tokio::join!(database, throttle, identity_provider);
    let problems = [database, throttle, identity_provider]
        .into_iter()
        .flatten()
        .map(|(check, detail)| Problem {
            check,
            error: match check {
                "database" => "the user database does not answer",
                "throttle" => "Redis (--throttle) does not answer",
                _ => "the identity provider's keys cannot be fetched",
            },
            detail,
        })
        .collect();
    Report { problems }
}
