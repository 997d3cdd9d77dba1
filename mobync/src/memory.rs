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
//! engine.apply(0, vec![create], "alice").unwrap();
//! let rows = engine.store().rows("alice");
//! assert_eq!(rows[&("task".to_string(), "r1".to_string())]["title"], "milk");
//! ```

use crate::engine::{KnownIds, Store, Synchronizer};
use crate::error::SyncError;
use crate::protocol::{Diff, JsonObject, OperationType};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, MutexGuard};

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
    /// Ids the merge dropped, remembered for retries.
    pub dropped: BTreeSet<String>,
}

/// Everything the memory store holds; cloned to run a transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryDb {
    /// Rows by (model, row id).
    pub rows: BTreeMap<(String, String), MemoryRow>,
    /// Logs and clocks by owner.
    pub logs: BTreeMap<String, OwnerLog>,
}

/// The in-memory [`Store`]. A transaction works on a copy that replaces the
/// state only when it succeeds.
#[derive(Debug, Default)]
pub struct MemoryStore {
    db: Mutex<MemoryDb>,
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

    /// `owner`'s rows by (model, row id), as the client sees them.
    pub fn rows(&self, owner: &str) -> BTreeMap<(String, String), JsonObject> {
        let db = self.snapshot();
        db.rows.into_iter().filter(|(_, row)| row.owner == owner).map(|(key, row)| (key, row.data)).collect()
    }
}

impl Store for MemoryStore {
    type Conn = MemoryDb;

    fn transaction<T>(&self, f: impl FnOnce(&mut MemoryDb) -> Result<T, SyncError>) -> Result<T, SyncError> {
        let mut guard = self.lock()?;
        let mut work = guard.clone();
        let out = f(&mut work)?;
        *guard = work;
        Ok(out)
    }

    fn lock_clock(&self, conn: &mut MemoryDb, owner: &str) -> Result<i64, SyncError> {
        Ok(conn.logs.entry(owner.to_owned()).or_default().clock)
    }

    fn diffs_since(&self, conn: &mut MemoryDb, owner: &str, cursor: i64) -> Result<Vec<Diff>, SyncError> {
        let Some(log) = conn.logs.get(owner) else { return Ok(Vec::new()) };
        let start = log.diffs.partition_point(|d| d.logical_clock < cursor);
        Ok(log.diffs[start..].to_vec())
    }

    fn known_ids(&self, conn: &mut MemoryDb, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError> {
        let Some(log) = conn.logs.get(owner) else { return Ok(KnownIds::default()) };
        let wanted: HashSet<&str> = ids.iter().copied().collect();
        Ok(KnownIds {
            stored: log.diffs.iter().filter(|d| wanted.contains(d.id.as_str())).map(|d| d.id.clone()).collect(),
            dropped: ids.iter().filter(|id| log.dropped.contains(**id)).map(|id| id.to_string()).collect(),
        })
    }

    fn record(
        &self,
        conn: &mut MemoryDb,
        owner: &str,
        stamp: i64,
        applied: &[Diff],
        dropped: &[&str],
    ) -> Result<(), SyncError> {
        let log = conn.logs.entry(owner.to_owned()).or_default();
        log.diffs.extend(applied.iter().cloned());
        log.dropped.extend(dropped.iter().map(|id| id.to_string()));
        if !applied.is_empty() {
            log.clock = stamp + 1;
        }
        Ok(())
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
}

impl Synchronizer<MemoryDb> for MemoryModels {
    fn check(&self, diff: &Diff) -> Result<(), SyncError> {
        let fields = self
            .models
            .get(&diff.model)
            .ok_or_else(|| SyncError::invalid_diff(format!("unknown model {:?}", diff.model)))?;
        if diff.op == OperationType::Delete {
            return Ok(());
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

    fn read(&self, db: &mut MemoryDb, owner: &str, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError> {
        Ok(db
            .rows
            .get(&(model.to_owned(), id.to_owned()))
            .filter(|row| row.owner == owner)
            .map(|row| row.data.clone()))
    }

    fn create(&self, db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        let key = (diff.model.clone(), diff.row_id().to_owned());
        if db.rows.contains_key(&key) {
            return Err(SyncError::invalid_diff(format!("a {} with id {:?} already exists", key.0, key.1)));
        }
        db.rows.insert(key, MemoryRow { owner: owner.to_owned(), data: diff.data.clone() });
        Ok(())
    }

    fn update(&self, db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        let row = Self::owned_row(db, owner, diff)?;
        for (key, value) in diff.data.iter().filter(|(k, _)| k.as_str() != "id") {
            row.data.insert(key.clone(), value.clone());
        }
        Ok(())
    }

    fn delete(&self, db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        Self::owned_row(db, owner, diff)?;
        db.rows.remove(&(diff.model.clone(), diff.row_id().to_owned()));
        Ok(())
    }

    fn validate_create(&self, _db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        self.run_rule(owner, diff)
    }

    fn validate_update(&self, db: &mut MemoryDb, owner: &str, diff: &Diff) -> Result<(), SyncError> {
        Self::owned_row(db, owner, diff)?;
        self.run_rule(owner, diff)
    }
}
