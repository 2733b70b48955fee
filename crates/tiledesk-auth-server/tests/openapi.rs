//! The OpenAPI document against the service: `docs/openapi.json` is the generated document, `GET /openapi.json`
//! serves it, every route and status the tests provoke is documented, and every answer (and every request body sent)
//! matches its schema.

#![allow(clippy::unwrap_used)] // test code: a failure should panic with its error

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{API_KEY, Options, post_json, test_app};
use serde_json::{Value, json};

/// `schema` resolved against the document's components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").unwrap();
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// What in `value` does not match `schema` (the parts of JSON Schema the document uses), as paths; empty when it
/// matches.
fn mismatches(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(document, schema);
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| mismatches(document, option, value, at).is_empty())
            .count();
        return if matching == 1 {
            Vec::new()
        } else {
            vec![format!("{at}: {matching} of the oneOf match {value}")]
        };
    }
    let mut wrong = Vec::new();
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
            other => vec![other.as_str().unwrap()],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = kinds.contains(&actual) || (actual == "integer" && kinds.contains(&"number"));
        if !fits {
            return vec![format!("{at}: {actual}, not {kinds:?}")];
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(required.as_str().unwrap()) {
                wrong.push(format!("{at}: `{required}` missing"));
            }
        }
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(property) => wrong.extend(mismatches(document, property, item, &format!("{at}.{key}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    wrong.push(format!("{at}: `{key}` not in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            wrong.extend(mismatches(document, items, item, &format!("{at}[{index}]")));
        }
    }
    wrong
}

/// Checks an answer of `method path` against the document: its status documented, its JSON body of that schema.
fn check_answer(document: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &document["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not in the document");
    let response = &operation["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    let schema = &response["content"]["application/json"]["schema"];
    let wrong = mismatches(document, schema, body, "body");
    assert!(wrong.is_empty(), "{method} {path} {status}: {wrong:?}\n{body}");
}

/// Checks a request body against the documented one.
fn check_request(document: &Value, method: &str, path: &str, body: &Value) {
    let schema = &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    let wrong = mismatches(document, schema, body, "request");
    assert!(wrong.is_empty(), "{method} {path} request: {wrong:?}\n{body}");
}

#[tokio::test]
async fn the_committed_document_is_the_generated_one_and_every_answer_matches_it() {
    let generated = tiledesk_auth_server::openapi::document();
    let committed = include_str!("../../../docs/openapi.json");
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `tiledesk-auth openapi > docs/openapi.json`"
    );
    let document: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(document["openapi"], "3.1.0");

    let app = test_app(Options {
        api_key: true,
        ..Options::default()
    })
    .await;
    app.add_user("ada@example.com", "correct horse", Some("Ada"))
        .await;
    let served = app
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(served.status, 200);
    assert_eq!(served.text, generated, "GET /openapi.json serves the document");

    // POST /auth: each body sent is a documented one, each answer matches its status's schema.
    let auth_cases = [
        (
            json!({"email": "ada@example.com", "password": "correct horse"}),
            200,
        ),
        (json!({"email": "ada@example.com", "password": "wrong"}), 401),
        (json!({"email": "not an email", "password": "x"}), 400),
        (json!({}), 400),
    ];
    for (body, status) in auth_cases {
        check_request(&document, "post", "/auth", &body);
        let reply = app.send(post_json("/auth", body.to_string())).await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
        check_answer(&document, "post", "/auth", status, &reply.json);
    }
    let mut not_json = post_json("/auth", "{}");
    not_json
        .headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    let reply = app.send(not_json).await;
    check_answer(&document, "post", "/auth", reply.status.as_u16(), &reply.json);
    let reply = app
        .send(Request::delete("/auth").body(Body::empty()).unwrap())
        .await;
    check_answer(&document, "delete", "/auth", reply.status.as_u16(), &reply.json);

    // POST /tokens, with and without the key.
    let tokens = |key: Option<&str>, body: &Value| {
        let mut request = post_json("/tokens", body.to_string());
        if let Some(key) = key {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {key}").parse().unwrap());
        }
        request
    };
    let full = json!({"user_id": "42", "firstname": "Andrew", "lastname": "Wiles", "email": "andrew@scientists.com", "attributes": {"plan": "pro"}});
    for (key, body, status) in [
        (Some(API_KEY), full.clone(), 200),
        (Some(API_KEY), json!({"user_id": "42"}), 200),
        (Some(API_KEY), json!({"firstname": "no id"}), 400),
        (None, full.clone(), 401),
        (Some("a wrong key, long enough"), full, 401),
    ] {
        let reply = app.send(tokens(key, &body)).await;
        assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
        if status == 200 {
            check_request(&document, "post", "/tokens", &body);
        }
        check_answer(&document, "post", "/tokens", status, &reply.json);
    }

    // The probes.
    for path in ["/healthz", "/readyz"] {
        let reply = app.send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, 200, "{path}");
        check_answer(&document, "get", path, 200, &reply.json);
    }
    // And the validator itself: an answer that is not the documented one is caught.
    let wrong = mismatches(
        &document,
        &json!({"$ref": "#/components/schemas/TokenResponse"}),
        &json!({"token": "JWT x", "expires_at": "soon", "user": {"id": "42"}}),
        "body",
    );
    assert!(wrong.iter().any(|w| w.contains("expires_at")), "{wrong:?}");
}
