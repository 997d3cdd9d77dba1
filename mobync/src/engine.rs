//! The sync round trip: check, read, merge, and only when something is to
//! be written, lock the owner's clock, apply and log.
//!
//! [`Mobync`] is generic over where the rows live ([`Synchronizer`]) and
//! where the diff log and clocks live ([`Store`]); both work on the
//! connection the caller hands to [`Mobync::apply`], and every write of a
//! sync happens in one transaction on it.

mod faults;

use crate::error::SyncError;
use crate::merge::{merge_owned, Merge};
use crate::observe::Report;
use crate::owner::Owner;
use crate::protocol::{Diff, JsonObject, OperationType, SyncResponse};
use std::collections::{HashMap, HashSet};

/// The diff log and the per-owner clocks, and the write transaction a sync
/// applies its diffs in. Owners are given by their [key](Owner::key).
pub trait Store: Send + Sync {
    /// The connection the engine and the synchronizer work on.
    type Conn;

    /// Runs `f` in one write transaction on `conn`: committed if it returns
    /// `Ok`, rolled back (nothing changed) if it returns `Err`. On SQLite
    /// this is where a sync waits for the one writer's turn.
    fn write<T>(
        &self,
        conn: &mut Self::Conn,
        f: impl FnOnce(&mut Self::Conn) -> Result<T, SyncError>,
    ) -> Result<T, SyncError>;

    /// `owner`'s clock, 0 for an owner the log has never seen; takes no lock.
    fn clock(&self, conn: &mut Self::Conn, owner: &str) -> Result<i64, SyncError>;

    /// Locks `owner`'s clock until the write transaction ends, creating it
    /// at 0 if the owner is new, and returns its value.
    fn lock_clock(&self, conn: &mut Self::Conn, owner: &str) -> Result<i64, SyncError>;

    /// `owner`'s stored diffs stamped at or after `from` and before `to`, in
    /// accepted order.
    fn diffs_between(&self, conn: &mut Self::Conn, owner: &str, from: i64, to: i64) -> Result<Vec<Diff>, SyncError>;

    /// Which of `ids` an earlier request of `owner` already brought: stored
    /// in the log, or dropped by its merge.
    fn known_ids(&self, conn: &mut Self::Conn, owner: &str, ids: &[&str]) -> Result<KnownIds, SyncError>;

    /// Stores `applied` (already stamped with `stamp`, in order), remembers
    /// the `dropped` ids (an id remembered already is no error), and, if
    /// `applied` is not empty, advances `owner`'s clock to `stamp + 1`.
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
    /// Whom rows belong to.
    type Owner: Owner;

    /// Checks a diff against the models without touching the database: the
    /// model is known, the row id and the fields are known and of the right
    /// type, a create has every field. Failures are `invalid_diff`.
    fn check(&self, diff: &Diff) -> Result<(), SyncError>;

    /// The row `id` of `model` if `owner` has it, as the JSON the client sent.
    fn read(&self, conn: &mut C, owner: &Self::Owner, model: &str, id: &str) -> Result<Option<JsonObject>, SyncError>;

    /// The app's rules for all the diffs a sync is about to apply, in order,
    /// before any is written. The first refusal in request order wins
    /// (`forbidden`, naming its diff); a diff on a row this owner lacks may
    /// be reported here or by `write_all`.
    fn validate_all(&self, conn: &mut C, owner: &Self::Owner, diffs: &[Diff]) -> Result<(), SyncError>;

    /// Writes a sync's diffs, in order; an error names its diff.
    fn write_all(&self, conn: &mut C, owner: &Self::Owner, diffs: &[Diff]) -> Result<(), SyncError>;
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
/// let mut conn = engine.store().conn();
/// let answer = engine.apply(&mut conn, 0, vec![create], &"alice".to_string()).unwrap();
/// assert_eq!(answer.logical_clock, 1);
/// assert!(answer.diffs.is_empty()); // a device never gets its own diffs back
/// ```
pub struct Mobync<St, Sy> {
    store: St,
    sync: Sy,
    max_diffs: usize,
}

/// What the read part of a sync found: the clock, the stored diffs since
/// the cursor, the request's diffs already known, and the merge of them.
struct Reading {
    clock: i64,
    merge: Merge,
    dropped: Vec<String>,
    /// An update naming no field, of a row this owner lacks (its position
    /// in the request): the merge drops such an update, but it is a fault.
    rowless: Option<(usize, SyncError)>,
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

    /// Checks the cursor against `owner`'s clock (PROTOCOL.md's step 3):
    /// 409 if it is negative or ahead. Returns the clock.
    pub fn check_cursor(&self, conn: &mut St::Conn, owner: &Sy::Owner, cursor: i64) -> Result<i64, SyncError> {
        if cursor < 0 {
            return Err(SyncError::invalid_clock(format!("`logical_clock` must be >= 0, not {cursor}")));
        }
        let clock = self.store.clock(conn, &owner.key())?;
        if cursor > clock {
            return Err(SyncError::invalid_clock(format!(
                "`logical_clock` {cursor} is ahead of the server's clock {clock}: the server's data is older \
                 than this device's (restored from a backup?)"
            )));
        }
        Ok(clock)
    }

    /// Checks the number of diffs (PROTOCOL.md's step 4): 413 above the limit.
    pub fn check_size(&self, count: usize) -> Result<(), SyncError> {
        if count > self.max_diffs {
            return Err(SyncError::too_large(format!(
                "{count} diffs in one request; the limit is {}",
                self.max_diffs
            )));
        }
        Ok(())
    }

    /// One sync round trip for the authenticated `owner`, whose device sent
    /// its `cursor` and `diffs`, on `conn`. All or nothing: an error changes
    /// nothing. A sync with nothing to write (a pull, a retry of what was
    /// applied) takes no lock and writes nothing.
    pub fn apply(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        diffs: Vec<Diff>,
        owner: &Sy::Owner,
    ) -> Result<SyncResponse, SyncError> {
        if owner.key().is_empty() {
            return Err(SyncError::unauthenticated("no owner was authenticated"));
        }
        let clock = self.check_cursor(conn, owner, cursor)?;
        self.check_size(diffs.len())?;
        self.apply_from(conn, cursor, clock, diffs, None, owner)
    }

    /// [`apply`](Mobync::apply) once the cursor (read as `clock`) and the
    /// size are checked. `diffs` are the request's diffs up to the first one
    /// that could not be decoded, whose fault is `undecoded` (if any): a
    /// fault of a diff ahead of it wins, else that one is answered.
    pub fn apply_from(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        clock: i64,
        diffs: Vec<Diff>,
        undecoded: Option<SyncError>,
        owner: &Sy::Owner,
    ) -> Result<SyncResponse, SyncError> {
        self.apply_noting(conn, cursor, clock, diffs, undecoded, owner, &mut Report::default())
    }

    /// [`apply_from`](Mobync::apply_from), noting in `report` the diffs it
    /// applied and dropped (once committed), what it sent and the clock.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_noting(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        clock: i64,
        diffs: Vec<Diff>,
        undecoded: Option<SyncError>,
        owner: &Sy::Owner,
        report: &mut Report,
    ) -> Result<SyncResponse, SyncError> {
        if let Err((at, err)) = self.check_batch(&diffs) {
            return Err(self.earliest_fault(conn, cursor, &diffs[..at], owner, err));
        }
        if let Some(err) = undecoded {
            return Err(self.earliest_fault(conn, cursor, &diffs, owner, err));
        }
        let mut reading = self.read(conn, owner, cursor, clock, &diffs)?;
        if let Some((at, err)) = reading.rowless.take() {
            return Err(self.earliest_fault(conn, cursor, &diffs[..at], owner, err));
        }
        let answer = if reading.merge.apply.is_empty() && reading.dropped.is_empty() {
            SyncResponse::ok(reading.clock, reading.merge.send)
        } else {
            let (answer, noted) = self.store.write(conn, |conn| self.write(conn, cursor, &diffs, owner, reading))?;
            report.absorb(noted);
            answer
        };
        report.sent = answer.diffs.len();
        report.clock = Some(answer.logical_clock);
        Ok(answer)
    }

    /// [`apply`](Mobync::apply) inside a write transaction the caller opened
    /// with [`Store::write`] (the hub applies a node's change and writes its
    /// messages in one transaction). The first fault is answered as found,
    /// without looking for an earlier one in the request.
    ///
    /// `cursor` `None` is the owner's clock: the caller has seen everything
    /// (its diffs meet no stored diff in the merge). Beside the answer, the
    /// [`Report`] of the diffs it applied and dropped, for the caller to
    /// [emit](Report::emit) once its transaction committed.
    pub fn apply_within(
        &self,
        conn: &mut St::Conn,
        cursor: Option<i64>,
        diffs: Vec<Diff>,
        owner: &Sy::Owner,
    ) -> Result<(SyncResponse, Report), SyncError> {
        let key = owner.key();
        if key.is_empty() {
            return Err(SyncError::unauthenticated("no owner was authenticated"));
        }
        let clock = self.store.lock_clock(conn, &key)?;
        let cursor = cursor.unwrap_or(clock);
        if cursor < 0 || cursor > clock {
            return Err(SyncError::invalid_clock(format!("`logical_clock` {cursor} is not within 0..={clock}")));
        }
        self.check_size(diffs.len())?;
        self.check_batch(&diffs).map_err(|(_, err)| err)?;
        let mut reading = self.read(conn, owner, cursor, clock, &diffs)?;
        if let Some((_, err)) = reading.rowless.take() {
            return Err(err);
        }
        self.write(conn, cursor, &diffs, owner, reading)
    }

    /// The checks that need no database: each diff on its own, against the
    /// models, and against the diffs before it. On a fault, its position.
    fn check_batch(&self, diffs: &[Diff]) -> Result<(), (usize, SyncError)> {
        let mut seen: HashSet<&str> = HashSet::with_capacity(diffs.len());
        let mut rows: HashMap<(&str, &str), (bool, bool)> = HashMap::new();
        for (at, diff) in diffs.iter().enumerate() {
            let fault = |err: SyncError| (at, err.with_diff(diff.id.clone()));
            diff.check().map_err(fault)?;
            if !seen.insert(&diff.id) {
                return Err(fault(SyncError::invalid_diff("the same diff id appears twice in the request")));
            }
            self.sync.check(diff).map_err(fault)?;
            let (created, deleted) = rows.entry((&diff.model, diff.row_id())).or_default();
            match diff.op {
                OperationType::Create if *deleted => {
                    return Err(fault(SyncError::invalid_diff("a row is created after its own delete")))
                }
                OperationType::Create if *created => {
                    return Err(fault(SyncError::invalid_diff("a row is created twice in one request")))
                }
                OperationType::Create => *created = true,
                OperationType::Delete => *deleted = true,
                OperationType::Update => {}
            }
        }
        Ok(())
    }

    /// The read part: the stored diffs since the cursor (up to the clock read
    /// before them, so that both agree), the request's known ids, the merge.
    fn read(&self, conn: &mut St::Conn, owner: &Sy::Owner, cursor: i64, clock: i64, diffs: &[Diff]) -> Result<Reading, SyncError> {
        let key = owner.key();
        let ids: Vec<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let known = self.store.known_ids(conn, &key, &ids)?;
        let server = self.store.diffs_between(conn, &key, cursor, clock)?;
        let rowless = self.rowless_empty_update(conn, owner, diffs, &known, &server)?;
        let mut reading = self.merge(clock, known, server, diffs);
        reading.rowless = rowless;
        Ok(reading)
    }

    /// Merges the stored diffs with the request's, leaving out what an
    /// earlier request already brought.
    fn merge(&self, clock: i64, known: KnownIds, stored: Vec<Diff>, diffs: &[Diff]) -> Reading {
        // Never send a device its own diffs; note when the stored ones were
        // stamped, for the retry rule of the merge.
        let own: HashSet<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let mut applied: HashMap<String, i64> = known.stored.iter().map(|id| (id.clone(), i64::MIN)).collect();
        let mut server = Vec::with_capacity(stored.len());
        for diff in stored {
            if own.contains(diff.id.as_str()) {
                applied.insert(diff.id, diff.logical_clock);
            } else {
                server.push(diff);
            }
        }
        // What an earlier merge dropped stays dropped; what it applied takes
        // part again but is not applied twice.
        let local: Vec<Diff> = diffs.iter().filter(|d| !known.dropped.contains(&d.id)).cloned().collect();
        let mut merge = merge_owned(server, local, &applied);
        merge.apply.retain(|d| !known.stored.contains(&d.id));
        // Every new diff of the request is now stored or remembered as
        // dropped: a retry, whenever it comes, applies none of them again.
        let kept: HashSet<&str> = merge.apply.iter().map(|d| d.id.as_str()).collect();
        let dropped =
            diffs.iter().map(|d| d.id.as_str()).filter(|id| !kept.contains(id) && !known.contains(id)).map(str::to_owned).collect();
        Reading { clock, merge, dropped, rowless: None }
    }

    /// The write part, in the write transaction: lock the clock; if another
    /// sync of this owner wrote since the read, read and merge again; then
    /// rules, rows, log and clock.
    fn write(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        diffs: &[Diff],
        owner: &Sy::Owner,
        mut reading: Reading,
    ) -> Result<(SyncResponse, Report), SyncError> {
        let key = owner.key();
        let clock = self.store.lock_clock(conn, &key)?;
        if clock != reading.clock {
            reading = self.read(conn, owner, cursor, clock, diffs)?;
        }
        let Reading { clock, merge: Merge { mut apply, send }, dropped, rowless } = reading;
        if let Some((_, err)) = rowless {
            return Err(err);
        }
        for diff in &mut apply {
            diff.owner = key.clone().into_owned();
            diff.logical_clock = clock;
        }
        if let Err(err) = self.sync.validate_all(conn, owner, &apply) {
            return Err(self.blame(conn, owner, diffs, &apply, err));
        }
        self.sync.write_all(conn, owner, &apply)?;
        let dropped: Vec<&str> = dropped.iter().map(String::as_str).collect();
        self.store.record(conn, &key, clock, &apply, &dropped)?;
        let mut noted = Report::default();
        noted.note_applied(&apply);
        let dropped: HashSet<&str> = dropped.into_iter().collect();
        noted.note_dropped(diffs.iter().filter(|d| dropped.contains(d.id.as_str())));
        let clock = if apply.is_empty() { clock } else { clock + 1 };
        noted.sent = send.len();
        noted.clock = Some(clock);
        Ok((SyncResponse::ok(clock, send), noted))
    }
}

#[cfg(test)]
mod tests;
