//! The OpenAPI 3.1 document of the HTTP API, generated from the routes' own annotations (`utoipa`), so it cannot
//! drift from them: served at `GET /openapi.json`, printed by `tiledesk-auth openapi`, committed as
//! `docs/openapi.json` (a test keeps the file equal to this and checks real answers of every route against it).
//!
//! The request bodies and the error body are described by the types here; the answers by the types the routes
//! serialize.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::{TokenResponse, UserView};

/// The API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tiledesk-auth",
        description = "Signs a site's logged-in users into the Tiledesk chat widget with verified tokens. Every error \
            is `{\"error\": <code>, \"message\": <for a person>}` with `Cache-Control: no-store`; the codes are listed \
            in README (\"HTTP API\")."
    ),
    paths(
        crate::routes::auth::sign_in,
        crate::routes::auth::sign_out,
        crate::routes::tokens::issue_token,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
    ),
    components(schemas(
        TokenResponse,
        UserView,
        AuthRequest,
        PasswordLogin,
        NoCredentials,
        TokensRequest,
        ErrorBody,
        Status,
        NotReady,
        Problem
    )),
    modifiers(&ApiKey),
)]
struct Api;

/// The document, as pretty JSON.
pub fn document() -> String {
    let mut text = Api::openapi()
        .to_pretty_json()
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A key of `--api-key-file` (or `TILEDESK_API_KEY`)"))
                    .build(),
            ),
        );
    }
}

/// The body of `POST /auth`: a password login, or no credentials at all.
#[allow(dead_code)] // a description of the wire format, never built
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum AuthRequest {
    /// A user of the password store.
    Password(PasswordLogin),
    /// No credentials: the login session, the site's session, or the `Authorization` header's ID token decides.
    None(NoCredentials),
}

/// Email and password.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordLogin {
    /// The user's email (compared without regard to case).
    email: String,
    /// The password, as typed (no trimming).
    password: String,
}

/// `{}`.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoCredentials {}

/// The body of `POST /tokens`.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensRequest {
    /// The site's user id: the token's `_id` is `<project>_<user_id>`.
    user_id: String,
    /// First name, shown to agents.
    firstname: Option<String>,
    /// Last name, shown to agents.
    lastname: Option<String>,
    /// A valid email.
    email: Option<String>,
    /// Anything else for the agents, as the token's `attributes` (no reserved claim).
    attributes: Option<Map<String, Value>>,
}

/// Every error.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    /// A stable, machine-readable code (`invalid_credentials`, `too_many_attempts`, `auth_rejected`...).
    error: String,
    /// A sentence for a person; never a detail of the service's own state.
    message: String,
}

/// `{"status": ...}`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub(crate) struct Status {
    /// `ok` (`/healthz`), `ready` (`/readyz`), `signed_out` (`DELETE /auth`).
    status: String,
}

/// `GET /readyz` when not ready.
#[allow(dead_code)]
#[derive(ToSchema)]
pub(crate) struct NotReady {
    /// `not_ready`.
    status: String,
    /// What is wrong.
    problems: Vec<Problem>,
}

/// One failed readiness check.
#[allow(dead_code)]
#[derive(ToSchema)]
pub(crate) struct Problem {
    /// `database`, `throttle` or `identity_provider`.
    check: String,
    /// A fixed sentence.
    error: String,
}
