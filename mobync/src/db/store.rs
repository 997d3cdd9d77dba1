//! The diff log and per-owner clocks over Diesel: the [`Store`] of the
//! Diesel backends.

use super::{with_inner, write_transaction, DbConnection, Dialect, Pool, Tables};
use crate::engine::{KnownIds, Store};
use crate::error::SyncError;
use crate::protocol::{Diff, OperationType};
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{QueryableByName, RunQueryDsl};
use std::sync::{Mutex, PoisonError};

/// Rows per multi-row INSERT and ids per `IN (...)`: far below every
/// backend's bind limit.
const CHUNK: usize = 200;

/// The [`Store`] over a pool of [`DbConnection`]s: one sync is one
/// transaction on one pooled connection; the owner's clock row is locked
/// (`SELECT ... FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`) for its duration.
pub struct DieselStore {
    pool: Pool,
    tables: Tables,
    sqlite_writer: Mutex<()>,
}

impl DieselStore {
    /// A store over `pool`, on `tables` (created by [`super::migrations::run`]).
    pub fn new(pool: Pool, tables: Tables) -> Self {
        DieselStore { pool, tables, sqlite_writer: Mutex::new(()) }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}

#[derive(QueryableByName)]
struct DiffRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    owner: String,
    #[diesel(sql_type = BigInt)]
    logical_clock: i64,
    #[diesel(sql_type = BigInt)]
    utc_timestamp: i64,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Text)]
    model: String,
    #[diesel(sql_type = Text)]
    json_data: String,
}

impl DiffRow {
    fn into_diff(self) -> Result<Diff, SyncError> {
        let op = OperationType::parse(&self.op)
            .ok_or_else(|| SyncError::internal(format!("diff {} has type {:?}", self.id, self.op)))?;
        let data = serde_json::from_str(&self.json_data)
            .map_err(|err| SyncError::internal(format!("diff {} has bad json_data: {err}", self.id)))?;
        Ok(Diff {
            id: self.id,
            owner: self.owner,
            logical_clock: self.logical_clock,
            utc_timestamp: self.utc_timestamp,
            op,
            model: self.model,
            data,
        })
    }
}

#[derive(QueryableByName)]
struct ClockRow {
    #[diesel(sql_type = BigInt)]
    logical_clock: i64,
}

#[derive(QueryableByName)]
struct KnownRow {
    #[diesel(sql_type = Text)]
    id: String,
    /// `s`: stored in the log, `d`: dropped.
    #[diesel(sql_type = Text)]
    kind: String,
}

fn db(err: diesel::result::Error) -> SyncError {
    SyncError::internal(err)
}

impl DieselStore {
    fn read_clock(&self, conn: &mut DbConnection, owner: &str) -> Result<Option<i64>, SyncError> {
        let d = conn.dialect();
        let lock = if d == Dialect::Sqlite { "" } else { " FOR UPDATE" };
        let sql = format!(
            "SELECT logical_clock FROM {} WHERE owner = {}{lock}",
            d.quote(self.tables.clocks()),
            d.param(1)
        );
        let rows: Vec<ClockRow> =
            with_inner!(conn, c => diesel::sql_query(&sql).bind::<Text, _>(owner).load(c)).map_err(db)?;
        Ok(rows.first().map(|r| r.logical_clock))
    }

    fn insert_clock(&self, conn: &mut DbConnection, owner: &str) -> Result<(), SyncError> {
        let d = conn.dialect();
        let table = d.quote(self.tables.clocks());
        let sql = match d {
            Dialect::Sqlite => format!("INSERT OR IGNORE INTO {table} (owner, logical_clock) VALUES (?, 0)"),
            Dialect::Postgres => {
                format!("INSERT INTO {table} (owner, logical_clock) VALUES ($1, 0) ON CONFLICT (owner) DO NOTHING")
            }
            // Takes the row's exclusive lock at once: a plain SELECT ... FOR
            // UPDATE of a missing row takes gap locks that deadlock two
            // first syncs of one owner.
            Dialect::Mysql => format!(
                "INSERT INTO {table} (owner, logical_clock) VALUES (?, 0) \
                 ON DUPLICATE KEY UPDATE logical_clock = logical_clock"
            ),
        };
        with_inner!(conn, c => diesel::sql_query(&sql).bind::<Text, _>(owner).execute(c)).map_err(db)?;
        Ok(())
    }

    /// Which of `ids` are in the log and which in the dropped ids of
    /// `owner`: one query per chunk of ids.
    fn known_in(&self, conn: &mut DbConnection, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        let d = conn.dialect();
        let mut known = KnownIds::default();
        for chunk in ids.chunks(CHUNK) {
            let n = chunk.len();
            let sql = format!(
                "SELECT id, 's' AS kind FROM {} WHERE owner = {} AND id IN ({}) \
                 UNION ALL SELECT id, 'd' AS kind FROM {} WHERE owner = {} AND id IN ({})",
                d.quote(self.tables.diffs()),
                d.param(1),
                d.params(2, n),
                d.quote(self.tables.dropped()),
                d.param(n + 2),
                d.params(n + 3, n)
            );
            let rows: Vec<KnownRow> = with_inner!(conn, c => {
                let mut query = diesel::sql_query(&sql).into_boxed();
                for _ in 0..2 {
                    query = query.bind::<Text, _>(owner);
                    for id in chunk {
                        query = query.bind::<Text, _>(*id);
                    }
                }
                query.load(c)
            })
            .map_err(db)?;
            for row in rows {
                if row.kind == "s" {
                    known.stored.insert(row.id);
                } else {
                    known.dropped.insert(row.id);
                }
            }
        }
        Ok(known)
    }
}

impl Store for DieselStore {
    type Conn = DbConnection;

    fn transaction<T>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, SyncError>) -> Result<T, SyncError> {
        let mut conn = self.pool.get().map_err(SyncError::internal)?;
        // SQLite has one writer at a time. This process's writers queue on a
        // mutex (a waiting thread wakes as soon as it is its turn) rather
        // than in SQLite's busy handler, which polls with sleeps of up to
        // 100 ms; other processes still meet the busy timeout.
        let _turn = (conn.dialect() == Dialect::Sqlite)
            .then(|| self.sqlite_writer.lock().unwrap_or_else(PoisonError::into_inner));
        write_transaction(&mut conn, f)
    }

    fn lock_clock(&self, conn: &mut DbConnection, owner: &str) -> Result<i64, SyncError> {
        if conn.dialect() == Dialect::Mysql {
            self.insert_clock(conn, owner)?;
        }
        if let Some(clock) = self.read_clock(conn, owner)? {
            return Ok(clock);
        }
        self.insert_clock(conn, owner)?;
        self.read_clock(conn, owner)?.ok_or_else(|| SyncError::internal("owner clock row vanished"))
    }

    fn diffs_since(&self, conn: &mut DbConnection, owner: &str, cursor: i64) -> Result<Vec<Diff>, SyncError> {
        let d = conn.dialect();
        let sql = format!(
            "SELECT id, owner, logical_clock, {}, {} AS op, model, json_data FROM {} \
             WHERE owner = {} AND logical_clock >= {} ORDER BY logical_clock, seq",
            d.quote("utc_timestamp"),
            d.quote("type"),
            d.quote(self.tables.diffs()),
            d.param(1),
            d.param(2)
        );
        let rows: Vec<DiffRow> = with_inner!(conn, c => diesel::sql_query(&sql)
            .bind::<Text, _>(owner)
            .bind::<BigInt, _>(cursor)
            .load(c))
        .map_err(db)?;
        rows.into_iter().map(DiffRow::into_diff).collect()
    }

    fn known_ids(&self, conn: &mut DbConnection, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        self.known_in(conn, owner, ids)
    }

    fn record(
        &self,
        conn: &mut DbConnection,
        owner: &str,
        stamp: i64,
        applied: &[Diff],
        dropped: &[&str],
    ) -> Result<(), SyncError> {
        let d = conn.dialect();
        let texts: Vec<String> =
            applied.iter().map(|diff| serde_json::to_string(&diff.data)).collect::<Result<_, _>>().map_err(SyncError::internal)?;
        let columns = format!(
            "id, owner, logical_clock, {}, {}, model, json_data, seq",
            d.quote("utc_timestamp"),
            d.quote("type")
        );
        for (chunk_no, chunk) in applied.chunks(CHUNK).enumerate() {
            let values = (0..chunk.len()).map(|i| format!("({})", d.params(i * 8 + 1, 8))).collect::<Vec<_>>();
            let sql = format!("INSERT INTO {} ({columns}) VALUES {}", d.quote(self.tables.diffs()), values.join(", "));
            let first = chunk_no * CHUNK;
            with_inner!(conn, c => {
                let mut query = diesel::sql_query(&sql).into_boxed();
                for (i, diff) in chunk.iter().enumerate() {
                    query = query
                        .bind::<Text, _>(diff.id.as_str())
                        .bind::<Text, _>(owner)
                        .bind::<BigInt, _>(stamp)
                        .bind::<BigInt, _>(diff.utc_timestamp)
                        .bind::<Text, _>(diff.op.as_str())
                        .bind::<Text, _>(diff.model.as_str())
                        .bind::<Text, _>(texts[first + i].as_str())
                        .bind::<Integer, _>((first + i) as i32);
                }
                query.execute(c)
            })
            .map_err(db)?;
        }
        for chunk in dropped.chunks(CHUNK) {
            let values = (0..chunk.len()).map(|i| format!("({})", d.params(i * 2 + 1, 2))).collect::<Vec<_>>();
            let sql = format!("INSERT INTO {} (owner, id) VALUES {}", d.quote(self.tables.dropped()), values.join(", "));
            with_inner!(conn, c => {
                let mut query = diesel::sql_query(&sql).into_boxed();
                for id in chunk {
                    query = query.bind::<Text, _>(owner).bind::<Text, _>(*id);
                }
                query.execute(c)
            })
            .map_err(db)?;
        }
        if applied.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "UPDATE {} SET logical_clock = {} WHERE owner = {}",
            d.quote(self.tables.clocks()),
            d.param(1),
            d.param(2)
        );
        with_inner!(conn, c => diesel::sql_query(&sql).bind::<BigInt, _>(stamp + 1).bind::<Text, _>(owner).execute(c))
            .map_err(db)?;
        Ok(())
    }
}
