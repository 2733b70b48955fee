//! The site's users: SQLite by default, schema migrated on first run, passwords stored as argon2id hashes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this email (compared case-insensitively).
    #[error("a user with email {0} already exists")]
    EmailTaken(String),
    /// No user with this email or id.
    #[error("no user with email or id {0}")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
    /// PHC string from [`crate::passwords`].
    pub password_hash: String,
}

/// The key under which an email is unique: trimmed and lower-cased (emails are ASCII, see `is_valid_email`).
pub fn email_key(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Handle on the user database. Cheap to clone.
///
/// The serving paths ([`UserStore::find_by_email`], [`UserStore::ping`]) first look at the database file: gone
/// (deleted, unmounted) is an error the service answers with 503, where SQLite would go on reading the deleted
/// file through its open handles; replaced (restored from a backup) reopens the pool on the new file.
#[derive(Clone, Debug)]
pub struct UserStore {
    pool: Arc<RwLock<SqlitePool>>,
    options: SqliteConnectOptions,
    /// The database file and the identity (device, inode) it had when the pool opened it; none in memory.
    file: Option<Arc<(PathBuf, Mutex<FileId>)>>,
    reopening: Arc<tokio::sync::Mutex<()>>,
}

type FileId = Option<(u64, u64)>;

/// How long a query waits for a lock another process holds before failing (and the request answering 503).
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

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
    const CONNECTIONS: u32 = 8;
    let pool = SqlitePoolOptions::new()
        .max_connections(CONNECTIONS)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
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

const COLUMNS: &str = "id, email, firstname, lastname, attributes";

/// Creates a missing database file readable by its owner only (0600): it holds password hashes. SQLite gives the
/// `-wal` and `-shm` files it creates beside it the same permissions. An existing file is left as it is.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    if path == Path::new(":memory:") || path.as_os_str().is_empty() {
        return;
    }
    // `create_new`: never touches a file that exists; any failure is left for SQLite to report.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

impl UserStore {
    /// Opens (creating if missing) the database at `url`, e.g. `sqlite://tiledesk-auth.db`, and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        create_private(options.get_filename());
        let pool = open_pool(options.clone().create_if_missing(true)).await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(sqlx::Error::from)?;
        let path = options.get_filename();
        let file = (path != Path::new(":memory:") && !path.as_os_str().is_empty())
            .then(|| Arc::new((path.to_owned(), Mutex::new(file_id(path)))));
        Ok(Self {
            pool: Arc::new(RwLock::new(pool)),
            // Once running, a missing file is an outage to report, not a new empty database to create.
            options: options.create_if_missing(false),
            file,
            reopening: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The pool, without looking at the file (the command line's paths).
    fn pool(&self) -> SqlitePool {
        self.pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The pool for serving: an error when the database file is gone, a fresh pool when it was replaced.
    async fn serving_pool(&self) -> Result<SqlitePool, StoreError> {
        let Some(file) = &self.file else {
            return Ok(self.pool());
        };
        let (path, opened) = &**file;
        let now = file_id(path);
        let known = *opened.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.is_none() {
            return Err(StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the user database file {} is gone", path.display()),
            ))));
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

    /// Whether the database answers: its file is there and a read of the users table succeeds.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM users LIMIT 1")
            .execute(&self.serving_pool().await?)
            .await?;
        Ok(())
    }

    /// Creates a user with a fresh stable id.
    pub async fn add(&self, user: &NewUser) -> Result<User, StoreError> {
        let mut tx = self.pool().begin().await?;
        let created = insert(&mut tx, user).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates all users or none: the first failure rolls everything back and names the user's index.
    pub async fn add_all(&self, users: &[NewUser]) -> Result<Vec<User>, (usize, StoreError)> {
        let mut tx = self.pool().begin().await.map_err(|e| (0, e.into()))?;
        let mut created = Vec::with_capacity(users.len());
        for (index, user) in users.iter().enumerate() {
            created.push(insert(&mut tx, user).await.map_err(|e| (index, e))?);
        }
        tx.commit().await.map_err(|e| (users.len(), e.into()))?;
        Ok(created)
    }

    /// The user with this email (case-insensitive) and their password hash.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS}, password_hash FROM users WHERE email_key = ?"
        ))
        .bind(email_key(email))
        .fetch_optional(&self.serving_pool().await?)
        .await?;
        row.map(|row| Ok((user_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Every user, oldest first.
    pub async fn list(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY created_at, rowid"))
            .fetch_all(&self.pool())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Removes the user with this email or id.
    pub async fn remove(&self, email_or_id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE email_key = ? OR id = ?")
            .bind(email_key(email_or_id))
            .bind(email_or_id)
            .execute(&self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(email_or_id.to_owned()));
        }
        Ok(())
    }

    /// Replaces the password hash of the user with this email or id.
    pub async fn set_password(&self, email_or_id: &str, password_hash: &str) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE email_key = ? OR id = ?")
                .bind(password_hash)
                .bind(unix_now())
                .bind(email_key(email_or_id))
                .bind(email_or_id)
                .execute(&self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(email_or_id.to_owned()));
        }
        Ok(())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool().close().await;
    }
}

async fn insert(tx: &mut sqlx::SqliteConnection, user: &NewUser) -> Result<User, StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = unix_now();
    let attributes = Value::Object(user.attributes.clone()).to_string();
    let result = sqlx::query(
        "INSERT INTO users (id, email, email_key, firstname, lastname, attributes, password_hash, created_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(&user.email)
    .bind(email_key(&user.email))
    .bind(&user.firstname)
    .bind(&user.lastname)
    .bind(&attributes)
    .bind(&user.password_hash)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match result {
        Ok(_) => Ok(User {
            id,
            email: user.email.clone(),
            firstname: user.firstname.clone(),
            lastname: user.lastname.clone(),
            attributes: user.attributes.clone(),
        }),
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(StoreError::EmailTaken(user.email.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
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

    async fn store() -> (tempfile::TempDir, UserStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display());
        (dir, UserStore::connect(&url).await.unwrap())
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
        let (_dir, store) = store().await;
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

    #[tokio::test]
    async fn emails_are_unique_case_insensitively() {
        let (_dir, store) = store().await;
        store.add(&new_user("a@b.co")).await.unwrap();
        assert!(matches!(
            store.add(&new_user("A@B.CO")).await,
            Err(StoreError::EmailTaken(_))
        ));
    }

    #[tokio::test]
    async fn ids_are_stable_and_distinct() {
        let (_dir, store) = store().await;
        let a = store.add(&new_user("a@b.co")).await.unwrap();
        let b = store.add(&new_user("c@d.co")).await.unwrap();
        assert_ne!(a.id, b.id);
        store.set_password("a@b.co", "$argon2id$other").await.unwrap();
        let (after, hash) = store.find_by_email("a@b.co").await.unwrap().unwrap();
        assert_eq!((after.id, hash.as_str()), (a.id, "$argon2id$other"));
    }

    #[tokio::test]
    async fn add_all_is_all_or_nothing() {
        let (_dir, store) = store().await;
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
}
