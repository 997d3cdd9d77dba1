//! The sync round trip: check, read, merge, and only when something is to
//! be written, lock the owner's clock, apply and log.
//!
//! [`Mobync`] is generic over where the rows live ([`Synchronizer`]) and
//! where the diff log and clocks live ([`Store`]); both work on the
//! connection the caller hands to [`Mobync::apply`], and every write of a
//! sync happens in one transaction on it.

mod answer;
mod faults;
mod request;

use answer::{Plan, RowSet, Slot, INLINE};
pub use request::{Request, Sink};
use request::Counted;

use crate::error::SyncError;
use crate::merge::{merge_owned, Merge};
use crate::observe::Report;
use crate::owner::Owner;
use crate::history::NetRow;
use crate::protocol::{Diff, JsonObject, OperationType, Paging, SyncResponse};
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

    /// `owner`'s clock and the marks of its compacted history, `None` for
    /// an owner the log has never seen; takes no lock. A store that never
    /// compacts has horizon and purge horizon 0.
    fn marks(&self, conn: &mut Self::Conn, owner: &str) -> Result<Option<Marks>, SyncError> {
        let clock = self.clock(conn, owner)?;
        Ok(Some(Marks {
            clock,
            horizon: 0,
            purged: 0,
        }))
    }

    /// Locks `owner`'s clock as [`lock_clock`](Store::lock_clock) does and
    /// returns its marks (a store may do both at once).
    fn lock_marks(&self, conn: &mut Self::Conn, owner: &str) -> Result<Marks, SyncError> {
        let clock = self.lock_clock(conn, owner)?;
        Ok(self.marks(conn, owner)?.unwrap_or(Marks { clock, ..Marks::default() }))
    }

    /// `owner`'s net rows (its history below the horizon, see
    /// [`crate::history`]) changed at or after `since`, and those of `rows`
    /// (model, row id) whatever their last change.
    fn net_rows(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        since: i64,
        rows: &[(&str, &str)],
    ) -> Result<Vec<NetRow>, SyncError> {
        let _ = (conn, owner, since, rows);
        Ok(Vec::new())
    }

    /// `owner`'s log entries stamped from `from` up to `to` (excluded), in
    /// accepted order, whole stamps only: as many stamps as fit in `limit`
    /// entries, and at least the first one whatever its size. Also the
    /// first stamp not read (`to` once every entry below it was read).
    fn log_chunk(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<(Vec<Diff>, i64), SyncError> {
        let _ = (conn, owner, from, to, limit);
        Err(no_history())
    }

    /// Runs `f` on one consistent snapshot of the store, reading only:
    /// every read in it sees the same committed state, so that an answer
    /// read in several queries (and streamed out as it is read) is the
    /// answer of one moment.
    fn snapshot<T>(
        &self,
        conn: &mut Self::Conn,
        f: impl FnOnce(&mut Self::Conn) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        f(conn)
    }

    /// Hands `owner`'s log entries stamped from `from` up to `to`
    /// (excluded), in accepted order, to `each` one at a time as they are
    /// read: memory does not grow with their number.
    fn each_logged(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        from: i64,
        to: i64,
        each: &mut dyn FnMut(Diff) -> Result<(), SyncError>,
    ) -> Result<(), SyncError> {
        self.diffs_between(conn, owner, from, to)?.into_iter().try_for_each(each)
    }

    /// Hands `owner`'s net rows changed at or after `since` to `each`, one
    /// at a time as they are read.
    fn each_net_row(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        since: i64,
        each: &mut dyn FnMut(NetRow) -> Result<(), SyncError>,
    ) -> Result<(), SyncError> {
        self.net_rows(conn, owner, since, &[])?.into_iter().try_for_each(each)
    }

    /// One step of a compaction, in the write transaction that locked the
    /// owner's clock: replaces the net rows of `rows`' keys with `rows`,
    /// deletes the log entries stamped below `horizon`, keeps the ids of
    /// `squashed` (id, stamp) known for retries (noted at `now_ms`), and
    /// moves the horizon to `horizon`.
    fn squash(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        rows: &[NetRow],
        squashed: &[(&str, i64)],
        horizon: i64,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        let _ = (conn, owner, rows, squashed, horizon, now_ms);
        Err(no_history())
    }

    /// Forgets the squashed ids of `owner` noted before `before_ms` (the
    /// retry window is over); how many.
    fn forget_squashed(
        &self,
        conn: &mut Self::Conn,
        owner: &str,
        before_ms: i64,
    ) -> Result<usize, SyncError> {
        let _ = (conn, owner, before_ms);
        Err(no_history())
    }

    /// In the write transaction that locked the owner's clock: deletes the
    /// tombstones of rows deleted below `below` (at most the horizon) and
    /// moves the purge horizon there; how many.
    fn purge(&self, conn: &mut Self::Conn, owner: &str, below: i64) -> Result<usize, SyncError> {
        let _ = (conn, owner, below);
        Err(no_history())
    }

    /// How many log entries and net rows `owner` has.
    fn entries(&self, conn: &mut Self::Conn, owner: &str) -> Result<(u64, u64), SyncError> {
        let _ = (conn, owner);
        Err(no_history())
    }

    /// Up to `limit` owners, after `after` in key order, with more than
    /// `keep` stamps above their horizon: what a compaction policy visits.
    fn owners_behind(&self, conn: &mut Self::Conn, keep: i64, after: &str, limit: usize) -> Result<Vec<String>, SyncError> {
        let _ = (conn, keep, after, limit);
        Err(no_history())
    }

    /// The smallest stamp of a tombstone of `owner` whose delete's
    /// `utc_timestamp` is at or after `since_ms` (a tombstone too young to
    /// purge), if any.
    fn young_tombstone(&self, conn: &mut Self::Conn, owner: &str, since_ms: i64) -> Result<Option<i64>, SyncError> {
        let _ = (conn, owner, since_ms);
        Err(no_history())
    }
}

fn no_history() -> SyncError {
    SyncError::internal("this store keeps no compacted history")
}

/// An owner's clock and the marks of its compacted history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    /// The next stamp.
    pub clock: i64,
    /// Log entries stamped below it are squashed into net rows.
    pub horizon: i64,
    /// Tombstones of rows deleted below it are gone: a cursor from 1 up to
    /// it (excluded) is answered 410 `reset_required`.
    pub purged: i64,
}


/// Diff ids an earlier request already brought (see [`Store::known_ids`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownIds {
    /// Applied and stored in the diff log (or squashed below the horizon).
    pub stored: HashSet<String>,
    /// The stamps of the stored ones that were squashed by a compaction.
    pub squashed: HashMap<String, i64>,
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

    /// [`write_all`](Synchronizer::write_all), tallying in `report` what is
    /// to be counted once the transaction committed (see [`Report::tally`]).
    fn write_all_noting(&self, conn: &mut C, owner: &Self::Owner, diffs: &[Diff], report: &mut Report) -> Result<(), SyncError> {
        let _ = report;
        self.write_all(conn, owner, diffs)
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
/// let mut conn = engine.store().conn();
/// let answer = engine.apply(&mut conn, 0, vec![create], &"alice".to_string()).unwrap();
/// assert_eq!(answer.logical_clock, 1);
/// assert!(answer.diffs.is_empty()); // a device never gets its own diffs back
/// ```
pub struct Mobync<St, Sy> {
    store: St,
    sync: Sy,
    max_diffs: usize,
    max_clock_skew_ms: i64,
    retry_window_ms: i64,
    wall_clock: WallClock,
    /// Log entries an answer may keep from its read (see [`INLINE`]).
    inline: usize,
}

/// The server's wall clock, in milliseconds since the epoch: what a diff's
/// `utc_timestamp` is compared with (see [`Mobync::with_max_clock_skew`]).
/// Tests pass a clock they drive.
pub type WallClock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock, as a [`WallClock`].
pub fn system_clock() -> WallClock {
    std::sync::Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// The default most a diff's `utc_timestamp` may be ahead of the server's
/// clock: 10 minutes (PROTOCOL.md, "Timestamps from the future").
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;

/// The default time the ids of squashed diffs stay known for retries: 30
/// days.
pub const DEFAULT_RETRY_WINDOW_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Log entries one compaction step squashes at most (whole stamps; a
/// larger stamp is one step): each step is one short transaction under the
/// owner's lock.
pub const COMPACTION_STEP: usize = 2_000;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Compacted {
    /// The owner's horizon now.
    pub horizon: i64,
    /// Log entries and net rows before.
    pub entries_before: u64,
    /// Log entries and net rows after.
    pub entries_after: u64,
    /// Transactions it took.
    #[serde(skip)]
    pub steps: usize,
    /// The longest of them, in milliseconds: the longest the owner's syncs
    /// waited for it.
    #[serde(skip)]
    pub longest_step_ms: f64,
}


/// What the read part of a sync found: the clock, the stored diffs since
/// the cursor, the request's diffs already known, and the merge of them.
struct Reading {
    marks: Marks,
    /// Version 2's base below the cursor, if any.
    base: Option<i64>,
    merge: Merge,
    dropped: Vec<String>,
    /// The rows the request's diffs touch: the merge's D covers them, the
    /// rest of the answer is read as it is written out.
    touched: RowSet,
    /// The answer's log entries, if the read had them all.
    rest: Option<Vec<Slot>>,
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
        Mobync {
            store,
            sync,
            max_diffs: DEFAULT_MAX_DIFFS,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            retry_window_ms: DEFAULT_RETRY_WINDOW_MS,
            wall_clock: system_clock(),
            inline: INLINE,
        }
    }

    /// Sets how far (milliseconds) a diff's `utc_timestamp` may be ahead of
    /// the server's clock: a diff further ahead is accepted with the
    /// server's clock as its timestamp (and counted in
    /// `mobync_clock_skew_clamped_total`). 0 turns the check off.
    pub fn with_max_clock_skew(mut self, max_ms: i64) -> Self {
        self.max_clock_skew_ms = max_ms.max(0);
        self
    }

    /// Sets how long (milliseconds) the ids of squashed diffs stay known
    /// for retries after a compaction.
    pub fn with_retry_window(mut self, window_ms: i64) -> Self {
        self.retry_window_ms = window_ms.max(0);
        self
    }

    /// Sets the server's wall clock (tests drive their own).
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    /// Sets how many log entries an answer may keep from its read before it
    /// is read again as it is written out (tests run both ways).
    #[cfg(test)]
    pub(crate) fn with_inline(mut self, entries: usize) -> Self {
        self.inline = entries;
        self
    }

    /// The server's wall clock now, in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        (self.wall_clock)()
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

    /// Checks the number of diffs (PROTOCOL.md's step 4): 413 above the limit.
    fn check_size(&self, count: usize) -> Result<(), SyncError> {
        if count > self.max_diffs {
            return Err(SyncError::too_large(format!(
                "{count} diffs in one request; the limit is {}",
                self.max_diffs
            )));
        }
        Ok(())
    }

    /// One sync round trip for the authenticated `owner`, whose device sent
    /// its `cursor` and `diffs`, on `conn`: [`run`](Mobync::run) with the
    /// answer collected in memory. All or nothing: an error changes
    /// nothing. A sync with nothing to write (a pull, a retry of what was
    /// applied) takes no lock and writes nothing.
    pub fn apply(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        diffs: Vec<Diff>,
        owner: &Sy::Owner,
    ) -> Result<SyncResponse, SyncError> {
        self.sync(conn, cursor, diffs, None, owner)
    }

    /// [`apply`](Mobync::apply) for a client of either version: with
    /// `paging` (version 2), the answer is a page while more than its size
    /// is stamped since the cursor (nothing of the request is accepted
    /// then), else the merge against the stored diffs since `base_clock` on
    /// the rows the request touches (PROTOCOL.md, "Version 2").
    ///
    /// ```
    /// use mobync::memory::{MemoryModels, MemoryStore};
    /// use mobync::protocol::{Diff, OperationType::*, Paging};
    /// use mobync::Mobync;
    /// use serde_json::json;
    ///
    /// let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
    /// let mut conn = engine.store().conn();
    /// let alice = "alice".to_string();
    /// for n in 0..3 {
    ///     let create = Diff::new(format!("d{n}"), Create, "task", json!({"id": format!("r{n}"), "title": "a"}));
    ///     engine.apply(&mut conn, n, vec![create.at(n, n)], &alice).unwrap();
    /// }
    /// let page = engine.sync(&mut conn, 0, vec![], Some(Paging { page_size: 2, base_clock: 0 }), &alice).unwrap();
    /// assert_eq!((page.diffs.len(), page.logical_clock, page.has_more), (2, 2, Some(true)));
    /// let rest = engine.sync(&mut conn, 2, vec![], Some(Paging { page_size: 2, base_clock: 2 }), &alice).unwrap();
    /// assert_eq!((rest.diffs.len(), rest.logical_clock, rest.has_more), (1, 3, Some(false)));
    /// ```
    pub fn sync(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        diffs: Vec<Diff>,
        paging: Option<Paging>,
        owner: &Sy::Owner,
    ) -> Result<SyncResponse, SyncError> {
        let mut answer = SyncResponse::ok(cursor, Vec::new());
        self.run(conn, Request::new(owner, cursor, diffs).paged(paging), &mut answer, &mut Report::default())?;
        Ok(answer)
    }

    /// The one pipeline every sync goes through, whatever brought it (HTTP,
    /// the hub, tests), in PROTOCOL.md's order of checks: the owner (401),
    /// the cursor (409, 410), the size (413), then each diff in request
    /// order, the first fault winning (400, 422, 403); then a version-2
    /// page, or the merge, the write (only when something is to be
    /// written) and the answer, written to `sink` as it is read. `report`
    /// notes what it got to: the diffs applied and dropped (to emit once
    /// committed), those sent, the clock.
    ///
    /// ```
    /// use mobync::engine::Request;
    /// use mobync::memory::{MemoryModels, MemoryStore};
    /// use mobync::observe::Report;
    /// use mobync::protocol::{Diff, OperationType::Create, SyncResponse};
    /// use mobync::Mobync;
    /// use serde_json::json;
    ///
    /// let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
    /// let mut conn = engine.store().conn();
    /// let alice = "alice".to_string();
    /// let create = Diff::new("d1", Create, "task", json!({"id": "r1", "title": "milk"})).at(0, 1);
    /// let (mut answer, mut report) = (SyncResponse::ok(0, vec![]), Report::default());
    /// engine.run(&mut conn, Request::new(&alice, 0, vec![create]), &mut answer, &mut report).unwrap();
    /// assert_eq!((answer.logical_clock, report.applied_total()), (1, 1));
    /// ```
    pub fn run(
        &self,
        conn: &mut St::Conn,
        request: Request<'_, Sy::Owner>,
        sink: &mut dyn Sink,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let Request { owner, cursor, mut diffs, undecoded, paging, within } = request;
        let key = owner.key();
        if key.is_empty() {
            return Err(SyncError::unauthenticated("no owner was authenticated"));
        }
        if let Some(cursor) = cursor.filter(|&c| c < 0) {
            return Err(SyncError::invalid_clock(format!("`logical_clock` must be >= 0, not {cursor}")));
        }
        // Inside the caller's write transaction the clock is locked first:
        // nothing of this owner moves under the sync.
        let marks = match within {
            true => self.store.lock_marks(conn, &key)?,
            false => self.store.marks(conn, &key)?.unwrap_or_default(),
        };
        let cursor = cursor.unwrap_or(marks.clock);
        check_marks(cursor, &marks)?;
        self.check_size(diffs.len())?;
        self.clamp_future(&mut diffs);
        let fault = self.check_batch(&diffs).err().or_else(|| undecoded.map(|err| (diffs.len(), err)));
        if let Some((at, err)) = fault {
            return Err(if within { err } else { self.earliest_fault(conn, cursor, &diffs[..at], owner, err) });
        }
        let mut counted = Counted { inner: sink, sent: 0, clock: None };
        let result = if within {
            self.run_within(conn, owner, cursor, marks, &diffs, &mut counted, report)
        } else {
            self.run_own(conn, owner, cursor, marks, &diffs, paging, &mut counted, report)
        };
        report.sent = counted.sent;
        report.clock = counted.clock;
        result
    }

    /// [`run`](Mobync::run) in the caller's write transaction, the clock
    /// locked: read, merge, write, answer.
    #[allow(clippy::too_many_arguments)]
    fn run_within(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        cursor: i64,
        marks: Marks,
        diffs: &[Diff],
        sink: &mut dyn Sink,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let mut reading = self.read(conn, owner, cursor, None, marks, diffs)?;
        if let Some((_, err)) = reading.rowless.take() {
            return Err(err);
        }
        let (plan, noted) = self.write(conn, cursor, diffs, owner, reading)?;
        report.absorb(noted);
        self.emit(conn, &owner.key(), plan, sink)
    }

    /// [`run`](Mobync::run) in transactions of its own: a version-2 page
    /// (a pure read), or the read outside any transaction, the write only
    /// when something is to be written, and the answer read from one
    /// snapshot.
    #[allow(clippy::too_many_arguments)]
    fn run_own(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        cursor: i64,
        marks: Marks,
        diffs: &[Diff],
        paging: Option<Paging>,
        sink: &mut dyn Sink,
        report: &mut Report,
    ) -> Result<(), SyncError> {
        let key = owner.key();
        if let Some(paging) = paging {
            let page = self.store.snapshot(conn, |conn| {
                let marks = self.current_marks(conn, &key, cursor)?;
                self.page(conn, owner, cursor, marks, diffs, paging.page_size)
            })?;
            if let Some(page) = page {
                sink.start(page.logical_clock, page.has_more)?;
                return page.diffs.into_iter().try_for_each(|diff| sink.diff(diff));
            }
        }
        let base = paging.map(|p| p.base_clock).filter(|&b| b < cursor);
        let read = |conn: &mut St::Conn, marks| self.read(conn, owner, cursor, base, marks, diffs);
        let mut reading = read(conn, marks)?;
        if reading.rowless.is_some() || (reading.merge.apply.is_empty() && reading.dropped.is_empty()) {
            // No write follows, whose locked read of the marks would find a
            // compaction that moved the history during this read and read
            // again: this read must be as of one horizon on its own.
            reading = self.settled(conn, &key, cursor, marks, reading, read)?;
        }
        if let Some((at, err)) = reading.rowless.take() {
            return Err(self.earliest_fault(conn, cursor, &diffs[..at], owner, err));
        }
        let mut plan = if reading.merge.apply.is_empty() && reading.dropped.is_empty() {
            Plan::of(reading, cursor, diffs)
        } else {
            let (plan, noted) = self.store.write(conn, |conn| self.write(conn, cursor, diffs, owner, reading))?;
            report.absorb(noted);
            plan
        };
        plan.has_more = paging.map(|_| false);
        if plan.rest.is_some() {
            // The read had the whole answer: nothing more to read.
            return self.emit(conn, &key, plan, sink);
        }
        self.store.snapshot(conn, |conn| {
            let now = self.current_marks(conn, &key, cursor)?;
            if (now.horizon, now.purged) != (plan.marks.horizon, plan.marks.purged) {
                // A compaction or a purge moved the history since the merge
                // read it: read the answer again as of now (the request's
                // diffs are stored by now: it is a retry).
                let reading = self.read(conn, owner, cursor, base, now, diffs)?;
                let has_more = plan.has_more;
                plan = Plan::of(reading, cursor, diffs);
                plan.has_more = has_more;
            }
            self.emit(conn, &key, plan, sink)
        })
    }

    /// The owner's marks now, checked against the cursor (a purge may have
    /// left it behind: 410).
    fn current_marks(&self, conn: &mut St::Conn, key: &str, cursor: i64) -> Result<Marks, SyncError> {
        let marks = self.store.marks(conn, key)?.unwrap_or_default();
        check_marks(cursor, &marks)?;
        Ok(marks)
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
    ///
    /// With a `base` below the cursor (version 2), the rows the request
    /// touches meet the stored diffs since the base, the others those
    /// since the cursor.
    fn read(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        cursor: i64,
        base: Option<i64>,
        marks: Marks,
        diffs: &[Diff],
    ) -> Result<Reading, SyncError> {
        let key = owner.key();
        let ids: Vec<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let known = self.store.known_ids(conn, &key, &ids)?;
        let from = base.unwrap_or(cursor);
        let (server, rest) = self.stored_on(conn, &key, cursor, from, marks, diffs, &known)?;
        let rowless = self.rowless_empty_update(conn, owner, diffs, &known, &server)?;
        let mut reading = self.merge(from, marks, known, server, diffs);
        reading.rowless = rowless;
        reading.base = base;
        reading.rest = rest;
        Ok(reading)
    }

    /// A version-2 page, if more than `size` diffs are stamped since the
    /// cursor: whole stamps while they fit (at least one), the request's
    /// own diffs left out; a pure read.
    fn page(
        &self,
        conn: &mut St::Conn,
        owner: &Sy::Owner,
        cursor: i64,
        marks: Marks,
        diffs: &[Diff],
        size: u64,
    ) -> Result<Option<SyncResponse>, SyncError> {
        let key = owner.key();
        let own: HashSet<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if cursor >= marks.horizon {
            // Above the horizon a page reads no more of the log than it
            // sends: whole stamps up to the size, at least one.
            let (mut page, next) = self.store.log_chunk(conn, &key, cursor, marks.clock, size)?;
            if page.len() <= size && next >= marks.clock {
                return Ok(None);
            }
            page.retain(|d| !own.contains(d.id.as_str()));
            return Ok(Some(SyncResponse::ok(next, page).paged(true)));
        }
        // Below it, every row's net change since the cursor, then the log,
        // in stamp order.
        let mut stored = SyncResponse::ok(0, Vec::new());
        let plan = Plan {
            clock: marks.clock,
            has_more: None,
            cursor,
            marks,
            send: Vec::new(),
            touched: RowSet::default(),
            own: HashSet::new(),
            rest: None,
        };
        self.emit(conn, &key, plan, &mut stored)?;
        let mut stored = stored.diffs;
        if stored.len() <= size {
            return Ok(None);
        }
        stored.sort_by_key(|d| d.logical_clock);
        let (end, left) = whole_stamps(&stored, size);
        let next = left.unwrap_or(marks.clock);
        stored.truncate(end);
        stored.retain(|d| !own.contains(d.id.as_str()));
        Ok(Some(SyncResponse::ok(next, stored).paged(true)))
    }

    /// `value`, read outside the write transaction as of `marks`, or read
    /// again (by `read`) if a compaction or a purge moved the owner's
    /// history meanwhile: the log and the net rows must be read as of one
    /// horizon (a cursor the purge left behind is then 410).
    fn settled<T>(
        &self,
        conn: &mut St::Conn,
        key: &str,
        cursor: i64,
        marks: Marks,
        value: T,
        mut read: impl FnMut(&mut St::Conn, Marks) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        let (mut marks, mut value) = (marks, value);
        loop {
            let now = self.store.marks(conn, key)?.unwrap_or_default();
            if (now.horizon, now.purged) == (marks.horizon, marks.purged) {
                return Ok(value);
            }
            check_marks(cursor, &now)?;
            marks = Marks { clock: marks.clock, ..now };
            value = read(conn, marks)?;
        }
    }

    /// The owner's stored diffs the merge meets (S): those on the rows the
    /// request touches, stamped at or after `from` and before the clock;
    /// below the horizon, what [`NetRow::rivals`] says of those rows (of
    /// the rows only diffs an earlier merge dropped touch, which take no
    /// part again, their net change) (PROTOCOL.md, "History"). Beside them, the log entries of the answer
    /// in accepted order if there are at most [`INLINE`] (at or above the
    /// horizon): then the answer needs no second read. A longer answer is
    /// read as it is written out ([`Mobync::emit`]).
    #[allow(clippy::too_many_arguments)]
    fn stored_on(
        &self,
        conn: &mut St::Conn,
        key: &str,
        cursor: i64,
        from: i64,
        marks: Marks,
        diffs: &[Diff],
        known: &KnownIds,
    ) -> Result<(Vec<Diff>, Option<Vec<Slot>>), SyncError> {
        let mut touched: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
        for diff in diffs.iter().filter(|d| !known.dropped.contains(&d.id)) {
            let fields = touched.entry((diff.model.as_str(), diff.row_id())).or_default();
            if diff.op == OperationType::Update {
                fields.extend(diff.data.keys().map(String::as_str).filter(|k| *k != "id"));
            }
        }
        // The rows whose stored diffs the answer sends from `from` (all the
        // request's rows: a version-2 retry whose diff was dropped gets its
        // row again from the base too).
        let rows: HashSet<(&str, &str)> = diffs.iter().map(|d| (d.model.as_str(), d.row_id())).collect();
        let mut server = Vec::new();
        let inline = cursor >= marks.horizon;
        if rows.is_empty() {
            if !inline {
                return Ok((server, None));
            }
            let (entries, next) = self.store.log_chunk(conn, key, cursor, marks.clock, self.inline.max(1))?;
            let next = if entries.len() > self.inline { cursor } else { next };
            return Ok((server, (next >= marks.clock).then(|| entries.into_iter().map(Slot::Other).collect())));
        }
        if from < marks.horizon {
            let keys: Vec<(&str, &str)> = rows.iter().copied().collect();
            let mut nets = self.store.net_rows(conn, key, i64::MAX, &keys)?;
            nets.sort_by(|a, b| (&a.model, &a.id).cmp(&(&b.model, &b.id)));
            for net in &nets {
                match touched.get(&(net.model.as_str(), net.id.as_str())) {
                    Some(fields) => server.extend(net.rivals(from, fields, key)),
                    // A row only dropped diffs of the request touch: its
                    // net change.
                    None => server.extend(net.since_as_one(from, key)),
                }
            }
            server.sort_by_key(|d| d.logical_clock);
        }
        let mut rest = inline.then(Vec::new);
        self.store.each_logged(conn, key, from.max(marks.horizon), marks.clock, &mut |diff| {
            let on = rows.contains(&(diff.model.as_str(), diff.row_id()));
            let answered = diff.logical_clock >= cursor;
            if answered && rest.as_ref().is_some_and(|slots| slots.len() >= self.inline) {
                rest = None;
            }
            match (rest.as_mut().filter(|_| answered), on) {
                (Some(slots), true) => {
                    slots.push(Slot::Touched(diff.id.clone()));
                    server.push(diff);
                }
                (Some(slots), false) => slots.push(Slot::Other(diff)),
                (None, true) => server.push(diff),
                (None, false) => {}
            }
            Ok(())
        })?;
        // A row deleted since `from` takes no part in the merge but its
        // delete: the rivals kept from before it go.
        let deleted: HashSet<(String, String)> = server
            .iter()
            .filter(|d| d.op == OperationType::Delete)
            .map(|d| (d.model.clone(), d.row_id().to_owned()))
            .collect();
        if !deleted.is_empty() {
            server.retain(|d| d.logical_clock >= from || !deleted.contains(&(d.model.clone(), d.row_id().to_owned())));
        }
        Ok((server, rest))
    }

    /// Sets the `utc_timestamp` of each diff further ahead of the server's
    /// clock than the allowed skew to the server's clock.
    fn clamp_future(&self, diffs: &mut [Diff]) {
        if self.max_clock_skew_ms == 0 {
            return;
        }
        let now = self.now_ms();
        let mut clamped = 0u64;
        for diff in diffs.iter_mut() {
            if diff.utc_timestamp.saturating_sub(now) > self.max_clock_skew_ms {
                diff.utc_timestamp = now;
                clamped += 1;
            }
        }
        if clamped > 0 {
            metrics::counter!(crate::observe::names::CLOCK_SKEW_CLAMPED).increment(clamped);
            tracing::info!(
                clamped,
                "mobync: diffs stamped in the future got the server's time"
            );
        }
    }

    /// Merges the stored diffs with the request's, leaving out what an
    /// earlier request already brought.
    fn merge(&self, cursor: i64, marks: Marks, known: KnownIds, stored: Vec<Diff>, diffs: &[Diff]) -> Reading {
        // Never send a device its own diffs; note when the stored ones were
        // stamped, for the retry rule of the merge.
        let own: HashSet<&str> = diffs.iter().map(|d| d.id.as_str()).collect();
        let mut applied: HashMap<String, i64> =
            known.stored.iter().map(|id| (id.clone(), known.squashed.get(id).copied().unwrap_or(i64::MIN))).collect();
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
        let named: HashSet<(String, String, String)> = local
            .iter()
            .filter(|d| d.op == OperationType::Update)
            .flat_map(|d| d.data.keys().map(move |k| (d.model.clone(), d.row_id().to_owned(), k.clone())))
            .collect();
        let mut merge = merge_owned(server, local, &applied);
        keep_rivals_that_won(&mut merge.send, cursor, &named);
        carry_winners_into_creates(&mut merge);
        merge.apply.retain(|d| !known.stored.contains(&d.id));
        // Every new diff of the request is now stored or remembered as
        // dropped: a retry, whenever it comes, applies none of them again.
        let kept: HashSet<&str> = merge.apply.iter().map(|d| d.id.as_str()).collect();
        let dropped =
            diffs.iter().map(|d| d.id.as_str()).filter(|id| !kept.contains(id) && !known.contains(id)).map(str::to_owned).collect();
        let touched = RowSet::of(diffs);
        Reading { marks, merge, dropped, touched, rest: None, rowless: None, base: None }
    }

    /// The write part, in the write transaction: lock the clock; if another
    /// sync of this owner wrote since the read, read and merge again; then
    /// rules, rows, log and clock. What the answer is made of, and what was
    /// applied and dropped.
    fn write(
        &self,
        conn: &mut St::Conn,
        cursor: i64,
        diffs: &[Diff],
        owner: &Sy::Owner,
        mut reading: Reading,
    ) -> Result<(Plan, Report), SyncError> {
        let key = owner.key();
        let marks = self.store.lock_marks(conn, &key)?;
        if marks != reading.marks {
            check_marks(cursor, &marks)?;
            reading = self.read(conn, owner, cursor, reading.base, marks, diffs)?;
        }
        if let Some((_, err)) = reading.rowless.take() {
            return Err(err);
        }
        let clock = reading.marks.clock;
        let mut apply = std::mem::take(&mut reading.merge.apply);
        let dropped = std::mem::take(&mut reading.dropped);
        for diff in &mut apply {
            diff.owner = key.clone().into_owned();
            diff.logical_clock = clock;
        }
        if let Err(err) = self.sync.validate_all(conn, owner, &apply) {
            return Err(self.blame(conn, owner, diffs, &apply, err));
        }
        let mut noted = Report::default();
        self.sync.write_all_noting(conn, owner, &apply, &mut noted)?;
        let dropped: Vec<&str> = dropped.iter().map(String::as_str).collect();
        self.store.record(conn, &key, clock, &apply, &dropped)?;
        noted.note_applied(&apply);
        let dropped: HashSet<&str> = dropped.into_iter().collect();
        noted.note_dropped(diffs.iter().filter(|d| dropped.contains(d.id.as_str())));
        let mut plan = Plan::of(reading, cursor, diffs);
        if !apply.is_empty() {
            plan.clock = clock + 1;
        }
        Ok((plan, noted))
    }
}

/// The rivals kept from before the cursor ([`NetRow::rivals`]) reach D
/// only with the fields where they beat the request's update and no later
/// diff of D sets the field anyway: a device gets nothing it already had.
fn keep_rivals_that_won(
    send: &mut Vec<Diff>,
    cursor: i64,
    named: &HashSet<(String, String, String)>,
) {
    if send.iter().all(|d| d.logical_clock >= cursor) {
        return;
    }
    let later: HashSet<(String, String, String)> = send
        .iter()
        .filter(|d| d.logical_clock >= cursor && d.op != OperationType::Delete)
        .flat_map(|d| {
            d.data
                .keys()
                .map(move |k| (d.model.clone(), d.row_id().to_owned(), k.clone()))
        })
        .collect();
    for diff in send.iter_mut().filter(|d| d.logical_clock < cursor) {
        let (model, row) = (diff.model.clone(), diff.row_id().to_owned());
        diff.data.retain(|k, _| {
            let at = (model.clone(), row.clone(), k.clone());
            k == "id" || (named.contains(&at) && !later.contains(&at))
        });
    }
    send.retain(|d| d.logical_clock >= cursor || d.data.len() > 1);
}

/// A create sent back on a row whose fields the request's updates won (a
/// version-2 device that got the row in a page and changed it) carries
/// those values: applying the answer leaves the device with the server's
/// row, not the row as first created.
fn carry_winners_into_creates(merge: &mut Merge) {
    if !merge.send.iter().any(|d| d.op == OperationType::Create) {
        return;
    }
    let mut won: HashMap<(String, String), Vec<(String, serde_json::Value)>> = HashMap::new();
    for diff in merge.apply.iter().filter(|d| d.op == OperationType::Update) {
        let fields = diff.data.iter().filter(|(k, _)| *k != "id").map(|(k, v)| (k.clone(), v.clone()));
        won.entry((diff.model.clone(), diff.row_id().to_owned())).or_default().extend(fields);
    }
    for diff in merge.send.iter_mut().filter(|d| d.op == OperationType::Create) {
        if let Some(fields) = won.get(&(diff.model.clone(), diff.row_id().to_owned())) {
            for (field, value) in fields {
                diff.data.insert(field.clone(), value.clone());
            }
        }
    }
}

/// How many of `diffs` (in stamp order) are whole stamps within `limit`
/// diffs, at least the first stamp whatever its size; and the first stamp
/// left out, if any: what a page or a compaction step takes.
pub(crate) fn whole_stamps(diffs: &[Diff], limit: usize) -> (usize, Option<i64>) {
    let mut end = 0;
    while end < diffs.len() {
        let stamp = diffs[end].logical_clock;
        let stamp_end = end + diffs[end..].iter().take_while(|d| d.logical_clock == stamp).count();
        if end > 0 && stamp_end > limit {
            return (end, Some(stamp));
        }
        end = stamp_end;
    }
    (end, None)
}

/// 409 for a cursor ahead of the clock, 410 for one older than the purge
/// horizon (cursor 0, a device starting afresh, is never too old).
fn check_marks(cursor: i64, marks: &Marks) -> Result<(), SyncError> {
    if cursor > marks.clock {
        return Err(SyncError::invalid_clock(format!(
            "`logical_clock` {cursor} is ahead of the server's clock {}: the server's data is older \
             than this device's (restored from a backup?)",
            marks.clock
        )));
    }
    if cursor > 0 && cursor < marks.purged {
        return Err(SyncError::reset_required(format!(
            "`logical_clock` {cursor} is older than the history the server keeps (deleted rows are known from \
             {} on): clear this device's data and sync again from 0",
            marks.purged
        )));
    }
    Ok(())
}

mod compact;

#[cfg(test)]
mod tests;
