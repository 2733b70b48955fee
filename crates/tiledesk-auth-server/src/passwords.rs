//! Password hashing with argon2id, always on the blocking pool and never more at once than there are cores,
//! so a flood of logins queues instead of stalling the async threads that serve everything else.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Longest password accepted, in bytes: long enough for any passphrase, short enough to bound the work.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes and verifies passwords. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the email is unknown so that an unknown
    /// email costs the same time as a wrong password.
    decoy_hash: Arc<str>,
}

fn hasher() -> Argon2<'static> {
    // argon2id, 19 MiB, 2 passes, 1 lane: OWASP's recommended minimum.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

impl Passwords {
    /// Allows `max_concurrent` hashes at once (at least one), and prepares the decoy hash.
    pub fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let mut random = [0u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        let decoy = hash_blocking(&random)?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            decoy_hash: decoy.into(),
        })
    }

    /// One permit per available core.
    pub fn for_this_machine() -> anyhow::Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }

    /// Hashes `password` into a PHC string (`$argon2id$...`).
    pub async fn hash(&self, password: Zeroizing<String>) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("password hasher closed")?;
        tokio::task::spawn_blocking(move || hash_blocking(password.as_bytes()))
            .await
            .context("password hashing task failed")?
    }

    /// Whether `password` matches `stored`. With `stored = None` (unknown user) it does the same work
    /// against a decoy and answers `false`.
    pub async fn verify(&self, stored: Option<String>, password: Zeroizing<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("password hasher closed")?;
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.decoy_hash.to_string());
        let matched = tokio::task::spawn_blocking(move || verify_blocking(&hash, password.as_bytes()))
            .await
            .context("password verification task failed")??;
        Ok(known && matched)
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

fn verify_blocking(stored: &str, password: &[u8]) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash is unreadable: {e}"))?;
    // The parameters come from the stored hash, so hashes made with older settings still verify.
    Ok(hasher().verify_password(password, &parsed).is_ok())
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
    async fn unknown_user_never_matches_even_the_decoy() {
        let passwords = Passwords::new(1).unwrap();
        assert!(!passwords.verify(None, secret("")).await.unwrap());
        assert!(!passwords.verify(None, secret("anything")).await.unwrap());
    }

    #[tokio::test]
    async fn same_password_gets_a_fresh_salt() {
        let passwords = Passwords::new(1).unwrap();
        let a = passwords.hash(secret("pw")).await.unwrap();
        let b = passwords.hash(secret("pw")).await.unwrap();
        assert_ne!(a, b);
    }
}
