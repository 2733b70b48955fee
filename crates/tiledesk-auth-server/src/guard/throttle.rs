//! Login throttling: sliding windows of recent failures, per account-and-address, per address and per account.
//!
//! The tight limit is on one account from one address, so an attacker hammering one account is slowed at
//! once while the real user, from another address, still gets in. The looser per-address limit stops one
//! address from spraying many accounts; the loosest per-account limit stops a distributed attack on one
//! account. Every block ends on its own when the window slides past the failures: nobody is locked out for good.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::guard::device::Device;
use crate::guard::shared_throttle::{Reserved, Settle, SharedCounts};

/// The limits: how many failures within `window` trip each key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account from one address.
    pub per_account_and_address: usize,
    /// Failures from one address, whatever the account.
    pub per_address: usize,
    /// Failures of one account, whatever the address.
    pub per_account: usize,
    /// How far back failures count.
    pub window: Duration,
    /// Logins from one address whose password is being checked at once, whatever their outcome: more wait (see
    /// [`LoginThrottle::begin`]), so one address cannot fill the password hashing queue.
    pub in_flight_per_address: usize,
    /// Wrong API keys from one address within [`API_KEY_WINDOW`]; beyond, no key from there is checked until the
    /// window slides past them.
    pub wrong_api_keys_per_address: usize,
    /// Right passwords for one account within `window`, on this replica, whatever the address or browser: beyond,
    /// the account's password is not checked again until the window slides past them. Each check is a password hash
    /// (tens of milliseconds of a core); the module signs in with the password once and refreshes with the login
    /// session, so only someone burning the hashing threads with an account of their own (and the device cookies
    /// it earns) reaches this. Counted per replica, as the cost it bounds is.
    pub successes_per_account: usize,
}

/// How far back wrong API keys count: a site backend whose key was fixed waits at most this long.
pub const API_KEY_WINDOW: Duration = Duration::from_secs(60);

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_account_and_address: 5,
            per_address: 50,
            per_account: 100,
            window: Duration::from_secs(15 * 60),
            in_flight_per_address: 8,
            wrong_api_keys_per_address: 20,
            successes_per_account: 30,
        }
    }
}

/// What a login attempt is counted on, besides its address.
#[derive(Clone, Copy, Debug)]
enum Who<'a> {
    /// A password login for the account, from a browser known to it (its device cookie) or not.
    Account(&'a str, Option<&'a Device>),
    /// A session-bridge sign-in that forwards the visitor's `Authorization` to the site.
    Forwarded,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    AccountAddress(String, IpAddr),
    Address(IpAddr),
    Account(String),
    /// A browser with a valid device cookie for the account (see [`crate::guard::device`]).
    Device(Device),
    /// Wrong API keys presented from an address.
    WrongApiKeys(IpAddr),
    /// Right passwords for an account (never shared across replicas).
    Successes(String),
}

/// Remembers recent login failures and the attempts under way. Memory is bounded by pruning expired entries as
/// the table grows.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<Table>,
    /// Woken whenever an attempt is settled: attempts waiting for a budget held by attempts under way re-check.
    settled: tokio::sync::Notify,
    /// When the last wrong API key came, in milliseconds after `epoch` plus one (0: never). While it is older than
    /// [`API_KEY_WINDOW`] no address can be throttled, and a key is checked without taking the table's lock.
    last_wrong_key: std::sync::atomic::AtomicU64,
    epoch: Instant,
    /// The failures counted across replicas, when there are (see [`crate::guard::shared_throttle`]).
    shared: Option<SharedCounts>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, VecDeque<Instant>>,
    /// Attempts under way (password being checked), per key.
    in_flight: HashMap<Key, usize>,
    /// Next size at which expired entries are pruned: twice the live size after the last prune, so a
    /// flood of distinct keys costs amortised constant time per failure.
    prune_at: usize,
}

/// The address a visitor is counted under: an IPv4 address as it is (an IPv4-mapped IPv6 one as that IPv4
/// address), an IPv6 address as its /64. A single IPv6 customer usually gets a whole /64, so counting each address
/// alone would give one attacker 2^64 fresh budgets.
pub(crate) fn throttled_as(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// Prune expired entries once the table passes this many keys.
const PRUNE_AT: usize = 10_000;

impl LoginThrottle {
    /// A throttle with these limits.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            failures: Mutex::new(Table {
                entries: HashMap::new(),
                in_flight: HashMap::new(),
                prune_at: PRUNE_AT,
            }),
            settled: tokio::sync::Notify::new(),
            last_wrong_key: std::sync::atomic::AtomicU64::new(0),
            epoch: Instant::now(),
            shared: None,
        }
    }

    /// This throttle, its login failures also counted in `shared`, by every replica.
    #[must_use]
    pub fn with_shared(mut self, shared: SharedCounts) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The shared counters, if any.
    pub fn shared(&self) -> Option<&SharedCounts> {
        self.shared.as_ref()
    }

    /// What an attempt is counted on: a known browser on its device alone (its own budget, which nobody else can
    /// spend), anyone else on the account, the address, and the two together.
    fn keys(&self, who: Who<'_>, address: IpAddr) -> Vec<(Key, usize)> {
        let address = throttled_as(address);
        let account = match who {
            Who::Account(_, Some(device)) => {
                return vec![(Key::Device(device.clone()), self.policy.per_account_and_address)];
            }
            Who::Forwarded => return vec![(Key::Address(address), self.policy.per_address)],
            Who::Account(account, None) => account,
        };
        vec![
            (
                Key::AccountAddress(account.to_owned(), address),
                self.policy.per_account_and_address,
            ),
            (Key::Address(address), self.policy.per_address),
            (Key::Account(account.to_owned()), self.policy.per_account),
        ]
    }

    /// Starts a login attempt: checks the limits and, in the same step, counts the attempt as under way, so
    /// concurrent guesses see each other. When the budget is spent by failures, `Err(retry_after)`: refuse without
    /// checking anything. When it is held by attempts still under way, this waits for them to settle (at most
    /// [`ATTEMPT_WAIT`]) and decides then: 120 guesses at once let exactly 5 reach the password check and get 429
    /// after those 5 failed, while a visitor's 8 simultaneous right logins all go through. That is slowing down,
    /// not blocking.
    ///
    /// With `device`, a browser that signed in to this account before, only that browser's own failures count:
    /// an attacker spending the account's budget from elsewhere does not lock its owner out.
    pub async fn begin(
        &self,
        account: &str,
        address: IpAddr,
        device: Option<Device>,
    ) -> Result<Attempt<'_>, Duration> {
        self.begin_as(Who::Account(account, device.as_ref()), address, nothing_to_admit)
            .await
            .map(|(attempt, ())| attempt)
            .map_err(Admission::retry_after)
    }

    /// [`begin`](Self::begin), and once the attempt is allowed here, `admit` (a place for the password check):
    /// only then is the attempt counted in the shared counters, so a login refused for want of a place writes
    /// nothing to Redis. When the shared counters say attempts under way on other replicas hold the budget, what
    /// `admit` gave is given back while this one waits, and asked again.
    pub async fn begin_admitted<T, E, F: Future<Output = Result<T, E>>>(
        &self,
        account: &str,
        address: IpAddr,
        device: Option<Device>,
        admit: impl FnMut() -> F,
    ) -> Result<(Attempt<'_>, T), Admission<E>> {
        self.begin_as(Who::Account(account, device.as_ref()), address, admit)
            .await
    }

    /// Starts a session-bridge sign-in that forwards the visitor's `Authorization` header to the site: a 401 or 403
    /// there is a guessed credential refused, counted like a failed login on the address (its budget shared with
    /// password logins from there), with the same limit on checks under way at once. Settle it as [`begin`]'s.
    ///
    /// [`begin`]: Self::begin
    pub async fn begin_forwarded(&self, address: IpAddr) -> Result<Attempt<'_>, Duration> {
        self.begin_as(Who::Forwarded, address, nothing_to_admit)
            .await
            .map(|(attempt, ())| attempt)
            .map_err(Admission::retry_after)
    }

    async fn begin_as<T, E, F: Future<Output = Result<T, E>>>(
        &self,
        who: Who<'_>,
        address: IpAddr,
        admit: impl FnMut() -> F,
    ) -> Result<(Attempt<'_>, T), Admission<E>> {
        let begun = self.begin_counted(who, address, admit).await;
        if let Err(Admission::Throttled(_)) = &begun {
            crate::metrics::metrics().throttled(crate::metrics::Throttled::login);
        }
        begun
    }

    async fn begin_counted<T, E, F: Future<Output = Result<T, E>>>(
        &self,
        who: Who<'_>,
        address: IpAddr,
        mut admit: impl FnMut() -> F,
    ) -> Result<(Attempt<'_>, T), Admission<E>> {
        let deadline = tokio::time::Instant::now() + ATTEMPT_WAIT;
        loop {
            // Registered before the check, so a settlement between the check and the wait is not missed.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let mut shared_busy = false;
            match self.try_begin_as(who, address, Instant::now()) {
                Ok(attempt) => {
                    let admitted = match admit().await {
                        Ok(admitted) => admitted,
                        Err(err) => {
                            // Not counted in Redis yet: given back here only.
                            attempt.void().await;
                            return Err(Admission::Refused(err));
                        }
                    };
                    match self.reserve_shared(attempt).await {
                        Err(Refusal::Busy) => shared_busy = true,
                        Err(Refusal::Blocked(retry_after)) => return Err(Admission::Throttled(retry_after)),
                        Ok(attempt) => return Ok((attempt, admitted)),
                    }
                }
                Err(Refusal::Blocked(retry_after)) => return Err(Admission::Throttled(retry_after)),
                Err(Refusal::Busy) => {}
            }
            // Attempts under way on other replicas settle without waking this one: look again shortly.
            let woken = async {
                if shared_busy {
                    tokio::time::sleep(SHARED_RECHECK).await;
                } else {
                    settled.await;
                }
            };
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Err(Admission::Throttled(Duration::from_secs(1)));
            }
        }
    }

    /// Counts the attempt as under way in the shared counters too: refused (and voided here) when failures on
    /// any replica spent the budget, `Busy` (voided here) when attempts under way on any replica hold the rest of
    /// it; counted here only when Redis does not answer.
    async fn reserve_shared<'a>(&'a self, mut attempt: Attempt<'a>) -> Result<Attempt<'a>, Refusal> {
        let Some(shared) = &self.shared else {
            return Ok(attempt);
        };
        let names: Vec<String> = attempt
            .keys
            .iter()
            .map(|key| self.shared_name(shared, key))
            .collect();
        let counters: Vec<(String, usize)> = names
            .iter()
            .zip(&attempt.keys)
            .map(|(name, key)| (name.clone(), self.limit(key)))
            .collect();
        match shared
            .reserve(&counters, self.policy.window, &attempt.shared_id)
            .await
        {
            Reserved::Taken => {
                attempt.shared = names;
                Ok(attempt)
            }
            Reserved::Blocked(retry_after) => {
                attempt.void().await;
                Err(Refusal::Blocked(retry_after))
            }
            Reserved::Busy => {
                attempt.void().await;
                Err(Refusal::Busy)
            }
            Reserved::Unavailable => Ok(attempt),
        }
    }

    /// The name of a key's counter in Redis.
    fn shared_name(&self, shared: &SharedCounts, key: &Key) -> String {
        match key {
            Key::AccountAddress(account, address) => {
                shared.key("account-address", &format!("{account} {address}"))
            }
            Key::Address(address) => shared.key("address", &address.to_string()),
            Key::Account(account) => shared.key("account", account),
            Key::Device(device) => shared.key("device", &device.0),
            Key::WrongApiKeys(address) => shared.key("api-key", &address.to_string()),
            Key::Successes(account) => shared.key("successes", account),
        }
    }

    #[cfg(test)]
    fn try_begin_at(
        &self,
        account: &str,
        address: IpAddr,
        device: Option<&Device>,
        now: Instant,
    ) -> Result<Attempt<'_>, Refusal> {
        self.try_begin_as(Who::Account(account, device), address, now)
    }

    fn try_begin_as(&self, who: Who<'_>, address: IpAddr, now: Instant) -> Result<Attempt<'_>, Refusal> {
        let mut table = self.lock();
        let (wait, busy) = self.budget(&table, who, address, now);
        if !wait.is_zero() {
            return Err(Refusal::Blocked(wait));
        }
        if busy {
            return Err(Refusal::Busy);
        }
        let keys: Vec<Key> = self.keys(who, address).into_iter().map(|(key, _)| key).collect();
        // A browser known to the account is judged on its own failures, but its checks under way still count on its
        // address: a client holding many device cookies cannot keep more than its share of the hashing threads busy.
        let also_under_way =
            matches!(who, Who::Account(_, Some(_))).then(|| Key::Address(throttled_as(address)));
        for key in keys.iter().chain(&also_under_way) {
            *table.in_flight.entry(key.clone()).or_default() += 1;
        }
        let successes = match who {
            Who::Account(account, _) => Some(Key::Successes(account.to_owned())),
            Who::Forwarded => None,
        };
        Ok(Attempt {
            throttle: self,
            keys,
            also_under_way,
            successes,
            settled: false,
            shared: Vec::new(),
            shared_id: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// Settles an attempt under way: a failure is counted, a success clears the failures of that account from
    /// that address, a void counts for nothing; attempts waiting for the budget re-check.
    fn settle(&self, keys: &[Key], also_under_way: Option<&Key>, successes: Option<&Key>, outcome: Outcome) {
        {
            let mut table = self.lock();
            for key in keys.iter().chain(also_under_way) {
                if let Some(count) = table.in_flight.get_mut(key) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        table.in_flight.remove(key);
                    }
                }
            }
            match outcome {
                Outcome::Failure => self.push_failure(&mut table, keys, Instant::now()),
                // The failures of that account from that address, or of that browser, go.
                Outcome::Success => {
                    for key in keys {
                        if matches!(key, Key::AccountAddress(..) | Key::Device(_)) {
                            table.entries.remove(key);
                        }
                    }
                    if let Some(successes) = successes {
                        self.push_failure(&mut table, std::slice::from_ref(successes), Instant::now());
                    }
                }
                Outcome::Void => {}
            }
        }
        self.settled.notify_waiters();
    }

    /// Checks an API key from `address` with `matches`, unless that address presented too many wrong keys lately:
    /// then `Err(retry_after)` and the key is not looked at, so guessing from one address runs at 20 a minute,
    /// not 64 000 a second. Check and count are one step: concurrent guesses see each other.
    pub fn check_api_key(&self, address: IpAddr, matches: impl FnOnce() -> bool) -> Result<bool, Duration> {
        use std::sync::atomic::Ordering;
        let now = Instant::now();
        let since_epoch =
            |t: Instant| u64::try_from(t.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let last = self.last_wrong_key.load(Ordering::Acquire);
        let window = u64::try_from(API_KEY_WINDOW.as_millis()).unwrap_or(u64::MAX);
        // No wrong key within the window anywhere: nobody is throttled, and a right key needs no lock.
        let quiet = last == 0 || since_epoch(now).saturating_sub(last - 1) >= window;
        let mut matches = Some(matches);
        if quiet && matches.take().is_some_and(|matches| matches()) {
            return Ok(true);
        }
        let key = Key::WrongApiKeys(throttled_as(address));
        let mut table = self.lock();
        let limit = self.policy.wrong_api_keys_per_address;
        if let Some(times) = table.entries.get(&key) {
            let recent: Vec<&Instant> = times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < API_KEY_WINDOW)
                .collect();
            if recent.len() >= limit {
                return Err((*recent[recent.len() - limit] + API_KEY_WINDOW).saturating_duration_since(now));
            }
        }
        // When quiet, `matches` already said no.
        let matched = matches.is_some_and(|matches| matches());
        if !matched {
            self.push_failure(&mut table, &[key], now);
            self.last_wrong_key.store(since_epoch(now) + 1, Ordering::Release);
        }
        Ok(matched)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn check_at(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let (wait, _) = self.budget(&self.lock(), Who::Account(account, None), address, now);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// In one pass over the keys: how long this account and address must wait because failures spent a budget
    /// (zero: none), and whether attempts under way hold what is left of one.
    fn budget(&self, failures: &Table, who: Who<'_>, address: IpAddr, now: Instant) -> (Duration, bool) {
        let mut wait = Duration::ZERO;
        let mut busy = false;
        for (key, limit) in self.keys(who, address) {
            let recent: Vec<&Instant> = failures.entries.get(&key).map_or_else(Vec::new, |times| {
                times
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) < self.policy.window)
                    .collect()
            });
            if recent.len() >= limit {
                // The block lifts when enough of the oldest failures leave the window.
                let oldest_that_counts = recent[recent.len() - limit];
                wait = wait.max((*oldest_that_counts + self.policy.window).saturating_duration_since(now));
            } else if recent.len() + failures.in_flight.get(&key).copied().unwrap_or(0) >= limit {
                busy = true;
            }
        }
        if let Who::Account(account, _) = who
            && let Some(times) = failures.entries.get(&Key::Successes(account.to_owned()))
        {
            let limit = self.policy.successes_per_account;
            let recent: Vec<&Instant> = times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.policy.window)
                .collect();
            if limit > 0 && recent.len() >= limit {
                let oldest_that_counts = recent[recent.len() - limit];
                wait = wait.max((*oldest_that_counts + self.policy.window).saturating_duration_since(now));
            }
        }
        {
            // Every login counts here, a known browser's too (see `try_begin_as`).
            let address = Key::Address(throttled_as(address));
            busy |=
                failures.in_flight.get(&address).copied().unwrap_or(0) >= self.policy.in_flight_per_address;
        }
        (wait, busy)
    }

    #[cfg(test)]
    fn record_failure_at(&self, account: &str, address: IpAddr, now: Instant) {
        let keys: Vec<Key> = self
            .keys(Who::Account(account, None), address)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let mut table = self.lock();
        self.push_failure(&mut table, &keys, now);
    }

    fn limit(&self, key: &Key) -> usize {
        match key {
            Key::AccountAddress(..) | Key::Device(_) => self.policy.per_account_and_address,
            Key::Address(_) => self.policy.per_address,
            Key::Account(_) => self.policy.per_account,
            Key::WrongApiKeys(_) => self.policy.wrong_api_keys_per_address,
            Key::Successes(_) => self.policy.successes_per_account,
        }
    }

    fn push_failure(&self, table: &mut Table, keys: &[Key], now: Instant) {
        let window = self.policy.window;
        if table.entries.len() >= table.prune_at {
            table.entries.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            table.prune_at = PRUNE_AT.max(table.entries.len() * 2);
        }
        for key in keys {
            let limit = self.limit(key);
            let times = table.entries.entry(key.clone()).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// How many keys are remembered (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().entries.len()
    }
}

/// How long an attempt waits for attempts under way to settle before it is refused (argon2 takes well under a
/// second; a queue of them on a busy machine, a few).
/// With the password queue's own limit ([`crate::guard::passwords::QUEUE_WAIT`]) under the browser module's 15 s.
pub const ATTEMPT_WAIT: Duration = Duration::from_secs(5);

/// How often an attempt waiting for attempts under way on other replicas looks again (they settle there, unseen
/// here).
const SHARED_RECHECK: Duration = Duration::from_millis(50);

/// Why [`LoginThrottle::begin_admitted`] did not start an attempt.
#[derive(Debug)]
pub enum Admission<E> {
    /// Too many attempts: refuse, with when to try again.
    Throttled(Duration),
    /// The attempt was allowed, and `admit` refused it.
    Refused(E),
}

impl Admission<std::convert::Infallible> {
    fn retry_after(self) -> Duration {
        match self {
            Self::Throttled(retry_after) => retry_after,
            Self::Refused(never) => match never {},
        }
    }
}

async fn nothing_to_admit() -> Result<(), std::convert::Infallible> {
    Ok(())
}

/// Why an attempt cannot start now.
enum Refusal {
    /// The failures spent the budget: refuse, with when to try again.
    Blocked(Duration),
    /// Attempts under way hold the budget: wait for them.
    Busy,
}

#[derive(Clone, Copy)]
enum Outcome {
    Failure,
    Success,
    Void,
}

/// A login attempt under way, from [`LoginThrottle::begin`]. Settle it with [`Attempt::succeeded`] or
/// [`Attempt::void`]; dropped otherwise (a wrong password, or a client that went away during the check), it counts
/// as a failure, so breaking off a guess does not make it free.
#[must_use = "an attempt that is dropped counts as a failure"]
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    /// What it is counted on.
    keys: Vec<Key>,
    /// Where it is counted as under way only (a known browser's address: see `try_begin_as`).
    also_under_way: Option<Key>,
    /// Where a success is counted (a password login's account).
    successes: Option<Key>,
    settled: bool,
    /// Its counters' names in Redis, one per key, when it was counted there (empty otherwise).
    shared: Vec<String>,
    /// Its id in Redis's sets of attempts under way and of failures.
    shared_id: String,
}

impl Attempt<'_> {
    /// The password matched: no failure, and the account's failures from that address go.
    pub async fn succeeded(mut self) {
        self.give_back_shared(Outcome::Success).await;
        self.settle(Outcome::Success);
    }

    /// The attempt could not be judged (the user store is down): it counts for nothing.
    pub async fn void(mut self) {
        self.give_back_shared(Outcome::Void).await;
        self.settle(Outcome::Void);
    }

    fn settle(&mut self, outcome: Outcome) {
        self.settled = true;
        self.throttle.settle(
            &self.keys,
            self.also_under_way.as_ref(),
            self.successes.as_ref(),
            outcome,
        );
        // A failure (a drop, so no waiting here): counted in the background. Its failure and its end are one step
        // in Redis, so the budget others see (failures plus attempts under way) is the same before and after.
        if let (Outcome::Failure, Some(things)) = (outcome, self.shared_settlement(outcome))
            && let (Some(shared), Ok(runtime)) = (
                self.throttle.shared.clone(),
                tokio::runtime::Handle::try_current(),
            )
        {
            let window = self.throttle.policy.window;
            let id = self.shared_id.clone();
            runtime.spawn(async move { shared.settle(things, window, &id).await });
        }
    }

    /// What the end of this attempt does to each shared counter; none when it was not counted there.
    fn shared_settlement(&self, outcome: Outcome) -> Option<Vec<(String, Settle)>> {
        if self.shared.is_empty() {
            return None;
        }
        let settle = |key: &Key| match (outcome, key) {
            (Outcome::Failure, _) => Settle::Fail,
            (Outcome::Success, Key::AccountAddress(..) | Key::Device(_)) => Settle::Clear,
            (Outcome::Success | Outcome::Void, _) => Settle::Back,
        };
        Some(
            self.keys
                .iter()
                .zip(&self.shared)
                .map(|(key, name)| (name.clone(), settle(key)))
                .collect(),
        )
    }

    /// Settles a success or a void in the shared counters before the attempts waiting on this replica are woken:
    /// a visitor's simultaneous right logins must not find their own successes still counted.
    async fn give_back_shared(&self, outcome: Outcome) {
        if let (Some(things), Some(shared)) = (self.shared_settlement(outcome), &self.throttle.shared) {
            shared
                .settle(things, self.throttle.policy.window, &self.shared_id)
                .await;
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.settle(Outcome::Failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottlePolicy {
            per_account_and_address: 3,
            per_address: 5,
            per_account: 8,
            window: Duration::from_secs(60),
            in_flight_per_address: 4,
            wrong_api_keys_per_address: 20,
            successes_per_account: 6,
        })
    }

    #[test]
    fn one_account_from_one_address_is_blocked_then_released() {
        let t = throttle();
        let start = Instant::now();
        for i in 0..3 {
            assert!(t.check_at("u", A, start).is_ok(), "attempt {i}");
            t.record_failure_at("u", A, start + Duration::from_secs(i));
        }
        let wait = t.check_at("u", A, start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            wait,
            Duration::from_secs(50),
            "released when the first failure leaves the window"
        );
        assert!(
            t.check_at("u", B, start + Duration::from_secs(10)).is_ok(),
            "the real user elsewhere gets in"
        );
        assert!(t.check_at("other", A, start + Duration::from_secs(10)).is_ok());
        assert!(
            t.check_at("u", A, start + Duration::from_secs(60)).is_ok(),
            "not locked out for good"
        );
    }

    #[test]
    fn one_address_spraying_accounts_is_blocked() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..5 {
            t.record_failure_at(&format!("user{i}"), A, now);
        }
        assert!(t.check_at("fresh", A, now).is_err());
        assert!(t.check_at("fresh", B, now).is_ok());
    }

    #[test]
    fn one_account_attacked_from_everywhere_is_blocked() {
        let t = throttle();
        let now = Instant::now();
        for i in 0..8u8 {
            t.record_failure_at("victim", IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, i)), now);
        }
        assert!(t.check_at("victim", B, now).is_err());
    }

    #[tokio::test]
    async fn success_clears_the_pair_only() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure_at("u", A, now);
        }
        t.try_begin_at("u", A, None, now).ok().unwrap().succeeded().await;
        t.record_failure_at("u", A, now);
        t.record_failure_at("u", A, now);
        assert!(
            t.check_at("u", A, now).is_ok(),
            "two failures after the success, under the limit of three"
        );
    }

    #[test]
    fn ipv6_visitors_are_counted_by_their_64() {
        let t = throttle();
        let now = Instant::now();
        let in_one_64 = |host: u16| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, host));
        // Three hosts of one /64 spend one budget of three.
        for host in 1..=3 {
            drop(t.try_begin_at("u", in_one_64(host), None, now).ok().unwrap());
        }
        assert!(
            t.try_begin_at("u", in_one_64(4), None, now).is_err(),
            "a fourth host of the same /64"
        );
        let next_64 = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(
            t.try_begin_at("u", next_64, None, now).is_ok(),
            "another /64 has its own budget"
        );
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        drop(t.try_begin_at("v", A, None, now).ok().unwrap());
        drop(t.try_begin_at("v", A, None, now).ok().unwrap());
        drop(t.try_begin_at("v", mapped, None, now).ok().unwrap());
        assert!(
            t.try_begin_at("v", A, None, now).is_err(),
            "an IPv4-mapped address is that IPv4 address"
        );
    }

    #[test]
    fn concurrent_attempts_count_as_they_start() {
        let t = throttle();
        let now = Instant::now();
        // Twenty guesses at once, none settled yet: only the first three may go on to the password check; the
        // others must wait.
        let tries: Vec<_> = (0..20).map(|_| t.try_begin_at("u", A, None, now)).collect();
        let started: Vec<_> = tries.into_iter().filter_map(Result::ok).collect();
        assert_eq!(started.len(), 3);
        assert!(matches!(t.try_begin_at("u", A, None, now), Err(Refusal::Busy)));
        drop(started); // wrong passwords: three failures
        assert!(matches!(
            t.try_begin_at("u", A, None, now),
            Err(Refusal::Blocked(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_waits_at_most_attempt_wait_then_is_refused() {
        let t = throttle();
        let _held: Vec<_> = (0..3)
            .map(|_| t.try_begin_at("u", A, None, Instant::now()).ok().unwrap())
            .collect();
        let started = tokio::time::Instant::now();
        // Nothing settles: the paused clock jumps to the deadline, and the attempt gives up there.
        let refused = t.begin("u", A, None).await.err();
        assert_eq!(
            refused,
            Some(Duration::from_secs(1)),
            "refused, with a short Retry-After"
        );
        assert_eq!(started.elapsed(), ATTEMPT_WAIT);
    }

    #[tokio::test]
    async fn an_attempt_behind_attempts_under_way_on_another_replica_waits_at_most_attempt_wait() {
        let redis = tiledesk_test_support::Redis::start();
        let t = throttle().with_shared(SharedCounts::new(&redis.url(), "p").unwrap());
        // Another replica has three attempts on this account from this address under way, the pair's whole budget.
        let elsewhere = SharedCounts::new(&redis.url(), "p").unwrap();
        let shared = t.shared().unwrap();
        let counters: Vec<(String, usize)> = t
            .keys(Who::Account("u", None), A)
            .iter()
            .map(|(key, limit)| (t.shared_name(shared, key), *limit))
            .collect();
        for id in ["there-1", "there-2", "there-3"] {
            assert_eq!(
                elsewhere.reserve(&counters, t.policy.window, id).await,
                Reserved::Taken
            );
        }
        let started = tokio::time::Instant::now();
        // Nothing settles there: this one looks again and again, then gives up at the deadline, counted nowhere.
        assert_eq!(t.begin("u", A, None).await.err(), Some(Duration::from_secs(1)));
        assert!(started.elapsed() >= ATTEMPT_WAIT, "{:?}", started.elapsed());
        assert_eq!(
            t.lock().in_flight.len(),
            0,
            "the refused attempt left nothing under way here"
        );
        // There, one fails and one is given back: one failure and one under way leave room for one more.
        let settle = |settle| counters.iter().map(|(name, _)| (name.clone(), settle)).collect();
        elsewhere
            .settle(settle(Settle::Fail), t.policy.window, "there-1")
            .await;
        elsewhere
            .settle(settle(Settle::Back), t.policy.window, "there-2")
            .await;
        let attempt = t.begin("u", A, None).await.expect("room again");
        assert_eq!(attempt.shared.len(), 3);
        attempt.void().await;
    }

    #[tokio::test]
    async fn an_attempt_behind_attempts_under_way_waits_for_them() {
        let t = throttle();
        let held: Vec<_> = (0..3)
            .map(|_| t.try_begin_at("u", A, None, Instant::now()).ok().unwrap())
            .collect();
        let mut next = std::pin::pin!(t.begin("u", A, None));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            next.as_mut().poll(&mut cx).is_pending(),
            "waits: the budget is held, not spent"
        );
        // The visitor's first login succeeds: the pair's failures go, and the waiting attempt may start.
        let mut held = held.into_iter();
        held.next().unwrap().succeeded().await;
        assert!(next.await.is_ok());
    }

    #[tokio::test]
    async fn a_known_browser_is_judged_on_its_own_failures_only() {
        let t = throttle();
        let now = Instant::now();
        // The account's budget spent from everywhere: anyone without the cookie is refused...
        for i in 0..8u8 {
            t.record_failure_at("victim", IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, i)), now);
        }
        assert!(matches!(
            t.try_begin_at("victim", B, None, now),
            Err(Refusal::Blocked(_))
        ));
        // ...but the owner's browser starts, even from an address whose own budget is spent.
        for i in 0..5 {
            t.record_failure_at(&format!("other{i}"), B, now);
        }
        let owner = Device("nonce-of-the-owners-browser".to_owned());
        t.try_begin_at("victim", B, Some(&owner), now)
            .ok()
            .unwrap()
            .succeeded()
            .await;
        // Its own failures do count: three and that browser too waits.
        for _ in 0..3 {
            drop(t.try_begin_at("victim", B, Some(&owner), now).ok().unwrap());
        }
        assert!(matches!(
            t.try_begin_at("victim", B, Some(&owner), now),
            Err(Refusal::Blocked(_))
        ));
        let another = Device("another-browser".to_owned());
        assert!(
            t.try_begin_at("victim", B, Some(&another), now).is_ok(),
            "budgets are per browser"
        );
    }

    #[test]
    fn wrong_api_keys_from_one_address_are_throttled_and_the_key_not_even_checked() {
        let t = LoginThrottle::new(ThrottlePolicy {
            wrong_api_keys_per_address: 3,
            ..ThrottlePolicy::default()
        });
        for _ in 0..2 {
            assert_eq!(t.check_api_key(A, || false), Ok(false));
        }
        assert_eq!(
            t.check_api_key(A, || true),
            Ok(true),
            "a right key counts for nothing"
        );
        assert_eq!(t.check_api_key(A, || false), Ok(false));
        let refused = t.check_api_key(A, || unreachable!("not checked once throttled"));
        assert!(refused.is_err_and(|wait| wait <= API_KEY_WINDOW && wait > Duration::ZERO));
        assert_eq!(
            t.check_api_key(B, || true),
            Ok(true),
            "another address is not affected"
        );
    }

    #[tokio::test]
    async fn one_address_has_a_few_logins_under_way_at_once() {
        let t = throttle();
        let now = Instant::now();
        // Four accounts from one address: their checks run; a fifth waits, whoever it is.
        let running: Vec<_> = (0..4)
            .map(|i| t.try_begin_at(&format!("u{i}"), A, None, now).ok().unwrap())
            .collect();
        assert!(matches!(t.try_begin_at("u9", A, None, now), Err(Refusal::Busy)));
        assert!(
            t.try_begin_at("u9", B, None, now).is_ok(),
            "another address is not held up"
        );
        let mut running = running.into_iter();
        running.next().unwrap().succeeded().await;
        assert!(
            t.try_begin_at("u9", A, None, now).is_ok(),
            "one settled: room for one more"
        );
    }

    #[tokio::test]
    async fn a_known_browsers_logins_count_as_under_way_on_its_address_too() {
        let t = throttle();
        let now = Instant::now();
        // One client holding device cookies of many accounts (its own): each is judged on that browser's failures
        // alone, but its checks under way are its address's, as anyone's.
        let devices: Vec<Device> = (0..5).map(|i| Device(format!("cookie-{i}"))).collect();
        let running: Vec<_> = devices[..4]
            .iter()
            .enumerate()
            .map(|(i, d)| t.try_begin_at(&format!("mine{i}"), A, Some(d), now).ok().unwrap())
            .collect();
        assert!(matches!(
            t.try_begin_at("mine4", A, Some(&devices[4]), now),
            Err(Refusal::Busy)
        ));
        assert!(matches!(
            t.try_begin_at("someone", A, None, now),
            Err(Refusal::Busy)
        ));
        let mut running = running.into_iter();
        running.next().unwrap().succeeded().await;
        assert!(t.try_begin_at("mine4", A, Some(&devices[4]), now).is_ok());
        // And no failure of theirs is counted on the address.
        drop(running);
        assert!(
            t.check_at("anyone", A, now).is_ok(),
            "the browsers' failures are not the address's"
        );
    }

    #[tokio::test]
    async fn right_passwords_for_one_account_are_limited_whatever_the_browser_or_address() {
        let t = throttle();
        let now = Instant::now();
        // Someone burning the hashing threads with their own account: every login right, from two addresses, with
        // device cookies and without.
        for i in 0..6u8 {
            let device = Device(format!("cookie-{i}"));
            let address = if i % 2 == 0 { A } else { B };
            let attempt = t.try_begin_at("mine", address, (i % 3 == 0).then_some(&device), now);
            attempt.ok().unwrap().succeeded().await;
        }
        let fresh = Device("fresh".into());
        for (address, device) in [(A, None), (B, Some(&fresh))] {
            match t.try_begin_at("mine", address, device, now) {
                Err(Refusal::Blocked(wait)) => assert!(wait > Duration::from_secs(55), "{wait:?}"),
                other => panic!("a seventh right password checked: {:?}", other.is_ok()),
            }
        }
        assert!(
            t.try_begin_at("someone else", A, None, now).is_ok(),
            "another account from the same address is not affected"
        );
        assert!(
            t.try_begin_at("mine", A, None, now + Duration::from_secs(61))
                .is_ok(),
            "the window slides past them"
        );
    }

    #[tokio::test]
    async fn a_login_refused_a_place_to_be_checked_writes_nothing_to_redis() {
        // #25 item 9: a `busy` refusal used to write three counters to Redis first (and take them back after).
        let redis = tiledesk_test_support::Redis::start();
        let t = throttle().with_shared(SharedCounts::new(&redis.url(), "p").unwrap());
        let connection = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let written = |mut connection: redis::aio::MultiplexedConnection| async move {
            redis::cmd("DBSIZE")
                .query_async::<usize>(&mut connection)
                .await
                .unwrap()
        };
        // What Redis holds while the place is asked for, and after the refusal.
        let mut seen = Vec::new();
        let refused = t
            .begin_admitted("u", A, None, || {
                let during = written(connection.clone());
                async { Err::<(), _>(during.await) }
            })
            .await;
        match refused {
            Err(Admission::Refused(during)) => seen.push(during),
            other => panic!("not refused by admit: {:?}", other.is_ok()),
        }
        seen.push(written(connection.clone()).await);
        assert_eq!(
            seen,
            [0, 0],
            "Redis written before the login had a place (during, after)"
        );
        // Nothing counted here either: the whole budget is there, and an admitted attempt is counted in Redis.
        let (attempt, place) = t
            .begin_admitted("u", A, None, || async { Ok::<_, ()>("a place") })
            .await
            .unwrap();
        assert_eq!(place, "a place");
        assert!(
            written(connection.clone()).await > 0,
            "an admitted attempt is counted across replicas"
        );
        attempt.void().await;
    }

    #[tokio::test]
    async fn a_successful_or_void_attempt_takes_its_count_back() {
        let t = throttle();
        let now = Instant::now();
        t.try_begin_at("u", A, None, now).ok().unwrap().void().await;
        t.try_begin_at("u", A, None, now).ok().unwrap().succeeded().await;
        // Neither counted: the address and the account have their whole budgets.
        for i in 0..3 {
            let other = format!("other{i}");
            drop(t.try_begin_at(&other, A, None, now).ok().unwrap());
        }
        let accounts: usize = (0..5)
            .filter(|i| t.try_begin_at(&format!("x{i}"), A, None, now).is_ok())
            .count();
        assert_eq!(accounts, 2, "5 per address, 3 spent on `other*`");
    }

    #[test]
    fn expired_entries_are_pruned() {
        let t = throttle();
        let old = Instant::now();
        // Each failure adds two keys (account, account+address) beside the shared address key.
        for i in 0..PRUNE_AT / 2 {
            t.record_failure_at(&format!("u{i}"), A, old);
        }
        assert_eq!(t.tracked_keys(), PRUNE_AT + 1);
        t.record_failure_at("late", B, old + Duration::from_secs(120));
        assert_eq!(
            t.tracked_keys(),
            3,
            "only the three keys of the late failure remain"
        );
    }
}
