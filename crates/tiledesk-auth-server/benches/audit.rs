//! The audit trail's writer: one batch of minted-token records into a SQLite user database on disk, as the writer
//! hands it over under load (a full batch, `audit::BATCH` records, one statement). Its time per record is the larger
//! part of what the trail costs `POST /tokens` on one core (BENCHMARKS.md, "What metrics and the audit trail cost"),
//! measured here without the noise of an HTTP load.

#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tiledesk_auth_server::UserStore;
use tiledesk_auth_server::audit::{AuditRecord, BATCH, Event};
use tiledesk_auth_server::metrics::Way;

/// A record as `POST /tokens` makes it: a prefixed chat id, a site user id, a 32-digit `jti`, a plain address.
fn minted(n: usize) -> AuditRecord {
    let n64 = i64::try_from(n).expect("a small number");
    AuditRecord {
        at: 1_780_000_000 + n64,
        event: Event::Minted,
        way: Some(Way::api_key),
        chat_id: Some(format!("64f0c0ffee0123456789abcd_user{n}")),
        user_id: Some(format!("user{n}")),
        jti: Some(format!("{n:032x}")),
        expires_at: Some(1_780_003_600 + n64),
        address: Some("127.0.0.1".to_owned()),
        dropped: None,
    }
}

fn bench_audit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("users.db").display());
    let store = runtime.block_on(UserStore::connect(&url)).expect("user database");
    let batch: Vec<AuditRecord> = (0..BATCH).map(minted).collect();

    let mut group = c.benchmark_group("audit_trail");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("write_a_full_batch", |b| {
        b.iter_batched(
            || batch.clone(),
            |records| runtime.block_on(store.insert_audit(records)).expect("written"),
            BatchSize::LargeInput,
        );
    });
    group.finish();
    runtime.block_on(store.close());
}

criterion_group!(benches, bench_audit);
criterion_main!(benches);
