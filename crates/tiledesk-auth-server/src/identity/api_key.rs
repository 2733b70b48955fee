//! The key a site's backend presents to `POST /tokens`. Only its SHA-256 digest is kept in memory,
//! and comparison is constant-time over digests, so neither content nor length leaks through timing.
//!
//! A key file may hold several keys, one per line, so a key can be rotated with an overlap: add the new key,
//! reload, move the site backend over, remove the old key, reload.

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
    /// A line of the key file holds a key shorter than [`MIN_API_KEY_LEN`].
    #[error(
        "line {line} of the API key file {path}: the API key must be at least {MIN_API_KEY_LEN} characters long"
    )]
    ShortLine {
        /// The file.
        path: std::path::PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// The key file holds no key (only blank lines and `#` comments).
    #[error("the API key file {path} holds no key")]
    NoKey {
        /// The file.
        path: std::path::PathBuf,
    },
}

/// The configured API key or keys (their digests). `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct ApiKey(Arc<[[u8; 32]]>);

impl ApiKey {
    /// Accepts one key of at least [`MIN_API_KEY_LEN`] characters; surrounding white space is trimmed.
    pub fn new(key: &str) -> Result<Self, ApiKeyError> {
        let key = key.trim();
        if !long_enough(key) {
            return Err(ApiKeyError::TooShort);
        }
        Ok(Self(Arc::new([digest(key)])))
    }

    /// Reads the keys from a file: one per line, each trimmed; blank lines and lines starting with `#` are
    /// skipped. Every key must be at least [`MIN_API_KEY_LEN`] characters, and there must be one.
    pub fn from_file(path: &Path) -> Result<Self, ApiKeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| ApiKeyError::File {
            path: path.to_owned(),
            source,
        })?);
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let key = line.trim();
            if key.is_empty() || key.starts_with('#') {
                continue;
            }
            if !long_enough(key) {
                return Err(ApiKeyError::ShortLine {
                    path: path.to_owned(),
                    line: index + 1,
                });
            }
            keys.push(digest(key));
        }
        if keys.is_empty() {
            return Err(ApiKeyError::NoKey {
                path: path.to_owned(),
            });
        }
        Ok(Self(keys.into()))
    }

    /// No key at all: every key presented is refused. What a key file emptied of keys means on reload: its
    /// owner revoked them.
    pub fn revoked() -> Self {
        Self(Arc::new([]))
    }

    /// How many keys are accepted.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// Whether `presented` is one of the keys, in time independent of where or whether they differ and of
    /// which key it is.
    pub fn matches(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let found = self
            .0
            .iter()
            .fold(subtle::Choice::from(0), |found, key| found | presented.ct_eq(key));
        bool::from(found)
    }
}

fn long_enough(key: &str) -> bool {
    key.chars().count() >= MIN_API_KEY_LEN
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
    fn a_revoked_set_matches_nothing() {
        let revoked = ApiKey::revoked();
        assert_eq!(revoked.count(), 0);
        assert!(!revoked.matches("site-backend-key-0123"));
        assert!(!revoked.matches(""));
    }

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

    fn from_text(text: &str) -> (tempfile::TempDir, std::path::PathBuf, Result<ApiKey, ApiKeyError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-key");
        std::fs::write(&path, text).unwrap();
        let key = ApiKey::from_file(&path);
        (dir, path, key)
    }

    #[test]
    fn a_file_holds_one_key_or_several_for_an_overlap() {
        let (_dir, _, one) = from_text("site-backend-key-0123\n");
        let one = one.unwrap();
        assert_eq!(one.count(), 1);
        assert!(one.matches("site-backend-key-0123"));
        assert!(!one.matches("site-backend-key-0123\n"));

        let (_dir, _, two) = from_text(
            "# old key, remove once every backend uses the new one\n  old-site-backend-key-1  \n\nnew-site-backend-key-2\r\n",
        );
        let two = two.unwrap();
        assert_eq!(two.count(), 2);
        assert!(two.matches("old-site-backend-key-1"));
        assert!(two.matches("new-site-backend-key-2"));
        assert!(!two.matches("# old key, remove once every backend uses the new one"));
        assert!(!two.matches("old-site-backend-key-1\nnew-site-backend-key-2"));
        assert!(!two.matches(""));
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let (_dir, path, short) = from_text("long-enough-key-0123\n\nshort\n");
        let err = short.unwrap_err();
        assert!(matches!(err, ApiKeyError::ShortLine { line: 3, .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "line 3 of the API key file {}: the API key must be at least 16 characters long",
                path.display()
            )
        );
        for empty in ["", "\n  \n", "# only a comment\n"] {
            let (_dir, path, none) = from_text(empty);
            let err = none.unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the API key file {} holds no key", path.display())
            );
        }
        let err = ApiKey::from_file(Path::new("/nonexistent/api-key")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read the API key file /nonexistent/api-key: "),
            "{err}"
        );
    }
}
