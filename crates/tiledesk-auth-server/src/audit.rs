//! The identity audit trail: which chat identity was handed out, to whom, when and how. Tiledesk cannot revoke a
//! token; knowing what was issued is the control a site has.
//!
//! Every minted token is one record (time, the Tiledesk `_id`, the way in, the site's user id, `jti`, expiry, and the
//! client's address or a keyed hash of it), written to the user database (SQLite or PostgreSQL, `audit` table) off the
//! request's path: a request only appends its record to a bounded queue ([`QUEUE`], a [`MintedBatch`]) and never
//! waits. A writer task takes what is queued, all at once, and writes it in one transaction, [`BATCH`] records to a
//! statement. When the queue is full the record is dropped, never the request: the count of dropped records is
//! written as a record of its own and exported as a metric. Records older than the retention are pruned in the
//! background, every [`PRUNE_EVERY`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tiledesk_jwt::VisitorToken;
use tokio::sync::Notify;

use crate::identity::users::UserStore;
use crate::metrics::{Way, metrics};

/// Records waiting to be written, at most.
pub const QUEUE: usize = 10_000;
/// Records the writer waits for: with fewer queued, it waits [`GATHER`] for more before it writes. As many as one
/// SQLite statement takes, so that on SQLite a batch under load is one command to the database's thread.
pub const BATCH: usize = crate::identity::users::SQLITE_MINTED_ROWS_PER_INSERT;
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

/// Minted tokens' records, packed: a row of numbers a token, and its four strings (the chat id, the site's user id,
/// the `jti`, the address) back to back in one buffer shared by every row. What the trail queues: recording a token
/// copies its strings to the end of the buffer, with no allocation of its own (the buffer's room is kept from batch
/// to batch), and the writer hands SQLite the text of up to 4,095 records at once, which SQLite cuts into the rows'
/// values itself ([`UserStore::insert_minted`]). As [`AuditRecord`]s, four strings a record allocated on the request's thread and
/// freed on the database's were most of the trail's cost on the request path (BENCHMARKS.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MintedBatch {
    /// Every row's strings, in the order of [`MintedRow`]'s lengths.
    text: String,
    rows: Vec<MintedRow>,
}

/// A row of a [`MintedBatch`]: its numbers, and the byte lengths of its strings in the batch's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MintedRow {
    pub(crate) at: i64,
    pub(crate) expires_at: i64,
    pub(crate) way: Way,
    pub(crate) chat_id: usize,
    pub(crate) user_id: usize,
    pub(crate) jti: usize,
    /// None: no address recorded (`--audit-address none`).
    pub(crate) address: Option<usize>,
}

impl MintedRow {
    /// The bytes its strings take in the batch's text.
    pub(crate) fn text_len(&self) -> usize {
        self.chat_id + self.user_id + self.jti + self.address.unwrap_or(0)
    }
}

impl MintedBatch {
    /// Records `token`, minted for the site's user `user_id` who came in `way` from `address` (as it is to be
    /// written: plain, hashed, or none).
    pub fn push(&mut self, token: &VisitorToken, way: Way, user_id: &str, address: Option<&str>) {
        let (chat_id, jti) = (token.chat_user_id(), token.jti());
        for text in [chat_id, user_id, jti].into_iter().chain(address) {
            self.text.push_str(text);
        }
        self.rows.push(MintedRow {
            at: i64::try_from(token.issued_at()).unwrap_or(i64::MAX),
            expires_at: i64::try_from(token.expires_at()).unwrap_or(i64::MAX),
            way,
            chat_id: chat_id.len(),
            user_id: user_id.len(),
            jti: jti.len(),
            address: address.map(str::len),
        });
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Empties it, keeping its room.
    pub fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    /// Its records, as the trail reads them back.
    pub fn records(&self) -> impl Iterator<Item = AuditRecord> + '_ {
        let mut rest = self.text.as_str();
        let mut take = move |len: usize| {
            let (taken, left) = rest.split_at(len);
            rest = left;
            taken.to_owned()
        };
        self.rows.iter().map(move |row| AuditRecord {
            at: row.at,
            event: Event::Minted,
            way: Some(row.way),
            chat_id: Some(take(row.chat_id)),
            user_id: Some(take(row.user_id)),
            jti: Some(take(row.jti)),
            expires_at: Some(row.expires_at),
            address: row.address.map(&mut take),
            dropped: None,
        })
    }

    /// Its rows in runs of at most `rows` each, with the text of each run.
    pub(crate) fn runs(&self, rows: usize) -> impl Iterator<Item = (&str, &[MintedRow])> + '_ {
        let mut start = 0;
        self.rows.chunks(rows.max(1)).map(move |run| {
            let end = start + run.iter().map(MintedRow::text_len).sum::<usize>();
            let text = &self.text[start..end];
            start = end;
            (text, run)
        })
    }
}

/// Where minted tokens are recorded. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    /// The queue, held by every clone: when the last goes, the writer writes what is queued and stops.
    open: Arc<Open>,
    address: AddressRecord,
    address_key: Arc<[u8; 32]>,
    /// The writer task, until [`AuditTrail::close`] takes it to wait for it.
    writer: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// What the trail's clones and its writer share.
#[derive(Debug)]
struct Queue {
    /// The tokens not yet taken by the writer, at most `room`.
    pending: Mutex<MintedBatch>,
    room: usize,
    /// Set by [`AuditTrail::close`] or when the last clone goes: no more records are taken.
    closed: AtomicBool,
    /// Tells the writer that records came into an empty queue, or that the trail closed.
    wake: Notify,
    /// Records lost since the last count was written.
    dropped: AtomicU64,
}

impl Queue {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, MintedBatch> {
        // Nothing panics while holding it; a poisoned queue still holds its records.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_dropped(&self, lost: u64) {
        self.dropped.fetch_add(lost, Ordering::Relaxed);
        metrics().audit_dropped(lost);
    }
}

/// Closes the queue when the last clone of the trail goes.
#[derive(Debug)]
struct Open(Arc<Queue>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.close();
    }
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
        let queue = Arc::new(Queue {
            pending: Mutex::new(MintedBatch::default()),
            room,
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        });
        let open = Arc::new(Open(Arc::clone(&queue)));
        let writer = Arc::new(Mutex::new(Some(tokio::spawn(write(users.clone(), queue)))));
        if let Some(retention) = options.retention {
            let open = Arc::downgrade(&open);
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PRUNE_EVERY);
                loop {
                    every.tick().await;
                    // Stops with the trail.
                    if open.upgrade().is_none() {
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
            open,
            address: options.address,
            address_key: Arc::new(*secret.derive_key("tiledesk-auth audit address")),
            writer,
        }
    }

    /// Writes every record queued so far, and the count of those dropped, then stops the writer: for a shutdown,
    /// before the user database closes (the service's clones of the trail may outlive the listener). Tokens minted
    /// afterwards are counted as dropped. Returns once the writer has finished; a second call returns at once.
    pub async fn close(&self) {
        self.open.0.close();
        let task = self.writer.lock().ok().and_then(|mut slot| slot.take());
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::warn!(error = %err, "the audit writer failed");
        }
    }

    /// Records `token`, minted for the site's user `user_id` who came in `way` from `address`. Never waits for the
    /// writer (the queue's lock is held only to append the record's ~100 bytes, or for the writer to swap the queue
    /// for an empty one): when the queue is full the record is counted as dropped.
    pub fn minted(&self, token: &VisitorToken, way: Way, user_id: &str, address: IpAddr) {
        let address = self.address_of(address);
        let queue = &self.open.0;
        let first = {
            let mut pending = queue.lock();
            // Read under the lock: once the writer has taken the last records of a closed trail, none is added.
            if queue.closed.load(Ordering::Acquire) || pending.len() >= queue.room {
                None
            } else {
                pending.push(token, way, user_id, address.as_ref().map(Address::as_str));
                Some(pending.len() == 1)
            }
        };
        match first {
            Some(true) => queue.wake.notify_one(),
            Some(false) => {}
            None => queue.count_dropped(1),
        }
    }

    fn address_of(&self, address: IpAddr) -> Option<Address> {
        match self.address {
            AddressRecord::Plain => Some(Address::of(address)),
            AddressRecord::None => None,
            AddressRecord::Hashed => {
                let digest = keyed(&self.address_key[..], Address::of(address).as_str().as_bytes());
                Some(Address::hex(&digest[..16]))
            }
        }
    }
}

/// An address as it is recorded, on the stack: an IPv6 address's text is at most 45 bytes, a hash's 32.
#[derive(Clone, Copy, Debug)]
struct Address {
    bytes: [u8; 45],
    len: usize,
}

impl Address {
    /// The address as `Display` writes it; an IPv4 address (most of them) without the formatting machinery, which
    /// cost a sixth of the trail's work on the request path.
    fn of(address: IpAddr) -> Self {
        let mut text = Self {
            bytes: [0; 45],
            len: 0,
        };
        let IpAddr::V4(v4) = address else {
            // Within its 45 bytes: `Display` cannot fail here.
            let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{address}"));
            return text;
        };
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                text.push(b'.');
            }
            if octet >= 100 {
                text.push(b'0' + octet / 100);
            }
            if octet >= 10 {
                text.push(b'0' + octet / 10 % 10);
            }
            text.push(b'0' + octet % 10);
        }
        text
    }

    /// `bytes` in lower-case hex (at most 22 of them: 44 digits).
    fn hex(bytes: &[u8]) -> Self {
        let mut text = Self {
            bytes: [0; 45],
            len: 0,
        };
        let _ = std::fmt::Write::write_str(&mut text, &crate::module::hex(&bytes[..bytes.len().min(22)]));
        text
    }

    /// Appends an ASCII byte (the callers stay within the 45).
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII and whole `str`s are written to it.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for Address {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
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

/// The writer: once records come into the queue, it waits [`GATHER`] for more (unless [`BATCH`] are there already),
/// takes them all at once (the queue swapped for the writer's empty batch, whose room it keeps) and writes them; once
/// a second, the count of records dropped since the last write, as a record of its own. When the trail closes, it
/// writes what is queued and that count, and stops.
async fn write(users: UserStore, queue: Arc<Queue>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut batch = MintedBatch::default();
    loop {
        tokio::select! {
            () = queue.wake.notified() => {}
            _ = tick.tick() => {}
        }
        let mut closed = queue.closed.load(Ordering::Acquire);
        // Under load, a moment more fills the batch: fewer, larger transactions cost far less per record.
        if !closed && (1..BATCH).contains(&queue.lock().len()) {
            tokio::select! {
                () = tokio::time::sleep(GATHER) => {}
                () = queue.wake.notified() => {}
            }
            closed = queue.closed.load(Ordering::Acquire);
        }
        std::mem::swap(&mut batch, &mut *queue.lock());
        if !batch.is_empty() {
            if let Err(err) = users.insert_minted(&batch).await {
                let lost = batch.len() as u64;
                queue.count_dropped(lost);
                tracing::warn!(error = %err, records = lost, "audit records NOT written");
            }
            batch.clear();
        }
        flush_dropped(&users, &queue.dropped).await;
        if closed {
            return;
        }
    }
}

/// Writes the count of records dropped since the last one written, if any; when that fails too, it is kept for the
/// next time.
async fn flush_dropped(users: &UserStore, dropped: &AtomicU64) {
    let lost = dropped.swap(0, Ordering::Relaxed);
    if lost > 0
        && let Err(err) = users.insert_audit(vec![dropped_record(lost)]).await
    {
        dropped.fetch_add(lost, Ordering::Relaxed);
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
            assert_eq!(Address::of(address).as_str(), address.to_string());
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
        let text = |trail: &AuditTrail, address| trail.address_of(address).map(|a| a.as_str().to_owned());
        let (ha, hb) = (text(&hashed, a).unwrap(), text(&hashed, b).unwrap());
        assert_eq!(text(&hashed, a).unwrap(), ha, "the same address, the same value");
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 32);
        assert!(!ha.contains("203") && !ha.contains("113"), "{ha}");
        let other_key = AuditTrail::start(
            store.clone(),
            &options(AddressRecord::Hashed),
            &ProjectSecret::new("another project's secret, 32 bytes or more").unwrap(),
        );
        assert_ne!(
            text(&other_key, a).unwrap(),
            ha,
            "keyed: another secret, another value"
        );
        let none = AuditTrail::start(store.clone(), &options(AddressRecord::None), &secret());
        assert_eq!(text(&none, a), None);
        let plain = AuditTrail::start(store, &options(AddressRecord::Plain), &secret());
        assert_eq!(text(&plain, a).as_deref(), Some("203.0.113.7"));
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threads_minting_at_once_fill_the_queue_to_its_room_and_no_record_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let store = UserStore::connect(&url).await.unwrap();
        // The database locked, as above: the writer takes at most one queueful and waits, the queue fills again.
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
        const ROOM: usize = 50;
        let trail = AuditTrail::with_queue(store.clone(), &options, &secret(), ROOM);
        // Four threads at once, each its own address and users: a record whose strings mixed with another's would
        // show as a user id that does not end its chat id, or an address of another thread's.
        let tokens: Vec<Vec<(String, VisitorToken)>> = (0..4)
            .map(|t| {
                (0..100)
                    .map(|n| {
                        let user = format!("t{t}-u{n}-{}", "x".repeat(n % 7));
                        let token = token(&user);
                        (user, token)
                    })
                    .collect()
            })
            .collect();
        std::thread::scope(|scope| {
            for (t, tokens) in tokens.iter().enumerate() {
                let trail = &trail;
                scope.spawn(move || {
                    let address = IpAddr::from([10, 0, 0, u8::try_from(t).unwrap()]);
                    for (user, token) in tokens {
                        trail.minted(token, Way::api_key, user, address);
                    }
                });
            }
        });
        sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
        locker.close().await.unwrap();
        let records = until(&store, |records| {
            let minted = records.iter().filter(|r| r.event == Event::Minted).count() as i64;
            let dropped: i64 = records.iter().filter_map(|r| r.dropped).sum();
            minted + dropped == 400
        })
        .await;
        let minted: Vec<_> = records.iter().filter(|r| r.event == Event::Minted).collect();
        assert!(
            (ROOM..=2 * ROOM).contains(&minted.len()),
            "a queueful taken by the writer, and the queue full again: {}",
            minted.len()
        );
        for record in minted {
            let user = record.user_id.as_deref().unwrap();
            let thread = &user[1..2];
            assert_eq!(
                record.chat_id.as_deref(),
                Some(format!("64f0c0ffee0123456789abcd_{user}").as_str())
            );
            assert_eq!(
                record.address.as_deref(),
                Some(format!("10.0.0.{thread}").as_str()),
                "{record:?}"
            );
            let jti = record.jti.as_deref().unwrap();
            assert!(
                jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit()),
                "{record:?}"
            );
        }
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
            held.open.0.dropped.load(Ordering::Relaxed),
            1,
            "a mint after close is counted"
        );
        held.close().await;
    }

    #[tokio::test]
    async fn when_the_last_clone_goes_the_writer_writes_what_is_queued_and_stops() {
        let store = UserStore::connect("sqlite::memory:").await.unwrap();
        let options = AuditOptions {
            retention: None,
            address: AddressRecord::None,
        };
        let trail = AuditTrail::start(store.clone(), &options, &secret());
        let writer = Arc::clone(&trail.writer);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let held = trail.clone();
        for n in 0..3 {
            trail.minted(&token(&format!("u{n}")), Way::oidc, &format!("u{n}"), address);
        }
        drop(trail);
        // A clone still held: the writer goes on (it would otherwise have stopped and taken no more).
        held.minted(&token("u3"), Way::oidc, "u3", address);
        drop(held);
        let task = writer.lock().unwrap().take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the writer stops once no clone is left")
            .unwrap();
        // Read once, no polling: the writer stopped after writing what was queued.
        let records = store.audit(None, 0).await.unwrap();
        let users: Vec<_> = records.iter().map(|r| r.user_id.as_deref().unwrap()).collect();
        assert_eq!(users, ["u0", "u1", "u2", "u3"]);
        assert!(
            records
                .iter()
                .all(|r| r.way == Some(Way::oidc) && r.address.is_none())
        );
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
