//! Compaction of an owner's log (PROTOCOL.md, "History"): the entries
//! stamped below a horizon are squashed into one net row per row, in steps
//! of whole stamps, each step one short write transaction under the owner's
//! lock. A step moves the horizon only past what it squashed, so a
//! compaction that dies midway leaves a smaller horizon and nothing lost,
//! and two compactions of one owner at once take turns on the lock, the
//! second going on from where the first left the horizon.

use super::{Compacted, Marks, Mobync, Store, Synchronizer, COMPACTION_STEP};
use crate::error::SyncError;
use crate::history::{fold, NetRow};
use std::collections::BTreeMap;

impl<St, Sy> Mobync<St, Sy>
where
    St: Store,
    Sy: Synchronizer<St::Conn>,
{
    /// Compacts the log of the owner whose key is `owner` below `below`
    /// (its clock when `None`): 404-like `None` for an owner the log has
    /// never seen, 400 `malformed_request` for a horizon above its clock.
    /// Also forgets the squashed ids older than the retry window.
    ///
    /// ```
    /// use mobync::memory::{MemoryModels, MemoryStore};
    /// use mobync::protocol::{Diff, OperationType::*};
    /// use mobync::Mobync;
    /// use serde_json::json;
    ///
    /// let engine = Mobync::new(MemoryStore::new(), MemoryModels::new().model("task", ["title"]));
    /// let mut conn = engine.store().conn();
    /// let alice = "alice".to_string();
    /// let create = Diff::new("d1", Create, "task", json!({"id": "r1", "title": "a"})).at(0, 1);
    /// engine.apply(&mut conn, 0, vec![create], &alice).unwrap();
    /// let update = Diff::new("d2", Update, "task", json!({"id": "r1", "title": "b"})).at(1, 2);
    /// engine.apply(&mut conn, 1, vec![update], &alice).unwrap();
    /// let done = engine.compact(&mut conn, "alice", None).unwrap().unwrap();
    /// assert_eq!((done.horizon, done.entries_before, done.entries_after), (2, 2, 1));
    /// // A new device gets one create with the row as it is.
    /// let answer = engine.apply(&mut conn, 0, vec![], &alice).unwrap();
    /// assert_eq!(answer.diffs.len(), 1);
    /// assert_eq!(answer.diffs[0].data["title"], "b");
    /// ```
    pub fn compact(
        &self,
        conn: &mut St::Conn,
        owner: &str,
        below: Option<i64>,
    ) -> Result<Option<Compacted>, SyncError> {
        let Some(marks) = self.store.marks(conn, owner)? else {
            return Ok(None);
        };
        let target = below.unwrap_or(marks.clock);
        if target > marks.clock || target < 0 {
            return Err(SyncError::malformed(format!(
                "the horizon {target} is not within 0..={} (the owner's clock)",
                marks.clock
            )));
        }
        let (log, net) = self.store.entries(conn, owner)?;
        let now = self.now_ms();
        let (mut steps, mut longest) = (0, std::time::Duration::ZERO);
        loop {
            let started = std::time::Instant::now();
            let moved = self.store.write(conn, |conn| self.compact_step(conn, owner, target, now))?;
            longest = longest.max(started.elapsed());
            steps += 1;
            if !moved {
                break;
            }
        }
        let window = self.retry_window_ms;
        self.store.write(conn, |conn| {
            self.store
                .forget_squashed(conn, owner, now.saturating_sub(window))
        })?;
        let horizon = self.store.marks(conn, owner)?.map_or(0, |m| m.horizon);
        let (log_after, net_after) = self.store.entries(conn, owner)?;
        Ok(Some(Compacted {
            horizon,
            entries_before: log + net,
            entries_after: log_after + net_after,
            steps,
            longest_step_ms: longest.as_secs_f64() * 1e3,
        }))
    }

    /// One step, in its write transaction: squashes the next whole stamps
    /// below `target`; whether it moved the horizon.
    fn compact_step(
        &self,
        conn: &mut St::Conn,
        owner: &str,
        target: i64,
        now: i64,
    ) -> Result<bool, SyncError> {
        let clock = self.store.lock_clock(conn, owner)?;
        let marks = self.store.marks(conn, owner)?.unwrap_or(Marks {
            clock,
            ..Marks::default()
        });
        let target = target.min(marks.clock);
        if marks.horizon >= target {
            return Ok(false);
        }
        let (entries, next) =
            self.store
                .log_chunk(conn, owner, marks.horizon, target, COMPACTION_STEP)?;
        let keys: Vec<(&str, &str)> = entries
            .iter()
            .map(|d| (d.model.as_str(), d.row_id()))
            .collect();
        let mut rows: BTreeMap<(String, String), NetRow> = self
            .store
            .net_rows(conn, owner, i64::MAX, &keys)?
            .into_iter()
            .map(|row| ((row.model.clone(), row.id.clone()), row))
            .collect();
        for diff in &entries {
            let key = (diff.model.clone(), diff.row_id().to_owned());
            let row = rows
                .entry(key)
                .or_insert_with(|| NetRow::new(&diff.model, diff.row_id()));
            fold(row, diff);
        }
        let rows: Vec<NetRow> = rows.into_values().collect();
        let squashed: Vec<(&str, i64)> = entries
            .iter()
            .map(|d| (d.id.as_str(), d.logical_clock))
            .collect();
        self.store
            .squash(conn, owner, &rows, &squashed, next, now)?;
        metrics::counter!(crate::observe::names::COMPACTED_ENTRIES).increment(entries.len() as u64);
        Ok(true)
    }

    /// Deletes the tombstones of `owner`'s rows deleted below `below` (at
    /// most its horizon): devices whose cursor is older are then answered
    /// 410 `reset_required`. `None` for an owner the log has never seen;
    /// else the purge horizon now and how many tombstones went.
    pub fn purge_tombstones(
        &self,
        conn: &mut St::Conn,
        owner: &str,
        below: i64,
    ) -> Result<Option<(i64, usize)>, SyncError> {
        let Some(marks) = self.store.marks(conn, owner)? else {
            return Ok(None);
        };
        if below > marks.horizon {
            return Err(SyncError::malformed(format!(
                "tombstones can be purged only below the horizon {}, not {below}",
                marks.horizon
            )));
        }
        self.store.write(conn, |conn| {
            self.store.lock_clock(conn, owner)?;
            let marks = self.store.marks(conn, owner)?.unwrap_or_default();
            if below <= marks.purged {
                return Ok(Some((marks.purged, 0)));
            }
            let gone = self.store.purge(conn, owner, below)?;
            Ok(Some((below, gone)))
        })
    }

    /// Purges the tombstones of `owner` whose delete happened (its
    /// `utc_timestamp`, never ahead of the server's clock by more than the
    /// allowed skew) more than `age_ms` ago, as far as the horizon and the
    /// youngest tombstone allow: see [`purge_tombstones`](Mobync::purge_tombstones).
    pub fn purge_older_than(&self, conn: &mut St::Conn, owner: &str, age_ms: i64) -> Result<Option<(i64, usize)>, SyncError> {
        let Some(marks) = self.store.marks(conn, owner)? else { return Ok(None) };
        let since = self.now_ms().saturating_sub(age_ms);
        let below = self.store.young_tombstone(conn, owner, since)?.map_or(marks.horizon, |young| young.min(marks.horizon));
        self.purge_tombstones(conn, owner, below)
    }
}
