//! The identity audit trail: which chat identity was handed out, to whom, when and how. Tiledesk cannot revoke a
//! token; knowing what was issued is the control a site has.
//!
//! Every minted token is one record (time, the Tiledesk `_id`, the way in, the site's user id, `jti`, expiry, and the
//! client's address or a keyed hash of it), written to the user database (SQLite or PostgreSQL, `audit` table) off the
//! request's path: a request only puts its record in a bounded queue ([`QUEUE`]) and never waits. A writer task
//! takes what is queued, up to [`BATCH`] at a time, and writes it in one transaction. When the queue is full the
//! record is dropped, never the request: the count of dropped records is written as a record of its own and exported
//! as a metric. Records older than the retention are pruned in the background, every [`PRUNE_EVERY`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tiledesk_jwt::VisitorToken;
use tokio::sync::{Notify, mpsc};

use crate::identity::users::UserStore;
use crate::metrics::{Way, metrics};

/// Records waiting to be written, at most.
pub const QUEUE: usize = 10_000;
/// Records written at once, at most: as many as one SQLite statement takes, so that on SQLite a batch is one command
/// to the database's thread.
pub const BATCH: usize = crate::identity::users::SQLITE_AUDIT_ROWS_PER_INSERT;
/// How long the writer waits for more records once it has some, before it writes them.
pub const GATHER: Duration = Duration::from_millis(50);
/// How often old records are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A token was minted.
    Minted,
    /// A user was disabled (`users disable`).
    Disabled,
    /// A user was enabled again (`users enable`).
    Enabled,
    /// Records were lost: the writer's queue was full (or the database refused a batch).
    Dropped,
}

impl Event {
    /// Its name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minted => "minted",
            Self::Disabled => "disabled",
            Self::Enabled => "enabled",
            Self::Dropped => "dropped",
        }
    }

    /// Every event, in the order of [`Event::code`].
    pub const ALL: [Self; 4] = [Self::Minted, Self::Disabled, Self::Enabled, Self::Dropped];

    /// The event of a name in the table.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == name)
    }

    /// Its place in [`Event::ALL`]: what the writer binds (an integer costs the database no copy; the statement turns
    /// it back into the name).
    pub fn code(self) -> i64 {
        self as i64
    }
}

/// One record of the trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// When, in Unix seconds.
    pub at: i64,
    /// What happened.
    pub event: Event,
    /// How the visitor came in (`password`, `login_session`, `session`, `oidc`, `api_key`), for `minted`.
    pub way: Option<Way>,
    /// The token's `_id`: the visitor's identity in Tiledesk's chat.
    pub chat_id: Option<String>,
    /// The site's user id (the password store's id, the session's `id`, the ID token's `sub`, `/tokens`'s
    /// `user_id`).
    pub user_id: Option<String>,
    /// The token's `jti`.
    pub jti: Option<String>,
    /// The token's `exp`, in Unix seconds.
    pub expires_at: Option<i64>,
    /// The client's address, or its keyed hash (`--audit-address hashed`).
    pub address: Option<String>,
    /// For `dropped`: how many records were lost.
    pub dropped: Option<i64>,
}

impl AuditRecord {
    /// A `disabled` or `enabled` record for the site user `user_id`, now.
    pub fn user_changed(event: Event, user_id: &str) -> Self {
        Self {
            at: now(),
            event,
            way: None,
            chat_id: None,
            user_id: Some(user_id.to_owned()),
            jti: None,
            expires_at: None,
            address: None,
            dropped: None,
        }
    }
}

/// How the client's address is recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressRecord {
    /// As it is.
    #[default]
    Plain,
    /// As a keyed hash (HMAC-SHA256 with a key derived from the project secret, 16 bytes in hex): the same address
    /// gives the same value, so one visitor's records can be told apart from another's, and the address cannot be
    /// read back.
    Hashed,
    /// Not at all.
    None,
}

/// Where minted tokens are recorded. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    queue: mpsc::Sender<AuditRecord>,
    dropped: Arc<AtomicU64>,
    address: AddressRecord,
    address_key: Arc<[u8; 32]>,
    writer: Arc<Writer>,
}

/// The writer task, and how to make it finish.
#[derive(Debug)]
struct Writer {
    /// Told by [`AuditTrail::close`]: take no more records, write what is queued, stop.
    close: Notify,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The trail's settings.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// How long records are kept; none: for ever.
    pub retention: Option<Duration>,
    /// How the client's address is recorded.
    pub address: AddressRecord,
}

impl AuditTrail {
    /// Starts the writer and the pruner on `users`; they stop when the last clone of the trail is dropped.
    /// A key derived from `secret` keys the address hash.
    pub fn start(users: UserStore, options: &AuditOptions, secret: &tiledesk_jwt::ProjectSecret) -> Self {
        Self::with_queue(users, options, secret, QUEUE)
    }

    /// [`AuditTrail::start`] with room for `room` records in the queue.
    fn with_queue(
        users: UserStore,
        options: &AuditOptions,
        secret: &tiledesk_jwt::ProjectSecret,
        room: usize,
    ) -> Self {
        let (queue, records) = mpsc::channel(room);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Arc::new(Writer {
            close: Notify::new(),
            task: std::sync::Mutex::new(None),
        });
        let task = tokio::spawn(write(
            users.clone(),
            records,
            Arc::clone(&dropped),
            Arc::clone(&writer),
        ));
        if let Ok(mut slot) = writer.task.lock() {
            *slot = Some(task);
        }
        if let Some(retention) = options.retention {
            let queue = queue.downgrade();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PRUNE_EVERY);
                loop {
                    every.tick().await;
                    // Stops with the trail.
                    if queue.upgrade().is_none() {
                        return;
                    }
                    let before = now() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
                    match users.prune_audit(before).await {
                        Ok(0) => {}
                        Ok(pruned) => tracing::info!(pruned, "audit records past the retention removed"),
                        Err(err) => tracing::warn!(error = %err, "audit records NOT pruned"),
                    }
                }
            });
        }
        Self {
            queue,
            dropped,
            address: options.address,
            address_key: Arc::new(*secret.derive_key("tiledesk-auth audit address")),
            writer,
        }
    }

    /// Writes every record queued so far, and the count of those dropped, then stops the writer: for a shutdown,
    /// before the user database closes (the service's clones of the trail may outlive the listener). Tokens minted
    /// afterwards are counted as dropped. Returns once the writer has finished; a second call returns at once.
    pub async fn close(&self) {
        self.writer.close.notify_one();
        let task = self.writer.task.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::warn!(error = %err, "the audit writer failed");
        }
    }

    /// Records `token`, minted for the site's user `user_id` who came in `way` from `address`. Never waits: when the
    /// queue is full the record is counted as dropped.
    pub fn minted(&self, token: &VisitorToken, way: Way, user_id: &str, address: IpAddr) {
        let record = AuditRecord {
            at: i64::try_from(token.issued_at()).unwrap_or(i64::MAX),
            event: Event::Minted,
            way: Some(way),
            chat_id: Some(token.chat_user_id().to_owned()),
            user_id: Some(user_id.to_owned()),
            jti: Some(token.jti().to_owned()),
            expires_at: Some(i64::try_from(token.expires_at()).unwrap_or(i64::MAX)),
            address: self.address_of(address),
            dropped: None,
        };
        if self.queue.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics().audit_dropped(1);
        }
    }

    fn address_of(&self, address: IpAddr) -> Option<String> {
        match self.address {
            AddressRecord::Plain => Some(address_text(address)),
            AddressRecord::None => None,
            AddressRecord::Hashed => {
                let digest = keyed(&self.address_key[..], address_text(address).as_bytes());
                Some(crate::module::hex(&digest[..16]))
            }
        }
    }
}

/// The address as `Display` writes it; an IPv4 address (most of them) without the formatting machinery, which cost
/// a sixth of the trail's work on the request path.
fn address_text(address: IpAddr) -> String {
    let IpAddr::V4(v4) = address else {
        return address.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// HMAC-SHA256 of `message` under `key` (HMAC takes a key of any length).
fn keyed(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| {
        <Hmac<Sha256> as Mac>::new_from_slice(&[0]).unwrap_or_else(|_| unreachable!("HMAC takes any key"))
    });
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A `dropped` record: `lost` records were not written.
fn dropped_record(lost: u64) -> AuditRecord {
    AuditRecord {
        at: now(),
        event: Event::Dropped,
        way: None,
        chat_id: None,
        user_id: None,
        jti: None,
        expires_at: None,
        address: None,
        dropped: Some(i64::try_from(lost).unwrap_or(i64::MAX)),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

/// The writer: what is queued, in batches, until every sender is gone or the trail is closed; once a second, the
/// count of records dropped since the last write, as a record of its own.
async fn write(
    users: UserStore,
    mut records: mpsc::Receiver<AuditRecord>,
    dropped: Arc<AtomicU64>,
    writer: Arc<Writer>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // One buffer for every batch, drained into the statement (a batch's records are ~0.5 MB).
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            () = writer.close.notified() => {
                // No record is taken from now on; what is queued is still received, then the channel ends.
                records.close();
                continue;
            }
            received = records.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    // Every sender is gone, or the trail is closed: what was dropped is still said.
                    flush_dropped(&users, &dropped).await;
                    return;
                }
                // Under load, a moment more fills the batch: fewer, larger transactions cost far less per record.
                if batch.len() < BATCH {
                    tokio::time::sleep(GATHER).await;
                    // What came meanwhile, at once (the records are there: this does not wait).
                    let room = BATCH - batch.len();
                    if !records.is_empty() {
                        records.recv_many(&mut batch, room).await;
                    }
                }
            }
            _ = tick.tick() => {}
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.push(dropped_record(lost));
        }
        if batch.is_empty() {
            continue;
        }
        // What is lost if the batch is refused: said in the next batch that goes through.
        let (lost, records) = batch
            .iter()
            .fold((0, 0), |(lost, records), record| match record.event {
                Event::Dropped => (
                    lost + record.dropped.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    records,
                ),
                _ => (lost + 1, records + 1),
            });
        let size = batch.len();
        if let Err(err) = users.insert_audit(batch.drain(..)).await {
            dropped.fetch_add(lost, Ordering::Relaxed);
            metrics().audit_dropped(records);
            tracing::warn!(error = %err, records = size, "audit records NOT written");
        }
    }
}

async fn flush_dropped(users: &UserStore, dropped: &AtomicU64) {
    let lost = dropped.swap(0, Ordering::Relaxed);
    if lost > 0
        && let Err(err) = users.insert_audit(vec![dropped_record(lost)]).await
    {
        tracing::warn!(error = %err, lost, "the count of dropped audit records NOT written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiledesk_jwt::{ProjectId, ProjectSecret, TokenIssuer, VisitorClaims};

    fn secret() -> ProjectSecret {
        ProjectSecret::new("an audit test secret of 32 bytes, at least").unwrap()
    }

    fn token(user: &str) -> VisitorToken {
        TokenIssuer::new(ProjectId::new("64f0c0ffee0123456789abcd").unwrap(), secret())
            .mint(&VisitorClaims::builder(user).build().unwrap())
            .unwrap()
    }

    /// Polls `store`'s trail until `done` holds (the writer runs on its own), at most 10 s.
    async fn until(store: &UserStore, done: impl Fn(&[AuditRecord]) -> bool) -> Vec<AuditRecord> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = store.audit(None, 0).await.unwrap();
            if done(&records) {
                return records;
            }
            assert!(tokio::time::Instant::now() < deadline, "{records:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut addresses: Vec<IpAddr> = [0u8, 1, 9, 10, 99, 100, 199, 200, 255]
            .into_iter()
            .flat_map(|a| [0u8, 7, 42, 250].map(|b| IpAddr::from([a, b, 255 - a, b / 3])))
            .collect();
        addresses.extend(
            ["::1", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1"].map(|a| a.parse::<IpAddr>().unwrap()),
        );
        for address in addresses {
            assert_eq!(address_text(address), address.to_string());
        }
    }

    #[test]
    fn each_event_has_its_code_and_name_back() {
        for (code, event) in Event::ALL.into_iter().enumerate() {
            assert_eq!(event.code(), i64::try_from(code).unwrap());
            assert_eq!(Event::parse(event.as_str()), Some(event));
        }
    }

    #[tokio::test]
    async fn a_hashed_address_tells_visitors_apart_and_cannot_be_read_back() {
        let store = UserStore::connect("sqlite::memory:").await.unwrap();
        let options = |address| AuditOptions {
            retention: None,
            address,
        };
        let hashed = AuditTrail::start(store.clone(), &options(AddressRecord::Hashed), &secret());
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let (ha, hb) = (hashed.address_of(a).unwrap(), hashed.address_of(b).unwrap());
        assert_eq!(
            hashed.address_of(a).unwrap(),
            ha,
            "the same address, the same value"
        );
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 32);
        assert!(!ha.contains("203") && !ha.contains("113"), "{ha}");
        let other_key = AuditTrail::start(
            store.clone(),
            &options(AddressRecord::Hashed),
            &ProjectSecret::new("another project's secret, 32 bytes or more").unwrap(),
        );
        assert_ne!(
            other_key.address_of(a).unwrap(),
            ha,
            "keyed: another secret, another value"
        );
        let none = AuditTrail::start(store.clone(), &options(AddressRecord::None), &secret());
        assert_eq!(none.address_of(a), None);
        let plain = AuditTrail::start(store, &options(AddressRecord::Plain), &secret());
        assert_eq!(plain.address_of(a).as_deref(), Some("203.0.113.7"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_records_never_the_request_and_says_how_many() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let store = UserStore::connect(&url).await.unwrap();
        // The database locked by another process: the writer's first batch waits, and the queue (room for 4)
        // fills.
        use sqlx::{ConnectOptions, Connection};
        let mut locker = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE; UPDATE users SET updated_at = updated_at;")
            .execute(&mut locker)
            .await
            .unwrap();
        let options = AuditOptions {
            retention: None,
            address: AddressRecord::Plain,
        };
        let trail = AuditTrail::with_queue(store.clone(), &options, &secret(), 4);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        // Forty mints while the database is locked: each returns without waiting for the trail (one that waited
        // would wait for a lock released only after this loop).
        for n in 0..40 {
            trail.minted(&token(&format!("u{n}")), Way::api_key, &format!("u{n}"), address);
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
        locker.close().await.unwrap();
        let records = until(&store, |records| {
            let minted = records.iter().filter(|r| r.event == Event::Minted).count() as i64;
            let dropped: i64 = records.iter().filter_map(|r| r.dropped).sum();
            minted + dropped == 40
        })
        .await;
        let minted: Vec<_> = records.iter().filter(|r| r.event == Event::Minted).collect();
        assert!(minted.len() < 40, "some were dropped: {}", minted.len());
        assert!(
            minted.len() >= 4,
            "what the queue held is written: {}",
            minted.len()
        );
        let first = minted[0];
        assert_eq!(first.way, Some(Way::api_key));
        assert_eq!(first.chat_id.as_deref(), Some("64f0c0ffee0123456789abcd_u0"));
        assert_eq!(first.address.as_deref(), Some("192.0.2.1"));
        assert_eq!(first.jti.as_ref().map(String::len), Some(32));
    }

    #[tokio::test]
    async fn close_writes_what_is_queued_before_it_returns_and_counts_later_mints_as_dropped() {
        let store = UserStore::connect("sqlite::memory:").await.unwrap();
        let options = AuditOptions {
            retention: None,
            address: AddressRecord::Plain,
        };
        let trail = AuditTrail::start(store.clone(), &options, &secret());
        // A clone held elsewhere (as the service's handlers hold theirs) does not keep the writer running.
        let held = trail.clone();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        for n in 0..5 {
            trail.minted(&token(&format!("u{n}")), Way::password, &format!("u{n}"), address);
        }
        trail.close().await;
        // Read once, no polling: everything queued is written when `close` returns.
        let records = store.audit(None, 0).await.unwrap();
        let minted = records.iter().filter(|r| r.event == Event::Minted).count();
        assert_eq!(minted, 5, "{records:?}");
        held.minted(&token("late"), Way::password, "late", address);
        assert_eq!(
            held.dropped.load(Ordering::Relaxed),
            1,
            "a mint after close is counted"
        );
        held.close().await;
    }

    #[tokio::test]
    async fn records_past_the_retention_are_pruned_in_the_background() {
        let store = UserStore::connect("sqlite::memory:").await.unwrap();
        let mut old = AuditRecord::user_changed(Event::Disabled, "old");
        old.at -= 3 * 24 * 60 * 60;
        let recent = AuditRecord::user_changed(Event::Enabled, "recent");
        store.insert_audit(vec![old, recent]).await.unwrap();
        let _trail = AuditTrail::start(
            store.clone(),
            &AuditOptions {
                retention: Some(Duration::from_secs(2 * 24 * 60 * 60)),
                address: AddressRecord::Plain,
            },
            &secret(),
        );
        let left = until(&store, |records| records.len() == 1).await;
        assert_eq!(left[0].user_id.as_deref(), Some("recent"));
    }
}
