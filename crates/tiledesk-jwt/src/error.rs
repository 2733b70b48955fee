//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while building claims, loading a secret or minting a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The project id is empty, too long, or has characters that cannot stand in a URL path segment.
    #[error("invalid project id: {reason}")]
    InvalidProjectId {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The project secret is empty or only white space.
    #[error("the project secret is empty")]
    EmptySecret,
    /// The project secret is shorter than [`MIN_SECRET_LEN`](crate::MIN_SECRET_LEN) bytes.
    #[error(
        "the project secret is {len} bytes long; at least {} are required (an HS256 key must have at least 256 \
         bits, RFC 7518 section 3.2; Tiledesk's dashboard generates 36 characters)",
        crate::MIN_SECRET_LEN
    )]
    ShortSecret {
        /// Its length in bytes, once trimmed.
        len: usize,
    },
    /// A setting the command needs was not given.
    #[error("no {what}: {how}")]
    NotConfigured {
        /// What is missing.
        what: &'static str,
        /// How to give it.
        how: &'static str,
    },
    /// The secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    SecretFile {
        /// The file that was asked for.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The site's user id is empty.
    #[error("the user id is empty")]
    EmptyUserId,
    /// A field is longer than its limit.
    #[error("{field} is too long ({len} bytes, at most {max})")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A field holds a control character (a newline, a NUL byte...).
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The field's name.
        field: &'static str,
    },
    /// The email is not of the shape `local@domain.tld`.
    #[error("the email address is not valid")]
    InvalidEmail,
    /// A caller tried to set a claim this crate owns (`_id`, `sub`, `aud`, `exp`, `role`...).
    #[error("`{name}` is a reserved claim and cannot be set by the caller")]
    ReservedClaim {
        /// The reserved name.
        name: String,
    },
    /// An attribute key is empty or too long.
    #[error("invalid attribute key: {reason}")]
    InvalidAttributeKey {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The token lifetime is zero or above [`crate::MAX_TOKEN_TTL`].
    #[error("token lifetime must be between 1 second and {max_secs} seconds, got {secs} seconds")]
    TtlOutOfRange {
        /// The requested lifetime in whole seconds.
        secs: u64,
        /// The cap in seconds.
        max_secs: u64,
    },
    /// The token would be longer than [`MAX_TOKEN_LEN`](crate::MAX_TOKEN_LEN): too many or too long attributes.
    #[error(
        "the token would be {len} bytes, over the {max} a token may have: send fewer or shorter attributes"
    )]
    TokenTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The clock is before 1970, or so far ahead that `exp` overflows.
    #[error("the clock is out of range")]
    Clock,
    /// The operating system's random source failed.
    #[error("no randomness available for the token id")]
    Random,
    /// Signing failed inside `jsonwebtoken`.
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}
