//! Failed-login counters shared by every replica, in Redis (`serve --throttle redis://...`).
//!
//! Each replica keeps its own [`super::throttle::LoginThrottle`] (and its copy of the failures it saw); with Redis, an
//! attempt must also find room in shared counters before its password is checked, so a guesser spreading over N
//! replicas gets the budget of one, not N. Each thing counted (an account from an address, an address, an
//! account, a known browser) has two sorted sets: its failures, each kept for `window` after it happened (a sliding
//! window, as on one replica), and its attempts under way on every replica, each by its own id and counted for
//! [`IN_FLIGHT_TTL`] at most. An attempt starts only when, for every one of its things, failures plus attempts
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
//! attempts under way leaves them counted for [`IN_FLIGHT_TTL`] at most, each on its own: later attempts on the
//! same thing do not keep them alive. An attempt whose answer from Redis came too late (counted there, but the
//! replica went on alone) is taken back in the background.

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

/// KEYS: per thing counted, its failures (a sorted set: attempt id by when it failed, in ms) then its attempts
/// under way (attempt id by when it stops counting). ARGV: the window (ms), the under-way expiry (ms), the attempt's
/// id, then each thing's limit. Returns 0 (counted as under way), -1 (attempts under way hold the rest of a budget:
/// wait) or the milliseconds until a spent budget frees up (when enough of the oldest failures leave the window).
const RESERVE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local window = tonumber(ARGV[1])
local busy = false
for i = 1, #KEYS / 2 do
  local limit = tonumber(ARGV[i + 3])
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i - 1], '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * i], '-inf', now)
  local failures = redis.call('ZCARD', KEYS[2 * i - 1])
  if failures >= limit then
    local oldest = redis.call('ZRANGE', KEYS[2 * i - 1], failures - limit, failures - limit, 'WITHSCORES')
    return math.max(tonumber(oldest[2]) + window - now, 1)
  end
  if failures + redis.call('ZCARD', KEYS[2 * i]) >= limit then
    busy = true
  end
end
if busy then
  return -1
end
for i = 1, #KEYS / 2 do
  redis.call('ZADD', KEYS[2 * i], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[2 * i], ARGV[2])
end
return 0
";

/// KEYS as for RESERVE. ARGV: the window (ms), the attempt's id, then per thing `fail` (one more failure, now),
/// `clear` (its failures forgotten) or `back` (nothing to count). The attempt stops counting as under way (settling
/// one that is not there changes nothing).
const SETTLE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
for i = 1, #KEYS / 2 do
  redis.call('ZREM', KEYS[2 * i], ARGV[2])
  local action = ARGV[i + 2]
  if action == 'fail' then
    redis.call('ZADD', KEYS[2 * i - 1], now, ARGV[2])
    redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[1])
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
        let shown = crate::identity::users::redacted(url);
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

    /// The Redis name of a thing counted: the project, the kind, and a hash of what is counted. Its two sorted sets
    /// are this name with `:failed-at` and `:attempts` (new names: the counters of earlier versions, plain numbers
    /// under `:failures` and `:under-way`, are left to expire).
    pub(crate) fn key(&self, kind: &str, what: &str) -> String {
        let digest = Sha256::digest(what.as_bytes());
        format!("{}:{kind}:{}", self.prefix, crate::module::hex(&digest[..16]))
    }

    fn both(invocation: &mut redis::ScriptInvocation<'_>, key: &str) {
        invocation
            .key(format!("{key}:failed-at"))
            .key(format!("{key}:attempts"));
    }

    /// Counts the attempt `id` on `things` (name, limit) as under way, if every one has room.
    pub(crate) async fn reserve(&self, things: &[(String, usize)], window: Duration, id: &str) -> Reserved {
        let mut invocation = RESERVE_SCRIPT.prepare_invoke();
        invocation.arg(millis(window)).arg(millis(IN_FLIGHT_TTL)).arg(id);
        for (key, limit) in things {
            Self::both(&mut invocation, key);
            invocation.arg(*limit);
        }
        match self.run(&invocation).await.map(u64::try_from) {
            None => {
                // The script may have run, its answer late: take the attempt back, so it does not hold a place
                // for IN_FLIGHT_TTL while this replica counts it on its own.
                let (shared, id) = (self.clone(), id.to_owned());
                let back: Vec<(String, Settle)> = things
                    .iter()
                    .map(|(key, _)| (key.clone(), Settle::Back))
                    .collect();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move { shared.settle(back, window, &id).await });
                }
                Reserved::Unavailable
            }
            Some(Ok(0)) => Reserved::Taken,
            Some(Ok(wait_ms)) => {
                Reserved::Blocked(Duration::from_millis(wait_ms).max(Duration::from_secs(1)))
            }
            Some(Err(_)) => Reserved::Busy,
        }
    }

    /// Settles an attempt counted by [`SharedCounts::reserve`]. Redis down: its under-way count expires on its own
    /// (a visitor may wait until then, never a guesser get more).
    pub(crate) async fn settle(&self, things: Vec<(String, Settle)>, window: Duration, id: &str) {
        let mut invocation = SETTLE_SCRIPT.prepare_invoke();
        invocation.arg(millis(window)).arg(id);
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
        crate::metrics::metrics().store_error(crate::metrics::Store::redis);
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
                    shared
                        .reserve(&[(key, 5)], Duration::from_secs(60), &format!("attempt-{i}"))
                        .await
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
        let settle = |pair_settle, account_settle| {
            vec![(pair.clone(), pair_settle), (account.clone(), account_settle)]
        };
        assert_eq!(shared.reserve(&both(2, 2), window, "1").await, Reserved::Taken);
        assert_eq!(shared.reserve(&both(2, 2), window, "2").await, Reserved::Taken);
        // Two under way hold the budget of 2: wait, nothing counted.
        assert_eq!(shared.reserve(&both(2, 2), window, "3").await, Reserved::Busy);
        // One fails, one is given back: one failure, nothing under way.
        shared
            .settle(settle(Settle::Fail, Settle::Fail), window, "1")
            .await;
        shared
            .settle(settle(Settle::Back, Settle::Back), window, "2")
            .await;
        assert_eq!(shared.reserve(&both(2, 2), window, "4").await, Reserved::Taken);
        shared
            .settle(settle(Settle::Fail, Settle::Fail), window, "4")
            .await;
        // Two failures: blocked until the older leaves the window, for that pair and for anything on that account.
        let Reserved::Blocked(wait) = shared.reserve(&both(2, 5), window, "5").await else {
            panic!("not blocked")
        };
        assert!(wait > Duration::from_secs(55) && wait <= window, "{wait:?}");
        assert!(matches!(
            shared.reserve(&both(5, 2), window, "6").await,
            Reserved::Blocked(_)
        ));
        // A blocked attempt counted nothing: with more room, one goes; its success clears the pair's failures only.
        assert_eq!(shared.reserve(&both(5, 5), window, "7").await, Reserved::Taken);
        shared
            .settle(settle(Settle::Clear, Settle::Back), window, "7")
            .await;
        assert_eq!(
            shared.reserve(&[(pair.clone(), 1)], window, "8").await,
            Reserved::Taken
        );
        assert!(matches!(
            shared.reserve(&[(account.clone(), 2)], window, "9").await,
            Reserved::Blocked(_)
        ));
        // Settling an attempt that is not under way (again, or never reserved) changes nothing.
        shared
            .settle(vec![(pair.clone(), Settle::Back)], window, "7")
            .await;
        shared
            .settle(vec![(pair.clone(), Settle::Back)], window, "never")
            .await;
        assert_eq!(
            shared.reserve(&[(pair.clone(), 1)], window, "10").await,
            Reserved::Busy,
            "8 is still under way"
        );
        shared
            .settle(vec![(pair.clone(), Settle::Back)], window, "8")
            .await;
        assert_eq!(shared.reserve(&[(pair, 1)], window, "11").await, Reserved::Taken);
    }

    #[tokio::test]
    async fn failures_slide_out_of_the_window_one_by_one() {
        // Documented as a sliding window, it was a fixed one: the count expired `window` after the first failure,
        // all at once, so a guesser waiting for that moment got the whole budget back.
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let key = shared.key("account", "slide");
        let window = Duration::from_millis(1500);
        let fail = async |id: &str| {
            assert_eq!(
                shared.reserve(&[(key.clone(), 2)], window, id).await,
                Reserved::Taken
            );
            shared.settle(vec![(key.clone(), Settle::Fail)], window, id).await;
        };
        fail("first").await;
        // The second failure comes later in the window than the first.
        let first_ends = tokio::time::Instant::now() + window;
        while tokio::time::Instant::now() < first_ends - Duration::from_millis(700) {
            tokio::time::sleep(Duration::from_millis(50)).await; // letting time pass in the window, not a sync
        }
        fail("second").await;
        let Reserved::Blocked(wait) = shared.reserve(&[(key.clone(), 2)], window, "x").await else {
            panic!("not blocked")
        };
        // Until the first failure leaves (under 800 ms), given as the one second a Retry-After can say.
        assert_eq!(wait, Duration::from_secs(1));
        // Once the first has left the window, one attempt has room, not two: the second failure still counts.
        while tokio::time::Instant::now() < first_ends + Duration::from_millis(100) {
            tokio::time::sleep(Duration::from_millis(50)).await; // letting the first failure leave, not a sync
        }
        assert_eq!(
            shared.reserve(&[(key.clone(), 2)], window, "third").await,
            Reserved::Taken
        );
        assert_eq!(
            shared.reserve(&[(key.clone(), 2)], window, "fourth").await,
            Reserved::Busy
        );
    }

    #[tokio::test]
    async fn an_attempt_left_under_way_expires_on_its_own_whatever_comes_after_it() {
        // Each new attempt renewed the shared expiry of the count: under steady traffic an attempt its replica
        // never settled (it died, or Redis answered too late) held its place for good.
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let key = shared.key("account", "leak");
        let window = Duration::from_secs(60);
        let mut connection = shared.connection.clone();
        // A leaked attempt, as its replica would have left it, with 200 ms left to count.
        let now_ms: i64 = {
            let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut connection).await.unwrap();
            secs * 1000 + micros / 1000
        };
        redis::cmd("ZADD")
            .arg(format!("{key}:attempts"))
            .arg(now_ms + 200)
            .arg("leaked")
            .query_async::<i64>(&mut connection)
            .await
            .unwrap();
        // Attempts keep coming and going (each renewing the set's own expiry); the leaked one stops counting.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let reserved = shared.reserve(&[(key.clone(), 2)], window, "steady").await;
            shared
                .settle(vec![(key.clone(), Settle::Back)], window, "steady")
                .await;
            assert_eq!(reserved, Reserved::Taken);
            let both = (
                shared.reserve(&[(key.clone(), 2)], window, "a").await,
                shared.reserve(&[(key.clone(), 2)], window, "b").await,
            );
            shared
                .settle(vec![(key.clone(), Settle::Back)], window, "a")
                .await;
            shared
                .settle(vec![(key.clone(), Settle::Back)], window, "b")
                .await;
            if both == (Reserved::Taken, Reserved::Taken) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the leaked attempt still counts"
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // polling Redis, not a pause
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_redis_that_hangs_is_given_500_ms_per_attempt_then_the_replica_counts_alone() {
        let redis = Redis::start();
        let shared = SharedCounts::new(&redis.url(), "p").unwrap();
        let key = shared.key("account", "a");
        let window = Duration::from_secs(60);
        assert_eq!(
            shared.reserve(&[(key.clone(), 100)], window, "before").await,
            Reserved::Taken
        );
        redis.pause();
        // 20 attempts at once on a server that keeps its connections open and never answers: each one gives up
        // after REDIS_WAIT. (The guard only turns a hang into a failure.)
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let (shared, key) = (shared.clone(), key.clone());
                tokio::spawn(async move { shared.reserve(&[(key, 100)], window, "hung").await })
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
            if shared.reserve(&[(key.clone(), 100)], window, "after").await == Reserved::Taken {
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
        assert_eq!(
            shared.reserve(&[(key.clone(), 5)], window, "1").await,
            Reserved::Taken
        );
        shared
            .settle(vec![(key.clone(), Settle::Fail)], window, "1")
            .await;
        assert_eq!(
            shared.reserve(&[(key.clone(), 5)], window, "2").await,
            Reserved::Taken
        );
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
        let under_way = ttl(format!("{key}:attempts")).await;
        assert!(under_way > 25_000 && under_way <= 30_000, "{under_way} ms");
        let failures = ttl(format!("{key}:failed-at")).await;
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
            shared.reserve(&[(key, 5)], Duration::from_secs(60), "1").await,
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
            shared.reserve(&[(key, 5)], Duration::from_secs(60), "1").await,
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
