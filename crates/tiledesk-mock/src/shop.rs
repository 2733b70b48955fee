//! "Example Shop": a TEST DOUBLE of a customer's website, with a login of its own (a session cookie), for the
//! one-tag demo and its end-to-end tests. Its pages come from a directory; `POST /shop/login` checks the shop's
//! own user and sets `sid` (HttpOnly, SameSite=Lax), `POST /shop/logout` ends the session, and `GET /shop/me`
//! answers who holds the cookie, as `tiledesk-auth serve --session-url` expects (200 with the user, or 401).
//! Every answer carries the Content-Security-Policy it was given.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// The shop's one user: `EMAIL=PASSWORD` on the command line, with a first name.
#[derive(Clone, Debug)]
pub struct ShopUser {
    /// The email the shop's login takes; also the user's id on the shop.
    pub email: String,
    /// The password the shop's login takes.
    pub password: String,
    /// The first name the shop knows.
    pub firstname: String,
}

impl ShopUser {
    /// The user's id on the shop: what the chat id is made of (`<project>_shop-<first name>`).
    pub fn id(&self) -> String {
        format!("shop-{}", self.firstname.to_lowercase())
    }
}

impl std::str::FromStr for ShopUser {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (email, rest) = text
            .split_once('=')
            .ok_or("expected EMAIL=PASSWORD[:FIRSTNAME]")?;
        let (password, firstname) = rest.split_once(':').unwrap_or((rest, "Shopper"));
        Ok(Self {
            email: email.to_owned(),
            password: password.to_owned(),
            firstname: firstname.to_owned(),
        })
    }
}

#[derive(Clone)]
struct Shop {
    user: Option<ShopUser>,
    /// Session id to the user's email.
    sessions: Arc<Mutex<HashMap<String, String>>>,
}

/// The shop's router: the pages of `dir`, its login, logout and `me`; `csp` on every answer.
pub fn app(dir: PathBuf, user: Option<ShopUser>, csp: Option<HeaderValue>) -> Router {
    let shop = Shop {
        user,
        sessions: Arc::default(),
    };
    let router = Router::new()
        .route("/shop/login", post(login))
        .route("/shop/logout", post(logout))
        .route("/shop/me", get(me))
        .with_state(shop)
        .fallback_service(ServeDir::new(dir).append_index_html_on_directories(true))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    match csp {
        Some(policy) => router.layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            policy,
        )),
        None => router,
    }
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

async fn login(State(shop): State<Shop>, Json(login): Json<Login>) -> Response {
    let Some(user) = shop
        .user
        .as_ref()
        .filter(|u| u.email == login.email && u.password == login.password)
    else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "wrong email or password"})),
        )
            .into_response();
    };
    let sid = uuid::Uuid::new_v4().simple().to_string();
    crate::lock(&shop.sessions).insert(sid.clone(), user.email.clone());
    (
        [(
            header::SET_COOKIE,
            format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/"),
        )],
        Json(json!({"signed_in": user.email})),
    )
        .into_response()
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .flat_map(|c| c.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("sid=").map(str::to_owned))
}

async fn logout(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    if let Some(sid) = session_of(&headers) {
        crate::lock(&shop.sessions).remove(&sid);
    }
    (
        [(
            header::SET_COOKIE,
            "sid=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0",
        )],
        Json(json!({"signed_out": true})),
    )
        .into_response()
}

async fn me(State(shop): State<Shop>, headers: HeaderMap) -> Response {
    let email = session_of(&headers).and_then(|sid| crate::lock(&shop.sessions).get(&sid).cloned());
    match (email, &shop.user) {
        (Some(email), Some(user)) if email == user.email => Json(json!({
            "id": user.id(),
            "email": email,
            "firstname": user.firstname,
        }))
        .into_response(),
        _ => (StatusCode::UNAUTHORIZED, Json(json!({"error": "not signed in"}))).into_response(),
    }
}
