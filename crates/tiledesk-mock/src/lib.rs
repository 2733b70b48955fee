//! TEST DOUBLE of Tiledesk's server, its chat server, and its widget loader. It is not Tiledesk: it answers every
//! call Tiledesk's widget (chat21-web-widget 5.2.3) makes, with the verification rules of Tiledesk's server, so
//! that tests and the demo run offline (`docs/tiledesk.md` says what each call is and where it was read).
//!
//! Tiledesk API, under `/api/`:
//! - `POST auth/signinWithCustomToken`: `Authorization: JWT <token>` verified as Tiledesk does (HS256/384/512
//!   with the project secret, `aud` selecting the project, `_id` required, `exp`/`nbf` enforced, no leeway); the
//!   reply is `{success, token, user}` with `id` and `fullName` derived as Tiledesk does.
//! - `POST auth/signinAnonymously` (`{id_project}`): a guest and its token.
//! - `POST chat21/native/auth/createCustomToken`: the same check (and `sub: userexternal` for a visitor), then
//!   `{userid, token}`, the chat token the widget connects to the broker and the chat API with.
//! - `POST {projectid}/events`: 401 unless the session token is valid; the widget's loader disposes the widget
//!   on that 401.
//! - `GET {projectid}/widgets`: the project's widget settings; `GET {projectid}/labels/{lang}`: 404 (none);
//!   `GET {projectid}/publicanalytics/waiting/current`: `[]`.
//! - `GET|POST conversations`: the stand-in widget's minimal conversation, kept per chat user id.
//!
//! Chat server ([`chat`]): the chat HTTP API under `/chatapi/api/tilechat/...` and, with a broker
//! (`--mqtt`), the relay ([`relay`]) that delivers what a visitor publishes, as chat21-server does.
//!
//! The loader, under `/widget/`: the stand-in (`web/fake-widget/launch.js`, `?delay_ms=N` delays it), or with
//! `--widget-dir` the real widget built by `cargo xtask widget`, with a `widget-config.json` that points it here.
//!
//! For tests: `/test-site/*` plays a site's token endpoint, `/faulty/*` a broken API,
//! `POST /test/agent-reply` an agent answering, `POST /test/sign-in-fails` makes the next sign-ins fail,
//! `POST /test/chat-token-delay` holds the widget between its sign-in and its chat connection,
//! `POST /test/rotate-secret` regenerates the project's secret,
//! `GET /test/requests` lists the API calls received.

pub mod chat;
pub mod relay;
pub mod shop;
mod site;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tiledesk_jwt::{FindingCode, ProjectId, ProjectSecret, Severity, TokenIssuer, VisitorClaims};
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

pub use site::TestSiteQuery;

/// The stand-in widget loader, served at `/widget/launch.js` when no real widget is given.
pub const LAUNCH_JS: &str = include_str!("../../../web/fake-widget/launch.js");

/// Which widget `/widget/` serves.
#[derive(Clone, Debug)]
pub enum WidgetSource {
    /// The stand-in loader (`web/fake-widget/launch.js`).
    StandIn,
    /// A directory holding the real widget's build (`launch.js`, `index.html`, `main.js`, `assets/`...).
    Built(PathBuf),
}

/// The mock's state: one project, the chat store, and what tests look at.
#[derive(Clone, Debug)]
pub struct MockState {
    project: ProjectId,
    /// The project's secret, as an issuer; `POST /test/rotate-secret` replaces it, as regenerating it in Tiledesk's
    /// dashboard does.
    issuer: Arc<Mutex<Arc<TokenIssuer>>>,
    /// Signs guests' tokens: Tiledesk signs them with a key of its own, not the project's.
    guests: Arc<TokenIssuer>,
    conversations: Arc<Mutex<HashMap<String, Vec<Value>>>>,
    site_requests: Arc<Mutex<HashMap<String, u64>>>,
    chat: chat::SharedStore,
    relay: Option<relay::Relay>,
    widget: WidgetSource,
    /// The broker's websocket URL, for the real widget's `widget-config.json`.
    mqtt_ws_url: Option<String>,
    /// `(status, remaining)`: the next sign-ins answer `status`.
    failing_sign_ins: Arc<Mutex<Option<(u16, u32)>>>,
    /// How long `createCustomToken` waits before answering: the widget's chat connection starts that much later.
    chat_token_delay: Arc<Mutex<Duration>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl MockState {
    /// A mock Tiledesk holding one project and its secret, serving the stand-in loader, without a broker.
    pub fn new(project: ProjectId, secret: ProjectSecret) -> Self {
        let guest_secret =
            ProjectSecret::new(&uuid::Uuid::new_v4().to_string()).unwrap_or_else(|_| unreachable!());
        Self {
            issuer: Arc::new(Mutex::new(Arc::new(TokenIssuer::new(project.clone(), secret)))),
            guests: Arc::new(TokenIssuer::new(project.clone(), guest_secret)),
            project,
            conversations: Arc::default(),
            site_requests: Arc::default(),
            chat: Arc::default(),
            relay: None,
            widget: WidgetSource::StandIn,
            mqtt_ws_url: None,
            failing_sign_ins: Arc::default(),
            chat_token_delay: Arc::default(),
            requests: Arc::default(),
        }
    }

    /// Serves this widget at `/widget/`.
    #[must_use]
    pub fn with_widget(mut self, widget: WidgetSource) -> Self {
        self.widget = widget;
        self
    }

    /// Relays chat messages through the broker at `host:port` (plain MQTT); the widget connects to it at
    /// `ws_url` (its websockets listener).
    #[must_use]
    pub fn with_broker(mut self, host: &str, port: u16, ws_url: String) -> Self {
        self.relay = Some(relay::Relay::start(host, port, Arc::clone(&self.chat)));
        self.mqtt_ws_url = Some(ws_url);
        self
    }
}

/// The mock's router. CORS is open: it is a local test double, reached from test pages on other ports.
pub fn app(state: MockState) -> Router {
    let widget = match &state.widget {
        WidgetSource::StandIn => Router::new().route("/widget/launch.js", get(launch_js)),
        WidgetSource::Built(dir) => Router::new()
            .route("/widget/widget-config.json", get(widget_config))
            .nest_service("/widget", ServeDir::new(dir)),
    }
    // Loadable from cross-origin-isolated pages (the wasm test runner's page is one).
    .layer(SetResponseHeaderLayer::overriding(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("cross-origin"),
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    let api = Router::new()
        .route("/api/auth/signinWithCustomToken", post(sign_in))
        .route("/api/auth/signinAnonymously", post(sign_in_anonymously))
        .route("/api/chat21/native/auth/createCustomToken", post(chat_token))
        .route("/api/conversations", get(list_messages).post(add_message))
        .route("/api/{project}/widgets", get(widgets))
        .route("/api/{project}/events", post(events))
        .route("/api/{project}/labels/{lang}", get(no_labels))
        .route("/api/{project}/publicanalytics/waiting/current", get(waiting))
        .merge(chat::router())
        .layer(middleware::from_fn_with_state(state.clone(), record_request));
    Router::new()
        .merge(api)
        .merge(widget)
        .merge(site::router())
        .route("/test/sign-in-fails", post(sign_in_fails))
        .route("/test/rotate-secret", post(rotate_secret))
        .route("/test/chat-token-delay", post(chat_token_delay))
        .route("/test/requests", get(requests))
        // The page's origin mirrored, with credentials: what `tiledesk-auth` answers a listed origin, so the
        // module's requests with `credentials: "include"` work from the browser tests' own origin.
        .layer(CorsLayer::very_permissive())
        .with_state(state)
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "success": false, "msg": message }))).into_response()
}

/// Why Tiledesk would refuse a token: the status and its message.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn authorization(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Verifies the Authorization header as Tiledesk's passport middleware does; returns the payload.
/// A guest's token (from `signinAnonymously`) is accepted too, as Tiledesk accepts its own.
fn verify(state: &MockState, headers: &HeaderMap) -> Result<Map<String, Value>, Refusal> {
    let value = authorization(headers);
    if value.is_empty() {
        return Err(Refusal(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    // A bare token finds no `<scheme> <token>` pair: 401. More than one space: the 403 of the contract.
    if value.split(' ').count() > 2 {
        return Err(Refusal(StatusCode::FORBIDDEN, "Forbidden"));
    }
    let mut refusal = Refusal(StatusCode::UNAUTHORIZED, "Unauthorized");
    let project_issuer = state.issuer();
    for issuer in [&project_issuer, &state.guests] {
        let report = tiledesk_jwt::check_at(value, &state.project, issuer.secret(), now());
        if report.has(FindingCode::MissingAudience) {
            refusal = Refusal(StatusCode::BAD_REQUEST, "aud is required");
            continue;
        }
        let rejected = report.findings().iter().any(|f| {
            f.severity == Severity::Rejected && f.code != FindingCode::NotVisitorSubject // sign-in ignores `sub`
        });
        if let Some(claims) = report.claims().filter(|_| !rejected) {
            return Ok(claims.clone());
        }
    }
    Err(refusal)
}

/// Logs each API call as `METHOD /path`, for `GET /test/requests`.
async fn record_request(State(state): State<MockState>, request: Request, next: Next) -> Response {
    lock(&state.requests).push(format!("{} {}", request.method(), request.uri().path()));
    next.run(request).await
}

async fn requests(State(state): State<MockState>) -> Json<Value> {
    Json(json!({ "requests": *lock(&state.requests) }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailSignIns {
    status: u16,
    times: u32,
}

impl MockState {
    /// The issuer with the project's current secret.
    pub(crate) fn issuer(&self) -> Arc<TokenIssuer> {
        Arc::clone(&lock(&self.issuer))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    secret: String,
}

/// `POST /test/rotate-secret {secret}`: the project's secret is regenerated, as in Tiledesk's dashboard: every token
/// signed with the old one is refused from now on, the widget's session token included.
async fn rotate_secret(State(state): State<MockState>, Json(rotate): Json<Rotate>) -> Response {
    match ProjectSecret::new(&rotate.secret) {
        Ok(secret) => {
            *lock(&state.issuer) = Arc::new(TokenIssuer::new(state.project.clone(), secret));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `POST /test/sign-in-fails {status, times}`: the next `times` custom-token sign-ins answer `status`.
async fn sign_in_fails(State(state): State<MockState>, Json(fail): Json<FailSignIns>) -> StatusCode {
    *lock(&state.failing_sign_ins) = Some((fail.status, fail.times));
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Delay {
    ms: u64,
}

/// `POST /test/chat-token-delay {ms}`: `createCustomToken` answers that much later (at most 30 s), which holds the
/// widget between its HTTP sign-in and its chat connection.
async fn chat_token_delay(State(state): State<MockState>, Json(delay): Json<Delay>) -> StatusCode {
    *lock(&state.chat_token_delay) = Duration::from_millis(delay.ms.min(30_000));
    StatusCode::NO_CONTENT
}

/// The user object Tiledesk returns: the payload, with `id` and `fullName` derived.
fn user_of(mut claims: Map<String, Value>) -> Map<String, Value> {
    let id = claims.get("_id").cloned().unwrap_or(Value::Null);
    let full_name = ["firstname", "lastname"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    claims.insert("id".to_owned(), id);
    claims.insert("fullName".to_owned(), Value::String(full_name));
    claims
}

async fn sign_in(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let forced = {
        let mut failing = lock(&state.failing_sign_ins);
        match failing.as_mut() {
            Some((status, times)) if *times > 0 => {
                *times -= 1;
                Some(*status)
            }
            _ => None,
        }
    };
    if let Some(status) = forced {
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "failing, as a test asked",
        );
    }
    match verify(&state, &headers) {
        Ok(claims) => {
            let token = authorization(&headers);
            Json(json!({ "success": true, "token": token, "user": user_of(claims) })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct AnonymousRequest {
    id_project: Option<String>,
}

/// A guest: Tiledesk makes a user with a random id and signs its token with a key of its own.
async fn sign_in_anonymously(
    State(state): State<MockState>,
    body: Option<Json<AnonymousRequest>>,
) -> Response {
    if body.and_then(|b| b.0.id_project).as_deref() != Some(state.project.as_str()) {
        return error(StatusCode::BAD_REQUEST, "id_project is required");
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("guest#{}", &id[..4]);
    let token = VisitorClaims::builder(id.as_str())
        .firstname(name.as_str())
        .build()
        .map_err(|e| e.to_string())
        .and_then(|claims| state.guests.mint(&claims).map_err(|e| e.to_string()));
    match token {
        Ok(token) => {
            let user = json!({ "_id": format!("{}_{id}", state.project.as_str()), "firstname": name, "lastname": "" });
            Json(json!({ "success": true, "token": token.as_str(), "user": user })).into_response()
        }
        Err(message) => error(StatusCode::INTERNAL_SERVER_ERROR, &message),
    }
}

async fn chat_token(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let delay = *lock(&state.chat_token_delay);
    tokio::time::sleep(delay).await;
    match verify(&state, &headers) {
        Ok(claims) if claims.get("sub").and_then(Value::as_str) == Some(tiledesk_jwt::VISITOR_SUBJECT) => {
            let user = chat_user(&claims);
            let token = format!("JWT chat21-{}", uuid::Uuid::new_v4().simple());
            chat::lock(&state.chat).issue_token(token.clone(), user.clone());
            Json(json!({ "token": token, "userid": user })).into_response()
        }
        Ok(_) => error(StatusCode::UNAUTHORIZED, "not an external visitor"),
        Err(refusal) => refusal.into_response(),
    }
}

fn chat_user(claims: &Map<String, Value>) -> String {
    claims
        .get("_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `POST {projectid}/events`: the widget reports its auth state with the session token; a 401 here makes the
/// loader hide and dispose the widget.
async fn events(State(state): State<MockState>, Path(project): Path<String>, headers: HeaderMap) -> Response {
    if project != state.project.as_str() {
        return error(StatusCode::NOT_FOUND, "no such project");
    }
    match verify(&state, &headers) {
        Ok(_) => (StatusCode::CREATED, Json(json!({ "success": true }))).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET {projectid}/widgets`: what Tiledesk answers for a project with default widget settings and one department.
async fn widgets(State(state): State<MockState>, Path(project): Path<String>) -> Response {
    if project != state.project.as_str() {
        return error(StatusCode::NOT_FOUND, "no such project");
    }
    Json(json!({
        "project": { "id": project, "_id": project, "name": "Example Shop", "widget": {}, "settings": {} },
        "departments": [{ "_id": "dep1", "id": "dep1", "name": "Default", "default": true, "status": 1 }],
        "user_available": [],
        "ip": "127.0.0.1"
    }))
    .into_response()
}

/// `GET {projectid}/labels/{lang}`: the project has no custom labels (the widget uses its own).
async fn no_labels() -> Response {
    error(StatusCode::NOT_FOUND, "no labels")
}

/// `GET {projectid}/publicanalytics/waiting/current`: no waiting-time statistics yet.
async fn waiting() -> Json<Value> {
    Json(json!([]))
}

/// The real widget's `widget-config.json`: it replaces the built-in environment, pointing every endpoint here.
async fn widget_config(State(state): State<MockState>, headers: HeaderMap) -> Response {
    // Behind a proxy (Trunk's, in `cargo xtask dev`), the host the browser asked for is in `X-Forwarded-Host`: Trunk
    // replaces `Host` with the backend's host, without its port.
    let host = ["x-forwarded-host", "host"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|h| h.to_str().ok()))
        .unwrap_or("127.0.0.1");
    let base = format!("http://{host}");
    let mqtt = state
        .mqtt_ws_url
        .unwrap_or_else(|| "ws://127.0.0.1:9/".to_owned());
    Json(json!({
        "chatEngine": "mqtt",
        "uploadEngine": "native",
        "pushEngine": "none",
        "logLevel": "error",
        "remoteTranslationsUrl": format!("{base}/api/"),
        "firebaseConfig": { "tenant": "tilechat" },
        "chat21Config": { "appId": chat::APP_ID, "MQTTendpoint": mqtt, "APIendpoint": format!("{base}/chatapi/api") },
        "apiUrl": format!("{base}/api/"),
        "baseImageUrl": format!("{base}/api/"),
        "dashboardUrl": "/dashboard/",
        "authPersistence": "LOCAL",
        "enbedJs": "true",
        "brandSrc": ""
    }))
    .into_response()
}

async fn list_messages(State(state): State<MockState>, headers: HeaderMap) -> Response {
    match verify(&state, &headers) {
        Ok(claims) => {
            let messages = lock(&state.conversations)
                .get(&chat_user(&claims))
                .cloned()
                .unwrap_or_default();
            Json(json!({ "messages": messages })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

async fn add_message(
    State(state): State<MockState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    match verify(&state, &headers) {
        Ok(claims) => {
            let text = body
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut conversations = lock(&state.conversations);
            let messages = conversations.entry(chat_user(&claims)).or_default();
            messages.push(json!({ "text": text, "at": now() }));
            (StatusCode::CREATED, Json(json!({ "messages": messages.len() }))).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Deserialize)]
struct LaunchQuery {
    delay_ms: Option<u64>,
}

async fn launch_js(Query(query): Query<LaunchQuery>) -> Response {
    if let Some(ms) = query.delay_ms {
        tokio::time::sleep(Duration::from_millis(ms.min(30_000))).await;
    }
    let mut response = LAUNCH_JS.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/javascript"),
    );
    response
}
