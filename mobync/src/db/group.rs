//! Group commit on SQLite: the write transactions of concurrent syncs share
//! one transaction and one `COMMIT` (with `synchronous = FULL`, one fsync),
//! each write in a savepoint of its own.
//!
//! SQLite has one writer at a time, and a write's `COMMIT` is where it
//! waits for the disk. Writes queue for their turn; when a write ends while
//! another is already queued, the transaction is left open for that one,
//! and the write that finds no one queued (or the [`MOST`]th) commits the
//! group. Each write is still all or nothing: an error rolls back its own
//! savepoint, not the others'. A write returns only once the group's
//! `COMMIT` ended: `Ok` once it is on disk, an error (503, nothing of the
//! group written) if it failed. (A write that failed returns at once if no
//! write before it in the group wrote anything; else its error holds only
//! if the group commits, and it is 503 if the group does not.)
//!
//! Every group runs on one connection, the writer: the spare the store was
//! given, which stays in the store between groups. Each write exchanges
//! its own connection for the writer for as long as it runs, and leaves
//! with its own again. The writer's page cache stays warm, where the
//! connections of the pool find theirs emptied by the writes of others.
//! (If the writer is lost with its group, the write that ended the group
//! leaves with it, for its pool to drop, and the writer from then on is
//! the connection that write brought.)

use super::LogConnection;
use crate::error::{DbFault, SyncError};
use std::any::Any;
use std::ops::DerefMut;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

/// Most writes in one group: the first of them waits for at most this
/// many before its `COMMIT`.
pub(crate) const MOST: usize = 64;

/// A connection a store keeps: the spare, or the open group's.
pub(crate) type Kept<C> = Box<dyn DerefMut<Target = C> + Send>;

/// How a group ended, once it did.
type Outcome = Arc<OnceLock<Result<(), SyncError>>>;

/// What group commit did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Groups committed.
    pub groups: u64,
    /// Writes committed in them.
    pub writes: u64,
    /// Writes waiting for their turn now.
    pub queued: usize,
}

/// The writes of a store on one SQLite database.
pub(crate) struct Group<C> {
    state: Mutex<State<C>>,
    ended: Condvar,
    /// Writes on their way to their turn: a group stays open while one is.
    queued: AtomicUsize,
    /// Groups committed, and the writes in them.
    groups: AtomicU64,
    writes: AtomicU64,
}

struct State<C> {
    /// While no write runs, the writer (in the open group's transaction,
    /// if one is open); while a write runs, that write's own connection.
    slot: Kept<C>,
    /// The open group's outcome: `Some` while a group is open.
    open: Option<Outcome>,
    /// Writes in the open group, and those of them that succeeded.
    members: usize,
    written: usize,
}

/// A write's own result, or its panic.
type Ran<T, E> = Result<Result<T, E>, Box<dyn Any + Send>>;

impl<C: LogConnection> Group<C> {
    /// Group commit with `spare`, an idle connection of the database.
    pub(crate) fn new(spare: Kept<C>) -> Self {
        let state = State { slot: spare, open: None, members: 0, written: 0 };
        let (groups, writes) = (AtomicU64::new(0), AtomicU64::new(0));
        Group { state: Mutex::new(state), ended: Condvar::new(), queued: AtomicUsize::new(0), groups, writes }
    }

    /// Takes no lock: a write may call it.
    pub(crate) fn stats(&self) -> GroupStats {
        GroupStats {
            groups: self.groups.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
            queued: self.queued.load(Ordering::SeqCst),
        }
    }

    /// Runs `f` in a savepoint of the open group, or of a group it begins;
    /// returns once the group ended (see the module's doc). `conn` holds
    /// its own connection again afterwards, unless the writer was lost:
    /// then it may hold the lost writer, marked for its pool to drop.
    pub(crate) fn write<T, E: From<SyncError>>(&self, conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, E>) -> Result<T, E> {
        if conn.depth() != Some(0) {
            return Err(E::from(SyncError::internal("a write transaction was begun inside another")));
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        if state.open.is_some() && state.slot.depth() != Some(1) {
            // Only a panic outside the writes' own code leaves an open group
            // without its transaction: it is lost.
            let lost = abandon(&mut **state.slot);
            if let Some(outcome) = state.open.take() {
                let _ = outcome.set(Err(lost));
            }
            self.ended.notify_all();
        }
        let outcome = match state.open.clone() {
            Some(outcome) => {
                std::mem::swap(conn, &mut *state.slot);
                outcome
            }
            None => {
                // On the writer, unless it was lost: then on this write's
                // own connection, the writer from then on.
                let on_writer = idle(&mut **state.slot);
                if on_writer {
                    std::mem::swap(conn, &mut *state.slot);
                }
                // `BEGIN IMMEDIATE` waits for another process's write lock.
                if let Err(err) = conn.begin(true) {
                    if on_writer {
                        std::mem::swap(conn, &mut *state.slot);
                    }
                    return Err(E::from(SyncError::database_waiting(err)));
                }
                (state.members, state.written) = (0, 0);
                Arc::new(OnceLock::new())
            }
        };
        state.members += 1;
        // An error of a write that may have read what the group's earlier
        // writes wrote holds only if the group commits.
        let after_others = state.written > 0;
        let (ran, intact) = panic::catch_unwind(AssertUnwindSafe(|| in_savepoint(conn, f))).unwrap_or_else(|payload| (Err(payload), false));
        let succeeded = matches!(ran, Ok(Ok(_)));
        state.written += usize::from(succeeded);
        if intact && state.members < MOST && self.queued.load(Ordering::SeqCst) > 0 {
            // A write is queued: it joins, and this one waits for the
            // group's COMMIT (unless it failed on its own).
            std::mem::swap(conn, &mut *state.slot);
            state.open = Some(outcome.clone());
            let own = ran.unwrap_or_else(|payload| panic::resume_unwind(payload));
            if !succeeded && !after_others {
                return own;
            }
            let state = self.ended.wait_while(state, |_| outcome.get().is_none()).unwrap_or_else(PoisonError::into_inner);
            drop(state);
            return match outcome.get() {
                Some(Ok(())) => own,
                Some(Err(err)) => Err(E::from(err.clone())),
                None => Err(E::from(SyncError::internal("a group of writes never ended"))),
            };
        }
        // This write ends the group, then leaves the writer to the next
        // group and takes its own connection back (a lost writer it keeps,
        // for its pool to drop: the one it brought is the writer then).
        state.open = None;
        let written = state.written;
        let ended = panic::catch_unwind(AssertUnwindSafe(|| match (intact, written) {
            (true, 0) => conn.rollback().map_err(|e| super::failed(conn, e)),
            (true, _) => conn.commit().map_err(|e| super::failed(conn, e)),
            (false, _) => Err(abandon(conn)),
        }))
        .unwrap_or_else(|_| Err(abandon(conn)));
        if ended.is_ok() && written > 0 {
            self.groups.fetch_add(1, Ordering::SeqCst);
            self.writes.fetch_add(written as u64, Ordering::SeqCst);
        }
        if ended.is_ok() && idle(conn) {
            std::mem::swap(conn, &mut *state.slot);
        }
        let others = ended.clone().map_err(|err| {
            SyncError::of_fault(DbFault::Busy, format!("the writes this sync's write was grouped with failed: {}", err.message))
        });
        let _ = outcome.set(others.clone());
        drop(state);
        self.ended.notify_all();
        match (ran.unwrap_or_else(|payload| panic::resume_unwind(payload)), ended, others) {
            (own, Ok(()), _) => own,
            (Ok(_), Err(err), _) => Err(E::from(err)),
            (Err(_), Err(_), Err(group)) if after_others => Err(E::from(group)),
            (Err(own), Err(_), _) => Err(own),
        }
    }
}

/// Whether `conn` can be the writer: usable, and in no transaction.
fn idle<C: LogConnection>(conn: &mut C) -> bool {
    !conn.broken() && conn.depth() == Some(0)
}

/// Runs `f` in a savepoint: its result (or its panic), and whether the
/// group's transaction is intact (the savepoint released or rolled back,
/// nothing else of the transaction lost).
fn in_savepoint<C: LogConnection, T, E: From<SyncError>>(conn: &mut C, f: impl FnOnce(&mut C) -> Result<T, E>) -> (Ran<T, E>, bool) {
    if let Err(err) = conn.begin(false) {
        return (Ok(Err(E::from(super::failed(conn, err)))), false);
    }
    let ran = panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
    if conn.depth() != Some(2) {
        // `f` ended its savepoint, or more, itself: what is left of the
        // transaction is not known.
        return (ran, false);
    }
    match ran {
        Ok(Ok(value)) => match conn.commit() {
            Ok(()) => (Ok(Ok(value)), conn.depth() == Some(1)),
            Err(err) => (Ok(Err(E::from(super::failed(conn, err)))), false),
        },
        // A savepoint that cannot be rolled back to is gone with the
        // whole transaction (SQLite rolls back on some errors by itself).
        Ok(Err(err)) => {
            let undone = conn.rollback().is_ok();
            (Ok(Err(err)), undone && conn.depth() == Some(1))
        }
        Err(payload) => (Err(payload), false),
    }
}

/// Rolls back a group whose transaction is no longer whole, and marks the
/// connection for its pool to drop (its state is not known): the error
/// the group's writes get.
fn abandon<C: LogConnection>(conn: &mut C) -> SyncError {
    let _ = conn.batch("ROLLBACK");
    conn.discard();
    SyncError::of_fault(DbFault::Busy, "a write failed in a way that lost its group's transaction: nothing of the group was written")
}
