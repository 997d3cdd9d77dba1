//! Diesel storage on SQLite, PostgreSQL and MySQL/MariaDB. The diff log and
//! clocks ([`DieselStore`]) live on whatever connection type the app syncs
//! on: `SqliteConnection`, `PgConnection`, `MysqlConnection` (each behind its
//! feature), or [`DbConnection`], one type for the three backends, chosen by
//! the URL, for apps that want one binary on all of them. Also: a pool that
//! sets what concurrent syncs need ([`pool`]), and the migrations that
//! create mobync's tables ([`migrations`]).
//!
//! ```
//! # #[cfg(not(feature = "sqlite"))] fn main() {}
//! # #[cfg(feature = "sqlite")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("mobync-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let url = dir.join("doc.sqlite").display().to_string();
//! use mobync::db::{self, DbConnection, DieselStore, Tables};
//! let pool = db::pool::<DbConnection>(&url)?;
//! let tables = Tables::default();
//! db::migrations::run(&mut *pool.get()?, &tables).expect("mobync's tables");
//! let store = DieselStore::<DbConnection>::new(tables);
//! # Ok(()) }
//! ```

pub(crate) mod conn;
pub mod audit;
pub(crate) mod fault;
mod group;
mod history;
pub mod migrations;
mod pool;
pub mod schema;
pub(crate) mod store;
mod tables;

pub use conn::LogConnection;
pub(crate) use conn::{Bind, DiffRow, KnownRow, NumberRow};
#[doc(hidden)]
pub use fault::{failed, fault_of, fault_with, messages_language, pin_messages, said, settle, warn_unless_english, Said};
pub use pool::{pool, pool_with, Manager, Pool, PoolSettings};
#[doc(hidden)]
pub use group::GroupStats;
pub use store::DieselStore;
pub use tables::Tables;

use diesel::Connection;

/// A connection to any of the enabled backends; generated code and the
/// diff log run on it.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// SQLite (feature `sqlite`, the default).
    #[cfg(feature = "sqlite")]
    Sqlite(diesel::SqliteConnection),
    /// PostgreSQL (feature `postgres`).
    #[cfg(feature = "postgres")]
    Pg(diesel::PgConnection),
    /// MySQL/MariaDB (feature `mysql`).
    #[cfg(feature = "mysql")]
    Mysql(diesel::MysqlConnection),
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL/MariaDB.
    Mysql,
}

impl Dialect {
    /// The backends this build of mobync has (its cargo features).
    pub fn enabled() -> Vec<Dialect> {
        let mut all = Vec::new();
        if cfg!(feature = "sqlite") {
            all.push(Dialect::Sqlite);
        }
        if cfg!(feature = "postgres") {
            all.push(Dialect::Postgres);
        }
        if cfg!(feature = "mysql") {
            all.push(Dialect::Mysql);
        }
        all
    }

    /// The backend a database URL names: `postgres://`/`postgresql://`,
    /// `mysql://`, else SQLite (`sqlite://path`, `file:...` or a plain path).
    pub fn of_url(url: &str) -> Dialect {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("mysql://") {
            Dialect::Mysql
        } else {
            Dialect::Sqlite
        }
    }

    /// Quotes a plain identifier (`"x"`, or `` `x` `` on MySQL).
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{ident}`"),
            _ => format!("\"{ident}\""),
        }
    }

    /// The `n`-th (1-based) bind placeholder.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// `count` placeholders from `first` on, comma separated.
    pub fn params(self, first: usize, count: usize) -> String {
        (first..first + count).map(|n| self.param(n)).collect::<Vec<_>>().join(", ")
    }
}

impl DbConnection {
    /// Opens a connection, choosing the backend from the URL's scheme (see
    /// [`Dialect::of_url`]), so that a bad URL or password says so instead of
    /// "invalid connection url for multiconnection".
    pub fn open(url: &str) -> Result<Self, diesel::ConnectionError> {
        let unsupported =
            |name: &str| diesel::ConnectionError::BadConnection(format!("mobync was built without the `{name}` feature"));
        match Dialect::of_url(url) {
            #[cfg(feature = "postgres")]
            Dialect::Postgres => Ok(DbConnection::Pg(diesel::PgConnection::establish(url)?)),
            #[cfg(feature = "mysql")]
            Dialect::Mysql => Ok(DbConnection::Mysql(diesel::MysqlConnection::establish(url)?)),
            #[cfg(feature = "sqlite")]
            Dialect::Sqlite => {
                let path = url.strip_prefix("sqlite://").unwrap_or(url);
                Ok(DbConnection::Sqlite(diesel::SqliteConnection::establish(path)?))
            }
            #[allow(unreachable_patterns)]
            Dialect::Postgres => Err(unsupported("postgres")),
            #[allow(unreachable_patterns)]
            Dialect::Mysql => Err(unsupported("mysql")),
            #[allow(unreachable_patterns)]
            Dialect::Sqlite => Err(unsupported("sqlite")),
        }
    }

    /// The dialect of this connection.
    pub fn dialect(&self) -> Dialect {
        LogConnection::dialect(self)
    }
}
