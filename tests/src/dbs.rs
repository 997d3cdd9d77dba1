//! A fresh, empty database per test on each backend: a SQLite file in a
//! temporary directory, a new PostgreSQL or MariaDB database (dropped when
//! the [`TestDb`] is). Server URLs come from `MOBYNC_TEST_POSTGRES` and
//! `MOBYNC_TEST_MYSQL` (admin URLs), defaulting to this machine's servers.
//! A server that does not answer skips the test, except under `CI=true`,
//! where it fails it.

use diesel::connection::SimpleConnection;
use mobync::db::Dialect;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A backend the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// The PostgreSQL server.
    Postgres,
    /// The MariaDB/MySQL server.
    Mysql,
}

/// Every backend this build of mobync has.
pub fn backends() -> Vec<Backend> {
    Dialect::enabled()
        .into_iter()
        .map(|d| match d {
            Dialect::Sqlite => Backend::Sqlite,
            Dialect::Postgres => Backend::Postgres,
            Dialect::Mysql => Backend::Mysql,
        })
        .collect()
}

/// A fresh database, removed on drop.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    backend: Backend,
    name: String,
    /// The server's admin URL (empty for SQLite), to drop it again.
    admin: String,
    dir: Option<PathBuf>,
}

impl TestDb {
    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        Dialect::of_url(&self.url)
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Its name (the database's, or the SQLite directory's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Creates the database `name` on `backend`: a directory under the
    /// system temp dir holding `name.sqlite`, or `CREATE DATABASE` on the
    /// server of `admin_url`. Dropped with the returned value.
    pub fn create(backend: Backend, admin_url: &str, name: String) -> Result<TestDb, String> {
        if backend == Backend::Sqlite {
            let dir = std::env::temp_dir().join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let url = dir.join(format!("{name}.sqlite")).display().to_string();
            return Ok(TestDb { url, backend, name, admin: String::new(), dir: Some(dir) });
        }
        admin(admin_url, &format!("CREATE DATABASE {name}"))?;
        let url = with_database(admin_url, &name);
        Ok(TestDb { url, backend, name, admin: admin_url.to_owned(), dir: None })
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("mobync_t{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), nanos)
}

fn admin_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => std::env::var("MOBYNC_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        Backend::Mysql => {
            std::env::var("MOBYNC_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
        }
        Backend::Sqlite => String::new(),
    }
}

/// Replaces the database name (the last path segment) of a server URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base.rfind('/').filter(|&i| i > base.find("://").map_or(0, |s| s + 2)).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..cut], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn admin(url: &str, sql: &str) -> Result<(), String> {
    let mut conn = mobync::db::DbConnection::open(url).map_err(|e| format!("{url}: {e}"))?;
    conn.batch_execute(sql).map_err(|e| format!("{url}: {e}"))
}

/// Whether this is a CI run: `CI` set to anything but empty, `false` or `0`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A fresh database on `backend`, or `None` when its server does not answer
/// outside CI. A skip is written straight to the terminal (libtest's capture
/// would hide it in a passing run); under CI it fails the test instead.
pub fn fresh(backend: Backend) -> Option<TestDb> {
    match TestDb::create(backend, &admin_url(backend), unique_name()) {
        Ok(db) => Some(db),
        Err(err) if in_ci() => panic!("{backend:?} is required under CI but is not reachable: {err}"),
        Err(err) => {
            use std::io::Write;
            let thread = std::thread::current();
            let test = thread.name().unwrap_or("a test");
            let _ = writeln!(std::io::stderr().lock(), "SKIPPED the {backend:?} part of {test}: {err}");
            None
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.backend {
            Backend::Sqlite => {
                if let Some(dir) = &self.dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Backend::Postgres => {
                if let Err(err) = admin(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
                    eprintln!("could not drop {}: {err}", self.name);
                }
            }
            Backend::Mysql => {
                if let Err(err) = admin(&self.admin, &format!("DROP DATABASE IF EXISTS {}", self.name)) {
                    eprintln!("could not drop {}: {err}", self.name);
                }
            }
        }
    }
}

/// Opens a connection to `db`.
pub fn connect(db: &TestDb) -> mobync::db::DbConnection {
    mobync::db::DbConnection::open(&db.url).unwrap_or_else(|e| panic!("{}: {e}", db.url))
}

/// Waits up to `wait` until a session of `db`'s server waits for a row or
/// table lock (PostgreSQL: `pg_stat_activity`; MariaDB: its process list);
/// true if one does. How a test knows that a
/// request it started has reached a lock, without sleeping and hoping.
pub fn wait_for_lock_waiter(db: &TestDb, wait: std::time::Duration) -> bool {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let sql = match db.backend() {
        Backend::Postgres => format!(
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = '{}' AND wait_event_type = 'Lock'",
            db.name()
        ),
        // InnoDB's own list misses some waits (a waiting INSERT ... ON
        // DUPLICATE KEY UPDATE is not listed): a statement of this database
        // running for over 200 ms is one, in these tests.
        Backend::Mysql => format!(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST \
             WHERE DB = '{}' AND INFO IS NOT NULL AND ID <> CONNECTION_ID() AND TIME_MS > 200",
            db.name()
        ),
        Backend::Sqlite => return false,
    };
    let mut conn = connect(db);
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        let waiting: Vec<Count> = diesel::sql_query(&sql).load(&mut conn).unwrap_or_default();
        if waiting.first().is_some_and(|c| c.n > 0) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_the_last_path_segment() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("mysql://root@h:3306/test?a=b", "x"), "mysql://root@h:3306/x?a=b");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
