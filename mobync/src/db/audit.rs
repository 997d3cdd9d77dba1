//! The audit trail: what the diff log says of an owner, of one row, of one
//! sync. Who changed this row, when, from which sync? Every accepted change
//! is a diff in the log, stamped with the owner's clock at the sync that
//! brought it; these read it back. Read only, no lock.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use mobync::db::{audit, migrations, DbConnection, LogConnection, Tables};
//! # let dir = std::env::temp_dir().join(format!("mobync-audit-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let url = dir.join("a.sqlite").display().to_string();
//! let mut conn = DbConnection::open(&url).unwrap();
//! let tables = Tables::default();
//! migrations::run(&mut conn, &tables).unwrap();
//! assert_eq!(audit::owner(&mut conn, &tables, "ada").unwrap(), None); // never synced
//! let page = audit::row_history(&mut conn, &tables, "ada", "task", "r1", 0, 100).unwrap();
//! assert!(page.diffs.is_empty() && page.next.is_none());
//! # }
//! ```

use super::{history, Bind, DiffRow, LogConnection, NumberRow, Tables};
use crate::history::Stamp;
use crate::error::SyncError;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The largest page of [`row_history`].
pub const MAX_PAGE: usize = 1000;

/// An owner as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnerSummary {
    /// The owner's key.
    pub owner: String,
    /// Its clock: the stamp its next applied sync gets.
    pub clock: i64,
    /// Its log below this stamp is compacted into net rows (0: never).
    pub horizon: i64,
    /// Tombstones of rows deleted below this stamp are purged (0: never).
    pub purged: i64,
    /// Diffs in its log (at or above the horizon).
    pub diffs: i64,
    /// Net rows its compacted history holds (tombstones among them).
    pub net_rows: i64,
    /// Diff ids a merge dropped.
    pub dropped: i64,
    /// Its live rows by model, as the log has them (created, not deleted).
    pub rows: BTreeMap<String, i64>,
}

/// One diff of the log, as the audit answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The diff's id (the device made it).
    pub id: String,
    /// The stamp of the sync that applied it.
    pub logical_clock: i64,
    /// When the device made the change (ms since the epoch, its clock).
    pub utc_timestamp: i64,
    /// `create`, `update` or `delete`.
    #[serde(rename = "type")]
    pub op: String,
    /// The model.
    pub model: String,
    /// The fields it set (the row's id among them).
    pub fields: Value,
}

/// What a compaction kept of a row: its create, its delete, and per field
/// its value, the stamp of its last change and the winning (`utc_timestamp`,
/// diff id) of the updates that set it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compacted {
    /// The owner's horizon: the row's diffs stamped below it are squashed
    /// into this, those at or above it are in `diffs`.
    pub below: i64,
    /// Its create, `{"clock", "ts", "id"}`.
    pub created: Option<Stamp>,
    /// Its delete (a tombstone), if it is deleted.
    pub deleted: Option<Stamp>,
    /// Its fields: `{"<field>": {"v", "c", "w"?}}`.
    pub fields: Value,
}

/// A page of a row's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// Where its older history was compacted (on every page; `null` if it
    /// never was).
    pub compacted: Option<Compacted>,
    /// The diffs, oldest first.
    pub diffs: Vec<Entry>,
    /// The `offset` of the next page, if there is more.
    pub next: Option<usize>,
}

fn entry(row: DiffRow) -> Result<Entry, SyncError> {
    let fields = serde_json::from_str(&row.json_data)
        .map_err(|err| SyncError::internal(format!("diff {} has bad json_data: {err}", row.id)))?;
    Ok(Entry { id: row.id, logical_clock: row.logical_clock, utc_timestamp: row.utc_timestamp, op: row.op, model: row.model, fields })
}

/// The row id a diff's fields name.
fn row_id(fields: &Value) -> Option<String> {
    match fields.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `SELECT` of diff rows of `tables`' log, `WHERE` `condition`, oldest first.
fn select<C: LogConnection>(conn: &C, tables: &Tables, condition: &str) -> String {
    let d = conn.dialect();
    format!(
        "SELECT id, owner, logical_clock, {}, {} AS op, model, json_data FROM {} WHERE {condition} ORDER BY logical_clock, seq",
        d.quote("utc_timestamp"),
        d.quote("type"),
        d.quote(tables.diffs()),
    )
}

fn number<C: LogConnection>(conn: &mut C, sql: &str, binds: &[Bind<'_>]) -> Result<Option<i64>, SyncError> {
    Ok(conn.load::<NumberRow>(sql, binds).map_err(|e| super::failed(conn, e))?.first().map(|r| r.n))
}

/// `owner`'s clock, diff count, dropped count and live rows by model; `None`
/// if the log has never seen it. Reads the owner's whole log, one diff at
/// a time (memory grows with its rows, not its diffs).
pub fn owner<C: LogConnection>(conn: &mut C, tables: &Tables, owner: &str) -> Result<Option<OwnerSummary>, SyncError> {
    let d = conn.dialect();
    let clock_sql = format!("SELECT logical_clock AS n FROM {} WHERE owner = {}", d.quote(tables.clocks()), d.param(1));
    let Some(clock) = number(conn, &clock_sql, &[Bind::Text(owner)])? else { return Ok(None) };
    let marks = history::marks(tables, conn, owner)?.unwrap_or_default();
    let dropped_sql = format!("SELECT COUNT(*) AS n FROM {} WHERE owner = {}", d.quote(tables.dropped()), d.param(1));
    let dropped = number(conn, &dropped_sql, &[Bind::Text(owner)])?.unwrap_or(0);
    let mut diffs = 0;
    let mut live: HashMap<(String, String), bool> = HashMap::new();
    let net = history::net_rows(tables, conn, owner, i64::MIN, &[])?;
    let net_rows = net.len() as i64;
    for row in net {
        live.insert((row.model, row.id), row.deleted.is_none() && row.created.is_some());
    }
    let sql = select(conn, tables, &format!("owner = {}", d.param(1)));
    conn.each_diff(&sql, &[Bind::Text(owner)], &mut |row| {
        diffs += 1;
        let fields: Value = serde_json::from_str(&row.json_data).unwrap_or(Value::Null);
        if let Some(id) = row_id(&fields) {
            match row.op.as_str() {
                "create" => {
                    live.insert((row.model, id), true);
                }
                "delete" => {
                    live.insert((row.model, id), false);
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    let mut rows = BTreeMap::new();
    for ((model, _), alive) in live {
        let count = rows.entry(model).or_insert(0);
        *count += i64::from(alive);
    }
    Ok(Some(OwnerSummary {
        owner: owner.to_owned(),
        clock,
        horizon: marks.horizon,
        purged: marks.purged,
        diffs,
        net_rows,
        dropped,
        rows,
    }))
}

/// Every diff of `owner` that touched row `id` of `model`, oldest first:
/// `limit` (at most [`MAX_PAGE`]) of them after the first `offset`.
pub fn row_history<C: LogConnection>(
    conn: &mut C,
    tables: &Tables,
    owner: &str,
    model: &str,
    id: &str,
    offset: usize,
    limit: usize,
) -> Result<Page, SyncError> {
    let d = conn.dialect();
    let limit = limit.clamp(1, MAX_PAGE);
    // The id's text somewhere in the JSON narrows the scan; its `id` field
    // decides.
    let escaped: String = id.chars().flat_map(|c| if matches!(c, '%' | '_' | '!') { vec!['!', c] } else { vec![c] }).collect();
    let pattern = format!("%{escaped}%");
    let condition = format!("owner = {} AND model = {} AND json_data LIKE {} ESCAPE '!'", d.param(1), d.param(2), d.param(3));
    let sql = select(conn, tables, &condition);
    let (mut seen, mut diffs, mut more) = (0usize, Vec::new(), false);
    conn.each_diff(&sql, &[Bind::Text(owner), Bind::Text(model), Bind::Text(&pattern)], &mut |row| {
        if more {
            return Ok(());
        }
        let entry = entry(row)?;
        if row_id(&entry.fields).as_deref() != Some(id) {
            return Ok(());
        }
        seen += 1;
        if seen <= offset {
            return Ok(());
        }
        if diffs.len() == limit {
            more = true;
        } else {
            diffs.push(entry);
        }
        Ok(())
    })?;
    let below = history::marks(tables, conn, owner)?.map_or(0, |m| m.horizon);
    let compacted = history::net_rows(tables, conn, owner, i64::MAX, &[(model, id)])?.into_iter().next().map(|row| {
        let fields = serde_json::from_str(&row.fields_json()).unwrap_or(Value::Null);
        Compacted { below, created: row.created, deleted: row.deleted, fields }
    });
    Ok(Page { compacted, next: more.then_some(offset + limit), diffs })
}

/// The diffs one sync of `owner` applied: those stamped `stamp`, in the
/// order they were applied.
pub fn stamp<C: LogConnection>(conn: &mut C, tables: &Tables, owner: &str, stamp: i64) -> Result<Vec<Entry>, SyncError> {
    let d = conn.dialect();
    let sql = select(conn, tables, &format!("owner = {} AND logical_clock = {}", d.param(1), d.param(2)));
    let mut diffs = Vec::new();
    conn.each_diff(&sql, &[Bind::Text(owner), Bind::BigInt(stamp)], &mut |row| {
        diffs.push(entry(row)?);
        Ok(())
    })?;
    Ok(diffs)
}
