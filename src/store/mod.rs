//! Storage: one query layer over SQLite, PostgreSQL and MySQL through sqlx's `Any` driver.
//!
//! Queries are written once with `?` placeholders; [`Store::sql`] rewrites them for the
//! backend. Every other dialect difference lives in this module.

mod account;
mod checkpoint;
mod clients;
mod codes;
mod keys;
mod lookup;
pub(crate) mod meta;
mod purge;
mod secrets;
mod sessions;
mod tokens;
mod users;
mod writer;

use std::borrow::Cow;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};
use tokio::task::JoinHandle;

pub use account::AuthorizedToken;
pub use clients::{ClientKind, ClientRecord, DEVICE_CODE_GRANT, NewClient};
pub use codes::{AuthCodeRecord, DeviceCodeRecord, DeviceStatus, NewAuthCode};
pub use keys::{KeyRecord, KeyState};
pub(crate) use lookup::Lookup;
pub use meta::{PASSWORD_CLIENT, PERSONAL_ACCESS_CLIENT};
pub use purge::PurgeFilter;
pub use secrets::StoredSecret;
pub use sessions::{AuthRequestRecord, SessionRecord};
pub use tokens::{AccessTokenRecord, NewAccessToken, NewRefreshToken, RefreshTokenRecord};
pub use users::{EndedAccess, UserRecord};
pub(crate) use writer::{Announced, TokenWriter};

use crate::config::redact_url;
use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./src/migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./src/migrations/postgres");
static MYSQL_MIGRATIONS: Migrator = sqlx::migrate!("./src/migrations/mysql");

/// The kind of database behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, the embedded default.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// The Cargo feature that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// A connection pool and the dialect it speaks.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, the turn to hold the database's one write lock, taken before `BEGIN
    /// IMMEDIATE`. Waiters queue here in order and wake when the holder finishes, instead of
    /// sleeping and retrying in SQLite's busy handler, which under load left some
    /// transactions waiting hundreds of milliseconds while later ones went first.
    write_turn: Option<Arc<Mutex<()>>>,
    /// Set by [`Store::close`], so that tasks which keep a connection give it back before
    /// the pool waits for every connection to return.
    closing: Arc<watch::Sender<bool>>,
    /// On SQLite, the WAL checkpoint task, which [`Store::close`] lets finish before it closes
    /// the pool, so that a checkpoint under way still ends in a clean close.
    checkpoint_task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

/// How long a write transaction waits for its turn on SQLite, the same bound as the
/// connection's `busy_timeout` for writers in other processes.
const WRITE_TURN_WAIT: Duration = Duration::from_secs(10);

/// A pool connection that a long-lived task keeps between uses, so that each use skips the
/// pool's acquire and release. The pool pings a connection on release, and on SQLite each
/// ping is one more hand-off to the connection's worker thread.
#[derive(Debug, Default)]
pub(crate) struct HeldConnection {
    connection: Option<sqlx::pool::PoolConnection<Any>>,
}

impl HeldConnection {
    /// Returns the held connection, acquiring one from the pool first if none is held.
    pub(crate) async fn get(&mut self, store: &Store) -> Result<&mut AnyConnection> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => store.pool.acquire().await?,
        };
        Ok(&mut **self.connection.insert(connection))
    }

    /// Drops the connection after a failed statement, so that a broken one is replaced on
    /// the next use.
    pub(crate) fn discard(&mut self) {
        self.connection = None;
    }
}

/// A transaction begun by [`Store::begin_write`]. It derefs to the connection that runs its
/// statements; dropping it without [`WriteTransaction::commit`] rolls it back.
#[derive(Debug)]
pub struct WriteTransaction {
    transaction: Transaction<'static, Any>,
    /// Held until the transaction ends; dropped after it, as fields drop in order.
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTransaction {
    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the commit fails.
    pub async fn commit(self) -> Result<()> {
        self.transaction.commit().await?;
        Ok(())
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the rollback fails.
    pub async fn rollback(self) -> Result<()> {
        self.transaction.rollback().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.transaction
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.transaction
    }
}

impl Store {
    /// Connects to `url` without running migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unsupported URL, [`Error::Database`] when the database cannot
    /// be reached; the message names the URL without its password.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Backend::MySql
        } else {
            return Err(Error::Config(format!(
                "database URL {} must start with sqlite:, postgres: or mysql:",
                redact_url(url)
            )));
        };
        let compiled = match backend {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::MySql => cfg!(feature = "mysql"),
        };
        if !compiled {
            return Err(Error::Config(format!(
                "this sesame was built without the {} feature that {} needs; rebuild with \
                 `cargo build --features {}`",
                backend.feature(),
                redact_url(url),
                backend.feature()
            )));
        }
        // sqlx names MariaDB URLs mysql:.
        let url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let url = url.as_str();
        let options = AnyConnectOptions::from_str(url).map_err(|error| {
            Error::Config(format!("invalid database URL {}: {error}", redact_url(url)))
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            // A SQLite connection is a file handle in this process, so it cannot go stale, and
            // the ping that checks one on every acquire was a second hand-off to its worker
            // thread for each query.
            .test_before_acquire(backend != Backend::Sqlite)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        use sqlx::Executor as _;
                        // WAL lets readers run beside the one writer; busy_timeout makes a CLI
                        // writing beside a running server wait instead of failing. The store's
                        // checkpoint task keeps the WAL short (see `checkpoint`).
                        let pragmas = format!(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
                             PRAGMA wal_autocheckpoint = {}; PRAGMA journal_size_limit = {};",
                            checkpoint::AUTOCHECKPOINT_PAGES,
                            checkpoint::WAL_SIZE_LIMIT_BYTES
                        );
                        connection.execute(pragmas.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|error| connect_error(url, error))?;
        let write_turn = (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(())));
        let closing = Arc::new(watch::Sender::new(false));
        let checkpoint_task = write_turn
            .as_ref()
            .map(|turn| checkpoint::spawn(pool.clone(), turn.clone(), closing.subscribe()));
        Ok(Store {
            pool,
            backend,
            write_turn,
            closing,
            checkpoint_task: Arc::new(std::sync::Mutex::new(checkpoint_task)),
        })
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for queries the store does not wrap.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Rewrites `?` placeholders for the backend (`$1`, `$2`, ... on PostgreSQL).
    pub fn sql<'q>(&self, query: &'q str) -> Cow<'q, str> {
        if self.backend != Backend::Postgres {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len() + 16);
        let mut index = 0;
        for ch in query.chars() {
            if ch == '?' {
                index += 1;
                out.push('$');
                out.push_str(&index.to_string());
            } else {
                out.push(ch);
            }
        }
        Cow::Owned(out)
    }

    /// Begins a transaction that will write. On SQLite it waits for this process's turn to
    /// write, then takes the write lock at once (`BEGIN IMMEDIATE`), so a read followed by a
    /// write cannot fail with a busy snapshot.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when no connection, turn or lock can be had.
    pub async fn begin_write(&self) -> Result<WriteTransaction> {
        let turn = self.write_turn().await?;
        let transaction = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _ => self.pool.begin().await?,
        };
        Ok(WriteTransaction {
            transaction,
            _turn: turn,
        })
    }

    /// Waits for this process's turn to write on SQLite; `None` on the other backends, whose
    /// row locks need no such queue. Hold the guard until the write is committed.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] (pool timed out) after waiting as long as `busy_timeout` would.
    pub(crate) async fn write_turn(&self) -> Result<Option<OwnedMutexGuard<()>>> {
        let Some(turn) = &self.write_turn else {
            return Ok(None);
        };
        let guard = tokio::time::timeout(WRITE_TURN_WAIT, turn.clone().lock_owned())
            .await
            .map_err(|_| Error::Database(sqlx::Error::PoolTimedOut))?;
        Ok(Some(guard))
    }

    fn migrator(&self) -> &'static Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::MySql => &MYSQL_MIGRATIONS,
        }
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaTooNew`] when the database has migrations this binary does not know;
    /// [`Error::Migrate`] for any other failure.
    pub async fn migrate(&self) -> Result<()> {
        if self.backend != Backend::MySql {
            self.migrator().run(&self.pool).await?;
            return Ok(());
        }
        // sqlx 0.8 locks a MySQL database with `GET_LOCK(name, -1)` and ignores the result,
        // but MariaDB rejects a negative timeout (it returns NULL), so nodes starting together
        // would apply the same migration at once. The lock taken here works on both.
        let mut connection = self.pool.acquire().await?;
        lock_mysql_migrations(&mut connection).await?;
        let migrated = self.migrator().run(&mut *connection).await;
        let released = sqlx::query(&format!("SELECT RELEASE_LOCK({MYSQL_MIGRATION_LOCK})"))
            .execute(&mut *connection)
            .await;
        migrated?;
        released?;
        Ok(())
    }

    /// Compares the applied migrations with the embedded ones.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when the migration table cannot be read.
    pub async fn schema_status(&self) -> Result<SchemaStatus> {
        use sqlx::migrate::Migrate as _;
        let mut connection = self.pool.acquire().await?;
        connection.ensure_migrations_table().await?;
        let applied = connection.list_applied_migrations().await?;
        let known: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
        if let Some(unknown) = applied
            .iter()
            .map(|m| m.version)
            .find(|v| !known.contains(v))
        {
            return Ok(SchemaStatus::TooNew { version: unknown });
        }
        let pending = known
            .iter()
            .filter(|v| !applied.iter().any(|m| m.version == **v))
            .count();
        Ok(if pending == 0 {
            SchemaStatus::Current
        } else {
            SchemaStatus::Pending(pending)
        })
    }

    /// Runs a trivial query to check that the database responds.
    ///
    /// # Errors
    ///
    /// [`Error::Database`] when it does not.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection, after the tasks that keep one have ended.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        let checkpoint_task = self
            .checkpoint_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = checkpoint_task {
            // The task ends at its next step; a panic in it is not this caller's to re-raise.
            let _ = task.await;
        }
        self.pool.close().await;
    }

    /// Resolves once [`Store::close`] has begun; a task that keeps a connection ends then.
    pub(crate) fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closing = self.closing.subscribe();
        async move {
            let _ = closing.wait_for(|closing| *closing).await;
        }
    }
}

/// The name of the MySQL lock that serializes migrations of one database. `GET_LOCK` names
/// are server-wide and at most 64 characters, so the name includes the database, truncated.
const MYSQL_MIGRATION_LOCK: &str = "LEFT(CONCAT('sesame_migrate:', DATABASE()), 64)";

/// Waits for the MySQL migration lock of the connection's database, for as long as another
/// node holds it, as PostgreSQL's advisory lock waits.
async fn lock_mysql_migrations(connection: &mut sqlx::AnyConnection) -> Result<()> {
    let statement = format!("SELECT GET_LOCK({MYSQL_MIGRATION_LOCK}, 10)");
    loop {
        let locked: Option<i64> = sqlx::query_scalar(&statement)
            .fetch_one(&mut *connection)
            .await?;
        match locked {
            Some(1) => return Ok(()),
            Some(_) => tracing::info!("waiting for another node to finish migrating"),
            None => {
                return Err(Error::Database(sqlx::Error::Protocol(
                    "GET_LOCK returned NULL, so migrations cannot be locked".into(),
                )));
            }
        }
    }
}

/// The state of the database schema relative to this binary's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every migration is applied.
    Current,
    /// This many migrations are pending.
    Pending(usize),
    /// The database has a migration this binary does not know.
    TooNew {
        /// The unknown version.
        version: i64,
    },
}

fn connect_error(url: &str, error: sqlx::Error) -> Error {
    Error::DatabaseUnavailable {
        url: redact_url(url),
        source: error,
    }
}

/// Checks whether a database error reports a read-only database.
pub(crate) fn is_read_only(error: &Error) -> bool {
    let Error::Database(sqlx::Error::Database(db)) = error else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    match code.parse::<i32>() {
        // SQLite's SQLITE_READONLY and its extended codes share the low byte 8.
        Ok(number) if number & 0xff == 8 => true,
        // MySQL: ER_OPTION_PREVENTS_STATEMENT (--read-only), ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION.
        Ok(1290 | 1792) => true,
        // PostgreSQL: read_only_sql_transaction.
        _ => code == "25006",
    }
}

/// Checks whether a database error is a unique-constraint violation.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Reads a flag column: a boolean on PostgreSQL, an integer 0 or 1 on SQLite and MySQL (the
/// `Any` driver cannot decode SQLite's boolean type nor MySQL's TINYINT).
pub(crate) fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool> {
    Ok(optional_flag(row, column)?.unwrap_or(false))
}

/// Reads a nullable flag column, as [`flag`] does; NULL (from an outer join) is `None`.
pub(crate) fn optional_flag(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<bool>> {
    use sqlx::{Row as _, ValueRef as _};
    // The value's type picks the decoder, because a failed decode builds an error with a
    // formatted message, and rows with flags are read on every guarded request.
    let is_bool = {
        let raw = row.try_get_raw(column)?;
        raw.is_null() || <bool as sqlx::Type<sqlx::Any>>::compatible(&raw.type_info())
    };
    if is_bool {
        return Ok(row.try_get::<Option<bool>, _>(column)?);
    }
    // SQLite INTEGER and MySQL SMALLINT both decode as integers.
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.map(|number| number != 0))
}

/// Encodes a list of strings as the JSON text stored in list columns.
pub(crate) fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes a JSON list column; a malformed value reads as empty, which grants nothing.
pub(crate) fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}
