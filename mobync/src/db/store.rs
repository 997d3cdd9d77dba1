//! The diff log and per-owner clocks over Diesel: the [`Store`] of the
//! Diesel backends, on any [`LogConnection`].

use super::conn::MAX_CACHED_BINDS;
use super::{history, Bind, Dialect, DiffRow, KnownRow, LogConnection, NumberRow, Tables};
use crate::history::NetRow;
use crate::engine::{KnownIds, Marks, Store};
use crate::error::{DbFault, SyncError};
use crate::observe::Report;
use crate::protocol::{Diff, OperationType};
use super::group::{Group, GroupStats, Kept};
use std::marker::PhantomData;
use std::ops::DerefMut;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Rows per multi-row INSERT and ids per `IN (...)`: far below every
/// backend's bind limit.
const CHUNK: usize = 200;

/// The [`Store`] on connections of type `C`: the diff log, the clocks and
/// the dropped ids in `tables`; a sync's writes are one transaction, and the
/// owner's clock row is locked (`SELECT ... FOR UPDATE`; SQLite: `BEGIN
/// IMMEDIATE`) for its duration.
pub struct DieselStore<C> {
    tables: Tables,
    sqlite_writer: Mutex<()>,
    group: OnceLock<Group<C>>,
    _conn: PhantomData<fn(&mut C)>,
}

impl<C> DieselStore<C> {
    /// A store on `tables` (created by [`super::migrations::run`]).
    pub fn new(tables: Tables) -> Self {
        DieselStore { tables, sqlite_writer: Mutex::new(()), group: OnceLock::new(), _conn: PhantomData }
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}

fn db(err: diesel::result::Error) -> SyncError {
    SyncError::database(err)
}

fn into_diff(row: DiffRow) -> Result<Diff, SyncError> {
    let op = OperationType::parse(&row.op)
        .ok_or_else(|| SyncError::internal(format!("diff {} has type {:?}", row.id, row.op)))?;
    let data = serde_json::from_str(&row.json_data)
        .map_err(|err| SyncError::internal(format!("diff {} has bad json_data: {err}", row.id)))?;
    Ok(Diff {
        id: row.id,
        owner: row.owner,
        logical_clock: row.logical_clock,
        utc_timestamp: row.utc_timestamp,
        op,
        model: row.model,
        data,
    })
}

impl<C: LogConnection> DieselStore<C> {
    fn read_clock(&self, conn: &mut C, owner: &str, lock: bool) -> Result<Option<i64>, SyncError> {
        let d = conn.dialect();
        let lock = if lock && d != Dialect::Sqlite { " FOR UPDATE" } else { "" };
        let sql =
            format!("SELECT logical_clock AS n FROM {} WHERE owner = {}{lock}", d.quote(self.tables.clocks()), d.param(1));
        // A locking read only waits: whatever fails it on a live connection
        // is the wait's (a lock timeout, a deadlock, a cancel).
        let rows: Vec<NumberRow> =
            conn.load(&sql, &[Bind::Text(owner)]).map_err(if lock.is_empty() { db } else { SyncError::database_waiting })?;
        Ok(rows.first().map(|r| r.n))
    }

    fn insert_clock(&self, conn: &mut C, owner: &str) -> Result<(), SyncError> {
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
        // Only takes the clock row's lock (the row is there or is made).
        conn.execute(&sql, &[Bind::Text(owner)]).map_err(SyncError::database_waiting)?;
        Ok(())
    }

    /// The log entries of an owner (bind 1) stamped from bind 2 up to bind 3
    /// (excluded), in accepted order, at most `limit`.
    fn log_sql(&self, d: Dialect, limit: Option<usize>) -> String {
        format!(
            "SELECT id, owner, logical_clock, {}, {} AS op, model, json_data FROM {} \
             WHERE owner = {} AND logical_clock >= {} AND logical_clock < {} ORDER BY logical_clock, seq{}",
            d.quote("utc_timestamp"),
            d.quote("type"),
            d.quote(self.tables.diffs()),
            d.param(1),
            d.param(2),
            d.param(3),
            limit.map_or(String::new(), |n| format!(" LIMIT {n}"))
        )
    }

    /// `INSERT` of `rows` rows of `width` binds each into `table (columns)`,
    /// keeping rows already there when `ignore_taken` (dropped ids).
    fn insert_sql(&self, d: Dialect, table: &str, columns: &str, rows: usize, width: usize, ignore_taken: bool) -> String {
        let values = (0..rows).map(|i| format!("({})", d.params(i * width + 1, width))).collect::<Vec<_>>().join(", ");
        let table = d.quote(table);
        match (ignore_taken, d) {
            (false, _) => format!("INSERT INTO {table} ({columns}) VALUES {values}"),
            (true, Dialect::Sqlite) => format!("INSERT OR IGNORE INTO {table} ({columns}) VALUES {values}"),
            (true, Dialect::Postgres) => format!("INSERT INTO {table} ({columns}) VALUES {values} ON CONFLICT DO NOTHING"),
            (true, Dialect::Mysql) => format!("INSERT IGNORE INTO {table} ({columns}) VALUES {values}"),
        }
    }
}

impl<C: LogConnection> DieselStore<C> {
    /// Notes in `known` the ids the known-ids query finds in the log, the
    /// dropped and the squashed: in each of the three tables, `owner = ?`
    /// and `member(n)` (the test of the ids, `n` its first placeholder),
    /// the owner and `binds` bound for each.
    fn load_known(
        &self,
        conn: &mut C,
        owner: &str,
        binds: &[Bind<'_>],
        member: impl Fn(usize) -> String,
        known: &mut KnownIds,
    ) -> Result<(), SyncError> {
        let d = conn.dialect();
        let width = binds.len() + 1;
        let parts = [(self.tables.diffs(), "s", "logical_clock"), (self.tables.dropped(), "d", "-1"), (self.tables.squashed(), "q", "logical_clock")];
        let sql = parts
            .iter()
            .enumerate()
            .map(|(i, (table, kind, n))| {
                let at = i * width + 1;
                format!("SELECT id, '{kind}' AS kind, {n} AS n FROM {} WHERE owner = {} AND {}", d.quote(table), d.param(at), member(at + 1))
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let all: Vec<Bind> = (0..parts.len()).flat_map(|_| std::iter::once(Bind::Text(owner)).chain(binds.iter().copied())).collect();
        for row in conn.load::<KnownRow>(&sql, &all).map_err(|e| super::failed(conn, e))? {
            match row.kind.as_str() {
                "s" => {
                    known.stored.insert(row.id);
                }
                "q" => {
                    known.squashed.insert(row.id.clone(), row.n);
                    known.stored.insert(row.id);
                }
                _ => {
                    known.dropped.insert(row.id);
                }
            }
        }
        Ok(())
    }

    /// Turns on group commit for this store's writes on SQLite: the write
    /// transactions of concurrent syncs share one transaction and one
    /// `COMMIT`, so one fsync (`synchronous = FULL`) makes a whole group
    /// durable. Each write is still all or nothing (a savepoint of its own:
    /// its error rolls back only its own changes) and returns only once
    /// the group's `COMMIT` ended: committed, or an error (503) and nothing
    /// of the group written. A write waits for at most 63 others.
    ///
    /// `spare` is an idle connection of the database the store keeps from
    /// now on (the fairing checks one out of its pool for good): the
    /// writer, on which every group runs, so that its page cache stays
    /// warm. A write works on the writer and leaves with its own connection
    /// in `conn`, except after the writer was lost (a failed `COMMIT`, a
    /// panic): the write that ended the group then leaves with the lost
    /// writer, marked for its pool to drop, and the connection it brought
    /// is the writer from then on. So every connection this store's writes
    /// are given must be to that database, with the same settings, as the
    /// connections of one pool are.
    ///
    /// False, and group commit stays off, when `spare` is not SQLite, when
    /// the schema defers a constraint to `COMMIT` (`INITIALLY DEFERRED`: a
    /// violation found there would fail every write of the group), or when
    /// it is on already.
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// use mobync::db::{self, DbConnection, DieselStore, Tables};
    /// # let dir = std::env::temp_dir().join(format!("mobync-group-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir).unwrap();
    /// # let url = dir.join("g.sqlite").display().to_string();
    /// let pool = db::pool::<DbConnection>(&url).unwrap();
    /// db::migrations::run(&mut *pool.get().unwrap(), &Tables::default()).unwrap();
    /// let store = DieselStore::<DbConnection>::new(Tables::default());
    /// assert!(store.group_commit(pool.get().unwrap()));
    /// let mut conn = pool.get().unwrap();
    /// store.transaction(&mut *conn, |conn| db::LogConnection::batch(conn, "SELECT 1").map_err(mobync::SyncError::database)).unwrap();
    /// assert_eq!(store.group_stats().map(|s| (s.groups, s.writes)), Some((1, 1)));
    /// # }
    /// ```
    pub fn group_commit(&self, spare: impl DerefMut<Target = C> + Send + 'static) -> bool {
        let mut spare: Kept<C> = Box::new(spare);
        if spare.dialect() != Dialect::Sqlite || self.group.get().is_some() {
            return false;
        }
        let deferred = "SELECT count(*) AS n FROM sqlite_master WHERE sql LIKE '%INITIALLY DEFERRED%'";
        match spare.load::<NumberRow>(deferred, &[]) {
            Ok(rows) if rows.first().is_some_and(|r| r.n == 0) => self.group.set(Group::new(spare)).is_ok(),
            Ok(_) => {
                tracing::info!("mobync: group commit is off: the schema defers a constraint to COMMIT");
                false
            }
            Err(err) => {
                tracing::warn!("mobync: group commit is off: reading the schema failed: {err}");
                false
            }
        }
    }

    /// What group commit did so far; `None` while it is off.
    #[doc(hidden)]
    pub fn group_stats(&self) -> Option<GroupStats> {
        self.group.get().map(Group::stats)
    }

    /// Runs `f` in a write transaction on `conn` (what [`Store::write`]
    /// does), for callers with errors of their own (the hub): committed if
    /// it returns `Ok`, rolled back if it returns `Err`.
    pub fn transaction<T, E: From<SyncError>>(&self, conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, E>) -> Result<T, E> {
        self.transaction_inner(conn, f)
    }

    /// [`transaction`](DieselStore::transaction), `f` noting in a
    /// [`Report`] what its work counts (its tallies, the diffs of the
    /// engine's reports it absorbs): emitted once the transaction
    /// committed, never if it rolled back. The report is a value the
    /// transaction owns: a transaction run inside `f` has its own.
    pub fn transaction_noting<T, E: From<SyncError>>(
        &self,
        conn: &mut C,
        f: impl FnOnce(&mut C, &mut Report) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut report = Report::default();
        let value = self.transaction_inner(conn, |conn| f(conn, &mut report))?;
        report.emit();
        Ok(value)
    }

    fn transaction_inner<T, E: From<SyncError>>(&self, conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, E>) -> Result<T, E> {
        if let Some(group) = self.group.get().filter(|_| conn.dialect() == Dialect::Sqlite) {
            return group.write(conn, f);
        }
        // SQLite has one writer at a time. This process's writers queue on a
        // mutex (a waiting thread wakes as soon as it is its turn) rather
        // than in SQLite's busy handler, which polls with sleeps of up to
        // 100 ms; other processes still meet the busy timeout.
        let _turn = (conn.dialect() == Dialect::Sqlite)
            .then(|| self.sqlite_writer.lock().unwrap_or_else(PoisonError::into_inner));
        // `BEGIN IMMEDIATE` waits for SQLite's write lock; elsewhere a BEGIN
        // fails only on a lost connection.
        conn.begin(true).map_err(|e| E::from(SyncError::database_waiting(e)))?;
        match f(conn) {
            Ok(value) => {
                conn.commit().map_err(|e| E::from(super::failed(conn, e)))?;
                Ok(value)
            }
            Err(err) => match conn.rollback() {
                Ok(()) => Err(err),
                // A rollback fails only on a connection that is gone (Diesel
                // then holds it broken, and its pool drops it): whatever
                // failed before, that is the answer.
                Err(rollback) => Err(E::from(SyncError::of_fault(DbFault::Lost, format!("rollback failed: {rollback}")))),
            },
        }
    }
}

impl<C: LogConnection> Store for DieselStore<C> {
    type Conn = C;

    fn write<T>(&self, conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, SyncError>) -> Result<T, SyncError> {
        self.transaction(conn, f)
    }

    fn clock(&self, conn: &mut C, owner: &str) -> Result<i64, SyncError> {
        Ok(self.read_clock(conn, owner, false)?.unwrap_or(0))
    }

    fn lock_clock(&self, conn: &mut C, owner: &str) -> Result<i64, SyncError> {
        if conn.dialect() == Dialect::Mysql {
            self.insert_clock(conn, owner)?;
        }
        if let Some(clock) = self.read_clock(conn, owner, true)? {
            return Ok(clock);
        }
        self.insert_clock(conn, owner)?;
        self.read_clock(conn, owner, true)?.ok_or_else(|| SyncError::internal("owner clock row vanished"))
    }

    fn diffs_between(&self, conn: &mut C, owner: &str, from: i64, to: i64) -> Result<Vec<Diff>, SyncError> {
        let mut diffs = Vec::new();
        self.each_logged(conn, owner, from, to, &mut |diff| {
            diffs.push(diff);
            Ok(())
        })?;
        Ok(diffs)
    }

    fn each_logged(
        &self,
        conn: &mut C,
        owner: &str,
        from: i64,
        to: i64,
        each: &mut dyn FnMut(Diff) -> Result<(), SyncError>,
    ) -> Result<(), SyncError> {
        if from >= to {
            return Ok(());
        }
        let sql = self.log_sql(conn.dialect(), None);
        conn.each_diff(&sql, &[Bind::Text(owner), Bind::BigInt(from), Bind::BigInt(to)], &mut |row| each(into_diff(row)?))
    }

    fn each_net_row(
        &self,
        conn: &mut C,
        owner: &str,
        since: i64,
        each: &mut dyn FnMut(NetRow) -> Result<(), SyncError>,
    ) -> Result<(), SyncError> {
        history::each_net_row(&self.tables, conn, owner, since, each)
    }

    fn snapshot<T>(&self, conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, SyncError>) -> Result<T, SyncError> {
        conn.begin_snapshot().map_err(db)?;
        match f(conn) {
            Ok(value) => {
                conn.commit().map_err(db)?;
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = conn.rollback() {
                    tracing::error!("mobync: ending a read snapshot failed: {rollback}");
                }
                Err(err)
            }
        }
    }

    fn known_ids(&self, conn: &mut C, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        let d = conn.dialect();
        let mut known = KnownIds::default();
        if d == Dialect::Postgres && 3 * ids.len() + 3 > MAX_CACHED_BINDS {
            // Too many ids for IN lists that are kept prepared: one statement
            // for any number of them, kept prepared, the ids as one JSON
            // array unpacked into the array the key is probed with (IN lists
            // of hundreds of binds were parsed and planned at each
            // execution: 8.8 ms of a 1,000-create sync, BENCHMARKS.md §10).
            let list = serde_json::to_string(ids).map_err(SyncError::internal)?;
            let member = |at: usize| format!("id = ANY(ARRAY(SELECT jsonb_array_elements_text({}::jsonb)))", d.param(at));
            self.load_known(conn, owner, &[Bind::Text(&list)], member, &mut known)?;
            return Ok(known);
        }
        for chunk in ids.chunks(CHUNK) {
            let binds: Vec<Bind> = chunk.iter().map(|id| Bind::Text(id)).collect();
            self.load_known(conn, owner, &binds, |at| format!("id IN ({})", d.params(at, chunk.len())), &mut known)?;
        }
        Ok(known)
    }

    fn record(&self, conn: &mut C, owner: &str, stamp: i64, applied: &[Diff], dropped: &[&str]) -> Result<(), SyncError> {
        let d = conn.dialect();
        let texts: Vec<String> = applied
            .iter()
            .map(|diff| serde_json::to_string(&diff.data))
            .collect::<Result<_, _>>()
            .map_err(SyncError::internal)?;
        let columns =
            format!("id, owner, logical_clock, {}, {}, model, json_data, seq", d.quote("utc_timestamp"), d.quote("type"));
        if d == Dialect::Postgres && 8 * applied.len() > MAX_CACHED_BINDS {
            // Too many diffs for a VALUES list that is kept prepared: one
            // statement for any number of them, kept prepared, the rows as
            // one JSON array of arrays (VALUES lists of up to 1,600 binds
            // were parsed and planned at each execution).
            let rows: Vec<(&str, i64, &str, &str, &str, usize)> = applied
                .iter()
                .zip(&texts)
                .enumerate()
                .map(|(seq, (diff, text))| (diff.id.as_str(), diff.utc_timestamp, diff.op.as_str(), diff.model.as_str(), text.as_str(), seq))
                .collect();
            let rows = serde_json::to_string(&rows).map_err(SyncError::internal)?;
            let sql = format!(
                "INSERT INTO {} ({columns}) SELECT r->>0, $1, $2, (r->>1)::bigint, r->>2, r->>3, r->>4, (r->>5)::int \
                 FROM jsonb_array_elements($3::jsonb) AS r",
                d.quote(self.tables.diffs())
            );
            conn.execute(&sql, &[Bind::Text(owner), Bind::BigInt(stamp), Bind::Text(&rows)]).map_err(|e| super::failed(conn, e))?;
        } else {
            for (chunk_no, chunk) in applied.chunks(CHUNK).enumerate() {
                let sql = self.insert_sql(d, self.tables.diffs(), &columns, chunk.len(), 8, false);
                let first = chunk_no * CHUNK;
                let mut binds = Vec::with_capacity(chunk.len() * 8);
                for (i, diff) in chunk.iter().enumerate() {
                    binds.extend([
                        Bind::Text(&diff.id),
                        Bind::Text(owner),
                        Bind::BigInt(stamp),
                        Bind::BigInt(diff.utc_timestamp),
                        Bind::Text(diff.op.as_str()),
                        Bind::Text(&diff.model),
                        Bind::Text(&texts[first + i]),
                        Bind::Int((first + i) as i32),
                    ]);
                }
                conn.execute(&sql, &binds).map_err(|e| super::failed(conn, e))?;
            }
        }
        for chunk in dropped.chunks(CHUNK) {
            // Two retries of one request may drop the same ids at once.
            let sql = self.insert_sql(d, self.tables.dropped(), "owner, id", chunk.len(), 2, true);
            let binds: Vec<Bind> = chunk.iter().flat_map(|id| [Bind::Text(owner), Bind::Text(id)]).collect();
            conn.execute(&sql, &binds).map_err(|e| super::failed(conn, e))?;
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
        conn.execute(&sql, &[Bind::BigInt(stamp + 1), Bind::Text(owner)]).map_err(|e| super::failed(conn, e))?;
        Ok(())
    }

    fn marks(&self, conn: &mut C, owner: &str) -> Result<Option<Marks>, SyncError> {
        history::marks(&self.tables, conn, owner)
    }

    fn lock_marks(&self, conn: &mut C, owner: &str) -> Result<Marks, SyncError> {
        // One statement where the owner's clock row is there (every sync
        // but an owner's first): it locks the row and reads the marks.
        if conn.dialect() == Dialect::Mysql {
            self.insert_clock(conn, owner)?;
        }
        if let Some(marks) = history::locked_marks(&self.tables, conn, owner)? {
            return Ok(marks);
        }
        self.insert_clock(conn, owner)?;
        history::locked_marks(&self.tables, conn, owner)?.ok_or_else(|| SyncError::internal("owner clock row vanished"))
    }

    fn net_rows(&self, conn: &mut C, owner: &str, since: i64, rows: &[(&str, &str)]) -> Result<Vec<NetRow>, SyncError> {
        history::net_rows(&self.tables, conn, owner, since, rows)
    }

    fn log_chunk(&self, conn: &mut C, owner: &str, from: i64, to: i64, limit: usize) -> Result<(Vec<Diff>, i64), SyncError> {
        let mut read = |from: i64, to: i64, limit: Option<usize>| -> Result<Vec<Diff>, SyncError> {
            let mut diffs = Vec::new();
            let sql = self.log_sql(conn.dialect(), limit);
            conn.each_diff(&sql, &[Bind::Text(owner), Bind::BigInt(from), Bind::BigInt(to)], &mut |row| {
                diffs.push(into_diff(row)?);
                Ok(())
            })?;
            Ok(diffs)
        };
        let mut diffs = read(from, to, Some(limit + 1))?;
        if diffs.len() <= limit {
            return Ok((diffs, to));
        }
        let last = diffs[limit].logical_clock;
        if last == diffs[0].logical_clock {
            // One stamp larger than a step: the whole stamp.
            return Ok((read(last, last + 1, None)?, last + 1));
        }
        diffs.retain(|diff| diff.logical_clock < last);
        Ok((diffs, last))
    }

    fn squash(
        &self,
        conn: &mut C,
        owner: &str,
        rows: &[NetRow],
        squashed: &[(&str, i64)],
        horizon: i64,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        history::squash(&self.tables, conn, owner, rows, squashed, horizon, now_ms)
    }

    fn forget_squashed(&self, conn: &mut C, owner: &str, before_ms: i64) -> Result<usize, SyncError> {
        history::forget_squashed(&self.tables, conn, owner, before_ms)
    }

    fn purge(&self, conn: &mut C, owner: &str, below: i64) -> Result<usize, SyncError> {
        history::purge(&self.tables, conn, owner, below)
    }

    fn entries(&self, conn: &mut C, owner: &str) -> Result<(u64, u64), SyncError> {
        history::entries(&self.tables, conn, owner)
    }

    fn owners_behind(&self, conn: &mut C, keep: i64, after: &str, limit: usize) -> Result<Vec<String>, SyncError> {
        history::owners_behind(&self.tables, conn, keep, after, limit)
    }

    fn young_tombstone(&self, conn: &mut C, owner: &str, since_ms: i64) -> Result<Option<i64>, SyncError> {
        history::young_tombstone(&self.tables, conn, owner, since_ms)
    }
}
