//! The session bridge (`--session-url`) against a small site with real cookie sessions: its login sets a session
//! cookie, its `/me` answers who holds it. A `POST /auth` without credentials that carries the cookie is signed in
//! as that user; the site sees the visitor's Cookie header (Authorization only when asked for) and the visitor's
//! address, and nothing else; every way the site can fail is a stable code, with none of the site's words.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::{Options, PROJECT, post_json, test_app};
use serde_json::{Value, json};

/// What the site saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: usize,
}

#[derive(Clone, Default)]
struct SiteState {
    /// Session id to user name: the site's own sessions.
    sessions: Arc<Mutex<HashMap<String, String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// `/hold`: requests wait here until it is opened, counted while they wait.
    held: Arc<(tokio::sync::watch::Sender<bool>, std::sync::atomic::AtomicUsize)>,
}

/// The site, on a port of its own.
struct Site {
    url: String,
    state: SiteState,
}

impl Site {
    async fn start() -> Self {
        let state = SiteState::default();
        let app = axum::Router::new()
            .route("/login", post(login))
            .route("/me", get(me))
            .route("/status/{code}", get(status))
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/me")]) }),
            )
            .route(
                "/slow",
                get(|| async { tokio::time::sleep(Duration::from_secs(60)).await }),
            )
            .route("/answer/{name}", get(answer))
            .route("/basic", get(basic))
            .route("/hold", get(hold))
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Signs `user` in on the site, as a browser would, and returns the cookie the site set.
    async fn sign_in(&self, user: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/login", self.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({ "user": user }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

async fn record(State(site): State<SiteState>, request: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    site.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers.clone(),
        body: bytes.len(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

async fn login(State(site): State<SiteState>, Json(body): Json<Value>) -> Response {
    let user = body["user"].as_str().unwrap().to_owned();
    let sid = uuid::Uuid::new_v4().simple().to_string();
    site.sessions.lock().unwrap().insert(sid.clone(), user);
    (
        [(
            header::SET_COOKIE,
            format!("sid={sid}; HttpOnly; SameSite=Lax; Path=/"),
        )],
        "signed in",
    )
        .into_response()
}

async fn me(State(site): State<SiteState>, headers: HeaderMap) -> Response {
    let sid = headers
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').find_map(|kv| kv.trim().strip_prefix("sid=")))
        .map(str::to_owned);
    let user = sid.and_then(|sid| site.sessions.lock().unwrap().get(&sid).cloned());
    match user.as_deref() {
        Some("ada") => Json(json!({
            "id": "ada-1",
            "email": "ada@example.com",
            "firstname": "Ada",
            "lastname": "Lovelace",
            "attributes": {"plan": "pro"}
        }))
        .into_response(),
        Some(other) => Json(json!({ "id": other })).into_response(),
        None => (StatusCode::UNAUTHORIZED, "please log in").into_response(),
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        "SITE-INTERNALS: stack trace at db.query(users)",
    )
        .into_response()
}

/// A "who am I" URL that also takes HTTP Basic credentials, as Django REST framework's default does: `victim`'s
/// password is `right`.
async fn basic(headers: HeaderMap) -> Response {
    use base64::Engine;
    let right = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("victim:right")
    );
    if headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == right.as_bytes())
    {
        Json(json!({ "id": "victim" })).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "detail": "Invalid username/password." })),
        )
            .into_response()
    }
}

/// Answers 401 once `held` is opened; counts the requests waiting meanwhile.
async fn hold(State(site): State<SiteState>) -> Response {
    let (open, waiting) = &*site.held;
    waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _ = open.subscribe().wait_for(|open| *open).await;
    waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "not signed in" })),
    )
        .into_response()
}

async fn answer(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "forbidden" => (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "not allowed to chat" })),
        )
            .into_response(),
        "numeric" => Json(json!({ "id": 1234, "firstname": "Num" })).into_response(),
        "role" => Json(json!({ "id": "eve", "attributes": { "role": "agent" } })).into_response(),
        "html" => "<html>SITE-INTERNALS login page</html>".into_response(),
        "huge" => Json(json!({ "id": "big", "attributes": { "blob": "x".repeat(100_000) } })).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn bridge_to(url: String, timeout: Option<Duration>) -> common::TestApp {
    test_app(Options {
        session_url: Some(url),
        session_timeout: timeout,
        ..Options::default()
    })
    .await
}

/// The bridge to `url`, forwarding the visitor's `Authorization` too.
async fn bridge_forwarding_authorization(url: String) -> common::TestApp {
    test_app(Options {
        session_url: Some(url),
        session_forward_authorization: true,
        ..Options::default()
    })
    .await
}

/// `POST /auth` as the module sends it without credentials (`{}`, as JSON), with `headers`.
fn auth_without_credentials(headers: &[(&str, &str)]) -> axum::http::Request<Body> {
    let mut request = axum::http::Request::post("/auth").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from("{}")).unwrap()
}

#[tokio::test]
async fn the_sites_session_cookie_signs_the_visitor_in_as_the_sites_user() {
    let site = Site::start().await;
    let app = bridge_to(format!("{}/me", site.url), None).await;
    let cookie = site.sign_in("ada").await;

    let reply = app
        .send(common::from_address(
            auth_without_credentials(&[
                ("cookie", &format!("theme=dark; {cookie}")),
                ("authorization", "Bearer site-session-token"),
                ("x-site-secret", "only-for-tiledesk-auth"),
                ("x-forwarded-for", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("user-agent", "visitor-browser/1.0"),
            ]),
            [198, 51, 100, 7],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.header("set-cookie"),
        None,
        "no device cookie: no password was checked"
    );
    assert_eq!(
        reply.json["user"],
        json!({"id": "ada-1", "email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace"})
    );
    let claims = reply.token_claims();
    assert_eq!(
        claims["_id"],
        format!("{PROJECT}_ada-1"),
        "namespaced like every user id"
    );
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["attributes"], json!({"plan": "pro"}));

    // The site saw one GET of its URL with the visitor's Cookie and the visitor's address (not what the request
    // claimed: no proxy is trusted here), and nothing else of the request: not its Authorization, by default.
    let seen = site.seen();
    let asked = seen.iter().filter(|s| s.path == "/me").collect::<Vec<_>>();
    assert_eq!(asked.len(), 1, "{seen:?}");
    let asked = asked[0];
    assert_eq!((asked.method.as_str(), asked.body), ("GET", 0));
    assert_eq!(
        asked.headers[header::COOKIE],
        format!("theme=dark; {cookie}").as_str()
    );
    assert_eq!(asked.headers["x-forwarded-for"], "198.51.100.7");
    assert_eq!(asked.headers[header::FORWARDED], "for=198.51.100.7");
    for name in ["x-site-secret", "authorization", "content-type"] {
        assert!(
            !asked.headers.contains_key(name),
            "{name} was forwarded: {asked:?}"
        );
    }
    assert_ne!(asked.headers[header::USER_AGENT], "visitor-browser/1.0");

    // With `--session-id-prefix site:` the site's user is `site:ada-1`: never the same chat identity as a user
    // `ada-1` of another way in (an ID token's subject, a `POST /tokens` id).
    let prefixed = test_app(Options {
        session_url: Some(format!("{}/me", site.url)),
        session_id_prefix: "site:",
        ..Options::default()
    })
    .await;
    let reply = prefixed
        .send(auth_without_credentials(&[("cookie", &cookie)]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["user"]["id"], "site:ada-1");
    assert_eq!(reply.token_claims()["_id"], format!("{PROJECT}_site:ada-1"));

    // `{}` as JSON is "no credentials" too; an integer id is taken as its text.
    let numeric = bridge_to(format!("{}/answer/numeric", site.url), None).await;
    let reply = numeric.send(post_json("/auth", "{}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["user"]["id"], "1234");
}

#[tokio::test]
async fn no_session_or_an_unknown_one_is_401_auth_rejected() {
    let site = Site::start().await;
    let app = bridge_to(format!("{}/me", site.url), None).await;
    for headers in [&[][..], &[("cookie", "sid=00000000000000000000000000000000")][..]] {
        let reply = app.send(auth_without_credentials(headers)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "auth_rejected")
        );
        assert!(!reply.text.contains("please log in"), "{}", reply.text);
    }
    // The site's own 403 (JSON, as its answers are): this visitor may not chat.
    let forbidden = bridge_to(format!("{}/answer/forbidden", site.url), None).await;
    let reply = forbidden.send(auth_without_credentials(&[])).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "auth_rejected")
    );
    // A 403 page that is not JSON is a firewall's or a CDN's in front of the site: it says nothing about the
    // visitor, and telling everyone "sign in first" would hide the outage. An upstream failure.
    let firewall = bridge_to(format!("{}/status/403", site.url), None).await;
    let reply = firewall.send(auth_without_credentials(&[])).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::BAD_GATEWAY, "session_failed"),
        "{}",
        reply.text
    );
}

/// The bridge as a relay for guessing the site's passwords: a "who am I" URL that also takes HTTP Basic
/// credentials answers each guess, and the site sees them all come from this service's one address.
#[tokio::test]
async fn the_bridge_relays_no_password_guesses_to_the_site() {
    use base64::Engine;
    let site = Site::start().await;
    let guess = |password: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("victim:{password}"))
        )
    };
    let attacker = [203, 0, 113, 66];
    let send_guess = async |app: &common::TestApp, password: &str| {
        let authorization = guess(password);
        app.send(common::from_address(
            auth_without_credentials(&[("authorization", authorization.as_str())]),
            attacker,
        ))
        .await
    };

    // By default only the Cookie header goes to the site: a guess never reaches it, the right password neither.
    let app = bridge_to(format!("{}/basic", site.url), None).await;
    let reply = send_guess(&app, "right").await;
    assert_eq!(reply.code(), "auth_rejected", "{}", reply.text);
    assert!(
        site.seen()
            .iter()
            .all(|s| !s.headers.contains_key(header::AUTHORIZATION)),
        "Authorization reached the site"
    );

    // Forwarding Authorization (a site whose URL reads a bearer token): the site's 401s count like failed logins
    // on the address. 50 guesses, then 429 without the site being asked; the right password is no exception.
    let app = bridge_forwarding_authorization(format!("{}/basic", site.url)).await;
    let asked = || site.seen().iter().filter(|s| s.path == "/basic").count();
    let before = asked();
    for n in 0..50 {
        let reply = send_guess(&app, &format!("guess-{n}")).await;
        assert_eq!(reply.code(), "auth_rejected", "guess {n}: {}", reply.text);
    }
    assert_eq!(asked(), before + 50);
    for password in ["guess-50", "right"] {
        let reply = send_guess(&app, password).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            "{password}: {}",
            reply.text
        );
        assert!(reply.header("retry-after").is_some());
    }
    assert_eq!(asked(), before + 50, "the site was asked beyond the limit");
    // The victim, from her own address, still gets in.
    let reply = app
        .send(common::from_address(
            auth_without_credentials(&[("authorization", guess("right").as_str())]),
            [198, 51, 100, 20],
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["user"]["id"], "victim");
}

/// One client with many connections held all 64 calls to the site: now one address holds at most 8 at once,
/// and everyone else is still served.
#[tokio::test]
async fn one_address_holds_at_most_eight_calls_to_the_site_and_others_are_still_served() {
    let site = Site::start().await;
    let app = Arc::new(bridge_to(format!("{}/hold", site.url), None).await);
    let flooder = [203, 0, 113, 77];
    let flood: Vec<_> = (0..20)
        .map(|_| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                app.send(common::from_address(auth_without_credentials(&[]), flooder))
                    .await
                    .code()
                    .to_owned()
            })
        })
        .collect();
    let waiting = || site.state.held.1.load(std::sync::atomic::Ordering::SeqCst);
    // Twelve are refused at once (busy) while eight wait at the site, which answers nobody until it is opened.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while flood.iter().filter(|t| t.is_finished()).count() < 12 || waiting() < 8 {
        assert!(std::time::Instant::now() < deadline, "{} at the site", waiting());
        tokio::time::sleep(Duration::from_millis(10)).await; // polling the tasks, not a pause
    }
    assert_eq!(waiting(), 8, "at the site at once from one address");
    // Another visitor is served meanwhile: their call reaches the site (a ninth waiting there).
    let other = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            app.send(common::from_address(
                auth_without_credentials(&[]),
                [198, 51, 100, 30],
            ))
            .await
            .code()
            .to_owned()
        })
    };
    while waiting() < 9 {
        assert!(
            std::time::Instant::now() < deadline,
            "the other visitor was not served"
        );
        tokio::time::sleep(Duration::from_millis(10)).await; // polling the site's count, not a pause
    }
    site.state.held.0.send_replace(true);
    assert_eq!(other.await.unwrap(), "auth_rejected");
    let mut codes = Vec::new();
    for task in flood {
        codes.push(task.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| *c == "busy").count(), 12, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| *c == "auth_rejected").count(),
        8,
        "{codes:?}"
    );
}

#[tokio::test]
async fn a_failing_site_is_a_502_with_a_stable_code_and_none_of_its_words() {
    let site = Site::start().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/me", listener.local_addr().unwrap())
    };
    let cases = [
        (format!("{}/status/500", site.url), "session_failed"),
        (format!("{}/status/404", site.url), "session_failed"),
        (format!("{}/redirect", site.url), "session_failed"),
        (format!("{}/answer/html", site.url), "session_invalid"),
        (format!("{}/answer/role", site.url), "session_invalid"),
        (format!("{}/answer/huge", site.url), "session_invalid"),
        (format!("{}/slow", site.url), "session_unreachable"),
        (closed, "session_unreachable"),
    ];
    for (url, code) in cases {
        let app = bridge_to(url.clone(), Some(Duration::from_millis(300))).await;
        let reply = app.send(auth_without_credentials(&[("cookie", "sid=x")])).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_GATEWAY, code),
            "{url}"
        );
        for words in [
            "SITE-INTERNALS",
            "agent",
            "role",
            "500",
            "404",
            "Connection refused",
        ] {
            assert!(!reply.text.contains(words), "{url}: {}", reply.text);
        }
        assert!(
            reply.json["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("the site's login"))
        );
    }
    let seen = site.seen();
    assert!(seen.iter().any(|s| s.path == "/redirect"));
    assert!(
        !seen.iter().any(|s| s.path == "/me"),
        "a redirect is not followed: {seen:?}"
    );
}

#[tokio::test]
async fn credentials_in_the_body_still_go_to_the_password_store() {
    let site = Site::start().await;
    let app = bridge_to(format!("{}/me", site.url), None).await;
    app.add_user("marie@example.com", "correct horse", None).await;
    let cookie = site.sign_in("ada").await;
    let mut wrong = post_json("/auth", r#"{"email": "marie@example.com", "password": "nope"}"#);
    wrong
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let reply = app.send(wrong).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "a wrong password is not rescued by the site's session"
    );
    let right = app
        .send(post_json(
            "/auth",
            r#"{"email": "marie@example.com", "password": "correct horse"}"#,
        ))
        .await;
    assert_eq!(right.status, StatusCode::OK);
    assert!(
        !site.seen().iter().any(|s| s.path == "/me"),
        "the site was not asked"
    );
}

#[tokio::test]
async fn without_a_bridge_a_request_without_credentials_is_told_what_is_missing() {
    let app = test_app(Options::default()).await;
    for request in [auth_without_credentials(&[]), post_json("/auth", "{}")] {
        let reply = app.send(request).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "missing_field")
        );
        assert_eq!(reply.json["message"], "`email` is required");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_its_checks_in_flight_a_sign_in_waits_its_limit_then_is_told_busy() {
    use tiledesk_auth_server::identity::session::MAX_IN_FLIGHT;
    use tower::ServiceExt;

    let site = Site::start().await;
    let app = bridge_to(format!("{}/slow", site.url), Some(Duration::from_secs(120))).await;
    // From as many addresses (one address holds at most 8 of them).
    let stuck: Vec<_> = (0..MAX_IN_FLIGHT)
        .map(|n| {
            let router = app.router.clone();
            let request = common::from_address(auth_without_credentials(&[]), [203, 0, 113, n as u8]);
            tokio::spawn(async move { router.oneshot(request).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while site.seen().len() < MAX_IN_FLIGHT {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} checks reached the site",
            site.seen().len()
        );
        tokio::task::yield_now().await;
    }

    let reply = app
        .send(common::from_address(
            auth_without_credentials(&[]),
            [198, 51, 100, 99],
        ))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "busy")
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        site.seen().len(),
        MAX_IN_FLIGHT,
        "the refused sign-in never reached the site"
    );
    for request in stuck {
        request.abort();
    }
}

/// A bridge to `site`'s `/me` for a service that lists `origin`.
async fn bridge_listing(site: &Site, origin: &'static str) -> common::TestApp {
    test_app(Options {
        session_url: Some(format!("{}/me", site.url)),
        origins: vec![origin],
        ..Options::default()
    })
    .await
}

/// The ambient-cookie case: a page of another site makes the visitor's browser POST here. Refused with 403
/// `origin_not_allowed` before the site's login is asked, unless the page is of the service's own origin or a listed
/// one; a client that is no browser (no `Origin`, no `Sec-Fetch-Site`) is not a page of another site.
#[tokio::test]
async fn a_page_of_another_origin_cannot_sign_the_visitor_in_with_their_cookies() {
    let site = Site::start().await;
    let app = bridge_listing(&site, "https://www.example.com").await;
    let cookie = site.sign_in("ada").await;
    let asked = || site.seen().iter().filter(|s| s.path == "/me").count();

    for refused in [
        &[("origin", "https://evil.example.net")][..],
        // A subdomain is same-site, not the listed origin.
        &[
            ("origin", "https://shop.example.com"),
            ("sec-fetch-site", "same-site"),
        ][..],
        &[("origin", "http://www.example.com")][..],
        &[("origin", "null")][..],
        // A form of another site whose browser sent no Origin (or a privacy extension removed it).
        &[("sec-fetch-site", "cross-site")][..],
        // The service's own host, but from another origin than the one the request reached.
        &[
            ("origin", "https://auth.example.com.evil.net"),
            ("host", "auth.example.com"),
        ][..],
    ] {
        let before = asked();
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend_from_slice(refused);
        let reply = app.send(auth_without_credentials(&headers)).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::FORBIDDEN, "origin_not_allowed"),
            "{refused:?}: {}",
            reply.text
        );
        assert!(
            reply.json["message"]
                .as_str()
                .unwrap()
                .contains("--allowed-origin")
        );
        assert_eq!(asked(), before, "{refused:?}: the site's login was asked");
    }

    for allowed in [
        &[
            ("origin", "https://www.example.com"),
            ("sec-fetch-site", "same-site"),
        ][..],
        &[("origin", "HTTPS://WWW.EXAMPLE.COM")][..],
        &[
            ("origin", "http://auth.example.com:3000"),
            ("host", "auth.example.com:3000"),
        ][..],
        &[
            ("origin", "https://auth.example.com"),
            ("host", "auth.example.com"),
            ("sec-fetch-site", "same-origin"),
        ][..],
        &[("sec-fetch-site", "same-origin")][..],
        &[("sec-fetch-site", "none")][..],
        &[][..],
    ] {
        let mut headers = vec![("cookie", cookie.as_str())];
        headers.extend_from_slice(allowed);
        let reply = app.send(auth_without_credentials(&headers)).await;
        assert_eq!(reply.status, StatusCode::OK, "{allowed:?}: {}", reply.text);
        assert_eq!(reply.json["user"]["id"], "ada-1");
    }

    // What a form or a "simple" fetch of another page can send (no body, a form's or a text body): never JSON, so
    // never a request the browser sent without a preflight. Refused before the site is asked, whatever the origin.
    for (content_type, body) in [
        (None, ""),
        (Some("application/x-www-form-urlencoded"), ""),
        (Some("text/plain"), ""),
    ] {
        let before = asked();
        let mut request = axum::http::Request::post("/auth").header("cookie", cookie.as_str());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = app.send(request.body(Body::from(body)).unwrap()).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{content_type:?}: {}",
            reply.text
        );
        assert_eq!(asked(), before, "{content_type:?}: the site's login was asked");
    }

    // Password logins and ID tokens carry their own proof, not an ambient cookie: no origin check for them.
    let reply = app
        .send(
            axum::http::Request::post("/auth")
                .header("content-type", "application/json")
                .header("origin", "https://evil.example.net")
                .body(Body::from(r#"{"email":"nobody@example.com","password":"wrong"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.code(), "invalid_credentials", "{}", reply.text);
}

/// A listed origin gets CORS with credentials (preflight and answer), so the module's `fetch` with
/// `credentials: "include"` from www.example.com reaches a service on auth.example.com with the site's cookies.
#[tokio::test]
async fn a_listed_origin_gets_cors_with_credentials() {
    let site = Site::start().await;
    let app = bridge_listing(&site, "https://www.example.com").await;
    let preflight = app
        .send(
            axum::http::Request::options("/auth")
                .header("origin", "https://www.example.com")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    let cookie = site.sign_in("ada").await;
    let reply = app
        .send(auth_without_credentials(&[
            ("origin", "https://www.example.com"),
            ("cookie", &cookie),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://www.example.com")
    );
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    // Another origin: no CORS at all (and the bridge refuses it, above).
    let other = app
        .send(
            axum::http::Request::options("/auth")
                .header("origin", "https://evil.example.net")
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(other.header("access-control-allow-credentials"), None);
}
