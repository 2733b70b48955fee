//! The ways a visitor is identified, and the [`Visitor`] the bridges produce: the password store ([`users`]) and the
//! login session that refreshes a password login ([`login_session`]), the site's own session ([`session`]), the
//! site's identity provider ([`oidc`]), and the API key of a site backend that says who the visitor is
//! ([`api_key`]).

pub mod api_key;
pub mod login_session;
pub mod oidc;
pub mod session;
pub mod site;
pub mod users;

/// The visitor a login bridge vouches for ([`session`], [`oidc`]): the claims to mint, and what the answer tells the
/// page.
#[derive(Debug)]
pub struct Visitor {
    /// The claims, checked.
    pub claims: tiledesk_jwt::VisitorClaims,
    /// The user's id on the site (the session's `id`, the ID token's `sub`).
    pub id: String,
    /// The user's email, when it is known (and, from an ID token, verified).
    pub email: Option<String>,
    /// The user's first name, when known.
    pub firstname: Option<String>,
    /// The user's last name, when known.
    pub lastname: Option<String>,
    /// The latest expiry (Unix seconds) of a token minted for them: the end of the proof they came with (an ID
    /// token's `exp`), when it has one.
    pub not_after: Option<u64>,
}

impl Visitor {
    /// The same visitor with their id in the namespace `prefix` (`--session-id-prefix`, `--oidc-id-prefix`).
    pub(crate) fn with_id_prefix(mut self, prefix: &str) -> Result<Self, tiledesk_jwt::Error> {
        if !prefix.is_empty() {
            self.claims = self.claims.with_id_prefix(prefix)?;
            self.id.insert_str(0, prefix);
        }
        Ok(self)
    }
}

/// Whether `prefix` may begin the ids of a way in (`--session-id-prefix`, `--oidc-id-prefix`): at most 32 ASCII
/// letters, digits, `.`, `_`, `:` or `-`.
pub fn id_prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.len() > 32 {
        Some("it is longer than 32 characters")
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        Some("only ASCII letters, digits, `.`, `_`, `:` and `-` may be used")
    } else {
        None
    }
}

/// What both login bridges' HTTP clients have: no redirect followed (a redirect would take the request, and the
/// visitor's headers, elsewhere), `timeout` for connecting and for the whole exchange, this service's user agent.
pub(crate) fn outbound_client(timeout: std::time::Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("tiledesk-auth/", env!("CARGO_PKG_VERSION")))
}
