//! The HTTP API through `tower::ServiceExt::oneshot`: status, error code and headers of every answer.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{API_KEY, Options, PROJECT, from_address, post_json, test_app, with_api_key};
use serde_json::json;
use tower::ServiceExt;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = test_app(Options::default()).await;
    let reply = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"status": "ok"}));
}

#[tokio::test]
async fn auth_mints_a_token_tiledesk_accepts() {
    let app = test_app(Options::default()).await;
    let user = app
        .add_user("andrew@scientists.com", "correct horse", Some("Andrew"))
        .await;
    let reply = app
        .send(post_json(
            "/auth",
            r#"{"email": "Andrew@Scientists.com", "password": "correct horse"}"#,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.json["user"],
        json!({"id": user.id, "email": "andrew@scientists.com", "firstname": "Andrew", "lastname": null})
    );
    let expires_at = reply.json["expires_at"].as_u64().unwrap();
    assert!(expires_at.abs_diff(now() + 3600) <= 5, "{expires_at}");

    let claims = reply.token_claims();
    assert_eq!(claims["_id"], format!("{PROJECT}_{}", user.id));
    assert_eq!(claims["firstname"], "Andrew");
    assert_eq!(claims["email"], "andrew@scientists.com");
    assert_eq!(claims["exp"], expires_at);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_answer() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let wrong = app
        .send(post_json(
            "/auth",
            r#"{"email": "andrew@scientists.com", "password": "nope"}"#,
        ))
        .await;
    let unknown = app
        .send(post_json(
            "/auth",
            r#"{"email": "nobody@scientists.com", "password": "nope"}"#,
        ))
        .await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "invalid_credentials");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    assert_eq!(wrong.text, unknown.text);
}

/// `count` copies of the login `body` from `address`, all in flight at once; their statuses.
async fn at_once(
    app: &common::TestApp,
    count: usize,
    body: &'static str,
    address: [u8; 4],
) -> Vec<StatusCode> {
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let router = app.router.clone();
            tokio::spawn(async move {
                let request = from_address(post_json("/auth", body), address);
                router.oneshot(request).await.unwrap().status()
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(count);
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_are_counted_as_they_start() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let wrong = r#"{"email": "andrew@scientists.com", "password": "guess"}"#;
    // 120 guesses in flight at once. Checking the limit before the hash and counting the failure after it let every
    // request in flight through (37 to 39 of 120 were measured reaching the password check).
    let statuses = at_once(&app, 120, wrong, [203, 0, 113, 9]).await;
    let mut checked = 0;
    for status in statuses {
        match status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 5, "the limit is 5: only 5 reached the password check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_many_addresses_is_refused_fast_with_503_not_queued_without_end() {
    // One hashing thread with room for four waiting: 300 logins at once, each from its own address (so no
    // per-address limit applies), overflow the queue.
    let passwords =
        tiledesk_auth_server::Passwords::with_queue(1, 4, tiledesk_auth_server::guard::passwords::QUEUE_WAIT);
    let app = test_app(Options {
        passwords: Some(passwords.unwrap()),
        ..Options::default()
    })
    .await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let requests: Vec<_> = (0..300u16)
        .map(|n| {
            let router = app.router.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"email": "user{n}@example.org", "password": "123456"}}"#);
                let [hi, lo] = n.to_be_bytes();
                let request = from_address(post_json("/auth", body), [10, 9, hi, lo]);
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let retry_after = response.headers().get("retry-after").cloned();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let code = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"].clone();
                (status, retry_after, code)
            })
        })
        .collect();
    let (mut checked, mut busy) = (0, 0);
    for request in requests {
        match request.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _, _) => checked += 1,
            (StatusCode::SERVICE_UNAVAILABLE, retry_after, code) => {
                assert_eq!(retry_after.unwrap(), "2");
                assert_eq!(code, "busy");
                busy += 1;
            }
            (other, _, code) => panic!("unexpected {other} {code}"),
        }
    }
    assert!(
        busy > 0 && checked > 0,
        "{checked} checked, {busy} refused as busy"
    );
    // The refused logins were not judged, so they charge no address and no account; and the queue drains.
    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    let real_user = app
        .send(from_address(post_json("/auth", right), [10, 9, 0, 1]))
        .await;
    assert_eq!(real_user.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitors_simultaneous_right_logins_all_go_through() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    // Eight tabs signing in at once: beyond the 5 under way the others wait for them, they are not refused.
    for status in at_once(&app, 8, right, [198, 51, 100, 7]).await {
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn repeated_failures_are_throttled_but_the_real_user_gets_in_elsewhere() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let attacker = [203, 0, 113, 7];
    let wrong = r#"{"email": "andrew@scientists.com", "password": "guess"}"#;
    for attempt in 0..5 {
        let reply = app.send(from_address(post_json("/auth", wrong), attacker)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let blocked = app.send(from_address(post_json("/auth", wrong), attacker)).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.code(), "too_many_attempts");
    let retry_after: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    let still_blocked = app.send(from_address(post_json("/auth", right), attacker)).await;
    assert_eq!(
        still_blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password, from there"
    );
    let real_user = app
        .send(from_address(post_json("/auth", right), [198, 51, 100, 1]))
        .await;
    assert_eq!(real_user.status, StatusCode::OK);
}

/// `POST /auth` with `body` from `address`, carrying `cookie` when there is one.
async fn login(app: &common::TestApp, body: &str, address: [u8; 4], cookie: Option<&str>) -> common::Reply {
    let mut request = from_address(post_json("/auth", body.to_owned()), address);
    if let Some(cookie) = cookie {
        request.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    app.send(request).await
}

/// The `name=value` part of a reply's `Set-Cookie`.
fn cookie_of(reply: &common::Reply) -> String {
    let set_cookie = reply.header("set-cookie").expect("a Set-Cookie header");
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_account_of_ones_own_cannot_keep_the_password_hashing_busy() {
    // #25 item 1: every login right, each a password hash. The module signs in with a password once and refreshes
    // with its login session, so nobody needs more than 30 a window; someone burning the hashing threads does.
    let app = test_app(Options::default()).await;
    app.add_user("mallory@example.org", "my own password", None).await;
    app.add_user("eve@example.org", "eves password", None).await;
    let mine = r#"{"email": "mallory@example.org", "password": "my own password"}"#;
    let mut cookie = None;
    for n in 0..30u8 {
        let reply = login(&app, mine, [203, 0, 113, n % 7], cookie.as_deref()).await;
        assert_eq!(reply.status, StatusCode::OK, "login {n}: {}", reply.text);
        // Half of them with the device cookie the account earned: a known browser is limited too.
        cookie = (n % 2 == 0).then(|| cookie_of(&reply));
    }
    let blocked = login(&app, mine, [192, 0, 2, 9], cookie.as_deref()).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS, "{}", blocked.text);
    let retry_after: u64 = blocked.header("retry-after").unwrap().parse().unwrap();
    assert!((800..=900).contains(&retry_after), "{retry_after}");
    let eve = login(
        &app,
        r#"{"email": "eve@example.org", "password": "eves password"}"#,
        [203, 0, 113, 1],
        None,
    )
    .await;
    assert_eq!(
        eve.status,
        StatusCode::OK,
        "another account from the same addresses"
    );
}

#[tokio::test]
async fn a_distributed_guesser_cannot_lock_the_real_user_out_of_their_usual_browser() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    app.add_user("eve@example.org", "eves password", None).await;
    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    let wrong = r#"{"email": "andrew@scientists.com", "password": "guess"}"#;
    let home = [198, 51, 100, 1];
    // Andrew signed in from his browser before: it holds a device cookie for his account.
    let earlier = login(&app, right, home, None).await;
    assert_eq!(earlier.status, StatusCode::OK);
    let set_cookie = earlier.header("set-cookie").unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cookie = cookie_of(&earlier);
    // Secure (no loopback Host here): a `__Host-` cookie, which no sibling subdomain can set.
    assert!(cookie.starts_with("__Host-tdauth_device=v1."), "{cookie}");
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");

    // 100 wrong passwords for his email from 20 addresses (the attack measured: 15 minutes of 429, repeatable).
    for n in 0..100u8 {
        let reply = login(&app, wrong, [203, 0, 113, n % 20], None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    let guess = login(&app, wrong, [203, 0, 113, 99], None).await;
    assert_eq!(
        guess.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the account is shut to strangers"
    );

    // Andrew, from his browser and his address, gets in; and his browser is given a fresh cookie.
    let andrew = login(&app, right, home, Some(&cookie)).await;
    assert_eq!(andrew.status, StatusCode::OK, "{}", andrew.text);
    let renewed = cookie_of(&andrew);
    assert_ne!(renewed, cookie);
    // From another address too: the cookie, not the address, is what is known. Cookies tossed in ahead of it by a
    // sibling subdomain (the plain name, and a forged `__Host-` one sent first) do not hide it: every one is tried.
    let tossed = format!("tdauth_device=v1.1.tossed.AAAA; __Host-tdauth_device=v1.2.forged.BBBB; {renewed}");
    let travelling = login(&app, right, [192, 0, 2, 50], Some(&tossed)).await;
    assert_eq!(travelling.status, StatusCode::OK, "{}", travelling.text);
    let renewed = cookie_of(&travelling);

    // Without it, with an altered one, or with one issued for another account, the account stays shut.
    let eve = login(
        &app,
        r#"{"email": "eve@example.org", "password": "eves password"}"#,
        [203, 0, 113, 200],
        None,
    )
    .await;
    let eves_cookie = cookie_of(&eve);
    let mut altered = renewed.clone();
    altered.pop();
    altered.push(if renewed.ends_with('A') { 'B' } else { 'A' });
    for cookie in [None, Some(altered.as_str()), Some(eves_cookie.as_str())] {
        let reply = login(&app, right, [192, 0, 2, 51], cookie).await;
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{cookie:?}");
    }

    // The cookie has a budget of its own: a thief of it gets five guesses, then that browser waits too.
    for n in 0..5 {
        let reply = login(&app, wrong, [192, 0, 2, 52], Some(&renewed)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "guess {n} with the cookie"
        );
    }
    let spent = login(&app, right, home, Some(&renewed)).await;
    assert_eq!(spent.status, StatusCode::TOO_MANY_REQUESTS);
}

/// The `name=value` of the reply's login-session cookie, and whether it clears it.
fn login_cookie_of(reply: &common::Reply) -> Option<(String, bool)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.contains("tdauth_login="))
        .map(|value| {
            (
                value.split(';').next().unwrap().to_owned(),
                value.contains("Max-Age=0"),
            )
        })
}

/// `POST /auth` with `{}` as JSON (what the module's refresh sends), carrying `cookie`.
fn refresh_with(cookie: &str) -> Request<Body> {
    let mut request = post_json("/auth", "{}");
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    request
}

/// The module kept the password and posted it again at every refresh: an old tab spent the account's failure
/// budget after a password change, and the password sat in the page's memory. A password login now also gives the
/// browser a login session, and a refresh posts `{}`.
#[tokio::test]
async fn a_password_login_gives_a_login_session_that_refreshes_without_the_password() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", Some("Andrew"))
        .await;
    let login = app
        .send(post_json(
            "/auth",
            r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#,
        ))
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let (cookie, cleared) = login_cookie_of(&login).expect("a login-session cookie");
    assert!(
        cookie.starts_with("__Host-tdauth_login=v1.") && !cleared,
        "{cookie}"
    );

    // The refresh: no password, the same visitor, a fresh token.
    let refreshed = app.send(refresh_with(&cookie)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    assert_eq!(refreshed.json["user"], login.json["user"]);
    assert_eq!(refreshed.token_claims()["_id"], login.token_claims()["_id"]);
    // An ambient cookie: not from a form (not JSON), nor from a page of another origin.
    let mut form = Request::post("/auth")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    form.headers_mut().insert("cookie", cookie.parse().unwrap());
    assert_eq!(app.send(form).await.code(), "unsupported_media_type");
    let mut other_site = refresh_with(&cookie);
    other_site
        .headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    assert_eq!(app.send(other_site).await.code(), "origin_not_allowed");
    // Altered: refused, and the cookie cleared.
    let mut altered = cookie.clone();
    altered.pop();
    altered.push(if cookie.ends_with('A') { 'B' } else { 'A' });
    let reply = app.send(refresh_with(&altered)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "auth_rejected")
    );
    assert_eq!(login_cookie_of(&reply).map(|(_, cleared)| cleared), Some(true));

    // The project secret rotates (SIGHUP): the session goes on, signed anew with the new secret.
    let (old_secret, rotated) = (
        app.state.issuer.get().secret().clone(),
        tiledesk_jwt::ProjectSecret::new("rotated-secret-0f1a-4c3b-5b2c-7d9e").unwrap(),
    );
    app.state
        .issuer
        .replace(tiledesk_jwt::TokenIssuer::new(common::project(), rotated));
    app.state.retired_secret.replace(Some(old_secret));
    let reply = app.send(refresh_with(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let (renewed, cleared) = login_cookie_of(&reply).expect("the session signed anew");
    assert!(!cleared && renewed != cookie, "{renewed}");
    assert_eq!(app.send(refresh_with(&renewed)).await.status, StatusCode::OK);
    let cookie = renewed;

    // The password changes: every session of the account ends at once.
    let hash = tiledesk_auth_server::guard::passwords::hash_blocking(b"battery staple").unwrap();
    app.state
        .users
        .set_password("andrew@scientists.com", &hash)
        .await
        .unwrap();
    let reply = app.send(refresh_with(&cookie)).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "auth_rejected"),
        "{}",
        reply.text
    );
    assert_eq!(login_cookie_of(&reply).map(|(_, cleared)| cleared), Some(true));

    // signOut(): DELETE /auth clears the cookie.
    let out = app
        .send(Request::delete("/auth").body(Body::empty()).unwrap())
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(login_cookie_of(&out).map(|(_, cleared)| cleared), Some(true));
}

#[tokio::test]
async fn a_burst_over_many_accounts_from_one_address_is_throttled_too() {
    let app = test_app(Options::default()).await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let attacker = [203, 0, 113, 9];
    // Credential stuffing: one guess per account, 50 accounts, one address.
    for n in 0..50 {
        let guess = format!(r#"{{"email": "user{n}@example.org", "password": "123456"}}"#);
        let reply = app.send(from_address(post_json("/auth", guess), attacker)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    let blocked = app.send(from_address(post_json("/auth", right), attacker)).await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(blocked.header("retry-after").is_some());
    let real_user = app
        .send(from_address(post_json("/auth", right), [198, 51, 100, 2]))
        .await;
    assert_eq!(real_user.status, StatusCode::OK);
}

fn forwarded(mut request: Request<Body>, proxy: [u8; 4], chain: &str) -> Request<Body> {
    request
        .headers_mut()
        .insert("x-forwarded-for", chain.parse().unwrap());
    from_address(request, proxy)
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_visitor_is_throttled_on_their_own_address() {
    let app = test_app(Options {
        trusted_proxies: vec!["10.0.0.0/8"],
        ..Options::default()
    })
    .await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let proxy = [10, 0, 0, 1];
    let wrong = r#"{"email": "andrew@scientists.com", "password": "guess"}"#;
    // The attacker writes a different fake address first each time; the proxy appends the real one.
    for attempt in 0..5 {
        let chain = format!("198.51.100.{attempt}, 203.0.113.7");
        let reply = app
            .send(forwarded(post_json("/auth", wrong), proxy, &chain))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let blocked = app
        .send(forwarded(
            post_json("/auth", wrong),
            proxy,
            "192.0.2.99, 203.0.113.7",
        ))
        .await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "spoofed entries do not help"
    );
    let right = r#"{"email": "andrew@scientists.com", "password": "correct horse"}"#;
    let real_user = app
        .send(forwarded(post_json("/auth", right), proxy, "198.51.100.2"))
        .await;
    assert_eq!(
        real_user.status,
        StatusCode::OK,
        "another visitor behind the same proxy gets in"
    );
}

#[tokio::test]
async fn an_untrusted_peer_cannot_escape_the_throttle_with_x_forwarded_for() {
    let app = test_app(Options {
        trusted_proxies: vec!["10.0.0.0/8"],
        ..Options::default()
    })
    .await;
    app.add_user("andrew@scientists.com", "correct horse", None).await;
    let attacker = [203, 0, 113, 7];
    let wrong = r#"{"email": "andrew@scientists.com", "password": "guess"}"#;
    for attempt in 0..5 {
        let chain = format!("198.51.100.{attempt}");
        let reply = app
            .send(forwarded(post_json("/auth", wrong), attacker, &chain))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let blocked = app
        .send(forwarded(post_json("/auth", wrong), attacker, "198.51.100.200"))
        .await;
    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn tokens_route_needs_a_configured_key() {
    let app = test_app(Options::default()).await;
    let reply = app
        .send(with_api_key(
            post_json("/tokens", r#"{"user_id": "42"}"#),
            &format!("Bearer {API_KEY}"),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
}

#[tokio::test]
async fn tokens_route_checks_the_key_before_the_body() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let missing = app.send(post_json("/tokens", "not even json")).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::UNAUTHORIZED, "missing_api_key")
    );
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    for bad in [
        "Bearer wrong-key-0123456789",
        "Basic c2l0ZQ==",
        API_KEY,
        "Bearer",
        &format!("Bearer {API_KEY}x"),
    ] {
        let reply = app
            .send(with_api_key(post_json("/tokens", r#"{"user_id": "42"}"#), bad))
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn tokens_route_mints_for_the_given_user() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let body = json!({"user_id": "site-user-7", "firstname": "Marie", "lastname": "Curie",
                      "email": "marie@scientists.com", "attributes": {"plan": "pro", "seats": 3}});
    let reply = app
        .send(with_api_key(
            post_json("/tokens", body.to_string()),
            &format!("bearer {API_KEY}"),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.json["user"],
        json!({"id": "site-user-7", "email": "marie@scientists.com", "firstname": "Marie", "lastname": "Curie"})
    );
    let claims = reply.token_claims();
    assert_eq!(claims["_id"], format!("{PROJECT}_site-user-7"));
    assert_eq!(claims["attributes"], json!({"plan": "pro", "seats": 3}));
    assert!(claims.get("plan").is_none(), "attributes stay nested");
}

/// 16 KiB of attributes made a token the widget could not carry in its `Authorization` header: a token is at most
/// 4 KiB, and the caller is told which field made it longer, and by how much.
#[tokio::test]
async fn attributes_that_make_the_token_longer_than_4_kib_are_refused_with_the_length() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let mint = |note: usize| {
        let body = json!({"user_id": "7", "attributes": {"note": "n".repeat(note)}});
        with_api_key(
            post_json("/tokens", body.to_string()),
            &format!("Bearer {API_KEY}"),
        )
    };
    let fits = app.send(mint(2048)).await;
    assert_eq!(fits.status, StatusCode::OK, "{}", fits.text);
    let token = fits.json["token"].as_str().unwrap();
    assert!(token.len() <= tiledesk_jwt::MAX_TOKEN_LEN, "{}", token.len());
    let over = app.send(mint(3072)).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST, "{}", over.text);
    assert_eq!(over.code(), "invalid_field");
    let message = over.json["message"].as_str().unwrap();
    assert!(
        message.starts_with("`attributes` make the token ")
            && message.contains("over the 4096 a token may have"),
        "{message}"
    );
}

/// Every bad body gets a 4xx with a stable code: never a 5xx, never a panic.
#[tokio::test]
async fn bad_input_gets_a_precise_4xx() {
    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    let long = "x".repeat(300);
    let cases: Vec<(&str, Option<&str>, String, StatusCode, &str)> = vec![
        // (path, content type, body, status, code)
        (
            "/auth",
            Some("application/json"),
            "{".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        // An empty body is no credentials at /auth (tests/session.rs), but nothing to read at /tokens.
        (
            "/tokens",
            Some("application/json"),
            "".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/auth",
            Some("application/json"),
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/auth",
            Some("application/json"),
            "\"a@b.co\"".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "/auth",
            Some("text/plain"),
            r#"{"email":"a@b.co","password":"p"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/auth",
            None,
            r#"{"email":"a@b.co","password":"p"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/auth",
            Some("application/x-www-form-urlencoded"),
            "email=a@b.co&password=p".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/auth",
            Some("application/json"),
            format!(r#"{{"email":"a@b.co","password":"{}"}}"#, "p".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"a@b.co"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"","password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":null,"password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":42,"password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"a@b.co","password":["p"]}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"not-an-email","password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/auth",
            Some("application/json"),
            format!(r#"{{"email":"{long}@b.co","password":"p"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/auth",
            Some("application/json"),
            format!(r#"{{"email":"a@b.co","password":"{}"}}"#, "p".repeat(1025)),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"a@b.co","password":"p","remember":true}"#.into(),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"a@b.co","password":"p","role":"agent"}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/auth",
            Some("application/json"),
            r#"{"email":"a@b.co","email":"c@d.co","password":"p"}"#.into(),
            StatusCode::BAD_REQUEST,
            "duplicate_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": 42}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            format!(r#"{{"user_id": "{long}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "a\nb"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "a\u0000b"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "email": "nope"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "firstname": {"x": 1}}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            format!(r#"{{"user_id": "1", "lastname": "{long}"}}"#),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "attributes": [1]}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "attributes": "x"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "nickname": "x"}"#.into(),
            StatusCode::BAD_REQUEST,
            "unknown_field",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "role": "owner"}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "_id": "admin"}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "exp": 9999999999}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "attributes": {"role": "agent"}}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "attributes": {"SUB": "x"}}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "attributes": {"aud": "x"}}"#.into(),
            StatusCode::BAD_REQUEST,
            "reserved_claim",
        ),
        (
            "/tokens",
            Some("application/json"),
            r#"{"user_id": "1", "user_id": "2"}"#.into(),
            StatusCode::BAD_REQUEST,
            "duplicate_field",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let mut request = Request::post(path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let request = with_api_key(
            request.body(Body::from(body.clone())).unwrap(),
            &format!("Bearer {API_KEY}"),
        );
        let reply = app.send(request).await;
        let shown = &body[..body.len().min(80)];
        assert_eq!(reply.status, status, "{path} {shown}: {}", reply.text);
        assert_eq!(reply.code(), code, "{path} {shown}");
        assert!(
            reply.json["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path} {shown}"
        );
    }
    let alive = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(alive.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = test_app(Options::default()).await;
    let reply = app.send(Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"));
    let reply = app.send(Request::get("/auth").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let reply = app
        .send(Request::delete("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

fn preflight(origin: &str) -> Request<Body> {
    Request::options("/auth")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let app = test_app(Options {
        origins: vec!["https://shop.example.com"],
        ..Options::default()
    })
    .await;
    let allowed = app.send(preflight("https://shop.example.com")).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    let other = app.send(preflight("https://evil.example.net")).await;
    assert_eq!(other.header("access-control-allow-origin"), None);

    let mut login = post_json("/auth", r#"{"email":"a@b.co","password":"p"}"#);
    login
        .headers_mut()
        .insert("origin", "https://evil.example.net".parse().unwrap());
    let reply = app.send(login).await;
    assert_eq!(reply.header("access-control-allow-origin"), None);

    let none = test_app(Options::default()).await;
    let reply = none.send(preflight("https://shop.example.com")).await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "no origins configured: same-origin only"
    );
}

#[tokio::test]
async fn static_dir_serves_the_site_beside_the_api() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "<h1>shop</h1>").unwrap();
    std::fs::create_dir(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/module.wasm"), b"\0asm").unwrap();
    let app = test_app(Options {
        static_dir: Some(site.path().to_owned()),
        static_csp: Some("frame-ancestors 'self'"),
        ..Options::default()
    })
    .await;

    let page = app.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text, "<h1>shop</h1>");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        page.header("content-security-policy"),
        Some("frame-ancestors 'self'")
    );
    assert_eq!(
        page.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        page.header("cache-control"),
        None,
        "the site's own files may be cached"
    );
    let wasm = app
        .send(Request::get("/pkg/module.wasm").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        wasm.header("content-type"),
        Some("application/wasm"),
        "streaming instantiation needs it"
    );
    let missing = app
        .send(Request::get("/nope.html").body(Body::empty()).unwrap())
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let escape = app
        .send(Request::get("/../Cargo.toml").body(Body::empty()).unwrap())
        .await;
    assert_eq!(
        escape.status,
        StatusCode::NOT_FOUND,
        "no file outside the directory"
    );
    let escape = app
        .send(
            Request::get("/pkg/%2e%2e/%2e%2e/etc/passwd")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        escape.status,
        StatusCode::NOT_FOUND,
        "no file outside the directory"
    );

    // What a site directory often holds besides the site: none of it is served.
    std::fs::write(site.path().join(".env"), "SECRET=1").unwrap();
    std::fs::create_dir(site.path().join(".git")).unwrap();
    std::fs::write(site.path().join(".git/HEAD"), "ref: refs/heads/main").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "not for the web").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.txt"), site.path().join("host.txt")).unwrap();
    for path in ["/.env", "/.git/HEAD", "/%2egit/HEAD", "/host.txt"] {
        let reply = app.send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }

    let api = app
        .send(post_json("/auth", r#"{"email": "a@b.co", "password": "x"}"#))
        .await;
    assert_eq!(
        (api.status, api.code()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "the API is unchanged"
    );
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(api.header("cache-control"), Some("no-store"));
    let health = app
        .send(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(health.status, StatusCode::OK);
}
