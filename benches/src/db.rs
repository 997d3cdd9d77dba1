//! Fresh databases for one benchmark: a SQLite file in its own directory
//! under the system temp dir, or a new PostgreSQL database
//! (`bench_<tag>_<pid>_<n>`) on the server of `MOBYNC_BENCH_POSTGRES` (an
//! admin URL, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Removed or dropped when the [`BenchDb`] is dropped.

use mobync::db::DbConnection;
use mobync_tests::dbs::{self, TestDb};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A backend of the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (WAL, as mobync's pool sets it up).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "pg" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(format!("unknown backend {s:?} (sqlite, postgres)")),
        }
    }
}

/// The PostgreSQL admin URL.
pub fn postgres_admin_url() -> String {
    std::env::var("MOBYNC_BENCH_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database, removed on drop (the tests' [`TestDb`], named for the
/// benchmark).
pub struct BenchDb {
    /// Its URL (a path for SQLite).
    pub url: String,
    /// Its backend.
    pub backend: Backend,
    db: TestDb,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl BenchDb {
    /// A fresh database of `backend`; `tag` goes into its name.
    pub fn fresh(backend: Backend, tag: &str) -> Result<BenchDb, String> {
        let name = format!("bench_{tag}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let db = match backend {
            Backend::Sqlite => TestDb::create(dbs::Backend::Sqlite, "", name)?,
            Backend::Postgres => TestDb::create(dbs::Backend::Postgres, &postgres_admin_url(), name)?,
        };
        Ok(BenchDb { url: db.url.clone(), backend, db })
    }

    /// A new connection to it (SQLite: with the pragmas of mobync's pool).
    pub fn connect(&self) -> Result<DbConnection, String> {
        use diesel::r2d2::ManageConnection;
        mobync::db::Manager::new(self.url.as_str()).connect().map_err(|e| format!("{}: {e}", self.url))
    }

    /// Its name (the database name, or the SQLite directory's).
    pub fn name(&self) -> &str {
        self.db.name()
    }
}

/// Creates the todo example's tables (its own migrations) and mobync's
/// (diff log, clocks, dropped ids) in the database at `url`, as the todo
/// server does at start.
pub fn migrate_todo(url: &str) -> Result<(), String> {
    drop(todo::rocket(url).map_err(|e| format!("todo migrations on {url}: {e}"))?);
    let mut conn = DbConnection::open(url).map_err(|e| format!("{url}: {e}"))?;
    mobync::db::migrations::run(&mut conn, &mobync::db::Tables::default())
        .map_err(|e| format!("mobync migrations on {url}: {e}"))
}
