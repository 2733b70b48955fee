#![deny(missing_docs)]
//! The `tiledesk-auth` service: authenticates a site's visitor and mints the Tiledesk token that signs them
//! into the chat widget.
//!
//! [`Service::builder`] puts the service together, for the binary and for a site that mounts it in its own axum app
//! ([`Service::router`]); [`app`] is the whole HTTP service the binary serves; [`cli`] holds the command line.
//!
//! The crate by concern: [`identity`] (who the visitor is: the password store, the site's session, its identity
//! provider, API keys), [`guard`] (what protects logins: throttles, device cookies, password hashing), [`http`] (the
//! accept loop and its layers, bodies, client addresses, errors, logging), the routes, [`readiness`], the browser
//! [`module`] this binary serves, and [`cli`].

mod app;
pub mod audit;
pub mod cli;
pub mod guard;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod module;
pub mod openapi;
pub mod readiness;
mod routes;
mod service;
mod state;

pub use app::{HttpService, app};
pub use guard::passwords::Passwords;
pub use guard::throttle::{Admission, LoginThrottle, ThrottlePolicy};
pub use http::body::MAX_BODY_BYTES;
pub use http::error::ApiError;
pub use identity::api_key::ApiKey;
pub use identity::users::UserStore;
pub use identity::{Visitor, id_prefix_problem};
pub use service::{BuildError, Service, ServiceBuilder};
pub use state::{AppState, Reloadable};
