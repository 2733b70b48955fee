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
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            per_account_and_address: 5,
            per_address: 50,
            per_account: 100,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    AccountAddress(String, IpAddr),
    Address(IpAddr),
    Account(String),
}

/// Remembers recent login failures. Memory is bounded by pruning expired entries as the table grows.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    failures: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, VecDeque<Instant>>,
    /// Next size at which expired entries are pruned: twice the live size after the last prune, so a
    /// flood of distinct keys costs amortised constant time per failure.
    prune_at: usize,
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
                prune_at: PRUNE_AT,
            }),
        }
    }

    fn keys(&self, account: &str, address: IpAddr) -> [(Key, usize); 3] {
        [
            (
                Key::AccountAddress(account.to_owned(), address),
                self.policy.per_account_and_address,
            ),
            (Key::Address(address), self.policy.per_address),
            (Key::Account(account.to_owned()), self.policy.per_account),
        ]
    }

    /// `Err(retry_after)` when this attempt must be refused without even checking the password.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        self.check_at(account, address, Instant::now())
    }

    /// Starts a login attempt: checks the limits and, in the same step, counts the attempt as a failure until it is
    /// settled. Concurrent guesses therefore see each other: with a limit of 5, at most 5 reach the password check,
    /// however many arrive at once. `Err(retry_after)` when the attempt must be refused without checking anything.
    pub fn begin(&self, account: &str, address: IpAddr) -> Result<Attempt<'_>, Duration> {
        self.begin_at(account, address, Instant::now())
    }

    fn begin_at(&self, account: &str, address: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let mut table = self.lock();
        let wait = self.wait(&table, account, address, now);
        if !wait.is_zero() {
            return Err(wait);
        }
        self.push_failure(&mut table, account, address, now);
        Ok(Attempt {
            throttle: self,
            account: account.to_owned(),
            address,
            at: now,
        })
    }

    /// A successful login clears the failures of that account from that address.
    pub fn record_success(&self, account: &str, address: IpAddr) {
        self.lock()
            .entries
            .remove(&Key::AccountAddress(account.to_owned(), address));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_at(&self, account: &str, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let wait = self.wait(&self.lock(), account, address, now);
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// How long this account and address must wait before an attempt (zero: none).
    fn wait(&self, failures: &Table, account: &str, address: IpAddr, now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        for (key, limit) in self.keys(account, address) {
            let Some(times) = failures.entries.get(&key) else {
                continue;
            };
            let recent: Vec<&Instant> = times
                .iter()
                .filter(|t| now.saturating_duration_since(**t) < self.policy.window)
                .collect();
            if recent.len() >= limit {
                // The block lifts when enough of the oldest failures leave the window.
                let oldest_that_counts = recent[recent.len() - limit];
                wait = wait.max((*oldest_that_counts + self.policy.window).saturating_duration_since(now));
            }
        }
        wait
    }

    #[cfg(test)]
    fn record_failure_at(&self, account: &str, address: IpAddr, now: Instant) {
        let mut table = self.lock();
        self.push_failure(&mut table, account, address, now);
    }

    fn push_failure(&self, table: &mut Table, account: &str, address: IpAddr, now: Instant) {
        let window = self.policy.window;
        if table.entries.len() >= table.prune_at {
            table.entries.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            table.prune_at = PRUNE_AT.max(table.entries.len() * 2);
        }
        for (key, limit) in self.keys(account, address) {
            let times = table.entries.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// Takes back the failure an attempt counted, from every key it was counted under.
    fn withdraw(&self, account: &str, address: IpAddr, at: Instant) {
        let mut table = self.lock();
        for (key, _) in self.keys(account, address) {
            if let Some(times) = table.entries.get_mut(&key)
                && let Some(position) = times.iter().rposition(|t| *t == at)
            {
                times.remove(position);
            }
        }
    }

    /// How many keys are remembered (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().entries.len()
    }
}

/// A login attempt under way, counted as a failure from [`LoginThrottle::begin`] on. Settle it with
/// [`Attempt::succeeded`] or [`Attempt::void`]; dropped otherwise (a wrong password, or a client that went away
/// during the check), it stays counted as a failure, so breaking off a guess does not make it free.
#[must_use = "an attempt that is dropped counts as a failure"]
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    address: IpAddr,
    at: Instant,
}

impl Attempt<'_> {
    /// The password matched: the attempt is not a failure, and the account's failures from that address go.
    pub fn succeeded(self) {
        self.throttle.withdraw(&self.account, self.address, self.at);
        self.throttle.record_success(&self.account, self.address);
    }

    /// The attempt could not be judged (the user store is down): it counts for nothing.
    pub fn void(self) {
        self.throttle.withdraw(&self.account, self.address, self.at);
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

    #[test]
    fn success_clears_the_pair_only() {
        let t = throttle();
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure_at("u", A, now);
        }
        t.record_success("u", A);
        t.record_failure_at("u", A, now);
        t.record_failure_at("u", A, now);
        assert!(
            t.check_at("u", A, now).is_ok(),
            "two failures after the success, under the limit of three"
        );
    }

    #[test]
    fn concurrent_attempts_count_as_they_start() {
        let t = throttle();
        let now = Instant::now();
        // Twenty guesses at once, none settled yet: only the first three may go on to the password check.
        let started: Vec<_> = (0..20).filter_map(|_| t.begin_at("u", A, now).ok()).collect();
        assert_eq!(started.len(), 3);
        drop(started); // wrong passwords: they stay counted
        assert!(t.begin_at("u", A, now).is_err());
    }

    #[test]
    fn a_successful_or_void_attempt_takes_its_count_back() {
        let t = throttle();
        let now = Instant::now();
        t.begin_at("u", A, now).unwrap().void();
        t.begin_at("u", A, now).unwrap().succeeded();
        // Neither counted: the address and the account have their whole budgets.
        for i in 0..3 {
            let other = format!("other{i}");
            drop(t.begin_at(&other, A, now).unwrap());
        }
        let accounts: usize = (0..5)
            .filter(|i| t.begin_at(&format!("x{i}"), A, now).is_ok())
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
