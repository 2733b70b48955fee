//! The project a token is for: its id, which selects the verifying secret through `aud`, and that secret.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::Error;

/// `aud` of every visitor token is this prefix followed by the project id.
pub const TILEDESK_AUDIENCE_PREFIX: &str = "https://tiledesk.com/projects/";

/// Why a text cannot be a project id: [`ProjectId::check`]'s error, and the reason in
/// [`Error::InvalidProjectId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid project id: {0}")]
pub struct InvalidProjectId(pub &'static str);

/// A Tiledesk project id (in practice a 24-digit hex Mongo id).
///
/// Only ASCII letters, digits, `-` and `_` are accepted: the id becomes a URL path segment in `aud`
/// and the prefix of every chat user id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectId(String);

impl ProjectId {
    /// Checks and wraps a project id.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        match Self::check(&id) {
            Ok(()) => Ok(Self(id)),
            Err(InvalidProjectId(reason)) => Err(Error::InvalidProjectId { reason }),
        }
    }

    /// Checks a project id without keeping it (the rule is `tiledesk_rules::project_id_problem`, which the browser
    /// module applies to its `projectId` option).
    #[inline]
    pub fn check(id: &str) -> Result<(), InvalidProjectId> {
        tiledesk_rules::project_id_problem(id).map_or(Ok(()), |reason| Err(InvalidProjectId(reason)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `aud` claim that selects this project on the Tiledesk server.
    pub fn audience(&self) -> String {
        format!("{TILEDESK_AUDIENCE_PREFIX}{}", self.0)
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ProjectId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

/// Shortest project secret accepted, in bytes: 256 bits, what RFC 7518 (section 3.2) requires of an HS256 key.
/// Tiledesk's dashboard generates 36 characters.
pub const MIN_SECRET_LEN: usize = 32;

/// The project's shared secret, as generated in the Tiledesk dashboard.
///
/// `Debug` and `Display` print `[redacted]`; the bytes are wiped when the value is dropped.
/// Surrounding white space (a trailing newline in a file, most often) is not part of the secret.
#[derive(Clone)]
pub struct ProjectSecret(Zeroizing<String>);

impl ProjectSecret {
    /// Wraps a secret given as text. Empty or white-space-only text is an error, and so is a secret shorter than
    /// [`MIN_SECRET_LEN`] bytes: a short HMAC key can be found from one token by trying keys offline.
    pub fn new(secret: &str) -> Result<Self, Error> {
        let trimmed = secret.trim();
        if trimmed.is_empty() {
            return Err(Error::EmptySecret);
        }
        if trimmed.len() < MIN_SECRET_LEN {
            return Err(Error::ShortSecret { len: trimmed.len() });
        }
        Ok(Self(Zeroizing::new(trimmed.to_owned())))
    }

    /// Reads the secret from a file, as mounted by a secrets manager; a trailing newline is trimmed.
    ///
    /// A file written in place (truncated, then written) can be read half-written: replace it atomically instead
    /// (write a new file beside it, then rename it over), as secrets managers and Kubernetes do.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| Error::SecretFile {
            path: path.to_owned(),
            source,
        })?);
        Self::new(&text)
    }

    /// A 256-bit key for another purpose (signing the service's own cookies, say), derived from the secret with
    /// HMAC-SHA256 over `purpose`: different purposes get unrelated keys, none of which reveals the secret. It
    /// changes when the secret is rotated.
    pub fn derive_key(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(purpose.as_bytes());
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// Its length in bytes (the secret itself stays inside). A secret re-read while its file was being written in
    /// place is shorter than the one before it: see [`ProjectSecret::from_file`].
    pub fn byte_len(&self) -> usize {
        self.0.len()
    }

    /// The key bytes, for signing and verifying inside this crate only.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for ProjectSecret {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl fmt::Debug for ProjectSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProjectSecret([redacted])")
    }
}

impl fmt::Display for ProjectSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn project_id_rejects_what_cannot_stand_in_a_url() {
        assert!(ProjectId::new("64f0c0ffee0123456789abcd").is_ok());
        assert!(ProjectId::new("my-project_1").is_ok());
        for bad in ["", "a/b", "a b", "proj?x=1", "é", &"a".repeat(65)] {
            assert!(ProjectId::new(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            ProjectId::new("abc").unwrap().audience(),
            "https://tiledesk.com/projects/abc"
        );
    }

    #[test]
    fn secret_is_trimmed_and_never_printed() {
        let secret = ProjectSecret::new("  s3cr3t-value-3f1c9a52-5d2e-4f7b-9c1a\n").unwrap();
        assert_eq!(secret.as_bytes(), b"s3cr3t-value-3f1c9a52-5d2e-4f7b-9c1a");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "ProjectSecret([redacted])");
        assert!(!format!("{secret:#?}").contains("s3cr3t"));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_by_secret() {
        let a = ProjectSecret::new("3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17").unwrap();
        let b = ProjectSecret::new("3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a18").unwrap();
        assert_eq!(*a.derive_key("cookies"), *a.derive_key("cookies"));
        assert_ne!(*a.derive_key("cookies"), *a.derive_key("other"));
        assert_ne!(*a.derive_key("cookies"), *b.derive_key("cookies"));
        assert_ne!(&a.derive_key("cookies")[..], a.as_bytes());
    }

    #[test]
    fn empty_or_blank_secret_is_an_error() {
        assert!(matches!(ProjectSecret::new(""), Err(Error::EmptySecret)));
        assert!(matches!(ProjectSecret::new(" \n\t"), Err(Error::EmptySecret)));
    }

    #[test]
    fn a_secret_shorter_than_256_bits_is_an_error_that_does_not_show_it() {
        let short = "x".repeat(MIN_SECRET_LEN - 1);
        let err = ProjectSecret::new(&format!(" {short}\n")).unwrap_err();
        assert!(matches!(err, Error::ShortSecret { len: 31 }), "{err:?}");
        assert!(!err.to_string().contains(&short), "{err}");
        assert!(err.to_string().contains("at least 32"), "{err}");
        assert!(ProjectSecret::new(&"x".repeat(MIN_SECRET_LEN)).is_ok());
        // What Tiledesk's dashboard generates.
        assert!(ProjectSecret::new("3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17").is_ok());
    }

    #[test]
    fn secret_from_file_trims_the_trailing_newline() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "from-a-file-3f1c9a52-5d2e-4f7b-9c1a").unwrap();
        let secret = ProjectSecret::from_file(file.path()).unwrap();
        assert_eq!(secret.as_bytes(), b"from-a-file-3f1c9a52-5d2e-4f7b-9c1a");
    }

    #[test]
    fn secret_file_errors_name_the_file() {
        let err = ProjectSecret::from_file("/nonexistent/tiledesk-secret").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tiledesk-secret"), "{err}");
        let empty = tempfile::NamedTempFile::new().unwrap();
        assert!(matches!(
            ProjectSecret::from_file(empty.path()),
            Err(Error::EmptySecret)
        ));
    }
}
