//! A connection pool of any [`LogConnection`] type, with the settings
//! concurrent syncs need.

use super::{Dialect, LogConnection};
use diesel::r2d2;
use std::marker::PhantomData;
use std::time::Duration;

/// An r2d2 pool of connections of type `C`.
pub type Pool<C = super::DbConnection> = r2d2::Pool<Manager<C>>;

/// How connections are opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections at once. Default 10.
    pub max_size: u32,
    /// SQLite's `synchronous`: `FULL` (the default) makes every answered
    /// sync survive a power loss; `NORMAL` is faster, and a power loss (not
    /// a crash of the process) may lose the last syncs answered before it.
    pub sqlite_synchronous: String,
    /// How long SQLite waits for another process's write lock. Default 5 s.
    pub sqlite_busy_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings { max_size: 10, sqlite_synchronous: "FULL".into(), sqlite_busy_timeout: Duration::from_secs(5) }
    }
}

/// Opens connections of type `C` for a pool. SQLite connections get WAL,
/// a busy timeout, `synchronous` as configured (`FULL` by default),
/// foreign keys and temporary files in memory (`temp_store = MEMORY`).
/// PostgreSQL and MySQL/MariaDB sessions get their messages'
/// language pinned where the session may (see [`super::pin_messages`]);
/// PostgreSQL sessions plan each statement for its values
/// (`plan_cache_mode = force_custom_plan`).
pub struct Manager<C> {
    url: String,
    pragmas: String,
    _conn: PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for Manager<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("url", &"…").field("pragmas", &self.pragmas).finish()
    }
}

impl<C> Manager<C> {
    /// A manager for `url`, with the default settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_settings(url, &PoolSettings::default())
    }

    /// A manager for `url` with `settings`.
    pub fn with_settings(url: impl Into<String>, settings: &PoolSettings) -> Self {
        let sync = match settings.sqlite_synchronous.to_ascii_uppercase().as_str() {
            level @ ("OFF" | "NORMAL" | "FULL" | "EXTRA") => level.to_owned(),
            _ => "FULL".to_owned(),
        };
        // The busy timeout first: switching to WAL takes a lock, which
        // another connection may hold while this one opens. Temporary
        // files in memory: a savepoint's journal (each write of a group
        // commit has one) otherwise goes to a file of its own past 64 KiB,
        // which is created, written and deleted inside the write. It holds
        // nothing needed after a crash (the WAL does).
        let pragmas = format!(
            "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY;",
            settings.sqlite_busy_timeout.as_millis()
        );
        Manager { url: url.into(), pragmas, _conn: PhantomData }
    }
}

impl<C: LogConnection> r2d2::ManageConnection for Manager<C> {
    type Connection = C;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<C, r2d2::Error> {
        let mut conn = C::open(&self.url).map_err(r2d2::Error::ConnectionError)?;
        if conn.dialect() == Dialect::Sqlite {
            conn.batch(&self.pragmas).map_err(r2d2::Error::QueryError)?;
        }
        super::fault::pin_messages(&mut conn);
        if conn.dialect() == Dialect::Postgres {
            // Diesel keeps statements prepared, and PostgreSQL may settle a
            // prepared statement on one generic plan after five runs: chosen
            // while the app's tables were small (a fresh database, or one
            // whose statistics autovacuum has not yet gathered), it stays a
            // sequential scan of `tasks WHERE id = ANY($1)` as the table
            // grows (measured: the largest cost of a sync, BENCHMARKS.md
            // §10). Plans made for each run's values use the key. (Before
            // PostgreSQL 12 there is no such setting, nor this choice.)
            if let Err(err) = conn.batch("SET plan_cache_mode = force_custom_plan") {
                tracing::debug!("mobync: could not set plan_cache_mode: {err}");
            }
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut C) -> Result<(), r2d2::Error> {
        conn.batch("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut C) -> bool {
        // As Diesel's own manager: a connection given back by a panicking
        // thread may be in the middle of a transaction; one its holder
        // found lost was marked broken (see `settle`).
        std::thread::panicking() || conn.broken()
    }
}

/// A pool of up to 10 connections of type `C` to `url`; fails if the first
/// connection cannot be made.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # let dir = std::env::temp_dir().join(format!("mobync-pool-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let pool = mobync::db::pool::<diesel::SqliteConnection>(&dir.join("p.sqlite").display().to_string()).unwrap();
/// # drop(pool);
/// # }
/// ```
pub fn pool<C: LogConnection>(url: &str) -> Result<Pool<C>, r2d2::PoolError> {
    pool_with(url, &PoolSettings::default())
}

/// A pool of connections of type `C` to `url` with `settings`. Connections
/// are not pinged at every checkout (a round trip per sync); a connection
/// that broke fails one transaction and is then dropped by the pool.
pub fn pool_with<C: LogConnection>(url: &str, settings: &PoolSettings) -> Result<Pool<C>, r2d2::PoolError> {
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .test_on_check_out(false)
        .build(Manager::with_settings(url, settings))
}
