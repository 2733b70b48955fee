//! Property tests over the claims builder, the minter and the token checker: no input panics, every token minted
//! from accepted claims checks clean, and no input sets a reserved claim.
//!
//! `cargo test` runs 256 cases per property; `cargo xtask fuzz` runs many more (`PROPTEST_CASES`).

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Map, Value};
use tiledesk_jwt::{
    MAX_TOKEN_LEN, ProjectId, ProjectSecret, TokenIssuer, VisitorClaims, check_at, reserved_claim,
};

const PROJECT: &str = "64f0c0ffee0123456789abcd";
const SECRET: &str = "property-secret-3f1c9a52-5d2e-4f7b-9c1a";
const NOW: u64 = 1_795_000_000;

fn project() -> ProjectId {
    ProjectId::new(PROJECT).unwrap()
}

fn secret() -> ProjectSecret {
    ProjectSecret::new(SECRET).unwrap()
}

/// Text that hits the interesting cases often: reserved names in any case, emails, control characters, any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 _.@+-]{0,24}",
        "[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,4}",
        prop::sample::select(vec![
            "role", "ROLE", "Role", "_id", "sub", "aud", "exp", "iat", "jti", "nbf", "iss", "roles", " role",
            "role ",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}[\\x00-\\x1f\\x7f]\\PC{0,12}",
    ]
}

/// Mostly plain values, sometimes anything: enough inputs are accepted for the minting property to bite (counted
/// once: about a third of the generated claims are accepted, the rest refused).
fn mostly_plain(plain: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![4 => plain, 1 => text()]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const MINTED_KEYS: [&str; 10] = [
    "_id",
    "sub",
    "aud",
    "iat",
    "exp",
    "jti",
    "firstname",
    "lastname",
    "email",
    "attributes",
];

proptest! {
    #[test]
    fn accepted_claims_mint_tokens_that_check_clean_and_keep_every_reserved_claim_ours(
        user_id in mostly_plain("[a-zA-Z0-9_.@-]{1,24}"),
        firstname in prop::option::of(mostly_plain("[A-Za-z '-]{0,20}")),
        lastname in prop::option::of(mostly_plain("[A-Za-z '-]{0,20}")),
        email in prop::option::of(mostly_plain("[a-z0-9.]{1,12}@[a-z]{1,8}\\.[a-z]{2,4}")),
        attributes in prop::collection::btree_map(mostly_plain("[a-z_]{1,12}"), json(), 0..6),
        extra in prop::option::of(json()),
    ) {
        let mut builder = VisitorClaims::builder(user_id.clone());
        if let Some(name) = firstname { builder = builder.firstname(name); }
        if let Some(name) = lastname { builder = builder.lastname(name); }
        if let Some(email) = email { builder = builder.email(email); }
        builder = builder.attributes(Value::Object(attributes.into_iter().collect()));
        if let Some(extra) = extra { builder = builder.attributes(extra); }
        // Refusing is fine; panicking is not.
        let Ok(claims) = builder.build() else { return Ok(()); };

        let issuer = TokenIssuer::new(project(), secret());
        let token = match issuer.mint_at(&claims, NOW) {
            // Refused only for its length, and then it is over the limit.
            Err(tiledesk_jwt::Error::TokenTooLarge { len, max }) => {
                prop_assert!(len > max && max == MAX_TOKEN_LEN);
                return Ok(());
            }
            minted => minted.unwrap(),
        };
        prop_assert!(token.as_str().len() <= MAX_TOKEN_LEN);
        let report = check_at(token.as_str(), &project(), &secret(), NOW + 1);
        prop_assert!(report.is_safe(), "{:?}", report.findings());
        let payload = report.claims().unwrap();
        prop_assert_eq!(&payload["_id"], &Value::from(format!("{PROJECT}_{user_id}")));
        prop_assert_eq!(&payload["sub"], "userexternal");
        prop_assert_eq!(&payload["aud"], &Value::from(format!("https://tiledesk.com/projects/{PROJECT}")));
        prop_assert_eq!(&payload["iat"], &Value::from(NOW));
        prop_assert_eq!(&payload["exp"], &Value::from(NOW + 3600));
        for key in payload.keys() {
            prop_assert!(MINTED_KEYS.contains(&key.as_str()), "unexpected claim {key}");
        }
        if let Some(Value::Object(attributes)) = payload.get("attributes") {
            for key in attributes.keys() {
                prop_assert!(reserved_claim(key).is_none(), "reserved {key} in attributes");
            }
        }
    }

    #[test]
    fn check_never_panics_on_any_text(token in any::<String>()) {
        let _ = check_at(&token, &project(), &secret(), NOW);
    }

    #[test]
    fn check_never_panics_on_token_shaped_text(
        scheme in prop::sample::select(vec!["JWT ", "jwt ", "Bearer ", "JWT  ", ""]),
        parts in prop::collection::vec("[A-Za-z0-9_=+/-]{0,40}", 0..5),
    ) {
        let _ = check_at(&format!("{scheme}{}", parts.join(".")), &project(), &secret(), NOW);
    }

    /// Any payload, correctly signed: the checker reads it without panicking, and a `role` anywhere at the top level
    /// is never called safe.
    #[test]
    fn signed_arbitrary_payloads_are_judged_without_panic(payload in prop::collection::btree_map(text(), json(), 0..8)) {
        let payload: Map<String, Value> = payload.into_iter().collect();
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
        let input = format!("{header}.{body}");
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256).unwrap();
        let report = check_at(&format!("JWT {input}.{signature}"), &project(), &secret(), NOW);
        if payload.keys().any(|k| k.eq_ignore_ascii_case("role")) {
            prop_assert!(!report.is_safe(), "a role claim passed as safe: {:?}", report.findings());
        }
    }
}
