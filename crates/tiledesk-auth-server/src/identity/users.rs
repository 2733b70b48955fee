//! The site's users: SQLite by default or PostgreSQL (several replicas share one), schema migrated on first run,
//! passwords stored as argon2id hashes.
//!
//! Both databases run the same numbered migrations (`migrations/sqlite`, `migrations/postgres`: the same tables,
//! columns and constraints in each one's words; a test compares the two schemas) and the same queries, written once
//! with `?` placeholders and numbered (`$1`, `$2`...) for PostgreSQL.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, Row, SqlitePool};

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this email (compared case-insensitively).
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    /// No user with this email or id.
    #[error("no user with email or id {0}")]
    NotFound(String),
    /// The database URL names no database this service knows.
    #[error("the user database must be sqlite://FILE or postgres://USER@HOST/DATABASE, not {0}")]
    UnknownScheme(String),
    /// `users migrate` found users in the destination already.
    #[error("the destination already holds {0} user(s); migrate into an empty database")]
    NotEmpty(usize),
    /// The database file was removed (or replaced by something unreadable) under the running service.
    #[error("the user database file {} is gone", .0.display())]
    FileGone(PathBuf),
    /// The database's tables could not be created or brought up to date.
    #[error("the user database cannot be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An audit record names an event or a way in this version does not know (written by a newer one).
    #[error("an audit record of an unknown kind: {0}")]
    UnknownAuditEvent(String),
    /// `users migrate` read back other users than it wrote.
    #[error("the destination does not read back what was written")]
    ReadBack,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the database is out of reach (down, gone, failing) rather than the request at fault: `503`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(_) | Self::FileGone(_) | Self::Migrate(_))
    }
}

/// A stored user, without the password hash.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    /// Stable id, never changed (also when the email is).
    pub id: String,
    /// The email as entered.
    pub email: String,
    /// First name.
    pub firstname: Option<String>,
    /// Last name.
    pub lastname: Option<String>,
    /// Free attributes passed into the token under `attributes`.
    pub attributes: Map<String, Value>,
    /// When the user was disabled (`users disable`), in Unix seconds: no token is minted for them while set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<i64>,
}

/// A user to create, with the password already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The email; must already be checked with [`tiledesk_jwt::is_valid_email`].
    pub email: String,
    /// First name.
    pub firstname: Option<String>,
    /// Last name.
    pub lastname: Option<String>,
    /// Free attributes.
    pub attributes: Map<String, Value>,
    /// PHC string from [`crate::guard::passwords`].
    pub password_hash: String,
}

/// The key under which an email is unique: trimmed and lower-cased (emails are ASCII, see `is_valid_email`).
pub fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Handle on the user database. Cheap to clone.
///
/// With SQLite, the serving paths ([`UserStore::find_by_email`], [`UserStore::ping`]) first look at the database
/// file: gone (deleted, unmounted) is an error the service answers with 503, where SQLite would go on reading the
/// deleted file through its open handles; replaced (restored from a backup) reopens the pool on the new file.
#[derive(Clone, Debug)]
pub struct UserStore {
    db: Db,
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(Box<Sqlite>),
    Postgres(PgPool),
}

#[derive(Clone, Debug)]
struct Sqlite {
    pool: Arc<RwLock<SqlitePool>>,
    options: SqliteConnectOptions,
    /// The database file and the identity (device, inode) it had when the pool opened it; none in memory.
    file: Option<Arc<(PathBuf, Mutex<FileId>)>>,
    reopening: Arc<tokio::sync::Mutex<()>>,
}

/// A pool of either database, for one query.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool of whichever database this is. The body is compiled once per
/// database, so the same query-building code serves both; queries use `$N` placeholders, which PostgreSQL and
/// sqlx's SQLite driver both read.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

type FileId = Option<(u64, u64)>;

/// Audit rows per PostgreSQL `INSERT` (9 values each: well under its limit on bound values).
pub const AUDIT_ROWS_PER_INSERT: usize = 400;

/// Audit rows per SQLite `INSERT`: as many as its limit on bound values (32,766 in the SQLite sqlx builds) allows,
/// nine a row: what [`UserStore::insert_audit`] writes in one statement.
pub const SQLITE_AUDIT_ROWS_PER_INSERT: usize = 32_766 / 9;

/// Minted-token rows per SQLite `INSERT` of [`UserStore::insert_minted`]: as many as SQLite's limit on bound values
/// allows, the batch's text once and eight numbers a row.
pub const SQLITE_MINTED_ROWS_PER_INSERT: usize = (32_766 - 1) / 8;

/// The sizes of SQLite's statements for minted tokens, as [`SQLITE_AUDIT_SIZES`] for records.
const SQLITE_MINTED_SIZES: [usize; 5] = [1, 8, 64, 512, SQLITE_MINTED_ROWS_PER_INSERT];

/// The sizes of SQLite's audit statements. A batch goes in the smallest that holds it: its rows are bound and the
/// rest of the statement's values left unbound, which SQLite reads as NULL and the statement skips.
const SQLITE_AUDIT_SIZES: [usize; 5] = [1, 8, 64, 512, SQLITE_AUDIT_ROWS_PER_INSERT];

/// The rows of the next PostgreSQL audit `INSERT` when `left` remain: [`AUDIT_ROWS_PER_INSERT`], or the largest power
/// of two that fits.
fn audit_rows_per_statement(left: usize) -> usize {
    if left >= AUDIT_ROWS_PER_INSERT {
        AUDIT_ROWS_PER_INSERT
    } else {
        1 << left.max(1).ilog2()
    }
}

/// The size of the next SQLite statement when `left` rows remain: the smallest of `sizes` (ascending) that holds them
/// all, or the largest.
fn sqlite_statement_rows(sizes: &[usize], left: usize) -> usize {
    sizes
        .iter()
        .copied()
        .find(|&size| size >= left)
        .unwrap_or_else(|| sizes.last().copied().unwrap_or(1))
}

/// The audit `INSERT`s, written once per process, so that the database prepares each once and never again: for
/// PostgreSQL one of each of [`audit_rows_per_statement`]'s sizes with `$N` placeholders; for SQLite one of each of
/// [`SQLITE_AUDIT_SIZES`], with `?` (SQLite looks a `$N` up by name, along the list of names, for each value bound,
/// which on 3,600 values costs more than the rows), whose rows without values are skipped. The event and the way in
/// are bound as their codes ([`Event::code`](crate::audit::Event::code)) and named back by the statement. SQLite
/// has a second set, one of each of [`SQLITE_MINTED_SIZES`], for [`UserStore::insert_minted`]: the batch's text is
/// bound once, as a blob in a one-row table joined to the rows, and each row's strings are cut out of it (`substr`
/// counts a blob's bytes, where it would count a text's characters from its start each time, and `CAST` makes each
/// piece text again), from where the row's start and its strings' lengths say.
struct AuditStatements {
    postgres: Vec<(usize, String)>,
    sqlite: Vec<(usize, String)>,
    sqlite_minted: Vec<(usize, String)>,
}

impl AuditStatements {
    fn get() -> &'static Self {
        static STATEMENTS: std::sync::OnceLock<AuditStatements> = std::sync::OnceLock::new();
        STATEMENTS.get_or_init(|| {
            // `CASE <code> WHEN 0 THEN 'name' ... END` turns a bound code back into its name.
            let names = |pairs: &mut dyn Iterator<Item = (i64, &str)>| {
                pairs
                    .map(|(code, name)| format!(" WHEN {code} THEN '{name}'"))
                    .collect::<String>()
            };
            let event = names(&mut crate::audit::Event::ALL.iter().map(|e| (e.code(), e.as_str())));
            let way = names(&mut crate::metrics::Way::ALL.iter().map(|w| (w.code(), w.as_str())));
            const INTO: &str =
                "INSERT INTO audit (at, event, way, chat_id, user_id, jti, expires_at, address, dropped)";
            let postgres = std::iter::once(AUDIT_ROWS_PER_INSERT)
                .chain((0..=AUDIT_ROWS_PER_INSERT.ilog2()).rev().map(|power| 1 << power))
                .filter(|&size| size <= AUDIT_ROWS_PER_INSERT)
                .map(|size| {
                    let rows = (0..size)
                        .map(|row| {
                            let [at, code, way_code, rest @ ..]: [String; 9] =
                                std::array::from_fn(|i| format!("${}", row * 9 + i + 1));
                            format!(
                                "({at}, CASE {code}{event} END, CASE {way_code}{way} END, {})",
                                rest.join(", ")
                            )
                        })
                        .collect::<Vec<_>>();
                    (size, format!("{INTO} VALUES {}", rows.join(", ")))
                })
                .collect();
            // One statement of each of `sizes`, of `row` a row, selecting `columns` from the values; every row of
            // values has an `at` (`column1`): a row whose `at` is NULL was left unbound.
            let sqlite_set = |sizes: &[usize], from: &str, row: &str, columns: &str| -> Vec<(usize, String)> {
                sizes
                    .iter()
                    .map(|&size| {
                        let rows = vec![row; size].join(", ");
                        let sql = format!(
                            "{INTO} SELECT {columns} FROM {from}(VALUES {rows}) WHERE column1 IS NOT NULL"
                        );
                        (size, sql)
                    })
                    .collect()
            };
            let sqlite = sqlite_set(
                &SQLITE_AUDIT_SIZES,
                "",
                "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &format!(
                    "column1, CASE column2{event} END, CASE column3{way} END, column4, column5, column6, column7, \
                     column8, column9"
                ),
            );
            // The text is the first value (sqlx numbers a bare `?` by its own count, so the text cannot be a `?1`
            // named four times among the rows' `?`: one value, one `?`), in a one-row table joined to the rows. A
            // row: at, way, where its strings start in the text (from 1), the lengths of its chat id, user id and
            // jti, expires_at, the length of its address (-1: none).
            let piece = |start: &str, len: &str| format!("CAST(substr(batch.packed, {start}, {len}) AS TEXT)");
            let sqlite_minted = sqlite_set(
                &SQLITE_MINTED_SIZES,
                "(SELECT ? AS packed) AS batch, ",
                "(?, ?, ?, ?, ?, ?, ?, ?)",
                &format!(
                    "column1, 'minted', CASE column2{way} END, {}, {}, {}, column7, CASE WHEN column8 >= 0 THEN {} END, \
                     NULL",
                    piece("column3", "column4"),
                    piece("column3 + column4", "column5"),
                    piece("column3 + column4 + column5", "column6"),
                    piece("column3 + column4 + column5 + column6", "column8"),
                ),
            );
            Self {
                postgres,
                sqlite,
                sqlite_minted,
            }
        })
    }

    /// The statement of `rows` rows among `statements` (one of this struct's sets).
    fn of(statements: &[(usize, String)], rows: usize) -> &str {
        statements
            .iter()
            .find(|(size, _)| *size == rows)
            .map(|(_, sql)| sql.as_str())
            .unwrap_or_else(|| unreachable!("{rows} rows is not one of the audit statements' sizes"))
    }
}

/// The page size of a SQLite database this service creates.
const SQLITE_PAGE_SIZE: u32 = 16 * 1024;

/// How long a query waits for a lock another process holds before failing (and the request answering 503).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections a pool keeps.
const CONNECTIONS: u32 = 8;

/// How long a request waits for a connection (PostgreSQL down: the request answers 503 after this).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(unix)]
fn file_id(path: &Path) -> FileId {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> FileId {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

/// Connections to the database, all opened now and kept. A connection SQLite opens while the file is not writable
/// comes out read-only, and such a connection kept in the pool made later writes by the `users` commands fail
/// ("attempt to write a readonly database") even once the file was writable again; opened up front, every
/// connection holds a read-write handle whatever happens to the file's mode afterwards.
async fn open_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let pool = SqlitePoolOptions::new()
        .max_connections(CONNECTIONS)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    // One after the other (not `min_connections`, whose background opens race the first connection's switch to WAL).
    let mut opened = Vec::with_capacity(CONNECTIONS as usize);
    for _ in 0..CONNECTIONS {
        opened.push(pool.acquire().await?);
    }
    drop(opened);
    Ok(pool)
}

/// Creates a missing database file readable by its owner only (0600): it holds password hashes. SQLite gives the
/// `-wal` and `-shm` files it creates beside it the same permissions. An existing file is left as it is.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if in_memory(path) {
        return;
    }
    // `create_new`: never touches a file that exists; any failure is left for SQLite to report.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// Whether SQLite's "file" is no file: `sqlite::memory:` (which sqlx opens as a shared in-memory database named
/// `file:sqlx-in-memory-N`), or no name at all.
fn in_memory(path: &Path) -> bool {
    path == Path::new(":memory:")
        || path.as_os_str().is_empty()
        || path
            .to_str()
            .is_some_and(|name| name.starts_with("file:sqlx-in-memory"))
}

/// The query parameters that carry a secret in a database URL (libpq reads both).
const SECRET_PARAMETERS: [&str; 2] = ["password", "sslpassword"];

/// `url` with any password replaced by `***`, in the user information or as a query parameter, for messages and logs
/// (`postgres://app:s3cret@db/users` or `postgres://db/users?password=s3cret` would otherwise print the database's
/// password).
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let mut changed = false;
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
                changed = true;
            }
            let secret = |key: &str| SECRET_PARAMETERS.contains(&key);
            if parsed.query_pairs().any(|(key, _)| secret(&key)) {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if secret(&key) { "***".into() } else { value };
                        (key.into_owned(), value.into_owned())
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
                changed = true;
            }
            if changed {
                parsed.to_string()
            } else {
                url.to_owned()
            }
        }
        // Unparsable: show the scheme at most, never what could be a secret.
        Err(_) => url.split_once("://").map_or_else(
            || "(unparsable URL)".to_owned(),
            |(scheme, _)| format!("{scheme}://..."),
        ),
    }
}

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://FILE` (or `sqlite::memory:`).
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

impl Backend {
    /// The database `url` names, or [`StoreError::UnknownScheme`] (with the password left out).
    pub fn of(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnknownScheme(redacted(url)))
        }
    }
}

/// A user as `users migrate` moves it: everything stored, the password hash and the timestamps included.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredUser {
    /// The user.
    pub user: User,
    /// The PHC string.
    pub password_hash: String,
    /// Seconds since the epoch.
    pub created_at: i64,
    /// Seconds since the epoch.
    pub updated_at: i64,
}

impl UserStore {
    /// Opens the database at `url` and migrates it: `sqlite://tiledesk-auth.db` (the file created if missing,
    /// readable by its owner only) or `postgres://user:password@host/database` (the database must exist; the
    /// table is created in it).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        match Backend::of(url)? {
            Backend::Sqlite => Self::connect_sqlite(url).await,
            Backend::Postgres => Self::connect_postgres(url).await,
        }
    }

    async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("tiledesk-auth");
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        // Replicas starting together: sqlx holds an advisory lock while it migrates, so one migrates, the others wait.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            db: Db::Postgres(pool),
        })
    }

    async fn connect_sqlite(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode, NORMAL syncs at checkpoints, not at every commit: a power cut may lose the last
            // transactions, never the database (SQLite's documentation recommends it for WAL).
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            // Pages of 16 KiB rather than 4: the audit trail appends ~60 000 rows a second under load, and every page
            // costs the kernel a write to the WAL and another at the checkpoint, whatever it holds (SQLite's thread:
            // 0.89 against 0.98 us a token, BENCHMARKS.md). Set when the file is created; an existing file keeps its
            // own (SQLite ignores the pragma then).
            .page_size(SQLITE_PAGE_SIZE)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        create_private(options.get_filename());
        let pool = open_pool(options.clone().create_if_missing(true)).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let path = options.get_filename();
        let file = (!in_memory(path)).then(|| Arc::new((path.to_owned(), Mutex::new(file_id(path)))));
        Ok(Self {
            db: Db::Sqlite(Box::new(Sqlite {
                pool: Arc::new(RwLock::new(pool)),
                // Once running, a missing file is an outage to report, not a new empty database to create.
                options: options.create_if_missing(false),
                file,
                reopening: Arc::new(tokio::sync::Mutex::new(())),
            })),
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The pool, without looking at the file (the command line's paths).
    fn pool(&self) -> Pool {
        match &self.db {
            Db::Sqlite(sqlite) => Pool::Sqlite(sqlite.pool()),
            Db::Postgres(pool) => Pool::Postgres(pool.clone()),
        }
    }

    /// The pool for serving: with SQLite, an error when the database file is gone, a fresh pool when it was
    /// replaced.
    async fn serving_pool(&self) -> Result<Pool, StoreError> {
        match &self.db {
            Db::Sqlite(sqlite) => Ok(Pool::Sqlite(sqlite.serving_pool().await?)),
            Db::Postgres(pool) => Ok(Pool::Postgres(pool.clone())),
        }
    }

    /// Whether the database answers: (SQLite) its file is there, and a read of the users table succeeds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self.serving_pool().await?, |pool| {
            sqlx::query("SELECT 1 FROM users LIMIT 1").execute(&pool).await?;
        });
        Ok(())
    }

    /// Creates a user with a fresh stable id.
    pub async fn add(&self, user: &NewUser) -> Result<User, StoreError> {
        self.add_all(std::slice::from_ref(user))
            .await
            .map(|mut users| users.remove(0))
            .map_err(|(_, err)| err)
    }

    /// Creates all users or none: the first failure rolls everything back and names the user's index.
    pub async fn add_all(&self, users: &[NewUser]) -> Result<Vec<User>, (usize, StoreError)> {
        let now = unix_now();
        let stored: Vec<StoredUser> = users
            .iter()
            .map(|user| StoredUser {
                user: User {
                    id: uuid::Uuid::new_v4().to_string(),
                    email: user.email.clone(),
                    firstname: user.firstname.clone(),
                    lastname: user.lastname.clone(),
                    attributes: user.attributes.clone(),
                    disabled_at: None,
                },
                password_hash: user.password_hash.clone(),
                created_at: now,
                updated_at: now,
            })
            .collect();
        self.insert_all(&stored).await?;
        Ok(stored.into_iter().map(|stored| stored.user).collect())
    }

    /// Inserts these users as they are (ids, hashes and timestamps kept), all or none.
    async fn insert_all(&self, users: &[StoredUser]) -> Result<(), (usize, StoreError)> {
        const INSERT: &str = "INSERT INTO users (id, email, email_key, firstname, lastname, attributes, \
                              password_hash, created_at, updated_at, disabled_at) \
                              VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        on_db!(self.pool(), |pool| {
            let mut tx = pool.begin().await.map_err(|e| (0, e.into()))?;
            for (index, stored) in users.iter().enumerate() {
                let user = &stored.user;
                sqlx::query(INSERT)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(email_key(&user.email))
                    .bind(&user.firstname)
                    .bind(&user.lastname)
                    .bind(Value::Object(user.attributes.clone()).to_string())
                    .bind(&stored.password_hash)
                    .bind(stored.created_at)
                    .bind(stored.updated_at)
                    .bind(user.disabled_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|err| (index, insert_error(err, &user.email)))?;
            }
            tx.commit().await.map_err(|e| (users.len(), e.into()))?;
        });
        Ok(())
    }

    /// The user with this email (case-insensitive) and their password hash.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        const FIND: &str = "SELECT id, email, firstname, lastname, attributes, password_hash, disabled_at \
                            FROM users WHERE email_key = $1";
        let found = on_db!(self.serving_pool().await?, |pool| {
            let row = sqlx::query(FIND)
                .bind(email_key(email))
                .fetch_optional(&pool)
                .await?;
            row.map(|row| Ok::<_, sqlx::Error>((user_from_row(&row)?, row.try_get("password_hash")?)))
                .transpose()?
        });
        Ok(found)
    }

    /// Every user, oldest first.
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        Ok(self
            .export()
            .await?
            .into_iter()
            .map(|stored| stored.user)
            .collect())
    }

    /// Every user with everything stored about them, oldest first (in the order they were added).
    pub async fn export(&self) -> Result<Vec<StoredUser>, StoreError> {
        const ALL: &str = "SELECT id, email, firstname, lastname, attributes, password_hash, created_at, updated_at, \
                           disabled_at FROM users ORDER BY created_at, ";
        let users = match self.pool() {
            Pool::Sqlite(pool) => sqlx::query(&format!("{ALL}rowid"))
                .fetch_all(&pool)
                .await?
                .iter()
                .map(stored_from_row)
                .collect::<Result<_, _>>()?,
            Pool::Postgres(pool) => sqlx::query(&format!("{ALL}seq"))
                .fetch_all(&pool)
                .await?
                .iter()
                .map(stored_from_row)
                .collect::<Result<_, _>>()?,
        };
        Ok(users)
    }

    /// Copies every user of `self` into `to`, which must be empty, in one transaction: ids, password hashes and
    /// timestamps kept, so every user signs in with the same password and keeps their chat history (the token's
    /// `_id` is the id). Then reads `to` back and compares. `self` is left as it was. The number moved.
    pub async fn migrate_to(&self, to: &UserStore) -> Result<usize, StoreError> {
        let already = to.export().await?.len();
        if already > 0 {
            return Err(StoreError::NotEmpty(already));
        }
        let users = self.export().await?;
        to.insert_all(&users).await.map_err(|(_, err)| err)?;
        let copied = to.export().await?;
        if copied != users {
            return Err(StoreError::ReadBack);
        }
        Ok(users.len())
    }

    /// Removes the user with this email or id.
    pub async fn remove(&self, email_or_id: &str) -> Result<(), StoreError> {
        let done = on_db!(self.pool(), |pool| {
            sqlx::query("DELETE FROM users WHERE email_key = $1 OR id = $2")
                .bind(email_key(email_or_id))
                .bind(email_or_id)
                .execute(&pool)
                .await?
                .rows_affected()
        });
        changed(done, email_or_id)
    }

    /// Replaces the password hash of the user with this email or id.
    pub async fn set_password(&self, email_or_id: &str, password_hash: &str) -> Result<(), StoreError> {
        const SET: &str =
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE email_key = $3 OR id = $4";
        let done = on_db!(self.pool(), |pool| {
            sqlx::query(SET)
                .bind(password_hash)
                .bind(unix_now())
                .bind(email_key(email_or_id))
                .bind(email_or_id)
                .execute(&pool)
                .await?
                .rows_affected()
        });
        changed(done, email_or_id)
    }

    /// Disables (`Some(when)`) or enables (`None`) the user with this email or id: while disabled, no token is minted
    /// for them, by any replica (each reads the flag at every sign-in). The user, as changed.
    pub async fn set_disabled(&self, email_or_id: &str, when: Option<i64>) -> Result<User, StoreError> {
        const SET: &str =
            "UPDATE users SET disabled_at = $1, updated_at = $2 WHERE email_key = $3 OR id = $4";
        let done = on_db!(self.pool(), |pool| {
            sqlx::query(SET)
                .bind(when)
                .bind(unix_now())
                .bind(email_key(email_or_id))
                .bind(email_or_id)
                .execute(&pool)
                .await?
                .rows_affected()
        });
        changed(done, email_or_id)?;
        self.export()
            .await?
            .into_iter()
            .map(|stored| stored.user)
            .find(|user| user.id == email_or_id || email_key(&user.email) == email_key(email_or_id))
            .ok_or_else(|| StoreError::NotFound(email_or_id.to_owned()))
    }

    /// Appends these records to the audit trail, all or none: on SQLite in one statement of 1, 8, 64, 512 or
    /// [`SQLITE_AUDIT_ROWS_PER_INSERT`] rows (more records than that: several, in a transaction); on
    /// PostgreSQL in a transaction, [`AUDIT_ROWS_PER_INSERT`] rows per statement and the rest in statements of 256,
    /// 128, ... 1 rows. The statements come from a fixed set, so the database prepares each once and never again;
    /// the records are taken, not borrowed, so their strings move into the statement's arguments rather than being
    /// copied first; the event and the way are bound as numbers. Many minted tokens at once go faster as a
    /// [`MintedBatch`](crate::audit::MintedBatch), through [`UserStore::insert_minted`].
    pub async fn insert_audit<I>(&self, records: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = crate::audit::AuditRecord>,
        I::IntoIter: ExactSizeIterator + Send,
    {
        /// The values of `records`, in the statement's order, in arguments sized for `rows` rows at once (grown a
        /// value at a time, 32,000 values were copied over a dozen times).
        fn arguments<'q, A>(
            rows: usize,
            records: impl Iterator<Item = crate::audit::AuditRecord>,
        ) -> Result<A, StoreError>
        where
            A: sqlx::Arguments<'q>,
            i64: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
            Option<i64>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
            Option<String>: sqlx::Encode<'q, A::Database> + sqlx::Type<A::Database>,
        {
            let mut arguments = A::default();
            arguments.reserve(rows * 9, 0);
            let add = |arguments: &mut A| -> Result<(), sqlx::error::BoxDynError> {
                for record in records {
                    arguments.add(record.at)?;
                    arguments.add(record.event.code())?;
                    arguments.add(record.way.map(crate::metrics::Way::code))?;
                    arguments.add(record.chat_id)?;
                    arguments.add(record.user_id)?;
                    arguments.add(record.jti)?;
                    arguments.add(record.expires_at)?;
                    arguments.add(record.address)?;
                    arguments.add(record.dropped)?;
                }
                Ok(())
            };
            add(&mut arguments).map_err(|err| StoreError::Database(sqlx::Error::Encode(err)))?;
            Ok(arguments)
        }
        let statements = AuditStatements::get();
        let mut records = records.into_iter();
        // The next SQLite statement for what is left of `records`, and its values.
        let next_sqlite = |records: &mut I::IntoIter| -> Result<_, StoreError> {
            let rows = sqlite_statement_rows(&SQLITE_AUDIT_SIZES, records.len());
            let values: sqlx::sqlite::SqliteArguments<'static> =
                arguments(rows, records.by_ref().take(rows))?;
            Ok((AuditStatements::of(&statements.sqlite, rows), values))
        };
        match self.serving_pool().await? {
            Pool::Sqlite(pool) if records.len() <= SQLITE_AUDIT_ROWS_PER_INSERT => {
                // One statement: all or none without a transaction around it.
                let (sql, values) = next_sqlite(&mut records)?;
                sqlx::query_with(sql, values).execute(&pool).await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                while records.len() > 0 {
                    let (sql, values) = next_sqlite(&mut records)?;
                    sqlx::query_with(sql, values).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                while records.len() > 0 {
                    let rows = audit_rows_per_statement(records.len());
                    let values: sqlx::postgres::PgArguments = arguments(rows, records.by_ref().take(rows))?;
                    sqlx::query_with(AuditStatements::of(&statements.postgres, rows), values)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Appends `batch`'s minted tokens to the audit trail, all or none: what the trail's writer does. On SQLite in
    /// one statement of 1, 8, 64, 512 or [`SQLITE_MINTED_ROWS_PER_INSERT`] rows (more: several, in a transaction),
    /// which is given the batch's text once, as a blob, and eight numbers a row (its time, its way, where its
    /// strings start in the text, their lengths, its expiry) and cuts the strings out of the text itself: no string
    /// is allocated, moved or bound a record (as [`UserStore::insert_audit`] does four), here or on the requests'
    /// path. On PostgreSQL, as [`UserStore::insert_audit`] with the batch's records.
    pub async fn insert_minted(&self, batch: &crate::audit::MintedBatch) -> Result<(), StoreError> {
        /// The values of SQLite's statement for `rows`, whose strings are `text`.
        fn values(
            text: &str,
            rows: &[crate::audit::MintedRow],
        ) -> Result<sqlx::sqlite::SqliteArguments<'static>, StoreError> {
            fn number(n: usize) -> i64 {
                i64::try_from(n).unwrap_or(i64::MAX)
            }
            let mut values = sqlx::sqlite::SqliteArguments::default();
            sqlx::Arguments::reserve(&mut values, 1 + rows.len() * 8, 0);
            let add = |values: &mut sqlx::sqlite::SqliteArguments<'static>| -> Result<(), sqlx::error::BoxDynError> {
                sqlx::Arguments::add(values, text.as_bytes().to_vec())?;
                // `substr` counts from 1.
                let mut start = 1;
                for row in rows {
                    sqlx::Arguments::add(values, row.at)?;
                    sqlx::Arguments::add(values, row.way.code())?;
                    sqlx::Arguments::add(values, number(start))?;
                    sqlx::Arguments::add(values, number(row.chat_id))?;
                    sqlx::Arguments::add(values, number(row.user_id))?;
                    sqlx::Arguments::add(values, number(row.jti))?;
                    sqlx::Arguments::add(values, row.expires_at)?;
                    sqlx::Arguments::add(values, row.address.map_or(-1, number))?;
                    start += row.text_len();
                }
                Ok(())
            };
            add(&mut values).map_err(|err| StoreError::Database(sqlx::Error::Encode(err)))?;
            Ok(values)
        }
        let pool = match self.serving_pool().await? {
            Pool::Sqlite(pool) => pool,
            Pool::Postgres(_) => return self.insert_audit(batch.records().collect::<Vec<_>>()).await,
        };
        let statements = AuditStatements::get();
        let mut runs = batch.runs(SQLITE_MINTED_ROWS_PER_INSERT).map(|(text, rows)| {
            let sql = AuditStatements::of(
                &statements.sqlite_minted,
                sqlite_statement_rows(&SQLITE_MINTED_SIZES, rows.len()),
            );
            Ok::<_, StoreError>(sqlx::query_with(sql, values(text, rows)?))
        });
        if batch.len() <= SQLITE_MINTED_ROWS_PER_INSERT {
            // One statement (or none): all or none without a transaction around it.
            if let Some(statement) = runs.next() {
                statement?.execute(&pool).await?;
            }
        } else {
            let mut tx = pool.begin().await?;
            for statement in runs {
                statement?.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Removes the audit records older than `before` (Unix seconds); how many.
    pub async fn prune_audit(&self, before: i64) -> Result<u64, StoreError> {
        Ok(on_db!(self.serving_pool().await?, |pool| {
            sqlx::query("DELETE FROM audit WHERE at < $1")
                .bind(before)
                .execute(&pool)
                .await?
                .rows_affected()
        }))
    }

    /// The audit records since `since` (Unix seconds), oldest first, of the site user `user` only when given.
    pub async fn audit(
        &self,
        user: Option<&str>,
        since: i64,
    ) -> Result<Vec<crate::audit::AuditRecord>, StoreError> {
        const SELECT: &str = "SELECT at, event, way, chat_id, user_id, jti, expires_at, address, dropped FROM audit \
                              WHERE at >= $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2) ORDER BY at, ";
        let records = match self.pool() {
            Pool::Sqlite(pool) => sqlx::query(&format!("{SELECT}rowid"))
                .bind(since)
                .bind(user)
                .fetch_all(&pool)
                .await?
                .iter()
                .map(audit_from_row)
                .collect::<Result<_, _>>()?,
            Pool::Postgres(pool) => sqlx::query(&format!("{SELECT}seq"))
                .bind(since)
                .bind(user)
                .fetch_all(&pool)
                .await?
                .iter()
                .map(audit_from_row)
                .collect::<Result<_, _>>()?,
        };
        Ok(records)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        match self.pool() {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

impl Sqlite {
    fn pool(&self) -> SqlitePool {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn serving_pool(&self) -> Result<SqlitePool, StoreError> {
        let Some(file) = &self.file else {
            return Ok(self.pool());
        };
        let (path, opened) = &**file;
        let now = file_id(path);
        let known = *opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.is_none() {
            return Err(StoreError::FileGone(path.clone()));
        }
        if now != known {
            let _one_at_a_time = self.reopening.lock().await;
            let known = *opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if file_id(path) != known {
                let fresh = open_pool(self.options.clone()).await?;
                sqlx::query("SELECT 1 FROM users LIMIT 1").execute(&fresh).await?;
                let old = std::mem::replace(
                    &mut *self
                        .pool
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                    fresh,
                );
                *opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = file_id(path);
                tracing::warn!(file = %path.display(), "the user database file was replaced: reopened it");
                tokio::spawn(async move { old.close().await });
            }
        }
        Ok(self.pool())
    }
}

/// `NotFound` when a change by email or id touched no row.
fn changed(rows: u64, email_or_id: &str) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound(email_or_id.to_owned()));
    }
    Ok(())
}

fn insert_error(err: sqlx::Error, email: &str) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::EmailTaken(email.to_owned()),
        err => err.into(),
    }
}

/// An audit record of a row of either database.
fn audit_from_row<'r, R>(row: &'r R) -> Result<crate::audit::AuditRecord, StoreError>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let event: String = row.try_get("event")?;
    let way: Option<String> = row.try_get("way")?;
    Ok(crate::audit::AuditRecord {
        at: row.try_get("at")?,
        event: crate::audit::Event::parse(&event).ok_or(StoreError::UnknownAuditEvent(event))?,
        way: match way {
            Some(way) => Some(crate::metrics::Way::parse(&way).ok_or(StoreError::UnknownAuditEvent(way))?),
            None => None,
        },
        chat_id: row.try_get("chat_id")?,
        user_id: row.try_get("user_id")?,
        jti: row.try_get("jti")?,
        expires_at: row.try_get("expires_at")?,
        address: row.try_get("address")?,
        dropped: row.try_get("dropped")?,
    })
}

/// The user of a row of either database.
fn user_from_row<'r, R>(row: &'r R) -> Result<User, sqlx::Error>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let attributes: String = row.try_get("attributes")?;
    let attributes = match serde_json::from_str(&attributes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        firstname: row.try_get("firstname")?,
        lastname: row.try_get("lastname")?,
        attributes,
        disabled_at: row.try_get("disabled_at")?,
    })
}

fn stored_from_row<'r, R>(row: &'r R) -> Result<StoredUser, sqlx::Error>
where
    R: Row,
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredUser {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tiledesk_test_support::Postgres;

    async fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        (dir, UserStore::connect(&url).await.unwrap())
    }

    /// What keeps a store's database alive.
    #[allow(dead_code)] // held, never read
    enum Keep {
        Dir(tempfile::TempDir),
        Server(Postgres),
    }

    /// A fresh store of each kind: SQLite, then a PostgreSQL of its own.
    async fn stores() -> Vec<(Keep, UserStore)> {
        let (dir, sqlite) = store().await;
        let server = Postgres::start();
        let postgres = UserStore::connect(&server.url()).await.unwrap();
        assert_eq!(postgres.backend(), Backend::Postgres);
        vec![(Keep::Dir(dir), sqlite), (Keep::Server(server), postgres)]
    }

    fn new_user(email: &str) -> NewUser {
        NewUser {
            email: email.to_owned(),
            firstname: Some("Andrew".to_owned()),
            lastname: None,
            attributes: serde_json::json!({"plan": "pro"}).as_object().unwrap().clone(),
            password_hash: "$argon2id$fake".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_database_and_its_wal_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, store) = store().await;
        store.add(&new_user("andrew@scientists.com")).await.unwrap();
        for file in ["users.db", "users.db-wal", "users.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }

    #[tokio::test]
    async fn add_find_list_remove() {
        for (_keep, store) in stores().await {
            let user = store.add(&new_user("Andrew@Scientists.com")).await.unwrap();
            let (found, hash) = store
                .find_by_email("andrew@scientists.COM")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found, user);
            assert_eq!(
                found.email, "Andrew@Scientists.com",
                "the email is kept as entered"
            );
            assert_eq!(found.attributes["plan"], "pro");
            assert_eq!(hash, "$argon2id$fake");
            assert_eq!(store.list().await.unwrap(), vec![user.clone()]);
            store.remove("ANDREW@scientists.com").await.unwrap();
            assert!(
                store
                    .find_by_email("andrew@scientists.com")
                    .await
                    .unwrap()
                    .is_none()
            );
            assert!(matches!(
                store.remove(&user.id).await,
                Err(StoreError::NotFound(_))
            ));
        }
    }

    #[tokio::test]
    async fn emails_are_unique_case_insensitively() {
        for (_keep, store) in stores().await {
            store.add(&new_user("a@b.co")).await.unwrap();
            assert!(matches!(
                store.add(&new_user("A@B.CO")).await,
                Err(StoreError::EmailTaken(_))
            ));
        }
    }

    #[tokio::test]
    async fn ids_are_stable_and_distinct() {
        for (_keep, store) in stores().await {
            let a = store.add(&new_user("a@b.co")).await.unwrap();
            let b = store.add(&new_user("c@d.co")).await.unwrap();
            assert_ne!(a.id, b.id);
            store.set_password("a@b.co", "$argon2id$other").await.unwrap();
            let (after, hash) = store.find_by_email("a@b.co").await.unwrap().unwrap();
            assert_eq!((after.id, hash.as_str()), (a.id, "$argon2id$other"));
        }
    }

    #[tokio::test]
    async fn add_all_is_all_or_nothing() {
        for (_keep, store) in stores().await {
            store.add(&new_user("taken@b.co")).await.unwrap();
            let batch = [new_user("one@b.co"), new_user("two@b.co"), new_user("TAKEN@b.co")];
            let (index, err) = store.add_all(&batch).await.unwrap_err();
            assert_eq!(index, 2);
            assert!(matches!(err, StoreError::EmailTaken(_)));
            assert_eq!(
                store.list().await.unwrap().len(),
                1,
                "nothing of the batch was kept"
            );
            assert_eq!(store.add_all(&batch[..2]).await.unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn a_new_database_has_16_kib_pages_and_an_existing_one_keeps_its_own() {
        async fn page_size(store: &UserStore) -> i64 {
            let Pool::Sqlite(pool) = store.pool() else {
                unreachable!("a SQLite store")
            };
            sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        let (dir, store) = store().await;
        assert_eq!(page_size(&store).await, 16_384);
        // A database an earlier version created, with SQLite's 4 KiB pages and in WAL mode already.
        let old = dir.path().join("old.db");
        let options = SqliteConnectOptions::new()
            .filename(&old)
            .create_if_missing(true)
            .page_size(4096)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().connect_with(options).await.unwrap();
        sqlx::query("CREATE TABLE earlier (x INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let store = UserStore::connect(&format!("sqlite://{}", old.display()))
            .await
            .unwrap();
        assert_eq!(page_size(&store).await, 4096, "the file keeps its pages");
        let record = crate::audit::AuditRecord::user_changed(crate::audit::Event::Disabled, "u1");
        store.insert_audit(vec![record.clone()]).await.unwrap();
        assert_eq!(store.audit(None, 0).await.unwrap(), [record]);
    }

    #[tokio::test]
    async fn reopening_keeps_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        let store = UserStore::connect(&url).await.unwrap();
        let user = store.add(&new_user("a@b.co")).await.unwrap();
        store.close().await;
        let store = UserStore::connect(&url).await.unwrap();
        assert_eq!(store.list().await.unwrap(), vec![user]);
    }

    #[tokio::test]
    async fn audit_records_past_one_insert_statement_are_all_written_in_order() {
        let (_dir, store) = store().await;
        let records: Vec<_> = (0..SQLITE_AUDIT_ROWS_PER_INSERT * 2 + 7)
            .map(|n| crate::audit::AuditRecord::user_changed(crate::audit::Event::Disabled, &format!("u{n}")))
            .collect();
        store.insert_audit(records.clone()).await.unwrap();
        assert_eq!(store.audit(None, 0).await.unwrap(), records);
        assert_eq!(
            store.audit(Some("u3641"), 0).await.unwrap(),
            [records[3641].clone()]
        );
    }

    #[tokio::test]
    async fn a_batch_smaller_than_its_statement_writes_its_records_and_nothing_else() {
        let (_dir, store) = store().await;
        let record = |n: usize| {
            let mut record =
                crate::audit::AuditRecord::user_changed(crate::audit::Event::Enabled, &format!("u{n}"));
            record.jti = Some(format!("j{n}"));
            record
        };
        // Five records, then three, then one: the first two go in the same 8-row statement, whose values from the
        // five must not be left bound for the three (two rows of the five written again).
        let batches: [Vec<_>; 3] = [
            (0..5).map(record).collect(),
            (5..8).map(record).collect(),
            vec![record(8)],
        ];
        for batch in &batches {
            store.insert_audit(batch.clone()).await.unwrap();
        }
        assert_eq!(store.audit(None, 0).await.unwrap(), batches.concat());
    }

    /// A `minted` record of `way`, as `POST /tokens` or `/auth` make them.
    fn minted(n: usize, way: crate::metrics::Way) -> crate::audit::AuditRecord {
        let n64 = i64::try_from(n).unwrap();
        crate::audit::AuditRecord {
            at: 1_780_000_000 + n64,
            event: crate::audit::Event::Minted,
            way: Some(way),
            chat_id: Some(format!("64f0c0ffee0123456789abcd_u{n}")),
            user_id: Some(format!("u{n}")),
            jti: Some(format!("{n:032x}")),
            expires_at: Some(1_780_003_600 + n64),
            address: (!n.is_multiple_of(3)).then(|| format!("10.0.0.{n}")),
            dropped: None,
        }
    }

    /// A batch of `count` tokens from `first` on, of `way`, for user ids that are not all ASCII, with every kind of
    /// address the trail records (IPv4, IPv6, a hash's hex, none).
    fn minted_batch(first: usize, count: usize, way: crate::metrics::Way) -> crate::audit::MintedBatch {
        let issuer = tiledesk_jwt::TokenIssuer::new(
            tiledesk_jwt::ProjectId::new("64f0c0ffee0123456789abcd").unwrap(),
            tiledesk_jwt::ProjectSecret::new("a user store test secret of 32 bytes, at least").unwrap(),
        );
        let mut batch = crate::audit::MintedBatch::default();
        for n in first..first + count {
            let user = format!("u{n}-Zoë-\u{1F600}'\"");
            let token = issuer
                .mint(
                    &tiledesk_jwt::VisitorClaims::builder(user.as_str())
                        .build()
                        .unwrap(),
                )
                .unwrap();
            let address = match n % 4 {
                0 => Some(format!("10.0.{}.{}", n / 256 % 256, n % 256)),
                1 => Some(format!("2001:db8::{n:x}")),
                2 => Some(format!("{n:032x}")),
                _ => None,
            };
            batch.push(&token, way, &user, address.as_deref());
        }
        batch
    }

    #[tokio::test]
    async fn minted_batches_are_written_whole_by_the_packed_statement() {
        use crate::metrics::Way;
        let (_dir, store) = store().await;
        // Five, then three, then one: the 8-row statement is used twice and must leave nothing of the five bound for
        // the three; then past one statement: a full one and one for the rest, in one transaction.
        let batches = [
            minted_batch(0, 5, Way::api_key),
            minted_batch(5, 3, Way::oidc),
            minted_batch(8, 1, Way::password),
            minted_batch(9, SQLITE_MINTED_ROWS_PER_INSERT + 2, Way::session),
        ];
        let mut expected = Vec::new();
        for batch in &batches {
            store.insert_minted(batch).await.unwrap();
            expected.extend(batch.records());
        }
        assert_eq!(expected.len(), 9 + SQLITE_MINTED_ROWS_PER_INSERT + 2);
        let first = &expected[0];
        assert_eq!(
            first.chat_id.as_deref(),
            Some("64f0c0ffee0123456789abcd_u0-Zoë-\u{1F600}'\"")
        );
        assert_eq!(first.address.as_deref(), Some("10.0.0.0"));
        assert_eq!(first.jti.as_ref().map(String::len), Some(32));
        let written = store.audit(None, 0).await.unwrap();
        assert_eq!(written.len(), expected.len());
        // Minted in order, so read back (by time, then as written) as they were pushed.
        assert_eq!(written, expected);
        // What `tiledesk-auth audit` and an operator's SQL read: text and names, not blobs and codes.
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a SQLite store")
        };
        let kinds: Vec<(String, Option<String>, String)> = sqlx::query_as(
            "SELECT event, way, typeof(chat_id) || ' ' || typeof(user_id) || ' ' || typeof(jti) || ' ' || \
             typeof(address) FROM audit ORDER BY rowid LIMIT 9",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let minted = |way: &str, types: &str| ("minted".to_owned(), Some(way.to_owned()), types.to_owned());
        assert_eq!(kinds[0], minted("api_key", "text text text text"));
        assert_eq!(
            kinds[3],
            minted("api_key", "text text text null"),
            "no address: NULL"
        );
        assert_eq!(kinds[5], minted("oidc", "text text text text"));
        assert_eq!(kinds[8], minted("password", "text text text text"));
    }

    #[tokio::test]
    async fn a_minted_batch_is_written_all_or_none() {
        let (_dir, store) = store().await;
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a SQLite store")
        };
        // The second statement of the batch fails: the first's rows must not stay.
        sqlx::raw_sql(
            "CREATE TRIGGER no_more BEFORE INSERT ON audit WHEN (SELECT count(*) FROM audit) >= 4095 \
             BEGIN SELECT RAISE(ABORT, 'full'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        let batch = minted_batch(0, SQLITE_MINTED_ROWS_PER_INSERT + 1, crate::metrics::Way::api_key);
        assert!(store.insert_minted(&batch).await.is_err());
        assert!(store.audit(None, 0).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_batch_of_mixed_records_keeps_every_way_event_and_count() {
        use crate::metrics::Way;
        let (_dir, store) = store().await;
        let mut odd = minted(3, Way::api_key);
        // A library caller's record: minted, yet with a count of dropped records.
        odd.dropped = Some(4);
        let cases: [Vec<_>; 4] = [
            vec![minted(0, Way::api_key), minted(1, Way::login_session)],
            vec![
                minted(2, Way::oidc),
                crate::audit::AuditRecord {
                    // Read back in time order: in its place.
                    at: minted(2, Way::oidc).at,
                    ..crate::audit::AuditRecord::user_changed(crate::audit::Event::Disabled, "u2")
                },
            ],
            // One way, but the first carries a count.
            vec![odd, minted(4, Way::api_key)],
            vec![crate::audit::AuditRecord {
                way: None,
                ..minted(5, Way::api_key)
            }],
        ];
        for batch in &cases {
            store.insert_audit(batch.clone()).await.unwrap();
        }
        assert_eq!(store.audit(None, 0).await.unwrap(), cases.concat());
    }

    #[test]
    fn every_count_of_audit_records_is_written_by_statements_of_the_fixed_sizes() {
        let statements = AuditStatements::get();
        for count in 1..=2 * AUDIT_ROWS_PER_INSERT + 1 {
            let (mut left, mut written) = (count, 0);
            while left > 0 {
                let rows = audit_rows_per_statement(left);
                assert!(rows <= left, "{rows} rows for {left} records");
                let numbered = AuditStatements::of(&statements.postgres, rows);
                assert!(numbered.contains(&format!("${},", rows * 9 - 1)));
                assert!(
                    numbered.contains(&format!("${})", rows * 9))
                        && !numbered.contains(&format!("${}", rows * 9 + 1))
                );
                left -= rows;
                written += 1;
            }
            assert!(
                written <= count / AUDIT_ROWS_PER_INSERT + 9,
                "{count} records, {written} PostgreSQL statements"
            );
        }
        for count in 1..=2 * SQLITE_AUDIT_ROWS_PER_INSERT + 1 {
            let (mut left, mut written) = (count, 0);
            while left > 0 {
                let rows = sqlite_statement_rows(&SQLITE_AUDIT_SIZES, left);
                let taken = rows.min(left);
                assert!(
                    rows < 8 * taken || rows == 1,
                    "{rows} rows for {left} records: too many left unbound"
                );
                let sql = AuditStatements::of(&statements.sqlite, rows);
                assert_eq!(sql.matches('?').count(), rows * 9);
                assert!(rows * 9 <= 32_766, "SQLite's limit on bound values");
                left -= taken;
                written += 1;
            }
            assert_eq!(
                written,
                count.div_ceil(SQLITE_AUDIT_ROWS_PER_INSERT),
                "{count} records"
            );
        }
        for count in 1..=2 * SQLITE_MINTED_ROWS_PER_INSERT + 1 {
            let rows = sqlite_statement_rows(&SQLITE_MINTED_SIZES, count.min(SQLITE_MINTED_ROWS_PER_INSERT));
            assert!(rows >= count.min(SQLITE_MINTED_ROWS_PER_INSERT));
            assert!(rows < 8 * count || rows == 1, "{rows} rows for {count} tokens");
            let sql = AuditStatements::of(&statements.sqlite_minted, rows);
            // The text and eight numbers a row.
            assert_eq!(sql.matches('?').count(), 1 + rows * 8);
            assert!(
                rows * 8 < 32_766,
                "SQLite's limit on bound values: the text and eight a row"
            );
        }
    }

    #[test]
    fn a_database_password_is_never_shown() {
        assert_eq!(
            redacted("postgres://app:s3cret@db.internal:5432/users?sslmode=require"),
            "postgres://app:***@db.internal:5432/users?sslmode=require"
        );
        assert_eq!(redacted("sqlite://users.db"), "sqlite://users.db");
        // libpq takes the password as a query parameter too (#25 item 11).
        assert_eq!(
            redacted("postgres://db.internal/users?user=app&password=s3cret&sslmode=require"),
            "postgres://db.internal/users?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redacted("postgres://app:s3cret@db/users?sslpassword=k3y"),
            "postgres://app:***@db/users?sslpassword=***"
        );
        let err = UserStore::connect_error("mysql://root:s3cret@db/users");
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("sqlite://FILE or postgres://"), "{err}");
    }

    impl UserStore {
        fn connect_error(url: &str) -> String {
            match Backend::of(url) {
                Err(err) => err.to_string(),
                Ok(backend) => panic!("{url} taken as {backend:?}"),
            }
        }
    }

    #[tokio::test]
    async fn the_sqlite_and_postgres_schemas_are_the_same() {
        let (_dir, sqlite) = store().await;
        let server = Postgres::start();
        let postgres = UserStore::connect(&server.url()).await.unwrap();
        let Pool::Sqlite(lite) = sqlite.pool() else {
            unreachable!()
        };
        let Pool::Postgres(pg) = postgres.pool() else {
            unreachable!()
        };
        // (column, type, not null), SQLite's INTEGER being PostgreSQL's BIGINT, table by table.
        for (table, columns) in [("users", 10), ("audit", 9)] {
            let mut lite_columns: Vec<(String, String, bool)> = sqlx::query(&format!(
                "SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_info('{table}')"
            ))
            .fetch_all(&lite)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let kind: String = row.get("type");
                let kind = if kind == "INTEGER" {
                    "bigint".to_owned()
                } else {
                    kind.to_lowercase()
                };
                (
                    row.get("name"),
                    kind,
                    row.get::<i64, _>("nn") == 1 || row.get::<i64, _>("pk") == 1,
                )
            })
            .collect();
            let mut pg_columns: Vec<(String, String, bool)> = sqlx::query(
                "SELECT column_name::text AS name, data_type::text AS kind, is_nullable::text AS nullable \
                 FROM information_schema.columns WHERE table_name = $1 AND column_name <> 'seq'",
            )
            .bind(table)
            .fetch_all(&pg)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row.get("name"),
                    row.get("kind"),
                    row.get::<String, _>("nullable") == "NO",
                )
            })
            .collect();
            lite_columns.sort();
            pg_columns.sort();
            assert_eq!(lite_columns.len(), columns, "{table}");
            assert_eq!(lite_columns, pg_columns, "{table}");
        }
        // The same keys: `id` primary, `email_key` unique.
        let unique: Vec<String> = sqlx::query(
            "SELECT a.attname::text AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid \
             AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'users'::regclass AND i.indisunique ORDER BY 1",
        )
        .fetch_all(&pg)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get("name"))
        .collect();
        assert_eq!(unique, ["email_key", "id"]);
        // The same migrations, version by version.
        let versions = |rows: Vec<(i64, String)>| rows;
        let lite_versions = versions(
            sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&lite)
                .await
                .unwrap(),
        );
        let pg_versions = versions(
            sqlx::query_as("SELECT version, description FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pg)
                .await
                .unwrap(),
        );
        assert_eq!(lite_versions, pg_versions);
        assert!(!lite_versions.is_empty());
    }

    #[tokio::test]
    async fn migrate_moves_every_user_with_its_hash_id_and_dates_both_ways() {
        let (_dir, sqlite) = store().await;
        let server = Postgres::start();
        let postgres = UserStore::connect(&server.url()).await.unwrap();
        let mut batch: Vec<NewUser> = (0..40).map(|i| new_user(&format!("user{i}@b.co"))).collect();
        batch[7].password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned();
        batch[8].attributes = Map::new();
        batch[9].firstname = None;
        sqlite.add_all(&batch).await.unwrap();
        let before = sqlite.export().await.unwrap();
        assert_eq!(sqlite.migrate_to(&postgres).await.unwrap(), 40);
        assert_eq!(
            postgres.export().await.unwrap(),
            before,
            "everything, in the same order"
        );
        let (user, hash) = postgres.find_by_email("USER7@b.co").await.unwrap().unwrap();
        assert_eq!(
            (user.id.as_str(), hash.as_str()),
            (before[7].user.id.as_str(), batch[7].password_hash.as_str())
        );
        assert_eq!(
            sqlite.export().await.unwrap(),
            before,
            "the source is left as it was"
        );
        // And back, into a fresh SQLite file.
        let (_dir2, back) = store().await;
        assert_eq!(postgres.migrate_to(&back).await.unwrap(), 40);
        assert_eq!(back.export().await.unwrap(), before);
    }

    #[tokio::test]
    async fn migrate_refuses_a_destination_that_holds_users_and_changes_nothing() {
        let (_dir, sqlite) = store().await;
        let server = Postgres::start();
        let postgres = UserStore::connect(&server.url()).await.unwrap();
        sqlite
            .add_all(&[new_user("a@b.co"), new_user("c@d.co")])
            .await
            .unwrap();
        let there = postgres.add(&new_user("already@there.co")).await.unwrap();
        assert!(matches!(
            sqlite.migrate_to(&postgres).await,
            Err(StoreError::NotEmpty(1))
        ));
        assert_eq!(postgres.list().await.unwrap(), vec![there]);
    }
}
