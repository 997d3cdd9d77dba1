//! The sync round trip: check, lock the owner's clock, merge, apply, log.
//!
//! [`Mobync`] is generic over where the rows live ([`Synchronizer`]) and
//! where the diff log and clocks live ([`Store`]); both work on the same
//! connection type, inside one transaction per sync.

use crate::error::SyncError;
use crate::merge::{merge_retried, Merge};
use crate::protocol::{Diff, JsonObject, OperationType, SyncResponse};
use std::collections::{HashMap, HashSet};

/// The diff log and the per-owner clocks, and the transactions a sync runs in.
pub trait Store: Send + Sync {
    /// The connection a transaction hands to the engine and the synchronizer.
    type Conn;

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled back
    /// (nothing changed) if it returns `Err`.
    fn transaction<T>(
        &self,
        f: impl FnOnce(&mut Self::Conn) -> Result<T, SyncError>,
    ) -> Result<T, SyncError>;

    /// Locks `owner`'s clock until the transaction ends, creating it at 0 if
    /// the owner is new, and returns its value.
    fn lock_clock(&self, conn: &mut Self::Conn, owner: &str) -> Result<i64, SyncError>;

    /// `owner`'s stored diffs stamped at or after `cursor`, in accepted order.
    fn diffs_since(&self, conn: &mut Self::Conn, owner: &str, cursor: i64) -> Result<Vec<Diff>, SyncError>;

    /// Which of `ids` an earlier request of `owner` already brought: stored
    /// in the log, or dropped by its merge.
    fn known_ids(&self, conn: &mut Self::Conn, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError>;

    /// Stores `applied` (already stamped with `stamp`, in order), remembers
    /// the `dropped` ids, and, if `applied` is not empty, advances `owner`'s
    /// clock to `stamp + 1`.
    fn record(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        stamp: i64,
        applied: &[Diff],
        dropped: &[&str],
    ) -> Result<(), SyncError>;
}

/// Diff ids an earlier request already brought (see [`Store::known_ids`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownIds {
    /// Applied and stored in the diff log.
    pub stored: HashSet<String>,
    /// Dropped by that request's merge.
    pub dropped: HashSet<String>,
}

impl KnownIds {
    /// Whether `id` is known either way.
    pub fn contains(&self, id: &str) -> bool {
        self.stored.contains(id) || self.dropped.contains(id)
    }
}

/// The app's side: its rows, by model name and JSON data, and its rules.
///
/// Every method gets the authenticated owner; a row of another owner must
/// look exactly like a row that does not exist.
pub trait Synchronizer<C>: Send + Sync {
    /// Checks a diff against the models without touching the database: the
    /// model is known, the fields are known and of the right type, a create
    /// has every field. Failures are `invalid_diff`.
    fn check(&self, diff: &Diff) -> Result<(), SyncError>;

    /// The row `id` of `model` if `owner` has it, as the JSON the client sent.
    fn read(&self, conn: &mut C, owner: &str, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError>;

    /// Creates the row of a create diff for `owner`.
    fn create(&self, conn: &mut C, owner: &str, diff: &Diff) -> Result<(), SyncError>;

    /// Sets the fields of an update diff on `owner`'s row.
    fn update(&self, conn: &mut C, owner: &str, diff: &Diff) -> Result<(), SyncError>;

    /// Deletes `owner`'s row of a delete diff.
    fn delete(&self, conn: &mut C, owner: &str, diff: &Diff) -> Result<(), SyncError>;

    /// The app's rules for a create; a refusal is `forbidden`.
    fn validate_create(&self, _conn: &mut C, _owner: &str, _diff: &Diff) -> Result<(), SyncError> {
        Ok(())
    }

    /// The app's rules for an update; a refusal is `forbidden`.
    fn validate_update(&self, _conn: &mut C, _owner: &str, _diff: &Diff) -> Result<(), SyncError> {
        Ok(())
    }

    /// The app's rules for a delete; a refusal is `forbidden`.
    fn validate_delete(&self, _conn: &mut C, _owner: &str, _diff: &Diff) -> Result<(), SyncError> {
        Ok(())
    }

    /// Writes a sync's diffs, in order; an error names its diff. The default
    /// calls `create`, `update` and `delete` diff by diff; an
    /// implementation may write runs of them at once (the one of `Models`
    /// inserts each run of creates of one model with one statement).
    fn write_all(&self, conn: &mut C, owner: &str, diffs: &[Diff]) -> Result<(), SyncError> {
        for diff in diffs {
            match diff.op {
                OperationType::Create => self.create(conn, owner, diff),
                OperationType::Update => self.update(conn, owner, diff),
                OperationType::Delete => self.delete(conn, owner, diff),
            }
            .map_err(|e| e.with_diff(diff.id.clone()))?;
        }
        Ok(())
    }

    /// The app's rules for all the diffs a sync is about to apply, in order,
    /// before any is written; an error names its diff. The default runs
    /// `validate_*` diff by diff; an implementation may read the rows it
    /// needs at once (the one of `Models` does, one query per model).
    fn validate_all(&self, conn: &mut C, owner: &str, diffs: &[Diff]) -> Result<(), SyncError> {
        for diff in diffs {
            match diff.op {
                OperationType::Create => self.validate_create(conn, owner, diff),
                OperationType::Update => self.validate_update(conn, owner, diff),
                OperationType::Delete => self.validate_delete(conn, owner, diff),
            }
            .map_err(|e| e.with_diff(diff.id.clone()))?;
        }
        Ok(())
    }
}

/// The default maximum number of diffs in one request.
pub const DEFAULT_MAX_DIFFS: usize = 5_000;

/// The sync engine: one [`apply`](Mobync::apply) per `/sync` request.
///
/// ```
/// use mobync::memory::{MemoryModels, MemoryStore};
/// use mobync::protocol::{Diff, OperationType::Create};
/// use mobync::Mobync;
/// use serde_json::json;
///
/// let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
/// let create = Diff::new("d1", Create, "task", json!({"id": "r1", "title": "milk"})).at(0, 1);
/// let answer = engine.apply(0, vec![create], "alice").unwrap();
/// assert_eq!(answer.logical_clock, 1);
/// assert!(answer.diffs.is_empty()); // a device never gets its own diffs back
/// ```
pub struct Mobync<St, Sy> {
    store: St,
    sync: Sy,
    max_diffs: usize,
}

impl<St, Sy> Mobync<St, Sy>
where
    St: Store,
    Sy: Synchronizer<St::Conn>,
{
    /// An engine over `store` and the app's `sync`.
    pub fn new(store: St, sync: Sy) -> Self {
        Mobync { store, sync, max_diffs: DEFAULT_MAX_DIFFS }
    }

    /// Sets the maximum number of diffs in one request (413 above it).
    pub fn with_max_diffs(mut self, max_diffs: usize) -> Self {
        self.max_diffs = max_diffs;
        self
    }

    /// The maximum number of diffs in one request.
    pub fn max_diffs(&self) -> usize {
        self.max_diffs
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The synchronizer.
    pub fn synchronizer(&self) -> &Sy {
        &self.sync
    }

    /// One sync round trip for the authenticated `owner`, whose device sent
    /// its `cursor` and `diffs`. All or nothing: an error changes nothing.
    pub fn apply(&self, cursor: i64, diffs: Vec<Diff>, owner: &str) -> Result<SyncResponse, SyncError> {
        if owner.is_empty() {
            return Err(SyncError::unauthenticated("no owner was authenticated"));
        }
        if cursor < 0 {
            return Err(SyncError::invalid_clock(format!("`logical_clock` must be >= 0, not {cursor}")));
        }
        if diffs.len() > self.max_diffs {
            return Err(SyncError::too_large(format!(
                "{} diffs in one request; the limit is {}",
                diffs.len(),
                self.max_diffs
            )));
        }
        self.check_batch(&diffs)?;
        self.store.transaction(|conn| self.sync_in(conn, cursor, &diffs, owner))
    }

    /// The checks that need no database: each diff on its own, against the
    /// models, and against the other diffs of the request.
    fn check_batch(&self, diffs: &[Diff]) -> Result<(), SyncError> {
        let mut seen: HashSet<&str> = HashSet::with_capacity(diffs.len());
        let mut rows: HashMap<(&str, &str), (bool, bool)> = HashMap::new();
        for diff in diffs {
            diff.check()?;
            if !seen.insert(&diff.id) {
                return Err(SyncError::invalid_diff("the same diff id appears twice in the request")
                    .with_diff(diff.id.clone()));
            }
            self.sync.check(diff).map_err(|e| e.with_diff(diff.id.clone()))?;
            let (created, deleted) = rows.entry((&diff.model, diff.row_id())).or_default();
            match diff.op {
                OperationType::Create if *deleted => {
                    return Err(SyncError::invalid_diff("a row is created after its own delete")
                        .with_diff(diff.id.clone()))
                }
                OperationType::Create if *created => {
                    return Err(SyncError::invalid_diff("a row is created twice in one request")
                        .with_diff(diff.id.clone()))
                }
                OperationType::Create => *created = true,
                OperationType::Delete => *deleted = true,
                OperationType::Update => {}
            }
        }
        Ok(())
    }

    fn sync_in(&self, conn: &mut St::Conn, cursor: i64, diffs: &[Diff], owner: &str) -> Result<SyncResponse, SyncError> {
        let clock = self.store.lock_clock(conn, owner)?;
        if cursor > clock {
            return Err(SyncError::invalid_clock(format!(
                "`logical_clock` {cursor} is ahead of the server's clock {clock}"
            )));
        }
        let ids: Vec<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let known = self.store.known_ids(conn, owner, &ids)?;
        // Never send a device its own diffs; note when the stored ones were
        // stamped, for the retry rule of the merge.
        let own: HashSet<&str> = ids.iter().copied().collect();
        let mut applied: HashMap<String, i64> = known.stored.iter().map(|id| (id.clone(), i64::MIN)).collect();
        let mut server = Vec::new();
        for diff in self.store.diffs_since(conn, owner, cursor)? {
            if own.contains(diff.id.as_str()) {
                applied.insert(diff.id.clone(), diff.logical_clock);
            } else {
                server.push(diff);
            }
        }
        // What an earlier merge dropped stays dropped; what it applied takes
        // part again but is not applied twice.
        let local: Vec<Diff> = diffs.iter().filter(|d| !known.dropped.contains(&d.id)).cloned().collect();
        let Merge { apply, send } = merge_retried(&server, &local, &applied);
        let mut apply: Vec<Diff> = apply.into_iter().filter(|d| !known.stored.contains(&d.id)).collect();
        for diff in &mut apply {
            diff.owner = owner.to_owned();
            diff.logical_clock = clock;
        }
        self.sync
            .validate_all(conn, owner, &apply)
            .map_err(|err| self.blame_folded(conn, owner, &local, &apply, err))?;
        self.sync.write_all(conn, owner, &apply)?;
        // Every new diff of the request is now stored or remembered as
        // dropped: a retry, whenever it comes, applies none of them again.
        let kept: HashSet<&str> = apply.iter().map(|d| d.id.as_str()).collect();
        let dropped: Vec<&str> =
            ids.iter().copied().filter(|id| !kept.contains(id) && !known.contains(id)).collect();
        if !apply.is_empty() || !dropped.is_empty() {
            self.store.record(conn, owner, clock, &apply, &dropped)?;
        }
        let clock = if apply.is_empty() { clock } else { clock + 1 };
        Ok(SyncResponse::ok(clock, send))
    }
}

impl<St, Sy> Mobync<St, Sy>
where
    St: Store,
    Sy: Synchronizer<St::Conn>,
{
    /// A rule refused a create into which the merge folded updates of the
    /// same request: PROTOCOL.md wants the diff that brought the refused
    /// value named. Replays the create as sent, then each folded update in
    /// request order, and names the first one the rule refuses (the create
    /// itself if it is refused as sent). Only runs on that failure path.
    fn blame_folded(&self, conn: &mut St::Conn, owner: &str, local: &[Diff], apply: &[Diff], err: SyncError) -> SyncError {
        if err.kind != crate::error::ErrorKind::Forbidden {
            return err;
        }
        let Some(create) = apply.iter().find(|d| Some(d.id.as_str()) == err.diff_id.as_deref()) else { return err };
        if create.op != OperationType::Create {
            return err;
        }
        let row = (create.model.as_str(), create.row_id());
        let sent = local.iter().filter(|d| (d.model.as_str(), d.row_id()) == row);
        let mut candidate: Option<Diff> = None;
        for diff in sent {
            let next = match (&mut candidate, diff.op) {
                (None, OperationType::Create) => diff.clone(),
                (Some(so_far), OperationType::Update) => {
                    let mut next = so_far.clone();
                    next.data.extend(diff.data.iter().filter(|(k, _)| k.as_str() != "id").map(|(k, v)| (k.clone(), v.clone())));
                    next
                }
                _ => continue,
            };
            if let Err(refused) = self.sync.validate_all(conn, owner, std::slice::from_ref(&next)) {
                if refused.kind == crate::error::ErrorKind::Forbidden {
                    return SyncError { diff_id: Some(diff.id.clone()), ..refused };
                }
            }
            candidate = Some(next);
        }
        err
    }
}

#[cfg(test)]
mod tests;
