//! Property tests over the request bodies of `POST /auth` and `POST /tokens`, through the whole router: no input
//! panics or gets a 5xx, every refusal is a JSON error with a code, and no input sets a reserved claim in a token.
//!
//! `cargo test` runs 256 cases per property; `cargo xtask fuzz` runs many more (`PROPTEST_CASES`).

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use common::{API_KEY, Options, PROJECT, post_json, test_app, with_api_key};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};
use tiledesk_jwt::reserved_claim;

const CODES: [&str; 11] = [
    "invalid_json",
    "unsupported_media_type",
    "payload_too_large",
    "missing_field",
    "unknown_field",
    "duplicate_field",
    "invalid_field",
    "reserved_claim",
    "invalid_credentials",
    "too_many_attempts",
    "request_timeout",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "user_id",
            "firstname",
            "lastname",
            "email",
            "attributes",
            "password",
            "role",
            "ROLE",
            "_id",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z_]{1,10}",
        any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z0-9 .@_-]{0,30}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: arbitrary bytes, or a JSON object of likely and unlikely keys, sometimes with a key written twice.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (prop::collection::btree_map(key(), json(), 0..7), any::<bool>()).prop_map(|(map, twice)| {
            let map: Map<String, Value> = map.into_iter().collect();
            let mut text = Value::Object(map.clone()).to_string();
            if twice && let Some((k, v)) = map.iter().next() {
                // `{"k":v,` + the rest: the same key again at the front.
                text.insert_str(1, &format!("{}:{v},", Value::from(k.as_str())));
            }
            text.into_bytes()
        }),
    ]
}

/// Mostly plain text, sometimes anything.
fn mostly_plain(plain: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![4 => plain, 1 => any::<String>()]
}

/// A `POST /tokens` body close to a real one, sometimes with a smuggled key: about half are accepted.
fn tokens_body() -> impl Strategy<Value = Vec<u8>> {
    (
        mostly_plain("[a-zA-Z0-9_.-]{1,20}"),
        prop::option::of(mostly_plain("[A-Za-z '-]{1,20}")),
        prop::option::of(mostly_plain("[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}")),
        prop::option::of(prop::collection::btree_map(
            mostly_plain("[a-z_]{1,10}"),
            json(),
            0..4,
        )),
        prop::option::of((key(), json())),
    )
        .prop_map(|(user_id, firstname, email, attributes, extra)| {
            let mut body = Map::new();
            body.insert("user_id".into(), user_id.into());
            if let Some(name) = firstname {
                body.insert("firstname".into(), name.into());
            }
            if let Some(email) = email {
                body.insert("email".into(), email.into());
            }
            if let Some(attributes) = attributes {
                body.insert(
                    "attributes".into(),
                    Value::Object(attributes.into_iter().collect()),
                );
            }
            if let Some((key, value)) = extra {
                body.insert(key, value);
            }
            Value::Object(body).to_string().into_bytes()
        })
}

fn decoded_payload(token: &str) -> Map<String, Value> {
    use base64::Engine as _;
    let jwt = token.strip_prefix("JWT ").unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn any_body_gets_a_coded_answer_and_never_a_reserved_claim() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(async {
        let app = test_app(Options {
            api_key: true,
            ..Options::default()
        })
        .await;
        app.add_user("andrew@scientists.com", "correct horse", None).await;
        app
    });
    let mut runner = TestRunner::new(Config::default());
    runner
        .run(
            &prop_oneof![(body(), any::<bool>()), (tokens_body(), Just(true))],
            |(body, to_tokens)| {
                let request = if to_tokens {
                    with_api_key(post_json("/tokens", body.clone()), &format!("Bearer {API_KEY}"))
                } else {
                    post_json("/auth", body.clone())
                };
                let reply = runtime.block_on(app.send(request));
                let status = reply.status.as_u16();
                prop_assert!(
                    status < 500,
                    "{status} for {:?}: {}",
                    String::from_utf8_lossy(&body),
                    reply.text
                );
                if status != 200 {
                    prop_assert!(CODES.contains(&reply.code()), "{status} {}", reply.text);
                    return Ok(());
                }
                let payload = decoded_payload(reply.json["token"].as_str().unwrap());
                prop_assert_eq!(&payload["sub"], "userexternal");
                prop_assert_eq!(
                    &payload["aud"],
                    &Value::from(format!("https://tiledesk.com/projects/{PROJECT}"))
                );
                prop_assert!(payload.get("role").is_none());
                if to_tokens {
                    let sent: Value = serde_json::from_slice(&body).unwrap();
                    let user_id = sent["user_id"].as_str().unwrap();
                    prop_assert_eq!(&payload["_id"], &Value::from(format!("{PROJECT}_{user_id}")));
                }
                for key in payload.keys() {
                    prop_assert!(
                        reserved_claim(key).is_none()
                            || ["_id", "sub", "aud", "iat", "exp", "jti"].contains(&key.as_str())
                    );
                }
                if let Some(Value::Object(attributes)) = payload.get("attributes") {
                    for key in attributes.keys() {
                        prop_assert!(reserved_claim(key).is_none(), "reserved {key} in attributes");
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
