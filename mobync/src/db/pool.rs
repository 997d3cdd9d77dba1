//! A connection pool that picks the backend from the URL.

use super::{DbConnection, Dialect};
use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, R2D2Connection};

/// An r2d2 pool of [`DbConnection`]s.
pub type Pool = r2d2::Pool<Manager>;

/// Opens [`DbConnection`]s for a pool. SQLite connections get the settings
/// concurrent requests need: WAL, a 5 s busy timeout, `synchronous=NORMAL`
/// and foreign keys.
#[derive(Debug, Clone)]
pub struct Manager {
    url: String,
}

impl Manager {
    /// A manager for `url` (see [`Dialect::of_url`]).
    pub fn new(url: impl Into<String>) -> Self {
        Manager { url: url.into() }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let mut conn = DbConnection::open(&self.url).map_err(r2d2::Error::ConnectionError)?;
        if conn.dialect() == Dialect::Sqlite {
            conn.batch_execute(
                "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(r2d2::Error::QueryError)?;
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// A pool of up to 10 connections to `url`; fails if the first connection
/// cannot be made.
pub fn pool(url: &str) -> Result<Pool, r2d2::PoolError> {
    pool_with(url, 10)
}

/// A pool of up to `max_size` connections to `url`. Connections are not
/// pinged at every checkout (a round trip per sync); a connection that broke
/// fails one transaction and is then dropped by the pool.
pub fn pool_with(url: &str, max_size: u32) -> Result<Pool, r2d2::PoolError> {
    r2d2::Pool::builder().max_size(max_size).test_on_check_out(false).build(Manager::new(url))
}
