//! Password hashing with argon2id on a few dedicated threads, never more at once than there are cores, at a lower
//! CPU priority (nice +5): a flood of logins queues and yields the CPU to the async threads that serve everything
//! else, instead of stalling them. Measured in `BENCHMARKS.md` ("Logins under load", "Soak"): +10 kept the probes
//! further under 5 ms but starved logins behind a token flood (12 logins/s against 24 at +5 and 41 at 0, where the
//! probes' p99 came to 4.4 ms).
//!
//! The queue in front of the threads is bounded twice: none waits longer than [`QUEUE_WAIT`], and at most
//! [`MAX_QUEUED_PER_THREAD`] checks wait per thread. Beyond either the check is not done and the caller answers
//! `503` with `Retry-After`: under a flood a login fails within a known time and clearly, instead of every login
//! waiting longer and longer (1000 at once used to make a real user wait 6.75 s, with no bound).
//!
//! A check holds its thread until its hash is done, even when the client went away meanwhile: the permits travel
//! with the job, not with the request's future. (They were given back when the future was dropped, with the hash
//! still running: clients that closed each login after a few milliseconds queued hashes without bound.) So at
//! most one job per thread is ever handed over, and the channel to the threads holds no more.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{Semaphore, oneshot};
use zeroize::Zeroizing;

/// Longest password accepted, in bytes: long enough for any passphrase, short enough to bound the work.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// How much less CPU priority the hashing threads get than the async threads (a `nice` increment; see above).
const HASHING_NICE: i32 = 5;

/// Longest a password check waits for a hashing thread. With the throttle's own wait
/// ([`crate::guard::throttle::ATTEMPT_WAIT`]) it stays under the browser module's default step limit (15 s), so the
/// visitor sees this service's answer rather than the module's timeout.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Password checks waiting at most, per hashing thread (on top of the ones running). Large, so that a flood
/// waits (a sleeping task each, bounded by the connection caps) rather than spinning on instant refusals: measured
/// with 64, a 1000-connection flood turned into 16 000 instant `503`s a second that starved the other routes
/// (`/tokens` p99 97 ms). The wait limit, not this, is what keeps waits bounded.
pub const MAX_QUEUED_PER_THREAD: usize = 1024;

/// What a busy hasher tells the client to wait before trying again.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Why a hash or a check was not done.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full, or the wait for a thread passed [`QUEUE_WAIT`]: try again later.
    #[error("the password hasher is busy")]
    Busy,
    /// The hashing threads are gone, or the stored hash is unreadable.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords. Cheap to clone; the hashing threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Room in the queue: checks waiting or running.
    queue: Arc<Semaphore>,
    /// How long a check may wait for a thread.
    wait: Duration,
    jobs: mpsc::SyncSender<Job>,
    /// A hash of a random password, verified against when the email is unknown so that an unknown
    /// email costs the same time as a wrong password.
    decoy_hash: Arc<str>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("free_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

fn hasher() -> Argon2<'static> {
    // argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

impl Passwords {
    /// Starts `threads` hashing threads (at least one) and prepares the decoy hash; the queue's bounds are
    /// [`MAX_QUEUED_PER_THREAD`] and [`QUEUE_WAIT`].
    pub fn new(threads: usize) -> anyhow::Result<Self> {
        let threads = threads.max(1);
        Self::with_queue(threads, threads * MAX_QUEUED_PER_THREAD, QUEUE_WAIT)
    }

    /// Starts `threads` hashing threads with at most `queued` checks waiting, each at most `wait`.
    pub fn with_queue(threads: usize, queued: usize, wait: Duration) -> anyhow::Result<Self> {
        let threads = threads.max(1);
        let mut random = [0u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        let decoy = hash_blocking(&random)?;
        // Room for one job per thread: a job is sent only by the holder of a thread's permit.
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // The lock is held only while waiting for the next job, never while hashing.
                        let job = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break, // every Passwords clone is gone
                        }
                    }
                })
                .context("cannot start a password hashing thread")?;
        }
        Ok(Self {
            permits: Arc::new(Semaphore::new(threads)),
            queue: Arc::new(Semaphore::new(threads + queued)),
            wait,
            jobs,
            decoy_hash: decoy.into(),
        })
    }

    /// One hashing thread per available core.
    pub fn for_this_machine() -> anyhow::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// A hashing thread for one password check: waits for one at most the queue's wait limit, then
    /// [`HashError::Busy`]; at once when the queue is full. Taken before anything else is done for a login (the user
    /// lookup included), so a refused login costs next to nothing.
    pub async fn admit(&self) -> Result<Ticket, HashError> {
        let place = Arc::clone(&self.queue)
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let thread = tokio::time::timeout(self.wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| HashError::Busy)?
            .context("password hasher closed")?;
        Ok(Ticket {
            passwords: self.clone(),
            _permits: (place, thread),
        })
    }

    /// Waits for a hashing thread and runs `work` on it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        self.admit().await?.run(work).await
    }

    /// Hashes `password` into a PHC string (`$argon2id$...`).
    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, HashError> {
        Ok(self.run(move || hash_blocking(password.as_bytes())).await??)
    }

    /// Whether `password` matches `stored`. With `stored = None` (unknown user) it does the same work
    /// against a decoy and answers `false`.
    pub async fn verify(
        &self,
        stored: Option<String>,
        password: Zeroizing<String>,
    ) -> Result<bool, HashError> {
        self.admit().await?.verify(stored, password).await
    }
}

/// A place in the password queue, from [`Passwords::admit`]; given back when dropped.
#[must_use = "a ticket holds a place in the queue until it is used or dropped"]
pub struct Ticket {
    passwords: Passwords,
    /// Its place in the queue and its hashing thread.
    _permits: (
        tokio::sync::OwnedSemaphorePermit,
        tokio::sync::OwnedSemaphorePermit,
    ),
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket")
    }
}

impl Ticket {
    /// Runs `work` on the ticket's hashing thread. The ticket goes with the job: its thread and its place in the
    /// queue are given back when `work` is done, not when the caller stops waiting for it.
    async fn run<T: Send + 'static>(self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, HashError> {
        let (done, result) = oneshot::channel();
        let Self {
            passwords,
            _permits: permits,
        } = self;
        passwords
            .jobs
            .try_send(Box::new(move || {
                let value = work();
                // Given back before the answer: whoever reads it finds the thread free.
                drop(permits);
                let _ = done.send(value);
            }))
            .ok()
            .context("password hashing threads stopped")?;
        Ok(result.await.context("password hashing thread failed")?)
    }

    /// [`Passwords::verify`] in this place of the queue.
    pub async fn verify(
        self,
        stored: Option<String>,
        password: Zeroizing<String>,
    ) -> Result<bool, HashError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.passwords.decoy_hash.to_string());
        let matched = self
            .run(move || verify_blocking(&hash, password.as_bytes()))
            .await??;
        Ok(known && matched)
    }
}

/// Lowers the calling thread's CPU priority (Linux: `nice` is per thread). Best effort: where the system refuses,
/// hashing still runs, at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(err) = rustix::process::setpriority_process(Some(tid), current + HASHING_NICE) {
            tracing::debug!(%err, "cannot lower the priority of a password hashing thread");
        }
    }
}

/// Hashes on the current thread; for the CLI and for [`Passwords`].
pub fn hash_blocking(password: &[u8]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher()
        .hash_password(password, &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    Ok(hash.to_string())
}

thread_local! {
    /// The hashing thread's argon2 working memory (19 MiB with the default parameters), kept between hashes. Freed
    /// and allocated again each time, the allocator kept up to three copies per thread around (measured: 222 MiB
    /// resident after 50 logins, against 48 MiB with this buffer).
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn verify_blocking(stored: &str, password: &[u8]) -> anyhow::Result<bool> {
    let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash is unreadable: {e}");
    let parsed = PasswordHash::new(stored).map_err(|e| unreadable(&e))?;
    // The parameters come from the stored hash, so hashes made with older settings still verify.
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| unreadable(&e))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| unreadable(&e))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(unreadable(&"no salt or no hash"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).map_err(|e| unreadable(&e))?;
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    MEMORY
        .with(|memory| {
            let mut memory = memory.borrow_mut();
            if memory.len() < params.block_count() {
                memory.resize(params.block_count(), argon2::Block::default());
            }
            Argon2::new(algorithm, version, params).hash_password_into_with_memory(
                password,
                salt,
                &mut computed,
                &mut memory[..],
            )
        })
        .map_err(|e| anyhow::anyhow!("cannot verify: {e}"))?;
    Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        &computed[..],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Zeroizing<String> {
        Zeroizing::new(s.to_owned())
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let passwords = Passwords::new(2).unwrap();
        let hash = passwords.hash(secret("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(
            passwords
                .verify(Some(hash.clone()), secret("correct horse"))
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify(Some(hash), secret("correct horsf"))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn an_abandoned_check_keeps_its_thread_and_place_until_its_hash_is_done() {
        let passwords = Passwords::with_queue(1, 4, Duration::from_secs(10)).unwrap();
        let hash = passwords.hash(secret("correct horse")).await.unwrap();
        assert_eq!(passwords.permits.available_permits(), 1);
        // A client that closes its login a moment after sending it: the check is started, then its future dropped.
        {
            let ticket = passwords.admit().await.unwrap();
            let mut check = Box::pin(ticket.verify(Some(hash.clone()), secret("guess")));
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(
                check.as_mut().poll(&mut context).is_pending(),
                "the hash is running"
            );
        }
        // The hash still runs: its thread and its place are still taken (they came back at once, and a flood of
        // such logins queued hashes without bound).
        assert_eq!(passwords.permits.available_permits(), 0);
        assert_eq!(passwords.queue.available_permits(), 4);
        // Once it is done they come back: the next check gets the thread.
        assert!(
            passwords
                .verify(Some(hash), secret("correct horse"))
                .await
                .unwrap()
        );
        assert_eq!(passwords.permits.available_permits(), 1);
        assert_eq!(passwords.queue.available_permits(), 5);
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_still_verify() {
        // An older or stronger setting, and argon2i: what the stored hash says is what is computed.
        let salt = SaltString::generate(&mut OsRng);
        let passwords = Passwords::new(1).unwrap();
        for (algorithm, params) in [
            (Algorithm::Argon2id, Params::new(8 * 1024, 1, 1, None).unwrap()),
            (
                Algorithm::Argon2i,
                Params::new(32 * 1024, 3, 1, Some(16)).unwrap(),
            ),
        ] {
            let stored = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(b"old password", &salt)
                .unwrap()
                .to_string();
            assert!(
                passwords
                    .verify(Some(stored.clone()), secret("old password"))
                    .await
                    .unwrap(),
                "{stored}"
            );
            assert!(
                !passwords
                    .verify(Some(stored.clone()), secret("old passwore"))
                    .await
                    .unwrap(),
                "{stored}"
            );
        }
        let unreadable = passwords
            .verify(Some("$argon2id$v=19$nonsense".to_owned()), secret("x"))
            .await;
        assert!(unreadable.is_err());
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_the_decoy() {
        let passwords = Passwords::new(1).unwrap();
        assert!(!passwords.verify(None, secret("")).await.unwrap());
        assert!(!passwords.verify(None, secret("anything")).await.unwrap());
    }

    /// A job that holds the one hashing thread until the returned sender is dropped.
    async fn hold_the_thread(passwords: &Passwords) -> (mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, held) = mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let holder = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(move || {
                        let _ = started.send(());
                        let _ = held.recv();
                    })
                    .await
                    .unwrap();
            })
        };
        running.await.unwrap();
        (release, holder)
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let passwords = Passwords::with_queue(1, 2, Duration::from_secs(3600)).unwrap();
        let (release, holder) = hold_the_thread(&passwords).await;
        // Two may wait behind the running one; the third finds the queue full.
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.verify(None, secret("x")).await })
            })
            .collect();
        while passwords.queue.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            passwords.verify(None, secret("x")).await,
            Err(HashError::Busy)
        ));
        drop(release);
        holder.await.unwrap();
        for check in waiting {
            assert!(
                !check.await.unwrap().unwrap(),
                "the queued checks ran once the thread was free"
            );
        }
        assert!(!passwords.verify(None, secret("x")).await.unwrap(), "room again");
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_waits_at_most_its_limit_for_a_thread() {
        let passwords = Passwords::with_queue(1, 8, QUEUE_WAIT).unwrap();
        let (release, holder) = hold_the_thread(&passwords).await;
        let started = tokio::time::Instant::now();
        // The paused clock jumps to the limit: nothing else can happen while the thread is held.
        assert!(matches!(
            passwords.verify(None, secret("x")).await,
            Err(HashError::Busy)
        ));
        assert_eq!(started.elapsed(), QUEUE_WAIT);
        drop(release);
        holder.await.unwrap();
    }

    #[tokio::test]
    async fn same_password_gets_a_fresh_salt() {
        let passwords = Passwords::new(1).unwrap();
        let a = passwords.hash(secret("pw")).await.unwrap();
        let b = passwords.hash(secret("pw")).await.unwrap();
        assert_ne!(a, b);
    }
}
