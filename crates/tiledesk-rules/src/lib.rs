//! The rules of Tiledesk's that both `tiledesk-jwt` (which mints and checks tokens) and `tiledesk-auth-web` (the
//! browser module) apply: what a project id may look like, and the scheme in front of a token.
//!
//! A crate of its own, with no dependencies, so the browser module applies exactly the token crate's rules without
//! linking the token crate (and through it a JWT library and serde_json) into its WebAssembly.
//!
//! ```
//! assert_eq!(tiledesk_rules::project_id_problem("64f0c0ffee0123456789abcd"), None);
//! assert!(tiledesk_rules::project_id_problem("a/b").is_some());
//! assert!(tiledesk_rules::is_token_scheme("jwt"));
//! ```

#![deny(missing_docs)]

/// The longest project id accepted. Tiledesk's are 24 hex digits (a Mongo id); the limit leaves room.
pub const MAX_PROJECT_ID_LEN: usize = 64;

/// Why `id` cannot be a Tiledesk project id, or `None` when it can.
///
/// Only ASCII letters, digits, `-` and `_`, 1 to [`MAX_PROJECT_ID_LEN`] of them: the id becomes a URL path segment
/// in the token's `aud`, the prefix of every chat user id, and part of the widget's storage keys.
pub fn project_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_PROJECT_ID_LEN {
        Some("it is longer than 64 characters")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some("only ASCII letters, digits, '-' and '_' are allowed")
    } else {
        None
    }
}

/// Whether `scheme` is the one the Tiledesk server reads in front of a token: `JWT`, in any case (it splits the
/// `Authorization` value on one space and compares the scheme case-insensitively).
#[inline]
pub fn is_token_scheme(scheme: &str) -> bool {
    scheme.eq_ignore_ascii_case("JWT")
}

#[cfg(test)]
mod tests {
    use super::{MAX_PROJECT_ID_LEN, is_token_scheme, project_id_problem};

    #[test]
    fn token_scheme() {
        assert!(is_token_scheme("JWT") && is_token_scheme("jwt") && is_token_scheme("Jwt"));
        assert!(!is_token_scheme("Bearer") && !is_token_scheme("JWT ") && !is_token_scheme(""));
    }

    #[test]
    fn project_ids() {
        assert_eq!(project_id_problem("64f0c0ffee0123456789abcd"), None);
        assert_eq!(project_id_problem("a-b_C9"), None);
        assert_eq!(project_id_problem(""), Some("it is empty"));
        let longest = "a".repeat(MAX_PROJECT_ID_LEN);
        assert_eq!(project_id_problem(&longest), None);
        let longer = "a".repeat(MAX_PROJECT_ID_LEN + 1);
        assert_eq!(
            project_id_problem(&longer),
            Some("it is longer than 64 characters")
        );
        for bad in ["a/b", "a b", "é", "a.b", "a%2F"] {
            assert!(project_id_problem(bad).is_some(), "{bad}");
        }
    }
}
