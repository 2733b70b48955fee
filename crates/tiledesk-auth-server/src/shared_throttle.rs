//! Failed-login counters shared by every replica, in Redis (`serve --throttle redis://...`).
//!
//! Each replica keeps its own [`crate::LoginThrottle`] (and its copy of the failures it saw); with Redis, an
//! attempt must also find room in shared counters before its password is checked, so a guesser spreading over N
//! replicas gets the budget of one, not N. Each thing counted (an account from an address, an address, an
//! account, a known browser) has two counters: its failures, expiring `window` after the first, and its attempts
//! under way, on every replica. An attempt starts only when, for every one of its things, failures plus attempts
//! under way are below the limit: the same rule as on one replica, so 40 guesses sent at once to two replicas
//! reach the password check 5 times in all, and a visitor's simultaneous right logins wait for each other instead
//! of being refused. Checking and counting are one Lua script, atomic for all replicas (no read-modify-write
//! race); so is settling (under way minus one, and a failure plus one, or the failures of that account from that
//! address cleared on a success).
//!
//! **When Redis is down** (refused, or no answer within [`REDIS_WAIT`]), logins go on under each replica's own
//! throttle, the same limits counted per replica: a guesser gets at most N budgets at once until Redis is back,
//! never an unlimited number. The change is logged once each way. `/tokens` does not use Redis at all. Counters
//! are named after the project and a hash of what they count (no email in Redis). A replica that dies with
//! attempts under way leaves them counted for [`IN_FLIGHT_TTL`] at most.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

/// How long a replica waits for Redis before counting on its own for this attempt.
pub const REDIS_WAIT: Duration = Duration::from_millis(500);

/// How long an attempt under way stays counted if its replica dies before settling it (longer than any password
/// check: the hashing queue's wait plus the hash).
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);

/// KEYS: per thing counted, its failures key then its under-way key. ARGV: the window (ms), the under-way expiry
/// (ms), then each thing's limit. Returns 0 (counted as under way), -1 (attempts under way hold the rest of a
/// budget: wait) or the milliseconds until a spent budget frees up.
const RESERVE: &str = r"
local busy = false
for i = 1, #KEYS / 2 do
  local limit = tonumber(ARGV[i + 2])
  local failures = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  if failures >= limit then
    local ttl = redis.call('PTTL', KEYS[2 * i - 1])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    return math.max(ttl, 1)
  end
  local under_way = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if failures + under_way >= limit then
    busy = true
  end
end
if busy then
  return -1
end
for i = 1, #KEYS / 2 do
  redis.call('INCR', KEYS[2 * i])
  redis.call('PEXPIRE', KEYS[2 * i], ARGV[2])
end
return 0
";

/// KEYS as for RESERVE. ARGV: the window (ms), then per thing `fail` (one more failure), `clear` (its failures
/// forgotten) or `back` (nothing to count). Every thing's under-way count goes down by one, never below zero.
const SETTLE: &str = r"
for i = 1, #KEYS / 2 do
  local under_way = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  if under_way > 0 then
    redis.call('DECR', KEYS[2 * i])
  end
  local action = ARGV[i + 1]
  if action == 'fail' then
    if redis.call('INCR', KEYS[2 * i - 1]) == 1 then
      redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[1])
    end
  elseif action == 'clear' then
    redis.call('DEL', KEYS[2 * i - 1])
  end
end
return 0
";

/// The scripts, hashed once (Redis runs them by their SHA-1, sending the text only when it does not know it).
static RESERVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RESERVE));
static SETTLE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SETTLE));

/// The counters in Redis. Cheap to clone.
#[derive(Clone)]
pub struct SharedCounts {
    connection: ConnectionManager,
    prefix: String,
    url: String,
    down: std::sync::Arc<AtomicBool>,
}

impl std::fmt::Debug for SharedCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCounts")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why `--throttle` was refused.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Not a Redis URL.
    #[error("--throttle must be redis://[:PASSWORD@]HOST[:PORT][/DB] (or rediss:// for TLS), not {0}")]
    BadUrl(String),
}

/// What the shared counters said about an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Counted as under way everywhere.
    Taken,
    /// Attempts under way (on any replica) hold what is left of a budget: wait for them.
    Busy,
    /// Failures spent a budget: refuse, with when to try again.
    Blocked(Duration),
    /// Redis did not answer: count on this replica only.
    Unavailable,
}

/// What an attempt's end does to a thing's failures.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Settle {
    /// One more.
    Fail,
    /// Forgotten (a success on that account from that address, or that browser).
    Clear,
    /// Nothing (a success elsewhere, or an attempt that could not be judged).
    Back,
}

impl SharedCounts {
    /// Counters for `project` in the Redis at `url`. Connects lazily: a Redis down at start-up is an outage like
    /// any other, not a reason to refuse to serve.
    pub fn new(url: &str, project: &str) -> Result<Self, SharedError> {
        let shown = crate::users::redacted(url);
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(SharedError::BadUrl(shown));
        }
        let client = redis::Client::open(url).map_err(|_| SharedError::BadUrl(shown.clone()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_WAIT))
            .set_response_timeout(Some(REDIS_WAIT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|_| SharedError::BadUrl(shown.clone()))?;
        Ok(Self {
            connection,
            prefix: format!("tiledesk-auth:{project}"),
            url: shown,
            down: std::sync::Arc::new(AtomicBool::new(false)),
        })
    }

    /// The URL, password left out.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The Redis name of a thing counted: the project, the kind, and a hash of what is counted. Its two counters
    /// are this name with `:failures` and `:under-way`.
    pub(crate) fn key(&self, kind: &str, what: &str) -> String {
        let digest = Sha256::digest(what.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:{kind}:{hex}", self.prefix)
    }

    fn both(invocation: &mut redis::ScriptInvocation<'_>, key: &str) {
        invocation
            .key(format!("{key}:failures"))
            .key(format!("{key}:under-way"));
    }

    /// Counts an attempt on `things` (name, limit) as under way, if every one has room.
    pub(crate) async fn reserve(&self, things: &[(String, usize)], window: Duration) -> Reserved {
        let mut invocation = RESERVE_SCRIPT.prepare_invoke();
        invocation.arg(millis(window)).arg(millis(IN_FLIGHT_TTL));
        for (key, limit) in things {
            Self::both(&mut invocation, key);
            invocation.arg(*limit);
        }
        match self.run(&invocation).await.map(u64::try_from) {
            None => Reserved::Unavailable,
            Some(Ok(0)) => Reserved::Taken,
            Some(Ok(wait_ms)) => {
                Reserved::Blocked(Duration::from_millis(wait_ms).max(Duration::from_secs(1)))
            }
            Some(Err(_)) => Reserved::Busy,
        }
    }

    /// Settles an attempt counted by [`SharedCounts::reserve`]. Redis down: its under-way count expires on its own
    /// (a visitor may wait until then, never a guesser get more).
    pub(crate) async fn settle(&self, things: Vec<(String, Settle)>, window: Duration) {
        let mut invocation = SETTLE_SCRIPT.prepare_invoke();
        invocation.arg(millis(window));
        for (key, settle) in &things {
            Self::both(&mut invocation, key);
            invocation.arg(match settle {
                Settle::Fail => "fail",
                Settle::Clear => "clear",
                Settle::Back => "back",
            });
        }
        self.run(&invocation).await;
    }

    /// Runs a script within [`REDIS_WAIT`]: its answer, or `None` (and Redis marked down) when there is none.
    async fn run(&self, invocation: &redis::ScriptInvocation<'_>) -> Option<i64> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(REDIS_WAIT, invocation.invoke_async::<i64>(&mut connection)).await {
            Ok(Ok(answer)) => {
                self.reachable();
                Some(answer)
            }
            Ok(Err(err)) => {
                self.unreachable(&err.to_string());
                None
            }
            Err(_) => {
                self.unreachable("no answer in time");
                None
            }
        }
    }

    /// Whether Redis answers a `PING` (for `serve --check`).
    pub async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        match tokio::time::timeout(
            REDIS_WAIT * 4,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err("no answer in time".to_owned()),
        }
    }

    fn reachable(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::warn!(throttle = %self.url, "Redis answers again: failed logins are counted across replicas again");
        }
    }

    fn unreachable(&self, why: &str) {
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::error!(
                throttle = %self.url,
                error = why,
                "Redis does not answer: failed logins are counted on this replica only until it does"
            );
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tiledesk_test_support::Redis;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_from_many_replicas_never_pass_the_limit() {
        let redis = Redis::start();
        // Sixteen "replicas", each with its own connection (opened first), 400 attempts released at once on one
        // counter with room for 5.
        let replicas: Vec<SharedCounts> = (0..16)
            .map(|_| SharedCounts::new(&redis.url(), "p").unwrap())
            .collect();
        for shared in &replicas {
            shared.ping().await.unwrap();
        }
        let key = replicas[0].key("account", "ada@example.com");
        let start = Arc::new(tokio::sync::Barrier::new(400));
        let attempts: Vec<_> = (0..400)
            .map(|i| {
                let shared = replicas[i % 16].clone();
                let (key, start) = (key.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    shared.reserve(&[(key, 5)], Duration::from_secs(60)).await
                })
            })
            .collect();
        let mut taken = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Reserved::Taken => taken += 1,
                Reserved::Busy => {}
                Reserved::Blocked(wait) => {
                    assert!(wait <= Duration::from_secs(60) && wait >= Duration::from_secs(1));
                }
                Reserved::Unavailable => panic!("Redis is up"),
            }
        }
        assert_eq!(taken, 5);
    }

    #[tokio::test]
    async fn failures_block_attempts_under_way_make_wait_and_settling_counts_or_clears() {
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let (pair, account) = (shared.key("account-address", "a 1"), shared.key("account", "a"));
        let window = Duration::from_secs(60);
        let both =
            |limit_pair, limit_account| vec![(pair.clone(), limit_pair), (account.clone(), limit_account)];
        assert_eq!(shared.reserve(&both(2, 2), window).await, Reserved::Taken);
        assert_eq!(shared.reserve(&both(2, 2), window).await, Reserved::Taken);
        // Two under way hold the budget of 2: wait, nothing counted.
        assert_eq!(shared.reserve(&both(2, 2), window).await, Reserved::Busy);
        // One fails, one is given back: one failure, nothing under way.
        shared
            .settle(
                vec![(pair.clone(), Settle::Fail), (account.clone(), Settle::Fail)],
                window,
            )
            .await;
        shared
            .settle(
                vec![(pair.clone(), Settle::Back), (account.clone(), Settle::Back)],
                window,
            )
            .await;
        assert_eq!(shared.reserve(&both(2, 2), window).await, Reserved::Taken);
        shared
            .settle(
                vec![(pair.clone(), Settle::Fail), (account.clone(), Settle::Fail)],
                window,
            )
            .await;
        // Two failures: blocked for about the window, for that pair and for anything on that account.
        let Reserved::Blocked(wait) = shared.reserve(&both(2, 5), window).await else {
            panic!("not blocked")
        };
        assert!(wait > Duration::from_secs(55) && wait <= window, "{wait:?}");
        assert!(matches!(
            shared.reserve(&both(5, 2), window).await,
            Reserved::Blocked(_)
        ));
        // A blocked attempt counted nothing: with more room, one goes; its success clears the pair's failures only.
        assert_eq!(shared.reserve(&both(5, 5), window).await, Reserved::Taken);
        shared
            .settle(
                vec![(pair.clone(), Settle::Clear), (account.clone(), Settle::Back)],
                window,
            )
            .await;
        assert_eq!(
            shared.reserve(&[(pair.clone(), 1)], window).await,
            Reserved::Taken
        );
        assert!(matches!(
            shared.reserve(&[(account.clone(), 2)], window).await,
            Reserved::Blocked(_)
        ));
        // Settling more than was reserved never takes a count below zero.
        shared.settle(vec![(pair.clone(), Settle::Back)], window).await;
        shared.settle(vec![(pair.clone(), Settle::Back)], window).await;
        assert_eq!(
            shared.reserve(&[(pair.clone(), 1)], window).await,
            Reserved::Taken
        );
        assert_eq!(shared.reserve(&[(pair, 1)], window).await, Reserved::Busy);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_that_hangs_is_given_500_ms_per_attempt_then_the_replica_counts_alone() {
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let key = shared.key("account", "a");
        let window = Duration::from_secs(60);
        assert_eq!(
            shared.reserve(&[(key.clone(), 100)], window).await,
            Reserved::Taken
        );
        redis.pause();
        // 20 attempts at once on a server that keeps its connections open and never answers: each one gives up
        // after REDIS_WAIT. (The guard only turns a hang into a failure.)
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let (shared, key) = (shared.clone(), key.clone());
                tokio::spawn(async move { shared.reserve(&[(key, 100)], window).await })
            })
            .collect();
        let guard = tokio::time::timeout(Duration::from_secs(30), async {
            let mut answers = Vec::new();
            for attempt in attempts {
                answers.push(attempt.await.unwrap());
            }
            answers
        });
        let answers = guard.await.expect("an attempt hung on a hung Redis");
        assert!(answers.iter().all(|a| *a == Reserved::Unavailable), "{answers:?}");
        redis.resume();
        // Back: counted in Redis again (the manager reconnects if it dropped the connection).
        let mut back = false;
        for _ in 0..20 {
            if shared.reserve(&[(key.clone(), 100)], window).await == Reserved::Taken {
                back = true;
                break;
            }
        }
        assert!(back, "Redis never counted again after it resumed");
    }

    #[tokio::test]
    async fn an_attempt_under_way_expires_after_in_flight_ttl_and_failures_after_the_window() {
        // A replica that dies mid-login never settles: its place must not stay taken.
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let key = shared.key("account", "a");
        let window = Duration::from_secs(60);
        assert_eq!(shared.reserve(&[(key.clone(), 5)], window).await, Reserved::Taken);
        shared.settle(vec![(key.clone(), Settle::Fail)], window).await;
        assert_eq!(shared.reserve(&[(key.clone(), 5)], window).await, Reserved::Taken);
        let ttl = |name: String| {
            let mut connection = shared.connection.clone();
            async move {
                redis::cmd("PTTL")
                    .arg(name)
                    .query_async::<i64>(&mut connection)
                    .await
                    .unwrap()
            }
        };
        let under_way = ttl(format!("{key}:under-way")).await;
        assert!(under_way > 25_000 && under_way <= 30_000, "{under_way} ms");
        let failures = ttl(format!("{key}:failures")).await;
        assert!(failures > 55_000 && failures <= 60_000, "{failures} ms");
    }

    #[tokio::test]
    async fn counters_name_the_project_and_never_the_email() {
        let shared = SharedCounts::new("redis://127.0.0.1:1", "64f0c0ffee0123456789abcd").unwrap();
        let key = shared.key("account", "ada@example.com");
        assert!(
            key.starts_with("tiledesk-auth:64f0c0ffee0123456789abcd:account:"),
            "{key}"
        );
        assert!(!key.contains("ada"), "{key}");
        assert_ne!(key, shared.key("account", "grace@example.com"));
        // Redis unreachable: the attempt is counted on the replica alone, quickly.
        assert_eq!(
            shared.reserve(&[(key, 5)], Duration::from_secs(60)).await,
            Reserved::Unavailable
        );
    }

    #[tokio::test]
    async fn a_tls_url_is_taken_and_a_failed_handshake_is_an_outage_not_a_panic() {
        // A plain Redis spoken to over TLS: the handshake fails, and the replica counts on its own.
        let redis = Redis::start();
        let shared = SharedCounts::new(&format!("rediss://127.0.0.1:{}", redis.port), "p").unwrap();
        let key = shared.key("account", "a");
        assert_eq!(
            shared.reserve(&[(key, 5)], Duration::from_secs(60)).await,
            Reserved::Unavailable
        );
        assert!(shared.ping().await.is_err());
    }

    #[test]
    fn a_throttle_url_that_is_not_redis_is_refused_without_its_password() {
        let err = SharedCounts::new("http://user:s3cret@cache:6379", "p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis://") && !err.contains("s3cret"), "{err}");
    }
}
