//! The site's own login, in the same process: a Rust site that mounts this service into its own axum app (see
//! [`crate::Service`]) says who a request's visitor is by implementing [`SiteLogin`], reading its own session (a
//! cookie, or what its session middleware put in the request's extensions). `POST /auth` without credentials then
//! signs that visitor in, with the protections of the session bridge ([`super::session`]): a JSON body and an allowed
//! origin, since the proof is a cookie the browser sends by itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::request::Parts;
use serde_json::{Map, Value};
use tiledesk_jwt::{VisitorClaims, VisitorClaimsBuilder};

use super::Visitor;

/// What a [`SiteLogin`] may fail with: the site could not tell (its session store is down...). The visitor gets
/// `502 session_failed`; the error goes to the log.
pub type SiteError = Box<dyn std::error::Error + Send + Sync>;

/// A user of the site, as the site vouches for them: what their chat identity is made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteUser {
    /// The user's stable id on the site: the same person always gets the same chat identity.
    pub id: String,
    /// Their email, when the site knows it (shown to agents).
    pub email: Option<String>,
    /// Their first name.
    pub firstname: Option<String>,
    /// Their last name.
    pub lastname: Option<String>,
    /// Anything else for the agents (a plan, an account number), as the token's `attributes`.
    pub attributes: Option<Map<String, Value>>,
}

impl SiteUser {
    /// A user known by `id` alone.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }

    /// With an email.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// With a first and a last name.
    #[must_use]
    pub fn name(mut self, firstname: impl Into<String>, lastname: impl Into<String>) -> Self {
        self.firstname = Some(firstname.into());
        self.lastname = Some(lastname.into());
        self
    }

    /// The visitor to mint for, held to the token's rules (lengths, a valid email, no reserved attribute).
    pub(crate) fn into_visitor(self) -> Result<Visitor, tiledesk_jwt::Error> {
        let mut claims = VisitorClaims::builder(self.id.as_str())
            .with(self.email.as_deref(), VisitorClaimsBuilder::email)
            .with(self.firstname.as_deref(), VisitorClaimsBuilder::firstname)
            .with(self.lastname.as_deref(), VisitorClaimsBuilder::lastname);
        if let Some(attributes) = self.attributes {
            claims = claims.attributes(Value::Object(attributes));
        }
        Ok(Visitor {
            claims: claims.build()?,
            id: self.id,
            email: self.email,
            firstname: self.firstname,
            lastname: self.lastname,
            not_after: None,
        })
    }
}

/// How a site that mounts this service says who is signed in to it.
///
/// ```
/// use axum::http::request::Parts;
/// use tiledesk_auth_server::identity::site::{SiteError, SiteLogin, SiteUser};
///
/// /// The site's sessions: here, a cookie `shop_session=<user id>` (a real site looks its session up).
/// struct Shop;
///
/// impl SiteLogin for Shop {
///     async fn visitor(&self, request: &Parts) -> Result<Option<SiteUser>, SiteError> {
///         let cookies = request.headers.get("cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
///         Ok(cookies
///             .split("; ")
///             .find_map(|c| c.strip_prefix("shop_session="))
///             .map(|id| SiteUser::new(id).email(format!("{id}@shop.example"))))
///     }
/// }
/// ```
pub trait SiteLogin: Send + Sync + 'static {
    /// The user signed in to the site on this request, `None` when nobody is (`401 auth_rejected`), or an error
    /// when the site cannot tell (`502 session_failed`, the error logged).
    fn visitor(&self, request: &Parts) -> impl Future<Output = Result<Option<SiteUser>, SiteError>> + Send;
}

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Option<SiteUser>, SiteError>> + Send + 'a>>;

/// [`SiteLogin`] behind a pointer: what the service holds.
trait Erased: Send + Sync {
    fn visitor_boxed<'a>(&'a self, request: &'a Parts) -> Answer<'a>;
}

impl<T: SiteLogin> Erased for T {
    fn visitor_boxed<'a>(&'a self, request: &'a Parts) -> Answer<'a> {
        Box::pin(self.visitor(request))
    }
}

/// A site's [`SiteLogin`], as the service holds it. Cheap to clone.
#[derive(Clone)]
pub struct SiteLogins(Arc<dyn Erased>);

impl SiteLogins {
    /// Holds `login`.
    pub fn new(login: impl SiteLogin) -> Self {
        Self(Arc::new(login))
    }

    /// What the site says of this request.
    pub(crate) async fn visitor(&self, request: &Parts) -> Result<Option<SiteUser>, SiteError> {
        self.0.visitor_boxed(request).await
    }
}

impl std::fmt::Debug for SiteLogins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SiteLogins")
    }
}
