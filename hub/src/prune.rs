//! Nothing grows forever: messages answered (acknowledged, failed,
//! superseded) longer ago than the retention go, with their state changes,
//! in pieces of short transactions; `Idempotency-Key`s go once past their
//! window. The time is an argument, so a test moves it on. The same round
//! sets the gauges of messages waiting per state.

use crate::{sql, Engine, HubError, Shared};
use mobync::db::LogConnection;
use mobync::Owner;

/// The gauge of messages waiting, label `state` (`pending`, `processing`).
pub const WAITING: &str = "mobync_hub_messages_waiting";

/// What one pruning round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Messages deleted.
    pub messages: usize,
    /// Their state changes deleted.
    pub changes: usize,
    /// `Idempotency-Key`s forgotten.
    pub keys: usize,
    /// Transactions it took.
    pub pieces: usize,
}

impl<C: LogConnection, O: Owner> Shared<C, O> {
    /// Deletes the messages answered before `now - retention_ms` (and
    /// their state changes), at most `piece` per transaction, and the
    /// `Idempotency-Key`s remembered before `now - window_ms`; then sets
    /// the waiting gauges.
    pub fn prune(&self, engine: &Engine<C, O>, conn: &mut C, now: i64, retention_ms: i64, window_ms: i64, piece: i64) -> Result<Pruned, HubError> {
        let store = engine.store();
        let mut pruned = Pruned::default();
        loop {
            let (ids, messages, changes) = store.transaction(conn, |conn| {
                let ids = sql::answered_before(conn, now - retention_ms, piece.max(1))?;
                let (messages, changes) = sql::delete_messages(conn, &ids)?;
                Ok::<_, HubError>((ids.len(), messages, changes))
            })?;
            pruned.messages += messages;
            pruned.changes += changes;
            pruned.pieces += 1;
            if (ids as i64) < piece.max(1) {
                break;
            }
            crate::let_writers_in(conn);
        }
        pruned.keys = store.transaction(conn, |conn| sql::forget_keys(conn, now - window_ms))?;
        let (pending, processing) = sql::waiting(conn)?;
        metrics::gauge!(WAITING, "state" => "pending").set(pending as f64);
        metrics::gauge!(WAITING, "state" => "processing").set(processing as f64);
        if pruned.messages > 0 || pruned.keys > 0 {
            tracing::info!(
                "mobync hub: pruned {} messages, {} state changes, {} idempotency keys in {} pieces",
                pruned.messages,
                pruned.changes,
                pruned.keys,
                pruned.pieces
            );
        }
        Ok(pruned)
    }
}
