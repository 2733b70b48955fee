//! The audit trail's writer: one batch of minted-token records into a SQLite user database on disk, as the writer
//! hands it over under load (a full batch, `audit::BATCH` records, one statement). Its time per record is the larger
//! part of what the trail costs `POST /tokens` on one core (BENCHMARKS.md, "What metrics and the audit trail cost"),
//! measured here without the noise of an HTTP load.

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tiledesk_auth_server::UserStore;
use tiledesk_auth_server::audit::{BATCH, MintedBatch};
use tiledesk_auth_server::metrics::Way;
use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};

fn bench_audit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let store = runtime.block_on(UserStore::connect(&url)).expect("user database");
    // Tokens as `POST /tokens` mints them: a prefixed chat id, a site user id, a 32-digit `jti`, a plain address.
    let issuer = TokenIssuer::new(
        ProjectId::new("64f0c0ffee0123456789abcd").expect("a project id"),
        ProjectSecret::new("a benchmark secret of 32 bytes, at least").expect("a secret"),
    );
    let mut batch = MintedBatch::default();
    for n in 0..BATCH {
        let user = format!("user{n}");
        let claims = VisitorClaims::builder(user.as_str()).build().expect("claims");
        let token = issuer.mint(&claims).expect("a token");
        batch.push(&token, Way::api_key, &user, Some("127.0.0.1"));
    }

    let mut group = c.benchmark_group("audit_trail");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("write_a_full_batch", |b| {
        b.iter(|| runtime.block_on(store.insert_minted(&batch)).expect("written"));
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
