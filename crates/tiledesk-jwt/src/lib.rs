//! Tiledesk visitor tokens: the claims a site may put in them, minting, and checking a token
//! against the rules the Tiledesk server applies (see `docs/tiledesk.md`, "The token Tiledesk accepts").
//!
//! No I/O beyond reading a secret file on request, so it compiles for any target.
//!
//! With the `clap` feature, `args::ProjectArgs` gives a command line `--project-id`, `--secret` and
//! `--secret-file` (with their environment variables), resolved the way `tiledesk-auth` resolves them.
//!
//! ```
//! use std::time::Duration;
//! use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};
//!
//! let project = ProjectId::new("64f0c0ffee0123456789abcd")?;
//! let secret: ProjectSecret = "3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17".parse()?;
//! let issuer = TokenIssuer::new(project.clone(), secret).with_ttl(Duration::from_secs(30 * 60))?;
//!
//! let claims = VisitorClaims::builder("42").firstname("Andrew").email("andrew@scientists.com").build()?;
//! let token = issuer.mint(&claims)?;
//! assert!(token.to_string().starts_with("JWT "));
//!
//! let report = tiledesk_jwt::check(&token.to_string(), &project, issuer.secret());
//! assert!(report.is_accepted() && report.is_safe());
//! # Ok::<(), tiledesk_jwt::Error>(())
//! ```

#[cfg(feature = "clap")]
pub mod args;
mod check;
mod claims;
mod error;
mod issuer;
mod project;

pub use check::{Finding, FindingCode, Report, Severity, check, check_at};
pub use claims::{
    MAX_ATTRIBUTE_KEY_LEN, MAX_EMAIL_LEN, MAX_NAME_LEN, MAX_USER_ID_LEN, RESERVED_CLAIMS, VisitorClaims,
    VisitorClaimsBuilder, is_valid_email, reserved_claim,
};
pub use error::Error;
pub use issuer::{DEFAULT_TOKEN_TTL, MAX_TOKEN_LEN, MAX_TOKEN_TTL, TokenIssuer, VisitorToken};
pub use project::{InvalidProjectId, MIN_SECRET_LEN, ProjectId, ProjectSecret, TILEDESK_AUDIENCE_PREFIX};

/// The `sub` every visitor token carries: Tiledesk treats any other subject as a dashboard user.
pub const VISITOR_SUBJECT: &str = "userexternal";

/// The scheme the Tiledesk server expects in front of the token, with its one space.
pub const TOKEN_SCHEME_PREFIX: &str = "JWT ";

/// Whether `scheme` is the one the Tiledesk server reads in front of a token (`JWT`, in any case); the rule lives in
/// `tiledesk-rules`, shared with the browser module.
pub use tiledesk_rules::is_token_scheme;
