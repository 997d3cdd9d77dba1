//! [`LogConnection`]: what mobync needs of a Diesel connection to keep its
//! diff log on it, implemented for `SqliteConnection`, `PgConnection`,
//! `MysqlConnection` (each behind its feature) and [`DbConnection`].
//!
//! The diff log's SQL is written once, as text with binds; each connection
//! type runs it as a statement Diesel keeps prepared, keyed by its text
//! (the impls are one macro, expanded per type, so no generic Diesel bounds
//! are needed).

use super::{DbConnection, Dialect};
use diesel::migration;
use diesel::result::QueryResult;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::QueryableByName;

/// A bind parameter of the diff log's SQL.
#[derive(Debug, Clone, Copy)]
pub enum Bind<'a> {
    /// `TEXT` / `VARCHAR`.
    Text(&'a str),
    /// `BIGINT`.
    BigInt(i64),
    /// `INTEGER`.
    Int(i32),
    /// `BOOLEAN`.
    Bool(bool),
    /// `TEXT` or `NULL`.
    OptText(Option<&'a str>),
    /// `BIGINT` or `NULL`.
    OptBigInt(Option<i64>),
}

/// One row of the diff log.
#[derive(Debug, QueryableByName)]
pub struct DiffRow {
    /// The diff id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// The owner's key.
    #[diesel(sql_type = Text)]
    pub owner: String,
    /// The stamp.
    #[diesel(sql_type = BigInt)]
    pub logical_clock: i64,
    /// The client's timestamp.
    #[diesel(sql_type = BigInt)]
    pub utc_timestamp: i64,
    /// `create`, `update` or `delete`.
    #[diesel(sql_type = Text)]
    pub op: String,
    /// The model.
    #[diesel(sql_type = Text)]
    pub model: String,
    /// The JSON object, as text.
    #[diesel(sql_type = Text)]
    pub json_data: String,
}

/// A number (a clock value, a count).
#[derive(Debug, QueryableByName)]
pub struct NumberRow {
    /// The number.
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A diff id and whether it is in the log, squashed, or among the dropped.
#[derive(Debug, QueryableByName)]
pub struct KnownRow {
    /// The diff id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// `s` (in the log), `q` (squashed) or `d` (dropped).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Its stamp (`-1` for a dropped one).
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// A row type of raw SQL that every enabled backend can load (a
/// `#[derive(QueryableByName)]` struct is one): what [`LogConnection::load`]
/// takes.
pub trait AnyRow: Sized + 'static + ByNameSqlite + ByNamePg + ByNameMysql {}

impl<T: 'static + ByNameSqlite + ByNamePg + ByNameMysql> AnyRow for T {}

macro_rules! by_name {
    ($name:ident, $feature:literal, $backend:ty) => {
        #[doc(hidden)]
        #[cfg(feature = $feature)]
        pub trait $name: diesel::QueryableByName<$backend> {}
        #[cfg(feature = $feature)]
        impl<T: diesel::QueryableByName<$backend>> $name for T {}
        #[doc(hidden)]
        #[cfg(not(feature = $feature))]
        pub trait $name {}
        #[cfg(not(feature = $feature))]
        impl<T> $name for T {}
    };
}

by_name!(ByNameSqlite, "sqlite", diesel::sqlite::Sqlite);
by_name!(ByNamePg, "postgres", diesel::pg::Pg);
by_name!(ByNameMysql, "mysql", diesel::mysql::Mysql);

/// Seals [`LogConnection`].
mod sealed {
    pub trait Sealed {}
}

/// A Diesel connection mobync can keep its diff log on, run migrations on,
/// and open write transactions on: `SqliteConnection`, `PgConnection`,
/// `MysqlConnection` (each behind its feature) and [`DbConnection`]. It is
/// sealed: no other type can implement it. An app names it as a bound and
/// uses [`open`](LogConnection::open), [`dialect`](LogConnection::dialect)
/// and [`batch`](LogConnection::batch); the rest is the diff log's SQL
/// plumbing, hidden.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use mobync::db::{Dialect, LogConnection};
/// let mut conn = diesel::SqliteConnection::open(":memory:").unwrap();
/// assert_eq!(conn.dialect(), Dialect::Sqlite);
/// conn.batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)").unwrap();
/// # }
/// ```
pub trait LogConnection: sealed::Sealed + Send + 'static {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;
    /// Opens a connection to `url` (for SQLite a path, or `sqlite://path`).
    fn open(url: &str) -> diesel::ConnectionResult<Self>
    where
        Self: Sized;
    /// Runs SQL text without binds (several statements allowed).
    fn batch(&mut self, sql: &str) -> QueryResult<()>;
    #[doc(hidden)]
    /// Runs a statement; the number of rows it touched.
    fn execute(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<usize>;
    #[doc(hidden)]
    /// Hands diff log rows to `each` one at a time, as the database returns
    /// them (an owner's whole log is never in memory as rows and diffs at
    /// once); `each` may stop the query with an error.
    fn each_diff(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
        each: &mut dyn FnMut(DiffRow) -> Result<(), crate::SyncError>,
    ) -> Result<(), crate::SyncError> {
        self.each_row(sql, binds, each)
    }
    /// Hands the rows of a query to `each` one at a time, as `R`, as the
    /// database returns them (row by row on PostgreSQL); `each` may stop the
    /// query with an error.
    fn each_row<R: AnyRow>(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
        each: &mut dyn FnMut(R) -> Result<(), crate::SyncError>,
    ) -> Result<(), crate::SyncError>;
    #[doc(hidden)]
    /// Loads the rows of a query, as `R`.
    fn load<R: AnyRow>(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<Vec<R>>;
    #[doc(hidden)]
    /// Begins a read-only transaction on one snapshot of the database: every
    /// statement in it sees the same committed state (PostgreSQL
    /// `REPEATABLE READ READ ONLY`, MariaDB `WITH CONSISTENT SNAPSHOT`,
    /// SQLite a deferred transaction, whose first read fixes its snapshot
    /// in WAL mode). Ended by [`commit`](LogConnection::commit).
    fn begin_snapshot(&mut self) -> QueryResult<()>;
    #[doc(hidden)]
    /// Begins a transaction: a write transaction takes SQLite's write lock
    /// at once (`BEGIN IMMEDIATE`), so that two writers never deadlock on a
    /// lock upgrade; elsewhere a plain `BEGIN`.
    fn begin(&mut self, write: bool) -> QueryResult<()>;
    #[doc(hidden)]
    /// Commits the transaction.
    fn commit(&mut self) -> QueryResult<()>;
    #[doc(hidden)]
    /// Rolls the transaction back.
    fn rollback(&mut self) -> QueryResult<()>;
    #[doc(hidden)]
    /// Runs the pending migrations of `source`.
    fn run_migrations(&mut self, source: super::migrations::MobyncMigrations) -> migration::Result<()>;
    #[doc(hidden)]
    /// Whether the connection is known to be unusable.
    fn broken(&mut self) -> bool;
    /// Marks the connection unusable (Diesel's transaction manager in its
    /// error state), so that a pool drops it when it gets it back: what
    /// the holder of a connection found lost does (see [`super::settle`]).
    fn discard(&mut self);
    #[doc(hidden)]
    /// How many transactions and savepoints are open (0: none); `None`
    /// when Diesel holds the connection's transaction state in error.
    fn depth(&mut self) -> Option<u32>;
}

/// Implements [`LogConnection`] for a concrete Diesel connection type.
macro_rules! log_connection {
    ($conn:ty, $dialect:expr, $backend:ty, $loading:ty) => {
        impl sealed::Sealed for $conn {}

        impl LogConnection for $conn {
            fn dialect(&self) -> Dialect {
                $dialect
            }

            fn open(url: &str) -> diesel::ConnectionResult<Self> {
                let url = if $dialect == Dialect::Sqlite { url.strip_prefix("sqlite://").unwrap_or(url) } else { url };
                <$conn as diesel::Connection>::establish(url)
            }

            fn batch(&mut self, sql: &str) -> QueryResult<()> {
                diesel::connection::SimpleConnection::batch_execute(self, sql)
            }

            fn execute(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<usize> {
                diesel::RunQueryDsl::execute(bound::<$backend>(sql, binds, $dialect), self)
            }

            fn each_row<R: AnyRow>(
                &mut self,
                sql: &str,
                binds: &[Bind<'_>],
                each: &mut dyn FnMut(R) -> Result<(), crate::SyncError>,
            ) -> Result<(), crate::SyncError> {
                let rows = diesel::RunQueryDsl::load_iter::<R, $loading>(
                    bound::<$backend>(sql, binds, $dialect),
                    self,
                )
                .map_err(crate::SyncError::database)?;
                for row in rows {
                    each(row.map_err(crate::SyncError::database)?)?;
                }
                Ok(())
            }

            fn load<R: AnyRow>(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<Vec<R>> {
                diesel::RunQueryDsl::load(bound::<$backend>(sql, binds, $dialect), self)
            }

            fn begin(&mut self, write: bool) -> QueryResult<()> {
                use diesel::connection::{AnsiTransactionManager, TransactionManager};
                if write && $dialect == Dialect::Sqlite {
                    AnsiTransactionManager::begin_transaction_sql(self, "BEGIN IMMEDIATE")
                } else {
                    <$conn as diesel::Connection>::TransactionManager::begin_transaction(self)
                }
            }

            fn begin_snapshot(&mut self) -> QueryResult<()> {
                use diesel::connection::AnsiTransactionManager;
                let sql = match $dialect {
                    Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                    Dialect::Mysql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
                    Dialect::Sqlite => "BEGIN DEFERRED",
                };
                AnsiTransactionManager::begin_transaction_sql(self, sql)
            }

            fn commit(&mut self) -> QueryResult<()> {
                use diesel::connection::TransactionManager;
                <$conn as diesel::Connection>::TransactionManager::commit_transaction(self)
            }

            fn rollback(&mut self) -> QueryResult<()> {
                use diesel::connection::TransactionManager;
                <$conn as diesel::Connection>::TransactionManager::rollback_transaction(self)
            }

            fn run_migrations(&mut self, source: super::migrations::MobyncMigrations) -> migration::Result<()> {
                use diesel_migrations::MigrationHarness;
                let pending = self.pending_migrations(source)?;
                let total = pending.len();
                for (done, migration) in pending.iter().enumerate() {
                    tracing::info!("mobync: migration {}/{total}: {}", done + 1, migration.name());
                    self.run_migration(&**migration)?;
                }
                if total > 0 {
                    tracing::info!("mobync: {total} migration(s) applied");
                }
                Ok(())
            }

            fn broken(&mut self) -> bool {
                diesel::r2d2::R2D2Connection::is_broken(self)
            }

            fn discard(&mut self) {
                use diesel::connection::TransactionManager;
                <$conn as diesel::Connection>::TransactionManager::transaction_manager_status_mut(self).set_in_error();
            }

            fn depth(&mut self) -> Option<u32> {
                use diesel::connection::TransactionManager;
                let status = <$conn as diesel::Connection>::TransactionManager::transaction_manager_status_mut(self);
                status.transaction_depth().ok().map(|depth| depth.map_or(0, |d| d.get()))
            }
        }
    };
}

/// The most binds a statement may have and still be kept prepared: the
/// diff log's statements with a variable number of rows or ids (a sync's
/// log rows, its known ids) have a text per count, and a connection keeps
/// only the small counts (the common ones), so that its cache stays small.
pub(crate) const MAX_CACHED_BINDS: usize = 100;

/// `sql` with `binds`, as a statement Diesel keeps prepared on the
/// connection, keyed by its text, when it has at most [`MAX_CACHED_BINDS`]
/// binds: Diesel's own `sql_query` says it is never safe to keep, so it
/// would be compiled at every execution. The text is handed to Diesel in
/// pieces, each bind where its placeholder was (Diesel writes the
/// placeholder back), which needs the placeholders in the order of the
/// binds, each once: any other text runs as a `sql_query`, not kept.
enum Statement<'q, 'a, DB: diesel::backend::Backend> {
    Kept { pieces: Vec<&'q str>, binds: &'q [Bind<'a>] },
    Once(diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>),
}

/// The text of `sql` around its placeholders (`?`, or PostgreSQL's `$1`,
/// `$2`, … in that order), if there are `binds` of them.
fn pieces(sql: &str, dialect: Dialect, binds: usize) -> Option<Vec<&str>> {
    let mut pieces = Vec::with_capacity(binds + 1);
    let mut rest = sql;
    for n in 1..=binds {
        let (at, len) = match dialect {
            Dialect::Postgres => {
                let mark = format!("${n}");
                let at = rest.find(&mark)?;
                let next = rest[at + mark.len()..].chars().next();
                if next.is_some_and(|c| c.is_ascii_digit()) {
                    return None;
                }
                (at, mark.len())
            }
            _ => (rest.find('?')?, 1),
        };
        pieces.push(&rest[..at]);
        rest = &rest[at + len..];
    }
    let more = match dialect {
        Dialect::Postgres => rest.contains('$'),
        _ => rest.contains('?'),
    };
    if more {
        return None;
    }
    pieces.push(rest);
    Some(pieces)
}

impl<'q, 'a, DB> diesel::query_builder::QueryFragment<DB> for Statement<'q, 'a, DB>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<Bool>,
    &'a str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    Option<&'a str>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
    diesel::query_builder::BoxedSqlQuery<'a, DB, diesel::query_builder::SqlQuery>: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let (pieces, binds) = match self {
            Statement::Once(query) => return query.walk_ast(out),
            Statement::Kept { pieces, binds } => (pieces, binds),
        };
        for (piece, bind) in pieces.iter().zip(binds.iter()) {
            out.push_sql(piece);
            match bind {
                Bind::Text(text) => out.push_bind_param::<Text, &'a str>(text)?,
                Bind::BigInt(n) => out.push_bind_param::<BigInt, i64>(n)?,
                Bind::Int(n) => out.push_bind_param::<Integer, i32>(n)?,
                Bind::Bool(b) => out.push_bind_param::<Bool, bool>(b)?,
                Bind::OptText(text) => out.push_bind_param::<Nullable<Text>, Option<&'a str>>(text)?,
                Bind::OptBigInt(n) => out.push_bind_param::<Nullable<BigInt>, Option<i64>>(n)?,
            }
        }
        out.push_sql(pieces.last().copied().unwrap_or_default());
        Ok(())
    }
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryId for Statement<'_, '_, DB> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::Query for Statement<'_, '_, DB> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<DB: diesel::backend::Backend, Conn> diesel::RunQueryDsl<Conn> for Statement<'_, '_, DB> {}

/// `sql` (in `dialect`) with `binds`, as a statement of `DB`.
fn bound<'q, 'a, DB>(sql: &'q str, binds: &'q [Bind<'a>], dialect: Dialect) -> Statement<'q, 'a, DB>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<Bool>,
    &'a str: diesel::serialize::ToSql<Text, DB>,
    i64: diesel::serialize::ToSql<BigInt, DB>,
    i32: diesel::serialize::ToSql<Integer, DB>,
    bool: diesel::serialize::ToSql<Bool, DB>,
    Option<&'a str>: diesel::serialize::ToSql<Nullable<Text>, DB>,
    Option<i64>: diesel::serialize::ToSql<Nullable<BigInt>, DB>,
{
    if binds.len() <= MAX_CACHED_BINDS {
        if let Some(pieces) = pieces(sql, dialect, binds.len()) {
            return Statement::Kept { pieces, binds };
        }
    }
    let mut query = diesel::sql_query(sql).into_boxed::<DB>();
    for bind in binds {
        query = match *bind {
            Bind::Text(text) => query.bind::<Text, _>(text),
            Bind::BigInt(n) => query.bind::<BigInt, _>(n),
            Bind::Int(n) => query.bind::<Integer, _>(n),
            Bind::Bool(b) => query.bind::<Bool, _>(b),
            Bind::OptText(text) => query.bind::<Nullable<Text>, _>(text),
            Bind::OptBigInt(n) => query.bind::<Nullable<BigInt>, _>(n),
        };
    }
    Statement::Once(query)
}

#[cfg(feature = "sqlite")]
log_connection!(diesel::SqliteConnection, Dialect::Sqlite, diesel::sqlite::Sqlite, diesel::connection::DefaultLoadingMode);
// Row by row: libpq does not hold the whole result set first.
#[cfg(feature = "postgres")]
log_connection!(diesel::PgConnection, Dialect::Postgres, diesel::pg::Pg, diesel::pg::PgRowByRowLoadingMode);
#[cfg(feature = "mysql")]
log_connection!(diesel::MysqlConnection, Dialect::Mysql, diesel::mysql::Mysql, diesel::connection::DefaultLoadingMode);

/// Runs `$body` with `$c` bound to the backend's own connection inside a
/// [`DbConnection`]: the body is compiled once per enabled backend.
macro_rules! with_inner {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            #[cfg(feature = "sqlite")]
            $crate::db::DbConnection::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Pg($c) => $body,
            #[cfg(feature = "mysql")]
            $crate::db::DbConnection::Mysql($c) => $body,
        }
    };
}


impl sealed::Sealed for DbConnection {}

impl LogConnection for DbConnection {
    fn dialect(&self) -> Dialect {
        with_inner!(self, c => c.dialect())
    }

    fn open(url: &str) -> diesel::ConnectionResult<Self> {
        DbConnection::open(url)
    }

    fn batch(&mut self, sql: &str) -> QueryResult<()> {
        with_inner!(self, c => c.batch(sql))
    }

    fn execute(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<usize> {
        with_inner!(self, c => c.execute(sql, binds))
    }

    fn each_row<R: AnyRow>(
        &mut self,
        sql: &str,
        binds: &[Bind<'_>],
        each: &mut dyn FnMut(R) -> Result<(), crate::SyncError>,
    ) -> Result<(), crate::SyncError> {
        with_inner!(self, c => c.each_row(sql, binds, each))
    }

    fn load<R: AnyRow>(&mut self, sql: &str, binds: &[Bind<'_>]) -> QueryResult<Vec<R>> {
        with_inner!(self, c => c.load(sql, binds))
    }

    fn begin(&mut self, write: bool) -> QueryResult<()> {
        with_inner!(self, c => c.begin(write))
    }

    fn begin_snapshot(&mut self) -> QueryResult<()> {
        with_inner!(self, c => c.begin_snapshot())
    }

    fn commit(&mut self) -> QueryResult<()> {
        with_inner!(self, c => c.commit())
    }

    fn rollback(&mut self) -> QueryResult<()> {
        with_inner!(self, c => c.rollback())
    }

    fn run_migrations(&mut self, source: super::migrations::MobyncMigrations) -> migration::Result<()> {
        with_inner!(self, c => c.run_migrations(source))
    }

    fn broken(&mut self) -> bool {
        with_inner!(self, c => c.broken())
    }

    fn discard(&mut self) {
        with_inner!(self, c => c.discard())
    }

    fn depth(&mut self) -> Option<u32> {
        with_inner!(self, c => c.depth())
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::db::{migrations, DieselStore, Tables};
    use crate::engine::Store;
    use diesel::connection::{Instrumentation, InstrumentationEvent};
    use diesel::Connection;
    use std::sync::{Arc, Mutex};

    /// The SQL texts Diesel prepared and kept, and the statements run.
    #[derive(Default)]
    struct Seen {
        kept: Vec<String>,
        run: usize,
    }

    struct Watch(Arc<Mutex<Seen>>);

    impl Instrumentation for Watch {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            let mut seen = self.0.lock().unwrap();
            match event {
                InstrumentationEvent::CacheQuery { sql, .. } => seen.kept.push(sql.to_string()),
                InstrumentationEvent::StartQuery { .. } => seen.run += 1,
                _ => {}
            }
        }
    }

    #[test]
    fn the_logs_statements_are_prepared_once_per_text_and_long_ones_never_kept() {
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        migrations::run(&mut conn, &Tables::default()).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        conn.set_instrumentation(Watch(seen.clone()));
        let store = DieselStore::<diesel::SqliteConnection>::new(Tables::default());
        for _ in 0..3 {
            store.marks(&mut conn, "ada").unwrap();
            store.known_ids(&mut conn, "ada", &["a", "b", "c"]).unwrap();
        }
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.run, 6);
            assert_eq!(seen.kept.len(), 2, "each text is prepared once: {:?}", seen.kept);
        }
        // 40 ids: 123 binds, a text that is run but not kept.
        let many: Vec<String> = (0..40).map(|i| format!("id-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        store.known_ids(&mut conn, "ada", &many).unwrap();
        store.known_ids(&mut conn, "ada", &many).unwrap();
        {
            let seen = seen.lock().unwrap();
            assert_eq!((seen.run, seen.kept.len()), (8, 2));
        }
        // Writes too: Diesel runs them through a reference, whose check
        // walks the statement (a `sql_query` there says "never keep").
        let diff = |id: &str| crate::Diff::new(id, crate::OperationType::Create, "task", serde_json::json!({"id": id}));
        for stamp in 0..3 {
            let applied = [diff(&format!("a{stamp}")), diff(&format!("b{stamp}"))];
            store.record(&mut conn, "ada", stamp, &applied, &[]).unwrap();
        }
        let seen = seen.lock().unwrap();
        let writes: Vec<&String> = seen.kept.iter().filter(|sql| !sql.starts_with("SELECT")).collect();
        assert_eq!(writes.len(), 2, "the log's INSERT and the clock's UPDATE, once each: {writes:?}");
    }

    #[test]
    fn a_text_is_cut_at_its_placeholders_only_when_they_come_in_the_binds_order() {
        use super::{pieces, Dialect};
        assert_eq!(pieces("a = $1 AND b IN ($2, $3)", Dialect::Postgres, 3), Some(vec!["a = ", " AND b IN (", ", ", ")"]));
        assert_eq!(pieces("x = $1 OR y = $10", Dialect::Postgres, 2), None, "$10 is not $2");
        assert_eq!(pieces("a = $2 AND b = $1", Dialect::Postgres, 2), None);
        assert_eq!(pieces("a = $1 AND b = $1", Dialect::Postgres, 1), None, "a placeholder used twice");
        assert_eq!(pieces("a = ? AND b = ?", Dialect::Sqlite, 2), Some(vec!["a = ", " AND b = ", ""]));
        assert_eq!(pieces("a = ? AND b = ?", Dialect::Mysql, 1), None);
        assert_eq!(pieces("a = ?", Dialect::Sqlite, 2), None);
        assert_eq!(pieces("SELECT 1", Dialect::Sqlite, 0), Some(vec!["SELECT 1"]));
    }
}
