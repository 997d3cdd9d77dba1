//! The compacted history on Diesel: net rows, squashed ids and the
//! horizons, for [`super::DieselStore`]'s [`Store`](crate::Store) methods.

use super::{Bind, Dialect, LogConnection, Tables};
use crate::engine::Marks;
use crate::error::SyncError;
use crate::history::{NetRow, Stamp};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

/// Net rows per statement (12 binds each).
const ROWS: usize = 50;

#[derive(QueryableByName)]
struct MarksRow {
    #[diesel(sql_type = BigInt)]
    clock: i64,
    #[diesel(sql_type = BigInt)]
    horizon: i64,
    #[diesel(sql_type = BigInt)]
    purged: i64,
}

#[derive(QueryableByName)]
struct CountsRow {
    #[diesel(sql_type = BigInt)]
    log: i64,
    #[diesel(sql_type = BigInt)]
    net: i64,
}

#[derive(QueryableByName)]
struct NetSql {
    #[diesel(sql_type = Text)]
    model: String,
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_clock: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    created_ts: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    created_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    deleted_clock: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    deleted_ts: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    deleted_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    born: Option<i64>,
    #[diesel(sql_type = Text)]
    fields: String,
    #[diesel(sql_type = BigInt)]
    last_clock: i64,
}

fn stamp(clock: Option<i64>, ts: Option<i64>, id: Option<String>) -> Option<Stamp> {
    Some(Stamp { clock: clock?, ts: ts?, id: id? })
}

impl NetSql {
    fn into_row(self) -> Result<NetRow, SyncError> {
        let fields = NetRow::parse_fields(&self.fields)
            .map_err(|err| SyncError::internal(format!("net row {}/{} has bad fields: {err}", self.model, self.row_id)))?;
        Ok(NetRow {
            created: stamp(self.created_clock, self.created_ts, self.created_id),
            deleted: stamp(self.deleted_clock, self.deleted_ts, self.deleted_id),
            born: self.born,
            fields,
            last_clock: self.last_clock,
            model: self.model,
            id: self.row_id,
        })
    }
}

const COLUMNS: &str = "model, row_id, created_clock, created_ts, created_id, deleted_clock, deleted_ts, deleted_id, \
                       born, fields, last_clock";

pub(super) fn marks<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str) -> Result<Option<Marks>, SyncError> {
    read_marks(t, conn, owner, false)
}

/// [`marks`], locking the clock row until the write transaction ends
/// (`FOR UPDATE`; SQLite's write transaction holds its one lock already).
/// A locking read only waits: whatever fails it on a live connection is
/// the wait's (a lock timeout, a deadlock, a cancel).
pub(super) fn locked_marks<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str) -> Result<Option<Marks>, SyncError> {
    read_marks(t, conn, owner, true)
}

fn read_marks<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str, lock: bool) -> Result<Option<Marks>, SyncError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT logical_clock AS clock, horizon, purged FROM {} WHERE owner = {}{}",
        d.quote(t.clocks()),
        d.param(1),
        if lock && d != Dialect::Sqlite { " FOR UPDATE" } else { "" }
    );
    let rows: Vec<MarksRow> = match conn.load(&sql, &[Bind::Text(owner)]) {
        Ok(rows) => rows,
        Err(e) if lock && d != Dialect::Sqlite => return Err(SyncError::database_waiting(e)),
        Err(e) => return Err(super::failed(conn, e)),
    };
    Ok(rows.first().map(|r| Marks { clock: r.clock, horizon: r.horizon, purged: r.purged }))
}

pub(super) fn net_rows<C: LogConnection>(
    t: &Tables,
    conn: &mut C,
    owner: &str,
    since: i64,
    keys: &[(&str, &str)],
) -> Result<Vec<NetRow>, SyncError> {
    let d = conn.dialect();
    let table = d.quote(t.net());
    let mut found: Vec<NetSql> = Vec::new();
    if since != i64::MAX {
        conn.each_row(&since_sql(d, &table), &[Bind::Text(owner), Bind::BigInt(since)], &mut |row: NetSql| {
            found.push(row);
            Ok(())
        })?;
    }
    let mut seen: std::collections::HashSet<(String, String)> =
        found.iter().map(|r| (r.model.clone(), r.row_id.clone())).collect();
    for chunk in keys.chunks(ROWS) {
        let wanted: Vec<&(&str, &str)> = chunk.iter().filter(|(m, r)| !seen.contains(&(m.to_string(), r.to_string()))).collect();
        if wanted.is_empty() {
            continue;
        }
        let terms: Vec<String> = (0..wanted.len())
            .map(|i| format!("(model = {} AND row_id = {})", d.param(2 + 2 * i), d.param(3 + 2 * i)))
            .collect();
        let sql = format!("SELECT {COLUMNS} FROM {table} WHERE owner = {} AND ({})", d.param(1), terms.join(" OR "));
        let mut binds = vec![Bind::Text(owner)];
        binds.extend(wanted.iter().flat_map(|(m, r)| [Bind::Text(m), Bind::Text(r)]));
        for row in conn.load::<NetSql>(&sql, &binds).map_err(|e| super::failed(conn, e))? {
            if seen.insert((row.model.clone(), row.row_id.clone())) {
                found.push(row);
            }
        }
    }
    found.into_iter().map(NetSql::into_row).collect()
}

/// The net rows of an owner (bind 1) changed at or after bind 2.
fn since_sql(d: Dialect, table: &str) -> String {
    format!("SELECT {COLUMNS} FROM {table} WHERE owner = {} AND last_clock >= {} ORDER BY model, row_id", d.param(1), d.param(2))
}

/// Hands `owner`'s net rows changed at or after `since` to `each` as they
/// are read.
pub(super) fn each_net_row<C: LogConnection>(
    t: &Tables,
    conn: &mut C,
    owner: &str,
    since: i64,
    each: &mut dyn FnMut(NetRow) -> Result<(), SyncError>,
) -> Result<(), SyncError> {
    let d = conn.dialect();
    let table = d.quote(t.net());
    conn.each_row(&since_sql(d, &table), &[Bind::Text(owner), Bind::BigInt(since)], &mut |row: NetSql| each(row.into_row()?))
}

/// Replaces the net rows of `rows`' keys, keeps the squashed ids, deletes
/// the log below `horizon` and moves the horizon (in the caller's write
/// transaction, under the owner's lock).
pub(super) fn squash<C: LogConnection>(
    t: &Tables,
    conn: &mut C,
    owner: &str,
    rows: &[NetRow],
    squashed: &[(&str, i64)],
    horizon: i64,
    now_ms: i64,
) -> Result<(), SyncError> {
    let d = conn.dialect();
    let net = d.quote(t.net());
    for chunk in rows.chunks(ROWS) {
        let terms: Vec<String> = (0..chunk.len())
            .map(|i| format!("(model = {} AND row_id = {})", d.param(2 + 2 * i), d.param(3 + 2 * i)))
            .collect();
        let sql = format!("DELETE FROM {net} WHERE owner = {} AND ({})", d.param(1), terms.join(" OR "));
        let mut binds = vec![Bind::Text(owner)];
        binds.extend(chunk.iter().flat_map(|r| [Bind::Text(&r.model), Bind::Text(&r.id)]));
        conn.execute(&sql, &binds).map_err(|e| super::failed(conn, e))?;
        let fields: Vec<String> = chunk.iter().map(NetRow::fields_json).collect();
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", d.params(i * 12 + 1, 12))).collect();
        let sql = format!("INSERT INTO {net} (owner, {COLUMNS}) VALUES {}", values.join(", "));
        let mut binds = Vec::with_capacity(chunk.len() * 12);
        for (row, fields) in chunk.iter().zip(&fields) {
            let created = row.created.as_ref();
            let deleted = row.deleted.as_ref();
            binds.extend([
                Bind::Text(owner),
                Bind::Text(&row.model),
                Bind::Text(&row.id),
                Bind::OptBigInt(created.map(|s| s.clock)),
                Bind::OptBigInt(created.map(|s| s.ts)),
                Bind::OptText(created.map(|s| s.id.as_str())),
                Bind::OptBigInt(deleted.map(|s| s.clock)),
                Bind::OptBigInt(deleted.map(|s| s.ts)),
                Bind::OptText(deleted.map(|s| s.id.as_str())),
                Bind::OptBigInt(row.born),
                Bind::Text(fields),
                Bind::BigInt(row.last_clock),
            ]);
        }
        conn.execute(&sql, &binds).map_err(|e| super::failed(conn, e))?;
    }
    let squashed_table = d.quote(t.squashed());
    for chunk in squashed.chunks(200) {
        let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", d.params(i * 4 + 1, 4))).collect();
        let verb = if d == Dialect::Mysql { "REPLACE" } else { "INSERT" };
        let mut sql = format!("{verb} INTO {squashed_table} (owner, id, logical_clock, squashed_at) VALUES {}", values.join(", "));
        if d != Dialect::Mysql {
            sql.push_str(" ON CONFLICT (owner, id) DO UPDATE SET logical_clock = excluded.logical_clock, squashed_at = excluded.squashed_at");
        }
        let binds: Vec<Bind> = chunk
            .iter()
            .flat_map(|(id, clock)| [Bind::Text(owner), Bind::Text(id), Bind::BigInt(*clock), Bind::BigInt(now_ms)])
            .collect();
        conn.execute(&sql, &binds).map_err(|e| super::failed(conn, e))?;
    }
    let sql = format!("DELETE FROM {} WHERE owner = {} AND logical_clock < {}", d.quote(t.diffs()), d.param(1), d.param(2));
    conn.execute(&sql, &[Bind::Text(owner), Bind::BigInt(horizon)]).map_err(|e| super::failed(conn, e))?;
    let sql = format!("UPDATE {} SET horizon = {} WHERE owner = {}", d.quote(t.clocks()), d.param(1), d.param(2));
    conn.execute(&sql, &[Bind::BigInt(horizon), Bind::Text(owner)]).map_err(|e| super::failed(conn, e))?;
    Ok(())
}

pub(super) fn forget_squashed<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str, before_ms: i64) -> Result<usize, SyncError> {
    let d = conn.dialect();
    let sql = format!("DELETE FROM {} WHERE owner = {} AND squashed_at < {}", d.quote(t.squashed()), d.param(1), d.param(2));
    conn.execute(&sql, &[Bind::Text(owner), Bind::BigInt(before_ms)]).map_err(|e| super::failed(conn, e))
}

pub(super) fn purge<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str, below: i64) -> Result<usize, SyncError> {
    let d = conn.dialect();
    let sql = format!(
        "DELETE FROM {} WHERE owner = {} AND deleted_clock IS NOT NULL AND deleted_clock < {}",
        d.quote(t.net()),
        d.param(1),
        d.param(2)
    );
    let gone = conn.execute(&sql, &[Bind::Text(owner), Bind::BigInt(below)]).map_err(|e| super::failed(conn, e))?;
    let sql = format!("UPDATE {} SET purged = {} WHERE owner = {}", d.quote(t.clocks()), d.param(1), d.param(2));
    conn.execute(&sql, &[Bind::BigInt(below), Bind::Text(owner)]).map_err(|e| super::failed(conn, e))?;
    Ok(gone)
}

pub(super) fn entries<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str) -> Result<(u64, u64), SyncError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM {} WHERE owner = {}) AS log, (SELECT COUNT(*) FROM {} WHERE owner = {}) AS net",
        d.quote(t.diffs()),
        d.param(1),
        d.quote(t.net()),
        d.param(2)
    );
    let rows: Vec<CountsRow> = conn.load(&sql, &[Bind::Text(owner), Bind::Text(owner)]).map_err(|e| super::failed(conn, e))?;
    let row = rows.first().ok_or_else(|| SyncError::internal("no count"))?;
    Ok((row.log as u64, row.net as u64))
}

#[derive(QueryableByName)]
struct OwnerRow {
    #[diesel(sql_type = Text)]
    owner: String,
}

pub(super) fn owners_behind<C: LogConnection>(
    t: &Tables,
    conn: &mut C,
    keep: i64,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, SyncError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT owner FROM {} WHERE owner > {} AND logical_clock - horizon > {} ORDER BY owner LIMIT {limit}",
        d.quote(t.clocks()),
        d.param(1),
        d.param(2)
    );
    let rows: Vec<OwnerRow> = conn.load(&sql, &[Bind::Text(after), Bind::BigInt(keep)]).map_err(|e| super::failed(conn, e))?;
    Ok(rows.into_iter().map(|r| r.owner).collect())
}

#[derive(QueryableByName)]
struct MaybeNumber {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

pub(super) fn young_tombstone<C: LogConnection>(t: &Tables, conn: &mut C, owner: &str, since_ms: i64) -> Result<Option<i64>, SyncError> {
    let d = conn.dialect();
    let sql = format!(
        "SELECT MIN(deleted_clock) AS n FROM {} WHERE owner = {} AND deleted_clock IS NOT NULL AND deleted_ts >= {}",
        d.quote(t.net()),
        d.param(1),
        d.param(2)
    );
    let rows: Vec<MaybeNumber> = conn.load(&sql, &[Bind::Text(owner), Bind::BigInt(since_ms)]).map_err(|e| super::failed(conn, e))?;
    Ok(rows.first().and_then(|r| r.n))
}
