//! Writing an answer out as it is read (PROTOCOL.md, "Bounded catch-up"):
//! the merge's D on the rows the request touches is in memory; every other
//! diff goes from the net rows and the log to the [`Sink`] one at a time.

use super::{Marks, Mobync, Reading, Sink, Store, Synchronizer};
use crate::error::SyncError;
use crate::protocol::Diff;
use std::collections::{HashMap, HashSet};

/// Log entries an answer may hold in memory from its read: a longer one
/// is read again as it is written out.
pub(super) const INLINE: usize = 1_000;

/// A log entry of an answer, in accepted order.
pub(super) enum Slot {
    /// An entry on a row the request touches (its id): D's version of it
    /// goes out, or nothing.
    Touched(String),
    /// An entry on another row: out as it is.
    Other(Diff),
}

/// What an answer is made of, once the merge (and the write) is done.
pub(super) struct Plan {
    /// The answer's `logical_clock`.
    pub(super) clock: i64,
    /// Version 2's `has_more`.
    pub(super) has_more: Option<bool>,
    /// The device's cursor.
    pub(super) cursor: i64,
    /// The history the merge read: stored diffs stamped below `marks.clock`,
    /// net rows below `marks.horizon`.
    pub(super) marks: Marks,
    /// D on the rows the request touches.
    pub(super) send: Vec<Diff>,
    /// Those rows.
    pub(super) touched: RowSet,
    /// The request's diff ids: never sent back.
    pub(super) own: HashSet<String>,
    /// The answer's log entries, if the read had them all; else they are
    /// read as the answer is written out.
    pub(super) rest: Option<Vec<Slot>>,
}

/// Rows (model, row id), looked up without building a key: the answer
/// asks of every diff it streams whether the request touches its row.
#[derive(Debug, Default)]
pub(super) struct RowSet(HashMap<String, HashSet<String>>);

impl RowSet {
    /// The rows of `diffs`.
    pub(super) fn of(diffs: &[Diff]) -> Self {
        let mut rows = RowSet::default();
        for diff in diffs {
            rows.0.entry(diff.model.clone()).or_default().insert(diff.row_id().to_owned());
        }
        rows
    }

    /// Whether the row `id` of `model` is one of them.
    pub(super) fn contains(&self, model: &str, id: &str) -> bool {
        self.0.get(model).is_some_and(|ids| ids.contains(id))
    }
}

impl Plan {
    /// The answer of `reading`, the merge of `diffs` at `cursor`: at the
    /// clock it read (the write moves it past what it applied).
    pub(super) fn of(reading: Reading, cursor: i64, diffs: &[Diff]) -> Self {
        Plan {
            clock: reading.marks.clock,
            has_more: None,
            cursor,
            marks: reading.marks,
            send: reading.merge.send,
            touched: reading.touched,
            own: diffs.iter().map(|d| d.id.clone()).collect(),
            rest: reading.rest,
        }
    }

    fn touches(&self, diff: &Diff) -> bool {
        self.touched.contains(&diff.model, diff.row_id())
    }
}

impl<St, Sy> Mobync<St, Sy>
where
    St: Store,
    Sy: Synchronizer<St::Conn>,
{
    /// Writes the answer of `plan` to `sink`, reading what is not in it
    /// from the store as it goes: D's diffs stamped before the first log
    /// entry it sends (net changes, rivals, v2's diffs since the base),
    /// then each other row's net change since the cursor, then the log from
    /// the cursor (or the horizon) up to the clock the merge read, where a
    /// touched row's entries are replaced by what D kept of them.
    pub(super) fn emit(&self, conn: &mut St::Conn, key: &str, mut plan: Plan, sink: &mut dyn Sink) -> Result<(), SyncError> {
        sink.start(plan.clock, plan.has_more)?;
        let from = plan.cursor.max(plan.marks.horizon);
        let mut late: HashMap<String, Diff> = HashMap::new();
        let mut early = Vec::new();
        for diff in std::mem::take(&mut plan.send) {
            if diff.logical_clock < from {
                early.push(diff);
            } else {
                late.insert(diff.id.clone(), diff);
            }
        }
        for diff in early {
            sink.diff(diff)?;
        }
        if let Some(rest) = plan.rest.take() {
            for slot in rest {
                match slot {
                    Slot::Touched(id) => {
                        if let Some(kept) = late.remove(&id) {
                            sink.diff(kept)?;
                        }
                    }
                    Slot::Other(diff) if !plan.own.contains(&diff.id) => sink.diff(diff)?,
                    Slot::Other(_) => {}
                }
            }
            return flush_rest(late, sink);
        }
        if plan.cursor < plan.marks.horizon {
            self.store.each_net_row(conn, key, plan.cursor, &mut |net| {
                if plan.touched.contains(&net.model, &net.id) {
                    return Ok(());
                }
                net.since_as_one(plan.cursor, key)
                    .into_iter()
                    .filter(|diff| !plan.own.contains(&diff.id))
                    .try_for_each(|diff| sink.diff(diff))
            })?;
        }
        self.store.each_logged(conn, key, from, plan.marks.clock, &mut |diff| {
            if plan.touches(&diff) {
                match late.remove(&diff.id) {
                    Some(kept) => sink.diff(kept),
                    None => Ok(()),
                }
            } else if plan.own.contains(&diff.id) {
                Ok(())
            } else {
                sink.diff(diff)
            }
        })?;
        flush_rest(late, sink)
    }
}

/// D's diffs the log entries did not take (none, read as of one moment):
/// sent rather than lost.
fn flush_rest(late: HashMap<String, Diff>, sink: &mut dyn Sink) -> Result<(), SyncError> {
    let mut rest: Vec<Diff> = late.into_values().collect();
    rest.sort_by_key(|d| d.logical_clock);
    rest.into_iter().try_for_each(|diff| sink.diff(diff))
}
