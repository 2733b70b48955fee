//! Minting a visitor token beside the physical floor: one bare HMAC-SHA256 over the same signing input.
//! The ratio between the two is the cost of JSON, base64 and the token id around the signature.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};

const SECRET: &str = "3f1c9a52-5d2e-4f7b-9c1a-2b8e6d4f0a17";

fn bench_mint(c: &mut Criterion) {
    let project = ProjectId::new("64f0c0ffee0123456789abcd").expect("project id");
    let issuer = TokenIssuer::new(project, ProjectSecret::new(SECRET).expect("secret"));
    let claims = VisitorClaims::builder("42")
        .firstname("Andrew")
        .lastname("Wiles")
        .email("andrew@scientists.com")
        .build()
        .expect("claims");
    let token = issuer.mint(&claims).expect("mint");
    let signing_input = token.jwt().rsplit_once('.').expect("three parts").0.to_owned();

    let mut group = c.benchmark_group("visitor_token");
    group.bench_function("mint", |b| {
        b.iter(|| issuer.mint(black_box(&claims)).expect("mint"));
    });
    group.bench_function("bare_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
            mac.update(black_box(signing_input.as_bytes()));
            mac.finalize().into_bytes()
        });
    });
    group.finish();
}

criterion_group!(benches, bench_mint);
criterion_main!(benches);
