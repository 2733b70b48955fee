//! A Rust site that mounts tiledesk-auth in its own axum app: the site has its own login (`POST /login` sets its
//! session cookie), and the person signed in to the site is the chat visitor. No password store, no session URL:
//! the site tells the service who is signed in through [`SiteLogin`], in the same process.
//!
//! ```text
//! TILEDESK_PROJECT_ID=64f0c0ffee0123456789abcd TILEDESK_SECRET=$(cat secret) \
//!     cargo run -p tiledesk-auth-server --example mount_in_axum -- 127.0.0.1:3000
//! curl -c jar -H "Content-Type: application/json" -d '{"name": "ada"}' http://127.0.0.1:3000/login
//! curl -b jar -H 'Content-Type: application/json' -d '{}' http://127.0.0.1:3000/chat-auth/auth
//! ```
//!
//! The page then loads the module from `/chat-auth/tiledesk-auth/...` (`tiledesk-auth snippet` prints the tag,
//! with `--base-url https://shop.example/chat-auth`) or imports it from npm, with `authUrl: "/chat-auth/auth"`.

#![allow(clippy::print_stdout)] // the example says where it listens

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tiledesk_auth_server::Service;
use tiledesk_auth_server::identity::site::{SiteError, SiteLogin, SiteUser};
use tiledesk_jwt::{ProjectId, ProjectSecret};

/// The site's sessions: a random session id (the cookie) to the user's name. A real site has its own store.
#[derive(Clone, Default)]
struct Sessions(Arc<Mutex<HashMap<String, String>>>);

impl Sessions {
    /// The user of the session the request's cookie names.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
        let id = cookies
            .split(';')
            .find_map(|cookie| cookie.trim().strip_prefix("shop_session="))?;
        self.0.lock().ok()?.get(id).cloned()
    }
}

/// How the chat service learns who is signed in to the shop: the same sessions the shop's own pages use.
impl SiteLogin for Sessions {
    async fn visitor(&self, request: &Parts) -> Result<Option<SiteUser>, SiteError> {
        Ok(self.user(&request.headers).map(|name| {
            SiteUser::new(format!("shop-{name}"))
                .email(format!("{name}@shop.example"))
                .name(name, "Shopper")
        }))
    }
}

#[derive(serde::Deserialize)]
struct Login {
    name: String,
}

/// The shop's own login: no password here, it is the shop's business, not this example's.
async fn login(State(sessions): State<Sessions>, Json(login): Json<Login>) -> impl IntoResponse {
    if login.name.is_empty() || !login.name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return (
            StatusCode::BAD_REQUEST,
            HeaderMap::new(),
            "a name of letters and digits",
        );
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    if let Ok(mut table) = sessions.0.lock() {
        table.insert(id.clone(), login.name);
    }
    let mut headers = HeaderMap::new();
    if let Ok(cookie) = format!("shop_session={id}; Path=/; HttpOnly; SameSite=Lax").parse() {
        headers.insert(header::SET_COOKIE, cookie);
    }
    (StatusCode::OK, headers, "signed in")
}

async fn home(State(sessions): State<Sessions>, headers: HeaderMap) -> String {
    match sessions.user(&headers) {
        Some(name) => format!("hello {name}"),
        None => "hello stranger".to_owned(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()?;
    let project = ProjectId::new(std::env::var("TILEDESK_PROJECT_ID")?)?;
    let secret = ProjectSecret::new(&std::env::var("TILEDESK_SECRET")?)?;
    let sessions = Sessions::default();

    let chat = Service::builder(project, secret)
        .site_login(sessions.clone())
        .build()
        .await?;
    let app = Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .with_state(sessions)
        .nest("/chat-auth", chat.router());

    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("shop listening on http://{}", listener.local_addr()?);
    // The peer's address reaches the service's login throttle.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
