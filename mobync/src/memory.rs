//! An in-memory store and synchronizer: real rows and a real diff log per
//! owner, kept in a `Mutex`. For unit tests and for trying the engine without
//! a database; nothing survives the process.
//!
//! ```
//! use mobync::memory::{MemoryModels, MemoryStore};
//! use mobync::protocol::{Diff, OperationType::*};
//! use mobync::Mobync;
//! use serde_json::json;
//!
//! let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
//! let create = Diff::new("d1", Create, "task", json!({"id": "r1", "title": "milk"})).at(0, 1);
//! engine.apply(&mut engine.store().conn(), 0, vec![create], &"alice".to_string()).unwrap();
//! let rows = engine.store().rows("alice");
//! assert_eq!(rows[&("task".to_string(), "r1".to_string())]["title"], "milk");
//! ```

use crate::engine::{KnownIds, Marks, Store, Synchronizer};
use crate::history::NetRow;
use crate::error::SyncError;
use crate::protocol::{Diff, JsonObject, OperationType};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// A row of the memory database.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    /// The owner the server set.
    pub owner: String,
    /// The row's fields as the client sent them (with `id`).
    pub data: JsonObject,
}

/// One owner's diff log and clock.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OwnerLog {
    /// The next stamp.
    pub clock: i64,
    /// Stored diffs in accepted order.
    pub diffs: Vec<Diff>,
    /// The ids of `diffs`, to look them up.
    pub stored: BTreeSet<String>,
    /// Ids the merge dropped, remembered for retries.
    pub dropped: BTreeSet<String>,
    /// Entries stamped below it are squashed into `net`.
    pub horizon: i64,
    /// Tombstones deleted below it are purged.
    pub purged: i64,
    /// The history below the horizon, one net row per (model, row id).
    pub net: BTreeMap<(String, String), NetRow>,
    /// Ids of squashed entries: their stamp and when they were squashed.
    pub squashed: BTreeMap<String, (i64, i64)>,
}

/// Everything the memory store holds; cloned to run a transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryDb {
    /// Rows by (model, row id).
    pub rows: BTreeMap<(String, String), MemoryRow>,
    /// Logs and clocks by owner.
    pub logs: BTreeMap<String, OwnerLog>,
}

/// The in-memory [`Store`]. A write transaction works on a copy that
/// replaces the state only when it succeeds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    db: Arc<Mutex<MemoryDb>>,
}

/// A "connection" to a [`MemoryStore`] ([`MemoryStore::conn`]): outside a
/// write transaction it reads the shared state; inside one it holds the
/// transaction's copy.
#[derive(Debug)]
pub struct MemoryConn {
    db: Arc<Mutex<MemoryDb>>,
    work: Option<MemoryDb>,
}

impl MemoryConn {
    /// Runs `f` on the state this connection sees: its transaction's copy,
    /// or the shared state.
    fn with<T>(&mut self, f: impl FnOnce(&mut MemoryDb) -> T) -> Result<T, SyncError> {
        match &mut self.work {
            Some(work) => Ok(f(work)),
            None => {
                let mut db = self.db.lock().map_err(|_| SyncError::internal("memory store mutex poisoned"))?;
                Ok(f(&mut db))
            }
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, MemoryDb>, SyncError> {
        self.db.lock().map_err(|_| SyncError::internal("memory store mutex poisoned"))
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> MemoryDb {
        self.db.lock().map(|db| db.clone()).unwrap_or_default()
    }

    /// A connection to this store.
    pub fn conn(&self) -> MemoryConn {
        MemoryConn { db: self.db.clone(), work: None }
    }

    /// `owner`'s rows by (model, row id), as the client sees them.
    pub fn rows(&self, owner: &str) -> BTreeMap<(String, String), JsonObject> {
        let db = self.snapshot();
        db.rows.into_iter().filter(|(_, row)| row.owner == owner).map(|(key, row)| (key, row.data)).collect()
    }
}

impl Store for MemoryStore {
    type Conn = MemoryConn;

    fn write<T>(&self, conn: &mut MemoryConn, f: impl FnOnce(&mut MemoryConn) -> Result<T, SyncError>) -> Result<T, SyncError> {
        let mut guard = self.lock()?;
        conn.work = Some(guard.clone());
        let out = f(conn);
        let work = conn.work.take();
        if let (Ok(_), Some(work)) = (&out, work) {
            *guard = work;
        }
        out
    }

    fn snapshot<T>(&self, conn: &mut MemoryConn, f: impl FnOnce(&mut MemoryConn) -> Result<T, SyncError>) -> Result<T, SyncError> {
        // Reads work on a copy taken at once: later writes do not show.
        let copy = self.lock()?.clone();
        let outer = conn.work.replace(copy);
        let out = f(conn);
        conn.work = outer;
        out
    }

    fn clock(&self, conn: &mut MemoryConn, owner: &str) -> Result<i64, SyncError> {
        conn.with(|db| db.logs.get(owner).map_or(0, |log| log.clock))
    }

    fn lock_clock(&self, conn: &mut MemoryConn, owner: &str) -> Result<i64, SyncError> {
        conn.with(|db| db.logs.entry(owner.to_owned()).or_default().clock)
    }

    fn diffs_between(&self, conn: &mut MemoryConn, owner: &str, from: i64, to: i64) -> Result<Vec<Diff>, SyncError> {
        conn.with(|db| {
            let Some(log) = db.logs.get(owner) else { return Vec::new() };
            let start = log.diffs.partition_point(|d| d.logical_clock < from);
            let end = log.diffs.partition_point(|d| d.logical_clock < to);
            log.diffs[start..end.max(start)].to_vec()
        })
    }

    fn known_ids(&self, conn: &mut MemoryConn, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        conn.with(|db| {
            let Some(log) = db.logs.get(owner) else { return KnownIds::default() };
            let squashed: std::collections::HashMap<String, i64> =
                ids.iter().filter_map(|id| log.squashed.get(*id).map(|(stamp, _)| (id.to_string(), *stamp))).collect();
            KnownIds {
                stored: ids
                    .iter()
                    .filter(|id| log.stored.contains(**id) || squashed.contains_key(**id))
                    .map(|id| id.to_string())
                    .collect(),
                dropped: ids.iter().filter(|id| log.dropped.contains(**id)).map(|id| id.to_string()).collect(),
                squashed,
            }
        })
    }

    fn record(
        &self,
        conn: &mut MemoryConn,
        owner: &str,
        stamp: i64,
        applied: &[Diff],
        dropped: &[&str],
    ) -> Result<(), SyncError> {
        conn.with(|db| {
            let log = db.logs.entry(owner.to_owned()).or_default();
            log.diffs.extend(applied.iter().cloned());
            log.stored.extend(applied.iter().map(|d| d.id.clone()));
            log.dropped.extend(dropped.iter().map(|id| id.to_string()));
            if !applied.is_empty() {
                log.clock = stamp + 1;
            }
        })
    }

    fn marks(&self, conn: &mut MemoryConn, owner: &str) -> Result<Option<Marks>, SyncError> {
        conn.with(|db| {
            db.logs.get(owner).map(|l| Marks {
                clock: l.clock,
                horizon: l.horizon,
                purged: l.purged,
            })
        })
    }

    fn net_rows(
        &self,
        conn: &mut MemoryConn,
        owner: &str,
        since: i64,
        rows: &[(&str, &str)],
    ) -> Result<Vec<NetRow>, SyncError> {
        conn.with(|db| {
            let Some(log) = db.logs.get(owner) else {
                return Vec::new();
            };
            log.net
                .values()
                .filter(|row| {
                    row.last_clock >= since || rows.contains(&(row.model.as_str(), row.id.as_str()))
                })
                .cloned()
                .collect()
        })
    }

    fn log_chunk(
        &self,
        conn: &mut MemoryConn,
        owner: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<(Vec<Diff>, i64), SyncError> {
        let all = self.diffs_between(conn, owner, from, to)?;
        let (end, left) = crate::engine::whole_stamps(&all, limit);
        Ok((all[..end].to_vec(), left.unwrap_or(to)))
    }

    fn squash(
        &self,
        conn: &mut MemoryConn,
        owner: &str,
        rows: &[NetRow],
        squashed: &[(&str, i64)],
        horizon: i64,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        conn.with(|db| {
            let log = db.logs.entry(owner.to_owned()).or_default();
            for row in rows {
                log.net
                    .insert((row.model.clone(), row.id.clone()), row.clone());
            }
            for (id, stamp) in squashed {
                log.stored.remove(*id);
                log.squashed.insert(id.to_string(), (*stamp, now_ms));
            }
            log.diffs.retain(|d| d.logical_clock >= horizon);
            log.horizon = horizon;
        })
    }

    fn forget_squashed(
        &self,
        conn: &mut MemoryConn,
        owner: &str,
        before_ms: i64,
    ) -> Result<usize, SyncError> {
        conn.with(|db| {
            let Some(log) = db.logs.get_mut(owner) else {
                return 0;
            };
            let before = log.squashed.len();
            log.squashed.retain(|_, (_, noted)| *noted >= before_ms);
            before - log.squashed.len()
        })
    }

    fn purge(&self, conn: &mut MemoryConn, owner: &str, below: i64) -> Result<usize, SyncError> {
        conn.with(|db| {
            let Some(log) = db.logs.get_mut(owner) else {
                return 0;
            };
            let before = log.net.len();
            log.net
                .retain(|_, row| row.deleted.as_ref().is_none_or(|d| d.clock >= below));
            log.purged = below;
            before - log.net.len()
        })
    }

    fn owners_behind(&self, conn: &mut MemoryConn, keep: i64, after: &str, limit: usize) -> Result<Vec<String>, SyncError> {
        conn.with(|db| {
            db.logs
                .iter()
                .filter(|(owner, log)| owner.as_str() > after && log.clock - log.horizon > keep)
                .take(limit)
                .map(|(owner, _)| owner.clone())
                .collect()
        })
    }

    fn young_tombstone(&self, conn: &mut MemoryConn, owner: &str, since_ms: i64) -> Result<Option<i64>, SyncError> {
        conn.with(|db| {
            let log = db.logs.get(owner)?;
            log.net.values().filter_map(|r| r.deleted.as_ref()).filter(|d| d.ts >= since_ms).map(|d| d.clock).min()
        })
    }

    fn entries(&self, conn: &mut MemoryConn, owner: &str) -> Result<(u64, u64), SyncError> {
        conn.with(|db| {
            db.logs
                .get(owner)
                .map_or((0, 0), |l| (l.diffs.len() as u64, l.net.len() as u64))
        })
    }
}

type Rule = Box<dyn Fn(&str, &Diff) -> Result<(), String> + Send + Sync>;

/// The in-memory [`Synchronizer`]: models declared by name and field names;
/// values are kept as JSON. An optional rule refuses diffs (`forbidden`).
#[derive(Default)]
pub struct MemoryModels {
    models: BTreeMap<String, BTreeSet<String>>,
    rule: Option<Rule>,
}

impl MemoryModels {
    /// No models yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares `model` with its fields (besides `id`).
    pub fn model<I, F>(mut self, model: &str, fields: I) -> Self
    where
        I: IntoIterator<Item = F>,
        F: Into<String>,
    {
        self.models.insert(model.to_owned(), fields.into_iter().map(Into::into).collect());
        self
    }

    /// A rule every create and update must pass: `Err(reason)` refuses it.
    pub fn rule(mut self, rule: impl Fn(&str, &Diff) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.rule = Some(Box::new(rule));
        self
    }

    fn owned_row<'a>(db: &'a mut MemoryDb, owner: &str, diff: &Diff) -> Result<&'a mut MemoryRow, SyncError> {
        db.rows
            .get_mut(&(diff.model.clone(), diff.row_id().to_owned()))
            .filter(|row| row.owner == owner)
            .ok_or_else(|| SyncError::invalid_diff(format!("no {} with id {:?}", diff.model, diff.row_id())))
    }

    fn run_rule(&self, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        match &self.rule {
            Some(rule) => rule(owner, diff).map_err(SyncError::forbidden),
            None => Ok(()),
        }
    }

    fn write(db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        let key = (diff.model.clone(), diff.row_id().to_owned());
        match diff.op {
            OperationType::Create => {
                if db.rows.contains_key(&key) {
                    return Err(SyncError::invalid_diff(format!("{} with id {:?} already exists", crate::__private_0_1::a(&key.0), key.1)));
                }
                db.rows.insert(key, MemoryRow { owner: owner.to_owned(), data: diff.data.clone() });
            }
            OperationType::Update => {
                let row = Self::owned_row(db, owner, diff)?;
                for (field, value) in diff.data.iter().filter(|(k, _)| k.as_str() != "id") {
                    row.data.insert(field.clone(), value.clone());
                }
            }
            OperationType::Delete => {
                Self::owned_row(db, owner, diff)?;
                db.rows.remove(&key);
            }
        }
        Ok(())
    }
}

impl Synchronizer<MemoryConn> for MemoryModels {
    type Owner = String;

    fn check(&self, diff: &Diff) -> Result<(), SyncError> {
        let fields = self
            .models
            .get(&diff.model)
            .ok_or_else(|| SyncError::invalid_diff(format!("unknown model {:?}", diff.model)))?;
        if diff.op == OperationType::Delete {
            return match diff.data.keys().find(|k| k.as_str() != "id") {
                Some(key) => Err(SyncError::invalid_diff(format!("a delete has only `id`, not {key:?}"))),
                None => Ok(()),
            };
        }
        if let Some(unknown) = diff.data.keys().find(|k| k.as_str() != "id" && !fields.contains(*k)) {
            return Err(SyncError::invalid_diff(format!("{} has no field {unknown:?}", diff.model)));
        }
        if diff.op == OperationType::Create {
            if let Some(missing) = fields.iter().find(|f| !diff.data.contains_key(*f)) {
                return Err(SyncError::invalid_diff(format!("the create of a {} lacks {missing:?}", diff.model)));
            }
        }
        Ok(())
    }

    fn read(&self, conn: &mut MemoryConn, owner: &String, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError> {
        let key = (model.to_owned(), id.to_owned());
        conn.with(|db| db.rows.get(&key).filter(|row| &row.owner == owner).map(|row| row.data.clone()))
    }

    fn validate_all(&self, conn: &mut MemoryConn, owner: &String, diffs: &[Diff]) -> Result<(), SyncError> {
        let db = conn.work.as_mut().ok_or_else(|| SyncError::internal("validate_all outside a transaction"))?;
        for diff in diffs {
            let checked = match diff.op {
                OperationType::Create => self.run_rule(owner, diff),
                OperationType::Update => Self::owned_row(db, owner, diff).and_then(|_| self.run_rule(owner, diff)),
                OperationType::Delete => Ok(()),
            };
            checked.map_err(|e| e.with_diff(diff.id.clone()))?;
        }
        Ok(())
    }

    fn write_all(&self, conn: &mut MemoryConn, owner: &String, diffs: &[Diff]) -> Result<(), SyncError> {
        let db = conn.work.as_mut().ok_or_else(|| SyncError::internal("write_all outside a transaction"))?;
        for diff in diffs {
            Self::write(db, owner, diff).map_err(|e| e.with_diff(diff.id.clone()))?;
        }
        Ok(())
    }
}
