//! The key a site's backend presents to `POST /tokens`. Only its SHA-256 digest is kept in memory,
//! and comparison is constant-time over digests, so neither content nor length leaks through timing.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Shortest API key accepted: a key that can be guessed is no key.
pub const MIN_API_KEY_LEN: usize = 16;

/// Why an API key was refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Shorter than [`MIN_API_KEY_LEN`] once trimmed.
    #[error("the API key must be at least {MIN_API_KEY_LEN} characters long")]
    TooShort,
    /// The key file could not be read.
    #[error("cannot read the API key file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// The configured API key (its digest). `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct ApiKey(Arc<[u8; 32]>);

impl ApiKey {
    /// Accepts a key of at least [`MIN_API_KEY_LEN`] characters; surrounding white space is trimmed.
    pub fn new(key: &str) -> Result<Self, ApiKeyError> {
        let key = key.trim();
        if key.chars().count() < MIN_API_KEY_LEN {
            return Err(ApiKeyError::TooShort);
        }
        Ok(Self(Arc::new(digest(key))))
    }

    /// Reads the key from a file; a trailing newline is trimmed.
    pub fn from_file(path: &Path) -> Result<Self, ApiKeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| ApiKeyError::File {
            path: path.to_owned(),
            source,
        })?);
        Self::new(&text)
    }

    /// Whether `presented` is the key, in time independent of where or whether they differ.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(digest(presented).ct_eq(&*self.0))
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl FromStr for ApiKey {
    type Err = ApiKeyError;
    fn from_str(s: &str) -> Result<Self, ApiKeyError> {
        Self::new(s)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_key() {
        let key = ApiKey::new(" site-backend-key-0123 \n").unwrap();
        assert!(key.matches("site-backend-key-0123"));
        assert!(!key.matches("site-backend-key-012"));
        assert!(!key.matches("site-backend-key-01234"));
        assert!(!key.matches(""));
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(ApiKey::new("short"), Err(ApiKeyError::TooShort)));
        assert!(matches!(ApiKey::new("   "), Err(ApiKeyError::TooShort)));
    }
}
